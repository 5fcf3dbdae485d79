//! Run a migration step (the downgrade; the upgrade too, for a round trip) on the embedded server.
//!
//! SQL files run through the server's own `psql` in one transaction, stopping at the first
//! error. Both connect as the database's owner role (not a superuser) unless asked otherwise,
//! so a trigger planted by an untrusted dump never fires with superuser rights. A command runs through `sh -c` with the connection in its environment (`PGHOST` ...
//! `PGDATABASE`, and a URL in a configurable variable); inherited `PG*` variables never reach
//! it, and `isolate_env` gives it nothing else but PATH, HOME, LANG and `env`.
//!
//! A step must be seen to run on the working database: the sessions the server counts for it
//! (`pg_stat_database`) are read before and after, and a step that exits 0 without ever
//! connecting is an error that names the inherited variables that may have sent it elsewhere.
//! Invariant: it only ever touches the working database it is given; the before-copy is never
//! connected to here.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result, db_message, tail};
use crate::process::{self, RunError};
use crate::server::Server;

#[derive(Debug, Clone)]
pub enum Step {
    /// SQL files, run in order in one transaction.
    Sql(Vec<PathBuf>),
    Command(CommandSpec),
}

#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Run by `sh -c`.
    pub command: String,
    /// Working directory; the config file's directory or the current one.
    pub cwd: PathBuf,
    /// Variable that receives the connection URL (default `DATABASE_URL`).
    pub url_env: String,
    /// URL scheme, e.g. `postgresql` or `postgresql+asyncpg`.
    pub url_scheme: String,
    /// Start from an empty environment: PATH, HOME, LANG, the connection and `env` only.
    pub isolate_env: bool,
    /// Variables set for the command (`[downgrade] env`).
    pub env: Vec<(String, String)>,
}

/// Inherited variables a command keeps under `isolate_env` (when they are set).
const KEPT_UNDER_ISOLATION: &[&str] = &["PATH", "HOME", "LANG"];

/// Variables that name a database through a settings file rather than a URL.
const SETTINGS_POINTERS: &[&str] = &["DJANGO_SETTINGS_MODULE", "ALEMBIC_CONFIG"];

/// Does this value connect to a PostgreSQL server: a URL (`postgres://`, `postgresql://`,
/// `postgresql+driver://`) or a libpq keyword string naming a host or database?
fn is_postgres_connection(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    let url = v.starts_with("postgres://")
        || v.starts_with("postgresql://")
        || (v.starts_with("postgresql+") && v.contains("://"));
    let keywords = v.split_whitespace().any(|w| w.starts_with("dbname="))
        && v.split_whitespace().any(|w| w.starts_with("host="));
    url || keywords
}

/// Names (never values) of the inherited variables that can point a migration at a database
/// other than the throwaway one: PostgreSQL URLs and keyword strings, and settings modules.
/// `ours` are the variables pgsnapdiff itself sets.
pub fn inherited_connections(ours: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().unwrap_or_default())))
        .filter(|(k, _)| !ours.contains(&k.as_str()) && !k.starts_with("PG"))
        .filter(|(k, v)| is_postgres_connection(v) || SETTINGS_POINTERS.contains(&k.as_str()))
        .map(|(k, _)| k)
        .collect();
    names.sort();
    names
}

impl CommandSpec {
    /// The inherited variables this command will see that may point at another database.
    pub fn inherited_connections(&self) -> Vec<String> {
        if self.isolate_env {
            return Vec::new();
        }
        let ours: Vec<&str> = std::iter::once(self.url_env.as_str())
            .chain(self.env.iter().map(|(k, _)| k.as_str()))
            .collect();
        inherited_connections(&ours)
    }
}

