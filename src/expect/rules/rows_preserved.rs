//! `rows-preserved` (built in): no row of a table that exists before and after may vanish.

use jsonptr::Pointer;
use serde_json::Value;

use super::data_path;
use crate::diff::DiffSink;
use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};

/// Built-in `rows-preserved`: no row of a table that exists before and after may vanish.
#[derive(Default)]
pub struct RowsPreserved {
    findings: Findings,
    both_sides: bool,
}

impl RowsPreserved {
    pub fn finish(self) -> CheckResult {
        CheckResult::new(
            "rows-preserved",
            "rule rows-preserved (no row disappears)".into(),
            self.findings,
        )
    }
}

impl DiffSink for RowsPreserved {
    fn table(&mut self, _name: &str, before: bool, after: bool) -> Result<()> {
        self.both_sides = before && after;
        Ok(())
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        if let (true, Some(b), None) = (self.both_sides, before, after) {
            self.findings.push(Finding {
                rule: "rows-preserved".into(),
                message: "row disappeared".into(),
                table: Some(table.into()),
                key: Some(key.into()),
                path: data_path(table, key, Pointer::root()),
                before: Some(b.clone()),
                expected: Some(b.clone()),
                actual: None,
            })?;
        }
        Ok(())
    }
}
