//! `new-shape`: rows the downgrade left in the migration's new shape.
//!
//! No rule per key: both shapes are learned from the data. For every `json`/`jsonb` column, the
//! values the downgrade rewrote teach two shapes (each object key and array element, by path,
//! with the JSON types seen there): their values after the downgrade are the **old** shape,
//! their values before it the **new** one. A value the downgrade left untouched is "left in the
//! new shape" where it has a key (or a value type) that the new shape has and the old one does
//! not: something the downgrade rewrote away wherever it worked, still here. A key neither shape
//! has is not judged: the downgrade says nothing about it (a log column whose keys differ per
//! action by design keeps all of them). A column the downgrade never rewrote teaches nothing
//! and is not checked.
//!
//! `null` fits any type (a NULL column, or `"age": null`): only a key can be out of place.
//!
//! A row found in the new shape also gets a finding for each scalar column the downgrade
//! rewrote on at least half the rows it restored but not on this one (`current_step`
//! semantics: the number kept its 9-state meaning).
//!
//! Memory: the learned shapes are sets of paths. Untouched values already inside the old shape
//! learned so far are settled at once (it only grows, and nothing inside it is ever judged);
//! the rest wait in an anonymous temp file and are judged when the table ends, against both
//! whole shapes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use jsonptr::PointerBuf;
use serde_json::{Map, Value, json};

use super::{CheckResult, Finding, Findings, Severity};
use crate::diff::DiffSink;
use crate::error::{Context, Result};
use crate::snapshot::Header;

pub const RULE: &str = "new-shape";

/// JSON type bits.
const NULL: u8 = 1;
const BOOL: u8 = 2;
const NUMBER: u8 = 4;
const STRING: u8 = 8;
const ARRAY: u8 = 16;
const OBJECT: u8 = 32;

fn type_bit(v: &Value) -> u8 {
    match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOL,
        Value::Number(_) => NUMBER,
        Value::String(_) => STRING,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
    }
}

fn type_names(bits: u8) -> String {
    let names = ["null", "boolean", "number", "string", "array", "object"];
    let mut out: Vec<&str> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if bits & (1 << i) != 0 {
            out.push(name);
        }
    }
    out.join(" or ")
}

/// Shape paths: object keys by name (`/step_1/goal`), array elements as `/[]`.
type Shape = HashMap<String, u8>;

/// `path` plus one object key, RFC 6901-escaped (the escaping allocates only when needed).
fn push_key(path: &mut String, key: &str) {
    path.push('/');
    if key.contains(['~', '/']) {
        path.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        path.push_str(key);
    }
}

/// Learn `v` at `path` (a buffer, restored on return): every row the downgrade rewrote passes
/// here, so known paths cost no allocation (scripts/bench).
fn learn(shape: &mut Shape, path: &mut String, v: &Value) {
    match shape.get_mut(path.as_str()) {
        Some(bits) => *bits |= type_bit(v),
        None => {
            shape.insert(path.clone(), type_bit(v));
        }
    }
    let len = path.len();
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                push_key(path, k);
                learn(shape, path, child);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            path.push_str("/[]");
            for child in items {
                learn(shape, path, child);
            }
            path.truncate(len);
        }
        _ => {}
    }
}

/// What in `v` is in the new shape and not in the old: (concrete pointer inside the value,
/// what is wrong). `path` is the shape path of `v` (a buffer, restored on return). Without a
/// new shape (`None`), anything outside the old one counts (the settling test).
fn outside(
    (old, new): (&Shape, Option<&Shape>),
    path: &mut String,
    at: &mut PointerBuf,
    v: &Value,
    out: &mut Vec<Miss>,
) {
    // Does the new shape have this path (with one of these types: `Some(bits)`)?
    let rewritten_away = |bits: Option<u8>| {
        new.is_none_or(|n| {
            n.get(path.as_str())
                .is_some_and(|b| bits.is_none_or(|t| b & t != 0))
        })
    };
    let Some(&bits) = old.get(path.as_str()) else {
        // A key the old shape lacks: the new shape's if the downgrade removed it elsewhere,
        // else one the downgrade says nothing about (not judged, nor what is under it).
        if rewritten_away(None) {
            out.push(Miss {
                at: at.clone(),
                message: "key not in the old shape".into(),
                value: v.clone(),
            });
        }
        return;
    };
    // null is "no value", in any shape: only its key can be out of place.
    if bits & type_bit(v) == 0 && !v.is_null() {
        if !rewritten_away(Some(type_bit(v))) {
            return;
        }
        out.push(Miss {
            at: at.clone(),
            message: format!(
                "{} where the old shape has {}",
                type_names(type_bit(v)),
                type_names(bits)
            ),
            value: v.clone(),
        });
        return;
    }
    let len = path.len();
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push_back(k.as_str());
                push_key(path, k);
                outside((old, new), path, at, child, out);
                path.truncate(len);
                at.pop_back();
            }
        }
        Value::Array(items) => {
            path.push_str("/[]");
            for (i, child) in items.iter().enumerate() {
                at.push_back(i);
                outside((old, new), path, at, child, out);
                at.pop_back();
            }
            path.truncate(len);
        }
        _ => {}
    }
}

