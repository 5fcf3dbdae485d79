//! `data-lost` (built in): tables and columns the downgrade drops (or narrows) with data in
//! them; `SchemaLoss` finds them in the two schema headers, the pipeline counts them on the
//! before copy, `data_lost` judges them against `allow_lost`.

use jsonptr::PointerBuf;
use serde_json::Value;

use crate::diff::DiffSink;
use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};
use crate::snapshot::Header;

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
