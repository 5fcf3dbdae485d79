//! The report of a `walk`: one section per revision, the losses of the whole walk, the walk JSON.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::expect::rules::Loss;

/// One step of a walk: revision `from` → `to`, what it changed, what the rules found.
pub struct WalkStep {
    pub from: Vec<String>,
    pub to: Vec<String>,
    /// The step command's own output (stdout and stderr), its last 200 lines.
    pub output: String,
    pub phases: Vec<(&'static str, Duration)>,
    pub summary: Summary,
    /// The `/schema/...` operations.
    pub schema: SchemaChanges,
    /// Tables and columns dropped or narrowed, with their counts.
    pub losses: Vec<Loss>,
    pub results: Vec<CheckResult>,
}

impl WalkStep {
    pub fn title(&self) -> String {
        format!("revision {} → {}", show_rev(&self.from), show_rev(&self.to))
    }

    /// (table, rows) this step removed from tables that exist on both sides (a dropped
    /// table's rows are not counted as removed: the drop is a schema change).
    fn lost(&self) -> Vec<(&str, u64)> {
        self.summary
            .tables
            .iter()
            .filter(|(_, c)| c.removed > 0)
            .map(|(t, c)| (t.as_str(), c.removed))
            .collect()
    }

    /// Every loss of the step, for humans: rows that disappeared, then tables and columns
    /// dropped or narrowed with data (acknowledged ones say so).
    pub fn headlines(&self) -> Vec<String> {
        let lost = self.lost().into_iter();
        let lost = lost.map(|(t, n)| format!("lost {n} rows of {t}"));
        let dropped = self.losses.iter().filter(|l| l.count > 0);
        lost.chain(dropped.map(|l| format!("lost {}", loss_line(l))))
            .collect()
    }

    /// (table, rows it had) for the tables this step dropped.
    fn dropped(&self) -> Vec<(&str, u64)> {
        self.summary
            .tables
            .iter()
            .filter(|(_, c)| c.dropped)
            .map(|(t, c)| (t.as_str(), c.rows_before))
            .collect()
    }
}

/// A revision set for humans: `0003`, `a+b` (merge heads), `base` (none).
pub fn show_rev(revision: &[String]) -> String {
    if revision.is_empty() {
        "base".into()
    } else {
        revision.join("+")
    }
}

/// What one `walk` did, step by step.
pub struct WalkReport<'a> {
    pub dump: &'a Path,
    pub dump_format: &'a str,
    pub pg_dump_version: Option<&'a str>,
    pub server: String,
    pub step_cmd: String,
    pub to: &'a str,
    pub phases: &'a [(&'static str, Duration)],
    pub steps: &'a mut [WalkStep],
    /// The walk reached `to` (false: a step failed; the error follows the report).
    pub complete: bool,
}

impl WalkReport<'_> {
    pub fn proven(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| s.results.iter().any(CheckResult::fails))
    }

    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let (dump, format, version) = (self.dump, self.dump_format, self.pg_dump_version);
        write_context(out, dump, format, version, &self.server)?;
        writeln!(
            out,
            "walk      {} per step, down to {}",
            self.step_cmd, self.to
        )?;
        writeln!(out, "timing    {}", phases_text(self.phases))?;
        for step in self.steps.iter() {
            writeln!(out)?;
            writeln!(out, "== {} ({})", step.title(), phases_text(&step.phases))?;
            for line in step.headlines() {
                let what = line.strip_prefix("lost ").unwrap_or(&line);
                writeln!(out, "lost      {what}")?;
            }
            write_tables(out, &step.summary)?;
            write_schema(out, &step.schema)?;
            writeln!(out, "patch     {}", patch_counts(&step.summary))?;
            write_results(out, &step.results)?;
        }
        writeln!(out)?;
        // Every loss of the whole walk, failing or acknowledged: the summary a reader keeps.
        let losses: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| {
                let title = s.title();
                s.headlines()
                    .into_iter()
                    .map(move |line| format!("{title}: {line}"))
            })
            .collect();
        if !losses.is_empty() {
            writeln!(out, "losses over the walk:")?;
            for loss in &losses {
                writeln!(out, "  {loss}")?;
            }
        }
        let failed: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.results.iter().any(CheckResult::fails))
            .map(WalkStep::title)
            .collect();
        let walked = format!(
            "{} step{}",
            self.steps.len(),
            if self.steps.len() == 1 { "" } else { "s" }
        );
        if !self.complete {
            writeln!(out, "walk stopped after {walked}: see the error below")?;
        }
        if failed.is_empty() {
            if !self.complete {
                return Ok(());
            }
            writeln!(out, "walk proven: {walked}, no check failed")
        } else {
            writeln!(
                out,
                "walk NOT proven: checks failed in {}",
                failed.join(", ")
            )
        }
    }

    /// The walk JSON (README "Walk JSON"): context, then one object per step with its counts,
    /// schema operations, checks and every finding.
    pub fn write_json(&mut self, out: &mut dyn Write) -> Result<()> {
        let head = json!({
            "format": WALK_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "complete": self.complete,
            "dump": {"path": self.dump, "format": self.dump_format, "pg_dump_version": self.pg_dump_version},
            "server": self.server,
            "step_cmd": self.step_cmd,
            "to": self.to,
            "timing_seconds": timing_json(self.phases),
        });
        write!(out, "{},\n  \"steps\": [", open_object(&head, "")).context("writing the result")?;
        for (i, step) in self.steps.iter_mut().enumerate() {
            let counts = |v: Vec<(&str, u64)>| -> serde_json::Map<String, Value> {
                v.into_iter()
                    .map(|(t, n)| (t.to_string(), json!(n)))
                    .collect()
            };
            let head = json!({
                "from": step.from,
                "to": step.to,
                "output": output_lines(&step.output),
                "timing_seconds": timing_json(&step.phases),
                "tables": step.summary.tables,
                "patch": patch_json(&step.summary),
                "lost_rows": counts(step.lost()),
                "dropped_tables": counts(step.dropped()),
                "data_lost": losses_json(&step.losses),
                "schema": step.schema.ops,
                "checks": checks_json(&step.results),
            });
            let sep = if i == 0 { "\n    " } else { ",\n    " };
            write!(out, "{sep}{},\n      ", open_object(&head, "    "))
                .context("writing the result")?;
            write_findings_json(out, &mut step.results, "      ")?;
            out.write_all(b"\n    }").context("writing the result")?;
        }
        let end: &[u8] = if self.steps.is_empty() {
            b"]\n}\n"
        } else {
            b"\n  ]\n}\n"
        };
        out.write_all(end).context("writing the result")
    }
}

/// Identifies the walk JSON format.
pub const WALK_FORMAT: &str = "pgsnapdiff-walk/1";
