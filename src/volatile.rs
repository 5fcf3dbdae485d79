//! Volatile values: pointer patterns whose values change on every run (timestamps, generated
//! ids), replaced by `"[volatile]"` in patch outputs and baselines and skipped by round trips.
//! Ground floor: imports nothing of the crate but `error`.

use json_patch::PatchOperation;
use jsonptr::PointerBuf;
use serde_json::Value;

use crate::error::{Error, Result};

/// What replaces a volatile value.
pub const VOLATILE: &str = "[volatile]";

/// Pointer patterns whose values are replaced by `"[volatile]"`: RFC 6901 pointers in which a
/// `*` token matches any one token, e.g. `/data/public.onboarding_states/*/updated_at`.
#[derive(Debug, Clone, Default)]
pub struct Volatile {
    patterns: Vec<Vec<String>>,
}

impl Volatile {
    pub fn parse(patterns: &[String]) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let ptr = PointerBuf::parse(p.as_str()).map_err(|e| {
                    Error::Config(format!(
                        "volatile {p:?} is not a JSON Pointer pattern ({e}); write it like /data/public.t/*/updated_at"
                    ))
                })?;
                Ok(ptr.tokens().map(|t| t.decoded().into_owned()).collect())
            })
            .collect::<Result<_>>()?;
        Ok(Volatile { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Replace the volatile values of `value`, found at the pointer `path` (as tokens).
    fn apply(&self, path: &[&str], value: &mut Value) {
        for pattern in &self.patterns {
            let n = pattern.len().min(path.len());
            let prefix = pattern[..n].iter().zip(&path[..n]);
            if prefix.clone().all(|(p, t)| p == "*" || p == t) {
                redact(value, &pattern[n..]);
            }
        }
    }

    /// Is everything at `path` (as tokens) volatile: does a pattern match it or an ancestor?
    pub fn covers(&self, path: &[String]) -> bool {
        self.patterns.iter().any(|pattern| {
            pattern.len() <= path.len() && pattern.iter().zip(path).all(|(p, t)| p == "*" || p == t)
        })
    }

    /// Row `key` of `table`, volatile values replaced in place (as in `add /data/T/K`).
    pub fn row(&self, table: &str, key: &str, row: &mut Value) {
        self.apply(&["data", table, key], row);
    }

    /// The operation with every value at a volatile path replaced.
    pub fn op(&self, op: &PatchOperation) -> PatchOperation {
        if self.patterns.is_empty() {
            return op.clone();
        }
        let tokens: Vec<String> = op
            .path()
            .tokens()
            .map(|t| t.decoded().into_owned())
            .collect();
        let path: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut op = op.clone();
        let value = match &mut op {
            PatchOperation::Add(o) => &mut o.value,
            PatchOperation::Replace(o) => &mut o.value,
            PatchOperation::Test(o) => &mut o.value,
            _ => return op,
        };
        self.apply(&path, value);
        op
    }
}

/// Replace what `rest` (relative pattern tokens) reaches inside `value`.
fn redact(value: &mut Value, rest: &[String]) {
    let Some((first, rest)) = rest.split_first() else {
        *value = Value::String(VOLATILE.into());
        return;
    };
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if first == "*" || first == key {
                    redact(child, rest);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                if first == "*" || *first == i.to_string() {
                    redact(child, rest);
                }
            }
        }
        _ => {}
    }
}
