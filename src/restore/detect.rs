//! What a dump is, from its bytes: the format (plain, gzip, custom, directory, tar; zstd
//! refused), the pg_dump version from the archive header or the plain dump's comments, and
//! whether a plain dump is complete. Never by file name; every failure names the file and says
//! what to do.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::server::Binaries;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain SQL script, optionally gzip-compressed.
    Plain {
        gzip: bool,
    },
    Custom,
    Directory,
    Tar,
    /// Not a dump: a database already restored on `--server` (`Dump::restored`).
    Restored,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain { gzip: false } => "plain",
            Format::Plain { gzip: true } => "plain (gzip)",
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Tar => "tar",
            Format::Restored => "restored",
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

    /// A database already restored on the server, named `name`, standing in for a dump.
    pub fn restored(name: &str) -> Dump {
        Dump {
            path: PathBuf::from(name),
            format: Format::Restored,
            pg_dump_version: None,
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self.format, Format::Plain { .. })
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

pub(super) fn open_read_only(path: &Path) -> Result<File> {
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
        // Plain SQL from a newer pg_dump often loads on an older psql (pgsnapdiff blanks the
        // newer `\restrict`): try it, and say so; a failure names the version (restore_error).
        Some(major) if major > bins.major && dump.is_plain() => {
            crate::console::note(format!(
                "{}: written by pg_dump {}, newer than the PostgreSQL {} in use; trying it (plain SQL often loads on an older server); --pg-version {major} runs it on its own version",
                dump.path.display(),
                dump.pg_dump_version.as_deref().unwrap_or("?"),
                bins.version
            ));
            Ok(())
        }
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

    #[test]
    fn archive_header_truncated_is_reported() {
        let err = parse_archive_header(b"PGDMP\x01\x0f").unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
