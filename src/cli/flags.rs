//! The command line: clap's flags for every command, and how a few of them resolve against the
//! config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use super::OutputFormat;
use super::config::{
    DowngradeConfig, ExpectConfig, FileConfig, MigrationsConfig, PostgresConfig, RoundTripConfig,
    RulesConfig, WalkConfig,
};
use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "pgsnapdiff",
    version,
    about = "Prove that a database migration rollback really restores the data",
    after_help = "Exit status: 0 rollback proven (diff: identical), 1 not proven (diff: different), 2 error."
)]
pub struct Cli {
    /// No progress lines or notes on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Replace every data value (not row keys, not the schema) in every output with a stable
    /// hash; PGSNAPDIFF_REDACT_KEY keys the hash.
    #[arg(long, global = true)]
    pub redact: bool,
    /// Progress lines on stderr even when it is not a terminal (CI logs).
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Stop the whole run after this many seconds (exit 2, everything cleaned up).
    #[arg(long, global = true, value_name = "SECS", env = "PGSNAPDIFF_TIMEOUT")]
    pub timeout: Option<u64>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Restore a dump, run the downgrade, diff before → after and check it (the main job).
    Check(Box<CheckArgs>),
    /// Restore a dump and write its snapshot (no downgrade).
    Snapshot(Box<SnapshotArgs>),
    /// Diff two snapshot files (no server); exit 1 when they differ.
    Diff(DiffArgs),
    /// Restore a dump once, then downgrade one revision at a time down to --to, reporting
    /// what each revision changed and lost.
    Walk(Box<WalkArgs>),
    /// Show each pending baseline as a diff and accept, reject or skip it (on a terminal).
    Review(BaselineArgs),
    /// Accept pending baselines: each BASELINE.new replaces BASELINE.
    Accept(BaselineArgs),
    /// Reject pending baselines: each BASELINE.new is deleted.
    Reject(BaselineArgs),
    /// Merge the --result-out files of several `check` runs (CI shards) into one report:
    /// exit 0 when every case is proven, 1 when one is not, 2 when a shard is missing or a case
    /// stopped on an error.
    MergeResults(MergeArgs),
    /// List and drop what runs that are gone left on --server (databases and roles named
    /// pgsnapdiff_run_*, marked as pgsnapdiff's); a run still going is never touched.
    Clean(CleanArgs),
}

