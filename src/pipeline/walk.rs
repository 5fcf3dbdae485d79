//! walk = boot → restore → (copy before → one revision down → diff before/after + rules)
//! repeated until the target revision → report.
//!
//! The before-state of each step is the after-state of the previous one: the working database
//! is restored once and only ever moved down; `server.before_db()` is re-copied from it before each step.

use std::time::{Instant, SystemTime};

use super::{
    InUse, Marks, Selection, audit_inputs, boot_and_restore, data_lost, describe_step,
    diff_databases, dump_fact, server_fact, settle_tool, tables_after, tables_of,
};
use crate::cli::WalkPlan;
use crate::console::{note, progress};
use crate::diff::{DiffSink, SchemaChanges, Tee};
use crate::error::{Error, Result, Verdict};
use crate::expect::rules::{RowsPreserved, SchemaLoss};
use crate::expect::shape::NewShape;
use crate::migrate::{self, Kind, RunOptions, Step};
use crate::report::audit::{Audit, Section};
use crate::report::ci::Suite;
use crate::report::{Rendered, WalkReport, WalkStep, emit, show_rev};
use crate::restore::Dump;
use crate::server::Server;
use crate::tool::Tool;

fn as_list(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn json_list(revision: &[String]) -> serde_json::Value {
    serde_json::Value::Array(
        revision
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
}

/// What every step of a walk shares: the server, the plan, the settled tool and its step.
struct Walker<'a> {
    server: &'a Server,
    plan: &'a WalkPlan,
    in_use: InUse<'a>,
    step: Step,
    selection: Selection<'a>,
}

impl Walker<'_> {
    fn at_target(&self, revision: &[String]) -> bool {
        self.in_use
            .tool
            .unwrap_or(Tool::Custom)
            .at(revision, &self.plan.to)
    }

    /// The working database's revision as a list (empty: the tool's base, or none known).
    async fn revision(&self) -> Result<Vec<String>> {
        Ok(as_list(
            &self
                .in_use
                .revision(self.server, self.server.work_db())
                .await?,
        ))
    }
}

