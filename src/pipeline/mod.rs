//! The commands, as compositions of the stages: `check` (check.rs), `walk` (walk.rs),
//! `snapshot` and `diff` (here), and the steps they share: boot, restore into the working
//! database, table selection, database copies, what reports say about inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod check;
pub mod walk;

use crate::atomic::AtomicFile;
use crate::baseline::{self, Redacting};
use crate::cli::{InputPlan, MigrationsPlan, RunSettings, SnapshotPlan};
use crate::console::{note, progress};
use crate::diff;
use crate::error::{Context, Error, Result, Verdict};
use crate::expect::rules::{self, Loss};
use crate::migrate::Step;
use crate::report::audit::Input;
use crate::report::{PatchWriter, secs};
use crate::restore::{self, Dump};
use crate::server::Server;
use crate::snapshot::db::{self, DbSource, Table};
use crate::snapshot::file::{FileSource, write_source};
use crate::tool::Tool;

/// Find binaries for the dumps (the newest pg_dump decides), and boot; or, with `--server`,
/// attach to that server (binaries then only for the client tools, of its major if here).
async fn boot(
    run: &RunSettings,
    dumps: &[Dump],
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<Server> {
    let started = Instant::now();
    let probe = match &run.server.external {
        Some(url) => Some(crate::server::external::probe(url).await?),
        None => None,
    };
    let mut opts = run.binaries.clone();
    opts.dump_major = dumps
        .iter()
        .filter_map(Dump::pg_dump_major)
        .chain(probe.as_ref().map(|p| p.major))
        .max();
    opts.min_major = dumps
        .iter()
        .filter(|d| !d.is_plain())
        .filter_map(Dump::pg_dump_major)
        .max();
    let bins = crate::server::resolve_binaries(&opts).await?;
    for dump in dumps {
        restore::check_compatible(dump, &bins)?;
    }
    if let Some(probe) = probe {
        progress(format!(
            "using PostgreSQL {} at {} as {} (client tools {}, {})",
            probe.version,
            probe.display,
            probe.conn.user,
            bins.version,
            bins.bin_dir.display()
        ));
        // A restored database's objects belong to the server's roles, not to an owner role
        // of the run's: the work then runs as the given role.
        let restored = dumps.iter().any(|d| d.format == restore::Format::Restored);
        let server = Server::attach(probe, bins, !restored).await?;
        phases.push(("boot", started.elapsed()));
        return Ok(server);
    }
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

/// A fresh working database (an earlier case's databases dropped) with the dump restored into it.
async fn restore_work(
    server: &Server,
    dump: &Dump,
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<()> {
    let started = Instant::now();
    if dump.format == restore::Format::Restored {
        let source = dump.path.to_string_lossy();
        progress(format!("copying the restored database {source}"));
        server.create_work_from(&source).await?;
        phases.push(("restore", started.elapsed()));
        return Ok(());
    }
    progress(format!(
        "restoring {} ({} format)",
        dump.path.display(),
        dump.format.name()
    ));
    server.create_work_db().await?;
    restore::restore(server, dump, server.work_db()).await?;
    phases.push(("restore", started.elapsed()));
    Ok(())
}

/// The input's dump, inspected; or the restored database that stands in for one.
fn inspect(input: &InputPlan) -> Result<Dump> {
    match &input.restored {
        Some(db) => Ok(Dump::restored(db)),
        None => restore::inspect(&input.dump),
    }
}

/// The server for reports: version, where the binaries came from, their directory; or the
/// external server's URL (no password).
fn server_fact(server: &Server) -> String {
    if let Some(url) = server.external() {
        return format!(
            "PostgreSQL {} at {url} (client tools {}, {})",
            server.major(),
            server.binaries.version,
            server.binaries.bin_dir.display()
        );
    }
    format!(
        "PostgreSQL {} ({}, {})",
        server.binaries.version,
        server.binaries.origin,
        server.binaries.bin_dir.display()
    )
}

/// `--downgrade-superuser` on a server where the given role is not one: the step runs as that
/// role, which the user is told rather than left to assume.
fn note_superuser(server: &Server, asked: bool) {
    if asked && !server.admin_is_superuser() {
        note(format!(
            "--downgrade-superuser: role {} on --server is not a superuser; the migration commands run as {} and have only its rights",
            server.conn().user,
            server.conn().user
        ));
    }
}

/// Inspect the dump, find binaries for it, boot, restore into the working database.
async fn boot_and_restore(
    run: &RunSettings,
    input: &InputPlan,
    phases: &mut Vec<(&'static str, Duration)>,
) -> Result<(Dump, Server)> {
    let dump = inspect(input)?;
    let server = boot(run, std::slice::from_ref(&dump), phases).await?;
    restore_work(&server, &dump, phases).await?;
    Ok((dump, server))
}

/// Which tables a run reads: the ones named (`schema.table`, or a bare name unique across
/// schemas), or every user table but the migration tool's bookkeeping; minus the exclusions
/// (globs on `schema.table`) either way.
struct Selection<'a> {
    wanted: Vec<String>,
    exclude: &'a [String],
    bookkeeping: &'static [&'static str],
    dump: &'a Path,
}

impl Selection<'_> {
    /// Matched by an `--exclude-table` glob.
    fn excluded(&self, qualified: &str) -> bool {
        self.exclude
            .iter()
            .any(|p| crate::tool::glob_match(p, qualified))
    }

    /// The tool's bookkeeping, or excluded: never data, never data loss.
    fn ignores(&self, qualified: &str) -> bool {
        let name = qualified.rsplit_once('.').map_or(qualified, |(_, n)| n);
        self.bookkeeping.contains(&name) || self.excluded(qualified)
    }

    /// The chosen tables of `all`, in name order, and the wanted names that matched none.
    fn pick(&self, all: Vec<Table>) -> Result<(Vec<Table>, Vec<String>)> {
        // Named with --table, a bookkeeping table is read like any other.
        if self.wanted.is_empty() {
            let chosen = all
                .into_iter()
                .filter(|t| {
                    !self.bookkeeping.contains(&t.table.as_str()) && !self.excluded(&t.name)
                })
                .collect();
            return Ok((chosen, Vec::new()));
        }
        let mut chosen: Vec<Table> = Vec::new();
        let mut missing = Vec::new();
        for name in &self.wanted {
            let matches: Vec<&Table> = all
                .iter()
                .filter(|t| t.name == *name || (!name.contains('.') && t.table == *name))
                .collect();
            match matches.as_slice() {
                [one] => {
                    if !chosen.iter().any(|c| c.name == one.name) && !self.excluded(&one.name) {
                        chosen.push((*one).clone());
                    }
                }
                [] => missing.push(name.clone()),
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
        Ok((chosen, missing))
    }

    /// A wanted table that is on neither side of the step is a typo: the error lists the
    /// tables `dbname` has.
    async fn require(
        &self,
        missing_before: &[String],
        after: &[Table],
        server: &Server,
        dbname: &str,
    ) -> Result<()> {
        let Some(name) = missing_before
            .iter()
            .find(|m| !after.iter().any(|t| t.name == **m || t.table == **m))
        else {
            return Ok(());
        };
        let client = server.connect(dbname).await?;
        let all = db::tables(&client).await?;
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        Err(Error::input(
            self.dump,
            format!(
                "has no table {name}; tables there: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }
}

fn warn_keyless(tables: &[Table]) {
    for t in tables.iter().filter(|t| t.key == db::KeyRule::Content) {
        note(format!(
            "{} has no primary key or NOT NULL unique index; its rows are keyed by content hash, so a changed row shows as remove + add",
            t.name
        ));
    }
}

/// Diff two databases of the server (their chosen tables) into `sink`; of what the step did
/// not write (`Marks::unwritten`), the settled tables are counted, not read, and of the
/// shaped ones only the written rows are read (`narrow`), unless a sink wants their rows.
async fn diff_databases(
    server: &Server,
    (before_db, before_tables): (&str, Vec<Table>),
    (after_db, after_tables): (&str, Vec<Table>),
    unwritten: Unwritten,
    jobs: Option<usize>,
    sink: &mut dyn diff::DiffSink,
) -> Result<diff::Summary> {
    let jobs = diff_jobs(server, jobs);
    let before = server.connect(before_db).await?;
    let after = server.connect(after_db).await?;
    let before_parallel = parallel(server, before_db, jobs).await?;
    let after_parallel = parallel(server, after_db, jobs).await?;
    let mut before_source = DbSource::new(&before, before_tables)
        .settled(unwritten.settled.clone())
        .parallel(before_parallel);
    let mut after_source = DbSource::new(&after, after_tables.clone())
        .settled(unwritten.settled.clone())
        .parallel(after_parallel);
    let mut summary = diff::headers(&mut before_source, &mut after_source, sink).await?;
    // The sinks have seen the headers: they know which tables they read whole.
    let narrowed = narrow(&before, &after, &after_tables, &unwritten, sink).await?;
    before_source.narrow(narrowed.clone());
    after_source.narrow(narrowed);
    diff::tables(&mut before_source, &mut after_source, sink, &mut summary).await?;
    Ok(summary)
}

/// `--jobs`, or one per core the server's machine has to spare: on the embedded server, this
/// machine's cores but the one the tool's own diff thread keeps busy (measured in
/// scripts/bench: on 2 cores, 2 jobs made diff+check 16% slower than 1); unknown (1) for an
/// external one.
fn diff_jobs(server: &Server, jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| match server.external() {
        Some(_) => 1,
        None => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1),
    })
}

/// Tables with fewer estimated rows are read in one piece: splitting costs a key sample and
/// a connection per range (`PGSNAPDIFF_SPLIT_ROWS` overrides, for tests and tuning).
const SPLIT_ROWS: u64 = 100_000;

/// `jobs - 1` more connections to `dbname`, for `DbSource::parallel`.
async fn parallel(server: &Server, dbname: &str, jobs: usize) -> Result<Option<db::Parallel>> {
    if jobs <= 1 {
        return Ok(None);
    }
    let mut clients = Vec::new();
    for _ in 1..jobs {
        clients.push(server.connect(dbname).await?);
    }
    let min_rows = rows_setting("PGSNAPDIFF_SPLIT_ROWS", SPLIT_ROWS);
    Ok(Some(db::Parallel::new(clients, min_rows).await?))
}

/// A row-count threshold from the environment (for tests and tuning), else `default`.
fn rows_setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The working database's per-table marks (`db::table_marks`), taken right after the
/// before-copy and again after the migration step, once none of its sessions is left (each
/// flushes its counters while exiting, PostgreSQL 15+).
struct Marks(Option<BTreeMap<String, db::Mark>>);

impl Marks {
    /// The server's next transaction id, read on the admin connection (no session on the
    /// working database: the before-copy needs none). Taken before the copy, it bounds every
    /// tuple the copy lacks: a session that wrote under an older id was connected before it,
    /// and a copy is made only while nobody is connected.
    async fn next_xid(server: &Server) -> Result<u64> {
        if server.major() < 15 {
            return Ok(0); // marks are not taken before 15 (`db::table_marks`)
        }
        db::next_xid(server.admin().await?).await
    }

    /// Marks of the working database now; none when a superuser ran (or will run) user code,
    /// which could reset the counters (`pg_stat_reset`).
    async fn take(server: &Server, superuser: bool) -> Result<Marks> {
        if superuser {
            return Ok(Marks(None));
        }
        let client = server.connect(server.work_db()).await?;
        Ok(Marks(db::table_marks(&client).await?))
    }

    /// What the step did not write, from the marks before (`self`) and after it (README
    /// "Untouched tables", "Untouched rows"): the tables it never wrote (same OID, file, write
    /// counters, columns and key), equal by construction, which the diff need not read; and
    /// the tables whose OID, columns and key stayed, whose rows it did not write read the same
    /// on both sides. `since` is `next_xid` before the before-copy. Nothing when anything
    /// database-wide changed.
    fn unwritten(
        &self,
        after: &Marks,
        since: u64,
        before_tables: &[Table],
        after_tables: &[Table],
    ) -> Unwritten {
        let mut unwritten = Unwritten {
            since,
            ..Unwritten::default()
        };
        let (Some(b), Some(a)) = (&self.0, &after.0) else {
            return unwritten;
        };
        if b.get("") != a.get("") {
            return unwritten;
        }
        let same_key = |t: &&Table| {
            after_tables
                .iter()
                .any(|u| u.name == t.name && u.key == t.key)
        };
        for t in before_tables.iter().filter(same_key) {
            let (Some(mb), Some(ma)) = (b.get(&t.name), a.get(&t.name)) else {
                continue;
            };
            if mb == ma {
                unwritten.settled.insert(t.name.clone());
            } else if mb.shape == ma.shape {
                unwritten.shaped.insert(t.name.clone());
            }
        }
        unwritten
    }
}

/// What the step did not write (`Marks::unwritten`), for `diff_databases`.
#[derive(Debug, Default)]
struct Unwritten {
    /// Tables never written: counted, not read.
    settled: BTreeSet<String>,
    /// Tables written, in the same shape: of these, only the rows written are read when
    /// that is provably enough (`narrow`).
    shaped: BTreeSet<String>,
    /// The next transaction id before the before-copy: every tuple the step wrote has one at
    /// or past it.
    since: u64,
}

/// Tables with fewer rows are read whole: narrowing costs three counting scans
/// (`PGSNAPDIFF_NARROW_ROWS` overrides, for tests and tuning).
const NARROW_ROWS: u64 = 10_000;
/// Narrowing holds the written keys in memory: at most this many, and a quarter of the rows.
const NARROW_KEYS: u64 = 200_000;

/// The `shaped` tables of which only the rows the step wrote are read, with proof that the rest
/// are equal on both sides (README "Untouched rows"). A row the step did not write is the same
/// tuple in both databases (the before-copy is a file copy, the shape is unchanged), so it
/// reads the same. The written rows are those whose xmin lies in the step's transaction ids
/// (`db::written_keys`); call their keys K. Then the before side holds the
/// untouched rows (after's rows less K, keys unique on both sides), the rows with a key in K,
/// and the rows the step removed or re-keyed, and nothing else; so when
/// `before rows - before rows with a key in K == after rows - |K|`, nothing was removed, and
/// reading the rows with a key in K on both sides sees every difference. Otherwise the table
/// is read whole. Not for tables a check reads whole (`DiffSink::wants_rows`).
async fn narrow(
    before: &tokio_postgres::Client,
    after: &tokio_postgres::Client,
    tables: &[Table],
    unwritten: &Unwritten,
    sink: &dyn diff::DiffSink,
) -> Result<BTreeMap<String, db::Narrowed>> {
    let min_rows = rows_setting("PGSNAPDIFF_NARROW_ROWS", NARROW_ROWS);
    let mut narrowed = BTreeMap::new();
    for table in tables {
        if !unwritten.shaped.contains(&table.name) || sink.wants_rows(&table.name) {
            continue;
        }
        let cap = |rows: u64| (rows >= min_rows).then(|| (rows / 4).min(NARROW_KEYS));
        let Some((rows_after, keys)) = db::written_keys(after, table, unwritten.since, cap).await?
        else {
            continue;
        };
        let unread = rows_after - keys.len() as u64;
        let keys = db::text_array(&keys);
        let (rows_before, matched) = db::count_keys(before, table, &keys).await?;
        if rows_before - matched == unread {
            let keys = std::sync::Arc::new(keys);
            narrowed.insert(table.name.clone(), db::Narrowed { keys, unread });
        } else {
            progress(format!(
                "{}: rows removed or re-keyed by the step; reading it whole",
                table.name
            ));
        }
    }
    Ok(narrowed)
}

/// The losses `candidates` (from `expect::rules::SchemaLoss`) with their counts, read from
/// the before-copy `before_db` (server-side counts: no row is read for them), then judged by
/// the data-lost rule.
async fn data_lost(
    server: &Server,
    before_db: &str,
    mut candidates: Vec<Loss>,
    snapshotted: &BTreeMap<String, diff::TableCounts>,
    allow_lost: &[String],
    note_unused: bool,
    selection: &Selection<'_>,
) -> Result<(Vec<Loss>, crate::expect::CheckResult)> {
    // The migration tool's own bookkeeping is the revision line's business; an excluded
    // table is the user's to ignore.
    candidates.retain(|l| !selection.ignores(&l.table));
    // A dropped table the diff read has its rows counted already; the rest are counted by
    // the server, one scan per table for all its losses.
    let mut to_count: BTreeMap<String, Vec<usize>> = BTreeMap::new();
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

/// The tables of `dbname` to snapshot, and the wanted names it does not have.
async fn tables_of(
    server: &Server,
    dbname: &str,
    selection: &Selection<'_>,
) -> Result<(Vec<Table>, Vec<String>)> {
    let client = server.connect(dbname).await?;
    selection.pick(db::tables(&client).await?)
}

/// Tables on the after side: the same selection, so a wanted table the step created is
/// read (and reported created), and one it dropped is reported dropped.
async fn tables_after(
    server: &Server,
    dbname: &str,
    selection: &Selection<'_>,
) -> Result<Vec<Table>> {
    Ok(tables_of(server, dbname, selection).await?.0)
}

/// The migration tool a run works with, settled against the restored database: said
/// (`--tool`), implied (`--revision-sql` alone: custom), or detected from its bookkeeping
/// table; `None` when nothing says (no revision).
struct InUse<'a> {
    tool: Option<Tool>,
    plan: &'a MigrationsPlan,
}

impl InUse<'_> {
    fn source(&self) -> db::RevisionSource<'_> {
        if let Some(sql) = &self.plan.revision_sql {
            return db::RevisionSource::Sql(sql);
        }
        let app = (self.tool == Some(Tool::Django))
            .then_some(self.plan.app.as_deref())
            .flatten();
        match self.tool.and_then(|t| t.revision_query(app)) {
            Some(q) => db::RevisionSource::Tool(q, app),
            None => db::RevisionSource::None,
        }
    }

    /// The tool's tables, kept out of the data diff and of data loss.
    fn bookkeeping(&self) -> &'static [&'static str] {
        self.tool.map(Tool::bookkeeping).unwrap_or_default()
    }

    /// Where revision findings point: `/alembic_version` (the patch's own path) for Alembic.
    fn revision_path(&self) -> &'static str {
        match self.tool {
            Some(Tool::Alembic) | None if self.plan.revision_sql.is_none() => "/alembic_version",
            _ => "/revision",
        }
    }

    /// What the revision is read from, for check names: the bookkeeping table, or the query.
    fn revision_label(&self) -> &'static str {
        match (&self.plan.revision_sql, self.tool) {
            (None, Some(tool)) => tool
                .bookkeeping()
                .first()
                .copied()
                .unwrap_or("the revision"),
            (None, None) => "alembic_version",
            (Some(_), _) => "the revision query",
        }
    }

    /// The database's revision, read as the owner role (a dump's functions never run with
    /// superuser rights) in a read-only transaction.
    async fn revision(&self, server: &Server, dbname: &str) -> Result<serde_json::Value> {
        let client = server.connect_owner(dbname).await?;
        db::revision(&client, &self.source()).await
    }
}

