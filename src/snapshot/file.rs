//! Snapshot files: written deterministically, read back as a stream.
//!
//! Layout (README "Snapshot format"): `format`, `alembic_version`, `schema`, then `data` last,
//! one row per line, tables and rows in key byte order. The reader accepts any JSON with those
//! keys as long as `data` comes last and orders hold, and never holds more than a few rows.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{FORMAT, Header, Row, RowText, Source};
use crate::error::{Error, Result};

/// The layout's fixed lines and indents, shared with the line reader (`lines.rs`), which reads
/// exactly what `Writer` writes.
pub(super) const DATA_OPEN: &str = "  \"data\": {";
pub(super) const DATA_CLOSE: &str = "  }";
pub(super) const TABLE_INDENT: &str = "    ";
pub(super) const TABLE_CLOSE: &str = "    }";
pub(super) const ROW_INDENT: &str = "      ";

/// Writes a snapshot to any `io::Write`, streaming rows.
pub struct Writer<W: Write> {
    out: W,
    rows_in_table: u64,
    tables: u64,
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("writing snapshot", e)
}

impl<W: Write> Writer<W> {
    pub fn begin(mut out: W, header: &Header) -> Result<Self> {
        let schema = serde_json::to_string_pretty(&header.schema).expect("JSON values serialize");
        write!(
            out,
            "{{\n  \"format\": \"{FORMAT}\",\n  \"alembic_version\": {},\n  \"schema\": {},\n{DATA_OPEN}",
            serde_json::to_string(&header.alembic_version).expect("JSON values serialize"),
            schema.replace('\n', "\n  ")
        )
        .map_err(write_err)?;
        Ok(Writer {
            out,
            rows_in_table: 0,
            tables: 0,
        })
    }

    pub fn table(&mut self, name: &str) -> Result<()> {
        if self.tables > 0 {
            write!(self.out, "\n{TABLE_CLOSE},").map_err(write_err)?;
        }
        write!(self.out, "\n{TABLE_INDENT}{}: {{", json_string(name)).map_err(write_err)?;
        self.tables += 1;
        self.rows_in_table = 0;
        Ok(())
    }

    pub fn row(&mut self, key: &str, value: &Value) -> Result<()> {
        let sep = if self.rows_in_table == 0 { "" } else { "," };
        write!(self.out, "{sep}\n{ROW_INDENT}{}: ", json_string(key)).map_err(write_err)?;
        serde_json::to_writer(&mut self.out, value).map_err(|e| write_err(e.into()))?;
        self.rows_in_table += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        if self.tables == 0 {
            self.out.write_all(b"}\n}\n")
        } else {
            write!(self.out, "\n{TABLE_CLOSE}\n{DATA_CLOSE}\n}}\n")
        }
        .map_err(write_err)?;
        self.out.flush().map_err(write_err)?;
        Ok(self.out)
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Copy a whole `Source` into a `Writer`.
pub async fn write_source<W: Write>(source: &mut impl Source, out: W) -> Result<W> {
    let header = source.header().await?;
    let mut writer = Writer::begin(out, &header)?;
    while let Some(table) = source.next_table().await? {
        writer.table(&table)?;
        while let Some((key, text)) = source.next_row().await? {
            // Re-serialized: the file is canonical whatever the source's text looks like.
            let mut row = text.parse(&table, &key)?;
            // --redact: data values hashed (a no-op otherwise).
            crate::redact::value(&mut row);
            writer.row(&key, &row)?;
        }
    }
    writer.finish()
}

pub(super) enum Event {
    Header(Header),
    Table(String),
    Row(Row),
}

/// Events per message from the parser thread: one message per row cost a thread wake-up each
/// and made `pgsnapdiff diff` run at 7k rows/s (scripts/bench).
const BATCH: usize = 256;
/// Messages in flight: the parser is at most `BATCH * IN_FLIGHT` events ahead.
const IN_FLIGHT: usize = 4;

type Batch = std::result::Result<Vec<Event>, String>;

/// A snapshot file read by a parser thread, a bounded number of events ahead.
pub struct FileSource {
    path: PathBuf,
    rx: mpsc::Receiver<Batch>,
    pending: std::collections::VecDeque<Event>,
    in_table: bool,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| {
            let problem = if e.kind() == std::io::ErrorKind::NotFound {
                "no such snapshot file; create one with `pgsnapdiff snapshot -o FILE`".to_string()
            } else {
                format!("cannot open: {e}")
            };
            Error::input(path, problem)
        })?;
        let (sender, rx) = mpsc::channel(IN_FLIGHT);
        std::thread::spawn(move || {
            let tx = Tx {
                sender,
                buf: RefCell::new(Vec::with_capacity(BATCH)),
                taken: Cell::new(0),
                skip: Cell::new(0),
            };
            parse(file, &tx);
        });
        Ok(FileSource {
            path: path.to_path_buf(),
            rx,
            pending: std::collections::VecDeque::new(),
            in_table: false,
        })
    }

