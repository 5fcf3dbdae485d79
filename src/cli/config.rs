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
    pub(super) dump: Option<PathBuf>,
    pub(super) tables: Option<Vec<String>>,
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
    pub(super) tables: Option<Vec<String>>,
    pub(super) expect_patch: Option<PathBuf>,
    pub(super) expect_after: Option<PathBuf>,
    pub(super) patch_out: Option<PathBuf>,
    pub(super) volatile: Option<Vec<String>>,
    pub(super) allow_lost: Option<Vec<String>>,
    pub(super) allow_noop: Option<bool>,
    pub(super) downgrade: Option<DowngradeConfig>,
    pub(super) rules: Option<RulesConfig>,
    pub(super) expect: Option<ExpectConfig>,
    pub(super) roundtrip: Option<RoundTripConfig>,
}

impl FileConfig {
    /// The config as one case sees it: the case's keys over the top-level defaults.
    pub(super) fn for_case(&self, case: &CaseConfig) -> FileConfig {
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
}

pub(super) fn parse_config(text: &str) -> std::result::Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// A loaded config file and the directory its relative paths start from.
#[derive(Clone)]
pub(super) struct Loaded {
    pub(super) config: FileConfig,
    pub(super) base: PathBuf,
    /// The file read; None without one (or with /dev/null).
    pub(super) path: Option<PathBuf>,
}

impl Loaded {
    pub(super) fn path(&self, p: &Option<PathBuf>) -> Option<PathBuf> {
        p.as_ref().map(|p| self.resolve(p))
    }

    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if self.base == Path::new(".") {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
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
    Ok(Loaded { config, base, path })
}
