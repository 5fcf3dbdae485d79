//! Expectations in, findings out.
//!
//! Every check is a `DiffSink` fed the same stream as the patch writer (headers, row pairs,
//! operations), so checking costs no second pass. A check knows nothing of databases or files,
//! beyond loading its own expected patch.
//!
//! Checks: the committed expected patch (`patch`), and the rules (`rules`): rows-preserved,
//! metadata restoration, after-state expectations (RFC 6902 `test`s, absences, revision), and
//! the round trip.

pub mod patch;
pub mod rules;
pub mod shape;

use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Context, Result};

/// Findings kept in memory per check; the rest are spilled to an anonymous temp file.
const KEEP: usize = 1000;

/// One reason the rollback is not proven (README "Result JSON").
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Finding {
    /// The check's id, e.g. `metadata-restored`, `expected-patch`, `rows-preserved`.
    pub rule: String,
    /// What is wrong, in a few words: "not restored", "row disappeared", "unexpected operation".
    pub message: String,
    pub table: Option<String>,
    pub key: Option<String>,
    /// JSON Pointer into the snapshot.
    pub path: String,
    /// What was there before the downgrade, where the check knows it (`null` otherwise).
    #[serde(default)]
    pub before: Option<Value>,
    /// What the check expected there (`null` when it expected nothing).
    pub expected: Option<Value>,
    /// What is there (`null` when nothing is).
    pub actual: Option<Value>,
}

impl Finding {
    /// Under --redact, its data values hashed (the outputs' copy; checks saw the real ones).
    fn redact(&mut self) {
        let values = [
            self.before.as_mut(),
            self.expected.as_mut(),
            self.actual.as_mut(),
        ];
        crate::redact::finding(&self.path, values);
    }

    /// A finding that is only a message about a place (a file, a table, nothing in a row).
    pub fn plain(rule: &str, message: impl Into<String>, path: impl Into<String>) -> Self {
        Finding {
            rule: rule.into(),
            message: message.into(),
            table: None,
            key: None,
            path: path.into(),
            before: None,
            expected: None,
            actual: None,
        }
    }

    /// A finding about a patch operation (expected-patch, round-trip, expected-after): table
    /// and key from its path, the operation itself as `expected` (missing) or `actual`.
    pub fn about_op(
        rule: &str,
        message: &str,
        op: &json_patch::PatchOperation,
        missing: bool,
    ) -> Self {
        let op_json = serde_json::to_value(op).expect("patch operations serialize");
        let mut tokens = op.path().tokens().map(|t| t.decoded().into_owned());
        let (table, key) = match tokens.next().as_deref() {
            Some("data") => (tokens.next(), tokens.next()),
            _ => (None, None),
        };
        Finding {
            rule: rule.into(),
            message: message.into(),
            table,
            key,
            path: op.path().to_string(),
            before: None,
            expected: missing.then(|| op_json.clone()),
            actual: (!missing).then_some(op_json),
        }
    }
}

/// The findings of one check: exact count, first `KEEP` in memory, all retrievable.
#[derive(Debug, Default)]
pub struct Findings {
    pub total: u64,
    pub shown: Vec<Finding>,
    spill: Option<BufWriter<std::fs::File>>,
    /// Distinct (table, key) rows with findings, counted as findings arrive row by row.
    pub rows: u64,
    last_row: Option<(Option<String>, Option<String>)>,
}

impl Findings {
    pub fn push(&mut self, mut finding: Finding) -> Result<()> {
        finding.redact();
        self.total += 1;
        let row = (finding.table.clone(), finding.key.clone());
        if finding.key.is_some() && self.last_row.as_ref() != Some(&row) {
            self.rows += 1;
            self.last_row = Some(row);
        }
        if self.shown.len() < KEEP {
            self.shown.push(finding);
            return Ok(());
        }
        if self.spill.is_none() {
            let file = tempfile::tempfile().context("spilling findings")?;
            self.spill = Some(BufWriter::new(file));
        }
        let spill = self.spill.as_mut().expect("created above");
        serde_json::to_writer(&mut *spill, &finding).expect("findings serialize");
        spill.write_all(b"\n").context("spilling findings")
    }

    /// Record a finding that explains all the others (e.g. "rule matched no rows"): it is
    /// shown first, even beyond the `KEEP` in memory (a check pins at most one such finding,
    /// so memory stays bounded), and counted once.
    pub fn push_first(&mut self, mut finding: Finding) -> Result<()> {
        finding.redact();
        self.total += 1;
        if finding.key.is_some() {
            self.rows += 1;
        }
        self.shown.insert(0, finding);
        Ok(())
    }

    /// Visit every finding, the spilled ones too, in the order they were found.
    pub fn for_each(&mut self, mut f: impl FnMut(&Finding) -> Result<()>) -> Result<()> {
        for finding in &self.shown {
            f(finding)?;
        }
        if let Some(spill) = self.spill.as_mut() {
            spill.flush().context("reading spilled findings")?;
            let file = spill.get_mut();
            file.rewind().context("reading spilled findings")?;
            for line in BufReader::new(&*file).lines() {
                let line = line.context("reading spilled findings")?;
                let finding: Finding =
                    serde_json::from_str(&line).expect("spilled findings are ours");
                f(&finding)?;
            }
            file.seek(std::io::SeekFrom::End(0))
                .context("reading spilled findings")?;
        }
        Ok(())
    }
}

/// Does a failing check fail the run?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Findings make the rollback not proven (exit 1). Every check but new-shape by default.
    Error,
    /// Findings are reported, the verdict ignores them.
    Warning,
}

/// The result of one check.
#[derive(Debug)]
pub struct CheckResult {
    /// Stable id, used in findings and machine output: `expected-patch`, `rows-preserved`,
    /// `metadata-restored`, `after-state`, `revision`, `round-trip` (or a configured id).
    pub id: String,
    /// One line for humans: what was checked.
    pub name: String,
    pub passed: bool,
    pub severity: Severity,
    /// Extra lines for the report, e.g. per-table counts.
    pub notes: Vec<String>,
    pub findings: Findings,
}

impl CheckResult {
    pub fn new(id: &str, name: String, findings: Findings) -> Self {
        CheckResult {
            id: id.to_string(),
            name,
            passed: findings.total == 0,
            severity: Severity::Error,
            notes: Vec::new(),
            findings,
        }
    }

    /// Does this result fail the run?
    pub fn fails(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }
}

#[cfg(test)]
mod tests {
    use super::{Finding, Findings, KEEP};

    fn in_row(key: usize) -> Finding {
        Finding {
            key: Some(key.to_string()),
            table: Some("public.t".into()),
            ..Finding::plain("r", "m", format!("/data/public.t/{key}"))
        }
    }

    /// Beyond `KEEP`, findings spill to a temp file; a pinned first finding is still counted
    /// once, every row once, and every finding visited once, in order.
    #[test]
    fn push_first_after_the_spill_counts_nothing_twice() {
        let mut findings = Findings::default();
        let n = KEEP + 500;
        for key in 0..n {
            findings.push(in_row(key)).unwrap();
        }
        findings
            .push_first(Finding::plain("r", "explains the rest", ""))
            .unwrap();
        assert_eq!((findings.total, findings.rows), (n as u64 + 1, n as u64));
        let mut seen = Vec::new();
        findings
            .for_each(|f| {
                seen.push(f.key.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), n + 1);
        assert_eq!(seen[0], None);
        let keys: Vec<String> = seen[1..].iter().map(|k| k.clone().unwrap()).collect();
        let want: Vec<String> = (0..n).map(|k| k.to_string()).collect();
        assert_eq!(keys, want);
    }
}
