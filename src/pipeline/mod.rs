//! The commands, as compositions of the stages: `check` (check.rs), `walk` (walk.rs),
//! `snapshot` and `diff` (here), and the steps they share: boot, restore into the working
//! database, table selection, database copies, what reports say about inputs.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod check;
pub mod walk;

use crate::atomic::AtomicFile;
use crate::baseline::{self, Redacting};
use crate::cli::{InputPlan, RunSettings, SnapshotPlan};
use crate::console::{note, progress};
use crate::diff;
use crate::error::{Context, Error, Result, Verdict};
use crate::expect::rules::{self, Loss};
use crate::migrate::Step;
use crate::report::audit::Input;
use crate::report::{PatchWriter, secs};
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

/// Find binaries for the dumps (the newest pg_dump decides), and boot.
async fn boot(
    run: &RunSettings,
    dumps: &[Dump],
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<Server> {
    let mut opts = run.binaries.clone();
    opts.min_major = dumps.iter().filter_map(Dump::pg_dump_major).max();
    let bins = crate::server::resolve_binaries(&opts).await?;
    for dump in dumps {
        restore::check_compatible(dump, &bins)?;
    }
    let started = Instant::now();
    progress(format!(
        "starting PostgreSQL {} ({}, {})",
        bins.version,
        bins.origin,
        bins.bin_dir.display()
    ));
    let mut server_opts = run.server.clone();
    server_opts.space_needed = dumps.iter().map(Dump::space_estimate).max().unwrap_or(0);
    let server = Server::start(bins, &server_opts).await?;
    phases.push(("boot", started.elapsed()));
    Ok(server)
}

/// A fresh `WORK_DB` (an earlier case's databases dropped) with the dump restored into it.
async fn restore_work(
    server: &Server,
    dump: &Dump,
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<()> {
    let started = Instant::now();
    progress(format!(
        "restoring {} ({} format)",
        dump.path.display(),
        dump.format.name()
    ));
    drop_databases(server, &[WORK_DB, BEFORE_DB, ORIGINAL_DB]).await?;
    server
        .admin()
        .await?
        .batch_execute(&format!(
            "CREATE DATABASE {WORK_DB} OWNER {OWNER_ROLE} TEMPLATE template0"
        ))
        .await
        .context("creating database")?;
    restore::restore(server, dump, WORK_DB).await?;
    phases.push(("restore", started.elapsed()));
    Ok(())
}

/// Drop these databases if they exist (an earlier case's or step's).
async fn drop_databases(server: &Server, names: &[&str]) -> Result<()> {
    let admin = server.admin().await?;
    for db in names {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .context(format!("dropping database {db}"))?;
    }
    Ok(())
}

/// The server for reports: version, where the binaries came from, their directory.
fn server_fact(server: &Server) -> String {
    format!(
        "PostgreSQL {} ({}, {})",
        server.binaries.version,
        server.binaries.origin,
        server.binaries.bin_dir.display()
    )
}

/// Inspect the dump, find binaries for it, boot, restore into `WORK_DB`.
async fn boot_and_restore(
    run: &RunSettings,
    input: &InputPlan,
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<(Dump, Server)> {
    let dump = restore::inspect(&input.dump)?;
    let server = boot(run, std::slice::from_ref(&dump), phases).await?;
    restore_work(&server, &dump, phases).await?;
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
        .admin()
        .await?
        .batch_execute(&format!(
            "CREATE DATABASE {copy} TEMPLATE {source}{strategy}"
        ))
        .await
        .context(format!("copying database {source}"))
}

/// Diff two databases of the server (their chosen tables) into `sink`.
async fn diff_databases(
    server: &Server,
    (before_db, before_tables): (&str, Vec<Table>),
    (after_db, after_tables): (&str, Vec<Table>),
    sink: &mut dyn diff::DiffSink,
) -> Result<diff::Summary> {
    let before = server.connect(before_db).await?;
    let after = server.connect(after_db).await?;
    diff::diff(
        &mut DbSource::new(&before, before_tables),
        &mut DbSource::new(&after, after_tables),
        sink,
    )
    .await
}

/// The losses `candidates` (from `expect::rules::SchemaLoss`) with their counts, read from
/// the before-copy `before_db` (server-side counts: no row is read for them), then judged by
/// the data-lost rule.
async fn data_lost(
    server: &Server,
    before_db: &str,
    mut candidates: Vec<Loss>,
    snapshotted: &std::collections::BTreeMap<String, diff::TableCounts>,
    allow_lost: &[String],
    note_unused: bool,
) -> Result<(Vec<Loss>, crate::expect::CheckResult)> {
    // The migration tool's own bookkeeping is the revision line's business.
    candidates.retain(|l| {
        !HEADER_TABLES
            .iter()
            .any(|t| l.table.rsplit_once('.').is_some_and(|(_, name)| name == *t))
    });
    // A dropped table the diff read has its rows counted already; the rest are counted by
    // the server, one scan per table for all its losses.
    let mut to_count: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, loss) in candidates.iter_mut().enumerate() {
        match snapshotted.get(&loss.table) {
            Some(c) if loss.column.is_none() && c.dropped => loss.count = c.rows_before,
            _ => to_count.entry(loss.table.clone()).or_default().push(i),
        }
    }
    if !to_count.is_empty() {
        let client = server.connect(before_db).await?;
        for (table, at) in to_count {
            let columns: Vec<Option<&str>> = at
                .iter()
                .map(|&i| candidates[i].column.as_deref())
                .collect();
            let counts = db::counts(&client, &table, &columns).await?;
            for (k, &i) in at.iter().enumerate() {
                candidates[i].count = counts.as_ref().map_or(0, |c| c[k]);
            }
        }
    }
    let result = rules::data_lost(&mut candidates, allow_lost, note_unused)?;
    Ok((candidates, result))
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

pub async fn snapshot(plan: &SnapshotPlan) -> Result<()> {
    let mut phases = Vec::new();
    let (dump, server) = boot_and_restore(&plan.run, &plan.input, &mut phases).await?;
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

/// Diff two snapshot files: `Proven` when they are identical.
pub async fn diff_files(before: &Path, after: &Path, out: Option<&Path>) -> Result<Verdict> {
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
            writer.finish()?.flush().context("writing patch")?;
            summary
        }
    };
    note(format!("{} operations", summary.ops()));
    Ok(Verdict::of(summary.ops() == 0))
}