/// Settle the migration tool on the restored working database, saying what was found.
async fn settle_tool<'a>(server: &Server, plan: &'a MigrationsPlan) -> Result<InUse<'a>> {
    let client = server.connect(server.work_db()).await?;
    let found = db::detect_tools(&client).await?;
    drop(client);
    let tool = match plan.tool {
        Some(tool) => {
            if let Some(table) = tool.bookkeeping().first()
                && !found.contains(&tool)
                && plan.revision_sql.is_none()
            {
                note(format!(
                    "--tool {}: the dump has no {table} table, so no revision is known before the downgrade",
                    tool.name()
                ));
            }
            Some(tool)
        }
        None => match found.as_slice() {
            // The user's query alone: a tool we do not know.
            [] if plan.revision_sql.is_some() => Some(Tool::Custom),
            [] => None,
            [one] => {
                note(format!(
                    "migration tool: {} (detected by its {} table; --tool overrides)",
                    one.name(),
                    one.bookkeeping()[0]
                ));
                Some(*one)
            }
            many => {
                let names: Vec<&str> = many.iter().map(|t| t.name()).collect();
                return Err(Error::Config(format!(
                    "the dump holds the bookkeeping tables of {}: say which tool migrates it with --tool (or [migrations] tool)",
                    names.join(" and ")
                )));
            }
        },
    };
    Ok(InUse { tool, plan })
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

