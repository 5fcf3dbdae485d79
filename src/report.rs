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

use crate::diff::{PatchSink, Summary};
use crate::error::{Error, Result};
use crate::expect::CheckResult;

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
pub struct AtomicFile {
    target: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
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
            target: target.to_path_buf(),
            file: BufWriter::new(file),
        })
    }

    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", target.display()), e.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
        file.persist(&target)
            .map_err(|e| Error::io(format!("writing {}", target.display()), e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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

impl<W: Write> PatchSink for PatchWriter<W> {
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

/// What one `check` run did, for the human report.
pub struct CheckReport<'a> {
    pub dump: &'a Path,
    pub dump_format: &'a str,
    pub pg_dump_version: Option<&'a str>,
    pub server: String,
    pub downgrade: String,
    pub phases: &'a [(&'static str, Duration)],
    pub summary: &'a Summary,
    pub patch_out: Option<&'a Path>,
    pub results: &'a [CheckResult],
}

impl CheckReport<'_> {
    pub fn proven(&self) -> bool {
        self.results.iter().all(|r| r.passed)
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
        for result in self.results {
            let mark = if result.passed { "PASS" } else { "FAIL" };
            writeln!(out, "{mark}  {}", result.name)?;
            for f in result.findings.shown.iter().take(SHOW) {
                let kind = f.rule.rsplit('/').next().unwrap_or(&f.rule);
                writeln!(out, "      {kind:<10}  {}", f.op)?;
            }
            let listed = result.findings.shown.len().min(SHOW) as u64;
            if result.findings.total > listed {
                writeln!(out, "      ... and {} more", result.findings.total - listed)?;
            }
        }
        writeln!(out)?;
        let failed = self.results.iter().filter(|r| !r.passed).count();
        if failed == 0 {
            writeln!(out, "rollback proven")
        } else {
            writeln!(
                out,
                "rollback NOT proven: {failed} of {} checks failed",
                self.results.len()
            )
        }
    }
}

/// Print an error: captured detail (a failing command's output) first, then the one-line message.
pub fn error(err: &Error) {
    if let Some(detail) = err.detail() {
        eprintln!("{detail}");
    }
    eprintln!("pgsnapdiff: error: {err}");
}
