//! Expectations in, findings out: the committed expected patch, and the built-in rules.
//!
//! Each checker is a `PatchSink` fed the same operation stream as the patch writer, so checking
//! costs no second pass and no memory per row. Comparison with an expected patch is
//! order-insensitive: both are multisets of canonical operations (serde_json with sorted keys).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use json_patch::PatchOperation;
use serde::Serialize;

use crate::diff::PatchSink;
use crate::error::{Error, Result};

/// Findings kept per checker for display; the count is always exact.
const KEEP: usize = 1000;

/// One reason the rollback is not proven.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// "expected-patch/missing", "expected-patch/unexpected", "rows-preserved".
    pub rule: String,
    /// JSON Pointer into the snapshot.
    pub path: String,
    /// The operation concerned, as JSON.
    pub op: serde_json::Value,
}

/// Findings of one check: the first `KEEP`, and how many there were in all.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Findings {
    pub total: u64,
    pub shown: Vec<Finding>,
}

impl Findings {
    fn push(&mut self, finding: Finding) {
        self.total += 1;
        if self.shown.len() < KEEP {
            self.shown.push(finding);
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub findings: Findings,
}

fn canonical(op: &PatchOperation) -> String {
    serde_json::to_string(op).expect("patch operations serialize")
}

fn finding(rule: &str, op: &PatchOperation) -> Finding {
    Finding {
        rule: rule.to_string(),
        path: op.path().to_string(),
        op: serde_json::to_value(op).expect("patch operations serialize"),
    }
}

/// Read an RFC 6902 patch file.
pub fn read_patch(path: &Path) -> Result<Vec<PatchOperation>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let problem = if e.kind() == std::io::ErrorKind::NotFound {
            "no such expected patch; write one with `pgsnapdiff check --patch-out FILE` and review it".to_string()
        } else {
            format!("cannot read: {e}")
        };
        Error::input(path, problem)
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::input(
            path,
            format!("not an RFC 6902 JSON Patch (an array of operations): {e}"),
        )
    })
}

/// Compares the emitted patch with an expected one.
pub struct ExpectedPatch {
    path: PathBuf,
    remaining: HashMap<String, (usize, PatchOperation)>,
    expected_ops: usize,
    unexpected: Findings,
}

impl ExpectedPatch {
    pub fn load(path: &Path) -> Result<Self> {
        let ops = read_patch(path)?;
        let expected_ops = ops.len();
        let mut remaining: HashMap<String, (usize, PatchOperation)> = HashMap::new();
        for op in ops {
            remaining.entry(canonical(&op)).or_insert((0, op)).0 += 1;
        }
        Ok(ExpectedPatch {
            path: path.to_path_buf(),
            remaining,
            expected_ops,
            unexpected: Findings::default(),
        })
    }

    /// Findings sorted by path, so a removed row comes before the operations inside it.
    pub fn finish(self) -> CheckResult {
        let mut all: Vec<Finding> = self
            .remaining
            .into_values()
            .flat_map(|(n, op)| std::iter::repeat_n(op, n))
            .map(|op| finding("expected-patch/missing", &op))
            .collect();
        all.extend(self.unexpected.shown);
        all.sort_by(|a, b| {
            (&a.path, &a.rule, a.op.to_string()).cmp(&(&b.path, &b.rule, b.op.to_string()))
        });
        let missing = all.iter().filter(|f| f.rule.ends_with("missing")).count() as u64;
        all.truncate(KEEP);
        let findings = Findings {
            total: missing + self.unexpected.total,
            shown: all,
        };
        CheckResult {
            name: format!(
                "expected patch {} ({} ops)",
                self.path.display(),
                self.expected_ops
            ),
            passed: findings.total == 0,
            findings,
        }
    }
}

impl PatchSink for ExpectedPatch {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        match self.remaining.get_mut(&canonical(op)) {
            Some((n, _)) if *n > 0 => *n -= 1,
            _ => self
                .unexpected
                .push(finding("expected-patch/unexpected", op)),
        }
        Ok(())
    }
}

/// Built-in rule `rows-preserved`: no row of a table that exists before and after may vanish.
#[derive(Default)]
pub struct RowsPreserved {
    findings: Findings,
}

impl RowsPreserved {
    pub fn finish(self) -> CheckResult {
        CheckResult {
            name: "rule rows-preserved (no row disappears)".to_string(),
            passed: self.findings.total == 0,
            findings: self.findings,
        }
    }
}

impl PatchSink for RowsPreserved {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        // `remove /data/T/K` is a lost row; `remove /data/T` is a dropped table (not this rule's).
        if let PatchOperation::Remove(r) = op {
            let mut tokens = r.path.tokens();
            if tokens.next().is_some_and(|t| t.decoded() == "data")
                && tokens.next().is_some()
                && tokens.next().is_some()
                && tokens.next().is_none()
            {
                self.findings.push(finding("rows-preserved", op));
            }
        }
        Ok(())
    }
}