/// `pgsnapdiff merge-results`: the shards' results as one run, through the usual outputs.
/// Exit 2 (an error) when a case stopped on an error in its shard, as that run itself did.
pub fn merge_results(
    files: &[std::path::PathBuf],
    outputs: &crate::report::Outputs,
) -> Result<Verdict> {
    let mut merged = crate::report::merge::Merged::load(files)?;
    crate::report::emit(outputs, &mut merged)?;
    let errors = merged.errors();
    if !errors.is_empty() {
        return Err(Error::Run(format!(
            "{} of {} cases stopped on an error in their shard ({}); their reports above say why",
            errors.len(),
            merged.case_count(),
            errors.join(", ")
        )));
    }
    Ok(Verdict::of(merged.proven()))
}

/// `pgsnapdiff clean --server URL`: one stdout line per run found there (removed, would be
/// removed, or still running and left alone); an error when something could not be dropped.
pub async fn clean(url: &str, dry_run: bool) -> Result<Verdict> {
    let runs = crate::server::external::clean(url, dry_run).await?;
    let shown = crate::server::external::display_url(url);
    let mut out = std::io::stdout().lock();
    if runs.is_empty() {
        writeln!(out, "nothing of pgsnapdiff's on {shown}").context("writing to stdout")?;
        return Ok(Verdict::Proven);
    }
    let mut failed = Vec::new();
    for (run, problem) in &runs {
        let objects = run
            .databases
            .iter()
            .map(|d| format!("database {d}"))
            .chain(run.roles.iter().map(|r| format!("role {r}")))
            .collect::<Vec<_>>()
            .join(", ");
        let what = match problem {
            _ if run.live => "still running, left alone:",
            _ if dry_run => "would remove",
            None => "removed",
            Some(p) => {
                failed.push(format!("run {}: {p}", run.id));
                "could not remove all of"
            }
        };
        writeln!(out, "run {}: {what} {objects}", run.id).context("writing to stdout")?;
    }
    if failed.is_empty() {
        Ok(Verdict::Proven)
    } else {
        Err(Error::Server(format!(
            "on {shown}, {}; the role in --server must own these objects or be a member of their owner",
            failed.join("; ")
        )))
    }
}

pub async fn snapshot(plan: &SnapshotPlan) -> Result<()> {
    let mut phases = Vec::new();
    let (dump, server) = boot_and_restore(&plan.run, &plan.input, &mut phases).await?;
    let started = Instant::now();
    let in_use = settle_tool(&server, &plan.input.migrations).await?;
    let selection = Selection {
        wanted: plan.input.tables.clone(),
        exclude: &plan.input.exclude,
        bookkeeping: in_use.bookkeeping(),
        dump: &dump.path,
    };
    let client = server.connect(server.work_db()).await?;
    let (tables, missing) = selection.pick(db::tables(&client).await?)?;
    selection
        .require(&missing, &tables, &server, server.work_db())
        .await?;
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
