//! `pgsnapdiff merge-results`: the result JSON of several `check` runs (CI shards) read back
//! and rendered as one run, through the same outputs (`Rendered`).
//!
//! Invariants: a merged verdict is never better than its evidence. Every file must be a
//! `check` result; a case may appear once only; when the files carry shard numbers, every
//! shard `1..=N` must be there exactly once; a case that stopped on an error keeps its
//! failing `error` check (and `Merged::errors` lets the command exit 2).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use json_patch::PatchOperation;
use serde_json::{Value, json};

use super::audit::{Audit, Input, Section};
use super::ci::Suite;
use super::{CASES_FORMAT, RESULT_FORMAT, Rendered, write_results};
use crate::diff::TableCounts;
use crate::error::{Context, Error, Result};
use crate::expect::{CheckResult, Finding, Findings, Severity};

/// One case as its result file tells it.
struct Case {
    name: String,
    /// The file it came from.
    file: PathBuf,
    /// Its result object as read, findings included: the merged JSON's `cases` entry.
    object: Value,
    results: Vec<CheckResult>,
    phases: Vec<(&'static str, Duration)>,
    tables: BTreeMap<String, TableCounts>,
    schema: Vec<PatchOperation>,
    output: String,
}

/// Several results as one run.
pub struct Merged {
    inputs: Vec<PathBuf>,
    cases: Vec<Case>,
    /// Run-level checks (baselines), one per id: a failing one wins over a passing one.
    run_results: Vec<CheckResult>,
    started: SystemTime,
}

/// Phase names as `check` writes them (`timing_seconds`), for the audit report's tables.
const PHASES: &[&str] = &[
    "boot",
    "restore",
    "copy",
    "upgrade",
    "downgrade",
    "diff+check",
    "reupgrade",
    "roundtrip",
];

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::input(path, problem.into())
}

/// The check results of a result object (`checks` plus the `findings` that carry their id).
fn results_of(path: &Path, object: &Value) -> Result<Vec<CheckResult>> {
    let checks = object["checks"]
        .as_array()
        .ok_or_else(|| bad(path, "no \"checks\" list: not a pgsnapdiff check result"))?;
    let findings: Vec<Finding> = match object.get("findings") {
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|e| bad(path, format!("unreadable findings: {e}")))?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for check in checks {
        let id = check["id"].as_str().unwrap_or_default();
        let mut kept = Findings::default();
        for f in findings.iter().filter(|f| f.rule == id) {
            kept.push(f.clone())?;
        }
        // The count as the run saw it (findings past a check's limit are not in the file).
        kept.total = check["findings"].as_u64().unwrap_or(kept.total);
        let mut result = CheckResult::new(id, check["name"].as_str().unwrap_or(id).into(), kept);
        result.passed = check["passed"].as_bool().unwrap_or(false);
        result.severity =
            serde_json::from_value(check["severity"].clone()).unwrap_or(Severity::Error);
        result.notes = serde_json::from_value(check["notes"].clone()).unwrap_or_default();
        out.push(result);
    }
    Ok(out)
}

fn case_of(path: &Path, mut object: Value, fallback: &str) -> Result<Case> {
    let name = object["case"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| fallback.to_string());
    object["case"] = json!(name);
    let results = results_of(path, &object)?;
    let phases = object["timing_seconds"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let label = PHASES.iter().find(|p| **p == k)?;
                    Some((*label, Duration::from_secs_f64(v.as_f64().unwrap_or(0.0))))
                })
                .collect()
        })
        .unwrap_or_default();
    let tables = serde_json::from_value(object["tables"].clone()).unwrap_or_default();
    let schema = serde_json::from_value(object["schema"].clone()).unwrap_or_default();
    let output = object["downgrade_output"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    Ok(Case {
        name,
        file: path.to_path_buf(),
        object,
        results,
        phases,
        tables,
        schema,
        output,
    })
}

