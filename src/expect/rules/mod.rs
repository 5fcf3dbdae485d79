//! Rules: what the restored data must be, checked row by row as the diff streams by. One file
//! per rule; the helpers they share are here.

mod after_state;
mod data_lost;
mod metadata;
mod movement;
mod round_trip;
mod rows_preserved;
#[cfg(test)]
mod tests;

use jsonptr::{Pointer, PointerBuf};
use serde_json::Value;
use std::collections::BTreeSet;

pub use after_state::{AfterSpec, AfterState};
pub use data_lost::{Loss, LossKind, SchemaLoss, data_lost, widens};
pub use metadata::{MetadataRestored, MetadataSpec, WithoutMetadata};
pub use movement::{no_op, revision_unmoved};
pub use round_trip::RoundTrip;
pub use rows_preserved::RowsPreserved;

fn data_path(table: &str, key: &str, inner: &Pointer) -> String {
    let mut p = PointerBuf::from_tokens(["data", table, key]);
    p.append(inner);
    p.to_string()
}

/// `row.pointer(ptr)`, by jsonptr's decoding (the same escaping the diff writes).
fn at<'v>(value: &'v Value, ptr: &Pointer) -> Option<&'v Value> {
    value.pointer(ptr.as_str())
}

/// Top-level columns equal on both sides, except `skip`: the ones that differ.
fn changed_columns<'a>(
    before: &'a Value,
    after: &'a Value,
    skip: &BTreeSet<String>,
) -> Vec<(&'a String, &'a Value, &'a Value)> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    b.iter()
        .filter(|(col, _)| !skip.contains(*col))
        .filter_map(|(col, vb)| a.get(col).map(|va| (col, vb, va)))
        .filter(|(_, vb, va)| vb != va)
        .collect()
}
