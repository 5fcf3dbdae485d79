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

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::error::{Error, Result, tail};
use crate::process::{self, RunError};
use crate::server::{Binaries, OWNER_ROLE, Server, random_password};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain SQL script, optionally gzip-compressed.
    Plain {
        gzip: bool,
    },
    Custom,
    Directory,
    Tar,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain { gzip: false } => "plain",
            Format::Plain { gzip: true } => "plain (gzip)",
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Tar => "tar",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dump {
    pub path: PathBuf,
    pub format: Format,
    /// The pg_dump that wrote it, e.g. "16.15", when the file says.
    pub pg_dump_version: Option<String>,
}

impl Dump {
    /// A generous guess of the disk a restore of this dump takes: custom and tar archives
    /// are compressed, and every run holds two or three copies of the database.
    pub fn space_estimate(&self) -> u64 {
        let size = dir_size(&self.path);
        match self.format {
            Format::Plain { gzip: false } => size.saturating_mul(4),
            _ => size.saturating_mul(20),
        }
    }

    pub fn pg_dump_major(&self) -> Option<u32> {
        self.pg_dump_version
            .as_deref()
            .and_then(|v| v.split(['.', ' ']).next())
            .and_then(|m| m.parse().ok())
    }
}

/// Look at the dump's bytes and decide what it is.
pub fn inspect(path: &Path) -> Result<Dump> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(
                path,
                "no such file; check the path (paths in pgsnapdiff.toml are relative to that file)",
            )
        } else {
            Error::input(path, format!("cannot read: {e}"))
        }
    })?;
    let dump = |format, pg_dump_version| Dump {
        path: path.to_path_buf(),
        format,
        pg_dump_version,
    };
    if meta.is_dir() {
        let toc = path.join("toc.dat");
        if !toc.exists() {
            return Err(Error::input(
                path,
                "a directory without toc.dat: not a pg_dump directory-format dump (pg_dump -Fd), or its toc.dat was lost; re-create the dump",
            ));
        }
        let head = read_head(&toc, 4096)?;
        let header = parse_archive_header(&head).map_err(|p| Error::input(&toc, p))?;
        return Ok(dump(Format::Directory, Some(header)));
    }
    if meta.len() == 0 {
        return Err(Error::input(
            path,
            "empty file (0 bytes): not a pg_dump output; was the dump interrupted? re-create it",
        ));
    }
    let head = read_head(path, 8192)?;
    if head.starts_with(b"PGDMP") {
        let header = parse_archive_header(&head).map_err(|p| Error::input(path, p))?;
        return Ok(dump(Format::Custom, Some(header)));
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        if head.len() < 512 + 5 || !head[512..].starts_with(b"PGDMP") {
            return Err(Error::input(
                path,
                "a tar archive, but not one written by pg_dump -Ft (no toc.dat header first), or truncated; re-create the dump",
            ));
        }
        let header = parse_archive_header(&head[512..]).map_err(|p| Error::input(path, p))?;
        return Ok(dump(Format::Tar, Some(header)));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        let file = open_read_only(path)?;
        let read = flate2::read::GzDecoder::new(file)
            .take(8192)
            .read_to_end(&mut text);
        if read.is_err() && text.is_empty() {
            return Err(Error::input(
                path,
                "gzip data that cannot be decompressed (corrupt or truncated); re-create the dump",
            ));
        }
        let version = plain_header(&text).map_err(|p| Error::input(path, p))?;
        if is_pg_dump_output(&text) {
            let tail = gzip_tail(path)?;
            check_complete(path, &tail)?;
        }
        return Ok(dump(Format::Plain { gzip: true }, version));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::input(
            path,
            "zstd-compressed; decompress it first (zstd -d) or dump with pg_dump -Fc",
        ));
    }
    let version = plain_header(&head).map_err(|p| Error::input(path, p))?;
    if is_pg_dump_output(&head) {
        check_complete(path, &read_tail(path, meta.len())?)?;
    }
    Ok(dump(Format::Plain { gzip: false }, version))
}

