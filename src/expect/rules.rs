//! Rules: what the restored data must be, checked row by row as the diff streams by.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::PatchOperation;
use jsonptr::{Pointer, PointerBuf};
use serde_json::{Map, Value};

use super::{CheckResult, Finding, Findings};
use crate::diff::DiffSink;
use crate::error::Result;
use crate::snapshot::Header;
use crate::volatile::Volatile;

fn data_path(table: &str, key: &str, inner: &Pointer) -> String {
    let mut p = PointerBuf::from_tokens(["data", table, key]);
    p.append(inner);
    p.to_string()
}

/// `row.pointer(ptr)`, by jsonptr's decoding (the same escaping the diff writes).
fn at<'v>(value: &'v Value, ptr: &Pointer) -> Option<&'v Value> {
    value.pointer(ptr.as_str())
}

/// Top-level columns equal on both sides, except `skip`: the ones that differ.
fn changed_columns<'a>(
    before: &'a Value,
    after: &'a Value,
    skip: &BTreeSet<String>,
) -> Vec<(&'a String, &'a Value, &'a Value)> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    b.iter()
        .filter(|(col, _)| !skip.contains(*col))
        .filter_map(|(col, vb)| a.get(col).map(|va| (col, vb, va)))
        .filter(|(_, vb, va)| vb != va)
        .collect()
}

// ------------------------------------------------------------------------------ rows-preserved

/// Built-in `rows-preserved`: no row of a table that exists before and after may vanish.
#[derive(Default)]
pub struct RowsPreserved {
    findings: Findings,
    both_sides: bool,
}

impl RowsPreserved {
    pub fn finish(self) -> CheckResult {
        CheckResult::new(
            "rows-preserved",
            "rule rows-preserved (no row disappears)".into(),
            self.findings,
        )
    }
}

