//! Flags and `pgsnapdiff.toml`, resolved into plans. Nothing downstream reads raw flags.
//!
//! Precedence: a flag (or its environment variable) wins over the config file, which wins over
//! the built-in default. Relative paths in the config file are relative to the file's directory;
//! relative paths in flags are relative to the current directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::downgrade::{CommandSpec, Downgrade};
use crate::error::{Error, Result};
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
    /// No progress lines on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Restore a dump, run the downgrade, diff before → after and check it (the main job).
    Check(CheckArgs),
    /// Restore a dump and write its snapshot (no downgrade).
    Snapshot(SnapshotArgs),
    /// Diff two snapshot files (no server); exit 1 when they differ.
    Diff(DiffArgs),
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
    /// Working directory of --downgrade-cmd [default: the config file's directory, else .].
    #[arg(long, value_name = "DIR")]
    pub downgrade_cwd: Option<PathBuf>,
    /// Kill the downgrade after this many seconds [default: no limit].
    #[arg(long, value_name = "SECS")]
    pub downgrade_timeout: Option<u64>,
    /// Environment variable that receives the connection URL [default: DATABASE_URL].
    #[arg(long, value_name = "NAME")]
    pub url_env: Option<String>,
    /// Scheme of that URL, e.g. postgresql+asyncpg [default: postgresql].
    #[arg(long, value_name = "SCHEME")]
    pub url_scheme: Option<String>,
    /// Expected RFC 6902 patch: the rollback is proven only if the emitted patch equals it.
    #[arg(long, value_name = "FILE")]
    pub expect_patch: Option<PathBuf>,
    /// Write the emitted patch here (atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub patch_out: Option<PathBuf>,
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
    /// Directory for the throwaway cluster [default: the system temp dir].
    #[arg(long, value_name = "DIR", env = "PGSNAPDIFF_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

/// `pgsnapdiff.toml`. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dump: Option<PathBuf>,
    tables: Option<Vec<String>>,
    expect_patch: Option<PathBuf>,
    patch_out: Option<PathBuf>,
    downgrade: Option<DowngradeConfig>,
    postgres: Option<PostgresConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DowngradeConfig {
    sql: Option<Vec<PathBuf>>,
    cmd: Option<String>,
    cwd: Option<PathBuf>,
    timeout: Option<u64>,
    url_env: Option<String>,
    url_scheme: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresConfig {
    bin: Option<PathBuf>,
    version: Option<String>,
    offline: Option<bool>,
    work_dir: Option<PathBuf>,
    download_timeout: Option<u64>,
}

/// A loaded config file and the directory its relative paths start from.
struct Loaded {
    config: FileConfig,
    base: PathBuf,
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
    let config: FileConfig = toml::from_str(&text).map_err(|e| {
        let message = e.message().replace('\n', " ");
        let at = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::input(&path, format!("invalid config{at}: {message}"))
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(Loaded { config, base })
}

/// Everything `check` needs, resolved.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub input: InputPlan,
    pub downgrade: Downgrade,
    pub downgrade_timeout: Option<Duration>,
    pub expect_patch: Option<PathBuf>,
    pub patch_out: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct InputPlan {
    pub dump: PathBuf,
    pub tables: Vec<String>,
    pub binaries: BinaryOptions,
    pub server: ServerOptions,
}

#[derive(Debug, Clone)]
pub struct SnapshotPlan {
    pub input: InputPlan,
    pub out: Option<PathBuf>,
}

fn input_plan(args: &InputArgs, loaded: &Loaded) -> Result<InputPlan> {
    let file = &loaded.config;
    let pg = file.postgres.as_ref();
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
        tables,
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
        },
    })
}

pub fn check_plan(args: &CheckArgs) -> Result<CheckPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    let input = input_plan(&args.input, &loaded)?;
    let file = loaded.config.downgrade.as_ref();
    let downgrade = if !args.downgrade_sql.is_empty() {
        Downgrade::Sql(args.downgrade_sql.clone())
    } else if let Some(cmd) = &args.downgrade_cmd {
        Downgrade::Command(command_spec(cmd.clone(), args, file, &loaded))
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
                Downgrade::Sql(sql.iter().map(|p| loaded.resolve(p)).collect())
            }
            (None, Some(cmd)) => Downgrade::Command(command_spec(cmd.clone(), args, file, &loaded)),
            _ => {
                return Err(Error::Config(
                    "no downgrade given: pass --downgrade-sql FILE or --downgrade-cmd CMD, or set [downgrade] sql/cmd in pgsnapdiff.toml".into(),
                ));
            }
        }
    };
    let timeout = args
        .downgrade_timeout
        .or_else(|| file.and_then(|d| d.timeout))
        .map(Duration::from_secs);
    Ok(CheckPlan {
        input,
        downgrade,
        downgrade_timeout: timeout,
        expect_patch: args
            .expect_patch
            .clone()
            .or_else(|| loaded.path(&loaded.config.expect_patch)),
        patch_out: args
            .patch_out
            .clone()
            .or_else(|| loaded.path(&loaded.config.patch_out)),
    })
}

fn command_spec(
    command: String,
    args: &CheckArgs,
    file: Option<&DowngradeConfig>,
    loaded: &Loaded,
) -> CommandSpec {
    CommandSpec {
        command,
        cwd: args
            .downgrade_cwd
            .clone()
            .or_else(|| file.and_then(|d| loaded.path(&d.cwd)))
            .unwrap_or_else(|| loaded.base.clone()),
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
    }
}

pub fn snapshot_plan(args: &SnapshotArgs) -> Result<SnapshotPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    Ok(SnapshotPlan {
        input: input_plan(&args.input, &loaded)?,
        out: args.out.clone(),
    })
}
