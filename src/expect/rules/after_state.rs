//! `after-state` and `revision`: RFC 6902 `test`s, absences and the revision, judged on the
//! after snapshot as it streams by.

use std::collections::BTreeMap;

use jsonptr::{Pointer, PointerBuf};
use serde_json::{Map, Value};

use super::at;
use crate::diff::DiffSink;
use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};
use crate::snapshot::Header;

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
    /// What the revision is read from, for the check's name (`alembic_version`, ...).
    revision_label: Option<String>,
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
            revision_label: None,
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
                format!(
                    "revision: {} is {rev} after the downgrade",
                    self.revision_label.as_deref().unwrap_or("alembic_version")
                ),
                self.revision_findings,
            ));
        }
        Ok(results)
    }
}

impl AfterState {
    /// `[expect] revision` against the revision the run read after the downgrade (the tool's,
    /// or the user's query; `null`: no bookkeeping table). A Django target is one app's entry
    /// (`shop.0001_initial`, `shop.zero`); any other tool's revision must be exactly `rev`.
    pub fn judge_revision(
        &mut self,
        after: &Value,
        tool: Option<crate::tool::Tool>,
        (path, label): (&str, &str),
    ) -> Result<()> {
        let Some(rev) = &self.revision else {
            return Ok(());
        };
        let list: Option<Vec<String>> = after.as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        });
        let tool = tool.unwrap_or(crate::tool::Tool::Alembic);
        self.revision_label = Some(label.to_string());
        if list.as_ref().is_some_and(|l| tool.at(l, rev)) {
            return Ok(());
        }
        self.revision_findings.push(Finding {
            rule: "revision".into(),
            message: if after.is_null() {
                format!(
                    "no {} table after the downgrade",
                    tool.bookkeeping().first().unwrap_or(&"revision")
                )
            } else {
                format!("{} is not at the expected revision", tool.name())
            },
            table: None,
            key: None,
            path: path.into(),
            before: None,
            expected: Some(Value::Array(vec![Value::String(rev.clone())])),
            actual: Some(after.clone()),
        })?;
        Ok(())
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
