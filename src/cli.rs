//! Flags and `pgsnapdiff.toml`, resolved into plans. Nothing downstream reads raw flags.
//!
//! Precedence: a flag (or its environment variable) wins over the config file, which wins over
//! the built-in default. Relative paths in the config file are relative to the file's directory;
//! relative paths in flags are relative to the current directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use jsonptr::PointerBuf;
use serde::Deserialize;

use crate::baseline::Volatile;
use crate::error::{Error, Result};
use crate::expect::Severity;
use crate::expect::rules::{AfterSpec, MetadataSpec, WithoutMetadata};
use crate::migrate::{CommandSpec, Step};
pub use crate::report::Outputs;
pub use crate::report::ci::OutputFormat;
use crate::server::{BinaryOptions, ServerOptions};

pub const DEFAULT_CONFIG: &str = "pgsnapdiff.toml";

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
    Snapshot(SnapshotArgs),
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
    /// The flag's names and the config's `allow_lost`, checked for shape.
    fn resolve(&self, loaded: &Loaded) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for name in loaded
            .config
            .allow_lost
            .iter()
            .flatten()
            .chain(&self.allow_lost)
        {
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

impl OutputArgs {
    fn resolve(&self, loaded: &Loaded) -> Result<Outputs> {
        let report = self
            .report
            .clone()
            .or_else(|| loaded.path(&loaded.config.report));
        // The format comes from the name: checked now rather than after the work.
        if let Some(p) = &report {
            crate::report::audit::Kind::of(p)?;
        }
        Ok(Outputs {
            result_out: self
                .result_out
                .clone()
                .or_else(|| loaded.path(&loaded.config.result_out)),
            report,
            format: self.format.or(loaded.config.format).unwrap_or_default(),
        })
    }
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
    /// SQL that returns the current revision(s), one per row [default: alembic_version].
    #[arg(long, value_name = "SQL")]
    pub revision_sql: Option<String>,
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

impl NewShapeArgs {
    /// The rule's severity, or None when it is off.
    fn severity(&self, file: Option<NewShapeMode>) -> Option<Severity> {
        let mode = if self.strict {
            NewShapeMode::Fail
        } else {
            self.new_shape.or(file).unwrap_or(NewShapeMode::Warn)
        };
        match mode {
            NewShapeMode::Off => None,
            NewShapeMode::Warn => Some(Severity::Warning),
            NewShapeMode::Fail => Some(Severity::Error),
        }
    }
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
    /// Snapshot only this table (schema.table or table; repeat) [default: every user table].
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
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
}

/// `pgsnapdiff.toml`. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    timeout: Option<u64>,
    quiet: Option<bool>,
    redact: Option<bool>,
    dump: Option<PathBuf>,
    tables: Option<Vec<String>>,
    expect_patch: Option<PathBuf>,
    expect_after: Option<PathBuf>,
    patch_out: Option<PathBuf>,
    result_out: Option<PathBuf>,
    report: Option<PathBuf>,
    format: Option<OutputFormat>,
    volatile: Option<Vec<String>>,
    allow_lost: Option<Vec<String>>,
    allow_noop: Option<bool>,
    downgrade: Option<DowngradeConfig>,
    postgres: Option<PostgresConfig>,
    rules: Option<RulesConfig>,
    expect: Option<ExpectConfig>,
    roundtrip: Option<RoundTripConfig>,
    walk: Option<WalkConfig>,
    /// Several cases in one run (`[[case]]`); the top-level case keys are their defaults.
    #[serde(default)]
    case: Vec<CaseConfig>,
}

/// One `[[case]]`: a dump, a downgrade, its rules and its baseline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseConfig {
    name: String,
    dump: Option<PathBuf>,
    tables: Option<Vec<String>>,
    expect_patch: Option<PathBuf>,
    expect_after: Option<PathBuf>,
    patch_out: Option<PathBuf>,
    volatile: Option<Vec<String>>,
    allow_lost: Option<Vec<String>>,
    allow_noop: Option<bool>,
    downgrade: Option<DowngradeConfig>,
    rules: Option<RulesConfig>,
    expect: Option<ExpectConfig>,
    roundtrip: Option<RoundTripConfig>,
}