/// One step: copy, move one revision down, diff and check. `from` is the revision before it.
async fn step(w: &Walker<'_>, number: usize, from: Vec<String>) -> Result<WalkStep> {
    let (server, plan) = (w.server, w.plan);
    let started = Instant::now();
    server.drop_databases(&[server.before_db()]).await?;
    let (before_tables, missing) = tables_of(server, server.work_db(), &w.selection).await?;
    let since = Marks::next_xid(server).await?;
    server
        .copy_database(server.work_db(), server.before_db())
        .await?;
    let marks = Marks::take(server, plan.superuser).await?;
    progress(format!(
        "step {number}: {} from revision {}",
        w.step.describe(),
        show_rev(&from)
    ));
    let opts = RunOptions {
        kind: Kind::Downgrade,
        timeout: plan.step_timeout,
        superuser: plan.superuser,
    };
    let output = migrate::run(server, server.work_db(), &w.step, opts)
        .await
        .map_err(|e| {
            e.in_step(&format!(
                "walk step {number} from revision {}",
                show_rev(&from)
            ))
        })?;
    crate::console::detail(&output);
    let step_time = started.elapsed();
    let to = w.revision().await?;
    if to == from {
        // It connected (migrate::run saw it), yet the revision stayed: either the command
        // does not step down, or it migrated another database and only looked at this one.
        let (url_env, inherited) = match &w.step {
            Step::Command(spec) => (spec.url_env.as_str(), spec.inherited_connections()),
            Step::Sql(_) => ("PG*", Vec::new()),
        };
        let suspects = if inherited.is_empty() {
            String::new()
        } else {
            format!(
                "; or it migrated another database: it inherits {} (--isolate-env drops them)",
                inherited.join(", ")
            )
        };
        // With the user's own revision query, the query may be what does not see the move.
        let query = if plan.input.migrations.revision_sql.is_some() {
            "; or --revision-sql does not see the move (it must return the current revision, e.g. the latest applied)"
        } else {
            ""
        };
        return Err(Error::Run(format!(
            "walk step {number}: {} left the revision at {}; the step command must move exactly one revision down (--step-cmd) on the database it gets in {url_env} and PG*{query}{suspects}",
            w.step.describe(),
            show_rev(&from),
        )));
    }

    let started = Instant::now();
    let after_tables = tables_after(server, server.work_db(), &w.selection).await?;
    if number == 1 {
        // A wanted table on neither side of the first step is a typo; later, one that an
        // earlier step dropped is simply gone (that step reported it dropped).
        w.selection
            .require(&missing, &after_tables, server, server.work_db())
            .await?;
    }
    let unwritten = marks.unwritten(
        &Marks::take(server, plan.superuser).await?,
        since,
        &before_tables,
        &after_tables,
    );
    let mut rows_preserved = RowsPreserved::default();
    let mut new_shape = plan.new_shape.map(NewShape::new);
    let mut schema = SchemaChanges::default();
    let mut schema_loss = SchemaLoss::default();
    let summary = {
        let mut sinks: Vec<&mut dyn DiffSink> =
            vec![&mut rows_preserved, &mut schema, &mut schema_loss];
        sinks.extend(new_shape.iter_mut().map(|n| n as &mut dyn DiffSink));
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
    let (losses, lost) = data_lost(
        server,
        server.before_db(),
        schema_loss.candidates,
        &summary.tables,
        &plan.allow_lost,
        false,
        &w.selection,
    )
    .await?;
    let mut results = vec![rows_preserved.finish(), lost];
    if let Some(n) = new_shape {
        results.push(n.finish()?);
    }
    schema.revision = (json_list(&from), json_list(&to));
    Ok(WalkStep {
        from,
        to,
        output: crate::error::tail(&output, 200),
        phases: vec![("step", step_time), ("diff+check", started.elapsed())],
        summary,
        schema,
        losses,
        results,
    })
}

pub async fn walk(plan: &WalkPlan) -> Result<Verdict> {
    let started_at = SystemTime::now();
    plan.step.validate()?;
    plan.step.note_inherited_connections();
    let mut phases = Vec::new();
    let (dump, server) = boot_and_restore(&plan.run, &plan.input, &mut phases).await?;
    super::note_superuser(&server, plan.superuser);
    let in_use = settle_tool(&server, &plan.input.migrations).await?;
    let start = as_list(&in_use.revision(&server, server.work_db()).await?);
    if start.is_empty() && plan.to != "base" {
        return Err(Error::Config(format!(
            "{}: no revision found (no migration tool's bookkeeping table, or it is empty); name the tool with --tool, or pass --revision-sql",
            dump.path.display()
        )));
    }
    let w = Walker {
        server: &server,
        plan,
        step: plan.step.resolve(in_use.tool, &plan.input.migrations)?,
        selection: Selection {
            wanted: plan.input.tables.clone(),
            exclude: &plan.input.exclude,
            bookkeeping: in_use.bookkeeping(),
            dump: &dump.path,
        },
        in_use,
    };
    if w.at_target(&start) {
        return Err(Error::Config(format!(
            "{} is already at revision {}: nothing to walk; pass an older --to",
            dump.path.display(),
            plan.to
        )));
    }
    let mut steps: Vec<WalkStep> = Vec::new();
    let mut current = start;
    let outcome = loop {
        if steps.len() == plan.max_steps {
            break Err(Error::Run(format!(
                "revision {} not reached after {} steps (now at {}); raise --max-steps or check --to",
                plan.to,
                plan.max_steps,
                show_rev(&current)
            )));
        }
        if current.is_empty() {
            break Err(Error::Run(format!(
                "reached base without passing revision {}; check --to",
                plan.to
            )));
        }
        match step(&w, steps.len() + 1, current.clone()).await {
            Ok(s) => {
                current = s.to.clone();
                steps.push(s);
                if w.at_target(&current) {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };

    // An acknowledgement no step needed is stale, once for the whole walk.
    for name in &plan.allow_lost {
        let used = steps.iter().flat_map(|s| &s.losses);
        if !used.clone().any(|l| l.count > 0 && &l.name == name) {
            note(format!("allow_lost names {name}, which no step lost"));
        }
    }
    let report = WalkReport {
        dump: &dump.path,
        dump_format: dump.format.name(),
        pg_dump_version: dump.pg_dump_version.as_deref(),
        server: server_fact(&server),
        step_cmd: w.step.describe(),
        to: &plan.to,
        phases: &phases,
        steps: &mut steps,
        complete: outcome.is_ok(),
    };
    // What was walked is reported even when a step fails: it is what the user needs to see.
    let mut run = WalkRun {
        plan,
        step: describe_step(&w.step),
        dump: &dump,
        started: started_at,
        report,
    };
    emit(&plan.outputs, &mut run)?;
    let report = run.report;
    outcome?;
    Ok(Verdict::of(report.proven()))
}

/// A whole `walk` as its outputs render it (`report::emit`).
struct WalkRun<'a> {
    plan: &'a WalkPlan,
    /// The step command as it ran, and where.
    step: String,
    dump: &'a Dump,
    started: SystemTime,
    report: WalkReport<'a>,
}

impl Rendered for WalkRun<'_> {
    fn write_human(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.report.write_human(out)
    }

    fn write_json(&mut self, out: &mut dyn std::io::Write) -> Result<()> {
        self.report.write_json(out)
    }

    fn suites(&self) -> Vec<Suite<'_>> {
        self.report
            .steps
            .iter()
            .map(|s| Suite {
                name: s.title(),
                time: s.phases.iter().map(|(_, d)| *d).sum(),
                results: &s.results,
            })
            .collect()
    }

    fn audit(&self) -> Result<Audit<'_>> {
        let report = &self.report;
        Ok(Audit {
            command: "walk",
            proven: report.proven(),
            complete: report.complete,
            started: self.started,
            facts: vec![
                ("dump".into(), dump_fact(self.dump)),
                ("server".into(), report.server.clone()),
                ("step".into(), self.step.clone()),
                (
                    "walked".into(),
                    format!("{} steps, down to {}", report.steps.len(), self.plan.to),
                ),
            ],
            inputs: audit_inputs(&self.plan.input, &[], None)?,
            phases: report.phases,
            sections: report
                .steps
                .iter()
                .map(|s| Section {
                    title: s.title(),
                    headlines: s.headlines(),
                    phases: &s.phases,
                    tables: &s.summary.tables,
                    schema: &s.schema.ops,
                    output: &s.output,
                    results: &s.results,
                })
                .collect(),
        })
    }
}
