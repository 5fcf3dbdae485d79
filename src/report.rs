//! Everything the user reads or files: progress, the patch file, the verdict, errors.
//!
//! Invariants: the only module that writes to stdout/stderr or creates output files; every
//! output file is written to a temp file beside it and renamed into place, so a crash never
//! leaves half a patch or snapshot; output is deterministic for equal input.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use json_patch::PatchOperation;
use serde_json::{Value, json};

use crate::diff::{DiffSink, Summary};
use crate::error::{Error, Result};
use crate::expect::{CheckResult, Severity};

/// How many findings per check the human output lists.
const SHOW: usize = 20;

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// One progress line on stderr (silenced by --quiet).
pub fn progress(message: impl AsRef<str>) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("pgsnapdiff: {}", message.as_ref());
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// An output file written under a temp name and renamed into place on `commit`. Dropped
/// without commit (error, interrupt), the temp file is removed and the target untouched.
///
/// Only regular files are replaced: a device, FIFO or socket (`-o /dev/null`, `-o /dev/stdout`)
/// is written in place, since renaming over it would destroy it (as root, even /dev/null); a
/// symlink keeps pointing where it did, and the file it points to is replaced.
pub struct AtomicFile {
    target: PathBuf,
    out: Output,
}

enum Output {
    Temp(BufWriter<tempfile::NamedTempFile>),
    InPlace(BufWriter<std::fs::File>),
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
        let err = |e| Error::io(format!("cannot write {}", target.display()), e);
        if let Ok(meta) = std::fs::metadata(target)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(Error::input(
                    target,
                    "is a directory; give a file name to write",
                ));
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(err)?;
            return Ok(AtomicFile {
                target: target.to_path_buf(),
                out: Output::InPlace(BufWriter::new(file)),
            });
        }
        // Through a symlink to an existing file: replace that file, keep the link.
        let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file = tempfile::Builder::new()
            .prefix(".pgsnapdiff-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(format!("cannot write in {}", dir.display()), e))?;
        Ok(AtomicFile {
            target,
            out: Output::Temp(BufWriter::new(file)),
        })
    }

    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let err = |e| Error::io(format!("writing {}", target.display()), e);
        match self.out {
            Output::InPlace(mut file) => file.flush().map_err(err),
            Output::Temp(file) => {
                let file = file.into_inner().map_err(|e| err(e.into_error()))?;
                file.as_file().sync_all().map_err(err)?;
                file.persist(&target).map_err(|e| err(e.error))?;
                Ok(())
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Output::Temp(f) => f.write(buf),
            Output::InPlace(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Output::Temp(f) => f.flush(),
            Output::InPlace(f) => f.flush(),
        }
    }
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
            .map_err(|e| Error::io("writing patch", e))?;
        Ok(self.out)
    }
}

impl<W: Write> DiffSink for PatchWriter<W> {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let sep: &[u8] = if self.count == 0 { b"[\n  " } else { b",\n  " };
        self.out
            .write_all(sep)
            .and_then(|()| serde_json::to_writer(&mut self.out, op).map_err(io::Error::from))
            .map_err(|e| Error::io("writing patch", e))?;
        self.count += 1;
        Ok(())
    }
}

