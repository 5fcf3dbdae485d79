//! The report of a `check`: human text and the result JSON, for one case or several.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::expect::rules::Loss;

/// What one `check` run did: rendered for humans (`write_human`) and machines (`write_json`).
pub struct CheckReport<'a> {
    /// The `[[case]]` name, when the config has cases.
    pub case: Option<&'a str>,
    pub dump: &'a Path,
    pub dump_format: &'a str,
    pub pg_dump_version: Option<&'a str>,
    pub server: String,
    pub downgrade: String,
    /// The downgrade's own output (stdout and stderr), its last 200 lines.
    pub downgrade_output: &'a str,
    /// The migration tool whose revision the report shows (`None`: none known).
    pub tool: Option<&'static str>,
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
        write_revision(out, self.schema, self.tool)?;
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
        let mut head = json!({
            "format": RESULT_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "dump": {"path": self.dump, "format": self.dump_format, "pg_dump_version": self.pg_dump_version},
            "server": self.server,
            "upgrade": self.upgrade,
            "downgrade": self.downgrade,
            "downgrade_output": output_lines(self.downgrade_output),
            "revision": revision_json(self.schema, self.tool),
            "timing_seconds": timing_json(self.phases),
            "tables": self.summary.tables,
            "patch": patch_json(self.summary),
            "data_lost": losses_json(self.losses),
            "schema": self.schema.ops,
            "checks": checks_json(self.results),
        });
        if let Some(case) = self.case {
            head["case"] = json!(case);
        }
        write!(out, "{},\n  ", open_object(&head, "")).context("writing the result")?;
        write_findings_json(out, self.results, "  ")?;
        out.write_all(b"\n}\n").context("writing the result")
    }
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
    if n == 0 && !run_failed {
        writeln!(
            out,
            "no case in this shard: nothing proven or disproven here; pgsnapdiff merge-results gives the verdict over all shards"
        )
    } else if failed.is_empty() && !run_failed && n == 1 {
        writeln!(
            out,
            "rollback proven (case {})",
            reports[0].case.unwrap_or("?")
        )
    } else if failed.is_empty() && !run_failed {
        writeln!(out, "rollback proven in all {n} cases")
    } else {
        write_not_proven(out, &failed, n)
    }
}

/// The verdict line of cases not all proven: the failed cases, or else the baselines check.
pub(super) fn write_not_proven(out: &mut dyn Write, failed: &[&str], n: usize) -> io::Result<()> {
    if failed.is_empty() {
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
    shard: Option<(usize, usize, usize)>,
    reports: &mut [CheckReport],
    run: &mut [CheckResult],
) -> Result<()> {
    let mut head = json!({
        "format": CASES_FORMAT,
        "verdict": if proven { "proven" } else { "not proven" },
        "checks": checks_json(run),
    });
    if let Some((index, of, cases)) = shard {
        head["shard"] = json!({"index": index, "of": of, "cases": cases});
    }
    write!(out, "{},\n  ", open_object(&head, "")).context("writing the result")?;
    write_findings_json(out, run, "  ")?;
    write!(out, ",\n  \"cases\": [").context("writing the result")?;
    for (i, report) in reports.iter_mut().enumerate() {
        let mut text = Vec::new();
        report.write_json(&mut text)?;
        let text = String::from_utf8(text).expect("JSON is UTF-8");
        let text = text.trim_end().replace('\n', "\n    ");
        let sep = if i == 0 { "\n    " } else { ",\n    " };
        write!(out, "{sep}{text}").context("writing the result")?;
    }
    out.write_all(b"\n  ]\n}\n").context("writing the result")
}

/// Identifies the JSON of a `check` with `[[case]]`s.
pub const CASES_FORMAT: &str = "pgsnapdiff-results/1";

/// Identifies the result JSON format.
pub const RESULT_FORMAT: &str = "pgsnapdiff-result/1";
