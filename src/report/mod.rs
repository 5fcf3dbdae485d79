//! Everything the user reads or files: progress, the patch file, the verdict, errors.
//!
//! Invariants: the only module that writes to stdout/stderr or creates output files; every
//! output file is written to a temp file beside it and renamed into place, so a crash never
//! leaves half a patch or snapshot; output is deterministic for equal input.

pub mod audit;
mod check;
pub mod ci;
mod emit;
pub mod merge;
mod patch;
mod walk;

pub use check::{CASES_FORMAT, CheckReport, RESULT_FORMAT, write_cases_human, write_cases_json};
pub use emit::{Outputs, Rendered, emit};
pub use patch::PatchWriter;
pub use walk::{WALK_FORMAT, WalkReport, WalkStep, show_rev};

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use crate::atomic::AtomicFile;
use crate::console::{color_stdout, stderr_line, style, verbose};
use crate::diff::{SchemaChanges, Summary};
use crate::error::{Context, Error, Result};
use crate::expect::rules::{Loss, LossKind};
use crate::expect::{CheckResult, Severity};

/// How many findings per check the human output lists.
const SHOW: usize = 20;

/// A PASS/FAIL/WARN label, in color when `color`.
fn paint(label: &str, color: bool) -> String {
    let style = match label {
        "PASS" => style::PASS,
        "FAIL" => style::FAIL,
        _ => style::WARN,
    };
    crate::console::paint(label, style, color)
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Phases for humans: `boot 0.11s, restore 0.08s`.
pub fn phases_text(phases: &[(&'static str, Duration)]) -> String {
    let parts: Vec<String> = phases
        .iter()
        .map(|(name, d)| format!("{name} {}", secs(*d)))
        .collect();
    parts.join(", ")
}

/// One `table` line per table: rows before and after, changed, added, removed; a dropped or
/// created table says so. Unchanged tables are one summary line unless --verbose.
fn write_tables(out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    let verbose = verbose();
    let (mut unchanged, mut untouched) = (0, 0);
    for (table, c) in &summary.tables {
        if c.dropped {
            writeln!(
                out,
                "table     {table}: {} rows before, table dropped",
                c.rows_before
            )?;
        } else if c.created {
            writeln!(
                out,
                "table     {table}: table created, {} rows after",
                c.rows_after
            )?;
        } else if c.unchanged() && !verbose {
            unchanged += 1;
            untouched += u32::from(c.untouched);
        } else {
            let read = if c.untouched {
                ", untouched: counted, not read".to_string()
            } else if c.unread > 0 {
                format!(", {} rows never written: counted, not read", c.unread)
            } else {
                String::new()
            };
            writeln!(
                out,
                "table     {table}: {} rows before, {} after ({} changed, {} added, {} removed){read}",
                c.rows_before, c.rows_after, c.changed, c.added, c.removed,
            )?;
        }
    }
    if unchanged > 0 {
        let s = if unchanged == 1 { "" } else { "s" };
        let not_read = if untouched > 0 {
            format!(" ({untouched} untouched: counted, not read)")
        } else {
            String::new()
        };
        writeln!(out, "table     {unchanged} table{s} unchanged{not_read}")?;
    }
    Ok(())
}

/// A schema value for one line: a definition, a string's first line, or compact JSON, cut.
fn brief(value: &Value) -> String {
    const MAX: usize = 160;
    let text = match value {
        Value::String(s) => s.lines().next().unwrap_or("").to_string(),
        Value::Object(o) => match o.get("definition") {
            Some(Value::String(d)) => d.lines().next().unwrap_or("").to_string(),
            _ => value.to_string(),
        },
        _ => value.to_string(),
    };
    let more = match value {
        Value::String(s) => s.lines().nth(1).is_some(),
        _ => false,
    };
    if text.chars().count() > MAX || more {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// `schema    N changes` and one line per operation with what it changes: `add` the new
/// definition, `remove` the old one, `replace` old → new.
fn write_schema(out: &mut dyn Write, schema: &SchemaChanges) -> io::Result<()> {
    let n = schema.ops.len();
    writeln!(out, "schema    {n} change{}", if n == 1 { "" } else { "s" })?;
    for (op, was) in schema.ops.iter().zip(&schema.was) {
        let (kind, path) = (op_name(op), op.path());
        let detail = match (op, was) {
            (PatchOperation::Add(a), _) => brief(&a.value),
            (PatchOperation::Replace(r), Some(was)) => {
                format!("{} → {}", brief(was), brief(&r.value))
            }
            (PatchOperation::Replace(r), None) => brief(&r.value),
            (PatchOperation::Remove(_), Some(was)) => format!("was {}", brief(was)),
            _ => String::new(),
        };
        writeln!(out, "          {kind:<8} {path}  {detail}")?;
    }
    Ok(())
}

/// `revision  b2c3 → a1b2` (or `unchanged at ...`), when the dump has one. Entries both sides
/// share (Django's untouched apps) are counted, not listed; a tool other than Alembic is named.
fn write_revision(
    out: &mut dyn Write,
    schema: &SchemaChanges,
    tool: Option<&str>,
) -> io::Result<()> {
    let named = match tool {
        Some(t) if t != "alembic" => format!(" ({t})"),
        _ => String::new(),
    };
    match schema.revisions() {
        (None, None) => Ok(()),
        (b, a) if b == a => writeln!(
            out,
            "revision  unchanged at {}{named}",
            show_rev(&b.unwrap_or_default())
        ),
        (Some(b), Some(a)) if b.iter().any(|r| a.contains(r)) => {
            let gone: Vec<String> = b.iter().filter(|r| !a.contains(r)).cloned().collect();
            let came: Vec<String> = a.iter().filter(|r| !b.contains(r)).cloned().collect();
            let same = b.len() - gone.len();
            let show = |r: &[String]| {
                if r.is_empty() {
                    "(none)".to_string()
                } else {
                    r.join("+")
                }
            };
            writeln!(
                out,
                "revision  {} → {}{named}, {same} unchanged",
                show(&gone),
                show(&came)
            )
        }
        (b, a) => {
            let show = |r: Option<Vec<String>>| match r {
                Some(r) => show_rev(&r),
                None => "(no revision table)".into(),
            };
            writeln!(out, "revision  {} → {}{named}", show(b), show(a))
        }
    }
}

/// The revision for the JSON outputs: the tool and each side (`null`: no revision known).
fn revision_json(schema: &SchemaChanges, tool: Option<&str>) -> Value {
    json!({"tool": tool, "before": schema.revision.0, "after": schema.revision.1})
}

/// A migration command's output as JSON lines (empty: none).
fn output_lines(output: &str) -> Vec<&str> {
    output.lines().collect()
}

/// The losses for the JSON outputs (README "Result JSON", `data_lost`).
fn losses_json(losses: &[Loss]) -> Vec<Value> {
    losses
        .iter()
        .filter(|l| l.count > 0)
        .map(|l| {
            let (kind, from, to) = match &l.kind {
                LossKind::Table => ("table dropped", None, None),
                LossKind::Column => ("column dropped", None, None),
                LossKind::Narrowed { from, to } => ("column narrowed", Some(from), Some(to)),
            };
            let mut v = json!({"name": l.name, "kind": kind, "count": l.count, "acknowledged": l.acknowledged});
            if let (Some(from), Some(to)) = (from, to) {
                v["from_type"] = json!(from);
                v["to_type"] = json!(to);
            }
            v
        })
        .collect()
}

/// `public.t: table dropped with 342 rows (acknowledged)`: a loss for humans.
pub fn loss_line(loss: &Loss) -> String {
    let ack = if loss.acknowledged {
        " (acknowledged)"
    } else {
        ""
    };
    format!("{}: {}{ack}", loss.name, loss.describe())
}

/// The first lines of a human report: the dump and the server.
fn write_context(
    out: &mut dyn Write,
    dump: &Path,
    format: &str,
    pg_dump_version: Option<&str>,
    server: &str,
) -> io::Result<()> {
    if format == "restored" {
        writeln!(
            out,
            "dump      {} (a database already restored on the server: copied, never written)",
            dump.display()
        )?;
        return writeln!(out, "server    {server}");
    }
    let version = pg_dump_version
        .map(|v| format!(", pg_dump {v}"))
        .unwrap_or_default();
    writeln!(
        out,
        "dump      {} ({format} format{version})",
        dump.display()
    )?;
    writeln!(out, "server    {server}")
}

/// A JSON value on one line, cut to `max` characters.
fn short(value: &Option<Value>, max: usize) -> String {
    let text = match value {
        Some(v) => v.to_string(),
        None => "(nothing)".into(),
    };
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// `122 operations (1 revision, 2 schema, 119 data)`: the same counts in every output.
pub fn patch_counts(summary: &Summary) -> String {
    format!(
        "{} operations ({} revision, {} schema, {} data)",
        summary.ops(),
        summary.revision_ops,
        summary.schema_ops,
        summary.data_ops
    )
}

fn patch_json(summary: &Summary) -> Value {
    json!({
        "operations": summary.ops(),
        "revision": summary.revision_ops,
        "schema": summary.schema_ops,
        "data": summary.data_ops,
    })
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// One line per check (PASS, WARN, FAIL), its notes, and the first findings of each failure.
fn write_results(out: &mut dyn Write, results: &[CheckResult]) -> io::Result<()> {
    let color = color_stdout();
    for result in results {
        let f = &result.findings;
        if result.passed {
            writeln!(out, "{}  {}", paint("PASS", color), result.name)?;
            for note in &result.notes {
                writeln!(out, "      {note}")?;
            }
            continue;
        }
        let rows = match f.rows {
            0 => String::new(),
            1 => " in 1 row".to_string(),
            n => format!(" in {n} rows"),
        };
        let s = if f.total == 1 { "" } else { "s" };
        let label = paint(if result.fails() { "FAIL" } else { "WARN" }, color);
        writeln!(
            out,
            "{label}  {}: {} finding{s}{rows}",
            result.name, f.total
        )?;
        for note in &result.notes {
            writeln!(out, "      {note}")?;
        }
        for finding in f.shown.iter().take(SHOW) {
            // A finding that carries a patch operation (expected-patch, round-trip) shows it.
            let op = finding.expected.as_ref().or(finding.actual.as_ref());
            let op = op.filter(|v| v.get("op").is_some() && v.get("path").is_some());
            if let Some(op) = op {
                let kind = finding.message.split(' ').next().unwrap_or("");
                writeln!(out, "      {kind:<10}  {op}")?;
            } else if finding.path.is_empty() {
                writeln!(out, "      {}", finding.message)?;
            } else if finding.expected.is_none() && finding.actual.is_none() {
                writeln!(out, "      {}: {}", finding.path, finding.message)?;
            } else if finding.expected.is_none() {
                let actual = short(&finding.actual, 100);
                writeln!(out, "      {}: {}: {actual}", finding.path, finding.message)?;
            } else {
                writeln!(out, "      {}: {}", finding.path, finding.message)?;
                // Before the downgrade, when it says something expected and actual don't.
                if finding.before.is_some()
                    && finding.before != finding.expected
                    && finding.before != finding.actual
                {
                    writeln!(out, "        before   {}", short(&finding.before, 100))?;
                }
                writeln!(
                    out,
                    "        expected {}\n        actual   {}",
                    short(&finding.expected, 100),
                    short(&finding.actual, 100)
                )?;
            }
        }
        let listed = f.shown.len().min(SHOW) as u64;
        if f.total > listed {
            writeln!(out, "      ... and {} more", f.total - listed)?;
        }
    }
    Ok(())
}

/// The checks' summary for the JSON outputs.
fn checks_json(results: &[CheckResult]) -> Vec<Value> {
    results
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "passed": r.passed, "severity": r.severity, "notes": r.notes, "findings": r.findings.total}))
        .collect()
}

/// `"findings": [...]` streamed, one finding per line, every one (spilled ones too).
fn write_findings_json(
    out: &mut dyn Write,
    results: &mut [CheckResult],
    indent: &str,
) -> Result<()> {
    write!(out, "\"findings\": [").context("writing the result")?;
    let mut first = true;
    for result in results.iter_mut() {
        result.findings.for_each(|f| {
            let sep = if first { "" } else { "," };
            first = false;
            let line = serde_json::to_string(f).expect("findings serialize");
            write!(out, "{sep}\n{indent}  {line}").context("writing the result")
        })?;
    }
    let end = if first {
        "]".to_string()
    } else {
        format!("\n{indent}]")
    };
    out.write_all(end.as_bytes()).context("writing the result")
}

fn timing_json(phases: &[(&'static str, Duration)]) -> serde_json::Map<String, Value> {
    phases
        .iter()
        .map(|(name, d)| {
            (
                (*name).to_string(),
                json!((d.as_secs_f64() * 1000.0).round() / 1000.0),
            )
        })
        .collect()
}

/// The head of a JSON object, pretty-printed, without its closing brace, so that streamed
/// members can follow.
fn open_object(head: &Value, indent: &str) -> String {
    let text = serde_json::to_string_pretty(head).expect("JSON values serialize");
    let text = text.strip_suffix("\n}").unwrap_or(&text).to_string();
    text.replace('\n', &format!("\n{indent}"))
}

/// Print an error: captured detail (a failing command's output) first, then the one-line message.
pub fn error(err: &Error) {
    if let Some(detail) = err.detail() {
        stderr_line(detail);
    }
    stderr_line(&format!("pgsnapdiff: error: {err}"));
}
