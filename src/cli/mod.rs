//! Flags and `pgsnapdiff.toml`, resolved into plans. Nothing downstream reads raw flags.
//!
//! `flags.rs` holds the command line (clap), `config.rs` the config file (serde, unknown keys
//! refused), and this file resolves both into the plans the pipeline runs.
//!
//! Precedence: a flag (or its environment variable) wins over the config file, which wins over
//! the built-in default. Relative paths in the config file are relative to the file's directory;
//! relative paths in flags are relative to the current directory.

mod config;
mod flags;

use std::path::PathBuf;
use std::time::Duration;

use jsonptr::PointerBuf;

pub use config::DEFAULT_CONFIG;
use config::{CaseConfig, DowngradeConfig, FileConfig, Loaded, Over, load_config};
pub use flags::*;

use crate::error::{Error, Result};
use crate::expect::Severity;
use crate::expect::rules::{AfterSpec, MetadataSpec, WithoutMetadata};
use crate::migrate::{CommandSpec, Step};
pub use crate::report::Outputs;
pub use crate::report::ci::OutputFormat;
use crate::server::{BinaryOptions, ServerOptions};
use crate::tool::Tool;
use crate::volatile::Volatile;

/// A whole `check`: the settings of the run, and its cases (one, or the chosen `[[case]]`s).
#[derive(Debug, Clone)]
pub struct CheckRunPlan {
    pub run: RunSettings,
    pub outputs: Outputs,
    /// Check mode (`--check`, CI=true): no pending baseline written; pending and orphaned
    /// baselines fail the run.
    pub check_baselines: bool,
    pub cases: Vec<CheckPlan>,
    /// `--shard`: this run's share, and how many cases there are in all.
    pub shard: Option<(Shard, usize)>,
    /// Every case's baselines, chosen or not: a baseline of a case another shard (or no
    /// `--case`) runs is not an orphan.
    pub baselines: Vec<PathBuf>,
}

/// Everything one `check` case needs, resolved.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The `[[case]]` name; None for the single case of a config without `[[case]]`.
    pub name: Option<String>,
    pub input: InputPlan,
    pub downgrade: StepChoice,
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
    /// The dump; with `restored`, the database's name (for messages).
    pub dump: PathBuf,
    /// A database already restored on the `--server`, used instead of a dump.
    pub restored: Option<String>,
    /// `--jobs`: connections per side reading a big table's key ranges (`None`: the default).
    pub jobs: Option<usize>,
    /// The config file read, if any (reports list it).
    pub config: Option<PathBuf>,
    pub tables: Vec<String>,
    /// Globs on `schema.table` left out of every read.
    pub exclude: Vec<String>,
    pub migrations: MigrationsPlan,
}

/// The migration tool, as said (`--tool`, `[migrations]`); `None` is found from the dump.
#[derive(Debug, Clone, Default)]
pub struct MigrationsPlan {
    pub tool: Option<Tool>,
    /// The user's revision query; it wins over the tool's.
    pub revision_sql: Option<String>,
    /// Django: the one app to move and read.
    pub app: Option<String>,
    /// Django: the Python that runs `manage.py`.
    pub python: String,
}

/// No downgrade given, and the tool has no command of its own (Flyway, sql-files, custom).
fn no_default_step(tool: Tool) -> Error {
    Error::Config(format!(
        "no downgrade given, and {} has no default one: {}",
        tool.name(),
        tool.no_step_hint()
    ))
}

/// A migration step as configured: given, or the migration tool's own, known once the tool is
/// (after the restore, when it is detected).
#[derive(Debug, Clone)]
pub enum StepChoice {
    Given(Step),
    /// The tool's step command, run as this spec says (its `command` is filled in).
    ToolDefault(CommandSpec),
}

impl StepChoice {
    /// For reports and progress lines.
    pub fn describe(&self) -> String {
        match self {
            StepChoice::Given(step) => step.describe(),
            StepChoice::ToolDefault(_) => "the migration tool's own".into(),
        }
    }

