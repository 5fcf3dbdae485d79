//! `metadata-restored`: every row that carries migration metadata gets its original values
//! back, the metadata goes, and the rows without it are held to what the rule says.

use std::collections::BTreeSet;

use jsonptr::{Pointer, PointerBuf};
use serde_json::Value;

use super::{at, changed_columns, data_path};
use crate::diff::DiffSink;
use crate::error::Result;
use crate::expect::{CheckResult, Finding, Findings};

/// What is expected of rows that carry no metadata before the downgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WithoutMetadata {
    /// Every column present before and after keeps its value (the default).
    Unchanged,
    /// The row must still exist; its values may change.
    Kept,
    /// Anything goes, including disappearing.
    Any,
}

/// The metadata restoration rule, resolved from config or flags.
#[derive(Debug, Clone)]
pub struct MetadataSpec {
    pub id: String,
    /// `schema.table`.
    pub table: String,
    /// Where the metadata sits in the before row, e.g. `/step_data/_migration_metadata`.
    pub metadata: PointerBuf,
    /// (field in the after row, source inside the metadata).
    pub fields: Vec<(PointerBuf, PointerBuf)>,
    pub without_metadata: WithoutMetadata,
    /// Columns never compared (e.g. `updated_at`).
    pub ignore_columns: Vec<String>,
    pub allow_added_rows: bool,
    pub allow_removed_rows: bool,
}

pub struct MetadataRestored {
    spec: MetadataSpec,
    /// Columns never compared: `ignore_columns`.
    ignored: BTreeSet<String>,
    /// For rows with metadata, also the columns the mapping rewrites (first token of each
    /// field and of the metadata pointer): not held to "unchanged".
    ignored_or_rewritten: BTreeSet<String>,
    findings: Findings,
    table_seen: bool,
    with_metadata: u64,
    without_metadata: u64,
}

impl MetadataRestored {
    pub fn new(spec: MetadataSpec) -> Self {
        let first = |p: &PointerBuf| p.tokens().next().map(|t| t.decoded().into_owned());
        let ignored: BTreeSet<String> = spec.ignore_columns.iter().cloned().collect();
        let ignored_or_rewritten = spec
            .fields
            .iter()
            .filter_map(|(field, _)| first(field))
            .chain(first(&spec.metadata))
            .chain(ignored.iter().cloned())
            .collect();
        MetadataRestored {
            spec,
            ignored,
            ignored_or_rewritten,
            findings: Findings::default(),
            table_seen: false,
            with_metadata: 0,
            without_metadata: 0,
        }
    }

    /// A finding at `inner` of the row; `before_row` is the row before the downgrade.
    fn push(
        &mut self,
        message: &str,
        key: &str,
        inner: &Pointer,
        before_row: Option<&Value>,
        expected: Option<&Value>,
        actual: Option<&Value>,
    ) -> Result<()> {
        self.findings.push(Finding {
            rule: self.spec.id.clone(),
            message: message.into(),
            table: Some(self.spec.table.clone()),
            key: Some(key.into()),
            path: data_path(&self.spec.table, key, inner),
            before: before_row.and_then(|b| at(b, inner)).cloned(),
            expected: expected.cloned(),
            actual: actual.cloned(),
        })
    }

