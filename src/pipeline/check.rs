//! check = boot once → per case: restore → [copy original → upgrade] → copy before →
//!         downgrade → diff before/after (+ rules) → [diff original/after]
//!         → [re-upgrade → diff before/re-upgraded] → report.
//!
//! Each state is a `CREATE DATABASE ... TEMPLATE` copy taken before the next step runs; states
//! are then streamed side by side, so memory does not grow with the number of rows. Several
//! cases (`[[case]]`) share one server; each starts from freshly created databases.

use std::time::{Duration, Instant, SystemTime};

use super::{
    InUse, Marks, Selection, audit_inputs, boot, data_lost, describe_step, diff_databases,
    dump_fact, restore_work, server_fact, settle_tool, tables_after, tables_of, warn_keyless,
};
use crate::atomic::AtomicFile;
use crate::baseline::{self, AfterSnapshot, Redacting};
use crate::cli::{CheckPlan, CheckRunPlan, RoundTripDirection, StepChoice};
use crate::console::{note, progress};
use crate::diff::{DiffSink, SchemaChanges, Summary, Tee};
use crate::error::{Context, Error, Result, Verdict};
use crate::expect::patch::ExpectedPatch;
use crate::expect::rules::{
    self, AfterState, Loss, MetadataRestored, RoundTrip, RowsPreserved, SchemaLoss,
};
use crate::expect::shape::NewShape;
use crate::expect::{CheckResult, Finding, Findings};
use crate::migrate::{self, Kind, Ran, RunOptions, Step};
use crate::report::audit::{self, Audit, Section};
use crate::report::ci::Suite;
use crate::report::{CheckReport, PatchWriter, Rendered, emit};
use crate::restore::Dump;
use crate::server::Server;

/// The row counts of a report section without a diff (the baselines check).
static NO_TABLES: std::collections::BTreeMap<String, crate::diff::TableCounts> =
    std::collections::BTreeMap::new();

/// What one case found.
struct CaseOutcome {
    /// The downgrade that ran (the tool's own, once settled), for the reports.
    downgrade: Option<String>,
    /// The downgrade's own output (stdout and stderr), its last lines.
    downgrade_output: String,
    /// The migration tool settled for the case.
    tool: Option<crate::tool::Tool>,
    phases: Vec<(&'static str, Duration)>,
    summary: Summary,
    schema: SchemaChanges,
    losses: Vec<Loss>,
    results: Vec<CheckResult>,
}

impl CaseOutcome {
    /// A case that stopped on an error: one failing `error` check that carries the message.
    fn failed(name: &str, e: &Error) -> Result<CaseOutcome> {
        let mut findings = Findings::default();
        findings.push(Finding::plain("error", e.to_string(), ""))?;
        let name = format!("case {name} stopped on an error");
        Ok(CaseOutcome {
            downgrade: None,
            downgrade_output: String::new(),
            tool: None,
            phases: Vec::new(),
            summary: Summary::default(),
            schema: SchemaChanges::default(),
            losses: Vec::new(),
            results: vec![CheckResult::new("error", name, findings)],
        })
    }
}

/// Loaded before any work, so that a bad baseline costs no restore.
struct Prepared {
    expected: Option<ExpectedPatch>,
    /// The pending baseline (`baseline::pending_of`), committed only on a mismatch, never in
    /// check mode.
    pending: Option<PatchWriter<AtomicFile>>,
    /// Check mode (`--check`, CI=true), run-wide.
    check_mode: bool,
}

fn prepare(plan: &CheckPlan, check_mode: bool) -> Result<Prepared> {
    // Cheap checks first: a typo must not cost a restore.
    plan.downgrade.validate()?;
    if let Some(rt) = &plan.roundtrip {
        rt.upgrade.validate()?;
    }
    let expected = plan
        .expect_patch
        .as_deref()
        .map(|p| ExpectedPatch::load(p, &plan.volatile))
        .transpose()?;
    // The pending baseline, committed only on a mismatch, never in check mode.
    let pending = match (&plan.expect_patch, check_mode) {
        (Some(baseline), false) => {
            let path = baseline::pending_of(baseline);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
            }
            Some(PatchWriter::new(AtomicFile::create(&path)?))
        }
        _ => None,
    };
    Ok(Prepared {
        expected,
        pending,
        check_mode,
    })
}

