//! Everything the user reads or files: progress, the patch file, the verdict, errors.
//!
//! Invariants: the only module that writes to stdout/stderr or creates output files; every
//! output file is written to a temp file beside it and renamed into place, so a crash never
//! leaves half a patch or snapshot; output is deterministic for equal input.

pub mod audit;
pub mod ci;
mod emit;

pub use emit::{Outputs, Rendered, emit};

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use crate::atomic::AtomicFile;
use crate::console::{color_stdout, stderr_line, style, verbose};
use crate::diff::{DiffSink, SchemaChanges, Summary};
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
    let mut unchanged = 0;
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
        } else {
            writeln!(
                out,
                "table     {table}: {} rows before, {} after ({} changed, {} added, {} removed)",
                c.rows_before, c.rows_after, c.changed, c.added, c.removed
            )?;
        }
    }
    if unchanged > 0 {
        let s = if unchanged == 1 { "" } else { "s" };
        writeln!(out, "table     {unchanged} table{s} unchanged")?;
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

/// `revision  b2c3 → a1b2` (or `unchanged at ...`), when the dump has one.
fn write_revision(out: &mut dyn Write, schema: &SchemaChanges) -> io::Result<()> {
    let rev = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
    };
    match (rev(&schema.revision.0), rev(&schema.revision.1)) {
        (None, None) => Ok(()),
        (b, a) if b == a => writeln!(
            out,
            "revision  unchanged at {}",
            show_rev(&b.unwrap_or_default())
        ),
        (b, a) => {
            let show = |r: Option<Vec<String>>| match r {
                Some(r) => show_rev(&r),
                None => "(no revision table)".into(),
            };
            writeln!(out, "revision  {} → {}", show(b), show(a))
        }
    }
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

/// Streams patch operations as an RFC 6902 document: a JSON array, one operation per line.
pub struct PatchWriter<W: Write> {
    out: W,
    count: u64,
}

impl<W: Write> PatchWriter<W> {
    pub fn new(out: W) -> Self {
        PatchWriter { out, count: 0 }
    }

    pub fn finish(mut self) -> Result<W> {
        let end: &[u8] = if self.count == 0 { b"[]\n" } else { b"\n]\n" };
        self.out
            .write_all(end)
            .and_then(|()| self.out.flush())
            .context("writing patch")?;
        Ok(self.out)
    }
}

impl<W: Write> DiffSink for PatchWriter<W> {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let sep: &[u8] = if self.count == 0 { b"[\n  " } else { b",\n  " };
        self.out
            .write_all(sep)
            .and_then(|()| write_op(&mut self.out, op))
            .context("writing patch")?;
        self.count += 1;
        Ok(())
    }
}

/// One operation as compact JSON, byte for byte what `serde_json::to_writer` makes of it
/// (`op` first, then the struct's fields in order), written by hand for the three kinds a diff
/// makes: serde's internally tagged path was a quarter of the client's time on a 2M-operation
/// patch (scripts/bench).
fn write_op(out: &mut impl Write, op: &PatchOperation) -> io::Result<()> {
    let (name, path, value) = match op {
        PatchOperation::Add(o) => ("add", &o.path, Some(&o.value)),
        PatchOperation::Remove(o) => ("remove", &o.path, None),
        PatchOperation::Replace(o) => ("replace", &o.path, Some(&o.value)),
        _ => return serde_json::to_writer(out, op).map_err(io::Error::from),
    };
    write!(out, "{{\"op\":\"{name}\",\"path\":")?;
    serde_json::to_writer(&mut *out, path.as_str())?;
    if let Some(value) = value {
        out.write_all(b",\"value\":")?;
        serde_json::to_writer(&mut *out, value)?;
    }
    out.write_all(b"}")
}

/// What one `check` run did: rendered for humans (`write_human`) and machines (`write_json`).
pub struct CheckReport<'a> {
    /// The `[[case]]` name, when the config has cases.
    pub case: Option<&'a str>,
    pub dump: &'a Path,
    pub dump_format: &'a str,
    pub pg_dump_version: Option<&'a str>,
    pub server: String,
    pub downgrade: String,
    /// The round trip's upgrade, if any.
    pub upgrade: Option<String>,
    pub phases: &'a [(&'static str, Duration)],
    pub summary: &'a Summary,
    pub patch_out: Option<&'a Path>,
    /// The `/schema/...` operations and the revision on both sides.
    pub schema: &'a SchemaChanges,
    /// Tables and columns dropped or narrowed, with their counts.
    pub losses: &'a [Loss],
    pub results: &'a mut [CheckResult],
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

