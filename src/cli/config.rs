//! `pgsnapdiff.toml`: its keys (unknown ones are errors, so a typo never silently does
//! nothing), `[[case]]` over the top level, and where its relative paths start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::OutputFormat;
use super::flags::NewShapeMode;
use crate::error::{Error, Result};
use crate::expect::rules::WithoutMetadata;

pub const DEFAULT_CONFIG: &str = "pgsnapdiff.toml";

/// `pgsnapdiff.toml`. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) timeout: Option<u64>,
    pub(super) quiet: Option<bool>,
    pub(super) redact: Option<bool>,
    /// Connections per side that read a big table's key ranges at once (`--jobs`).
    pub(super) jobs: Option<usize>,
    pub(super) dump: Option<PathBuf>,
    /// A database already restored on `[postgres] server`, instead of a dump.
    pub(super) restored: Option<String>,
    pub(super) tables: Option<Vec<String>>,
    pub(super) exclude_tables: Option<Vec<String>>,
    pub(super) expect_patch: Option<PathBuf>,
    pub(super) expect_after: Option<PathBuf>,
    pub(super) patch_out: Option<PathBuf>,
    pub(super) result_out: Option<PathBuf>,
    pub(super) report: Option<PathBuf>,
    pub(super) format: Option<OutputFormat>,
    pub(super) volatile: Option<Vec<String>>,
    pub(super) allow_lost: Option<Vec<String>>,
    pub(super) allow_noop: Option<bool>,
    pub(super) downgrade: Option<DowngradeConfig>,
    pub(super) migrations: Option<MigrationsConfig>,
    pub(super) postgres: Option<PostgresConfig>,
    pub(super) rules: Option<RulesConfig>,
    pub(super) expect: Option<ExpectConfig>,
    pub(super) roundtrip: Option<RoundTripConfig>,
    pub(super) walk: Option<WalkConfig>,
    /// Several cases in one run (`[[case]]`); the top-level case keys are their defaults.
    #[serde(default)]
    pub(super) case: Vec<CaseConfig>,
}

/// One `[[case]]`: a dump, a downgrade, its rules and its baseline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CaseConfig {
    pub(super) name: String,
    pub(super) dump: Option<PathBuf>,
    /// A database already restored on `[postgres] server`, instead of a dump.
    pub(super) restored: Option<String>,
    pub(super) tables: Option<Vec<String>>,
    pub(super) exclude_tables: Option<Vec<String>>,
    pub(super) expect_patch: Option<PathBuf>,
    pub(super) expect_after: Option<PathBuf>,
    pub(super) patch_out: Option<PathBuf>,
    pub(super) volatile: Option<Vec<String>>,
    pub(super) allow_lost: Option<Vec<String>>,
    pub(super) allow_noop: Option<bool>,
    pub(super) downgrade: Option<DowngradeConfig>,
    pub(super) migrations: Option<MigrationsConfig>,
    pub(super) rules: Option<RulesConfig>,
    pub(super) expect: Option<ExpectConfig>,
    pub(super) roundtrip: Option<RoundTripConfig>,
}

impl FileConfig {
    /// The config as one case sees it: the case's keys over the top-level defaults.
    pub(super) fn for_case(&self, case: &CaseConfig) -> FileConfig {
        let c = case.clone();
        FileConfig {
            // A dump or a restored database: the case's choice goes whole.
            restored: match (&c.dump, c.restored.clone()) {
                (None, None) => self.restored.clone(),
                (_, restored) => restored,
            },
            dump: match (c.dump, &c.restored) {
                (None, None) => self.dump.clone(),
                (dump, _) => dump,
            },
            tables: c.tables.or_else(|| self.tables.clone()),
            exclude_tables: c.exclude_tables.or_else(|| self.exclude_tables.clone()),
            expect_patch: c.expect_patch.or_else(|| self.expect_patch.clone()),
            expect_after: c.expect_after.or_else(|| self.expect_after.clone()),
            patch_out: c.patch_out.or_else(|| self.patch_out.clone()),
            volatile: c.volatile.or_else(|| self.volatile.clone()),
            allow_lost: c.allow_lost.or_else(|| self.allow_lost.clone()),
            allow_noop: c.allow_noop.or(self.allow_noop),
            downgrade: c.downgrade.or_else(|| self.downgrade.clone()),
            migrations: c.migrations.or_else(|| self.migrations.clone()),
            rules: c.rules.or_else(|| self.rules.clone()),
            expect: c.expect.or_else(|| self.expect.clone()),
            roundtrip: c.roundtrip.or_else(|| self.roundtrip.clone()),
            case: Vec::new(),
            ..self.clone()
        }
    }
}