    async fn next_event(&mut self) -> Result<Option<Event>> {
        while self.pending.is_empty() {
            match self.rx.recv().await {
                None => return Ok(None),
                Some(Ok(batch)) => self.pending.extend(batch),
                Some(Err(problem)) => {
                    return Err(Error::input(
                        &self.path,
                        format!("not a valid pgsnapdiff snapshot: {problem}"),
                    ));
                }
            }
        }
        Ok(self.pending.pop_front())
    }
}

impl Source for FileSource {
    async fn header(&mut self) -> Result<Header> {
        match self.next_event().await? {
            Some(Event::Header(h)) => Ok(h),
            _ => Err(Error::input(
                &self.path,
                "not a valid pgsnapdiff snapshot: no header",
            )),
        }
    }

    async fn next_table(&mut self) -> Result<Option<String>> {
        loop {
            match self.next_event().await? {
                Some(Event::Table(name)) => {
                    self.in_table = true;
                    return Ok(Some(name));
                }
                Some(Event::Row(_)) => continue,
                Some(Event::Header(_)) | None => return Ok(None),
            }
        }
    }

    async fn next_row(&mut self) -> Result<Option<Row>> {
        if !self.in_table {
            return Ok(None);
        }
        match self.next_event().await? {
            Some(Event::Row(row)) => Ok(Some(row)),
            other => {
                if let Some(event) = other {
                    self.pending.push_front(event);
                }
                self.in_table = false;
                Ok(None)
            }
        }
    }
}

const STOPPED: &str = "snapshot reader stopped";

/// The parser thread: the line reader first, on a regular file (a pipe cannot be read twice);
/// if the file leaves that layout, the general parser from the start, skipping the events the
/// line reader already sent.
fn parse(file: std::fs::File, tx: &Tx) {
    let mut input = BufReader::with_capacity(1 << 16, file);
    if input.get_ref().metadata().is_ok_and(|m| m.is_file()) {
        match super::lines::read(&mut input, tx) {
            Ok(()) => return finish(tx, Ok(())),
            Err(super::lines::Stop::Consumer) => return,
            Err(super::lines::Stop::Layout) => tx.skip.set(tx.taken.get()),
        }
        if let Err(e) = input.seek(SeekFrom::Start(0)) {
            return finish(tx, Err(serde_json::Error::io(e)));
        }
    }
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = de
        .deserialize_map(TopVisitor { tx })
        .and_then(|()| de.end());
    finish(tx, result);
}

/// Deliver the buffered events, then the error if there is one worth reporting: a closed
/// channel means the reader stopped listening on purpose.
fn finish(tx: &Tx, result: serde_json::Result<()>) {
    if let Err(e) = result.and_then(|()| tx.flush::<serde_json::Error>())
        && !e.to_string().contains(STOPPED)
        && tx.flush::<serde_json::Error>().is_ok()
    {
        let _ = tx.sender.blocking_send(Err(e.to_string()));
    }
}

