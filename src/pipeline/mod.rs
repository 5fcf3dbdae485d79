//! The commands, as compositions of the stages:
//! check = boot → restore → [copy original → upgrade] → copy before → downgrade →
//!         diff before/after (+ rules) → [diff original/after] → report.
//!
//! Each state is a `CREATE DATABASE ... TEMPLATE` copy taken before the next step runs; states
//! are then streamed side by side, so memory does not grow with the number of rows.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

pub mod walk;

use crate::baseline::{self, Redacting};
use crate::cli::{CheckPlan, InputPlan, OutputFormat, SnapshotPlan};
use crate::diff::{self, DiffSink, SchemaChanges, Tee};
use crate::downgrade::{self, Kind, RunOptions, Step};
use crate::error::{Error, Result, db_message};
use crate::expect::patch::ExpectedPatch;
use crate::expect::rules::{AfterState, MetadataRestored, RoundTrip, RowsPreserved};
use crate::expect::shape::NewShape;
use crate::report::audit::{self, Audit, Input, Section};
use crate::report::ci::{self, Suite};
use crate::report::{AtomicFile, CheckReport, PatchWriter, note, progress, secs};
use crate::restore::{self, Dump};
use crate::server::{OWNER_ROLE, Server};
use crate::snapshot::db::{self, DbSource, Table};
use crate::snapshot::file::{FileSource, write_source};

/// The database the dump is restored into and the downgrade runs on.
const WORK_DB: &str = "pgsnapdiff";
/// The untouched copy of the state the downgrade starts from.
const BEFORE_DB: &str = "pgsnapdiff_before";
/// Round trip only: the restored state before the upgrade.
const ORIGINAL_DB: &str = "pgsnapdiff_original";
/// Tables kept in the snapshot header rather than in `data`, unless named with --table.
const HEADER_TABLES: &[&str] = &["alembic_version"];

/// Inspect the dump, find binaries for it, boot, restore into `WORK_DB`.
async fn boot_and_restore(
    input: &InputPlan,
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<(Dump, Server)> {
    let dump = restore::inspect(&input.dump)?;
    let mut opts = input.binaries.clone();
    opts.min_major = dump.pg_dump_major();
    let bins = crate::server::resolve_binaries(&opts).await?;
    restore::check_compatible(&dump, &bins)?;

    let started = Instant::now();
    progress(format!(
        "starting PostgreSQL {} ({}, {})",
        bins.version,
        bins.origin,
        bins.bin_dir.display()
    ));
    let mut server_opts = input.server.clone();
    server_opts.space_needed = dump.space_estimate();
    let server = Server::start(bins, &server_opts).await?;
    phases.push(("boot", started.elapsed()));

    let started = Instant::now();
    progress(format!(
        "restoring {} ({} format)",
        dump.path.display(),
        dump.format.name()
    ));
    let admin = server.connect("postgres").await?;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {WORK_DB} OWNER {OWNER_ROLE} TEMPLATE template0"
        ))
        .await
        .map_err(|e| Error::Server(format!("creating database: {}", db_message(&e))))?;
    restore::restore(&server, &dump, WORK_DB).await?;
    phases.push(("restore", started.elapsed()));
    Ok((dump, server))
}