impl Merged {
    /// Read the result files; refuse anything that would make the merged verdict claim more
    /// than the files prove.
    pub fn load(files: &[PathBuf]) -> Result<Merged> {
        if files.is_empty() {
            return Err(Error::Config(
                "merge-results: no result file given; pass the --result-out files of every shard"
                    .into(),
            ));
        }
        let mut cases: Vec<Case> = Vec::new();
        let mut run_results: Vec<CheckResult> = Vec::new();
        let mut shards: BTreeMap<u64, PathBuf> = BTreeMap::new();
        let mut shard_count: Option<u64> = None;
        // The cases in all, as every shard counted them.
        let mut case_total: Option<(u64, PathBuf)> = None;
        let mut unsharded = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    bad(
                        path,
                        "no such file; did that shard run and write --result-out?",
                    )
                } else {
                    bad(path, format!("cannot read: {e}"))
                }
            })?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| bad(path, format!("not JSON ({e}); is the file complete?")))?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match value["format"].as_str() {
                Some(RESULT_FORMAT) => {
                    let fallback = value["dump"]["path"]
                        .as_str()
                        .and_then(|p| Path::new(p).file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or(stem);
                    cases.push(case_of(path, value, &fallback)?);
                    unsharded.push(path.clone());
                }
                Some(CASES_FORMAT) => {
                    match value.get("shard") {
                        Some(shard) => {
                            let (index, of) = (
                                shard["index"].as_u64().unwrap_or(0),
                                shard["of"].as_u64().unwrap_or(0),
                            );
                            if *shard_count.get_or_insert(of) != of {
                                return Err(bad(
                                    path,
                                    format!(
                                        "is shard {index}/{of}, but another file is of {} shards: were these runs of the same job?",
                                        shard_count.unwrap_or(0)
                                    ),
                                ));
                            }
                            let total = shard["cases"].as_u64().unwrap_or(0);
                            match &case_total {
                                Some((seen, other)) if *seen != total => {
                                    return Err(bad(
                                        path,
                                        format!(
                                            "counts {total} cases in all, {} counts {seen}: were these shards run with the same config and --case?",
                                            other.display()
                                        ),
                                    ));
                                }
                                Some(_) => {}
                                None => case_total = Some((total, path.clone())),
                            }
                            if let Some(first) = shards.insert(index, path.clone()) {
                                return Err(bad(
                                    path,
                                    format!(
                                        "is shard {index}/{of}, and so is {}: pass each shard's result once",
                                        first.display()
                                    ),
                                ));
                            }
                        }
                        None => unsharded.push(path.clone()),
                    }
                    for result in results_of(path, &value)? {
                        match run_results.iter_mut().find(|r| r.id == result.id) {
                            Some(seen) if seen.fails() || !result.fails() => {}
                            Some(seen) => *seen = result,
                            None => run_results.push(result),
                        }
                    }
                    for (i, case) in value["cases"].as_array().into_iter().flatten().enumerate() {
                        cases.push(case_of(path, case.clone(), &format!("{stem}-{}", i + 1))?);
                    }
                }
                Some(other) => {
                    return Err(bad(
                        path,
                        format!(
                            "is a {other} file; merge-results takes the --result-out files of `pgsnapdiff check`"
                        ),
                    ));
                }
                None => {
                    return Err(bad(path, "has no \"format\" key: not a pgsnapdiff result"));
                }
            }
        }
        if let Some(of) = shard_count {
            if !unsharded.is_empty() {
                return Err(bad(
                    &unsharded[0],
                    "is not a shard's result, but the others are: merge the results of one sharded job",
                ));
            }
            let missing: Vec<String> = (1..=of)
                .filter(|i| !shards.contains_key(i))
                .map(|i| format!("{i}/{of}"))
                .collect();
            if !missing.is_empty() {
                return Err(Error::Config(format!(
                    "merge-results: shard {} missing; a shard that did not report proves nothing, so nothing is merged (pass every shard's --result-out file)",
                    missing.join(", ")
                )));
            }
            if let Some((total, _)) = &case_total
                && *total != cases.len() as u64
            {
                return Err(Error::Config(format!(
                    "merge-results: the shards hold {} cases, but each counted {total} in all; nothing is merged",
                    cases.len()
                )));
            }
        }
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in cases.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(bad(
                    &pair[1].file,
                    format!(
                        "case {} is also in {}: each case must be in one file only",
                        pair[1].name,
                        pair[0].file.display()
                    ),
                ));
            }
        }
        Ok(Merged {
            inputs: files.to_vec(),
            cases,
            run_results,
            started: SystemTime::now(),
        })
    }

    pub fn proven(&self) -> bool {
        !self
            .cases
            .iter()
            .flat_map(|c| &c.results)
            .chain(&self.run_results)
            .any(CheckResult::fails)
    }

    /// The cases that stopped on an error in their run.
    pub fn errors(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| c.results.iter().any(|r| r.id == "error" && r.fails()))
            .map(|c| c.name.as_str())
            .collect()
    }

    pub fn case_count(&self) -> usize {
        self.cases.len()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "(none)".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

impl Rendered for Merged {
    fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        for case in &self.cases {
            let o = &case.object;
            writeln!(out, "== case {} ({})", case.name, case.file.display())?;
            writeln!(
                out,
                "dump      {} ({} format)",
                text(&o["dump"]["path"]),
                text(&o["dump"]["format"])
            )?;
            writeln!(out, "server    {}", text(&o["server"]))?;
            writeln!(out, "downgrade {}", text(&o["downgrade"]))?;
            if !o["revision"].is_null() {
                writeln!(
                    out,
                    "revision  {} → {} ({})",
                    text(&o["revision"]["before"]),
                    text(&o["revision"]["after"]),
                    text(&o["revision"]["tool"])
                )?;
            }
            let patch = &o["patch"];
            writeln!(
                out,
                "patch     {} operations ({} revision, {} schema, {} data)",
                text(&patch["operations"]),
                text(&patch["revision"]),
                text(&patch["schema"]),
                text(&patch["data"])
            )?;
            writeln!(out)?;
            write_results(out, &case.results)?;
            writeln!(out)?;
        }
        if !self.run_results.is_empty() {
            writeln!(out, "== baselines")?;
            write_results(out, &self.run_results)?;
            writeln!(out)?;
        }
        let failed: Vec<&str> = self
            .cases
            .iter()
            .filter(|c| c.results.iter().any(CheckResult::fails))
            .map(|c| c.name.as_str())
            .collect();
        let (n, files) = (self.cases.len(), self.inputs.len());
        if self.proven() {
            writeln!(
                out,
                "rollback proven in all {n} cases (merged from {files} result files)"
            )
        } else {
            super::check::write_not_proven(out, &failed, n)
        }
    }

    fn write_json(&mut self, out: &mut dyn Write) -> Result<()> {
        let mut findings = Vec::new();
        for r in &mut self.run_results {
            r.findings.for_each(|f| {
                findings.push(serde_json::to_value(f).expect("findings serialize"));
                Ok(())
            })?;
        }
        let checks = super::checks_json(&self.run_results);
        let merged = json!({
            "format": CASES_FORMAT,
            "verdict": if self.proven() { "proven" } else { "not proven" },
            "checks": checks,
            "findings": findings,
            "cases": self.cases.iter().map(|c| c.object.clone()).collect::<Vec<_>>(),
            "merged_from": self.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        let mut text = serde_json::to_string_pretty(&merged).expect("JSON values serialize");
        text.push('\n');
        out.write_all(text.as_bytes()).context("writing the result")
    }

    fn suites(&self) -> Vec<Suite<'_>> {
        let cases = self
            .cases
            .iter()
            .map(|c| (c.name.clone(), &c.phases[..], &c.results[..]));
        super::ci::suites(cases, &self.run_results)
    }

    fn audit(&self) -> Result<Audit<'_>> {
        let mut facts = Vec::new();
        for c in &self.cases {
            let o = &c.object;
            facts.push((format!("dump ({})", c.name), text(&o["dump"]["path"])));
            facts.push((format!("server ({})", c.name), text(&o["server"])));
            facts.push((format!("downgrade ({})", c.name), text(&o["downgrade"])));
        }
        let inputs = self
            .inputs
            .iter()
            .map(|p| Input::digest("result", p))
            .collect::<Result<Vec<_>>>()?;
        let sections = self
            .cases
            .iter()
            .map(|c| Section {
                title: format!("case {}: before → after the downgrade", c.name),
                headlines: vec![format!("from {}", c.file.display())],
                phases: &c.phases,
                tables: &c.tables,
                schema: &c.schema,
                output: &c.output,
                results: &c.results,
            })
            .chain((!self.run_results.is_empty()).then(|| Section {
                title: "baselines".into(),
                headlines: Vec::new(),
                phases: &[],
                tables: &EMPTY,
                schema: &[],
                output: "",
                results: &self.run_results,
            }))
            .collect();
        Ok(Audit {
            command: "check",
            proven: self.proven(),
            complete: true,
            started: self.started,
            facts,
            inputs,
            phases: &[],
            sections,
        })
    }
}

static EMPTY: BTreeMap<String, TableCounts> = BTreeMap::new();
