//! pgsnapdiff: prove that a migration rollback restores the data.
//!
//! See ARCHITECTURE.md for the code map. `run` is the whole program; `main.rs` only calls it.

// The modules' floors, and the rule that every import points down, are in `layers.rs` (a
// test) and ARCHITECTURE.md "Layers"; rustfmt keeps this list alphabetical.
pub mod atomic;
pub mod baseline;
pub mod cli;
pub mod console;
pub mod diff;
pub mod error;
pub mod expect;
pub mod migrate;
pub mod pipeline;
mod process;
pub mod redact;
pub mod report;
pub mod restore;
pub mod server;
pub mod snapshot;
pub mod tool;
pub mod volatile;

#[cfg(test)]
mod layers;
#[cfg(test)]
mod mutate;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{Cli, Cmd};
use crate::error::{Context, Error, Result, Verdict};

/// Parse flags, run the command, map the outcome to the exit status:
/// 0 proven / identical, 1 not proven / different, 2 error (including interruption).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    console::set_verbosity(cli.quiet, cli.verbose);
    // One thread: child processes are spawned from the main thread, which PR_SET_PDEATHSIG
    // ties the server's life to (see server.rs).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::error(&Error::io("starting the async runtime", e));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_until_signal(cli)) {
        Ok(verdict) => ExitCode::from(verdict.exit_code()),
        Err(e) => {
            report::error(&e);
            ExitCode::from(2)
        }
    }
}

/// Race the command against SIGINT/SIGTERM (and, in `run`, its timeout): then the command's
/// future is dropped, which stops the server, kills child processes and removes temp files
/// before we exit.
async fn run_until_signal(cli: Cli) -> Result<Verdict> {
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        result = run(cli) => result,
        _ = int.recv() => Err(Error::Interrupted("SIGINT")),
        _ = term.recv() => Err(Error::Interrupted("SIGTERM")),
    }
}

pub async fn run(cli: Cli) -> Result<Verdict> {
    let globals = cli.globals();
    match &cli.command {
        Cmd::Check(args) => {
            let plan = cli::check_plans(args, &globals)?;
            console::set_verbosity(plan.run.quiet, plan.run.verbose);
            if plan.run.redact {
                redact::enable();
            }
            within(plan.run.timeout, pipeline::check::check(&plan)).await
        }
        Cmd::Snapshot(args) => {
            let plan = cli::snapshot_plan(args, &globals)?;
            console::set_verbosity(plan.run.quiet, plan.run.verbose);
            if plan.run.redact {
                redact::enable();
            }
            within(plan.run.timeout, async {
                pipeline::snapshot(&plan).await.map(|()| Verdict::Proven)
            })
            .await
        }
        Cmd::Walk(args) => {
            let plan = cli::walk_plan(args, &globals)?;
            console::set_verbosity(plan.run.quiet, plan.run.verbose);
            if plan.run.redact {
                redact::enable();
            }
            within(plan.run.timeout, pipeline::walk::walk(&plan)).await
        }
        Cmd::Review(args) | Cmd::Accept(args) | Cmd::Reject(args) => {
            let plan = cli::baseline_plan(args)?;
            let pending = baseline::pending_files(&plan.paths, &plan.used)?;
            match &cli.command {
                Cmd::Review(_) => baseline::review(&pending, console::color_stdout())?,
                Cmd::Accept(_) => {
                    for file in &pending {
                        let baseline = baseline::accept(file)?;
                        console::note(format!("accepted {}", baseline.display()));
                    }
                }
                _ => {
                    for file in &pending {
                        baseline::reject(file)?;
                        console::note(format!("rejected {}", file.display()));
                    }
                }
            }
            if pending.is_empty() {
                console::note("no pending baseline");
            }
            Ok(Verdict::Proven)
        }
        Cmd::MergeResults(args) => {
            let (files, outputs) = cli::merge_plan(args)?;
            pipeline::merge_results(&files, &outputs)
        }
        Cmd::Clean(args) => {
            let limit = globals.timeout.map(Duration::from_secs);
            within(limit, pipeline::clean(&args.server, args.dry_run)).await
        }
        Cmd::Diff(args) => {
            if globals.redact {
                redact::enable();
            }
            let limit = globals.timeout.map(Duration::from_secs);
            within(
                limit,
                pipeline::diff_files(&args.before, &args.after, args.out.as_deref()),
            )
            .await
        }
    }
}

/// `work`, or `Error::TimedOut` once `limit` has passed; dropping `work` cleans up after it.
async fn within(
    limit: Option<Duration>,
    work: impl Future<Output = Result<Verdict>>,
) -> Result<Verdict> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or(Err(Error::TimedOut(limit.as_secs()))),
        None => work.await,
    }
}
