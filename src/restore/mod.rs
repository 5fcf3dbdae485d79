//! Detect a dump's format and pg_dump version from its bytes, then load it into a database.
//!
//! Invariants: the dump is only ever opened read-only (or handed to pg_restore/psql, which read
//! it); the format is decided by content, never by file name; every failure names the file and
//! says what to do.
//!
//! Security (README "Security model"): the dump runs as `server::OWNER_ROLE`, an unprivileged
//! owner of the target database, so `COPY ... PROGRAM`, `LANGUAGE c`, `ALTER SYSTEM` and the
//! like are refused by the server. A plain dump reaches psql behind `\restrict <random key>`,
//! with its own `\restrict`/`\unrestrict` lines removed, so no psql meta-command in it (`\!`,
//! `\copy ... program`, `\o |cmd`) can run on the host.
//!
//! `detect` decides what the dump is, `filter` guards psql from a plain dump, and this file
//! loads it (`pg_restore`, or psql behind the filter) as the owner role.

mod detect;
mod filter;

use std::io::{BufRead, BufReader, Read};

use tokio::process::Command;

use detect::open_read_only;
pub use detect::{Dump, Format, check_compatible, inspect};
use filter::{Restricted, referenced_roles};

use crate::error::{Error, Result, tail};
use crate::process::{self, RunError};
use crate::server::{Binaries, OWNER_ROLE, Server, random_password};

/// Restore `dump` into the (existing, empty) database `dbname`, owned by `OWNER_ROLE`.
pub async fn restore(server: &Server, dump: &Dump, dbname: &str) -> Result<()> {
    let bins = &server.binaries;
    let conn = server.owner_conn();
    let (mut cmd, stdin): (Command, Option<Box<dyn Read + Send>>) = match dump.format {
        Format::Plain { gzip } => {
            // Roles are cluster-wide: on a server that is not ours, none is created, and the
            // dump's ownership and privileges are left out, as pg_restore --no-owner
            // --no-privileges does for archives.
            let external = server.external().is_some();
            if !external {
                create_referenced_roles(server, dump, dbname).await?;
            }
            let mut cmd = Command::new(bins.tool("psql"));
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]);
            cmd.args(["-d", &conn.conninfo(dbname), "-f", "-"]);
            let reader = Restricted::new(plain_reader(dump, gzip)?, random_password())
                .without_ownership(external);
            (cmd, Some(Box::new(reader) as Box<dyn Read + Send>))
        }
        Format::Restored => {
            return Err(Error::Config(format!(
                "{} is a restored database, not a dump: it is copied, never restored",
                dump.path.display()
            )));
        }
        Format::Custom | Format::Directory | Format::Tar => {
            let mut cmd = Command::new(bins.tool("pg_restore"));
            cmd.args(["--exit-on-error", "--no-owner", "--no-privileges"]);
            // Parallel jobs need a seekable archive: custom or directory, not tar.
            let jobs = restore_jobs();
            if jobs > 1 && matches!(dump.format, Format::Custom | Format::Directory) {
                cmd.arg(format!("--jobs={jobs}"));
            }
            cmd.args(["-d", &conn.conninfo(dbname)]);
            cmd.arg(&dump.path);
            (cmd, None)
        }
    };
    process::drop_inherited_pg_env(cmd.as_std_mut());
    cmd.env("PGPASSWORD", &conn.password);
    cmd.env("PGOPTIONS", "-c client_min_messages=warning");
    let captured = match process::run(cmd, stdin, None).await {
        Ok(c) => c,
        Err(RunError::Spawn(e)) => {
            return Err(Error::Server(format!(
                "cannot run the restore tool from {}: {e}",
                bins.bin_dir.display()
            )));
        }
        Err(RunError::TimedOut(_)) => unreachable!("restore runs without a timeout"),
    };
    if captured.status.success() {
        return Ok(());
    }
    Err(restore_error(dump, bins, &captured.output))
}

