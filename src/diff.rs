//! Before → after as an RFC 6902 JSON Patch, streamed.
//!
//! Two `Source`s in; headers, row pairs and operations out to a `DiffSink`; no I/O of its own. Rows are matched by key
//! in a merge-join of the two key-ordered streams (never by array position), and only the row
//! pair being compared is in memory. Inside a row, `json_patch::diff` does the work.
//!
//! Operation order (part of the output contract): `/alembic_version`, then `/schema`, then
//! `/data` table by table in name order and row by row in key order; within one row or header
//! value, json-patch's own order (object keys sorted). A table on one side only is one
//! `remove /data/T`, or `add /data/T {}` followed by one `add` per row.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use jsonptr::{Pointer, PointerBuf};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::snapshot::{Header, Row, Source};

/// Receives what the diff sees, in order: both headers; then per table, the table, and for each
/// key of either side the row pair followed by that row's operations. Every method defaults to
/// doing nothing, so a sink implements only what it needs.
pub trait DiffSink {
    fn header(&mut self, _before: &Header, _after: &Header) -> Result<()> {
        Ok(())
    }
    /// A table, and whether it exists on each side. Called before its rows.
    fn table(&mut self, _name: &str, _before: bool, _after: bool) -> Result<()> {
        Ok(())
    }
    /// One key's row on each side (`None`: no such row there). Called for every key, changed
    /// or not, and also for the rows of a table present on one side only.
    fn row(
        &mut self,
        _table: &str,
        _key: &str,
        _before: Option<&Value>,
        _after: Option<&Value>,
    ) -> Result<()> {
        Ok(())
    }
    fn op(&mut self, _op: &PatchOperation) -> Result<()> {
        Ok(())
    }
    /// Does this sink need `row` for rows that did not change? If no sink does, equal rows
    /// are skipped without being parsed.
    fn wants_rows(&self, _table: &str) -> bool {
        false
    }
    /// Does this sink need the rows of a table the downgrade never wrote (every row
    /// unchanged, known before reading)? If no sink does, the table is counted, not read.
    fn wants_settled(&self, table: &str) -> bool {
        self.wants_rows(table)
    }
}

/// Sends everything to several sinks, in order.
pub struct Tee<'a>(pub Vec<&'a mut dyn DiffSink>);

impl DiffSink for Tee<'_> {
    fn header(&mut self, before: &Header, after: &Header) -> Result<()> {
        self.0.iter_mut().try_for_each(|s| s.header(before, after))
    }
    fn table(&mut self, name: &str, before: bool, after: bool) -> Result<()> {
        self.0
            .iter_mut()
            .try_for_each(|s| s.table(name, before, after))
    }
    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        self.0
            .iter_mut()
            .try_for_each(|s| s.row(table, key, before, after))
    }
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        self.0.iter_mut().try_for_each(|s| s.op(op))
    }
    fn wants_rows(&self, table: &str) -> bool {
        self.0.iter().any(|s| s.wants_rows(table))
    }
    fn wants_settled(&self, table: &str) -> bool {
        self.0.iter().any(|s| s.wants_settled(table))
    }
}

/// Collects, for reports, the schema operations (`/schema/...`; there are few of them) with
/// the value each replaced or removed, and the revision on both sides.
#[derive(Debug, Default)]
pub struct SchemaChanges {
    pub ops: Vec<PatchOperation>,
    /// Per operation, the value at its path before (`None` for an add).
    pub was: Vec<Option<Value>>,
    /// The revision before and after, as the migration tool reads it (`null`: none known).
    /// Set by the pipeline, which knows the tool (`pipeline::InUse::revision`); the headers'
    /// `alembic_version` is the patch's business only.
    pub revision: (Value, Value),
    before: Value,
}

impl SchemaChanges {
    /// The revision before, as a list (empty: none).
    pub fn revision_before(&self) -> Vec<String> {
        self.revisions().0.unwrap_or_default()
    }

    /// The revision on each side as a list (`None`: no revision table there).
    pub fn revisions(&self) -> (Option<Vec<String>>, Option<Vec<String>>) {
        let list = |v: &Value| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
        };
        (list(&self.revision.0), list(&self.revision.1))
    }

    /// Was a revision recorded before the downgrade, and is it the same after?
    pub fn revision_unmoved(&self) -> bool {
        let (before, after) = &self.revision;
        before.as_array().is_some_and(|v| !v.is_empty()) && before == after
    }
}

impl DiffSink for SchemaChanges {
    fn header(&mut self, before: &Header, _after: &Header) -> Result<()> {
        self.before = serde_json::json!({ "schema": before.schema });
        Ok(())
    }

    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        if op.path().as_str().starts_with("/schema/") {
            self.was.push(match op {
                PatchOperation::Add(_) => None,
                _ => self.before.pointer(op.path().as_str()).cloned(),
            });
            self.ops.push(op.clone());
        }
        Ok(())
    }
}

