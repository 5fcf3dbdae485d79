//! Run a migration step (the downgrade; the upgrade too, for a round trip) on the embedded server.
//!
//! SQL files run through the server's own `psql` in one transaction, stopping at the first
//! error. Both connect as the database's owner role (not a superuser) unless asked otherwise,
//! so a trigger planted by an untrusted dump never fires with superuser rights. A command runs through `sh -c` with the connection in its environment (`PGHOST` ...
//! `PGDATABASE`, and a URL in a configurable variable). Invariant: it only ever touches the
//! working database it is given; the before-copy is never connected to here.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result, tail};
use crate::process::{self, RunError};
use crate::server::{OWNER_ROLE, Server};

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
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Downgrade,
    Upgrade,
}

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
    let RunOptions {
        kind,
        timeout,
        superuser,
    } = opts;
    let conn = if superuser {
        server.conn().clone()
    } else {
        server.conn().as_user(OWNER_ROLE)
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
            cmd.env(&spec.url_env, conn.url(&spec.url_scheme, dbname));
            cmd
        }
    };
    for (key, value) in conn.libpq_env(dbname) {
        cmd.env(key, value);
    }
    let what = step.describe();
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
        return Ok(captured.output);
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
    Err(Error::Downgrade {
        kind,
        problem: format!("{what} exited with {code}: {last}{hint}"),
        output: tail(&captured.output, 30),
    })
}
