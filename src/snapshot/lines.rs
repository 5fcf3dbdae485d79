//! The fast reader for snapshot files in the layout `file::Writer` writes: one row per line.
//!
//! serde_json reading from an `io::Read` goes byte by byte: 70% of `pgsnapdiff diff`'s time on
//! two mostly equal files went there (scripts/bench). Here each line is read with `memchr` and
//! parsed from a slice. The layout is checked line by line; the first line that does not fit
//! (a hand-edited or re-indented file, an out-of-order key, invalid JSON) ends this reader with
//! the number of events it sent, and `file.rs` re-reads the file with the general parser,
//! skipping that many events: both readers turn the same bytes into the same events, so the
//! consumer sees one stream, and errors come from one place.

use std::io::{BufRead, Read};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::file::{DATA_CLOSE, DATA_OPEN, Event, ROW_INDENT, TABLE_CLOSE, TABLE_INDENT, Tx, send};
use super::{FORMAT, Header, RowText};

/// The longest line read here: memory stays bounded whatever the file's layout.
const MAX_LINE: u64 = 16 << 20;

/// Why the fast reader stopped before the end.
pub enum Stop {
    /// A line outside the layout (or unreadable): read the file again, generally.
    Layout,
    /// The consumer stopped listening.
    Consumer,
}

/// The header lines up to `"data"`, completed into a document of their own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderDoc {
    format: String,
    alembic_version: Value,
    schema: Value,
    #[allow(dead_code)]
    data: serde::de::IgnoredAny,
}

/// Read `input` to its end, sending events; `Ok` only when the whole file fit the layout.
pub fn read(input: &mut impl BufRead, tx: &Tx) -> Result<(), Stop> {
    let mut line = String::new();
    let mut next = |line: &mut String| -> Result<bool, Stop> {
        line.clear();
        let n = input
            .by_ref()
            .take(MAX_LINE)
            .read_line(line)
            .map_err(|_| Stop::Layout)?;
        if line.ends_with('\n') {
            line.pop();
        } else if n as u64 == MAX_LINE {
            // Many rows on one line, or one huge row: the general parser streams those.
            return Err(Stop::Layout);
        }
        Ok(n > 0)
    };
    let emit = |event: Event| send::<serde_json::Error>(tx, event).map_err(|_| Stop::Consumer);

    // Header: everything before the `"data"` line, parsed as one small document.
    let mut header = String::new();
    loop {
        if !next(&mut line)? {
            return Err(Stop::Layout);
        }
        if line == DATA_OPEN {
            break;
        }
        header.push_str(&line);
        header.push('\n');
    }
    header.push_str("\"data\": {}}");
    let doc: HeaderDoc = serde_json::from_str(&header).map_err(|_| Stop::Layout)?;
    if doc.format != FORMAT {
        return Err(Stop::Layout);
    }
    emit(Event::Header(Header {
        alembic_version: doc.alembic_version,
        schema: doc.schema,
    }))?;

    // Tables and rows. `comma`: the previous line ended with one, so something must follow.
    let mut table: Option<String> = None;
    let mut in_table = false;
    let mut last_key: Option<String> = None;
    let mut comma = false;
    while next(&mut line)? {
        let (body, ends_with_comma) = match line.strip_suffix(',') {
            Some(body) => (body, true),
            None => (line.as_str(), false),
        };
        if let Some(rest) = body
            .strip_prefix(ROW_INDENT)
            .filter(|r| in_table && r.starts_with('"'))
        {
            let (key, value) = split_row(rest).ok_or(Stop::Layout)?;
            if last_key.as_ref().is_some_and(|l| *l >= key) || (last_key.is_some() && !comma) {
                return Err(Stop::Layout);
            }
            emit(Event::Row((key.clone(), RowText(value.to_string()))))?;
            last_key = Some(key);
        } else if let Some(name) = body
            .strip_prefix(TABLE_INDENT)
            .and_then(|b| b.strip_suffix(": {"))
            .filter(|_| !in_table && (table.is_none() || comma))
        {
            let name: String = serde_json::from_str(name).map_err(|_| Stop::Layout)?;
            if table.as_ref().is_some_and(|t| *t >= name) {
                return Err(Stop::Layout);
            }
            emit(Event::Table(name.clone()))?;
            table = Some(name);
            in_table = true;
            last_key = None;
        } else if body == TABLE_CLOSE && in_table && !comma {
            in_table = false;
        } else if body == DATA_CLOSE && !in_table && !comma && table.is_some() && !ends_with_comma {
            // The end of `data`: only the closing brace may follow.
            let closed = next(&mut line)? && line == "}";
            return if closed && !next(&mut line)? {
                Ok(())
            } else {
                Err(Stop::Layout)
            };
        } else {
            return Err(Stop::Layout);
        }
        comma = ends_with_comma;
    }
    Err(Stop::Layout)
}

/// `"KEY": VALUE`: the key, and the value's text once it is known to be one valid JSON value.
fn split_row(line: &str) -> Option<(String, &str)> {
    // The key is a JSON string: parse it to learn where it ends.
    let mut keys = serde_json::Deserializer::from_str(line).into_iter::<String>();
    let key = keys.next()?.ok()?;
    let value = line.get(keys.byte_offset()..)?.strip_prefix(": ")?;
    let raw: &RawValue = serde_json::from_str(value).ok()?;
    Some((key, raw.get()))
}