impl FileConfig {
    /// The config as one case sees it: the case's keys over the top-level defaults.
    fn for_case(&self, case: &CaseConfig) -> FileConfig {
        let c = case.clone();
        FileConfig {
            dump: c.dump.or_else(|| self.dump.clone()),
            tables: c.tables.or_else(|| self.tables.clone()),
            expect_patch: c.expect_patch.or_else(|| self.expect_patch.clone()),
            expect_after: c.expect_after.or_else(|| self.expect_after.clone()),
            patch_out: c.patch_out.or_else(|| self.patch_out.clone()),
            volatile: c.volatile.or_else(|| self.volatile.clone()),
            allow_lost: c.allow_lost.or_else(|| self.allow_lost.clone()),
            allow_noop: c.allow_noop.or(self.allow_noop),
            downgrade: c.downgrade.or_else(|| self.downgrade.clone()),
            rules: c.rules.or_else(|| self.rules.clone()),
            expect: c.expect.or_else(|| self.expect.clone()),
            roundtrip: c.roundtrip.or_else(|| self.roundtrip.clone()),
            case: Vec::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalkConfig {
    to: Option<String>,
    step_cmd: Option<String>,
    revision_sql: Option<String>,
    max_steps: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesConfig {
    #[serde(default)]
    metadata: Vec<MetadataConfig>,
    new_shape: Option<NewShapeMode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataConfig {
    id: Option<String>,
    table: String,
    metadata: String,
    fields: BTreeMap<String, String>,
    without_metadata: Option<WithoutMetadata>,
    #[serde(default)]
    ignore_columns: Vec<String>,
    #[serde(default)]
    allow_added_rows: bool,
    #[serde(default)]
    allow_removed_rows: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectConfig {
    revision: Option<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    tests: Vec<TestConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    path: String,
    value: toml::Value,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoundTripConfig {
    upgrade_sql: Option<Vec<PathBuf>>,
    upgrade_cmd: Option<String>,
    reupgrade_sql: Option<Vec<PathBuf>>,
    reupgrade_cmd: Option<String>,
    #[serde(default)]
    ignore_columns: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DowngradeConfig {
    superuser: Option<bool>,
    sql: Option<Vec<PathBuf>>,
    cmd: Option<String>,
    cwd: Option<PathBuf>,
    timeout: Option<u64>,
    url_env: Option<String>,
    url_scheme: Option<String>,
    isolate_env: Option<bool>,
    /// Variables set for migration commands (kept under `isolate_env`).
    env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresConfig {
    bin: Option<PathBuf>,
    version: Option<String>,
    offline: Option<bool>,
    work_dir: Option<PathBuf>,
    download_timeout: Option<u64>,
}

fn parse_config(text: &str) -> std::result::Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// A loaded config file and the directory its relative paths start from.
#[derive(Clone)]
struct Loaded {
    config: FileConfig,
    base: PathBuf,
    /// The file read; None without one (or with /dev/null).
    path: Option<PathBuf>,
}

impl Loaded {
    fn path(&self, p: &Option<PathBuf>) -> Option<PathBuf> {
        p.as_ref().map(|p| self.resolve(p))
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if self.base == Path::new(".") {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

fn load_config(explicit: Option<&Path>) -> Result<Loaded> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).is_file() => PathBuf::from(DEFAULT_CONFIG),
        None => {
            return Ok(Loaded {
                config: FileConfig::default(),
                base: PathBuf::from("."),
                path: None,
            });
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::input(
            &path,
            if e.kind() == std::io::ErrorKind::NotFound {
                "config file not found; check --config".to_string()
            } else {
                format!("cannot read: {e}")
            },
        )
    })?;
    let config = parse_config(&text).map_err(|e| {
        let message = e.message().replace('\n', " ");
        let at = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::input(&path, format!("invalid config{at}: {message}"))
    })?;
    // Only a regular file lends its directory to relative paths and commands: `-c /dev/null`
    // must not run the downgrade in /dev.
    let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
    let base = path
        .parent()
        .filter(|p| is_file && !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let path = is_file.then_some(path);
    Ok(Loaded { config, base, path })
}

/// A whole `check`: the settings of the run, and its cases (one, or the chosen `[[case]]`s).
#[derive(Debug, Clone)]
pub struct CheckRunPlan {
    pub run: RunSettings,
    pub outputs: Outputs,
    /// Check mode (`--check`, CI=true): no pending baseline written; pending and orphaned
    /// baselines fail the run.
    pub check_baselines: bool,
    pub cases: Vec<CheckPlan>,
}

/// Everything one `check` case needs, resolved.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The `[[case]]` name; None for the single case of a config without `[[case]]`.
    pub name: Option<String>,
    pub input: InputPlan,
    pub downgrade: Step,
    pub downgrade_timeout: Option<Duration>,
    pub downgrade_superuser: bool,
    pub expect_patch: Option<PathBuf>,
    /// The after-snapshot baseline.
    pub expect_after: Option<PathBuf>,
    pub patch_out: Option<PathBuf>,
    pub volatile: Volatile,
    pub metadata_rules: Vec<MetadataSpec>,
    pub after: AfterSpec,
    pub roundtrip: Option<RoundTripPlan>,
    /// The new-shape rule's severity; None: off.
    pub new_shape: Option<Severity>,
    /// Losses acknowledged by name (`schema.table`, `schema.table.column`), sorted.
    pub allow_lost: Vec<String>,
    /// A downgrade that changes nothing passes the no-op check.
    pub allow_noop: bool,
}

/// A round trip: the migration's other direction, and the comparison with the state the dump
/// started from.
#[derive(Debug, Clone)]
pub struct RoundTripPlan {
    pub direction: RoundTripDirection,
    /// The upgrade: run first (`UpFirst`) or after the downgrade (`DownThenUp`).
    pub upgrade: Step,
    /// (`schema.table`, column) allowed to differ.
    pub ignore: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundTripDirection {
    /// `--upgrade-*`, for a dump at the previous revision: original → upgrade → downgrade, the
    /// result compared with the original.
    UpFirst,
    /// `--reupgrade-*`, for a dump at head: head → downgrade → upgrade, the result compared
    /// with head.
    DownThenUp,
}

/// What applies to the whole run, whatever the command and however many cases: read from the
/// flags and the config's top level only.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The whole run's limit (`--timeout` / `timeout`).
    pub timeout: Option<Duration>,
    /// No progress lines or notes (`--quiet` / `quiet`).
    pub quiet: bool,
    /// Progress lines even off a terminal (`--verbose`).
    pub verbose: bool,
    /// Hash data values in every output (`--redact` / `redact`).
    pub redact: bool,
    pub binaries: BinaryOptions,
    pub server: ServerOptions,
}

/// What one case restores and snapshots.
#[derive(Debug, Clone)]
pub struct InputPlan {
    pub dump: PathBuf,
    /// The config file read, if any (reports list it).
    pub config: Option<PathBuf>,
    pub tables: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SnapshotPlan {
    pub run: RunSettings,
    pub input: InputPlan,
    pub out: Option<PathBuf>,
}

fn run_settings(args: &InputArgs, globals: &Globals, loaded: &Loaded) -> RunSettings {
    let file = &loaded.config;
    let pg = file.postgres.as_ref();
    RunSettings {
        timeout: globals.timeout.or(file.timeout).map(Duration::from_secs),
        quiet: globals.quiet || file.quiet.unwrap_or(false),
        verbose: globals.verbose,
        redact: globals.redact || file.redact.unwrap_or(false),
        binaries: BinaryOptions {
            pg_bin: args
                .pg_bin
                .clone()
                .or_else(|| pg.and_then(|p| loaded.path(&p.bin))),
            pg_version: args
                .pg_version
                .clone()
                .or_else(|| pg.and_then(|p| p.version.clone())),
            offline: args
                .offline
                .or_else(|| pg.and_then(|p| p.offline))
                .unwrap_or(false),
            download_timeout: Duration::from_secs(
                pg.and_then(|p| p.download_timeout).unwrap_or(120),
            ),
            min_major: None,
        },
        server: ServerOptions {
            work_dir: args
                .work_dir
                .clone()
                .or_else(|| pg.and_then(|p| loaded.path(&p.work_dir))),
            space_needed: 0,
        },
    }
}

fn input_plan(args: &InputArgs, loaded: &Loaded) -> Result<InputPlan> {
    let file = &loaded.config;
    let dump = args
        .dump
        .clone()
        .or_else(|| loaded.path(&file.dump))
        .ok_or_else(|| {
            Error::Config(
                "no dump given: pass --dump FILE, or set `dump` in pgsnapdiff.toml".into(),
            )
        })?;
    let tables = if args.tables.is_empty() {
        file.tables.clone().unwrap_or_default()
    } else {
        args.tables.clone()
    };
    Ok(InputPlan {
        dump,
        config: loaded.path.clone(),
        tables,
    })
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

/// The run and its cases: the config's `[[case]]`s (those chosen with --case), or the one case
/// the top-level keys and flags describe.
pub fn check_plans(args: &CheckArgs, globals: &Globals) -> Result<CheckRunPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    Ok(CheckRunPlan {
        run: run_settings(&args.input, globals, &loaded),
        outputs: args.outputs.resolve(&loaded)?,
        check_baselines: args.check || ci(),
        cases: check_cases(args, &loaded)?,
    })
}

fn check_cases(args: &CheckArgs, loaded: &Loaded) -> Result<Vec<CheckPlan>> {
    let cases = &loaded.config.case;
    if cases.is_empty() {
        if !args.cases.is_empty() {
            return Err(Error::Config(
                "--case: the config has no [[case]]; drop --case, or add [[case]] tables".into(),
            ));
        }
        return Ok(vec![check_plan(args, loaded, None)?]);
    }
    let mut names = std::collections::BTreeSet::new();
    for case in cases {
        if !names.insert(case.name.as_str()) {
            return Err(Error::Config(format!(
                "pgsnapdiff.toml: two [[case]] are named {:?}; names must be unique",
                case.name
            )));
        }
    }
    if let Some(unknown) = args.cases.iter().find(|n| !names.contains(n.as_str())) {
        let names: Vec<&str> = names.into_iter().collect();
        return Err(Error::Config(format!(
            "--case {unknown}: no such [[case]]; cases: {}",
            names.join(", ")
        )));
    }
    let chosen: Vec<&CaseConfig> = cases
        .iter()
        .filter(|c| args.cases.is_empty() || args.cases.contains(&c.name))
        .collect();
    let one_case_flags = [
        (args.input.dump.is_some(), "--dump"),
        (
            !args.downgrade_sql.is_empty() || args.downgrade_cmd.is_some(),
            "--downgrade-sql/--downgrade-cmd",
        ),
        (args.expect_patch.is_some(), "--expect-patch"),
        (args.expect_after.is_some(), "--expect-after"),
        (args.patch_out.is_some(), "--patch-out"),
        (
            !args.upgrade_sql.is_empty() || args.upgrade_cmd.is_some(),
            "--upgrade-sql/--upgrade-cmd",
        ),
        (
            !args.reupgrade_sql.is_empty() || args.reupgrade_cmd.is_some(),
            "--reupgrade-sql/--reupgrade-cmd",
        ),
    ];
    if chosen.len() > 1
        && let Some((_, flag)) = one_case_flags.iter().find(|(set, _)| *set)
    {
        return Err(Error::Config(format!(
            "{flag} applies to one case, and {} are chosen; pick one with --case NAME",
            chosen.len()
        )));
    }
    chosen
        .into_iter()
        .map(|case| {
            let view = Loaded {
                config: loaded.config.for_case(case),
                ..loaded.clone()
            };
            check_plan(args, &view, Some(case.name.clone()))
        })
        .collect()
}

fn check_plan(args: &CheckArgs, loaded: &Loaded, name: Option<String>) -> Result<CheckPlan> {
    let input = input_plan(&args.input, loaded)?;
    let file = loaded.config.downgrade.as_ref();
    let downgrade = if !args.downgrade_sql.is_empty() {
        Step::Sql(args.downgrade_sql.clone())
    } else if let Some(cmd) = &args.downgrade_cmd {
        Step::Command(command_spec(cmd.clone(), &args.migration, file, loaded))
    } else {
        match (
            file.and_then(|d| d.sql.as_ref()),
            file.and_then(|d| d.cmd.as_ref()),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "pgsnapdiff.toml: [downgrade] has both `sql` and `cmd`; keep one".into(),
                ));
            }
            (Some(sql), None) if !sql.is_empty() => {
                Step::Sql(sql.iter().map(|p| loaded.resolve(p)).collect())
            }
            (None, Some(cmd)) => {
                Step::Command(command_spec(cmd.clone(), &args.migration, file, loaded))
            }
            _ => {
                return Err(Error::Config(
                    "no downgrade given: pass --downgrade-sql FILE or --downgrade-cmd CMD, or set [downgrade] sql/cmd in pgsnapdiff.toml".into(),
                ));
            }
        }
    };
    let timeout = args
        .migration
        .downgrade_timeout
        .or_else(|| file.and_then(|d| d.timeout))
        .map(Duration::from_secs);
    Ok(CheckPlan {
        name,
        input,
        downgrade,
        downgrade_timeout: timeout,
        downgrade_superuser: args.migration.downgrade_superuser
            || file.and_then(|d| d.superuser).unwrap_or(false),
        expect_patch: args
            .expect_patch
            .clone()
            .or_else(|| loaded.path(&loaded.config.expect_patch)),
        expect_after: args
            .expect_after
            .clone()
            .or_else(|| loaded.path(&loaded.config.expect_after)),
        patch_out: args
            .patch_out
            .clone()
            .or_else(|| loaded.path(&loaded.config.patch_out)),
        volatile: Volatile::parse(
            &loaded
                .config
                .volatile
                .iter()
                .flatten()
                .chain(&args.volatile)
                .cloned()
                .collect::<Vec<_>>(),
        )?,
        metadata_rules: metadata_rules(args, loaded)?,
        after: after_spec(args, loaded)?,
        roundtrip: roundtrip_plan(args, file, loaded)?,
        new_shape: args
            .new_shape
            .severity(loaded.config.rules.as_ref().and_then(|r| r.new_shape)),
        allow_lost: args.loss.resolve(loaded)?,
        allow_noop: args.allow_noop || loaded.config.allow_noop.unwrap_or(false),
    })
}

fn pointer(text: &str, what: &str) -> Result<PointerBuf> {
    PointerBuf::parse(text).map_err(|e| {
        Error::Config(format!(
            "{what}: {text:?} is not a JSON Pointer ({e}); pointers look like /step_data/_migration_metadata"
        ))
    })
}

/// `schema.table` as written, or `public.table` for a bare name.
fn qualified(table: &str) -> String {
    if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }
}

fn metadata_rules(args: &CheckArgs, loaded: &Loaded) -> Result<Vec<MetadataSpec>> {
    let default_without = match args.without_metadata.as_deref() {
        None | Some("unchanged") => WithoutMetadata::Unchanged,
        Some("kept") => WithoutMetadata::Kept,
        Some("any") => WithoutMetadata::Any,
        Some(other) => {
            return Err(Error::Config(format!(
                "--without-metadata {other}: use unchanged, kept or any"
            )));
        }
    };
    let mut specs = Vec::new();
    let configured = loaded.config.rules.iter().flat_map(|r| r.metadata.iter());
    for (i, rule) in configured.enumerate() {
        let what = format!("pgsnapdiff.toml [[rules.metadata]] #{}", i + 1);
        if rule.fields.is_empty() {
            return Err(Error::Config(format!("{what}: `fields` maps no field")));
        }
        let table = qualified(&rule.table);
        specs.push(MetadataSpec {
            id: rule
                .id
                .clone()
                .unwrap_or_else(|| "metadata-restored".into()),
            metadata: pointer(&rule.metadata, &what)?,
            fields: rule
                .fields
                .iter()
                .map(|(f, m)| Ok((pointer(f, &what)?, pointer(m, &what)?)))
                .collect::<Result<_>>()?,
            without_metadata: rule.without_metadata.unwrap_or(WithoutMetadata::Unchanged),
            ignore_columns: rule.ignore_columns.clone(),
            allow_added_rows: rule.allow_added_rows,
            allow_removed_rows: rule.allow_removed_rows,
            table,
        });
    }
    for text in &args.metadata_rules {
        let what = format!("--metadata-rule {text:?}");
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [table, metadata, fields @ ..] = parts.as_slice() else {
            return Err(Error::Config(format!(
                "{what}: write it as 'TABLE METADATA_PTR FIELD_PTR=SOURCE_PTR ...'"
            )));
        };
        if fields.is_empty() {
            return Err(Error::Config(format!(
                "{what}: maps no FIELD_PTR=SOURCE_PTR"
            )));
        }
        let fields = fields
            .iter()
            .map(|f| {
                let (field, source) = f.split_once('=').ok_or_else(|| {
                    Error::Config(format!("{what}: {f:?} is not FIELD_PTR=SOURCE_PTR"))
                })?;
                Ok((pointer(field, &what)?, pointer(source, &what)?))
            })
            .collect::<Result<_>>()?;
        specs.push(MetadataSpec {
            id: "metadata-restored".into(),
            table: qualified(table),
            metadata: pointer(metadata, &what)?,
            fields,
            without_metadata: default_without,
            ignore_columns: Vec::new(),
            allow_added_rows: false,
            allow_removed_rows: false,
        });
    }
    // Ids must tell findings apart.
    if specs.len() > 1 {
        for spec in specs.iter_mut() {
            if spec.id == "metadata-restored" {
                spec.id = format!("metadata-restored:{}", spec.table);
            }
        }
    }
    Ok(specs)
}

fn after_spec(args: &CheckArgs, loaded: &Loaded) -> Result<AfterSpec> {
    let file = loaded.config.expect.as_ref();
    let mut spec = AfterSpec {
        revision: args
            .expect_revision
            .clone()
            .or_else(|| file.and_then(|e| e.revision.clone())),
        ..AfterSpec::default()
    };
    for test in file.iter().flat_map(|e| e.tests.iter()) {
        let value = serde_json::to_value(&test.value)
            .map_err(|e| Error::Config(format!("[[expect.tests]] {}: {e}", test.path)))?;
        spec.tests
            .push((pointer(&test.path, "[[expect.tests]]")?, value));
    }
    for text in &args.expect_tests {
        let (ptr, json) = text.split_once('=').ok_or_else(|| {
            Error::Config(format!("--expect-test {text:?}: write it as POINTER=JSON"))
        })?;
        let value = serde_json::from_str(json).map_err(|e| {
            Error::Config(format!(
                "--expect-test {text:?}: the value is not JSON ({e}); quote strings: '/p=\"text\"'"
            ))
        })?;
        spec.tests.push((pointer(ptr, "--expect-test")?, value));
    }
    for text in file
        .iter()
        .flat_map(|e| e.absent.iter())
        .chain(&args.expect_absent)
    {
        spec.absent.push(pointer(text, "expect absent")?);
    }
    Ok(spec)
}

fn roundtrip_plan(
    args: &CheckArgs,
    downgrade: Option<&DowngradeConfig>,
    loaded: &Loaded,
) -> Result<Option<RoundTripPlan>> {
    let file = loaded.config.roundtrip.as_ref();
    let command = |cmd: &String| {
        Step::Command(command_spec(
            cmd.clone(),
            &args.migration,
            downgrade,
            loaded,
        ))
    };
    let sql = |files: &Vec<PathBuf>| Step::Sql(files.iter().map(|p| loaded.resolve(p)).collect());
    // Flags first, then the file; each direction on its own.
    let up_first = if !args.upgrade_sql.is_empty() {
        Some(Step::Sql(args.upgrade_sql.clone()))
    } else if let Some(cmd) = &args.upgrade_cmd {
        Some(command(cmd))
    } else if let Some(files) = file.and_then(|r| r.upgrade_sql.as_ref()) {
        Some(sql(files))
    } else {
        file.and_then(|r| r.upgrade_cmd.as_ref()).map(command)
    };
    let down_then_up = if !args.reupgrade_sql.is_empty() {
        Some(Step::Sql(args.reupgrade_sql.clone()))
    } else if let Some(cmd) = &args.reupgrade_cmd {
        Some(command(cmd))
    } else if let Some(files) = file.and_then(|r| r.reupgrade_sql.as_ref()) {
        Some(sql(files))
    } else {
        file.and_then(|r| r.reupgrade_cmd.as_ref()).map(command)
    };
    let (direction, upgrade) = match (up_first, down_then_up) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "a round trip either upgrades first (--upgrade-*, a dump at the previous revision) or upgrades again after the downgrade (--reupgrade-*, a dump at head); keep one".into(),
            ));
        }
        (Some(step), None) => (RoundTripDirection::UpFirst, step),
        (None, Some(step)) => (RoundTripDirection::DownThenUp, step),
        (None, None) => {
            if !args.roundtrip_ignore.is_empty() {
                return Err(Error::Config(
                    "--roundtrip-ignore needs --upgrade-sql/--upgrade-cmd or --reupgrade-sql/--reupgrade-cmd".into(),
                ));
            }
            return Ok(None);
        }
    };
    let ignore = file
        .iter()
        .flat_map(|r| r.ignore_columns.iter())
        .chain(&args.roundtrip_ignore)
        .map(|c| {
            let (table, column) = c.rsplit_once('.').ok_or_else(|| {
                Error::Config(format!(
                    "round-trip ignore {c:?}: write it as schema.table.column"
                ))
            })?;
            Ok((qualified(table), column.to_string()))
        })
        .collect::<Result<_>>()?;
    Ok(Some(RoundTripPlan {
        direction,
        upgrade,
        ignore,
    }))
}

fn command_spec(
    command: String,
    args: &MigrationArgs,
    file: Option<&DowngradeConfig>,
    loaded: &Loaded,
) -> CommandSpec {
    // Without a config file's directory, the caller's own (absolute, for messages).
    let cwd = args
        .downgrade_cwd
        .clone()
        .or_else(|| file.and_then(|d| loaded.path(&d.cwd)))
        .unwrap_or_else(|| loaded.base.clone());
    let cwd = std::path::absolute(&cwd).unwrap_or(cwd);
    CommandSpec {
        command,
        cwd,
        url_env: args
            .url_env
            .clone()
            .or_else(|| file.and_then(|d| d.url_env.clone()))
            .unwrap_or_else(|| "DATABASE_URL".into()),
        url_scheme: args
            .url_scheme
            .clone()
            .or_else(|| file.and_then(|d| d.url_scheme.clone()))
            .unwrap_or_else(|| "postgresql".into()),
        isolate_env: args.isolate_env || file.and_then(|d| d.isolate_env).unwrap_or(false),
        env: file
            .and_then(|d| d.env.clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// Everything `walk` needs, resolved.
#[derive(Debug, Clone)]
pub struct WalkPlan {
    pub run: RunSettings,
    pub input: InputPlan,
    /// The revision to stop at; `base` is the empty revision set.
    pub to: String,
    /// Moves one revision down.
    pub step: Step,
    pub step_timeout: Option<Duration>,
    pub superuser: bool,
    pub revision_sql: Option<String>,
    pub max_steps: usize,
    pub outputs: Outputs,
    pub new_shape: Option<Severity>,
    /// Losses acknowledged by name, sorted.
    pub allow_lost: Vec<String>,
}

/// Running in CI: `CI` is `true` or `1` (GitHub Actions, GitLab, most others).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"))
}

/// What `review`, `accept` and `reject` work on.
#[derive(Debug, Clone)]
pub struct BaselinePlan {
    pub paths: Vec<PathBuf>,
    /// The config's baselines (the expected patch), whose directories hold pending files.
    pub used: Vec<PathBuf>,
}

pub fn baseline_plan(args: &BaselineArgs) -> Result<BaselinePlan> {
    let loaded = load_config(args.config.as_deref())?;
    Ok(BaselinePlan {
        paths: args.paths.clone(),
        used: loaded
            .path(&loaded.config.expect_patch)
            .into_iter()
            .chain(loaded.path(&loaded.config.expect_after))
            .collect(),
    })
}

pub fn walk_plan(args: &WalkArgs, globals: &Globals) -> Result<WalkPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    let run = run_settings(&args.input, globals, &loaded);
    let input = input_plan(&args.input, &loaded)?;
    let walk = loaded.config.walk.as_ref();
    let downgrade = loaded.config.downgrade.as_ref();
    let to = args
        .to
        .clone()
        .or_else(|| walk.and_then(|w| w.to.clone()))
        .ok_or_else(|| {
            Error::Config(
                "no target revision: pass --to REV (or --to base), or set [walk] to in pgsnapdiff.toml".into(),
            )
        })?;
    let command = args
        .step_cmd
        .clone()
        .or_else(|| walk.and_then(|w| w.step_cmd.clone()))
        .unwrap_or_else(|| "alembic downgrade -1".into());
    let max_steps = args
        .max_steps
        .or_else(|| walk.and_then(|w| w.max_steps))
        .unwrap_or(100);
    if max_steps == 0 {
        return Err(Error::Config("--max-steps must be at least 1".into()));
    }
    Ok(WalkPlan {
        run,
        input,
        to,
        step: Step::Command(command_spec(command, &args.migration, downgrade, &loaded)),
        step_timeout: args
            .migration
            .downgrade_timeout
            .or_else(|| downgrade.and_then(|d| d.timeout))
            .map(Duration::from_secs),
        superuser: args.migration.downgrade_superuser
            || downgrade.and_then(|d| d.superuser).unwrap_or(false),
        revision_sql: args
            .revision_sql
            .clone()
            .or_else(|| walk.and_then(|w| w.revision_sql.clone())),
        max_steps,
        outputs: args.outputs.resolve(&loaded)?,
        new_shape: args
            .new_shape
            .severity(loaded.config.rules.as_ref().and_then(|r| r.new_shape)),
        allow_lost: args.loss.resolve(&loaded)?,
    })
}

pub fn snapshot_plan(args: &SnapshotArgs, globals: &Globals) -> Result<SnapshotPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    Ok(SnapshotPlan {
        run: run_settings(&args.input, globals, &loaded),
        input: input_plan(&args.input, &loaded)?,
        out: args.out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn plans(args: &[&str]) -> Result<Vec<CheckPlan>> {
        let cli = Cli::try_parse_from(std::iter::once("pgsnapdiff").chain(args.iter().copied()))
            .expect("flags parse");
        let Cmd::Check(check) = &cli.command else {
            panic!("not a check")
        };
        check_plans(check, &cli.globals()).map(|run| run.cases)
    }

    fn command(plan: &CheckPlan) -> &CommandSpec {
        match &plan.downgrade {
            Step::Command(spec) => spec,
            Step::Sql(_) => panic!("not a command"),
        }
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default_and_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pgsnapdiff.toml");
        std::fs::write(
            &config,
            "dump = \"dumps/prod.dump\"\nallow_lost = [\"public.t.c\"]\n[downgrade]\ncmd = \"alembic downgrade -1\"\nurl_env = \"FILE_URL\"\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        let c = config.to_str().unwrap();
        let plan = &plans(&["check", "-c", c, "--url-env", "FLAG_URL"]).unwrap()[0];
        let spec = command(plan);
        assert_eq!(spec.url_env, "FLAG_URL");
        assert_eq!(spec.url_scheme, "postgresql");
        assert_eq!(spec.cwd, dir.path());
        assert_eq!(spec.env, [("A".to_string(), "1".to_string())]);
        assert!(!spec.isolate_env);
        assert_eq!(plan.input.dump, dir.path().join("dumps/prod.dump"));
        assert_eq!(plan.allow_lost, ["public.t.c"]);
        assert!(!plan.allow_noop && plan.roundtrip.is_none());
        let plan = &plans(&[
            "check",
            "-c",
            c,
            "--isolate-env",
            "--allow-lost",
            "public.u",
        ])
        .unwrap()[0];
        assert!(command(plan).isolate_env);
        assert_eq!(plan.allow_lost, ["public.t.c", "public.u"]);
    }

    #[test]
    fn without_a_config_file_commands_run_in_the_current_directory() {
        let plan = &plans(&[
            "check",
            "-c",
            "/dev/null",
            "--dump",
            "x.dump",
            "--downgrade-cmd",
            "true",
        ])
        .unwrap()[0];
        assert_eq!(command(plan).cwd, std::env::current_dir().unwrap());
    }

    #[test]
    fn bad_combinations_are_config_errors_before_any_work() {
        let base = [
            "check",
            "-c",
            "/dev/null",
            "--dump",
            "x.dump",
            "--downgrade-sql",
            "d.sql",
        ];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            plans(&args).unwrap_err().to_string()
        };
        assert!(with(&["--allow-lost", "t"]).contains("name a table as schema.table"));
        assert!(
            with(&["--upgrade-sql", "u.sql", "--reupgrade-sql", "u.sql"])
                .contains("a round trip either upgrades first")
        );
        assert!(with(&["--roundtrip-ignore", "public.t.c"]).contains("--roundtrip-ignore needs"));
        let plan = &plans(&[&base[..], &["--reupgrade-sql", "u.sql"]].concat()).unwrap()[0];
        let rt = plan.roundtrip.as_ref().unwrap();
        assert_eq!(rt.direction, RoundTripDirection::DownThenUp);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// A config file is user text: any mutation of the sample's parses or is refused, never
        /// a panic.
        #[test]
        fn any_config_text_parses_or_is_refused(
            data in crate::mutate::mutated(include_bytes!("../pgsnapdiff.toml").to_vec())
        ) {
            let _ = parse_config(&String::from_utf8_lossy(&data));
        }
    }
}