/// Inside the old shape learned so far? (Nothing learned yet: not known.)
fn fits(shape: Option<&Learned>, v: &Value) -> bool {
    shape.is_some_and(|l| misses(&l.old, None, v).is_empty())
}

/// Everything in the column value `v` that is in the `new` shape but outside the `old` one
/// (with no `new`: everything outside `old`).
fn misses(old: &Shape, new: Option<&Shape>, v: &Value) -> Vec<Miss> {
    let mut out = Vec::new();
    outside(
        (old, new),
        &mut String::new(),
        &mut PointerBuf::new(),
        v,
        &mut out,
    );
    out
}

/// One json column's two shapes: after the downgrade (old) and before it (new), from the
/// values it rewrote.
#[derive(Default)]
struct Learned {
    old: Shape,
    new: Shape,
}

struct Miss {
    at: PointerBuf,
    message: String,
    value: Value,
}

/// Per table: what was learned and counted.
#[derive(Default)]
struct TableShape {
    json_columns: BTreeSet<String>,
    /// Learned shapes per json column (only columns the downgrade rewrote somewhere).
    learned: BTreeMap<String, Learned>,
    /// Rows where the downgrade rewrote some json column.
    restored: u64,
    /// Scalar column → rows (among `restored`) where the downgrade changed it.
    rewritten: BTreeMap<String, u64>,
    rows: u64,
    flagged: u64,
}

pub struct NewShape {
    severity: Severity,
    tables: BTreeMap<String, TableShape>,
    findings: Findings,
    /// The current table's rows waiting for its whole shape: one JSON line each (key, row,
    /// changed columns).
    waiting: Option<(String, BufWriter<std::fs::File>)>,
}

impl NewShape {
    pub fn new(severity: Severity) -> Self {
        NewShape {
            severity,
            tables: BTreeMap::new(),
            findings: Findings::default(),
            waiting: None,
        }
    }

    fn wait(&mut self, table: &str, key: &str, row: &Value, changed: &[&String]) -> Result<()> {
        if self.waiting.is_none() {
            let file = BufWriter::new(
                tempfile::tempfile().context("keeping rows for the new-shape rule")?,
            );
            self.waiting = Some((table.to_string(), file));
        }
        let (_, out) = self.waiting.as_mut().expect("created above");
        let line = json!({"k": key, "r": row, "c": changed});
        serde_json::to_writer(&mut *out, &line).expect("JSON values serialize");
        out.write_all(b"\n")
            .context("keeping rows for the new-shape rule")
    }