async fn run_case(
    server: &Server,
    plan: &CheckPlan,
    dump: &Dump,
    prepared: Prepared,
) -> Result<CaseOutcome> {
    let Prepared {
        mut expected,
        mut pending,
        check_mode,
    } = prepared;
    let mut phases = Vec::new();
    restore_work(server, dump, &mut phases).await?;
    let in_use = settle_tool(server, &plan.input.migrations).await?;
    let downgrade = plan
        .downgrade
        .resolve(in_use.tool, &plan.input.migrations)?;
    // Tables the rules need are snapshotted even when --table narrows the rest.
    let mut wanted = plan.input.tables.clone();
    if !wanted.is_empty() {
        for rule in &plan.metadata_rules {
            if !wanted.contains(&rule.table) {
                wanted.push(rule.table.clone());
            }
        }
    }
    let selection = Selection {
        wanted,
        exclude: &plan.input.exclude,
        bookkeeping: in_use.bookkeeping(),
        dump: &dump.path,
    };

    let up_first = plan
        .roundtrip
        .as_ref()
        .filter(|rt| rt.direction == RoundTripDirection::UpFirst);
    if let Some(rt) = up_first {
        let started = Instant::now();
        server
            .copy_database(server.work_db(), server.original_db())
            .await?;
        progress(format!("running upgrade {}", rt.upgrade.describe()));
        let opts = RunOptions {
            kind: Kind::Upgrade,
            timeout: plan.downgrade_timeout,
            superuser: plan.downgrade_superuser,
        };
        migrate::run(server, server.work_db(), &rt.upgrade, opts).await?;
        phases.push(("upgrade", started.elapsed()));
    }
    let (before_tables, missing) = tables_of(server, server.work_db(), &selection).await?;
    warn_keyless(&before_tables);
    let started = Instant::now();
    let since = Marks::next_xid(server).await?;
    server
        .copy_database(server.work_db(), server.before_db())
        .await?;
    let marks = Marks::take(server, plan.downgrade_superuser).await?;
    phases.push(("copy", started.elapsed()));

    let started = Instant::now();
    progress(format!("running downgrade {}", downgrade.describe()));
    let opts = RunOptions {
        kind: Kind::Downgrade,
        timeout: plan.downgrade_timeout,
        superuser: plan.downgrade_superuser,
    };
    let downgrade_output = migrate::run(server, server.work_db(), &downgrade, opts).await?;
    crate::console::detail(&downgrade_output);
    phases.push(("downgrade", started.elapsed()));

    let started = Instant::now();
    progress("diffing before → after");
    let after_tables = tables_after(server, server.work_db(), &selection).await?;
    selection
        .require(&missing, &after_tables, server, server.work_db())
        .await?;
    let unwritten = marks.unwritten(
        &Marks::take(server, plan.downgrade_superuser).await?,
        since,
        &before_tables,
        &after_tables,
    );
    let mut writer = match &plan.patch_out {
        Some(path) => Some(PatchWriter::new(AtomicFile::create(path)?)),
        None => None,
    };
    let mut rows_preserved = RowsPreserved::default();
    let mut metadata: Vec<MetadataRestored> = plan
        .metadata_rules
        .iter()
        .cloned()
        .map(MetadataRestored::new)
        .collect();
    let mut after_state = (!plan.after.is_empty()).then(|| AfterState::new(&plan.after));
    let revision = (
        in_use.revision(server, server.before_db()).await?,
        in_use.revision(server, server.work_db()).await?,
    );
    let mut new_shape = plan.new_shape.map(NewShape::new);
    let mut schema = SchemaChanges::default();
    let mut schema_loss = SchemaLoss::default();
    let mut after_snapshot = match &plan.expect_after {
        Some(_) => Some(AfterSnapshot::new(&plan.volatile)?),
        None => None,
    };
    let summary = {
        // Patch outputs and the baseline see volatile values replaced; the rules see them all.
        let mut facing: Vec<&mut dyn DiffSink> = Vec::new();
        facing.extend(writer.iter_mut().map(|w| w as &mut dyn DiffSink));
        facing.extend(expected.iter_mut().map(|e| e as &mut dyn DiffSink));
        facing.extend(pending.iter_mut().map(|p| p as &mut dyn DiffSink));
        let mut facing = Tee(facing);
        let mut redacting = Redacting {
            volatile: &plan.volatile,
            inner: &mut facing,
        };
        let mut sinks: Vec<&mut dyn DiffSink> = vec![
            &mut rows_preserved,
            &mut schema,
            &mut schema_loss,
            &mut redacting,
        ];
        sinks.extend(metadata.iter_mut().map(|m| m as &mut dyn DiffSink));
        sinks.extend(after_state.iter_mut().map(|a| a as &mut dyn DiffSink));
        sinks.extend(new_shape.iter_mut().map(|a| a as &mut dyn DiffSink));
        sinks.extend(after_snapshot.iter_mut().map(|a| a as &mut dyn DiffSink));
        let (before, after) = (
            (server.before_db(), before_tables),
            (server.work_db(), after_tables),
        );
        diff_databases(
            server,
            before,
            after,
            unwritten,
            plan.input.jobs,
            &mut Tee(sinks),
        )
        .await?
    };
    if let Some(w) = writer {
        w.finish()?.commit()?;
    }
    // The revision is the tool's, read from its bookkeeping (or the user's query).
    schema.revision = revision;
    let mut results = Vec::new();
    if let (Some(e), Some(baseline)) = (expected, &plan.expect_patch) {
        let mut result = e.finish()?;
        baseline::settle(&mut result, baseline, check_mode, |_| match pending {
            Some(writer) => writer.finish()?.commit(),
            None => Ok(()),
        })?;
        results.push(result);
    }
    results.extend(judge_movement(
        plan,
        &downgrade,
        &in_use,
        &schema,
        &summary,
        &downgrade_output,
    )?);
    results.push(rows_preserved.finish());
    let (losses, lost) = data_lost(
        server,
        server.before_db(),
        schema_loss.candidates,
        &summary.tables,
        &plan.allow_lost,
        true,
        &selection,
    )
    .await?;
    results.push(lost);
    for m in metadata {
        results.push(m.finish()?);
    }
    if let Some(mut a) = after_state {
        let at = (in_use.revision_path(), in_use.revision_label());
        a.judge_revision(&schema.revision.1, in_use.tool, at)?;
        results.extend(a.finish()?);
    }
    if let Some(n) = new_shape {
        results.push(n.finish()?);
    }
    phases.push(("diff+check", started.elapsed()));

    if let Some(rt) = up_first {
        let started = Instant::now();
        progress("diffing original → after (round trip)");
        let (original_tables, _) = tables_of(server, server.original_db(), &selection).await?;
        let after_tables = tables_after(server, server.work_db(), &selection).await?;
        let name = "round trip: after upgrade + downgrade the data equals the original";
        let mut roundtrip = RoundTrip::new(name, &rt.ignore, &plan.volatile);
        let (original, after) = (
            (server.original_db(), original_tables),
            (server.work_db(), after_tables),
        );
        diff_databases(
            server,
            original,
            after,
            Default::default(),
            plan.input.jobs,
            &mut roundtrip,
        )
        .await?;
        results.push(roundtrip.finish());
        phases.push(("round trip", started.elapsed()));
    }
    let down_then_up = plan
        .roundtrip
        .as_ref()
        .filter(|rt| rt.direction == RoundTripDirection::DownThenUp);
    if let Some(rt) = down_then_up {
        // The main diff is done: the working database may move on, up again.
        let started = Instant::now();
        progress(format!(
            "running upgrade {} (round trip)",
            rt.upgrade.describe()
        ));
        let opts = RunOptions {
            kind: Kind::Upgrade,
            timeout: plan.downgrade_timeout,
            superuser: plan.downgrade_superuser,
        };
        let name = "round trip: after downgrade + upgrade the data equals the dump's";
        let mut roundtrip = RoundTrip::new(name, &rt.ignore, &plan.volatile);
        match migrate::run_judged(server, server.work_db(), &rt.upgrade, opts).await? {
            // The migration cannot go forward again from where the downgrade left it: the
            // round trip's finding, not a tool error.
            Ran::Failed(e) => roundtrip.failed(&e.to_string())?,
            Ran::Done(_) => {
                progress("diffing before → downgraded and upgraded again (round trip)");
                let (before_tables, _) = tables_of(server, server.before_db(), &selection).await?;
                let again_tables = tables_after(server, server.work_db(), &selection).await?;
                let (before, again) = (
                    (server.before_db(), before_tables),
                    (server.work_db(), again_tables),
                );
                diff_databases(
                    server,
                    before,
                    again,
                    Default::default(),
                    plan.input.jobs,
                    &mut roundtrip,
                )
                .await?;
            }
        }
        results.push(roundtrip.finish());
        phases.push(("round trip", started.elapsed()));
    }
    if let (Some(path), Some(snapshot)) = (&plan.expect_after, after_snapshot) {
        let started = Instant::now();
        progress(format!(
            "comparing the after-snapshot with {}",
            path.display()
        ));
        results.push(snapshot.check(path, check_mode).await?);
        phases.push(("after-snapshot", started.elapsed()));
    }

    Ok(CaseOutcome {
        downgrade: Some(downgrade.describe()),
        downgrade_output: crate::error::tail(&downgrade_output, 200),
        tool: in_use.tool,
        phases,
        summary,
        schema,
        losses,
        results,
    })
}

