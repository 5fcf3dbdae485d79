//! A snapshot held in memory, from a JSON document in the snapshot file's shape
//! (`{"alembic_version", "schema", "data": {table: {key: row}}}`): the `Source` the unit tests
//! feed the diff and the checks with, no server and no file needed.

use std::collections::VecDeque;

use serde_json::Value;

use super::{Header, Row, RowText, Source};
use crate::error::Result;

pub struct MemSource {
    header: Header,
    tables: VecDeque<(String, VecDeque<Row>)>,
    rows: VecDeque<Row>,
}

impl MemSource {
    /// Tables and rows come out in byte order (a JSON object's keys are sorted), as every
    /// `Source` must; rows as their canonical JSON text.
    pub fn new(doc: &Value) -> Self {
        let empty = serde_json::Map::new();
        let data = doc.get("data").and_then(Value::as_object).unwrap_or(&empty);
        let tables = data
            .iter()
            .map(|(table, rows)| {
                let rows = rows.as_object().unwrap_or(&empty);
                let rows = rows
                    .iter()
                    .map(|(key, row)| (key.clone(), RowText(row.to_string())))
                    .collect();
                (table.clone(), rows)
            })
            .collect();
        MemSource {
            header: Header {
                alembic_version: doc.get("alembic_version").cloned().unwrap_or(Value::Null),
                schema: doc
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(empty.clone())),
            },
            tables,
            rows: VecDeque::new(),
        }
    }
}

impl Source for MemSource {
    async fn header(&mut self) -> Result<Header> {
        Ok(self.header.clone())
    }

    async fn next_table(&mut self) -> Result<Option<String>> {
        Ok(self.tables.pop_front().map(|(name, rows)| {
            self.rows = rows;
            name
        }))
    }

    async fn next_row(&mut self) -> Result<Option<Row>> {
        Ok(self.rows.pop_front())
    }
}
