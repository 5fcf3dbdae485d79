//! `no-op` and the built-in `revision` movement: a downgrade must have changed something, and
//! moved a known revision.

use serde_json::Value;

use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};

/// The `no-op` check: a downgrade that changed nothing at all (0 operations) proves nothing.
pub fn no_op(ops: u64, allow: bool) -> Result<Option<CheckResult>> {
    if ops > 0 {
        return Ok(None);
    }
    let mut findings = Findings::default();
    let name = "no-op: the downgrade changed something".to_string();
    if allow {
        let mut result = CheckResult::new("no-op", name, findings);
        result.notes = vec!["it changed nothing (0 operations); allowed by allow_noop".into()];
        return Ok(Some(result));
    }
    findings.push(Finding::plain(
        "no-op",
        "the downgrade connected but changed nothing (0 operations): nothing was rolled back; if that is intended, set allow_noop = true",
        "",
    ))?;
    Ok(Some(CheckResult::new("no-op", name, findings)))
}

/// The revision did not move although one is known and none was expected: a finding of the
/// `revision` check.
pub fn revision_unmoved(revision: &Value, path: &str) -> Result<CheckResult> {
    let mut findings = Findings::default();
    findings.push(Finding {
        rule: "revision".into(),
        message: "the downgrade left the revision where it was".into(),
        table: None,
        key: None,
        path: path.into(),
        before: Some(revision.clone()),
        expected: None,
        actual: Some(revision.clone()),
    })?;
    Ok(CheckResult::new(
        "revision",
        format!(
            "revision: the downgrade moves {}",
            path.trim_start_matches('/')
        ),
        findings,
    ))
}