    /// Before the first run: the inherited variables that could take the command elsewhere.
    pub fn note_inherited_connections(&self) {
        match self {
            StepChoice::Given(step) => step.note_inherited_connections(),
            StepChoice::ToolDefault(spec) => {
                Step::Command(spec.clone()).note_inherited_connections()
            }
        }
    }

    /// Inputs checked before the boot.
    pub fn validate(&self) -> Result<()> {
        match self {
            StepChoice::Given(step) => step.validate(),
            StepChoice::ToolDefault(spec) => Step::Command(spec.clone()).validate(),
        }
    }

    /// The step to run, once the tool is known. A given step is that step; otherwise the
    /// tool's command (Django's carries its script and app in the environment).
    pub fn resolve(&self, tool: Option<Tool>, m: &MigrationsPlan) -> Result<Step> {
        let spec = match self {
            StepChoice::Given(step) => return Ok(step.clone()),
            StepChoice::ToolDefault(spec) => spec,
        };
        let Some(tool) = tool else {
            return Err(Error::Config(
                "no downgrade given and no migration tool found in the dump: pass --downgrade-sql FILE or --downgrade-cmd CMD, or --tool".into(),
            ));
        };
        let Some(command) = tool.step_command(&m.python) else {
            return Err(no_default_step(tool));
        };
        let mut spec = spec.clone();
        spec.command = command;
        if tool == Tool::Django {
            spec.env.push((
                crate::tool::DJANGO_STEP_VAR.into(),
                crate::tool::DJANGO_STEP.into(),
            ));
            spec.env.push((
                crate::tool::DJANGO_APP_VAR.into(),
                m.app.clone().unwrap_or_default(),
            ));
        }
        Ok(Step::Command(spec))
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotPlan {
    pub run: RunSettings,
    pub input: InputPlan,
    pub out: Option<PathBuf>,
}

fn run_settings(c: &FileConfig, globals: &Globals) -> RunSettings {
    let pg = c.postgres.clone().unwrap_or_default();
    RunSettings {
        timeout: c.timeout.map(Duration::from_secs),
        quiet: c.quiet.unwrap_or(false),
        verbose: globals.verbose,
        redact: c.redact.unwrap_or(false),
        binaries: BinaryOptions {
            pg_bin: pg.bin,
            pg_version: pg.version,
            offline: pg.offline.unwrap_or(false),
            download_timeout: Duration::from_secs(pg.download_timeout.unwrap_or(120)),
            min_major: None,
            dump_major: None,
        },
        server: ServerOptions {
            work_dir: pg.work_dir,
            space_needed: 0,
            external: pg.server,
        },
    }
}

fn input_plan(c: &FileConfig, loaded: &Loaded) -> Result<InputPlan> {
    let server = c.postgres.as_ref().and_then(|p| p.server.as_ref());
    let (dump, restored) = match (&c.dump, &c.restored) {
        (Some(dump), None) => (dump.clone(), None),
        (None, Some(db)) if server.is_some() => (PathBuf::from(db), Some(db.clone())),
        (None, Some(db)) => {
            return Err(Error::Config(format!(
                "--restored {db} needs --server URL, the server that holds it"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "both a dump and a restored database given: pass one of --dump FILE or --restored DATABASE".into(),
            ));
        }
        (None, None) => {
            return Err(Error::Config(
                "no dump given: pass --dump FILE (or --restored DATABASE with --server), or set `dump` in pgsnapdiff.toml".into(),
            ));
        }
    };
    let m = c.migrations.clone().unwrap_or_default();
    let legacy_sql = c.walk.as_ref().and_then(|w| w.revision_sql.clone());
    Ok(InputPlan {
        dump,
        restored,
        jobs: c.jobs,
        config: loaded.path.clone(),
        tables: c.tables.clone().unwrap_or_default(),
        exclude: c.exclude_tables.clone().unwrap_or_default(),
        migrations: MigrationsPlan {
            tool: m.tool,
            revision_sql: m.revision_sql.or(legacy_sql),
            app: m.app,
            python: m.python.unwrap_or_else(|| "python3".into()),
        },
    })
}

fn outputs(c: &FileConfig) -> Result<Outputs> {
    // The format comes from the name: checked now rather than after the work.
    if let Some(p) = &c.report {
        crate::report::audit::Kind::of(p)?;
    }
    Ok(Outputs {
        result_out: c.result_out.clone(),
        report: c.report.clone(),
        format: c.format.unwrap_or_default(),
    })
}

/// The new-shape rule's severity (warn by default), or None when it is off.
fn new_shape(c: &FileConfig) -> Option<Severity> {
    match c.rules.as_ref().and_then(|r| r.new_shape) {
        Some(NewShapeMode::Off) => None,
        Some(NewShapeMode::Fail) => Some(Severity::Error),
        Some(NewShapeMode::Warn) | None => Some(Severity::Warning),
    }
}

/// The run and its cases: the config's `[[case]]`s (those chosen with --case), or the one case
/// the top-level keys and flags describe.
pub fn check_plans(args: &CheckArgs, globals: &Globals) -> Result<CheckRunPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    let flags = args.layer(globals);
    let run = flags.clone().over(loaded.config.clone());
    let cases = check_cases(args, &flags, &loaded)?;
    let baselines = if loaded.config.case.is_empty() {
        cases
            .iter()
            .flat_map(|p| p.expect_patch.iter().chain(&p.expect_after).cloned())
            .collect()
    } else {
        loaded
            .config
            .case
            .iter()
            .flat_map(|case| {
                let c = flags.clone().over(loaded.config.for_case(case));
                c.expect_patch.into_iter().chain(c.expect_after)
            })
            .collect()
    };
    let (cases, shard) = match args.shard {
        None => (cases, None),
        Some(shard) => {
            let total = cases.len();
            let mut cases = cases;
            cases.sort_by(|a, b| a.name.cmp(&b.name));
            let mine = cases
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % shard.of == shard.index - 1)
                .map(|(_, c)| c)
                .collect();
            (mine, Some((shard, total)))
        }
    };
    Ok(CheckRunPlan {
        run: run_settings(&run, globals),
        outputs: outputs(&run)?,
        check_baselines: args.check || ci(),
        cases,
        shard,
        baselines,
    })
}

/// `merge-results`: the files and where the merged report goes.
pub fn merge_plan(args: &MergeArgs) -> Result<(Vec<PathBuf>, Outputs)> {
    if let Some(p) = &args.output.report {
        crate::report::audit::Kind::of(p)?;
    }
    Ok((
        args.files.clone(),
        Outputs {
            result_out: args.output.result_out.clone(),
            report: args.output.report.clone(),
            format: args.output.format.unwrap_or_default(),
        },
    ))
}

fn check_cases(args: &CheckArgs, flags: &FileConfig, loaded: &Loaded) -> Result<Vec<CheckPlan>> {
    let cases = &loaded.config.case;
    if cases.is_empty() {
        if !args.cases.is_empty() {
            return Err(Error::Config(
                "--case: the config has no [[case]]; drop --case, or add [[case]] tables".into(),
            ));
        }
        let c = flags.clone().over(loaded.config.clone());
        return Ok(vec![check_plan(args, &c, loaded, None)?]);
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
            let c = flags.clone().over(loaded.config.for_case(case));
            check_plan(args, &c, loaded, Some(case.name.clone()))
        })
        .collect()
}

