//! The patch file: RFC 6902 operations streamed one per line.

use std::io::{self, Write};

use json_patch::PatchOperation;

use crate::diff::DiffSink;
use crate::error::{Context, Result};

/// Streams patch operations as an RFC 6902 document: a JSON array, one operation per line.
pub struct PatchWriter<W: Write> {
    out: W,
    count: u64,
}

impl<W: Write> PatchWriter<W> {
    pub fn new(out: W) -> Self {
        PatchWriter { out, count: 0 }
    }

    pub fn finish(mut self) -> Result<W> {
        let end: &[u8] = if self.count == 0 { b"[]\n" } else { b"\n]\n" };
        self.out
            .write_all(end)
            .and_then(|()| self.out.flush())
            .context("writing patch")?;
        Ok(self.out)
    }
}

impl<W: Write> DiffSink for PatchWriter<W> {
    fn op(&mut self, op: &PatchOperation) -> Result<()> {
        let sep: &[u8] = if self.count == 0 { b"[\n  " } else { b",\n  " };
        self.out
            .write_all(sep)
            .and_then(|()| write_op(&mut self.out, op))
            .context("writing patch")?;
        self.count += 1;
        Ok(())
    }
}

/// One operation as compact JSON, byte for byte what `serde_json::to_writer` makes of it
/// (`op` first, then the struct's fields in order), written by hand for the three kinds a diff
/// makes: serde's internally tagged path was a quarter of the client's time on a 2M-operation
/// patch (scripts/bench).
fn write_op(out: &mut impl Write, op: &PatchOperation) -> io::Result<()> {
    let (name, path, value) = match op {
        PatchOperation::Add(o) => ("add", &o.path, Some(&o.value)),
        PatchOperation::Remove(o) => ("remove", &o.path, None),
        PatchOperation::Replace(o) => ("replace", &o.path, Some(&o.value)),
        _ => return serde_json::to_writer(out, op).map_err(io::Error::from),
    };
    write!(out, "{{\"op\":\"{name}\",\"path\":")?;
    serde_json::to_writer(&mut *out, path.as_str())?;
    if let Some(value) = value {
        out.write_all(b",\"value\":")?;
        serde_json::to_writer(&mut *out, value)?;
    }
    out.write_all(b"}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_ops_are_byte_for_byte_serde_json() {
        // Parsed from text: numbers stay verbatim (`arbitrary_precision`).
        let ops: Vec<PatchOperation> = serde_json::from_str(
            r#"[
                {"op": "add", "path": "/data/public.t/a~1b~0c/\"q\"", "value": {"z": [1.10, null], "a": "é\n"}},
                {"op": "remove", "path": "/data/public.t/10"},
                {"op": "replace", "path": "", "value": 0.33333333333333333333},
                {"op": "move", "from": "/a", "path": "/b"},
                {"op": "test", "path": "/c", "value": true}
            ]"#,
        )
        .unwrap();
        for op in &ops {
            let mut ours = Vec::new();
            write_op(&mut ours, op).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(op).unwrap()
            );
        }
    }
}