/// pg_dump starts plain output with this comment and ends it with `FOOTER`. psql treats a file
/// cut inside COPY data as a finished COPY and exits 0, so a truncated plain dump would restore
/// "successfully" with half its rows and none of its constraints: the footer is the only proof.
const HEADER: &[u8] = b"-- PostgreSQL database dump";
const FOOTER: &[u8] = b"-- PostgreSQL database dump complete";
const TAIL: u64 = 4096;

fn is_pg_dump_output(head: &[u8]) -> bool {
    head.windows(HEADER.len()).take(1024).any(|w| w == HEADER)
}

fn check_complete(path: &Path, tail: &[u8]) -> Result<()> {
    if tail.windows(FOOTER.len()).any(|w| w == FOOTER) {
        return Ok(());
    }
    Err(Error::input(
        path,
        "truncated: a pg_dump plain dump must end with \"-- PostgreSQL database dump complete\"; re-create the dump",
    ))
}

fn read_tail(path: &Path, len: u64) -> Result<Vec<u8>> {
    let mut file = open_read_only(path)?;
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))
        .map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    Ok(tail)
}

/// Decompress the whole stream (also proving it is intact), keeping the last bytes.
fn gzip_tail(path: &Path) -> Result<Vec<u8>> {
    let mut decoder = flate2::read::MultiGzDecoder::new(BufReader::new(open_read_only(path)?));
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL as usize);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = decoder.read(&mut buf).map_err(|e| {
            Error::input(
                path,
                format!("gzip stream is corrupt or truncated ({e}); re-create the dump"),
            )
        })?;
        if n == 0 {
            return Ok(tail);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > TAIL as usize {
            tail.drain(..tail.len() - TAIL as usize);
        }
    }
}

fn dir_size(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn open_read_only(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))
}

fn read_head(path: &Path, len: u64) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    open_read_only(path)?
        .take(len)
        .read_to_end(&mut head)
        .map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    Ok(head)
}

const NOT_A_DUMP: &str =
    "not a pg_dump output (neither plain SQL nor custom, directory or tar format); check the path";

/// A plain dump is SQL text; pg_dump's comment header gives its version.
fn plain_header(head: &[u8]) -> std::result::Result<Option<String>, String> {
    // The head may end inside a multi-byte character: judge only the valid prefix.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.valid_up_to() + 4 >= head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Err(NOT_A_DUMP.into()),
    };
    if text.contains('\0') || text.trim().is_empty() {
        return Err(NOT_A_DUMP.into());
    }
    Ok(text
        .lines()
        .take(40)
        .find_map(|l| l.strip_prefix("-- Dumped by pg_dump version "))
        .map(|v| v.trim().to_string()))
}