impl CheckReport<'_> {
    /// The JUnit suite (and GitHub title) name: the case, else the dump's file name.
    pub fn suite_name(&self) -> String {
        match self.case {
            Some(case) => case.to_string(),
            None => self
                .dump
                .file_name()
                .unwrap_or(self.dump.as_os_str())
                .to_string_lossy()
                .into_owned(),
        }
    }

    pub fn proven(&self) -> bool {
        !self.results.iter().any(CheckResult::fails)
    }

    /// The human report: context, per-table counts, one line per check, findings, verdict.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let (dump, format, version) = (self.dump, self.dump_format, self.pg_dump_version);
        write_context(out, dump, format, version, &self.server)?;
        if let Some(up) = &self.upgrade {
            writeln!(out, "upgrade   {up}")?;
        }
        writeln!(out, "downgrade {}", self.downgrade)?;
        writeln!(out, "timing    {}", phases_text(self.phases))?;
        write_revision(out, self.schema)?;
        write_tables(out, self.summary)?;
        write_schema(out, self.schema)?;
        writeln!(out, "patch     {}", patch_counts(self.summary))?;
        if let Some(p) = self.patch_out {
            writeln!(out, "          written to {}", p.display())?;
        }
        writeln!(out)?;
        write_results(out, self.results)?;
        writeln!(out)?;
        let failed = self.results.iter().filter(|r| r.fails()).count();
        let warned = self.results.iter().filter(|r| !r.passed && !r.fails());
        let warned: Vec<&str> = warned.map(|r| r.id.as_str()).collect();
        if failed == 0 && warned.is_empty() {
            writeln!(out, "rollback proven")
        } else if failed == 0 {
            writeln!(
                out,
                "rollback proven, with warnings from {}",
                warned.join(", ")
            )
        } else {
            writeln!(
                out,
                "rollback NOT proven: {failed} of {} checks failed",
                self.results
                    .iter()
                    .filter(|r| r.severity == Severity::Error)
                    .count()
            )
        }
    }

    /// The JSON result (README "Result JSON"): context, counts, checks, and every finding.
    pub fn write_json(&mut self, out: &mut dyn Write) -> Result<()> {
        let err = |e: io::Error| Error::io("writing the result", e);
        let mut head = json!({
            "format": RESULT_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "dump": {"path": self.dump, "format": self.dump_format, "pg_dump_version": self.pg_dump_version},
            "server": self.server,
            "upgrade": self.upgrade,
            "downgrade": self.downgrade,
            "timing_seconds": timing_json(self.phases),
            "tables": self.summary.tables,
            "patch": patch_json(self.summary),
            "data_lost": losses_json(self.losses),
            "checks": checks_json(self.results),
        });
        if let Some(case) = self.case {
            head["case"] = json!(case);
        }
        write!(out, "{},\n  ", open_object(&head, "")).map_err(err)?;
        write_findings_json(out, self.results, "  ")?;
        out.write_all(b"\n}\n").map_err(err)
    }
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

/// One step of a walk: revision `from` → `to`, what it changed, what the rules found.
pub struct WalkStep {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub phases: Vec<(&'static str, Duration)>,
    pub summary: Summary,
    /// The `/schema/...` operations.
    pub schema: SchemaChanges,
    /// Tables and columns dropped or narrowed, with their counts.
    pub losses: Vec<Loss>,
    pub results: Vec<CheckResult>,
}

impl WalkStep {
    pub fn title(&self) -> String {
        format!("revision {} → {}", show_rev(&self.from), show_rev(&self.to))
    }

    /// (table, rows) this step removed from tables that exist on both sides (a dropped
    /// table's rows are not counted as removed: the drop is a schema change).
    fn lost(&self) -> Vec<(&str, u64)> {
        self.summary
            .tables
            .iter()
            .filter(|(_, c)| c.removed > 0)
            .map(|(t, c)| (t.as_str(), c.removed))
            .collect()
    }

    /// Every loss of the step, for humans: rows that disappeared, then tables and columns
    /// dropped or narrowed with data (acknowledged ones say so).
    pub fn headlines(&self) -> Vec<String> {
        let lost = self.lost().into_iter();
        let lost = lost.map(|(t, n)| format!("lost {n} rows of {t}"));
        let dropped = self.losses.iter().filter(|l| l.count > 0);
        lost.chain(dropped.map(|l| format!("lost {}", loss_line(l))))
            .collect()
    }