/// Row counts per table, for reports.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableCounts {
    pub rows_before: u64,
    pub rows_after: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// The table exists before, not after (its rows are not counted as removed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    /// The table exists after, not before (its rows are counted as added).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// Not read: the downgrade never wrote it (README "Untouched tables"); rows counted only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untouched: bool,
    /// Rows of a written table that the downgrade never wrote: equal on both sides, counted
    /// (in `rows_before` and `rows_after` too), not read (README "Untouched rows").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TableCounts {
    /// On both sides, with the same rows.
    pub fn unchanged(&self) -> bool {
        !self.dropped && !self.created && self.changed + self.added + self.removed == 0
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub tables: BTreeMap<String, TableCounts>,
    /// Operations on `/alembic_version`.
    pub revision_ops: u64,
    /// Operations on `/schema`.
    pub schema_ops: u64,
    /// Operations on `/data`.
    pub data_ops: u64,
}

impl Summary {
    pub fn ops(&self) -> u64 {
        self.revision_ops + self.schema_ops + self.data_ops
    }
}

/// Diff two snapshots, sending every operation to `sink`.
pub async fn diff(
    before: &mut impl Source,
    after: &mut impl Source,
    sink: &mut dyn DiffSink,
) -> Result<Summary> {
    let mut summary = headers(before, after, sink).await?;
    tables(before, after, sink, &mut summary).await?;
    Ok(summary)
}

/// The first part of `diff`: both headers to the sink, and the revision's and the schema's
/// operations. After it, the sinks know which tables they read whole (`wants_rows`).
pub async fn headers(
    before: &mut impl Source,
    after: &mut impl Source,
    sink: &mut dyn DiffSink,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let hb = before.header().await?;
    let ha = after.header().await?;
    sink.header(&hb, &ha)?;
    let revision = PointerBuf::from_tokens(["alembic_version"]);
    summary.revision_ops += diff_values(&revision, &hb.alembic_version, &ha.alembic_version, sink)?;
    let schema = PointerBuf::from_tokens(["schema"]);
    summary.schema_ops += diff_values(&schema, &hb.schema, &ha.schema, sink)?;
    Ok(summary)
}

/// The rest of `diff`, after `headers`: the tables' rows.
pub async fn tables(
    before: &mut impl Source,
    after: &mut impl Source,
    sink: &mut dyn DiffSink,
    summary: &mut Summary,
) -> Result<()> {
    let mut tb = before.next_table().await?;
    let mut ta = after.next_table().await?;
    loop {
        let order = match (&tb, &ta) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(b), Some(a)) => b.cmp(a),
        };
        let table = match order {
            Ordering::Less => tb.clone(),
            _ => ta.clone(),
        }
        .expect("one side has a table");
        let counts = summary.tables.entry(table.clone()).or_default();
        let table_path = PointerBuf::from_tokens(["data", table.as_str()]);
        match order {
            Ordering::Less => {
                // Table gone after: one op; rows counted and shown to the row hooks.
                counts.dropped = true;
                sink.table(&table, true, false)?;
                let wanted = sink.wants_rows(&table);
                while let Some((key, text)) = before.next_row().await? {
                    counts.rows_before += 1;
                    if wanted {
                        sink.row(&table, &key, Some(&text.parse(&table, &key)?), None)?;
                    }
                }
                sink.op(&remove(table_path))?;
                summary.data_ops += 1;
                tb = before.next_table().await?;
            }
            Ordering::Greater => {
                counts.created = true;
                sink.table(&table, false, true)?;
                sink.op(&add(table_path.clone(), Value::Object(Map::new())))?;
                summary.data_ops += 1;
                while let Some((key, text)) = after.next_row().await? {
                    let value = text.parse(&table, &key)?;
                    counts.rows_after += 1;
                    counts.added += 1;
                    sink.row(&table, &key, None, Some(&value))?;
                    sink.op(&add(child(&table_path, &key), value))?;
                    summary.data_ops += 1;
                }
                ta = after.next_table().await?;
            }
            Ordering::Equal => {
                sink.table(&table, true, true)?;
                let settled = if sink.wants_settled(&table) {
                    None
                } else {
                    match (before.settled_rows().await?, after.settled_rows().await?) {
                        (Some(b), Some(a)) if a == b => Some(b),
                        _ => None,
                    }
                };
                match settled {
                    Some(rows) => {
                        (counts.rows_before, counts.rows_after) = (rows, rows);
                        counts.untouched = true;
                    }
                    None => {
                        match (before.unread_rows(), after.unread_rows()) {
                            (None, None) => {}
                            (Some(b), Some(a)) if a == b && !sink.wants_rows(&table) => {
                                (counts.rows_before, counts.rows_after) = (a, a);
                                counts.unread = a;
                            }
                            // The caller narrows both sides alike, and only tables no sink
                            // reads whole (`pipeline::narrow`): anything else is a bug, and
                            // no verdict may rest on it.
                            (b, a) => {
                                return Err(Error::Run(format!(
                                    "internal error: {table} read in part ({b:?} rows left unread before, {a:?} after); please report it"
                                )));
                            }
                        }
                        summary.data_ops +=
                            merge_rows(&table, &table_path, before, after, counts, sink).await?
                    }
                }
                tb = before.next_table().await?;
                ta = after.next_table().await?;
            }
        }
    }
    Ok(())
}