/// The parser thread's side: events are sent `BATCH` at a time.
pub(super) struct Tx {
    sender: mpsc::Sender<Batch>,
    buf: RefCell<Vec<Event>>,
    /// Events taken so far (sent or buffered).
    taken: Cell<u64>,
    /// Events still to drop: the ones the fast reader sent before it gave up (`lines.rs`).
    skip: Cell<u64>,
}

impl Tx {
    fn flush<E: de::Error>(&self) -> std::result::Result<(), E> {
        let batch = std::mem::take(&mut *self.buf.borrow_mut());
        if batch.is_empty() {
            return Ok(());
        }
        self.sender
            .blocking_send(Ok(batch))
            .map_err(|_| E::custom(STOPPED))
    }
}

pub(super) fn send<E: de::Error>(tx: &Tx, event: Event) -> std::result::Result<(), E> {
    if tx.skip.get() > 0 {
        tx.skip.set(tx.skip.get() - 1);
        return Ok(());
    }
    tx.taken.set(tx.taken.get() + 1);
    let full = {
        let mut buf = tx.buf.borrow_mut();
        buf.push(event);
        buf.len() >= BATCH
    };
    if full { tx.flush() } else { Ok(()) }
}

struct TopVisitor<'a> {
    tx: &'a Tx,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a snapshot object with format, alembic_version, schema and data")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut format: Option<String> = None;
        let mut alembic_version = Value::Null;
        let mut schema: Option<Value> = None;
        let mut header_sent = false;
        while let Some(key) = map.next_key::<String>()? {
            if header_sent {
                return Err(de::Error::custom(format!(
                    "\"data\" must be the last key (found \"{key}\" after it)"
                )));
            }
            match key.as_str() {
                "format" => format = Some(map.next_value()?),
                "alembic_version" => alembic_version = map.next_value()?,
                "schema" => schema = Some(map.next_value()?),
                "data" => {
                    check_format(format.as_deref())?;
                    let header = Header {
                        alembic_version: std::mem::take(&mut alembic_version),
                        schema: schema.take().ok_or_else(|| {
                            de::Error::custom("\"schema\" must come before \"data\"")
                        })?,
                    };
                    send(self.tx, Event::Header(header))?;
                    header_sent = true;
                    map.next_value_seed(DataSeed { tx: self.tx })?;
                }
                other => return Err(de::Error::custom(format!("unknown key \"{other}\""))),
            }
        }
        if !header_sent {
            check_format(format.as_deref())?;
            let schema = schema.ok_or_else(|| de::Error::custom("missing \"schema\""))?;
            send(
                self.tx,
                Event::Header(Header {
                    alembic_version,
                    schema,
                }),
            )?;
        }
        Ok(())
    }
}

fn check_format<E: de::Error>(format: Option<&str>) -> std::result::Result<(), E> {
    match format {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(E::custom(format!(
            "format \"{other}\" is not {FORMAT}; re-create it with this pgsnapdiff"
        ))),
        None => Err(E::custom("missing \"format\" before \"data\"")),
    }
}

struct DataSeed<'a> {
    tx: &'a Tx,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tables")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut last: Option<String> = None;
        while let Some(table) = map.next_key::<String>()? {
            if last.as_ref().is_some_and(|l| *l >= table) {
                return Err(de::Error::custom(format!(
                    "table \"{table}\" is out of order (tables must be sorted by name)"
                )));
            }
            send(self.tx, Event::Table(table.clone()))?;
            map.next_value_seed(RowsSeed {
                tx: self.tx,
                table: &table,
            })?;
            last = Some(table);
        }
        Ok(())
    }
}