/// `[migrations]`: the migration tool and how to read its revision.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MigrationsConfig {
    pub(super) tool: Option<crate::tool::Tool>,
    pub(super) revision_sql: Option<String>,
    /// Django: the one app to move and read.
    pub(super) app: Option<String>,
    /// Django: the Python that runs `manage.py` (default `python3`).
    pub(super) python: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WalkConfig {
    pub(super) to: Option<String>,
    pub(super) step_cmd: Option<String>,
    pub(super) revision_sql: Option<String>,
    pub(super) max_steps: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesConfig {
    #[serde(default)]
    pub(super) metadata: Vec<MetadataConfig>,
    pub(super) new_shape: Option<NewShapeMode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetadataConfig {
    pub(super) id: Option<String>,
    pub(super) table: String,
    pub(super) metadata: String,
    pub(super) fields: BTreeMap<String, String>,
    pub(super) without_metadata: Option<WithoutMetadata>,
    #[serde(default)]
    pub(super) ignore_columns: Vec<String>,
    #[serde(default)]
    pub(super) allow_added_rows: bool,
    #[serde(default)]
    pub(super) allow_removed_rows: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpectConfig {
    pub(super) revision: Option<String>,
    #[serde(default)]
    pub(super) absent: Vec<String>,
    #[serde(default)]
    pub(super) tests: Vec<TestConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestConfig {
    pub(super) path: String,
    pub(super) value: toml::Value,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoundTripConfig {
    pub(super) upgrade_sql: Option<Vec<PathBuf>>,
    pub(super) upgrade_cmd: Option<String>,
    pub(super) reupgrade_sql: Option<Vec<PathBuf>>,
    pub(super) reupgrade_cmd: Option<String>,
    #[serde(default)]
    pub(super) ignore_columns: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DowngradeConfig {
    pub(super) superuser: Option<bool>,
    pub(super) sql: Option<Vec<PathBuf>>,
    pub(super) cmd: Option<String>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) timeout: Option<u64>,
    pub(super) url_env: Option<String>,
    pub(super) url_scheme: Option<String>,
    pub(super) isolate_env: Option<bool>,
    /// Variables set for migration commands (kept under `isolate_env`).
    pub(super) env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PostgresConfig {
    pub(super) bin: Option<PathBuf>,
    pub(super) version: Option<String>,
    pub(super) offline: Option<bool>,
    pub(super) work_dir: Option<PathBuf>,
    pub(super) download_timeout: Option<u64>,
    /// An existing server to work on instead of an embedded one (`--server`).
    pub(super) server: Option<String>,
}

// ------------------------------------------------------------------------------- layering

/// One layer of settings over another: the flags over the config file. A key the upper layer
/// does not set keeps the lower layer's value, section by section, key by key. This is the one
/// place where flag-or-file precedence is decided; defaults come after, in the plans.
pub(super) trait Over {
    fn over(self, lower: Self) -> Self;
}

/// A section on both layers merges key by key; on one layer, it is that one.
fn section<T: Over>(upper: Option<T>, lower: Option<T>) -> Option<T> {
    match (upper, lower) {
        (Some(u), Some(l)) => Some(u.over(l)),
        (u, l) => u.or(l),
    }
}

impl Over for FileConfig {
    fn over(self, lower: Self) -> Self {
        FileConfig {
            timeout: self.timeout.or(lower.timeout),
            quiet: self.quiet.or(lower.quiet),
            redact: self.redact.or(lower.redact),
            jobs: self.jobs.or(lower.jobs),
            // A dump or a restored database: the upper layer's choice goes whole.
            restored: match (&self.dump, self.restored.clone()) {
                (None, None) => lower.restored.clone(),
                (_, restored) => restored,
            },
            dump: match (self.dump, &self.restored) {
                (None, None) => lower.dump,
                (dump, _) => dump,
            },
            tables: self.tables.or(lower.tables),
            exclude_tables: match (self.exclude_tables, lower.exclude_tables) {
                (Some(mut upper), Some(lower)) => {
                    upper.extend(lower);
                    Some(upper)
                }
                (u, l) => u.or(l),
            },
            expect_patch: self.expect_patch.or(lower.expect_patch),
            expect_after: self.expect_after.or(lower.expect_after),
            patch_out: self.patch_out.or(lower.patch_out),
            result_out: self.result_out.or(lower.result_out),
            report: self.report.or(lower.report),
            format: self.format.or(lower.format),
            volatile: self.volatile.or(lower.volatile),
            allow_lost: self.allow_lost.or(lower.allow_lost),
            allow_noop: self.allow_noop.or(lower.allow_noop),
            downgrade: section(self.downgrade, lower.downgrade),
            migrations: section(self.migrations, lower.migrations),
            postgres: section(self.postgres, lower.postgres),
            rules: section(self.rules, lower.rules),
            expect: section(self.expect, lower.expect),
            roundtrip: section(self.roundtrip, lower.roundtrip),
            walk: section(self.walk, lower.walk),
            case: if self.case.is_empty() {
                lower.case
            } else {
                self.case
            },
        }
    }
}

impl Over for MigrationsConfig {
    fn over(self, lower: Self) -> Self {
        MigrationsConfig {
            tool: self.tool.or(lower.tool),
            revision_sql: self.revision_sql.or(lower.revision_sql),
            app: self.app.or(lower.app),
            python: self.python.or(lower.python),
        }
    }
}

impl Over for DowngradeConfig {
    fn over(self, lower: Self) -> Self {
        // SQL files or a command: the upper layer's choice replaces the lower's whole.
        let (sql, cmd) = if self.sql.is_some() || self.cmd.is_some() {
            (self.sql, self.cmd)
        } else {
            (lower.sql, lower.cmd)
        };
        DowngradeConfig {
            superuser: self.superuser.or(lower.superuser),
            sql,
            cmd,
            cwd: self.cwd.or(lower.cwd),
            timeout: self.timeout.or(lower.timeout),
            url_env: self.url_env.or(lower.url_env),
            url_scheme: self.url_scheme.or(lower.url_scheme),
            isolate_env: self.isolate_env.or(lower.isolate_env),
            env: self.env.or(lower.env),
        }
    }
}

impl Over for RoundTripConfig {
    fn over(self, lower: Self) -> Self {
        // Each direction's SQL-or-command choice goes whole, like the downgrade's.
        let (upgrade_sql, upgrade_cmd) = if self.upgrade_sql.is_some() || self.upgrade_cmd.is_some()
        {
            (self.upgrade_sql, self.upgrade_cmd)
        } else {
            (lower.upgrade_sql, lower.upgrade_cmd)
        };
        let (reupgrade_sql, reupgrade_cmd) =
            if self.reupgrade_sql.is_some() || self.reupgrade_cmd.is_some() {
                (self.reupgrade_sql, self.reupgrade_cmd)
            } else {
                (lower.reupgrade_sql, lower.reupgrade_cmd)
            };
        RoundTripConfig {
            upgrade_sql,
            upgrade_cmd,
            reupgrade_sql,
            reupgrade_cmd,
            ignore_columns: [lower.ignore_columns, self.ignore_columns].concat(),
        }
    }
}

impl Over for PostgresConfig {
    fn over(self, lower: Self) -> Self {
        PostgresConfig {
            bin: self.bin.or(lower.bin),
            version: self.version.or(lower.version),
            offline: self.offline.or(lower.offline),
            work_dir: self.work_dir.or(lower.work_dir),
            download_timeout: self.download_timeout.or(lower.download_timeout),
            server: self.server.or(lower.server),
        }
    }
}

impl Over for RulesConfig {
    fn over(self, lower: Self) -> Self {
        RulesConfig {
            metadata: [lower.metadata, self.metadata].concat(),
            new_shape: self.new_shape.or(lower.new_shape),
        }
    }
}

impl Over for ExpectConfig {
    fn over(self, lower: Self) -> Self {
        ExpectConfig {
            revision: self.revision.or(lower.revision),
            absent: [lower.absent, self.absent].concat(),
            tests: [lower.tests, self.tests].concat(),
        }
    }
}

impl Over for WalkConfig {
    fn over(self, lower: Self) -> Self {
        WalkConfig {
            to: self.to.or(lower.to),
            step_cmd: self.step_cmd.or(lower.step_cmd),
            revision_sql: self.revision_sql.or(lower.revision_sql),
            max_steps: self.max_steps.or(lower.max_steps),
        }
    }
}

/// Every path the file names, made relative to where the run started (the file's own are
/// relative to the file's directory), so that the layers' paths mean the same.
fn rooted(config: FileConfig, base: &Path) -> FileConfig {
    let at = |p: PathBuf| {
        if base == Path::new(".") {
            p
        } else {
            base.join(p)
        }
    };
    let one = |p: Option<PathBuf>| p.map(at);
    let many = |v: Option<Vec<PathBuf>>| v.map(|v| v.into_iter().map(at).collect());
    let downgrade = |d: Option<DowngradeConfig>| {
        d.map(|d| DowngradeConfig {
            sql: many(d.sql),
            cwd: one(d.cwd),
            ..d
        })
    };
    let roundtrip = |r: Option<RoundTripConfig>| {
        r.map(|r| RoundTripConfig {
            upgrade_sql: many(r.upgrade_sql),
            reupgrade_sql: many(r.reupgrade_sql),
            ..r
        })
    };
    FileConfig {
        dump: one(config.dump),
        expect_patch: one(config.expect_patch),
        expect_after: one(config.expect_after),
        patch_out: one(config.patch_out),
        result_out: one(config.result_out),
        report: one(config.report),
        downgrade: downgrade(config.downgrade),
        postgres: config.postgres.map(|p| PostgresConfig {
            bin: one(p.bin),
            work_dir: one(p.work_dir),
            ..p
        }),
        roundtrip: roundtrip(config.roundtrip),
        case: config
            .case
            .into_iter()
            .map(|c| CaseConfig {
                dump: one(c.dump),
                expect_patch: one(c.expect_patch),
                expect_after: one(c.expect_after),
                patch_out: one(c.patch_out),
                downgrade: downgrade(c.downgrade),
                roundtrip: roundtrip(c.roundtrip),
                ..c
            })
            .collect(),
        ..config
    }
}

pub(super) fn parse_config(text: &str) -> std::result::Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// A loaded config file (its paths already rooted, see `rooted`) and its directory, where
/// migration commands run by default.
#[derive(Clone)]
pub(super) struct Loaded {
    pub(super) config: FileConfig,
    pub(super) base: PathBuf,
    /// The file read; None without one (or with /dev/null).
    pub(super) path: Option<PathBuf>,
}

pub(super) fn load_config(explicit: Option<&Path>) -> Result<Loaded> {
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
    let config = rooted(config, &base);
    Ok(Loaded { config, base, path })
}