/// The downgrade must be seen to do something. A known revision that did not move while nothing
/// else changed means it migrated some other database (an error, exit 2); a revision that did
/// not move is the `revision` check's finding (unless `[expect] revision` says where it must
/// be); a downgrade that changed nothing at all is the `no-op` check's.
fn judge_movement(
    plan: &CheckPlan,
    downgrade: &Step,
    in_use: &InUse<'_>,
    schema: &SchemaChanges,
    summary: &Summary,
    downgrade_output: &str,
) -> Result<Vec<CheckResult>> {
    let mut results = Vec::new();
    if schema.revision_unmoved() && plan.after.revision.is_none() {
        if summary.ops() == 0 {
            let at = crate::report::show_rev(&schema.revision_before());
            return Err(Error::Downgrade {
                kind: Kind::Downgrade,
                problem: migrate::changed_nothing(downgrade, &at),
                output: crate::error::tail(downgrade_output, 30),
            });
        }
        results.push(rules::revision_unmoved(
            &schema.revision.0,
            in_use.revision_path(),
        )?);
    }
    results.extend(rules::no_op(summary.ops(), plan.allow_noop)?);
    Ok(results)
}

pub async fn check(run: &CheckRunPlan) -> Result<Verdict> {
    let started_at = SystemTime::now();
    let plans = &run.cases[..];
    // Cheap checks first: a typo must not cost a restore.
    let prepared: Vec<Prepared> = plans
        .iter()
        .map(|p| prepare(p, run.check_baselines))
        .collect::<Result<_>>()?;
    let dumps: Vec<Dump> = plans
        .iter()
        .map(|p| super::inspect(&p.input))
        .collect::<Result<_>>()?;
    for plan in plans {
        plan.downgrade.note_inherited_connections();
    }
    if let Some((shard, total)) = run.shard {
        note(format!(
            "shard {}/{}: {} of {total} case(s) here{}",
            shard.index,
            shard.of,
            plans.len(),
            if plans.is_empty() {
                ", nothing to boot; pgsnapdiff merge-results gives the verdict over all shards"
            } else {
                ""
            }
        ));
    }
    let mut phases = Vec::new();
    // Check mode: pending and orphaned baselines, over every case's baselines (chosen, in
    // this shard, or not: check mode writes none, so they can be read before the work).
    let mut run_results = Vec::new();
    if run.check_baselines && !run.baselines.is_empty() {
        run_results.push(baseline::check_result(&run.baselines)?);
    }
    // A shard may have no case: nothing to boot, an empty result for merge-results.
    let server = if plans.is_empty() {
        None
    } else {
        Some(boot(&run.run, &dumps, &mut phases).await?)
    };
    let Some(server) = server else {
        let proven = write_outputs(
            run,
            &[],
            String::new(),
            &[],
            &mut [],
            run_results,
            started_at,
        )?;
        return Ok(Verdict::of(proven));
    };
    super::note_superuser(&server, plans.iter().any(|p| p.downgrade_superuser));
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for ((plan, dump), prepared) in plans.iter().zip(&dumps).zip(prepared) {
        let Some(name) = &plan.name else {
            // Without [[case]], an error is the run's error, as for any single command.
            outcomes.push(run_case(&server, plan, dump, prepared).await?);
            continue;
        };
        progress(format!("case {name}"));
        // One case's error (a failing restore or downgrade) is reported in its place, and the
        // other cases still run; the run then exits 2.
        match run_case(&server, plan, dump, prepared).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                crate::report::error(&e);
                outcomes.push(CaseOutcome::failed(name, &e)?);
                errors.push(name.as_str());
            }
        }
    }
    let proven = write_outputs(
        run,
        &dumps,
        server_fact(&server),
        &phases,
        &mut outcomes,
        run_results,
        started_at,
    )?;
    if !errors.is_empty() {
        return Err(Error::Run(format!(
            "{} of {} cases stopped on an error ({}); their errors are above, the other cases are reported",
            errors.len(),
            plans.len(),
            errors.join(", ")
        )));
    }
    Ok(Verdict::of(proven))
}