/// One case from its merged config (`c`: the flags over the file, see `config::Over`) and the
/// flags that add to the file's lists.
fn check_plan(
    args: &CheckArgs,
    c: &FileConfig,
    loaded: &Loaded,
    name: Option<String>,
) -> Result<CheckPlan> {
    let input = input_plan(c, loaded)?;
    let d = c.downgrade.clone().unwrap_or_default();
    let downgrade = match (&d.sql, &d.cmd) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "pgsnapdiff.toml: [downgrade] has both `sql` and `cmd`; keep one".into(),
            ));
        }
        (Some(sql), None) if !sql.is_empty() => StepChoice::Given(Step::Sql(sql.clone())),
        (None, Some(cmd)) => {
            StepChoice::Given(Step::Command(command_spec(cmd.clone(), &d, loaded)))
        }
        _ => match input.migrations.tool {
            // Known now: a tool without a step is refused before any work.
            Some(tool) if tool.step_command("").is_none() => return Err(no_default_step(tool)),
            Some(_) => StepChoice::ToolDefault(command_spec(String::new(), &d, loaded)),
            // A rollback is never run by guess: the tool's own downgrade only when it is named.
            None => {
                return Err(Error::Config(
                    "no downgrade given: pass --downgrade-sql FILE or --downgrade-cmd CMD, or --tool TOOL for the migration tool's own (e.g. --tool django: one migration back), or set them in pgsnapdiff.toml".into(),
                ));
            }
        },
    };
    Ok(CheckPlan {
        name,
        input,
        downgrade,
        downgrade_timeout: d.timeout.map(Duration::from_secs),
        downgrade_superuser: d.superuser.unwrap_or(false),
        expect_patch: c.expect_patch.clone(),
        expect_after: c.expect_after.clone(),
        patch_out: c.patch_out.clone(),
        volatile: Volatile::parse(
            &c.volatile
                .iter()
                .flatten()
                .chain(&args.volatile)
                .cloned()
                .collect::<Vec<_>>(),
        )?,
        metadata_rules: metadata_rules(args, c)?,
        after: after_spec(args, c)?,
        roundtrip: roundtrip_plan(args, c, &d, loaded)?,
        new_shape: new_shape(c),
        allow_lost: args.loss.resolve(&c.allow_lost)?,
        allow_noop: c.allow_noop.unwrap_or(false),
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

fn metadata_rules(args: &CheckArgs, c: &FileConfig) -> Result<Vec<MetadataSpec>> {
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
    let configured = c.rules.iter().flat_map(|r| r.metadata.iter());
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

fn after_spec(args: &CheckArgs, c: &FileConfig) -> Result<AfterSpec> {
    let file = c.expect.as_ref();
    let mut spec = AfterSpec {
        revision: file.and_then(|e| e.revision.clone()),
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
    c: &FileConfig,
    downgrade: &DowngradeConfig,
    loaded: &Loaded,
) -> Result<Option<RoundTripPlan>> {
    let r = c.roundtrip.clone().unwrap_or_default();
    // A direction's SQL files or command (the merge keeps one of the pair per layer).
    let step = |sql: &Option<Vec<PathBuf>>, cmd: &Option<String>| match (sql, cmd) {
        (Some(files), _) if !files.is_empty() => Some(Step::Sql(files.clone())),
        (_, Some(cmd)) => Some(Step::Command(command_spec(cmd.clone(), downgrade, loaded))),
        _ => None,
    };
    let up_first = step(&r.upgrade_sql, &r.upgrade_cmd);
    let down_then_up = step(&r.reupgrade_sql, &r.reupgrade_cmd);
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
    let ignore = r
        .ignore_columns
        .iter()
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

/// A migration command as `[downgrade]` (merged) says it runs; by default in the config file's
/// directory, else where pgsnapdiff was started (absolute, for messages).
fn command_spec(command: String, d: &DowngradeConfig, loaded: &Loaded) -> CommandSpec {
    let cwd = d.cwd.clone().unwrap_or_else(|| loaded.base.clone());
    let cwd = std::path::absolute(&cwd).unwrap_or(cwd);
    CommandSpec {
        command,
        cwd,
        url_env: d.url_env.clone().unwrap_or_else(|| "DATABASE_URL".into()),
        url_scheme: d.url_scheme.clone().unwrap_or_else(|| "postgresql".into()),
        isolate_env: d.isolate_env.unwrap_or(false),
        env: d.env.clone().unwrap_or_default().into_iter().collect(),
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
    pub step: StepChoice,
    pub step_timeout: Option<Duration>,
    pub superuser: bool,
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
            .config
            .expect_patch
            .iter()
            .chain(&loaded.config.expect_after)
            .cloned()
            .collect(),
    })
}

pub fn walk_plan(args: &WalkArgs, globals: &Globals) -> Result<WalkPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    let c = args.layer(globals).over(loaded.config.clone());
    let walk = c.walk.clone().unwrap_or_default();
    let d = c.downgrade.clone().unwrap_or_default();
    let to = walk.to.clone().ok_or_else(|| {
        Error::Config(
            "no target revision: pass --to REV (or --to base), or set [walk] to in pgsnapdiff.toml"
                .into(),
        )
    })?;
    let step = match walk.step_cmd.clone() {
        Some(cmd) => StepChoice::Given(Step::Command(command_spec(cmd, &d, &loaded))),
        None => StepChoice::ToolDefault(command_spec(String::new(), &d, &loaded)),
    };
    let max_steps = walk.max_steps.unwrap_or(100);
    if max_steps == 0 {
        return Err(Error::Config("--max-steps must be at least 1".into()));
    }
    Ok(WalkPlan {
        run: run_settings(&c, globals),
        input: input_plan(&c, &loaded)?,
        to,
        step,
        step_timeout: d.timeout.map(Duration::from_secs),
        superuser: d.superuser.unwrap_or(false),
        max_steps,
        outputs: outputs(&c)?,
        new_shape: new_shape(&c),
        allow_lost: args.loss.resolve(&c.allow_lost)?,
    })
}

pub fn snapshot_plan(args: &SnapshotArgs, globals: &Globals) -> Result<SnapshotPlan> {
    let loaded = load_config(args.input.config.as_deref())?;
    let c = args.input.layer(globals).over(loaded.config.clone());
    Ok(SnapshotPlan {
        run: run_settings(&c, globals),
        input: input_plan(&c, &loaded)?,
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
            StepChoice::Given(Step::Command(spec)) | StepChoice::ToolDefault(spec) => spec,
            StepChoice::Given(Step::Sql(_)) => panic!("not a command"),
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
    fn a_flag_choosing_sql_or_a_command_replaces_the_files_choice_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(
            &config,
            "dump = \"d.dump\"\n[downgrade]\ncmd = \"alembic downgrade -1\"\ncwd = \"app\"\n[roundtrip]\nreupgrade_sql = [\"up.sql\"]\nignore_columns = [\"public.t.a\"]\n",
        )
        .unwrap();
        let c = config.to_str().unwrap();
        let plan = &plans(&["check", "-c", c]).unwrap()[0];
        assert_eq!(command(plan).cwd, dir.path().join("app"));
        let rt = plan.roundtrip.as_ref().unwrap();
        assert!(matches!(&rt.upgrade, Step::Sql(f) if f == &[dir.path().join("up.sql")]));
        let flags = [
            "check",
            "-c",
            c,
            "--downgrade-sql",
            "fix.sql",
            "--reupgrade-cmd",
            "up",
            "--roundtrip-ignore",
            "public.t.b",
        ];
        let plan = &plans(&flags).unwrap()[0];
        assert!(
            matches!(&plan.downgrade, StepChoice::Given(Step::Sql(f)) if f == &[PathBuf::from("fix.sql")])
        );
        let rt = plan.roundtrip.as_ref().unwrap();
        assert!(matches!(&rt.upgrade, Step::Command(spec) if spec.command == "up"));
        // The command still runs where the file says, and ignores add up.
        assert!(matches!(&rt.upgrade, Step::Command(spec) if spec.cwd == dir.path().join("app")));
        let ignore: Vec<&str> = rt.ignore.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(ignore, ["a", "b"]);
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
            data in crate::mutate::mutated(include_bytes!("../../pgsnapdiff.toml").to_vec())
        ) {
            let _ = config::parse_config(&String::from_utf8_lossy(&data));
        }
    }
}