    /// (table, rows it had) for the tables this step dropped.
    fn dropped(&self) -> Vec<(&str, u64)> {
        self.summary
            .tables
            .iter()
            .filter(|(_, c)| c.dropped)
            .map(|(t, c)| (t.as_str(), c.rows_before))
            .collect()
    }
}

/// A revision set for humans: `0003`, `a+b` (merge heads), `base` (none).
pub fn show_rev(revision: &[String]) -> String {
    if revision.is_empty() {
        "base".into()
    } else {
        revision.join("+")
    }
}

/// What one `walk` did, step by step.
pub struct WalkReport<'a> {
    pub dump: &'a Path,
    pub dump_format: &'a str,
    pub pg_dump_version: Option<&'a str>,
    pub server: String,
    pub step_cmd: String,
    pub to: &'a str,
    pub phases: &'a [(&'static str, Duration)],
    pub steps: &'a mut [WalkStep],
    /// The walk reached `to` (false: a step failed; the error follows the report).
    pub complete: bool,
}

impl WalkReport<'_> {
    pub fn proven(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| s.results.iter().any(CheckResult::fails))
    }

    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let (dump, format, version) = (self.dump, self.dump_format, self.pg_dump_version);
        write_context(out, dump, format, version, &self.server)?;
        writeln!(
            out,
            "walk      {} per step, down to {}",
            self.step_cmd, self.to
        )?;
        writeln!(out, "timing    {}", phases_text(self.phases))?;
        for step in self.steps.iter() {
            writeln!(out)?;
            writeln!(out, "== {} ({})", step.title(), phases_text(&step.phases))?;
            for line in step.headlines() {
                let what = line.strip_prefix("lost ").unwrap_or(&line);
                writeln!(out, "lost      {what}")?;
            }
            write_tables(out, &step.summary)?;
            write_schema(out, &step.schema)?;
            writeln!(out, "patch     {}", patch_counts(&step.summary))?;
            write_results(out, &step.results)?;
        }
        writeln!(out)?;
        // Every loss of the whole walk, failing or acknowledged: the summary a reader keeps.
        let losses: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| {
                let title = s.title();
                s.headlines()
                    .into_iter()
                    .map(move |line| format!("{title}: {line}"))
            })
            .collect();
        if !losses.is_empty() {
            writeln!(out, "losses over the walk:")?;
            for loss in &losses {
                writeln!(out, "  {loss}")?;
            }
        }
        let failed: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.results.iter().any(CheckResult::fails))
            .map(WalkStep::title)
            .collect();
        let walked = format!(
            "{} step{}",
            self.steps.len(),
            if self.steps.len() == 1 { "" } else { "s" }
        );
        if !self.complete {
            writeln!(out, "walk stopped after {walked}: see the error below")?;
        }
        if failed.is_empty() {
            if !self.complete {
                return Ok(());
            }
            writeln!(out, "walk proven: {walked}, no check failed")
        } else {
            writeln!(
                out,
                "walk NOT proven: checks failed in {}",
                failed.join(", ")
            )
        }
    }

    /// The walk JSON (README "Walk JSON"): context, then one object per step with its counts,
    /// schema operations, checks and every finding.
    pub fn write_json(&mut self, out: &mut dyn Write) -> Result<()> {
        let err = |e: io::Error| Error::io("writing the result", e);
        let head = json!({
            "format": WALK_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "complete": self.complete,
            "dump": {"path": self.dump, "format": self.dump_format, "pg_dump_version": self.pg_dump_version},
            "server": self.server,
            "step_cmd": self.step_cmd,
            "to": self.to,
            "timing_seconds": timing_json(self.phases),
        });
        write!(out, "{},\n  \"steps\": [", open_object(&head, "")).map_err(err)?;
        for (i, step) in self.steps.iter_mut().enumerate() {
            let counts = |v: Vec<(&str, u64)>| -> serde_json::Map<String, Value> {
                v.into_iter()
                    .map(|(t, n)| (t.to_string(), json!(n)))
                    .collect()
            };
            let head = json!({
                "from": step.from,
                "to": step.to,
                "timing_seconds": timing_json(&step.phases),
                "tables": step.summary.tables,
                "patch": patch_json(&step.summary),
                "lost_rows": counts(step.lost()),
                "dropped_tables": counts(step.dropped()),
                "data_lost": losses_json(&step.losses),
                "schema": step.schema.ops,
                "checks": checks_json(&step.results),
            });
            let sep = if i == 0 { "\n    " } else { ",\n    " };
            write!(out, "{sep}{},\n      ", open_object(&head, "    ")).map_err(err)?;
            write_findings_json(out, &mut step.results, "      ")?;
            out.write_all(b"\n    }").map_err(err)?;
        }
        let end: &[u8] = if self.steps.is_empty() {
            b"]\n}\n"
        } else {
            b"\n  ]\n}\n"
        };
        out.write_all(end).map_err(err)
    }
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