impl DiffSink for RowsPreserved {
    fn table(&mut self, _name: &str, before: bool, after: bool) -> Result<()> {
        self.both_sides = before && after;
        Ok(())
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        if let (true, Some(b), None) = (self.both_sides, before, after) {
            self.findings.push(Finding {
                rule: "rows-preserved".into(),
                message: "row disappeared".into(),
                table: Some(table.into()),
                key: Some(key.into()),
                path: data_path(table, key, Pointer::root()),
                before: Some(b.clone()),
                expected: Some(b.clone()),
                actual: None,
            })?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------- metadata-restored

/// What is expected of rows that carry no metadata before the downgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WithoutMetadata {
    /// Every column present before and after keeps its value (the default).
    Unchanged,
    /// The row must still exist; its values may change.
    Kept,
    /// Anything goes, including disappearing.
    Any,
}

/// The metadata restoration rule, resolved from config or flags.
#[derive(Debug, Clone)]
pub struct MetadataSpec {
    pub id: String,
    /// `schema.table`.
    pub table: String,
    /// Where the metadata sits in the before row, e.g. `/step_data/_migration_metadata`.
    pub metadata: PointerBuf,
    /// (field in the after row, source inside the metadata).
    pub fields: Vec<(PointerBuf, PointerBuf)>,
    pub without_metadata: WithoutMetadata,
    /// Columns never compared (e.g. `updated_at`).
    pub ignore_columns: Vec<String>,
    pub allow_added_rows: bool,
    pub allow_removed_rows: bool,
}

pub struct MetadataRestored {
    spec: MetadataSpec,
    /// Columns never compared: `ignore_columns`.
    ignored: BTreeSet<String>,
    /// For rows with metadata, also the columns the mapping rewrites (first token of each
    /// field and of the metadata pointer): not held to "unchanged".
    ignored_or_rewritten: BTreeSet<String>,
    findings: Findings,
    table_seen: bool,
    with_metadata: u64,
    without_metadata: u64,
}

impl MetadataRestored {
    pub fn new(spec: MetadataSpec) -> Self {
        let first = |p: &PointerBuf| p.tokens().next().map(|t| t.decoded().into_owned());
        let ignored: BTreeSet<String> = spec.ignore_columns.iter().cloned().collect();
        let ignored_or_rewritten = spec
            .fields
            .iter()
            .filter_map(|(field, _)| first(field))
            .chain(first(&spec.metadata))
            .chain(ignored.iter().cloned())
            .collect();
        MetadataRestored {
            spec,
            ignored,
            ignored_or_rewritten,
            findings: Findings::default(),
            table_seen: false,
            with_metadata: 0,
            without_metadata: 0,
        }
    }

    /// A finding at `inner` of the row; `before_row` is the row before the downgrade.
    fn push(
        &mut self,
        message: &str,
        key: &str,
        inner: &Pointer,
        before_row: Option<&Value>,
        expected: Option<&Value>,
        actual: Option<&Value>,
    ) -> Result<()> {
        self.findings.push(Finding {
            rule: self.spec.id.clone(),
            message: message.into(),
            table: Some(self.spec.table.clone()),
            key: Some(key.into()),
            path: data_path(&self.spec.table, key, inner),
            before: before_row.and_then(|b| at(b, inner)).cloned(),
            expected: expected.cloned(),
            actual: actual.cloned(),
        })
    }

    /// One finding per differing path inside `field`, so each names exactly what is wrong.
    fn push_diff(
        &mut self,
        message: &str,
        before_row: &Value,
        key: &str,
        field: &Pointer,
        expected: &Value,
        actual: Option<&Value>,
    ) -> Result<()> {
        let Some(actual) = actual.filter(|a| a.is_object() && expected.is_object()) else {
            return self.push(
                message,
                key,
                field,
                Some(before_row),
                Some(expected),
                actual,
            );
        };
        for op in json_patch::diff(expected, actual).0 {
            let inner = op.path();
            let path = field.concat(inner);
            // Metadata still in the row has a finding of its own ("metadata left in place").
            if path.starts_with(&self.spec.metadata) {
                continue;
            }
            let (expected, actual) = (at(expected, inner), at(actual, inner));
            self.push(message, key, &path, Some(before_row), expected, actual)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<CheckResult> {
        let s = &self.spec;
        let zero = if !self.table_seen {
            Some(format!("table {} is not in the snapshot", s.table))
        } else if self.with_metadata == 0 {
            Some(format!(
                "rule matched no rows: no row of {} has {} before the downgrade (misspelt pointer?)",
                s.table, s.metadata
            ))
        } else {
            None
        };
        if let Some(message) = zero {
            let path = format!(
                "{}{}",
                PointerBuf::from_tokens(["data", &s.table]),
                s.metadata
            );
            self.findings.push_first(Finding {
                table: Some(s.table.clone()),
                ..Finding::plain(&s.id, message, path)
            })?;
        }
        let mapping: Vec<String> = s.fields.iter().map(|(f, m)| format!("{f} ← {m}")).collect();
        let name = format!(
            "rule {}: {} rows with {} restored ({}), metadata removed; {} rows without it {}",
            s.id,
            self.with_metadata,
            s.metadata,
            mapping.join(", "),
            self.without_metadata,
            match s.without_metadata {
                WithoutMetadata::Unchanged => "unchanged",
                WithoutMetadata::Kept => "kept",
                WithoutMetadata::Any => "unchecked",
            }
        );
        Ok(CheckResult::new(&self.spec.id.clone(), name, self.findings))
    }
}

impl DiffSink for MetadataRestored {
    fn wants_rows(&self, table: &str) -> bool {
        table == self.spec.table
    }

    fn table(&mut self, name: &str, before: bool, _after: bool) -> Result<()> {
        if name == self.spec.table && before {
            self.table_seen = true;
        }
        Ok(())
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        if table != self.spec.table {
            return Ok(());
        }
        let root = Pointer::root();
        let metadata = before.and_then(|b| at(b, &self.spec.metadata));
        match (before, after) {
            (None, None) => {}
            (None, Some(a)) => {
                if !self.spec.allow_added_rows {
                    self.push("row appeared", key, root, None, None, Some(a))?;
                }
            }
            (Some(b), None) => {
                if metadata.is_some() {
                    self.with_metadata += 1;
                } else {
                    self.without_metadata += 1;
                }
                let allowed = self.spec.allow_removed_rows
                    || (metadata.is_none() && self.spec.without_metadata == WithoutMetadata::Any);
                if !allowed {
                    self.push("row disappeared", key, root, Some(b), Some(b), None)?;
                }
            }
            (Some(b), Some(a)) => match metadata {
                Some(meta) => {
                    self.with_metadata += 1;
                    // Taken for the loop (push needs &mut self), put back after it.
                    let fields = std::mem::take(&mut self.spec.fields);
                    for (field, source) in &fields {
                        let expected = at(meta, source);
                        let actual = at(a, field);
                        match expected {
                            None => {
                                let message = format!("metadata has no {source}");
                                self.push(&message, key, field, Some(b), None, actual)?;
                            }
                            Some(e) if Some(e) != actual => {
                                let e = e.clone();
                                let actual = actual.cloned();
                                self.push_diff(
                                    "not restored from metadata",
                                    b,
                                    key,
                                    field,
                                    &e,
                                    actual.as_ref(),
                                )?;
                            }
                            Some(_) => {}
                        }
                    }
                    self.spec.fields = fields;
                    if let Some(left) = at(a, &self.spec.metadata) {
                        let path = self.spec.metadata.clone();
                        self.push(
                            "metadata left in place",
                            key,
                            &path,
                            Some(b),
                            None,
                            Some(&left.clone()),
                        )?;
                    }
                    let skip = std::mem::take(&mut self.ignored_or_rewritten);
                    for (col, vb, va) in changed_columns(b, a, &skip) {
                        let path = PointerBuf::from_tokens([col.as_str()]);
                        self.push_diff(
                            "changed, but the rule does not map it",
                            b,
                            key,
                            &path,
                            vb,
                            Some(va),
                        )?;
                    }
                    self.ignored_or_rewritten = skip;
                }
                None => {
                    self.without_metadata += 1;
                    if self.spec.without_metadata == WithoutMetadata::Unchanged {
                        for (col, vb, va) in changed_columns(b, a, &self.ignored) {
                            let path = PointerBuf::from_tokens([col.as_str()]);
                            self.push_diff(
                                "changed (row has no metadata)",
                                b,
                                key,
                                &path,
                                vb,
                                Some(va),
                            )?;
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------- after-state

/// Expectations on the after snapshot: RFC 6902 `test` operations, absences, the revision.
#[derive(Debug, Clone, Default)]
pub struct AfterSpec {
    /// (pointer, value): the value at the pointer must equal it.
    pub tests: Vec<(PointerBuf, Value)>,
    /// Pointers that must not resolve.
    pub absent: Vec<PointerBuf>,
    /// `alembic_version` after the downgrade, e.g. `a1b2c3d4e5f6`.
    pub revision: Option<String>,
}

impl AfterSpec {
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty() && self.absent.is_empty() && self.revision.is_none()
    }
}

/// A pointer split for evaluation: into the header, or into one row.
enum Target {
    Header,
    Row {
        table: String,
        key: String,
        inner: PointerBuf,
    },
}

fn target(ptr: &Pointer) -> Target {
    let tokens: Vec<String> = ptr.tokens().map(|t| t.decoded().into_owned()).collect();
    match tokens.as_slice() {
        [data, table, key, rest @ ..] if data == "data" => Target::Row {
            table: table.clone(),
            key: key.clone(),
            inner: PointerBuf::from_tokens(rest.iter().map(String::as_str)),
        },
        _ => Target::Header,
    }
}

enum Expect {
    Equals(Value),
    Absent,
}

/// An expectation on one row: the full pointer, the pointer inside the row, what must hold.
type RowCheck = (PointerBuf, PointerBuf, Expect);

pub struct AfterState {
    /// Row expectations, waiting for their row, by (table, key).
    pending: BTreeMap<(String, String), Vec<RowCheck>>,
    header_checks: Vec<(PointerBuf, Expect)>,
    revision: Option<String>,
    expectations: Findings,
    revision_findings: Findings,
    counts: (usize, usize),
}

impl AfterState {
    pub fn new(spec: &AfterSpec) -> Self {
        let mut state = AfterState {
            pending: BTreeMap::new(),
            header_checks: Vec::new(),
            revision: spec.revision.clone(),
            expectations: Findings::default(),
            revision_findings: Findings::default(),
            counts: (spec.tests.len(), spec.absent.len()),
        };
        let all = spec
            .tests
            .iter()
            .map(|(p, v)| (p, Expect::Equals(v.clone())))
            .chain(spec.absent.iter().map(|p| (p, Expect::Absent)));
        for (ptr, expect) in all {
            match target(ptr) {
                Target::Header => state.header_checks.push((ptr.clone(), expect)),
                Target::Row { table, key, inner } => state
                    .pending
                    .entry((table, key))
                    .or_default()
                    .push((ptr.clone(), inner, expect)),
            }
        }
        state
    }

    fn judge(
        findings: &mut Findings,
        ptr: &Pointer,
        expect: &Expect,
        actual: Option<&Value>,
        table: Option<&str>,
        key: Option<&str>,
    ) -> Result<()> {
        let (message, expected) = match (expect, actual) {
            (Expect::Equals(e), Some(a)) if e == a => return Ok(()),
            (Expect::Absent, None) => return Ok(()),
            (Expect::Equals(e), Some(_)) => ("test failed: value differs", Some(e.clone())),
            (Expect::Equals(e), None) => ("test failed: nothing there", Some(e.clone())),
            (Expect::Absent, Some(_)) => ("should be absent", None),
        };
        findings.push(Finding {
            rule: "after-state".into(),
            message: message.into(),
            table: table.map(str::to_string),
            key: key.map(str::to_string),
            path: ptr.to_string(),
            before: None,
            expected,
            actual: actual.cloned(),
        })
    }

    /// Zero, one or two results: expectations (if any), revision (if asked).
    pub fn finish(mut self) -> Result<Vec<CheckResult>> {
        // Rows never seen: a test on them fails, an absence holds.
        for ((table, key), checks) in std::mem::take(&mut self.pending) {
            for (ptr, _, expect) in checks {
                Self::judge(
                    &mut self.expectations,
                    &ptr,
                    &expect,
                    None,
                    Some(&table),
                    Some(&key),
                )?;
            }
        }
        let mut results = Vec::new();
        let (tests, absent) = self.counts;
        if tests + absent > 0 {
            results.push(CheckResult::new(
                "after-state",
                format!("after-state expectations ({tests} tests, {absent} absences)"),
                self.expectations,
            ));
        }
        if let Some(rev) = &self.revision {
            results.push(CheckResult::new(
                "revision",
                format!("revision: alembic_version is {rev} after the downgrade"),
                self.revision_findings,
            ));
        }
        Ok(results)
    }
}

impl DiffSink for AfterState {
    fn wants_rows(&self, table: &str) -> bool {
        self.pending.keys().any(|(t, _)| t == table)
    }

    fn header(&mut self, _before: &Header, after: &Header) -> Result<()> {
        let mut doc = Map::new();
        doc.insert("alembic_version".into(), after.alembic_version.clone());
        doc.insert("schema".into(), after.schema.clone());
        let doc = Value::Object(doc);
        for (ptr, expect) in &self.header_checks {
            Self::judge(
                &mut self.expectations,
                ptr,
                expect,
                at(&doc, ptr),
                None,
                None,
            )?;
        }
        if let Some(rev) = &self.revision {
            let want = Value::Array(vec![Value::String(rev.clone())]);
            if after.alembic_version != want {
                self.revision_findings.push(Finding {
                    rule: "revision".into(),
                    message: if after.alembic_version.is_null() {
                        "no alembic_version table after the downgrade".into()
                    } else {
                        "alembic is not at the expected revision".into()
                    },
                    table: None,
                    key: None,
                    path: "/alembic_version".into(),
                    before: None,
                    expected: Some(want),
                    actual: Some(after.alembic_version.clone()),
                })?;
            }
        }
        Ok(())
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        _before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(checks) = self.pending.remove(&(table.to_string(), key.to_string())) {
            for (ptr, inner, expect) in checks {
                let actual = after.and_then(|a| at(a, &inner));
                Self::judge(
                    &mut self.expectations,
                    &ptr,
                    &expect,
                    actual,
                    Some(table),
                    Some(key),
                )?;
            }
        }
        Ok(())
    }
}

// -------------------------------------------------------------------------------- round-trip

/// A round trip's two ends (the state the dump started from, and the state after the
/// migration went down and up, or up and down): every operation is a finding, except those
/// inside a declared column (`schema.table.column`) or at a volatile path.
pub struct RoundTrip {
    name: String,
    ignore: BTreeSet<(String, String)>,
    volatile: Volatile,
    findings: Findings,
    ignored_ops: u64,
}

impl RoundTrip {
    /// `name` says which round trip this is, for the report.
    pub fn new(name: &str, ignore_columns: &[(String, String)], volatile: &Volatile) -> Self {
        RoundTrip {
            name: name.to_string(),
            ignore: ignore_columns.iter().cloned().collect(),
            volatile: volatile.clone(),
            findings: Findings::default(),
            ignored_ops: 0,
        }
    }

    /// The other direction could not run on the result (e.g. the re-upgrade fails on the
    /// downgraded database): one finding that says why.
    pub fn failed(&mut self, why: &str) -> Result<()> {
        self.findings.push(Finding::plain(
            "round-trip",
            format!("the migration cannot go up again from the downgraded database: {why}"),
            "",
        ))
    }

    pub fn finish(self) -> CheckResult {
        let ignored = if self.ignored_ops > 0 {
            format!(
                ", {} operations in ignored columns or volatile paths",
                self.ignored_ops
            )
        } else {
            String::new()
        };
        CheckResult::new(
            "round-trip",
            format!("{}{ignored}", self.name),
            self.findings,
        )
    }
}

impl DiffSink for RoundTrip {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let tokens: Vec<String> = op
            .path()
            .tokens()
            .map(|t| t.decoded().into_owned())
            .collect();
        let ignored_column = matches!(tokens.as_slice(),
            [data, table, _key, column, ..]
                if data == "data" && self.ignore.contains(&(table.clone(), column.clone())));
        if ignored_column || self.volatile.covers(&tokens) {
            self.ignored_ops += 1;
            return Ok(());
        }
        self.findings.push(Finding::about_op(
            "round-trip",
            "differs from the original",
            op,
            false,
        ))
    }
}

// ---------------------------------------------------------------------------------- data-lost

/// What a loss is: a table gone with its rows, a column gone with its values, or a column
/// whose type narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossKind {
    Table,
    Column,
    Narrowed { from: String, to: String },
}

/// One table or column whose data the downgrade dropped (or may have cut, for a narrowed
/// type): `count` rows (table) or non-NULL values (column) before the downgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// `schema.table` or `schema.table.column`: what `allow_lost` names.
    pub name: String,
    /// `schema.table`, as the snapshot names it.
    pub table: String,
    pub column: Option<String>,
    pub kind: LossKind,
    pub count: u64,
    /// Named in `allow_lost`.
    pub acknowledged: bool,
}

impl Loss {
    /// "table dropped with 342 rows", "column dropped with 12 non-NULL values", ...
    pub fn describe(&self) -> String {
        let n = self.count;
        let (rows, values) = (plural(n, "row"), plural(n, "non-NULL value"));
        match &self.kind {
            LossKind::Table => format!("table dropped with {rows}"),
            LossKind::Column => format!("column dropped with {values}"),
            LossKind::Narrowed { from, to } => {
                format!("column type narrowed from {from} to {to}, with {values}")
            }
        }
    }

    /// Where the loss shows in the snapshot: the table's or the column's schema entry.
    pub fn pointer(&self) -> String {
        let mut p = PointerBuf::from_tokens(["schema", "tables", self.table.as_str()]);
        if let Some(column) = &self.column {
            p.push_back("columns");
            p.push_back(column.as_str());
        }
        p.to_string()
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Does a column's type change from `from` to `to` keep every value (`format_type` names)?
/// Known widenings only; any other change counts as narrowing, so that a lossy change is never
/// passed for lack of knowledge.
pub fn widens(from: &str, to: &str) -> bool {
    fn args(t: &str, name: &str) -> Option<Vec<u64>> {
        let inner = t.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')?;
        inner.split(',').map(|a| a.trim().parse().ok()).collect()
    }
    const INTS: [&str; 3] = ["smallint", "integer", "bigint"];
    let int = |t: &str| INTS.iter().position(|i| *i == t);
    if from == to {
        return true;
    }
    if let (Some(a), Some(b)) = (int(from), int(to)) {
        return b >= a;
    }
    if int(from).is_some() && to == "numeric" {
        return true;
    }
    if matches!(from, "smallint" | "integer" | "real") && to == "double precision" {
        return true;
    }
    if from == "jsonb" && to == "json" {
        return true;
    }
    let unbounded_text = |t: &str| t == "text" || t == "character varying";
    if (unbounded_text(from) || args(from, "character varying").is_some()) && unbounded_text(to) {
        return true;
    }
    if let (Some(a), Some(b)) = (
        args(from, "character varying"),
        args(to, "character varying"),
    ) {
        return b[0] >= a[0];
    }
    if from.starts_with("numeric(") && to == "numeric" {
        return true;
    }
    if let (Some(a), Some(b)) = (args(from, "numeric"), args(to, "numeric")) {
        let scale = |v: &[u64]| v.get(1).copied().unwrap_or(0);
        let (sa, sb) = (scale(&a), scale(&b));
        return sb >= sa && b[0].saturating_sub(sb) >= a[0].saturating_sub(sa);
    }
    false
}

/// The tables and columns that exist before the downgrade and not after (or narrowed), from
/// the two schema headers. Counts are filled in later, from the before-copy.
#[derive(Debug, Default)]
pub struct SchemaLoss {
    pub candidates: Vec<Loss>,
}

impl DiffSink for SchemaLoss {
    fn header(&mut self, before: &Header, after: &Header) -> Result<()> {
        let tables = |h: &Header| h.schema.get("tables").and_then(Value::as_object).cloned();
        let (Some(before), after) = (tables(before), tables(after).unwrap_or_default()) else {
            return Ok(());
        };
        let candidate = |table: &str, column: Option<&str>, kind| Loss {
            name: match column {
                Some(c) => format!("{table}.{c}"),
                None => table.to_string(),
            },
            table: table.to_string(),
            column: column.map(str::to_string),
            kind,
            count: 0,
            acknowledged: false,
        };
        let columns = |t: &Value| t.get("columns").and_then(Value::as_object).cloned();
        for (table, b) in &before {
            let Some(a) = after.get(table) else {
                self.candidates
                    .push(candidate(table, None, LossKind::Table));
                continue;
            };
            let (cb, ca) = (
                columns(b).unwrap_or_default(),
                columns(a).unwrap_or_default(),
            );
            for (column, def) in &cb {
                let type_of = |d: &Value| d.get("type").and_then(Value::as_str).map(String::from);
                let kind = match ca.get(column) {
                    None => LossKind::Column,
                    Some(after_def) => match (type_of(def), type_of(after_def)) {
                        (Some(from), Some(to)) if !widens(&from, &to) => {
                            LossKind::Narrowed { from, to }
                        }
                        _ => continue,
                    },
                };
                self.candidates
                    .push(candidate(table, Some(column.as_str()), kind));
            }
        }
        Ok(())
    }
}

/// The built-in `data-lost` rule: every loss with data is a finding, unless `allow_lost` names
/// it (then it is reported as acknowledged). Losses of nothing (an empty table, an all-NULL
/// column) are not findings. With `note_unused`, an `allow_lost` name that matches no loss is
/// noted (a walk notes them once, over all its steps).
pub fn data_lost(
    losses: &mut [Loss],
    allow_lost: &[String],
    note_unused: bool,
) -> Result<CheckResult> {
    let mut findings = Findings::default();
    let mut notes = Vec::new();
    for loss in losses.iter_mut().filter(|l| l.count > 0) {
        loss.acknowledged = allow_lost.contains(&loss.name);
        if loss.acknowledged {
            notes.push(format!(
                "acknowledged (allow_lost): {}: {}",
                loss.name,
                loss.describe()
            ));
            continue;
        }
        findings.push(Finding {
            table: Some(loss.table.clone()),
            ..Finding::plain("data-lost", loss.describe(), loss.pointer())
        })?;
    }
    for name in allow_lost.iter().filter(|_| note_unused) {
        if !losses.iter().any(|l| l.count > 0 && &l.name == name) {
            notes.push(format!(
                "allow_lost names {name}, which lost nothing in this run"
            ));
        }
    }
    let mut result = CheckResult::new(
        "data-lost",
        "rule data-lost (no table or column that held data is dropped or narrowed)".into(),
        findings,
    );
    result.notes = notes;
    Ok(result)
}

// ------------------------------------------------------------------------------------- no-op

/// The `no-op` check: a downgrade that changed nothing at all (0 operations) proves nothing.
pub fn no_op(ops: u64, allow: bool) -> Result<Option<CheckResult>> {
    if ops > 0 {
        return Ok(None);
    }
    let mut findings = Findings::default();
    let name = "no-op: the downgrade changed something".to_string();
    if allow {
        let mut result = CheckResult::new("no-op", name, findings);
        result.notes = vec!["it changed nothing (0 operations); allowed by allow_noop".into()];
        return Ok(Some(result));
    }
    findings.push(Finding::plain(
        "no-op",
        "the downgrade connected but changed nothing (0 operations): nothing was rolled back; if that is intended, set allow_noop = true",
        "",
    ))?;
    Ok(Some(CheckResult::new("no-op", name, findings)))
}

/// The revision did not move although one is known and none was expected: a finding of the
/// `revision` check.
pub fn revision_unmoved(revision: &Value) -> Result<CheckResult> {
    let mut findings = Findings::default();
    findings.push(Finding {
        rule: "revision".into(),
        message: "the downgrade left the revision where it was".into(),
        table: None,
        key: None,
        path: "/alembic_version".into(),
        before: Some(revision.clone()),
        expected: None,
        actual: Some(revision.clone()),
    })?;
    Ok(CheckResult::new(
        "revision",
        "revision: the downgrade moves alembic_version".into(),
        findings,
    ))
}

#[cfg(test)]
mod tests {
    use jsonptr::PointerBuf;
    use serde_json::{Value, json};

    use super::*;
    use crate::diff::testing::{doc, run};
    use crate::expect::CheckResult;

    /// The findings of a result as (path, message).
    fn found(mut result: CheckResult) -> Vec<(String, String)> {
        let mut out = Vec::new();
        result
            .findings
            .for_each(|f| {
                out.push((f.path.clone(), f.message.clone()));
                Ok(())
            })
            .unwrap();
        out
    }

    fn data(d: Value) -> Value {
        doc(json!(["1"]), json!({}), d)
    }

    #[test]
    fn rows_preserved_reports_vanished_rows_but_not_a_dropped_table() {
        let before =
            data(json!({"public.t": {"1": {"a": 1}, "2": {"a": 2}}, "public.u": {"9": {}}}));
        let after = data(json!({"public.t": {"1": {"a": 5}}}));
        let mut rule = RowsPreserved::default();
        run(&before, &after, &mut rule);
        assert_eq!(
            found(rule.finish()),
            [(
                "/data/public.t/2".to_string(),
                "row disappeared".to_string()
            )]
        );
    }

    fn metadata_spec() -> MetadataSpec {
        MetadataSpec {
            id: "metadata-restored".into(),
            table: "public.o".into(),
            metadata: PointerBuf::parse("/d/_m").unwrap(),
            fields: vec![(
                PointerBuf::parse("/step").unwrap(),
                PointerBuf::parse("/step").unwrap(),
            )],
            without_metadata: WithoutMetadata::Unchanged,
            ignore_columns: Vec::new(),
            allow_added_rows: false,
            allow_removed_rows: false,
        }
    }

    #[test]
    fn metadata_restored_holds_each_row_to_its_own_metadata() {
        let before = data(json!({"public.o": {
            "1": {"step": 1, "d": {"_m": {"step": 0}}},
            "2": {"step": 4, "d": {"_m": {"step": 7}}},
            "3": {"step": 2, "d": {}},
        }}));
        // Row 1 (step 0) skipped, the truthiness bug; row 2 restored; row 3 left alone.
        let after = data(json!({"public.o": {
            "1": {"step": 1, "d": {"_m": {"step": 0}}},
            "2": {"step": 7, "d": {}},
            "3": {"step": 2, "d": {}},
        }}));
        let mut rule = MetadataRestored::new(metadata_spec());
        run(&before, &after, &mut rule);
        assert_eq!(
            found(rule.finish().unwrap()),
            [
                (
                    "/data/public.o/1/step".to_string(),
                    "not restored from metadata".to_string()
                ),
                (
                    "/data/public.o/1/d/_m".to_string(),
                    "metadata left in place".to_string()
                ),
            ]
        );
        // A pointer that matches nothing is a finding, not a pass.
        let mut spec = metadata_spec();
        spec.metadata = PointerBuf::parse("/d/_meta").unwrap();
        let mut rule = MetadataRestored::new(spec);
        run(&before, &after, &mut rule);
        let findings = found(rule.finish().unwrap());
        assert!(
            findings[0].1.starts_with("rule matched no rows"),
            "{findings:?}"
        );
    }

    #[test]
    fn after_state_tests_absences_and_the_revision() {
        let before = doc(
            json!(["2"]),
            json!({"tables": {"public.o": {"c": 1}}}),
            json!({}),
        );
        let after = doc(
            json!(["2"]),
            json!({"tables": {"public.o": {"c": 2}}}),
            json!({"public.o": {"1": {"x": true}}}),
        );
        let spec = AfterSpec {
            tests: vec![
                (
                    PointerBuf::parse("/schema/tables/public.o/c").unwrap(),
                    json!(2),
                ),
                (
                    PointerBuf::parse("/data/public.o/1/x").unwrap(),
                    json!(false),
                ),
            ],
            absent: vec![PointerBuf::parse("/schema/tables/public.o/c").unwrap()],
            revision: Some("1".into()),
        };
        let mut rule = AfterState::new(&spec);
        run(&before, &after, &mut rule);
        let results = rule.finish().unwrap();
        let all: Vec<Vec<(String, String)>> = results.into_iter().map(found).collect();
        assert_eq!(
            all,
            [
                vec![
                    (
                        "/schema/tables/public.o/c".to_string(),
                        "should be absent".to_string()
                    ),
                    (
                        "/data/public.o/1/x".to_string(),
                        "test failed: value differs".to_string()
                    ),
                ],
                vec![(
                    "/alembic_version".to_string(),
                    "alembic is not at the expected revision".to_string()
                )],
            ]
        );
    }

    #[test]
    fn round_trip_reports_every_operation_but_ignored_columns_and_volatile_paths() {
        let before = data(json!({"public.t": {"1": {"a": 1, "at": "x", "n": 1}}}));
        let after = data(json!({"public.t": {"1": {"a": 2, "at": "y", "n": 2}}}));
        let volatile = Volatile::parse(&["/data/public.t/*/at".to_string()]).unwrap();
        let ignore = [("public.t".to_string(), "n".to_string())];
        let mut rule = RoundTrip::new("round trip", &ignore, &volatile);
        run(&before, &after, &mut rule);
        let result = rule.finish();
        assert!(
            result
                .name
                .ends_with(", 2 operations in ignored columns or volatile paths")
        );
        assert_eq!(
            found(result),
            [(
                "/data/public.t/1/a".to_string(),
                "differs from the original".to_string()
            )]
        );
    }

    #[test]
    fn schema_loss_finds_dropped_tables_dropped_and_narrowed_columns() {
        let col = |t: &str| json!({"type": t});
        let before = doc(
            Value::Null,
            json!({"tables": {
                "public.gone": {"columns": {"a": col("integer")}},
                "public.t": {"columns": {"kept": col("integer"), "dropped": col("text"),
                    "narrowed": col("bigint"), "widened": col("integer")}},
            }}),
            json!({}),
        );
        let after = doc(
            Value::Null,
            json!({"tables": {
                "public.t": {"columns": {"kept": col("integer"), "narrowed": col("integer"),
                    "widened": col("bigint")}},
            }}),
            json!({}),
        );
        let mut sink = SchemaLoss::default();
        run(&before, &after, &mut sink);
        let got: Vec<(String, LossKind)> = sink
            .candidates
            .into_iter()
            .map(|l| (l.name, l.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("public.gone".to_string(), LossKind::Table),
                ("public.t.dropped".to_string(), LossKind::Column),
                (
                    "public.t.narrowed".to_string(),
                    LossKind::Narrowed {
                        from: "bigint".into(),
                        to: "integer".into()
                    }
                ),
            ]
        );
    }

    fn loss(name: &str, kind: LossKind, count: u64) -> Loss {
        let (table, column) = match kind {
            LossKind::Table => (name.to_string(), None),
            _ => {
                let (t, c) = name.rsplit_once('.').unwrap();
                (t.to_string(), Some(c.to_string()))
            }
        };
        Loss {
            name: name.into(),
            table,
            column,
            kind,
            count,
            acknowledged: false,
        }
    }

    #[test]
    fn data_lost_is_one_finding_per_loss_with_data_unless_acknowledged() {
        let mut losses = vec![
            loss("public.users", LossKind::Table, 342),
            loss("public.empty", LossKind::Table, 0),
            loss("public.t.c", LossKind::Column, 12),
            loss(
                "public.t.n",
                LossKind::Narrowed {
                    from: "bigint".into(),
                    to: "integer".into(),
                },
                3,
            ),
        ];
        let allow = vec!["public.t.c".to_string(), "public.gone".to_string()];
        let mut result = data_lost(&mut losses, &allow, true).unwrap();
        assert!(!result.passed);
        let mut found = Vec::new();
        result
            .findings
            .for_each(|f| {
                found.push((f.path.clone(), f.message.clone()));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            found,
            [
                (
                    "/schema/tables/public.users".to_string(),
                    "table dropped with 342 rows".to_string()
                ),
                (
                    "/schema/tables/public.t/columns/n".to_string(),
                    "column type narrowed from bigint to integer, with 3 non-NULL values"
                        .to_string()
                ),
            ]
        );
        assert_eq!(
            result.notes,
            [
                "acknowledged (allow_lost): public.t.c: column dropped with 12 non-NULL values",
                "allow_lost names public.gone, which lost nothing in this run",
            ]
        );
        assert!(losses[2].acknowledged && !losses[0].acknowledged);
        // Nothing lost, nothing allowed: a pass with nothing to say.
        let result = data_lost(&mut [], &[], true).unwrap();
        assert!(result.passed && result.notes.is_empty());
    }

    #[test]
    fn no_op_fails_only_when_nothing_changed_and_it_is_not_allowed() {
        assert!(no_op(1, false).unwrap().is_none());
        assert!(!no_op(0, false).unwrap().unwrap().passed);
        let allowed = no_op(0, true).unwrap().unwrap();
        assert!(allowed.passed && allowed.notes.len() == 1);
    }

    #[test]
    fn widening_is_known_and_everything_else_narrows() {
        for (from, to) in [
            ("smallint", "integer"),
            ("integer", "bigint"),
            ("integer", "numeric"),
            ("real", "double precision"),
            ("character varying(50)", "character varying(255)"),
            ("character varying(50)", "text"),
            ("text", "character varying"),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric"),
            ("jsonb", "json"),
        ] {
            assert!(widens(from, to), "{from} -> {to}");
        }
        for (from, to) in [
            ("bigint", "integer"),
            ("character varying(255)", "character varying(50)"),
            ("text", "character varying(20)"),
            ("numeric(12,2)", "numeric(10,2)"),
            ("numeric(10,2)", "numeric(10,1)"),
            ("numeric", "numeric(10,2)"),
            ("json", "jsonb"),
            ("timestamp with time zone", "date"),
            ("text", "integer"),
            ("character(3)", "text"),
            ("double precision", "real"),
        ] {
            assert!(!widens(from, to), "{from} -> {to}");
        }
    }
}
