//! Regression baselines, the way `insta` users know them: a committed baseline (the expected
//! patch) per case; on a mismatch, the new result is written beside it as a pending file
//! (`BASELINE.new`) to review, accept or reject; in CI (`--check`, `CI=true`) nothing is written
//! and pending or orphaned baselines fail the run. Volatile values (timestamps, generated ids)
//! are replaced by `"[volatile]"` by declared pointer patterns, so baselines don't churn.
//!
//! Invariants: a baseline is only ever replaced by `accept` (an explicit user action); pending
//! files are written atomically and only outside check mode.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use json_patch::PatchOperation;
use serde_json::Value;

use crate::atomic::AtomicFile;
use crate::console::{note, paint, style};
use crate::diff::{self, DiffSink};
use crate::error::{Context, Error, Result};
use crate::expect::{CheckResult, Finding, Findings};
use crate::snapshot::Header;
use crate::snapshot::file::{FileSource, Writer};
pub use crate::volatile::Volatile;

/// A pending file: the baseline's path plus this.
pub const PENDING: &str = ".new";

/// File names that are baselines, for orphan detection.
const BASELINE_SUFFIXES: &[&str] = &[".patch.json", ".after.json"];

pub fn pending_of(baseline: &Path) -> PathBuf {
    let mut name = baseline.as_os_str().to_owned();
    name.push(PENDING);
    PathBuf::from(name)
}

fn baseline_of(pending: &Path) -> Option<PathBuf> {
    let name = pending.to_str()?.strip_suffix(PENDING)?;
    Some(PathBuf::from(name))
}

/// Sends operations to the patch outputs and the baseline comparison, volatile values
/// replaced and, under --redact, data values hashed.
pub struct Redacting<'a> {
    pub volatile: &'a Volatile,
    pub inner: &'a mut dyn DiffSink,
}

impl DiffSink for Redacting<'_> {
    fn header(&mut self, before: &Header, after: &Header) -> Result<()> {
        self.inner.header(before, after)
    }
    fn table(&mut self, name: &str, before: bool, after: bool) -> Result<()> {
        self.inner.table(name, before, after)
    }
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        // Nothing to replace: no copy (2 per row in a typical patch, scripts/bench).
        if self.volatile.is_empty() && !crate::redact::enabled() {
            return self.inner.op(op);
        }
        // Volatile first, so "[volatile]" stays readable under --redact.
        self.inner.op(&crate::redact::op(&self.volatile.op(op)))
    }
}