/// A whole `check` as its outputs render it (`report::emit`).
struct CheckRun<'a> {
    plans: &'a [CheckPlan],
    dumps: &'a [Dump],
    server: String,
    reports: Vec<CheckReport<'a>>,
    /// Run-level checks (the baselines check), beside the cases' own.
    run_results: Vec<CheckResult>,
    /// No `[[case]]`: the one case's report is the whole report, as it always was.
    single: bool,
    proven: bool,
    started: SystemTime,
    boot_phases: &'a [(&'static str, Duration)],
    shard: Option<(crate::cli::Shard, usize)>,
}

impl Rendered for CheckRun<'_> {
    fn write_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::report::write_cases_human(out, &self.reports, &self.run_results, self.single)
    }

    fn write_json(&mut self, out: &mut dyn std::io::Write) -> Result<()> {
        if self.single {
            self.reports[0].write_json(out)
        } else {
            crate::report::write_cases_json(
                out,
                self.proven,
                self.shard.map(|(s, total)| (s.index, s.of, total)),
                &mut self.reports,
                &mut self.run_results,
            )
        }
    }

    fn suites(&self) -> Vec<Suite<'_>> {
        let cases = self
            .reports
            .iter()
            .map(|r| (r.suite_name(), r.phases, &*r.results));
        crate::report::ci::suites(cases, &self.run_results)
    }

    fn audit(&self) -> Result<Audit<'_>> {
        let mut inputs = Vec::new();
        let mut facts = vec![("server".to_string(), self.server.clone())];
        for ((plan, dump), report) in self.plans.iter().zip(self.dumps).zip(&self.reports) {
            let mut steps = Vec::new();
            if let StepChoice::Given(step) = &plan.downgrade {
                steps.push(("downgrade", step));
            }
            let case = plan
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let label = |what: &str| format!("{what}{case}");
            facts.push((label("dump"), dump_fact(dump)));
            facts.push((
                label("downgrade"),
                match &plan.downgrade {
                    StepChoice::Given(step) => describe_step(step),
                    StepChoice::ToolDefault(spec) => {
                        format!("{} in {}", report.downgrade, spec.cwd.display())
                    }
                },
            ));
            if let Some(rt) = &plan.roundtrip {
                steps.push(("upgrade", &rt.upgrade));
                facts.push((label("upgrade (round trip)"), describe_step(&rt.upgrade)));
            }
            for input in audit_inputs(&plan.input, &steps, plan.expect_patch.as_deref())? {
                if !inputs.iter().any(|i: &audit::Input| i.path == input.path) {
                    inputs.push(input);
                }
            }
        }
        let mut sections: Vec<Section> = self
            .reports
            .iter()
            .map(|r| Section {
                title: match r.case {
                    Some(name) => format!("case {name}: before → after the downgrade"),
                    None => "before → after the downgrade".into(),
                },
                headlines: std::iter::once(format!(
                    "patch: {}{}",
                    crate::report::patch_counts(r.summary),
                    r.patch_out
                        .map(|p| format!(", written to {}", p.display()))
                        .unwrap_or_default()
                ))
                .chain(
                    r.losses
                        .iter()
                        .filter(|l| l.count > 0)
                        .map(|l| format!("lost {}", crate::report::loss_line(l))),
                )
                .collect(),
                phases: r.phases,
                tables: &r.summary.tables,
                schema: &r.schema.ops,
                output: r.downgrade_output,
                results: r.results,
            })
            .collect();
        if !self.run_results.is_empty() {
            sections.push(Section {
                title: "baselines".into(),
                headlines: Vec::new(),
                phases: &[],
                tables: &NO_TABLES,
                schema: &[],
                output: "",
                results: &self.run_results,
            });
        }
        Ok(Audit {
            command: "check",
            proven: self.proven,
            complete: true,
            started: self.started,
            facts,
            inputs,
            phases: self.boot_phases,
            sections,
        })
    }
}