/// `--shard I/N`: this runner's share of the cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub of: usize,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text}: write it as I/N, e.g. 2/4"))?;
    let (index, of) = (
        i.trim()
            .parse::<usize>()
            .map_err(|_| format!("{text}: I is not a number"))?,
        n.trim()
            .parse::<usize>()
            .map_err(|_| format!("{text}: N is not a number"))?,
    );
    if of == 0 || index == 0 || index > of {
        return Err(format!(
            "{text}: I must be 1..=N (shards are numbered from 1)"
        ));
    }
    Ok(Shard { index, of })
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The result files (`check --result-out`), one per shard.
    #[arg(required = true, value_name = "RESULT.json")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The server: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL", env = "PGSNAPDIFF_SERVER")]
    pub server: String,
    /// Only list what would be dropped.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Baselines (or their .new files) [default: every pending file beside the config's
    /// baselines, else in snapshots/].
    pub paths: Vec<PathBuf>,
    /// Config file [default: ./pgsnapdiff.toml when it exists].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// SQL file to run as the downgrade (repeat for several, run in order in one transaction).
    #[arg(long = "downgrade-sql", value_name = "FILE")]
    pub downgrade_sql: Vec<PathBuf>,
    /// Shell command that runs the downgrade, e.g. 'alembic downgrade -1'.
    #[arg(
        long = "downgrade-cmd",
        value_name = "CMD",
        conflicts_with = "downgrade_sql"
    )]
    pub downgrade_cmd: Option<String>,
    #[command(flatten)]
    pub migration: MigrationArgs,
    /// Expected RFC 6902 patch: the rollback is proven only if the emitted patch equals it.
    #[arg(long, value_name = "FILE")]
    pub expect_patch: Option<PathBuf>,
    /// Write the emitted patch here (atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub patch_out: Option<PathBuf>,
    /// Expected after-snapshot (a baseline, like --expect-patch): the snapshot after the
    /// downgrade must equal it.
    #[arg(long, value_name = "FILE")]
    pub expect_after: Option<PathBuf>,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// CI mode: write no pending baseline, and fail on pending or orphaned baselines
    /// [default: on when CI=true].
    #[arg(long)]
    pub check: bool,
    /// Volatile value in baselines, as a pointer pattern with * for any token (repeat), e.g.
    /// /data/public.onboarding_states/*/updated_at.
    #[arg(long = "volatile", value_name = "POINTER")]
    pub volatile: Vec<String>,
    /// Metadata restoration rule: 'TABLE METADATA_PTR FIELD_PTR=SOURCE_PTR ...' (repeat).
    #[arg(long = "metadata-rule", value_name = "SPEC")]
    pub metadata_rules: Vec<String>,
    /// For --metadata-rule: rows without metadata must be unchanged, kept, or any [default: unchanged].
    #[arg(long, value_name = "unchanged|kept|any")]
    pub without_metadata: Option<String>,
    /// alembic_version must be this revision after the downgrade.
    #[arg(long, value_name = "REV")]
    pub expect_revision: Option<String>,
    /// RFC 6902 test on the after snapshot: 'POINTER=JSON' (repeat).
    #[arg(long = "expect-test", value_name = "POINTER=JSON")]
    pub expect_tests: Vec<String>,
    /// This pointer must not exist in the after snapshot (repeat).
    #[arg(long = "expect-absent", value_name = "POINTER")]
    pub expect_absent: Vec<String>,
    /// Round trip: SQL file that upgrades the dump first (repeat).
    #[arg(long = "upgrade-sql", value_name = "FILE")]
    pub upgrade_sql: Vec<PathBuf>,
    /// Round trip: shell command that upgrades the dump first, e.g. 'alembic upgrade +1'.
    #[arg(
        long = "upgrade-cmd",
        value_name = "CMD",
        conflicts_with = "upgrade_sql"
    )]
    pub upgrade_cmd: Option<String>,
    /// Round trip: a column allowed to differ from the original, schema.table.column (repeat).
    #[arg(long = "roundtrip-ignore", value_name = "COLUMN")]
    pub roundtrip_ignore: Vec<String>,
    /// Down-then-up round trip for a dump at head: SQL file that upgrades again after the
    /// downgrade (repeat); every difference from the dump's own state is a finding.
    #[arg(long = "reupgrade-sql", value_name = "FILE")]
    pub reupgrade_sql: Vec<PathBuf>,
    /// Down-then-up round trip: shell command that upgrades again after the downgrade, e.g.
    /// 'alembic upgrade +1'.
    #[arg(
        long = "reupgrade-cmd",
        value_name = "CMD",
        conflicts_with = "reupgrade_sql"
    )]
    pub reupgrade_cmd: Option<String>,
    /// A downgrade that changes nothing (0 operations) passes instead of failing the no-op check.
    #[arg(long)]
    pub allow_noop: bool,
    #[command(flatten)]
    pub loss: LossArgs,
    #[command(flatten)]
    pub new_shape: NewShapeArgs,
    /// Run only this [[case]] of the config (repeat) [default: every case].
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// Run shard I of N: every N-th of the chosen cases in name order, starting at the I-th
    /// (CI matrix jobs); merge the shards' --result-out files with `pgsnapdiff merge-results`.
    #[arg(long, value_name = "I/N", env = "PGSNAPDIFF_SHARD", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

/// Data loss the user intends (the data-lost rule).
#[derive(Debug, Args)]
pub struct LossArgs {
    /// Acknowledge an intended loss: a dropped table (schema.table) or a dropped or narrowed
    /// column (schema.table.column) (repeat); reported as acknowledged instead of failing.
    #[arg(long = "allow-lost", value_name = "NAME")]
    pub allow_lost: Vec<String>,
}