/// Identifies the walk JSON format.
pub const WALK_FORMAT: &str = "pgsnapdiff-walk/1";

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
    let err = |e: io::Error| Error::io("writing the result", e);
    write!(out, "\"findings\": [").map_err(err)?;
    let mut first = true;
    for result in results.iter_mut() {
        result.findings.for_each(|f| {
            let sep = if first { "" } else { "," };
            first = false;
            let line = serde_json::to_string(f).expect("findings serialize");
            write!(out, "{sep}\n{indent}  {line}").map_err(err)
        })?;
    }
    let end = if first {
        "]".to_string()
    } else {
        format!("\n{indent}]")
    };
    out.write_all(end.as_bytes()).map_err(err)
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

/// The human report of a whole `check`: one case as it always was; several as one block per
/// case, the run-level checks (baselines), then one verdict over all.
pub fn write_cases_human(
    out: &mut dyn Write,
    reports: &[CheckReport],
    run: &[CheckResult],
    single: bool,
) -> io::Result<()> {
    if single {
        return reports[0].write_human(out);
    }
    for report in reports {
        writeln!(out, "== case {}", report.case.unwrap_or("?"))?;
        report.write_human(out)?;
        writeln!(out)?;
    }
    if !run.is_empty() {
        writeln!(out, "== baselines")?;
        write_results(out, run)?;
        writeln!(out)?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.proven())
        .filter_map(|r| r.case)
        .collect();
    let run_failed = run.iter().any(CheckResult::fails);
    let n = reports.len();
    if failed.is_empty() && !run_failed && n == 1 {
        writeln!(
            out,
            "rollback proven (case {})",
            reports[0].case.unwrap_or("?")
        )
    } else if failed.is_empty() && !run_failed {
        writeln!(out, "rollback proven in all {n} cases")
    } else if failed.is_empty() {
        writeln!(out, "rollback NOT proven: the baselines check failed")
    } else {
        writeln!(
            out,
            "rollback NOT proven in {} of {n} cases: {}",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// The JSON of a `check` with `[[case]]`s (`pgsnapdiff-results/1`): the verdict, run-level
/// checks and findings (baselines), then every case's result object.
pub fn write_cases_json(
    out: &mut dyn Write,
    proven: bool,
    reports: &mut [CheckReport],
    run: &mut [CheckResult],
) -> Result<()> {
    let err = |e: io::Error| Error::io("writing the result", e);
    let head = json!({
        "format": CASES_FORMAT,
        "verdict": if proven { "proven" } else { "not proven" },
        "checks": checks_json(run),
    });
    write!(out, "{},\n  ", open_object(&head, "")).map_err(err)?;
    write_findings_json(out, run, "  ")?;
    write!(out, ",\n  \"cases\": [").map_err(err)?;
    for (i, report) in reports.iter_mut().enumerate() {
        let mut text = Vec::new();
        report.write_json(&mut text)?;
        let text = String::from_utf8(text).expect("JSON is UTF-8");
        let text = text.trim_end().replace('\n', "\n    ");
        let sep = if i == 0 { "\n    " } else { ",\n    " };
        write!(out, "{sep}{text}").map_err(err)?;
    }
    out.write_all(b"\n  ]\n}\n").map_err(err)
}

/// Identifies the JSON of a `check` with `[[case]]`s.
pub const CASES_FORMAT: &str = "pgsnapdiff-results/1";

/// Identifies the result JSON format.
pub const RESULT_FORMAT: &str = "pgsnapdiff-result/1";

/// Print an error: captured detail (a failing command's output) first, then the one-line message.
pub fn error(err: &Error) {
    if let Some(detail) = err.detail() {
        stderr_line(detail);
    }
    stderr_line(&format!("pgsnapdiff: error: {err}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_ops_are_byte_for_byte_serde_json() {
        // Parsed from text: numbers stay verbatim (`arbitrary_precision`).
        let ops: Vec<PatchOperation> = serde_json::from_str(
            r#"[
                {"op": "add", "path": "/data/public.t/a~1b~0c/\"q\"", "value": {"z": [1.10, null], "a": "é\n"}},
                {"op": "remove", "path": "/data/public.t/10"},
                {"op": "replace", "path": "", "value": 0.33333333333333333333},
                {"op": "move", "from": "/a", "path": "/b"},
                {"op": "test", "path": "/c", "value": true}
            ]"#,
        )
        .unwrap();
        for op in &ops {
            let mut ours = Vec::new();
            write_op(&mut ours, op).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(op).unwrap()
            );
        }
    }
}
