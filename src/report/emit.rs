//! The one output path of `check` and `walk`: stdout in the chosen format, then the result JSON
//! (`--result-out`), then the audit report (`--report`). Both commands describe their run as a
//! `Rendered`; nothing else writes a run's outputs.

use std::io::{self, Write};
use std::path::PathBuf;

use super::audit::{self, Audit};
use super::ci::{self, OutputFormat, Suite};
use crate::atomic::AtomicFile;
use crate::error::{Context, Result};

/// Where a run's outputs go: `--format`, `--result-out`, `--report` (over the config's keys).
#[derive(Debug, Clone)]
pub struct Outputs {
    pub result_out: Option<PathBuf>,
    /// The audit report (.html or .md).
    pub report: Option<PathBuf>,
    pub format: OutputFormat,
}

/// A run as every output renders it.
pub trait Rendered {
    /// The human report (also what follows GitHub's annotations).
    fn write_human(&self, out: &mut dyn Write) -> io::Result<()>;
    /// The result JSON, every finding streamed (spilled findings are read back, hence `mut`).
    fn write_json(&mut self, out: &mut dyn Write) -> Result<()>;
    /// JUnit test suites and GitHub annotation groups: one per case or per revision, and the
    /// run-level checks.
    fn suites(&self) -> Vec<Suite<'_>>;
    /// The audit report's facts, inputs (hashed: only when a report is asked for) and
    /// sections.
    fn audit(&self) -> Result<Audit<'_>>;
}

pub fn emit(outputs: &Outputs, run: &mut dyn Rendered) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match outputs.format {
        OutputFormat::Json => run.write_json(&mut stdout)?,
        format => {
            let run = &*run;
            ci::write_text(&mut stdout, format, &run.suites(), |out| {
                run.write_human(out)
            })
            .context("writing the report")?;
        }
    }
    if let Some(path) = &outputs.result_out {
        let mut file = AtomicFile::create(path)?;
        run.write_json(&mut file)?;
        file.commit()?;
    }
    if let Some(path) = &outputs.report {
        audit::write(&run.audit()?, path)?;
    }
    Ok(())
}