struct RowsSeed<'a> {
    tx: &'a Tx,
    table: &'a str,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of rows keyed by row key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut last: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(de::Error::custom(format!(
                    "row \"{key}\" of \"{}\" is out of order (rows must be sorted by key, byte order)",
                    self.table
                )));
            }
            // Kept as text (validated, not built into a Value): see `RowText`.
            let value: Box<serde_json::value::RawValue> = map.next_value()?;
            send(
                self.tx,
                Event::Row((key.clone(), RowText(value.get().to_string()))),
            )?;
            last = Some(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{FileSource, write_source};
    use crate::snapshot::Source;
    use crate::snapshot::mem::MemSource;

    /// Everything a source yields, as one document (rows as their text).
    async fn read_all(source: &mut impl Source) -> Value {
        let header = source.header().await.unwrap();
        let mut data = serde_json::Map::new();
        while let Some(table) = source.next_table().await.unwrap() {
            let mut rows = serde_json::Map::new();
            while let Some((key, text)) = source.next_row().await.unwrap() {
                rows.insert(key, Value::String(text.0));
            }
            data.insert(table, Value::Object(rows));
        }
        json!({"alembic_version": header.alembic_version, "schema": header.schema, "data": data})
    }

    /// The fast line reader (a regular file) and the general parser (a pipe: it cannot be
    /// read twice, so the line reader is never tried) make the same events from the same bytes.
    #[test]
    fn line_reader_and_general_parser_read_the_same_snapshot() {
        // Parsed from text, so numbers keep theirs (`arbitrary_precision`).
        let doc: Value = serde_json::from_str(
            r#"{
            "alembic_version": ["a1"],
            "schema": {"tables": {"public.t": {"columns": {"a": {"type": "numeric"}}}}},
            "data": {
                "public.a\"q": {},
                "public.t": {
                    "1": {"a": 1.10, "s": "é\n\"x\"", "n": null},
                    "10": {"a": 0.33333333333333333333, "j": {"k": [1, {"z": true}]}},
                    "a/b~c": {"a": -0.0}
                }
            }
        }"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let out = std::fs::File::create(&file).unwrap();
            write_source(&mut MemSource::new(&doc), out).await.unwrap();
        });
        let fifo = dir.path().join("s.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (bytes, fifo_path) = (std::fs::read(&file).unwrap(), fifo.clone());
        let feeder = std::thread::spawn(move || std::fs::write(fifo_path, bytes).unwrap());
        let (fast, general) = runtime.block_on(async {
            let fast = read_all(&mut FileSource::open(&file).unwrap()).await;
            let general = read_all(&mut FileSource::open(&fifo).unwrap()).await;
            (fast, general)
        });
        feeder.join().unwrap();
        assert_eq!(fast, general);
        // And both are the document that was written (numbers verbatim).
        assert_eq!(
            fast["data"]["public.t"]["1"],
            json!(r#"{"a":1.10,"n":null,"s":"é\n\"x\""}"#)
        );
        assert_eq!(fast["alembic_version"], json!(["a1"]));
    }

    /// Snapshot files come from anywhere: on any mutation of a valid one, the reader (both its
    /// paths) yields events or an error, and its parser thread never panics.
    #[test]
    fn any_bytes_give_events_or_an_error_never_a_panic() {
        use proptest::prelude::*;
        static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            default(info)
        }));
        let header = crate::snapshot::Header {
            alembic_version: json!(["a1"]),
            schema: json!({"tables": {"public.t": {"columns": {"id": {"type": "integer"}}}}}),
        };
        let mut w = super::Writer::begin(Vec::new(), &header).unwrap();
        w.table("public.t").unwrap();
        for (k, v) in [
            ("1", json!({"id": 1, "d": [1, 2]})),
            ("2", json!({"id": 2})),
        ] {
            w.row(k, &v).unwrap();
        }
        let seed = w.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        proptest!(ProptestConfig::with_cases(200), |(data in crate::mutate::mutated(seed.clone()))| {
            let path = dir.path().join("s.json");
            std::fs::write(&path, &data).unwrap();
            runtime.block_on(async {
                let Ok(mut source) = FileSource::open(&path) else { return };
                if source.header().await.is_err() {
                    return;
                }
                while let Ok(Some(_)) = source.next_table().await {
                    while let Ok(Some(_)) = source.next_row().await {}
                }
            });
            prop_assert_eq!(PANICS.load(std::sync::atomic::Ordering::SeqCst), 0);
        });
    }
}