impl Step {
    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            Step::Sql(files) => files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Step::Command(spec) => format!("`{}`", spec.command),
        }
    }

    /// Before the first run: a note naming (never showing) the inherited variables that could
    /// take the command to another database.
    pub fn note_inherited_connections(&self) {
        let Step::Command(spec) = self else {
            return;
        };
        let names = spec.inherited_connections();
        if !names.is_empty() {
            crate::console::note(format!(
                "the migration command inherits {} from this shell; it gets the throwaway database in {} and PG*, and reaches another server if it reads {}; --isolate-env drops them",
                names.join(", "),
                spec.url_env,
                if names.len() == 1 { "that" } else { "those" }
            ));
        }
    }

    /// Check inputs before the (slow) restore, so a typo fails in milliseconds.
    pub fn validate(&self) -> Result<()> {
        match self {
            Step::Sql(files) => {
                for file in files {
                    if !file.is_file() {
                        return Err(Error::input(
                            file,
                            "migration SQL file not found; check --downgrade-sql/--upgrade-sql",
                        ));
                    }
                }
            }
            Step::Command(spec) => {
                if !spec.cwd.is_dir() {
                    return Err(Error::input(
                        &spec.cwd,
                        "working directory of the migration command not found; check --downgrade-cwd",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The shell's "X: not found" turned into the fix: a missing migration tool is usually a
/// virtualenv that was not created or not activated.
fn missing_program(output: &str) -> String {
    let program = output
        .lines()
        .find_map(|l| l.strip_suffix(": not found"))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("the program");
    format!(
        "; command not found: `{program}` is not installed or not on PATH (a Python tool: create its virtualenv and give the full path, e.g. .venv/bin/alembic)"
    )
}

/// Which step runs, for messages.
pub use crate::error::StepKind as Kind;

/// How a step runs.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub kind: Kind,
    pub timeout: Option<Duration>,
    /// Connect as the superuser instead of the database's owner role.
    pub superuser: bool,
}

/// Run `step` on `dbname`; returns its captured output.
pub async fn run(server: &Server, dbname: &str, step: &Step, opts: RunOptions) -> Result<String> {
    match run_judged(server, dbname, step, opts).await? {
        Ran::Done(output) => Ok(output),
        Ran::Failed(e) => Err(e),
    }
}

/// How a step that could run at all ended.
pub enum Ran {
    /// Exit 0, seen on the working database; the captured output.
    Done(String),
    /// It ran and exited non-zero (not 127, "command not found"): a verdict on the database it
    /// ran on, which a round trip's re-upgrade reports as a finding.
    Failed(Error),
}

/// `run`, with a step that ran and failed kept apart from one that could not run (not found,
/// timed out, never connected), which stays an error.
pub async fn run_judged(
    server: &Server,
    dbname: &str,
    step: &Step,
    opts: RunOptions,
) -> Result<Ran> {
    let RunOptions {
        kind,
        timeout,
        superuser,
    } = opts;
    let conn = if superuser {
        server.conn().clone()
    } else {
        server.owner_conn().clone()
    };
    let mut cmd = match step {
        Step::Sql(files) => {
            let mut cmd = Command::new(server.binaries.tool("psql"));
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]);
            for file in files {
                cmd.arg("-f").arg(file);
            }
            cmd
        }
        Step::Command(spec) => {
            let mut cmd = process::shell_killing_group_on_term(&spec.command);
            cmd.current_dir(&spec.cwd);
            if spec.isolate_env {
                cmd.env_clear();
                for name in KEPT_UNDER_ISOLATION {
                    if let Some(value) = std::env::var_os(name) {
                        cmd.env(name, value);
                    }
                }
            }
            for (key, value) in &spec.env {
                cmd.env(key, value);
            }
            cmd.env(&spec.url_env, conn.url(&spec.url_scheme, dbname));
            cmd
        }
    };
    // Inherited PG* variables never reach the step: the connection is ours alone.
    process::drop_inherited_pg_env(cmd.as_std_mut());
    for (key, value) in conn.libpq_env(dbname) {
        cmd.env(key, value);
    }
    let what = step.describe();
    let watch = Watch::start(server, dbname).await?;
    let captured = match process::run_with_death_signal(cmd, None, timeout, libc::SIGTERM).await {
        Ok(c) => c,
        Err(RunError::Spawn(e)) => {
            return Err(Error::Downgrade {
                kind,
                problem: format!("cannot start {what}: {e}"),
                output: String::new(),
            });
        }
        Err(RunError::TimedOut(limit)) => {
            return Err(Error::Downgrade {
                kind,
                problem: format!(
                    "{what} did not finish within {}s and was killed; raise --downgrade-timeout if it is just slow",
                    limit.as_secs()
                ),
                output: String::new(),
            });
        }
    };
    if captured.status.success() {
        if !watch.connected(server).await? {
            return Err(Error::Downgrade {
                kind,
                problem: never_connected(step, dbname),
                output: tail(&captured.output, 30),
            });
        }
        return Ok(Ran::Done(captured.output));
    }
    let code = captured
        .status
        .code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "a signal".into());
    let last = captured
        .output
        .lines()
        .rev()
        .find(|l| l.contains("ERROR") || l.contains("Error") || l.contains("error"))
        .or_else(|| captured.output.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output")
        .trim()
        .to_string();
    let hint = match (step, captured.status.code()) {
        (Step::Command(_), Some(127)) => missing_program(&captured.output),
        (Step::Sql(_), _) => "; the transaction was rolled back, fix the SQL and rerun".into(),
        _ => String::new(),
    };
    let place = match step {
        Step::Command(spec) => format!(" (in {})", spec.cwd.display()),
        Step::Sql(_) => String::new(),
    };
    let error = Error::Downgrade {
        kind,
        problem: format!("{what} exited with {code}{place}: {last}{hint}"),
        output: tail(&captured.output, 30),
    };
    match captured.status.code() {
        Some(127) | None => Err(error),
        Some(_) => Ok(Ran::Failed(error)),
    }
}

/// What to suspect when a command did not migrate the throwaway database: the inherited
/// variables that point at another one (names only), else a settings file.
fn suspects(spec: &CommandSpec) -> String {
    let names = spec.inherited_connections();
    if names.is_empty() {
        "no inherited variable points at a database, so look for a connection written into a settings file (Django DATABASES, alembic.ini sqlalchemy.url)".to_string()
    } else {
        format!(
            "inherited variables that point at a database: {} (the command may have migrated that one; --isolate-env drops them)",
            names.join(", ")
        )
    }
}

/// The one line for a step that exited 0 without connecting to the working database.
fn never_connected(step: &Step, dbname: &str) -> String {
    let what = step.describe();
    let Step::Command(spec) = step else {
        return format!(
            "{what} exited 0 but never connected to the throwaway database {dbname}; nothing was migrated"
        );
    };
    format!(
        "{what} exited 0 but never connected to the throwaway database {dbname}, so it migrated nothing here and may have run against another database: the command must read its connection from {} (name another variable with --url-env) or the PG* variables; {}",
        spec.url_env,
        suspects(spec)
    )
}

/// The one line for a downgrade that connected, changed nothing, and left the known revision
/// `at` where it was.
pub fn changed_nothing(step: &Step, at: &str) -> String {
    let what = step.describe();
    match step {
        Step::Sql(_) => {
            format!("{what} changed nothing and left the revision at {at}: nothing was rolled back")
        }
        Step::Command(spec) => format!(
            "{what} connected to the throwaway database but changed nothing there and left the revision at {at}: it most likely migrated another database; it must read its connection from {} (or --url-env) or the PG* variables; {}",
            spec.url_env,
            suspects(spec)
        ),
    }
}

/// Sessions the server counted on a database around a step (`pg_stat_database`): the one
/// record of a connection that survives the connection's end, however short it was.
///
/// The step's backends are gone before the second reading (it waits for them), and a backend
/// reports its counts while exiting, before it leaves `pg_stat_activity` (PostgreSQL 15+'s
/// shared-memory statistics). Before 15, counts travel to a collector process, so each reading
/// waits for it to catch up. PostgreSQL 13 has no `sessions` column: transactions stand in.
struct Watch {
    dbname: String,
    counter: &'static str,
    /// The collector's delay before PostgreSQL 15.
    lag: Duration,
    before: i64,
}

impl Watch {
    async fn start(server: &Server, dbname: &str) -> Result<Watch> {
        let counter = if server.major() >= 14 {
            "sessions"
        } else {
            "xact_commit + xact_rollback"
        };
        let lag = if server.major() >= 15 {
            Duration::ZERO
        } else {
            Duration::from_millis(700)
        };
        let mut watch = Watch {
            dbname: dbname.to_string(),
            counter,
            lag,
            before: 0,
        };
        let admin = server.admin().await?;
        watch.idle(admin).await?;
        tokio::time::sleep(lag).await;
        watch.before = watch.count(admin).await?;
        Ok(watch)
    }

    /// Did anything connect to the database since `start`?
    async fn connected(&self, server: &Server) -> Result<bool> {
        let admin = server.admin().await?;
        if !self.idle(admin).await? {
            // A session is still open on it: that is a connection.
            return Ok(true);
        }
        tokio::time::sleep(self.lag).await;
        Ok(self.count(admin).await? > self.before)
    }

    /// Wait (up to 5 s) until no backend is connected to the database; false if one still is.
    async fn idle(&self, admin: &tokio_postgres::Client) -> Result<bool> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    &[&self.dbname],
                )
                .await
                .map_err(|e| {
                    Error::Server(format!("reading pg_stat_activity: {}", db_message(&e)))
                })?;
            if row.get::<_, i64>(0) == 0 {
                return Ok(true);
            }
            if std::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn count(&self, admin: &tokio_postgres::Client) -> Result<i64> {
        let err = |e: tokio_postgres::Error| {
            Error::Server(format!("reading pg_stat_database: {}", db_message(&e)))
        };
        admin
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .map_err(err)?;
        let sql = format!(
            "SELECT coalesce(sum({})::bigint, 0) FROM pg_stat_database WHERE datname = $1",
            self.counter
        );
        let row = admin.query_one(&sql, &[&self.dbname]).await.map_err(err)?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::is_postgres_connection;

    #[test]
    fn postgres_connections_are_recognised_by_value() {
        for yes in [
            "postgres://u:p@h/db",
            "postgresql://h/db",
            "postgresql+psycopg2://u@h:5432/db",
            " POSTGRESQL+asyncpg://h/db",
            "host=db.internal dbname=app user=x",
        ] {
            assert!(is_postgres_connection(yes), "{yes}");
        }
        for no in [
            "",
            "mysql://h/db",
            "sqlite:///x.db",
            "/usr/bin:/bin",
            "postgresql",
            "dbname=app",
        ] {
            assert!(!is_postgres_connection(no), "{no}");
        }
    }
}