/// The tables to snapshot: every user table, or the ones named (`schema.table` or a bare name
/// that is unique across schemas).
fn select_tables(all: Vec<Table>, wanted: &[String], dump: &Path) -> Result<Vec<Table>> {
    if wanted.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|t| !HEADER_TABLES.contains(&t.table.as_str()))
            .collect());
    }
    let mut chosen: Vec<Table> = Vec::new();
    for name in wanted {
        let matches: Vec<&Table> = all
            .iter()
            .filter(|t| t.name == *name || (!name.contains('.') && t.table == *name))
            .collect();
        match matches.as_slice() {
            [one] => {
                if !chosen.iter().any(|c| c.name == one.name) {
                    chosen.push((*one).clone());
                }
            }
            [] => {
                let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
                return Err(Error::input(
                    dump,
                    format!(
                        "has no table {name}; tables there: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
            many => {
                let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
                return Err(Error::Config(format!(
                    "--table {name} is ambiguous ({}); write it as schema.table",
                    names.join(", ")
                )));
            }
        }
    }
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(chosen)
}

fn warn_keyless(tables: &[Table]) {
    for t in tables.iter().filter(|t| t.key == db::KeyRule::Content) {
        note(format!(
            "{} has no primary key or NOT NULL unique index; its rows are keyed by content hash, so a changed row shows as remove + add",
            t.name
        ));
    }
}

/// `CREATE DATABASE copy TEMPLATE source`: a file-level copy of a database nobody is using.
async fn copy_database(server: &Server, source: &str, copy: &str) -> Result<()> {
    let strategy = if server.binaries.major >= 15 {
        " STRATEGY FILE_COPY"
    } else {
        ""
    };
    server
        .connect("postgres")
        .await?
        .batch_execute(&format!(
            "CREATE DATABASE {copy} TEMPLATE {source}{strategy}"
        ))
        .await
        .map_err(|e| Error::Server(format!("copying database {source}: {}", db_message(&e))))
}

/// The tables of `dbname` to snapshot.
async fn tables_of(
    server: &Server,
    dbname: &str,
    wanted: &[String],
    dump: &Path,
) -> Result<Vec<Table>> {
    let client = server.connect(dbname).await?;
    select_tables(db::tables(&client).await?, wanted, dump)
}

/// Tables on the after side: all of them, or the ones also selected before.
async fn tables_after(
    server: &Server,
    dbname: &str,
    wanted: &[String],
    before: &[Table],
    dump: &Path,
) -> Result<Vec<Table>> {
    let client = server.connect(dbname).await?;
    let all = db::tables(&client).await?;
    if wanted.is_empty() {
        return select_tables(all, &[], dump);
    }
    Ok(all
        .into_iter()
        .filter(|t| before.iter().any(|b| b.name == t.name))
        .collect())
}

/// The files a report identifies by size and SHA-256: the dump, the config, the migration SQL
/// files, the expected patch.
fn audit_inputs(
    input: &InputPlan,
    steps: &[(&'static str, &Step)],
    expect_patch: Option<&Path>,
) -> Result<Vec<Input>> {
    let mut inputs = vec![Input::digest("dump", &input.dump)?];
    if let Some(config) = &input.config {
        inputs.push(Input::digest("config", config)?);
    }
    for (role, step) in steps {
        if let Step::Sql(files) = step {
            for file in files {
                inputs.push(Input::digest(role, file)?);
            }
        }
    }
    if let Some(path) = expect_patch {
        inputs.push(Input::digest("expected patch", path)?);
    }
    Ok(inputs)
}

/// A migration step for reports: the SQL files, or the command and where it ran.
fn describe_step(step: &Step) -> String {
    match step {
        Step::Sql(_) => step.describe(),
        Step::Command(spec) => format!("{} in {}", step.describe(), spec.cwd.display()),
    }
}

fn dump_fact(dump: &Dump) -> String {
    format!(
        "{} ({} format{})",
        dump.path.display(),
        dump.format.name(),
        dump.pg_dump_version
            .as_deref()
            .map(|v| format!(", pg_dump {v}"))
            .unwrap_or_default()
    )
}

pub async fn check(plan: &CheckPlan) -> Result<bool> {
    let started_at = SystemTime::now();
    // Cheap checks first: a typo must not cost a restore.
    plan.downgrade.validate()?;
    if let Some(rt) = &plan.roundtrip {
        rt.upgrade.validate()?;
    }
    let mut expected = plan
        .expect_patch
        .as_deref()
        .map(|p| ExpectedPatch::load(p, &plan.volatile))
        .transpose()?;
    // The pending baseline, committed only on a mismatch, never in check mode.
    let mut pending = match (&plan.expect_patch, plan.check_baselines) {
        (Some(baseline), false) => {
            let path = baseline::pending_of(baseline);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            }
            Some((path.clone(), PatchWriter::new(AtomicFile::create(&path)?)))
        }
        _ => None,
    };
    // Tables the rules need are snapshotted even when --table narrows the rest.
    let mut wanted = plan.input.tables.clone();
    if !wanted.is_empty() {
        for rule in &plan.metadata_rules {
            if !wanted.contains(&rule.table) {
                wanted.push(rule.table.clone());
            }
        }
    }

    let mut phases = Vec::new();
    let (dump, server) = boot_and_restore(&plan.input, &mut phases).await?;

    if let Some(rt) = &plan.roundtrip {
        let started = Instant::now();
        copy_database(&server, WORK_DB, ORIGINAL_DB).await?;
        progress(format!("running upgrade {}", rt.upgrade.describe()));
        let opts = RunOptions {
            kind: Kind::Upgrade,
            timeout: plan.downgrade_timeout,
            superuser: plan.downgrade_superuser,
        };
        downgrade::run(&server, WORK_DB, &rt.upgrade, opts).await?;
        phases.push(("upgrade", started.elapsed()));
    }
    let before_tables = tables_of(&server, WORK_DB, &wanted, &dump.path).await?;
    warn_keyless(&before_tables);
    let started = Instant::now();
    copy_database(&server, WORK_DB, BEFORE_DB).await?;
    phases.push(("copy", started.elapsed()));

    let started = Instant::now();
    progress(format!("running downgrade {}", plan.downgrade.describe()));
    let opts = RunOptions {
        kind: Kind::Downgrade,
        timeout: plan.downgrade_timeout,
        superuser: plan.downgrade_superuser,
    };
    downgrade::run(&server, WORK_DB, &plan.downgrade, opts).await?;
    phases.push(("downgrade", started.elapsed()));

    let started = Instant::now();
    progress("diffing before → after");
    let after_tables = tables_after(&server, WORK_DB, &wanted, &before_tables, &dump.path).await?;
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
    let mut new_shape = plan.new_shape.map(NewShape::new);
    let mut schema = SchemaChanges::default();
    let summary = {
        // Patch outputs and the baseline see volatile values replaced; the rules see them all.
        let mut facing: Vec<&mut dyn DiffSink> = Vec::new();
        facing.extend(writer.iter_mut().map(|w| w as &mut dyn DiffSink));
        facing.extend(expected.iter_mut().map(|e| e as &mut dyn DiffSink));
        facing.extend(pending.iter_mut().map(|(_, p)| p as &mut dyn DiffSink));
        let mut facing = Tee(facing);
        let mut redacting = Redacting {
            volatile: &plan.volatile,
            inner: &mut facing,
        };
        let mut sinks: Vec<&mut dyn DiffSink> =
            vec![&mut rows_preserved, &mut schema, &mut redacting];
        sinks.extend(metadata.iter_mut().map(|m| m as &mut dyn DiffSink));
        sinks.extend(after_state.iter_mut().map(|a| a as &mut dyn DiffSink));
        sinks.extend(new_shape.iter_mut().map(|a| a as &mut dyn DiffSink));
        let before = server.connect(BEFORE_DB).await?;
        let after = server.connect(WORK_DB).await?;
        diff::diff(
            &mut DbSource::new(&before, before_tables),
            &mut DbSource::new(&after, after_tables),
            &mut Tee(sinks),
        )
        .await?
    };
    if let Some(w) = writer {
        w.finish()?.commit()?;
    }
    let mut results = Vec::new();
    if let Some(e) = expected {
        let mut result = e.finish()?;
        match pending {
            Some((path, writer)) if !result.passed => {
                writer.finish()?.commit()?;
                result.notes.push(format!(
                    "pending baseline written: {}; review it with `pgsnapdiff review` (or `pgsnapdiff accept`/`reject`)",
                    path.display()
                ));
            }
            Some((path, _)) if path.exists() => {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                note(format!(
                    "removed {}: the baseline matches now",
                    path.display()
                ));
            }
            _ if plan.check_baselines && !result.passed => result
                .notes
                .push("check mode (--check or CI=true): no pending baseline written".into()),
            _ => {}
        }
        results.push(result);
    }
    results.push(rows_preserved.finish());
    for m in metadata {
        results.push(m.finish()?);
    }
    if let Some(a) = after_state {
        results.extend(a.finish()?);
    }
    if let Some(n) = new_shape {
        results.push(n.finish()?);
    }
    if plan.check_baselines {
        let used: Vec<_> = plan.expect_patch.iter().cloned().collect();
        if !used.is_empty() {
            results.push(baseline::check_result(&used)?);
        }
    }
    phases.push(("diff+check", started.elapsed()));

    if let Some(rt) = &plan.roundtrip {
        let started = Instant::now();
        progress("diffing original → after (round trip)");
        let original_tables = tables_of(&server, ORIGINAL_DB, &wanted, &dump.path).await?;
        let after_tables =
            tables_after(&server, WORK_DB, &wanted, &original_tables, &dump.path).await?;
        let mut roundtrip = RoundTrip::new(&rt.ignore);
        let original = server.connect(ORIGINAL_DB).await?;
        let after = server.connect(WORK_DB).await?;
        diff::diff(
            &mut DbSource::new(&original, original_tables),
            &mut DbSource::new(&after, after_tables),
            &mut roundtrip,
        )
        .await?;
        results.push(roundtrip.finish());
        phases.push(("round trip", started.elapsed()));
    }

    let mut report = CheckReport {
        dump: &dump.path,
        dump_format: dump.format.name(),
        pg_dump_version: dump.pg_dump_version.as_deref(),
        server: format!(
            "PostgreSQL {} ({}, {})",
            server.binaries.version,
            server.binaries.origin,
            server.binaries.bin_dir.display()
        ),
        downgrade: plan.downgrade.describe(),
        upgrade: plan.roundtrip.as_ref().map(|r| r.upgrade.describe()),
        phases: &phases,
        summary: &summary,
        patch_out: plan.patch_out.as_deref(),
        results: &mut results,
    };
    let mut stdout = std::io::stdout().lock();
    let err = |e| Error::io("writing the report", e);
    let total = phases.iter().map(|(_, d)| *d).sum();
    let name = dump.path.file_name().unwrap_or(dump.path.as_os_str());
    let name = name.to_string_lossy().into_owned();
    match plan.format {
        OutputFormat::Json => report.write_json(&mut stdout)?,
        format => {
            let suites = [Suite {
                name,
                time: total,
                results: report.results,
            }];
            match format {
                OutputFormat::Junit => ci::write_junit(&mut stdout, &suites).map_err(err)?,
                OutputFormat::Github => {
                    ci::write_github(&mut stdout, &suites).map_err(err)?;
                    report.write_human(&mut stdout).map_err(err)?;
                }
                _ => report.write_human(&mut stdout).map_err(err)?,
            }
        }
    }
    if let Some(path) = &plan.result_out {
        let mut file = AtomicFile::create(path)?;
        report.write_json(&mut file)?;
        file.commit()?;
    }
    if let Some(path) = &plan.report {
        let mut steps = vec![("downgrade", &plan.downgrade)];
        let mut facts = vec![
            ("dump", dump_fact(&dump)),
            ("server", report.server.clone()),
            ("downgrade", describe_step(&plan.downgrade)),
        ];
        if let Some(rt) = &plan.roundtrip {
            steps.push(("upgrade", &rt.upgrade));
            facts.push(("upgrade (round trip)", describe_step(&rt.upgrade)));
        }
        facts.push((
            "patch",
            format!(
                "{} operations ({} schema, {} data){}",
                summary.ops(),
                summary.schema_ops,
                summary.data_ops,
                plan.patch_out
                    .as_ref()
                    .map(|p| format!(", written to {}", p.display()))
                    .unwrap_or_default()
            ),
        ));
        let audit = Audit {
            command: "check",
            proven: report.proven(),
            complete: true,
            started: started_at,
            facts,
            inputs: audit_inputs(&plan.input, &steps, plan.expect_patch.as_deref())?,
            phases: &phases,
            sections: vec![Section {
                title: "before → after the downgrade".into(),
                headlines: Vec::new(),
                phases: &[],
                tables: summary
                    .tables
                    .iter()
                    .map(|(t, c)| (t.as_str(), c))
                    .collect(),
                schema: &schema.0,
                results: report.results,
            }],
        };
        audit::write(&audit, path)?;
    }
    let built_in = ["rows-preserved", crate::expect::shape::RULE];
    if report
        .results
        .iter()
        .all(|r| built_in.contains(&r.id.as_str()))
    {
        note(
            "nothing but the built-in rule rows-preserved was checked; add --expect-patch or rules to prove the values",
        );
    }
    Ok(report.proven())
}

pub async fn snapshot(plan: &SnapshotPlan) -> Result<()> {
    let mut phases = Vec::new();
    let (dump, server) = boot_and_restore(&plan.input, &mut phases).await?;
    let started = Instant::now();
    let client = server.connect(WORK_DB).await?;
    let tables = select_tables(db::tables(&client).await?, &plan.input.tables, &dump.path)?;
    warn_keyless(&tables);
    let mut source = DbSource::new(&client, tables);
    match &plan.out {
        Some(path) => write_source(&mut source, AtomicFile::create(path)?)
            .await?
            .commit()?,
        None => {
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            write_source(&mut source, out).await?;
        }
    }
    progress(format!("snapshot written in {}", secs(started.elapsed())));
    Ok(())
}

/// Diff two snapshot files; true when they are identical.
pub async fn diff_files(before: &Path, after: &Path, out: Option<&Path>) -> Result<bool> {
    let mut b = FileSource::open(before)?;
    let mut a = FileSource::open(after)?;
    let none = baseline::Volatile::default();
    let summary = match out {
        Some(path) => {
            let mut writer = PatchWriter::new(AtomicFile::create(path)?);
            let mut redacting = Redacting {
                volatile: &none,
                inner: &mut writer,
            };
            let summary = diff::diff(&mut b, &mut a, &mut redacting).await?;
            writer.finish()?.commit()?;
            summary
        }
        None => {
            let mut writer = PatchWriter::new(std::io::BufWriter::new(std::io::stdout().lock()));
            let mut redacting = Redacting {
                volatile: &none,
                inner: &mut writer,
            };
            let summary = diff::diff(&mut b, &mut a, &mut redacting).await?;
            writer
                .finish()?
                .flush()
                .map_err(|e| Error::io("writing patch", e))?;
            summary
        }
    };
    note(format!("{} operations", summary.ops()));
    Ok(summary.ops() == 0)
}