/// The custom/directory/tar archive header: "PGDMP", format version, then (after compression
/// and a timestamp) the database name, the server version and the pg_dump version as strings.
fn parse_archive_header(buf: &[u8]) -> std::result::Result<String, String> {
    let truncated =
        || "truncated: the pg_dump archive header ends early; re-create the dump".to_string();
    let mut r = Reader { buf, pos: 5 };
    let vmaj = r.byte().ok_or_else(truncated)?;
    let vmin = r.byte().ok_or_else(truncated)?;
    let _vrev = r.byte().ok_or_else(truncated)?;
    let int_size = r.byte().ok_or_else(truncated)? as usize;
    let _off_size = r.byte().ok_or_else(truncated)?;
    let _format = r.byte().ok_or_else(truncated)?;
    if vmaj != 1 || vmin < 12 || !(1..=8).contains(&int_size) {
        return Err(format!(
            "archive format {vmaj}.{vmin} is not one pgsnapdiff reads (pg_dump 11 or newer writes 1.13+); re-create the dump with a current pg_dump"
        ));
    }
    if vmin >= 15 {
        r.byte().ok_or_else(truncated)?; // compression algorithm
    } else {
        r.int(int_size).ok_or_else(truncated)?; // compression level
    }
    for _ in 0..7 {
        r.int(int_size).ok_or_else(truncated)?; // creation time
    }
    let _dbname = r.string(int_size).ok_or_else(truncated)?;
    let _server_version = r.string(int_size).ok_or_else(truncated)?;
    let pg_dump_version = r.string(int_size).ok_or_else(truncated)?;
    Ok(pg_dump_version)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// pg_dump's ReadInt: a sign byte, then `size` bytes little-endian.
    fn int(&mut self, size: usize) -> Option<i64> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..size {
            value |= (self.byte()? as i64) << (8 * i);
        }
        Some(if negative { -value } else { value })
    }

    fn string(&mut self, size: usize) -> Option<String> {
        let len = self.int(size)?;
        if len < 0 {
            return Some(String::new());
        }
        let end = self.pos.checked_add(len as usize)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// A dump newer than the server binaries cannot be restored: say so before trying.
pub fn check_compatible(dump: &Dump, bins: &Binaries) -> Result<()> {
    match dump.pg_dump_major() {
        Some(major) if major > bins.major => Err(Error::input(
            &dump.path,
            format!(
                "written by pg_dump {}, newer than the PostgreSQL {} binaries in use ({}); run with --pg-version {major} (offline: scripts/stage-postgres {major} first)",
                dump.pg_dump_version.as_deref().unwrap_or("?"),
                bins.version,
                bins.bin_dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Restore `dump` into the (existing, empty) database `dbname`, owned by `OWNER_ROLE`.
pub async fn restore(server: &Server, dump: &Dump, dbname: &str) -> Result<()> {
    let bins = &server.binaries;
    let conn = server.conn().as_user(OWNER_ROLE);
    let (mut cmd, stdin): (Command, Option<Box<dyn Read + Send>>) = match dump.format {
        Format::Plain { gzip } => {
            create_referenced_roles(server, dump, dbname).await?;
            let mut cmd = Command::new(bins.tool("psql"));
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]);
            cmd.args(["-d", &conn.conninfo(dbname), "-f", "-"]);
            let reader = Restricted::new(plain_reader(dump, gzip)?, random_password());
            (cmd, Some(Box::new(reader) as Box<dyn Read + Send>))
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

/// Follows a plain dump line by line and tells SQL from COPY data (`COPY ... FROM stdin;` up
/// to the `\.` line), which must never be read as SQL or meta-commands.
#[derive(Default)]
struct CopyData {
    inside: bool,
}

impl CopyData {
    /// Feed the next line; true when it is SQL (not COPY data, not the COPY statement).
    fn is_sql(&mut self, line: &[u8]) -> bool {
        if self.inside {
            self.inside = line.trim_ascii_end() != b"\\.";
            return false;
        }
        if line.starts_with(b"COPY ") && line.trim_ascii_end().ends_with(b"FROM stdin;") {
            self.inside = true;
            return false;
        }
        true
    }
}

/// A plain dump as psql should see it: `\restrict KEY` first, and the dump's own
/// `\restrict`/`\unrestrict` lines (outside COPY data) blanked, so none can lift the restriction.
/// Blank lines keep psql's line numbers one off from the file's (see `restore_error`).
struct Restricted<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    copy: CopyData,
}

impl<R: BufRead> Restricted<R> {
    fn new(inner: R, key: String) -> Self {
        Restricted {
            inner,
            buf: format!("\\restrict {key}\n").into_bytes(),
            pos: 0,
            copy: CopyData::default(),
        }
    }
}

impl<R: BufRead> Read for Restricted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.inner.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(0);
            }
            let line = &self.buf;
            if self.copy.is_sql(line)
                && (line.starts_with(b"\\restrict") || line.starts_with(b"\\unrestrict"))
            {
                self.buf.clear();
                self.buf.push(b'\n');
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Roles a plain dump assigns ownership or privileges to (`OWNER TO r`, `GRANT ... TO r`,
/// `REVOKE ... FROM r`), outside COPY data. Archives are restored with --no-owner
/// --no-privileges and need none.
fn referenced_roles(reader: impl BufRead) -> std::io::Result<std::collections::BTreeSet<String>> {
    let mut roles = std::collections::BTreeSet::new();
    let mut copy = CopyData::default();
    for line in reader.split(b'\n') {
        let line = line?;
        if !copy.is_sql(&line) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let text = text.trim_end().trim_end_matches(';');
        let list = if text.starts_with("ALTER ") {
            text.rsplit_once(" OWNER TO ").map(|(_, r)| r)
        } else if text.starts_with("GRANT ") {
            text.rsplit_once(" TO ").map(|(_, r)| r)
        } else if text.starts_with("REVOKE ") {
            text.rsplit_once(" FROM ").map(|(_, r)| r)
        } else {
            None
        };
        let Some(list) = list else { continue };
        let list = list.split(" WITH ").next().unwrap_or(list);
        let list = list.split(" GRANTED BY ").next().unwrap_or(list);
        for role in list.split(',') {
            let role = role.trim();
            let role = match role.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => role.to_lowercase(),
            };
            let reserved = ["public", "current_user", "session_user", "current_role"];
            if !role.is_empty() && !role.starts_with("pg_") && !reserved.contains(&role.as_str()) {
                roles.insert(role);
            }
        }
    }
    Ok(roles)
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
    Error::Restore {
        path: dump.path.clone(),
        problem,
        output: tail(output, 20),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header_reads_pg_dump_version() {
        let head = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n-- Dumped by pg_dump version 16.15\n";
        assert_eq!(plain_header(head).unwrap().as_deref(), Some("16.15"));
        assert!(plain_header(&[0u8, 159, 146, 150, 1, 2, 3]).is_err());
        assert!(plain_header(b"   \n").is_err());
    }

    /// The guard against hostile plain dumps: psql sees our `\restrict` first, and no line of
    /// the dump can lift it; COPY data passes byte for byte, whatever it holds.
    #[test]
    fn restricted_reader_blanks_the_dumps_own_restrict_lines_outside_copy_data() {
        let dump = "\\restrict theirs\nSELECT 1;\n\\unrestrict theirs\n\\! id\nCOPY public.t (a) FROM stdin;\n\\unrestrict x\n\\.\n\\unrestrict y\n";
        let mut out = String::new();
        Restricted::new(std::io::Cursor::new(dump), "KEY".into())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(
            out,
            // The meta-command `\! id` stays for psql to refuse (it is restricted); COPY data,
            // even one that looks like `\unrestrict`, is data.
            "\\restrict KEY\n\nSELECT 1;\n\n\\! id\nCOPY public.t (a) FROM stdin;\n\\unrestrict x\n\\.\n\n"
        );
    }

    #[test]
    fn roles_a_plain_dump_names_outside_copy_data() {
        let dump = "ALTER TABLE public.t OWNER TO app;\nGRANT SELECT ON TABLE public.t TO \"Read Only\", reporting;\nCOPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO not_a_role;\n\\.\nREVOKE ALL ON TABLE public.t FROM PUBLIC;\n";
        let roles = referenced_roles(std::io::Cursor::new(dump)).unwrap();
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        assert!(
            roles.contains(&"app") && roles.contains(&"reporting"),
            "{roles:?}"
        );
        assert!(!roles.iter().any(|r| r.contains("not_a_role")), "{roles:?}");
    }

    #[test]
    fn archive_header_truncated_is_reported() {
        let err = parse_archive_header(b"PGDMP\x01\x0f").unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