    /// One finding per differing path inside `field`, so each names exactly what is wrong.
    fn push_diff(
        &mut self,
        message: &str,
        before_row: &Value,
        key: &str,
        field: &Pointer,
        expected: &Value,
        actual: Option<&Value>,
    ) -> Result<()> {
        let Some(actual) = actual.filter(|a| a.is_object() && expected.is_object()) else {
            return self.push(
                message,
                key,
                field,
                Some(before_row),
                Some(expected),
                actual,
            );
        };
        for op in json_patch::diff(expected, actual).0 {
            let inner = op.path();
            let path = field.concat(inner);
            // Metadata still in the row has a finding of its own ("metadata left in place").
            if path.starts_with(&self.spec.metadata) {
                continue;
            }
            let (expected, actual) = (at(expected, inner), at(actual, inner));
            self.push(message, key, &path, Some(before_row), expected, actual)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<CheckResult> {
        let s = &self.spec;
        let zero = if !self.table_seen {
            Some(format!("table {} is not in the snapshot", s.table))
        } else if self.with_metadata == 0 {
            Some(format!(
                "rule matched no rows: no row of {} has {} before the downgrade (misspelt pointer?)",
                s.table, s.metadata
            ))
        } else {
            None
        };
        if let Some(message) = zero {
            let path = format!(
                "{}{}",
                PointerBuf::from_tokens(["data", &s.table]),
                s.metadata
            );
            self.findings.push_first(Finding {
                table: Some(s.table.clone()),
                ..Finding::plain(&s.id, message, path)
            })?;
        }
        let mapping: Vec<String> = s.fields.iter().map(|(f, m)| format!("{f} ← {m}")).collect();
        let name = format!(
            "rule {}: {} rows with {} restored ({}), metadata removed; {} rows without it {}",
            s.id,
            self.with_metadata,
            s.metadata,
            mapping.join(", "),
            self.without_metadata,
            match s.without_metadata {
                WithoutMetadata::Unchanged => "unchanged",
                WithoutMetadata::Kept => "kept",
                WithoutMetadata::Any => "unchecked",
            }
        );
        Ok(CheckResult::new(&self.spec.id.clone(), name, self.findings))
    }
}

impl DiffSink for MetadataRestored {
    fn wants_rows(&self, table: &str) -> bool {
        table == self.spec.table
    }

    fn table(&mut self, name: &str, before: bool, _after: bool) -> Result<()> {
        if name == self.spec.table && before {
            self.table_seen = true;
        }
        Ok(())
    }

    fn row(
        &mut self,
        table: &str,
        key: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        if table != self.spec.table {
            return Ok(());
        }
        let root = Pointer::root();
        let metadata = before.and_then(|b| at(b, &self.spec.metadata));
        match (before, after) {
            (None, None) => {}
            (None, Some(a)) => {
                if !self.spec.allow_added_rows {
                    self.push("row appeared", key, root, None, None, Some(a))?;
                }
            }
            (Some(b), None) => {
                if metadata.is_some() {
                    self.with_metadata += 1;
                } else {
                    self.without_metadata += 1;
                }
                let allowed = self.spec.allow_removed_rows
                    || (metadata.is_none() && self.spec.without_metadata == WithoutMetadata::Any);
                if !allowed {
                    self.push("row disappeared", key, root, Some(b), Some(b), None)?;
                }
            }
            (Some(b), Some(a)) => match metadata {
                Some(meta) => {
                    self.with_metadata += 1;
                    // Taken for the loop (push needs &mut self), put back after it.
                    let fields = std::mem::take(&mut self.spec.fields);
                    for (field, source) in &fields {
                        let expected = at(meta, source);
                        let actual = at(a, field);
                        match expected {
                            None => {
                                let message = format!("metadata has no {source}");
                                self.push(&message, key, field, Some(b), None, actual)?;
                            }
                            Some(e) if Some(e) != actual => {
                                let e = e.clone();
                                let actual = actual.cloned();
                                self.push_diff(
                                    "not restored from metadata",
                                    b,
                                    key,
                                    field,
                                    &e,
                                    actual.as_ref(),
                                )?;
                            }
                            Some(_) => {}
                        }
                    }
                    self.spec.fields = fields;
                    if let Some(left) = at(a, &self.spec.metadata) {
                        let path = self.spec.metadata.clone();
                        self.push(
                            "metadata left in place",
                            key,
                            &path,
                            Some(b),
                            None,
                            Some(&left.clone()),
                        )?;
                    }
                    let skip = std::mem::take(&mut self.ignored_or_rewritten);
                    for (col, vb, va) in changed_columns(b, a, &skip) {
                        let path = PointerBuf::from_tokens([col.as_str()]);
                        self.push_diff(
                            "changed, but the rule does not map it",
                            b,
                            key,
                            &path,
                            vb,
                            Some(va),
                        )?;
                    }
                    self.ignored_or_rewritten = skip;
                }
                None => {
                    self.without_metadata += 1;
                    if self.spec.without_metadata == WithoutMetadata::Unchanged {
                        for (col, vb, va) in changed_columns(b, a, &self.ignored) {
                            let path = PointerBuf::from_tokens([col.as_str()]);
                            self.push_diff(
                                "changed (row has no metadata)",
                                b,
                                key,
                                &path,
                                vb,
                                Some(va),
                            )?;
                        }
                    }
                }
            },
        }
        Ok(())
    }
}