/// After a baseline comparison: on a mismatch, write the pending file (`commit`) or, in check
/// mode, say that none was written; on a match, remove a pending file the match made obsolete
/// (never in check mode, which touches no file).
pub fn settle(
    result: &mut CheckResult,
    baseline: &Path,
    check_mode: bool,
    commit: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let pending = pending_of(baseline);
    if check_mode {
        if !result.passed {
            let text = "check mode (--check or CI=true): no pending baseline written";
            result.notes.push(text.into());
        }
    } else if !result.passed {
        commit(&pending)?;
        result.notes.push(format!(
            "pending baseline written: {}; review it with `pgsnapdiff review` (or `pgsnapdiff accept`/`reject`)",
            pending.display()
        ));
    } else if pending.exists() {
        std::fs::remove_file(&pending).context(format!("removing {}", pending.display()))?;
        note(format!(
            "removed {}: the baseline matches now",
            pending.display()
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------ after-snapshot baseline

/// Writes the after-snapshot (`expect_after`) to a temp file as the main diff streams by: the
/// after header, every table present after, every row there, volatile values replaced and,
/// under --redact, hashed. The working database is read once for the diff and the snapshot.
pub struct AfterSnapshot<'a> {
    volatile: &'a Volatile,
    file: tempfile::NamedTempFile,
    writer: Option<Writer<BufWriter<File>>>,
}

fn snapshot_err(e: std::io::Error) -> Error {
    Error::io("writing the after-snapshot", e)
}

impl<'a> AfterSnapshot<'a> {
    pub fn new(volatile: &'a Volatile) -> Result<Self> {
        Ok(AfterSnapshot {
            volatile,
            file: tempfile::NamedTempFile::new().map_err(snapshot_err)?,
            writer: None,
        })
    }

    /// Compare the finished snapshot with its baseline at `path`, then settle the pending file.
    pub async fn check(self, path: &Path, check_mode: bool) -> Result<CheckResult> {
        let writer = self.writer.expect("the diff sends the header first");
        writer.finish()?;
        let mut check = AfterBaseline::new(path);
        if !check.missing {
            let mut baseline = FileSource::open(path)?;
            let mut now = FileSource::open(self.file.path())?;
            diff::diff(&mut baseline, &mut now, &mut check).await?;
        }
        let mut result = check.finish()?;
        settle(&mut result, path, check_mode, |pending| {
            let mut out = AtomicFile::create(pending)?;
            let mut snapshot = self.file.reopen().map_err(snapshot_err)?;
            std::io::copy(&mut snapshot, &mut out).map_err(snapshot_err)?;
            out.commit()
        })?;
        Ok(result)
    }
}

impl DiffSink for AfterSnapshot<'_> {
    fn header(&mut self, _before: &Header, after: &Header) -> Result<()> {
        let out = BufWriter::new(self.file.reopen().map_err(snapshot_err)?);
        self.writer = Some(Writer::begin(out, after)?);
        Ok(())
    }
    fn table(&mut self, name: &str, _before: bool, after: bool) -> Result<()> {
        match (&mut self.writer, after) {
            (Some(w), true) => w.table(name),
            _ => Ok(()),
        }
    }
    fn row(
        &mut self,
        table: &str,
        key: &str,
        _before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let (Some(w), Some(row)) = (&mut self.writer, after) else {
            return Ok(());
        };
        if self.volatile.is_empty() && !crate::redact::enabled() {
            return w.row(key, row);
        }
        let mut row = row.clone();
        self.volatile.row(table, key, &mut row);
        crate::redact::value(&mut row);
        w.row(key, &row)
    }
    fn wants_rows(&self, _table: &str) -> bool {
        true
    }
}

/// Compares the after snapshot with its baseline (`expect_after`): every operation of the
/// baseline → after diff is a finding.
struct AfterBaseline {
    path: PathBuf,
    findings: Findings,
    missing: bool,
}

impl AfterBaseline {
    fn new(path: &Path) -> Self {
        AfterBaseline {
            path: path.to_path_buf(),
            findings: Findings::default(),
            missing: !path.exists(),
        }
    }

    fn finish(mut self) -> Result<CheckResult> {
        if self.missing {
            let message = "no baseline yet; review the pending one and accept it";
            let path = self.path.display().to_string();
            self.findings
                .push(Finding::plain("expected-after", message, path))?;
        }
        let name = format!("expected after-snapshot {}", self.path.display());
        Ok(CheckResult::new("expected-after", name, self.findings))
    }
}

impl DiffSink for AfterBaseline {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let message = "after-snapshot differs from its baseline";
        let finding = Finding::about_op("expected-after", message, op, false);
        self.findings.push(finding)
    }
}

// ------------------------------------------------------------------------------ check mode

/// The directories baselines live in: those of the `used` ones, else `snapshots/`.
pub fn dirs(used: &[PathBuf]) -> Vec<PathBuf> {
    if used.is_empty() {
        return vec![PathBuf::from("snapshots")];
    }
    let dirs: BTreeSet<PathBuf> = used.iter().map(|p| parent(p)).collect();
    dirs.into_iter().collect()
}

/// Pending files (`*.new`) and orphaned baselines (baseline files no case uses) in the
/// directories of the `used` baselines.
pub fn scan(used: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let used_set: BTreeSet<PathBuf> = used.iter().map(|p| normal(p)).collect();
    let (mut pending, mut orphans) = (Vec::new(), Vec::new());
    for dir in dirs(used) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(PENDING) {
                pending.push(file);
            } else if BASELINE_SUFFIXES.iter().any(|s| name.ends_with(s))
                && !used_set.contains(&normal(&file))
            {
                orphans.push(file);
            }
        }
    }
    (pending, orphans)
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn normal(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The `baselines` check of a `--check` run: every pending or orphaned baseline is a finding.
pub fn check_result(used: &[PathBuf]) -> Result<CheckResult> {
    let (pending, orphans) = scan(used);
    let mut findings = Findings::default();
    for (file, message) in pending
        .iter()
        .map(|f| {
            (
                f,
                "pending baseline: accept or reject it (pgsnapdiff review)",
            )
        })
        .chain(orphans.iter().map(|f| {
            (
                f,
                "orphaned baseline: no case uses it; delete it or point a case at it",
            )
        }))
    {
        findings.push(Finding::plain(
            "baselines",
            message,
            file.display().to_string(),
        ))?;
    }
    Ok(CheckResult::new(
        "baselines",
        "baselines: no pending or orphaned baseline (--check)".into(),
        findings,
    ))
}

// ------------------------------------------------------------------ review, accept, reject

/// The pending files `paths` name (a baseline or its pending file), or every pending file
/// beside the `used` baselines.
pub fn pending_files(paths: &[PathBuf], used: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Ok(scan(used).0);
    }
    paths
        .iter()
        .map(|p| {
            let pending = if baseline_of(p).is_some() {
                p.clone()
            } else {
                pending_of(p)
            };
            if pending.is_file() {
                Ok(pending)
            } else {
                Err(Error::input(
                    &pending,
                    "no such pending baseline; `pgsnapdiff check` writes one when a baseline does not match",
                ))
            }
        })
        .collect()
}

