//! The snapshot model: a header (alembic revision, schema) and tables of keyed rows, read from a
//! database (`db`) or a snapshot file (`file`) through one interface, `Source`.
//!
//! Invariants every `Source` keeps, and the diff relies on:
//! - tables come in byte order of their qualified name (`schema.table`);
//! - within a table, rows come in byte order of their key string, keys unique;
//! - values are JSON with object keys sorted (serde_json's BTreeMap) and numbers kept verbatim
//!   (`arbitrary_precision`), so equal data is equal JSON.

pub mod db;
pub mod file;
mod lines;
pub mod mem;

use serde_json::Value;

use crate::error::Result;

/// Identifies the snapshot file format; bumped on any incompatible change.
pub const FORMAT: &str = "pgsnapdiff-snapshot/1";

/// Everything except the rows: small, held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Sorted `alembic_version.version_num` values, or null when there is no such table.
    pub alembic_version: Value,
    /// `/schema/...` objects: tables, sequences, enums, views, functions, extensions, schemas.
    pub schema: Value,
}

/// One row: its key (see README "Row keys") and its columns as a JSON object's text.
pub type Row = (String, RowText);

/// A row's JSON text, parsed only when needed: both sides of a diff render equal data as
/// equal text (the server's `row_to_json`, or our canonical writer), so rows with equal text
/// are compared without building any `Value` (scripts/bench).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowText(pub String);

impl RowText {
    pub fn parse(&self, table: &str, key: &str) -> Result<Value> {
        serde_json::from_str(&self.0).map_err(|e| {
            crate::error::Error::Server(format!("row {key} of {table} is not valid JSON: {e}"))
        })
    }
}

/// A snapshot read in order: the header, then each table's rows.
// Used with static dispatch on one thread only, so the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Source {
    async fn header(&mut self) -> Result<Header>;
    /// The next table's name, skipping any unread rows of the current one.
    async fn next_table(&mut self) -> Result<Option<String>>;
    /// The current table's next row; `None` at the table's end.
    async fn next_row(&mut self) -> Result<Option<Row>>;
    /// The current table is known not to have been written (`DbSource::settled`): its row
    /// count, without reading its rows (which `next_row` still gives, if asked). `None`: not
    /// known, or rows were read already.
    async fn settled_rows(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The current table's rows that `next_row` will not give: the step never wrote them, so
    /// they are equal on both sides (`DbSource::narrowed`). `None`: every row is given.
    fn unread_rows(&self) -> Option<u64> {
        None
    }
}
