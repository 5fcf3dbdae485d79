//! The committed expected patch, compared order-insensitively: both patches are multisets of
//! canonical operations (serde_json with sorted keys).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use json_patch::PatchOperation;

use super::{CheckResult, Finding, Findings};
use crate::diff::DiffSink;
use crate::error::{Error, Result};
use crate::volatile::Volatile;

fn canonical(op: &PatchOperation) -> String {
    serde_json::to_string(op).expect("patch operations serialize")
}

/// Read an RFC 6902 patch file.
pub fn read_patch(path: &Path) -> Result<Vec<PatchOperation>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let problem = if e.kind() == std::io::ErrorKind::NotFound {
            "no such patch file".to_string()
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
    /// No baseline yet: one finding says so, instead of every operation as unexpected.
    missing: bool,
    remaining: HashMap<String, (usize, PatchOperation)>,
    expected_ops: usize,
    unexpected: Vec<PatchOperation>,
    unexpected_total: u64,
}

/// Unexpected operations kept for the report (all are counted).
const KEEP_UNEXPECTED: usize = 100_000;

impl ExpectedPatch {
    /// The baseline at `path`, volatile values replaced as in the emitted patch; a missing
    /// file is a baseline yet to be written (a finding, not an error).
    pub fn load(path: &Path, volatile: &Volatile) -> Result<Self> {
        let missing = !path.exists();
        let ops = if missing {
            Vec::new()
        } else {
            read_patch(path)?
        };
        let expected_ops = ops.len();
        let mut remaining: HashMap<String, (usize, PatchOperation)> = HashMap::new();
        for op in ops {
            let op = volatile.op(&op);
            remaining.entry(canonical(&op)).or_insert((0, op)).0 += 1;
        }
        Ok(ExpectedPatch {
            path: path.to_path_buf(),
            missing,
            remaining,
            expected_ops,
            unexpected: Vec::new(),
            unexpected_total: 0,
        })
    }

    /// Findings sorted by path, so a removed row comes before the operations inside it.
    pub fn finish(self) -> Result<CheckResult> {
        if self.missing {
            let mut findings = Findings::default();
            let message = format!(
                "no baseline yet ({} operations emitted); review the pending one and accept it",
                self.unexpected_total
            );
            let path = self.path.display().to_string();
            findings.push(Finding::plain("expected-patch", message, path))?;
            return Ok(CheckResult::new(
                "expected-patch",
                format!("expected patch {} (missing)", self.path.display()),
                findings,
            ));
        }
        let mut all: Vec<(PatchOperation, bool)> = self
            .remaining
            .into_values()
            .flat_map(|(n, op)| std::iter::repeat_n((op, true), n))
            .chain(self.unexpected.into_iter().map(|op| (op, false)))
            .collect();
        all.sort_by_cached_key(|(op, missing)| (op.path().to_string(), !missing, canonical(op)));
        let mut findings = Findings::default();
        for (op, missing) in &all {
            let message = if *missing {
                "missing operation"
            } else {
                "unexpected operation"
            };
            findings.push(Finding::about_op("expected-patch", message, op, *missing))?;
        }
        let dropped = self.unexpected_total.saturating_sub(KEEP_UNEXPECTED as u64);
        findings.total += dropped;
        Ok(CheckResult::new(
            "expected-patch",
            format!(
                "expected patch {} ({} ops)",
                self.path.display(),
                self.expected_ops
            ),
            findings,
        ))
    }
}

impl DiffSink for ExpectedPatch {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        match self.remaining.get_mut(&canonical(op)) {
            Some((n, _)) if *n > 0 => *n -= 1,
            _ => {
                self.unexpected_total += 1;
                if self.unexpected.len() < KEEP_UNEXPECTED {
                    self.unexpected.push(op.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::read_patch;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Expected patches are files a user edits: any mutation is read or refused, never a
        /// panic.
        #[test]
        fn any_bytes_are_a_patch_or_an_error(data in crate::mutate::mutated(
            br#"[
  {"op":"replace","path":"/alembic_version/0","value":"a1"},
  {"op":"remove","path":"/data/public.t/1/a~1b"},
  {"op":"add","path":"/data/public.t/2","value":{"x":[1,2.50,null]}}
]
"#.to_vec()))
        {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.json");
            std::fs::write(&path, &data).unwrap();
            let _ = read_patch(&path);
        }
    }
}