/// Merge-join one table's rows by key.
async fn merge_rows(
    table: &str,
    table_path: &Pointer,
    before: &mut impl Source,
    after: &mut impl Source,
    counts: &mut TableCounts,
    sink: &mut dyn DiffSink,
) -> Result<u64> {
    let mut ops = 0;
    let wanted = sink.wants_rows(table);
    let mut rb: Option<Row> = before.next_row().await?;
    let mut ra: Option<Row> = after.next_row().await?;
    counts.rows_before += rb.is_some() as u64;
    counts.rows_after += ra.is_some() as u64;
    loop {
        let order = match (&rb, &ra) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((kb, _)), Some((ka, _))) => kb.cmp(ka),
        };
        if order != Ordering::Greater {
            let (key, tb) = rb.take().expect("before row present");
            if order == Ordering::Less {
                let vb = tb.parse(table, &key)?;
                counts.removed += 1;
                sink.row(table, &key, Some(&vb), None)?;
                sink.op(&remove(child(table_path, &key)))?;
                ops += 1;
            } else {
                let (_, ta) = ra.take().expect("after row present");
                // Equal text is equal data: nothing to parse unless a rule reads the row.
                if tb != ta || wanted {
                    let vb = tb.parse(table, &key)?;
                    let va = ta.parse(table, &key)?;
                    sink.row(table, &key, Some(&vb), Some(&va))?;
                    let n = diff_values(&child(table_path, &key), &vb, &va, sink)?;
                    counts.changed += (n > 0) as u64;
                    ops += n;
                }
            }
            rb = before.next_row().await?;
            counts.rows_before += rb.is_some() as u64;
        }
        if order == Ordering::Greater {
            let (key, ta) = ra.take().expect("after row present");
            let va = ta.parse(table, &key)?;
            counts.added += 1;
            sink.row(table, &key, None, Some(&va))?;
            sink.op(&add(child(table_path, &key), va))?;
            ops += 1;
        }
        if order != Ordering::Less && ra.is_none() {
            ra = after.next_row().await?;
            counts.rows_after += ra.is_some() as u64;
        }
    }
    Ok(ops)
}

/// `json_patch::diff` of two values, paths prefixed; returns the number of operations.
pub fn diff_values(
    prefix: &Pointer,
    before: &Value,
    after: &Value,
    sink: &mut dyn DiffSink,
) -> Result<u64> {
    if before == after {
        return Ok(0);
    }
    let patch = json_patch::diff(before, after);
    let n = patch.0.len() as u64;
    for op in patch.0 {
        sink.op(&prefixed(prefix, op))?;
    }
    Ok(n)
}

/// The operation with `prefix` before its paths; values are moved, not cloned.
fn prefixed(prefix: &Pointer, op: PatchOperation) -> PatchOperation {
    let p = |path: &Pointer| prefix.concat(path);
    match op {
        PatchOperation::Add(o) => add(p(&o.path), o.value),
        PatchOperation::Remove(o) => remove(p(&o.path)),
        PatchOperation::Replace(o) => PatchOperation::Replace(json_patch::ReplaceOperation {
            path: p(&o.path),
            value: o.value,
        }),
        PatchOperation::Move(o) => PatchOperation::Move(json_patch::MoveOperation {
            from: p(&o.from),
            path: p(&o.path),
        }),
        PatchOperation::Copy(o) => PatchOperation::Copy(json_patch::CopyOperation {
            from: p(&o.from),
            path: p(&o.path),
        }),
        PatchOperation::Test(o) => PatchOperation::Test(json_patch::TestOperation {
            path: p(&o.path),
            value: o.value,
        }),
    }
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}

/// `parent` plus one token (RFC 6901 escaping of `~` and `/` is done by jsonptr).
fn child(parent: &Pointer, token: &str) -> PointerBuf {
    let mut path = parent.to_buf();
    path.push_back(token);
    path
}

/// The diff boundary for unit tests: two in-memory snapshots in, the summary and every
/// operation out, each sink of the caller fed on the way.
#[cfg(test)]
pub(crate) mod testing {
    use json_patch::PatchOperation;
    use serde_json::Value;

