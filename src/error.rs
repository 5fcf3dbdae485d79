//! User-facing failures.
//!
//! Every variant renders as one line that names the input at fault and, where there is one, the
//! next step. Anything that reaches `main` as an `Error` exits with code 2. Detail that does not
//! fit on one line (a failing command's output) travels in `Error::detail` and is printed above
//! the error line.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or config value is wrong.
    #[error("{0}")]
    Config(String),

    /// An input file is missing, unreadable or not what it claims to be.
    #[error("{}: {problem}", path.display())]
    Input { path: PathBuf, problem: String },

    /// No usable PostgreSQL binaries.
    #[error("{0}")]
    Binaries(String),

    /// The embedded server could not be set up, started or queried.
    #[error("PostgreSQL: {0}")]
    Server(String),

    /// The dump was readable but restoring it failed.
    #[error("{}: restore failed: {problem}", path.display())]
    Restore {
        path: PathBuf,
        problem: String,
        output: String,
    },

    /// The downgrade (or, in a round trip, the upgrade) failed.
    #[error("{} failed: {problem}", match kind { StepKind::Downgrade => "downgrade", StepKind::Upgrade => "upgrade" })]
    Downgrade {
        kind: StepKind,
        problem: String,
        output: String,
    },

    /// The run could not reach a verdict: a walk step that did not move the revision, a walk
    /// that missed its target, cases that stopped on errors.
    #[error("{0}")]
    Run(String),

    /// The run was stopped by a signal; everything it started has been cleaned up.
    #[error("interrupted by {0}; what this run created (server, files, databases) was removed")]
    Interrupted(&'static str),

    /// `--timeout` ran out; everything was stopped and cleaned up.
    #[error(
        "did not finish within --timeout {0}s; what this run created (server, files, databases) was removed"
    )]
    TimedOut(u64),

    /// An I/O error with what was being done when it happened.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a command concluded when it ran to its end (an error is exit 2, `Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 0: the rollback is proven (`check`, `walk`), the snapshots are identical (`diff`),
    /// or the command did its job (`snapshot`, baselines).
    Proven,
    /// Exit 1: the rollback is not proven; the snapshots differ.
    NotProven,
}

impl Verdict {
    pub fn of(proven: bool) -> Self {
        if proven {
            Verdict::Proven
        } else {
            Verdict::NotProven
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Proven => 0,
            Verdict::NotProven => 1,
        }
    }
}

/// Which migration step an error is about, for its message.
#[derive(Debug, Clone, Copy)]
pub enum StepKind {
    Downgrade,
    Upgrade,
}

impl Error {
    pub fn input(path: &Path, problem: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A migration step's failure, told where it happened ("walk step 2 from revision 0003").
    pub fn in_step(self, context: &str) -> Self {
        match self {
            Error::Downgrade {
                kind,
                problem,
                output,
            } => Error::Downgrade {
                kind,
                problem: format!("{context}: {problem}"),
                output,
            },
            other => other,
        }
    }

    /// Captured output of a failed child process, printed above the one-line message.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Restore { output, .. } | Error::Downgrade { output, .. }
                if !output.is_empty() =>
            {
                Some(output)
            }
            _ => None,
        }
    }
}

/// What was being done when a lower-level error happened: `io.context("writing x")?`
/// instead of a `map_err` closure at every call.
pub trait Context<T> {
    /// The error, said to have happened while doing `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::io(what, e))
    }
}

/// A server query or connection: `Error::Server`, with the server's own message.
impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Server(format!("{}: {}", what.into(), db_message(&e))))
    }
}

/// Database errors carry the server's message, detail and hint; keep them on one line.
pub fn db_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut msg = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                msg.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                msg.push_str(&format!("; hint: {hint}"));
            }
            msg
        }
        None => err.to_string(),
    }
}

/// The last `max_lines` lines of a process's output, for error reports.
pub fn tail(output: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}
