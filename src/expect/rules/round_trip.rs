//! `round-trip`: a round trip's two ends must be equal, but for ignored columns and volatile
//! paths.

use std::collections::BTreeSet;

use json_patch::PatchOperation;

use crate::diff::DiffSink;
use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};
use crate::volatile::Volatile;

/// A round trip's two ends (the state the dump started from, and the state after the
/// migration went down and up, or up and down): every operation is a finding, except those
/// inside a declared column (`schema.table.column`) or at a volatile path.
pub struct RoundTrip {
    name: String,
    ignore: BTreeSet<(String, String)>,
    volatile: Volatile,
    findings: Findings,
    ignored_ops: u64,
}

impl RoundTrip {
    /// `name` says which round trip this is, for the report.
    pub fn new(name: &str, ignore_columns: &[(String, String)], volatile: &Volatile) -> Self {
        RoundTrip {
            name: name.to_string(),
            ignore: ignore_columns.iter().cloned().collect(),
            volatile: volatile.clone(),
            findings: Findings::default(),
            ignored_ops: 0,
        }
    }

    /// The other direction could not run on the result (e.g. the re-upgrade fails on the
    /// downgraded database): one finding that says why.
    pub fn failed(&mut self, why: &str) -> Result<()> {
        self.findings.push(Finding::plain(
            "round-trip",
            format!("the migration cannot go up again from the downgraded database: {why}"),
            "",
        ))
    }

    pub fn finish(self) -> CheckResult {
        let ignored = if self.ignored_ops > 0 {
            format!(
                ", {} operations in ignored columns or volatile paths",
                self.ignored_ops
            )
        } else {
            String::new()
        };
        CheckResult::new(
            "round-trip",
            format!("{}{ignored}", self.name),
            self.findings,
        )
    }
}

impl DiffSink for RoundTrip {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let tokens: Vec<String> = op
            .path()
            .tokens()
            .map(|t| t.decoded().into_owned())
            .collect();
        let ignored_column = matches!(tokens.as_slice(),
            [data, table, _key, column, ..]
                if data == "data" && self.ignore.contains(&(table.clone(), column.clone())));
        if ignored_column || self.volatile.covers(&tokens) {
            self.ignored_ops += 1;
            return Ok(());
        }
        self.findings.push(Finding::about_op(
            "round-trip",
            "differs from the original",
            op,
            false,
        ))
    }
}