pub fn accept(pending: &Path) -> Result<PathBuf> {
    let baseline = baseline_of(pending).expect("pending files end in .new");
    std::fs::rename(pending, &baseline).context(format!("accepting {}", pending.display()))?;
    Ok(baseline)
}

pub fn reject(pending: &Path) -> Result<()> {
    std::fs::remove_file(pending).context(format!("rejecting {}", pending.display()))
}

/// A unified diff of the baseline (or nothing, for a new one) and its pending file.
pub fn diff_text(pending: &Path, color: bool) -> Result<String> {
    let baseline = baseline_of(pending).expect("pending files end in .new");
    let read = |p: &Path| std::fs::read_to_string(p).context(format!("reading {}", p.display()));
    let old = if baseline.exists() {
        read(&baseline)?
    } else {
        String::new()
    };
    let new = read(pending)?;
    let diff = similar::TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    let header = format!(
        "--- {}{}\n+++ {}\n",
        baseline.display(),
        if baseline.exists() { "" } else { " (new)" },
        pending.display()
    );
    out.push_str(&header);
    for hunk in diff.unified_diff().context_radius(2).iter_hunks() {
        for line in hunk.to_string().lines() {
            let line = match line.as_bytes().first() {
                Some(b'+') => paint(line, style::ADDED, color),
                Some(b'-') => paint(line, style::REMOVED, color),
                Some(b'@') => paint(line, style::HUNK, color),
                _ => line.to_string(),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `pgsnapdiff review`: each pending change as a diff, then accept, reject or skip.
pub fn review(pending: &[PathBuf], color: bool) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Config(
            "review asks on a terminal; without one use `pgsnapdiff accept` or `pgsnapdiff reject`"
                .into(),
        ));
    }
    let mut out = std::io::stdout().lock();
    for (i, file) in pending.iter().enumerate() {
        write!(
            out,
            "\n[{}/{}] {}",
            i + 1,
            pending.len(),
            diff_text(file, color)?
        )
        .context("reviewing")?;
        loop {
            write!(out, "[a]ccept, [r]eject, [s]kip? ").context("reviewing")?;
            out.flush().context("reviewing")?;
            let mut answer = String::new();
            if stdin.lock().read_line(&mut answer).context("reviewing")? == 0 {
                return Ok(());
            }
            match answer.trim() {
                "a" | "accept" => {
                    let baseline = accept(file)?;
                    writeln!(out, "accepted: {}", baseline.display()).context("reviewing")?;
                }
                "r" | "reject" => {
                    reject(file)?;
                    writeln!(out, "rejected: {} removed", file.display()).context("reviewing")?;
                }
                "s" | "skip" | "" => writeln!(out, "skipped").context("reviewing")?,
                _ => continue,
            }
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_patterns_reach_into_added_rows_and_match_any_token() {
        let v = Volatile::parse(&[
            "/data/public.t/*/updated_at".into(),
            "/data/public.t/*/meta/*/at".into(),
        ])
        .unwrap();
        let op: PatchOperation =
            serde_json::from_value(json!({"op": "add", "path": "/data/public.t/7",
            "value": {"id": 7, "updated_at": "2026-11-24", "meta": [{"at": 1, "x": 2}]}}))
            .unwrap();
        let got = serde_json::to_value(v.op(&op)).unwrap();
        assert_eq!(
            got["value"],
            json!({"id": 7, "updated_at": "[volatile]", "meta": [{"at": "[volatile]", "x": 2}]})
        );
        let op: PatchOperation = serde_json::from_value(
            json!({"op": "replace", "path": "/data/public.t/7/updated_at", "value": "x"}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(v.op(&op)).unwrap()["value"],
            json!("[volatile]")
        );
        let op: PatchOperation = serde_json::from_value(
            json!({"op": "replace", "path": "/data/public.u/7/updated_at", "value": "x"}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(v.op(&op)).unwrap()["value"],
            json!("x")
        );
    }
}