impl LossArgs {
    /// The config's `allow_lost` and the flag's names, checked for shape.
    pub(super) fn resolve(&self, file: &Option<Vec<String>>) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for name in file.iter().flatten().chain(&self.allow_lost) {
            if name.split('.').count() < 2 || name.split('.').any(str::is_empty) {
                return Err(Error::Config(format!(
                    "allow_lost {name:?}: name a table as schema.table or a column as schema.table.column"
                )));
            }
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// How migration commands run (check's downgrade and upgrade, walk's steps).
#[derive(Debug, Args)]
pub struct MigrationArgs {
    /// Working directory of migration commands [default: the config file's directory, else .].
    #[arg(long, value_name = "DIR")]
    pub downgrade_cwd: Option<PathBuf>,
    /// Kill a migration step after this many seconds [default: no limit].
    #[arg(long, value_name = "SECS")]
    pub downgrade_timeout: Option<u64>,
    /// Run migrations as the superuser, not the database owner. Only for migrations that need
    /// it (e.g. untrusted extensions) on dumps you trust.
    #[arg(long)]
    pub downgrade_superuser: bool,
    /// Environment variable that receives the connection URL [default: DATABASE_URL].
    #[arg(long, value_name = "NAME")]
    pub url_env: Option<String>,
    /// Scheme of that URL, e.g. postgresql+asyncpg [default: postgresql].
    #[arg(long, value_name = "SCHEME")]
    pub url_scheme: Option<String>,
    /// Run migration commands with a minimal environment: PATH, HOME, LANG, the connection
    /// variables and `[downgrade] env`; nothing else is inherited.
    #[arg(long)]
    pub isolate_env: bool,
}

/// What a check or a walk writes besides its report on stdout, and that report's format.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the result (check or walk JSON), with every finding, here (atomically).
    #[arg(long, value_name = "FILE")]
    pub result_out: Option<PathBuf>,
    /// Write an audit report here: FILE.html (self-contained) or FILE.md; a walk has one
    /// section per revision.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// What stdout gets: human, json (the result JSON), junit (XML), github (annotations, then
    /// the human report) [default: human].
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct WalkArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Walk down to this revision (an Alembic revision id, or `base`).
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Shell command that moves the database one revision down [default: alembic downgrade -1].
    #[arg(long, value_name = "CMD")]
    pub step_cmd: Option<String>,
    /// Give up after this many steps [default: 100].
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    #[command(flatten)]
    pub outputs: OutputArgs,
    #[command(flatten)]
    pub migration: MigrationArgs,
    #[command(flatten)]
    pub loss: LossArgs,
    #[command(flatten)]
    pub new_shape: NewShapeArgs,
}

/// The new-shape rule's severity.
#[derive(Debug, Args)]
pub struct NewShapeArgs {
    /// Rows left in the new shape: off, warn (reported, verdict unchanged) or fail [default: warn].
    #[arg(long, value_name = "off|warn|fail")]
    pub new_shape: Option<NewShapeMode>,
    /// Same as --new-shape fail: rows left in the new shape fail the run.
    #[arg(long, conflicts_with = "new_shape")]
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NewShapeMode {
    Off,
    Warn,
    Fail,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Write the snapshot here (atomically) [default: stdout].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot file of the before state.
    pub before: PathBuf,
    /// Snapshot file of the after state.
    pub after: PathBuf,
    /// Write the patch here (atomically) [default: stdout].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What is restored and snapshotted, and with which PostgreSQL.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Config file [default: ./pgsnapdiff.toml when it exists].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The pg_dump output: plain SQL (.sql, .sql.gz), custom, directory or tar format.
    #[arg(long, value_name = "PATH")]
    pub dump: Option<PathBuf>,
    /// With --server: a database already restored there (a thin clone, a snapshot restore),
    /// used instead of a dump. It is copied with TEMPLATE and never written.
    #[arg(long, value_name = "DATABASE", conflicts_with = "dump")]
    pub restored: Option<String>,
    /// Snapshot only this table (schema.table or table; repeat) [default: every user table].
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// Leave out tables matching this glob on schema.table, e.g. 'public.django_session' or
    /// '*.audit_*' (repeat).
    #[arg(long = "exclude-table", value_name = "PATTERN")]
    pub exclude_tables: Vec<String>,
    /// The migration tool: its bookkeeping table, revision and default downgrade
    /// [default: detected from the dump's tables].
    #[arg(long, value_name = "TOOL")]
    pub tool: Option<crate::tool::Tool>,
    /// SQL that returns the current revision(s), one per row [default: the tool's].
    #[arg(long, value_name = "SQL")]
    pub revision_sql: Option<String>,
    /// Django: move and read this app only [default: every app; the step undoes the last
    /// migration applied].
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Directory with the PostgreSQL binaries to use (postgres, initdb, psql, pg_restore).
    #[arg(long, value_name = "DIR", env = "PGSNAPDIFF_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// PostgreSQL version to use: 16, 16.15 or 16.15.0.
    #[arg(long, value_name = "VERSION", env = "PGSNAPDIFF_PG_VERSION")]
    pub pg_version: Option<String>,
    /// Never try to download PostgreSQL.
    #[arg(long, env = "PGSNAPDIFF_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub offline: Option<bool>,
    /// Directory for the throwaway cluster [default: /dev/shm when it has room, else the system temp dir].
    #[arg(long, value_name = "DIR", env = "PGSNAPDIFF_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Work on this existing PostgreSQL server instead of an embedded one:
    /// postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE; the role needs CREATEDB (and
    /// CREATEROLE for an unprivileged owner role). Only databases and a role of its own,
    /// named pgsnapdiff_run_*, are created there, and dropped at the end.
    #[arg(long, value_name = "URL", env = "PGSNAPDIFF_SERVER")]
    pub server: Option<String>,
    /// Read each big table in N key ranges over N connection pairs at once, merged in key
    /// order [default: one per core but one on the embedded server; 1 on --server].
    #[arg(long, value_name = "N", env = "PGSNAPDIFF_JOBS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

/// The flags that apply to every command.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    pub quiet: bool,
    pub verbose: bool,
    pub redact: bool,
    pub timeout: Option<u64>,
}

impl Cli {
    pub fn globals(&self) -> Globals {
        Globals {
            quiet: self.quiet,
            verbose: self.verbose,
            redact: self.redact,
            timeout: self.timeout,
        }
    }
}

// ----------------------------------------------------------------------- the flags as a layer

/// `true` for a set switch, else "not said" (a switch cannot say false).
fn said(flag: bool) -> Option<bool> {
    flag.then_some(true)
}

impl InputArgs {
    /// The input and PostgreSQL flags (and the global ones) as a config layer.
    pub(super) fn layer(&self, globals: &Globals) -> FileConfig {
        FileConfig {
            timeout: globals.timeout,
            quiet: said(globals.quiet),
            redact: said(globals.redact),
            dump: self.dump.clone(),
            restored: self.restored.clone(),
            jobs: self.jobs.map(usize::from),
            tables: (!self.tables.is_empty()).then(|| self.tables.clone()),
            exclude_tables: (!self.exclude_tables.is_empty()).then(|| self.exclude_tables.clone()),
            migrations: Some(MigrationsConfig {
                tool: self.tool,
                revision_sql: self.revision_sql.clone(),
                app: self.app.clone(),
                python: None,
            }),
            postgres: Some(PostgresConfig {
                bin: self.pg_bin.clone(),
                version: self.pg_version.clone(),
                offline: self.offline,
                work_dir: self.work_dir.clone(),
                download_timeout: None,
                server: self.server.clone(),
            }),
            ..FileConfig::default()
        }
    }
}

impl MigrationArgs {
    /// How migration commands run, as the `[downgrade]` layer (without the step itself).
    fn layer(&self) -> DowngradeConfig {
        DowngradeConfig {
            superuser: said(self.downgrade_superuser),
            cwd: self.downgrade_cwd.clone(),
            timeout: self.downgrade_timeout,
            url_env: self.url_env.clone(),
            url_scheme: self.url_scheme.clone(),
            isolate_env: said(self.isolate_env),
            ..DowngradeConfig::default()
        }
    }
}

impl OutputArgs {
    fn layer(&self, config: FileConfig) -> FileConfig {
        FileConfig {
            result_out: self.result_out.clone(),
            report: self.report.clone(),
            format: self.format,
            ..config
        }
    }
}

impl NewShapeArgs {
    /// `--strict` is `--new-shape fail`.
    fn mode(&self) -> Option<NewShapeMode> {
        if self.strict {
            Some(NewShapeMode::Fail)
        } else {
            self.new_shape
        }
    }
}

/// SQL files or a command, as the config's (`sql`, `cmd`) pair.
fn step(sql: &[PathBuf], cmd: &Option<String>) -> (Option<Vec<PathBuf>>, Option<String>) {
    ((!sql.is_empty()).then(|| sql.to_vec()), cmd.clone())
}

impl CheckArgs {
    /// Every override `check` takes from the command line, as a config layer over the file
    /// (`config::Over`). Lists that add to the file's (volatile, allow_lost, rules, tests,
    /// absences, round-trip ignores) are read beside it, in the plans.
    pub(super) fn layer(&self, globals: &Globals) -> FileConfig {
        let (sql, cmd) = step(&self.downgrade_sql, &self.downgrade_cmd);
        let (upgrade_sql, upgrade_cmd) = step(&self.upgrade_sql, &self.upgrade_cmd);
        let (reupgrade_sql, reupgrade_cmd) = step(&self.reupgrade_sql, &self.reupgrade_cmd);
        let config = FileConfig {
            expect_patch: self.expect_patch.clone(),
            expect_after: self.expect_after.clone(),
            patch_out: self.patch_out.clone(),
            allow_noop: said(self.allow_noop),
            downgrade: Some(DowngradeConfig {
                sql,
                cmd,
                ..self.migration.layer()
            }),
            rules: Some(RulesConfig {
                metadata: Vec::new(),
                new_shape: self.new_shape.mode(),
            }),
            expect: Some(ExpectConfig {
                revision: self.expect_revision.clone(),
                ..ExpectConfig::default()
            }),
            roundtrip: Some(RoundTripConfig {
                upgrade_sql,
                upgrade_cmd,
                reupgrade_sql,
                reupgrade_cmd,
                ignore_columns: Vec::new(),
            }),
            ..self.input.layer(globals)
        };
        self.outputs.layer(config)
    }
}

impl WalkArgs {
    /// Every override `walk` takes from the command line, as a config layer over the file.
    pub(super) fn layer(&self, globals: &Globals) -> FileConfig {
        let config = FileConfig {
            downgrade: Some(self.migration.layer()),
            rules: Some(RulesConfig {
                metadata: Vec::new(),
                new_shape: self.new_shape.mode(),
            }),
            walk: Some(WalkConfig {
                to: self.to.clone(),
                step_cmd: self.step_cmd.clone(),
                revision_sql: None,
                max_steps: self.max_steps,
            }),
            ..self.input.layer(globals)
        };
        self.outputs.layer(config)
    }
}