    /// The table's shape is complete: judge its waiting rows.
    fn end_table(&mut self) -> Result<()> {
        let Some((table, waiting)) = self.waiting.take() else {
            return Ok(());
        };
        let t = self.tables.get_mut(&table).expect("table seen");
        if t.learned.is_empty() {
            return Ok(());
        }
        let mut file = waiting
            .into_inner()
            .map_err(|e| e.into_error())
            .context("reading rows kept for the new-shape rule")?;
        file.rewind()
            .context("reading rows kept for the new-shape rule")?;
        for line in BufReader::new(file).lines() {
            let line: Value =
                serde_json::from_str(&line.context("reading rows kept for the new-shape rule")?)
                    .expect("ours");
            let key = line["k"].as_str().expect("ours");
            let changed: BTreeSet<&str> = line["c"]
                .as_array()
                .expect("ours")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            judge(t, &table, key, &line["r"], &changed, &mut self.findings)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<CheckResult> {
        self.end_table()?;
        let mut notes = Vec::new();
        for (name, t) in &self.tables {
            if t.learned.is_empty() {
                continue;
            }
            let columns: Vec<&str> = t.learned.keys().map(String::as_str).collect();
            notes.push(format!(
                "{name}: {} of {} rows left in the new shape (old shape of {} learned from {} rows the downgrade rewrote)",
                t.flagged,
                t.rows,
                columns.join(", "),
                t.restored
            ));
        }
        let name = format!(
            "rule {RULE} (rows the downgrade left in the new shape){}",
            match self.severity {
                Severity::Warning => ", a warning (--strict fails on it)",
                Severity::Error => "",
            }
        );
        let mut result = CheckResult::new(RULE, name, self.findings);
        result.severity = self.severity;
        result.notes = notes;
        Ok(result)
    }
}

/// Judge one row whose json columns the downgrade did not rewrite.
fn judge(
    t: &mut TableShape,
    table: &str,
    key: &str,
    row: &Value,
    changed: &BTreeSet<&str>,
    findings: &mut Findings,
) -> Result<()> {
    let Some(cols) = row.as_object() else {
        return Ok(());
    };
    let mut flagged = false;
    for (col, shape) in &t.learned {
        let Some(v) = cols.get(col).filter(|_| !changed.contains(col.as_str())) else {
            continue;
        };
        for miss in misses(&shape.old, Some(&shape.new), v) {
            flagged = true;
            let mut path = PointerBuf::from_tokens(["data", table, key, col.as_str()]);
            path.append(&miss.at);
            findings.push(Finding {
                rule: RULE.into(),
                message: format!("left in the new shape: {}", miss.message),
                table: Some(table.into()),
                key: Some(key.into()),
                path: path.to_string(),
                // Untouched by the downgrade: before is what is there now.
                before: Some(miss.value.clone()),
                expected: None,
                actual: Some(miss.value),
            })?;
        }
    }
    if !flagged {
        return Ok(());
    }
    t.flagged += 1;
    for (col, n) in &t.rewritten {
        let half = t.restored.div_ceil(2);
        if *n >= half
            && !changed.contains(col.as_str())
            && let Some(v) = cols.get(col)
        {
            findings.push(Finding {
                rule: RULE.into(),
                message: format!(
                    "left in the new shape: not rewritten here, but on {n} of {} restored rows",
                    t.restored
                ),
                table: Some(table.into()),
                key: Some(key.into()),
                path: PointerBuf::from_tokens(["data", table, key, col.as_str()]).to_string(),
                // Untouched by the downgrade: before is what is there now.
                before: Some(v.clone()),
                expected: None,
                actual: Some(v.clone()),
            })?;
        }
    }
    Ok(())
}

/// `json`/`jsonb` columns of each table in a snapshot header's schema.
fn json_columns(schema: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let Some(tables) = schema.get("tables").and_then(Value::as_object) else {
        return out;
    };
    for (name, table) in tables {
        let cols: BTreeSet<String> = table
            .get("columns")
            .and_then(Value::as_object)
            .map(|c| {
                c.iter()
                    .filter(|(_, def)| matches!(def["type"].as_str(), Some("json" | "jsonb")))
                    .map(|(col, _)| col.clone())
                    .collect()
            })
            .unwrap_or_default();
        if !cols.is_empty() {
            out.insert(name.clone(), cols);
        }
    }
    out
}

impl DiffSink for NewShape {
    fn header(&mut self, _before: &Header, after: &Header) -> Result<()> {
        for (name, cols) in json_columns(&after.schema) {
            self.tables.entry(name).or_default().json_columns = cols;
        }
        Ok(())
    }

    fn wants_rows(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// A table the downgrade never wrote teaches no shape, so nothing in it is judged.
    fn wants_settled(&self, _table: &str) -> bool {
        false
    }

    fn table(&mut self, _name: &str, _before: bool, _after: bool) -> Result<()> {
        self.end_table()
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let Some(t) = self.tables.get_mut(table) else {
            return Ok(());
        };
        let Some(a) = after.and_then(Value::as_object) else {
            return Ok(());
        };
        t.rows += 1;
        let empty = Map::new();
        let b = before.and_then(Value::as_object).unwrap_or(&empty);
        let changed: Vec<&String> = a
            .iter()
            .filter(|(col, va)| before.is_none() || b.get(*col) != Some(*va))
            .map(|(col, _)| col)
            .collect();
        let rewrote_json = changed.iter().any(|c| t.json_columns.contains(*c));
        if rewrote_json {
            t.restored += 1;
            for col in &changed {
                if t.json_columns.contains(*col) {
                    let shapes = t.learned.entry((*col).clone()).or_default();
                    learn(&mut shapes.old, &mut String::new(), &a[*col]);
                    if let Some(was) = b.get(*col) {
                        learn(&mut shapes.new, &mut String::new(), was);
                    }
                } else {
                    *t.rewritten.entry((*col).clone()).or_default() += 1;
                }
            }
        }
        // Untouched json values already inside the shape stay inside it: settled now.
        let settled = t
            .json_columns
            .iter()
            .filter(|c| !changed.contains(c))
            .all(|c| a.get(c).is_none_or(|v| fits(t.learned.get(c), v)));
        if !settled {
            let row = Value::Object(a.clone());
            self.wait(table, key, &row, &changed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn misses(shape: &Shape, v: &Value) -> Vec<(String, String)> {
        super::misses(shape, None, v)
            .into_iter()
            .map(|m| (m.at.to_string(), m.message))
            .collect()
    }

    #[test]
    fn only_what_the_downgrade_rewrote_away_is_the_new_shape() {
        // A log column: the downgrade renamed page_title back to title in publish entries.
        let (mut old, mut new) = (Shape::new(), Shape::new());
        learn(
            &mut new,
            &mut String::new(),
            &json!({"page": 1, "page_title": "x", "n": "1"}),
        );
        learn(
            &mut old,
            &mut String::new(),
            &json!({"page": 1, "title": "x", "n": 1}),
        );
        let found = |v: Value| -> Vec<(String, String)> {
            super::misses(&old, Some(&new), &v)
                .into_iter()
                .map(|m| (m.at.to_string(), m.message))
                .collect()
        };
        // Other actions' keys: nothing the downgrade touched, nothing to say.
        assert!(found(json!({"user": "ada", "ip": {"v4": "10.0.0.1"}})).is_empty());
        // A publish entry the downgrade missed: its page_title is the new shape.
        assert_eq!(
            found(json!({"page": 2, "page_title": "y", "n": "2"})),
            [
                (
                    "/n".to_string(),
                    "string where the old shape has number".to_string()
                ),
                (
                    "/page_title".to_string(),
                    "key not in the old shape".to_string()
                ),
            ]
        );
        // A type the downgrade never rewrote away is not judged either.
        assert!(found(json!({"page": "3"})).is_empty());
    }

    #[test]
    fn shape_is_keys_and_types_by_path_with_array_elements_merged() {
        let mut shape = Shape::new();
        let v = json!({"a/b": {"n": 1}, "list": [{"x": "s"}, {"y": null}]});
        learn(&mut shape, &mut String::new(), &v);
        learn(&mut shape, &mut String::new(), &json!({"a/b": {"n": null}}));
        assert!(
            misses(
                &shape,
                &json!({"a/b": {"n": 2}, "list": [{"y": null, "x": "t"}]})
            )
            .is_empty()
        );
        assert_eq!(
            misses(
                &shape,
                &json!({"a/b": {"n": "2", "m": 1}, "list": [{}, {"z": 1}]})
            ),
            [
                (
                    "/a~1b/m".to_string(),
                    "key not in the old shape".to_string()
                ),
                (
                    "/a~1b/n".to_string(),
                    "string where the old shape has null or number".to_string()
                ),
                (
                    "/list/1/z".to_string(),
                    "key not in the old shape".to_string()
                ),
            ]
        );
        assert!(!fits(None, &json!({})), "nothing learned yet: not settled");
        let learned = Learned {
            old: shape.clone(),
            new: Shape::new(),
        };
        assert!(fits(Some(&learned), &json!({"a/b": {"n": 1}})));
        assert!(!fits(Some(&learned), &json!({"other": 1})));
        // null fits any type; a NULL column too.
        assert!(misses(&shape, &json!({"a/b": {"n": null}, "list": [{"x": null}]})).is_empty());
        assert!(misses(&shape, &Value::Null).is_empty());
    }
}