/// pg_restore jobs: one per core, at most 4 (`PGSNAPDIFF_RESTORE_JOBS` overrides; 1 = serial).
fn restore_jobs() -> usize {
    std::env::var("PGSNAPDIFF_RESTORE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        })
        .max(1)
}

/// A plain dump's text, decompressed if need be.
fn plain_reader(dump: &Dump, gzip: bool) -> Result<Box<dyn BufRead + Send>> {
    let file = open_read_only(&dump.path)?;
    Ok(if gzip {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// Create the roles a plain dump refers to, as powerless NOLOGIN roles granted to the owner
/// role, so that `ALTER ... OWNER TO app` restores. A non-superuser may only give a table to a
/// role that can create in its schema, so they get USAGE and CREATE on `public` too. Existing
/// roles (the superuser, predefined `pg_*` roles) are never granted.
async fn create_referenced_roles(server: &Server, dump: &Dump, dbname: &str) -> Result<()> {
    let Format::Plain { gzip } = dump.format else {
        return Ok(());
    };
    let roles = referenced_roles(plain_reader(dump, gzip)?)
        .map_err(|e| Error::input(&dump.path, format!("cannot read: {e}")))?;
    if roles.is_empty() {
        return Ok(());
    }
    let admin = server.connect(dbname).await?;
    for role in roles {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(|e| {
                Error::Server(format!(
                    "looking up role {role}: {}",
                    crate::error::db_message(&e)
                ))
            })?;
        if exists.is_some() {
            continue;
        }
        let quoted = crate::snapshot::db::quote_ident(&role);
        admin
            .batch_execute(&format!(
                "CREATE ROLE {quoted} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; \
                 GRANT {quoted} TO {OWNER_ROLE}; GRANT USAGE, CREATE ON SCHEMA public TO {quoted};"
            ))
            .await
            .map_err(|e| {
                Error::Server(format!(
                    "creating role {role}: {}",
                    crate::error::db_message(&e)
                ))
            })?;
    }
    Ok(())
}

/// Turn pg_restore/psql's complaint into one line with the fix.
fn restore_error(dump: &Dump, bins: &Binaries, output: &str) -> Error {
    let first_error = output
        .lines()
        .find(|l| l.contains("error:") || l.contains("ERROR:") || l.contains("FATAL:"))
        .unwrap_or_else(|| output.lines().last().unwrap_or("no output"))
        .trim()
        .to_string();
    // psql reads the dump from stdin, one line below the file's numbering (our \restrict).
    let first_error = match first_error.split_once("psql:<stdin>:") {
        Some((_, rest)) => match rest.split_once(':') {
            Some((line, tail)) => match line.parse::<u64>() {
                Ok(n) => format!("line {}:{tail}", n.saturating_sub(1)),
                Err(_) => first_error.clone(),
            },
            None => first_error.clone(),
        },
        None => first_error.clone(),
    };
    let problem = if output.contains("backslash commands are restricted") {
        format!(
            "the dump contains a psql meta-command ({first_error}), which could run commands on this host; pgsnapdiff does not run them. Remove it, or dump with pg_dump -Fc"
        )
    } else if output.contains("must be superuser")
        || output.contains("permission denied for language")
        || output.contains("pg_execute_server_program")
        || output.contains("permission denied to")
    {
        format!(
            "the dump needs superuser power ({first_error}); pgsnapdiff restores as an unprivileged database owner so a dump cannot act on the host (README \"Security model\")"
        )
    } else if output.contains("unsupported version") && output.contains("file header") {
        format!(
            "the archive is newer than pg_restore {} ({first_error}); run with a newer --pg-version",
            bins.version
        )
    } else if output.contains("could not read from input file")
        || output.contains("unexpected end of file")
        || output.contains("end of file")
    {
        format!("the dump is truncated or corrupt ({first_error}); re-create the dump")
    } else if output.contains("transaction_timeout")
        || output.contains("invalid command \\restrict")
    {
        format!(
            "the dump needs a newer PostgreSQL than {} ({first_error}); run with --pg-version matching the pg_dump that wrote it",
            bins.version
        )
    } else {
        format!(
            "{first_error} — the dump's SQL fails on PostgreSQL {}; see the output above",
            bins.version
        )
    };
    // A plain dump newer than the binaries was tried anyway: say which version it wants.
    let problem = match dump.pg_dump_major() {
        Some(major) if major > bins.major => format!(
            "{problem} (the dump was written by pg_dump {}, newer than PostgreSQL {}: run with --pg-version {major}; offline, scripts/stage-postgres {major} first)",
            dump.pg_dump_version.as_deref().unwrap_or("?"),
            bins.version
        ),
        _ => problem,
    };
    Error::Restore {
        path: dump.path.clone(),
        problem,
        output: tail(output, 20),
    }
}