    use super::{DiffSink, Summary, Tee};
    use crate::error::Result;
    use crate::snapshot::mem::MemSource;

    #[derive(Default)]
    pub struct Ops(pub Vec<PatchOperation>);

    impl DiffSink for Ops {
        fn op(&mut self, op: &PatchOperation) -> Result<()> {
            self.0.push(op.clone());
            Ok(())
        }
    }

    /// Diff `before` → `after` (snapshot-shaped documents) into `sink`.
    pub fn run(
        before: &Value,
        after: &Value,
        sink: &mut dyn DiffSink,
    ) -> (Summary, Vec<PatchOperation>) {
        let mut ops = Ops::default();
        let summary = {
            let mut tee = Tee(vec![&mut ops, sink]);
            let (mut b, mut a) = (MemSource::new(before), MemSource::new(after));
            let work = super::diff(&mut b, &mut a, &mut tee);
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(work)
                .expect("the diff of two in-memory snapshots")
        };
        (summary, ops.0)
    }

    /// The snapshot as one JSON document: what the patch applies to.
    pub fn doc(alembic: Value, schema: Value, data: Value) -> Value {
        serde_json::json!({"alembic_version": alembic, "schema": schema, "data": data})
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::testing::{doc, run};

    struct Nothing;
    impl super::DiffSink for Nothing {}

    fn ops_text(ops: &[json_patch::PatchOperation]) -> Vec<String> {
        ops.iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect()
    }

    #[test]
    fn rows_are_merge_joined_by_key_in_byte_order_and_counted() {
        let before = doc(
            json!(["b"]),
            json!({}),
            json!({
                "public.t": {"1": {"a": 1}, "10": {"a": 10}, "2": {"a": 2}, "3": {"a": 3}},
                "public.gone": {"x": {"v": true}},
            }),
        );
        let after = doc(
            json!(["a"]),
            json!({}),
            json!({
                "public.t": {"1": {"a": 1}, "10": {"a": 10}, "2": {"a": 20}, "4": {"a": 4}},
                "public.new": {"y": {"v": null}},
            }),
        );
        let (summary, ops) = run(&before, &after, &mut Nothing);
        assert_eq!(
            ops_text(&ops),
            [
                r#"{"op":"replace","path":"/alembic_version/0","value":"a"}"#,
                r#"{"op":"remove","path":"/data/public.gone"}"#,
                r#"{"op":"add","path":"/data/public.new","value":{}}"#,
                r#"{"op":"add","path":"/data/public.new/y","value":{"v":null}}"#,
                r#"{"op":"replace","path":"/data/public.t/2/a","value":20}"#,
                r#"{"op":"remove","path":"/data/public.t/3"}"#,
                r#"{"op":"add","path":"/data/public.t/4","value":{"a":4}}"#,
            ]
        );
        let t = &summary.tables["public.t"];
        assert_eq!(
            (t.rows_before, t.rows_after, t.changed, t.added, t.removed),
            (4, 4, 1, 1, 1)
        );
        assert!(summary.tables["public.gone"].dropped);
        assert_eq!(summary.tables["public.gone"].rows_before, 1);
        assert!(summary.tables["public.new"].created);
        assert_eq!(
            (summary.revision_ops, summary.schema_ops, summary.data_ops),
            (1, 0, 6)
        );
    }

    /// Snapshot documents: a few tables, a few keys, small rows of mixed JSON.
    fn snapshot() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            "[a-c/~]{0,3}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-c~/]{1,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let row = prop::collection::btree_map("[xyz]", value, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let rows = prop::collection::btree_map("(1|2|10|a/b|~0)", row, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let data = prop::collection::btree_map("public\\.(s|t|u)", rows, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let alembic = prop_oneof![
            Just(Value::Null),
            prop::collection::vec("[ab]", 0..2).prop_map(Value::from)
        ];
        let schema = prop::collection::btree_map("[pq]", any::<bool>().prop_map(Value::from), 0..2)
            .prop_map(|m| json!({ "tables": Value::Object(m.into_iter().collect()) }));
        (alembic, schema, data).prop_map(|(a, s, d)| doc(a, s, d))
    }

    proptest! {
        /// The output contract: applying the emitted patch to the before document gives the
        /// after document, whatever the two are.
        #[test]
        fn the_patch_turns_before_into_after(before in snapshot(), after in snapshot()) {
            let (summary, ops) = run(&before, &after, &mut Nothing);
            let mut patched = before.clone();
            json_patch::patch(&mut patched, &ops).unwrap();
            prop_assert_eq!(patched, after);
            prop_assert_eq!(summary.ops(), ops.len() as u64);
        }
    }
}