/// Everything the run writes, through the one output path (`report::emit`).
fn write_outputs(
    run_plan: &CheckRunPlan,
    dumps: &[Dump],
    server_text: String,
    boot_phases: &[(&'static str, Duration)],
    outcomes: &mut [CaseOutcome],
    mut run_results: Vec<CheckResult>,
    started_at: SystemTime,
) -> Result<bool> {
    let plans = &run_plan.cases[..];
    // A shard's result is always the cases' format, which merge-results reads.
    let single = plans.len() == 1 && plans[0].name.is_none() && run_plan.shard.is_none();
    if single {
        outcomes[0].results.append(&mut run_results);
    }
    if let Some(first) = outcomes.first_mut() {
        first.phases.splice(0..0, boot_phases.iter().copied());
    }
    let reports: Vec<CheckReport> = plans
        .iter()
        .zip(dumps)
        .zip(outcomes.iter_mut())
        .map(|((plan, dump), outcome)| CheckReport {
            case: plan.name.as_deref(),
            dump: &dump.path,
            dump_format: dump.format.name(),
            pg_dump_version: dump.pg_dump_version.as_deref(),
            server: server_text.clone(),
            downgrade: outcome
                .downgrade
                .clone()
                .unwrap_or_else(|| plan.downgrade.describe()),
            downgrade_output: &outcome.downgrade_output,
            tool: outcome.tool.map(crate::tool::Tool::name),
            upgrade: plan.roundtrip.as_ref().map(|r| match r.direction {
                RoundTripDirection::UpFirst => r.upgrade.describe(),
                RoundTripDirection::DownThenUp => {
                    format!("{} (after the downgrade: round trip)", r.upgrade.describe())
                }
            }),
            phases: &outcome.phases,
            summary: &outcome.summary,
            patch_out: plan.patch_out.as_deref(),
            schema: &outcome.schema,
            losses: &outcome.losses,
            results: &mut outcome.results,
        })
        .collect();
    let proven =
        reports.iter().all(CheckReport::proven) && !run_results.iter().any(CheckResult::fails);
    let built_in = [
        "rows-preserved",
        "data-lost",
        "no-op",
        crate::expect::shape::RULE,
    ];
    let weak: Vec<Option<&str>> = reports
        .iter()
        .filter(|r| r.results.iter().all(|c| built_in.contains(&c.id.as_str())))
        .map(|r| r.case)
        .collect();
    let mut run = CheckRun {
        plans,
        dumps,
        server: server_text,
        reports,
        run_results,
        single,
        proven,
        started: started_at,
        boot_phases,
        shard: run_plan.shard,
    };
    emit(&run_plan.outputs, &mut run)?;
    for case in weak {
        note(format!(
            "{}nothing but the built-in rule rows-preserved was checked; add --expect-patch or rules to prove the values",
            case.map(|c| format!("case {c}: ")).unwrap_or_default()
        ));
    }
    Ok(proven)
}