/// What one `check` run did: rendered for humans (`write_human`) and machines (`write_json`).
pub struct CheckReport<'a> {
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
    pub fn proven(&self) -> bool {
        !self.results.iter().any(CheckResult::fails)
    }

    /// The human report: context, per-table counts, one line per check, findings, verdict.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "dump      {} ({} format{})",
            self.dump.display(),
            self.dump_format,
            self.pg_dump_version
                .map(|v| format!(", pg_dump {v}"))
                .unwrap_or_default()
        )?;
        writeln!(out, "server    {}", self.server)?;
        if let Some(up) = &self.upgrade {
            writeln!(out, "upgrade   {up}")?;
        }
        writeln!(out, "downgrade {}", self.downgrade)?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(name, d)| format!("{name} {}", secs(*d)))
            .collect();
        writeln!(out, "timing    {}", phases.join(", "))?;
        for (table, c) in &self.summary.tables {
            writeln!(
                out,
                "table     {table}: {} rows before, {} after ({} changed, {} added, {} removed)",
                c.rows_before, c.rows_after, c.changed, c.added, c.removed
            )?;
        }
        write!(
            out,
            "patch     {} operations ({} schema, {} data)",
            self.summary.ops(),
            self.summary.schema_ops,
            self.summary.data_ops
        )?;
        match self.patch_out {
            Some(p) => writeln!(out, ", written to {}", p.display())?,
            None => writeln!(out)?,
        }
        writeln!(out)?;
        for result in self.results.iter() {
            let f = &result.findings;
            if result.passed {
                writeln!(out, "PASS  {}", result.name)?;
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
            let label = if result.fails() { "FAIL" } else { "WARN" };
            writeln!(
                out,
                "{label}  {}: {} finding{s}{rows}",
                result.name, f.total
            )?;
            for note in &result.notes {
                writeln!(out, "      {note}")?;
            }
            for finding in f.shown.iter().take(SHOW) {
                if result.id == "expected-patch" || result.id == "round-trip" {
                    let kind = finding.message.split(' ').next().unwrap_or("");
                    let op = finding.expected.as_ref().or(finding.actual.as_ref());
                    let op = op.map(Value::to_string).unwrap_or_default();
                    writeln!(out, "      {kind:<10}  {op}")?;
                } else if finding.expected.is_none() && finding.actual.is_none() {
                    writeln!(out, "      {}: {}", finding.path, finding.message)?;
                } else if finding.expected.is_none() {
                    let actual = short(&finding.actual, 100);
                    writeln!(out, "      {}: {}: {actual}", finding.path, finding.message)?;
                } else {
                    writeln!(
                        out,
                        "      {}: {}\n        expected {}\n        actual   {}",
                        finding.path,
                        finding.message,
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
        let timing: serde_json::Map<String, Value> = self
            .phases
            .iter()
            .map(|(name, d)| {
                (
                    (*name).to_string(),
                    json!((d.as_secs_f64() * 1000.0).round() / 1000.0),
                )
            })
            .collect();
        let checks: Vec<Value> = self
            .results
            .iter()
            .map(|r| json!({"id": r.id, "name": r.name, "passed": r.passed, "severity": r.severity, "notes": r.notes, "findings": r.findings.total}))
            .collect();
        let head = json!({
            "format": RESULT_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "dump": {"path": self.dump, "format": self.dump_format, "pg_dump_version": self.pg_dump_version},
            "server": self.server,
            "upgrade": self.upgrade,
            "downgrade": self.downgrade,
            "timing_seconds": timing,
            "tables": self.summary.tables,
            "patch": {"operations": self.summary.ops(), "schema": self.summary.schema_ops, "data": self.summary.data_ops},
            "checks": checks,
        });
        let text = serde_json::to_string_pretty(&head).expect("JSON values serialize");
        let text = text.strip_suffix("\n}").unwrap_or(&text);
        write!(out, "{text},\n  \"findings\": [").map_err(err)?;
        let mut first = true;
        for result in self.results.iter_mut() {
            result.findings.for_each(|f| {
                let sep = if first { "\n    " } else { ",\n    " };
                first = false;
                let line = serde_json::to_string(f).expect("findings serialize");
                write!(out, "{sep}{line}").map_err(err)
            })?;
        }
        let end = if first { "]\n}\n" } else { "\n  ]\n}\n" };
        out.write_all(end.as_bytes()).map_err(err)
    }
}

/// Identifies the result JSON format.
pub const RESULT_FORMAT: &str = "pgsnapdiff-result/1";

/// Print an error: captured detail (a failing command's output) first, then the one-line message.
pub fn error(err: &Error) {
    if let Some(detail) = err.detail() {
        eprintln!("{detail}");
    }
    eprintln!("pgsnapdiff: error: {err}");
}
