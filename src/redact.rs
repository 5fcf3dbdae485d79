//! `--redact`: every non-key value of the data in every output becomes a stable hash, for
//! reports about production dumps that must not carry personal data.
//!
//! A redacted value is `"redacted:"` plus 16 hex digits of SHA-256 over the key (from
//! `PGSNAPDIFF_REDACT_KEY`, empty without it) and the value's JSON text: equal values hash
//! equal, within a run and across runs with the same key. Structure stays: object keys, array
//! lengths and `null`s are kept; every other leaf is hashed. Row keys (in paths) and the schema
//! are not data values and are kept.
//!
//! Redaction happens at the outputs only (patch operations under `/data`, findings, snapshot
//! rows): every check still compares the real values. It is idempotent (a redacted value, and
//! the `"[volatile]"` marker, are left alone), so a baseline written with --redact compares
//! equal to a run with --redact.

use std::sync::OnceLock;

use json_patch::PatchOperation;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::volatile::VOLATILE;

const PREFIX: &str = "redacted:";

/// The key, once redaction is on for this run.
static KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Turn redaction on for the rest of the process.
pub fn enable() {
    let key = std::env::var("PGSNAPDIFF_REDACT_KEY").unwrap_or_default();
    let _ = KEY.set(key.into_bytes());
}

pub fn enabled() -> bool {
    KEY.get().is_some()
}

fn leaf(key: &[u8], v: &Value) -> Value {
    let text = v.to_string();
    let digest = Sha256::new()
        .chain_update(key)
        .chain_update([0u8])
        .chain_update(text.as_bytes())
        .finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Value::String(format!("{PREFIX}{hex}"))
}

fn walk(key: &[u8], v: &mut Value) {
    match v {
        Value::Null => {}
        Value::String(s) if s.starts_with(PREFIX) || s == VOLATILE => {}
        Value::Object(map) => map.values_mut().for_each(|c| walk(key, c)),
        Value::Array(items) => items.iter_mut().for_each(|c| walk(key, c)),
        _ => *v = leaf(key, v),
    }
}

/// Hash the data values of `v` in place (nothing when redaction is off).
pub fn value(v: &mut Value) {
    if let Some(key) = KEY.get() {
        walk(key, v);
    }
}

fn in_data(path: &str) -> bool {
    path == "/data" || path.starts_with("/data/")
}

/// An operation with its value hashed when it is about data.
pub fn op(op: &PatchOperation) -> PatchOperation {
    let Some(key) = KEY.get() else {
        return op.clone();
    };
    let mut op = op.clone();
    if !in_data(op.path().as_str()) {
        return op;
    }
    match &mut op {
        PatchOperation::Add(o) => walk(key, &mut o.value),
        PatchOperation::Replace(o) => walk(key, &mut o.value),
        PatchOperation::Test(o) => walk(key, &mut o.value),
        _ => {}
    }
    op
}

/// A finding's values (before, expected, actual) hashed, when they are data (or operations on
/// data); `path` is the finding's pointer.
pub fn finding<'v>(path: &str, values: impl IntoIterator<Item = Option<&'v mut Value>>) {
    let Some(key) = KEY.get() else {
        return;
    };
    for v in values.into_iter().flatten() {
        let op_path = v.get("op").and(v.get("path")).and_then(Value::as_str);
        match op_path {
            Some(path) if in_data(path) => {
                if let Some(inner) = v.get_mut("value") {
                    walk(key, inner);
                }
            }
            Some(_) => {}
            None if in_data(path) => walk(key, v),
            None => {}
        }
    }
}
