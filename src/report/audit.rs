//! The audit report (`--report FILE.html` or `FILE.md`): one self-contained file a reviewer can
//! attach to a change ticket. What was checked (inputs with size and SHA-256, versions, the
//! commands), when and how long, then one section per diff (check: before → after; walk: one
//! per revision) with its verdict per rule, row counts, a chart of changed rows per table, the
//! schema operations and the findings with expected and actual side by side.
//!
//! Invariants: no network reference of any kind (no CDN, no external font or image; the chart
//! is inline SVG); everything from the data is escaped; equal input gives equal output apart
//! from the run's timestamp and timings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use html_escape::encode_text as esc;
use json_patch::PatchOperation;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{op_name, phases_text};
use crate::diff::TableCounts;
use crate::error::{Context, Error, Result};
use crate::expect::{CheckResult, Finding};

/// Findings listed per check in the audit report; the JSON result has all of them.
const LIST: usize = 100;

/// An input file (or dump directory) as the report identifies it.
pub struct Input {
    pub role: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

impl Input {
    /// Size and SHA-256 of a file; of a directory (`pg_dump -Fd`), the total size and the
    /// SHA-256 of its `sha256  relative/path` lines in path order (the `sha256sum` format).
    pub fn digest(role: &'static str, path: &Path) -> Result<Input> {
        let (size, sha256) = if path.is_dir() {
            let mut files = Vec::new();
            collect_files(path, path, &mut files)
                .context(format!("hashing {} for the report", path.display()))?;
            files.sort();
            let mut listing = String::new();
            let mut total = 0;
            for rel in files {
                let (size, sum) = hash_file(&path.join(&rel))
                    .context(format!("hashing {} for the report", path.display()))?;
                total += size;
                let _ = writeln!(listing, "{sum}  {}", rel.display());
            }
            (total, hex(&Sha256::digest(listing.as_bytes())))
        } else {
            hash_file(path).context(format!("hashing {} for the report", path.display()))?
        };
        Ok(Input {
            role,
            path: path.to_path_buf(),
            size,
            sha256,
        })
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One diff's worth of report: check has one, walk one per revision.
pub struct Section<'a> {
    pub title: String,
    /// What to read first, e.g. "lost 2 rows of public.orders".
    pub headlines: Vec<String>,
    pub phases: &'a [(&'static str, Duration)],
    /// Row counts per table (`Summary::tables`); empty for a section without a diff.
    pub tables: &'a BTreeMap<String, TableCounts>,
    pub schema: &'a [PatchOperation],
    /// The migration command's own output, its last lines (empty: none).
    pub output: &'a str,
    pub results: &'a [CheckResult],
}

/// Everything the audit report shows.
pub struct Audit<'a> {
    /// "check" or "walk".
    pub command: &'static str,
    pub proven: bool,
    /// False when a walk stopped on an error before its target.
    pub complete: bool,
    pub started: SystemTime,
    /// (label, value) lines: dump format, pg_dump and server versions, the commands...
    pub facts: Vec<(String, String)>,
    pub inputs: Vec<Input>,
    pub phases: &'a [(&'static str, Duration)],
    pub sections: Vec<Section<'a>>,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Html,
    Markdown,
}

impl Kind {
    /// By file name: `.html`/`.htm` or `.md`.
    pub fn of(path: &Path) -> Result<Kind> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => Ok(Kind::Html),
            Some("md" | "markdown") => Ok(Kind::Markdown),
            _ => Err(Error::Config(format!(
                "--report {}: name it FILE.html or FILE.md (the extension picks the format)",
                path.display()
            ))),
        }
    }
}

fn status(r: &CheckResult) -> &'static str {
    if r.passed {
        "PASS"
    } else if r.fails() {
        "FAIL"
    } else {
        "WARN"
    }
}

fn verdict(a: &Audit) -> String {
    let what = if a.command == "walk" {
        "walk"
    } else {
        "rollback"
    };
    let mut v = if a.proven {
        format!("{what} proven")
    } else {
        format!("{what} NOT proven")
    };
    if !a.complete {
        v.push_str(" (stopped by an error before its target)");
    }
    v
}

fn json_text(v: &Option<Value>) -> String {
    match v {
        Some(v) => serde_json::to_string_pretty(v).expect("JSON values serialize"),
        None => "(nothing)".into(),
    }
}

fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn findings(n: u64) -> String {
    if n == 1 {
        "1 finding".into()
    } else {
        format!("{n} findings")
    }
}

fn shown(r: &CheckResult) -> &[Finding] {
    &r.findings.shown[..r.findings.shown.len().min(LIST)]
}

fn more(r: &CheckResult) -> Option<String> {
    let listed = shown(r).len() as u64;
    (r.findings.total > listed).then(|| {
        format!(
            "… and {} more; the JSON result (--result-out) lists every finding.",
            r.findings.total - listed
        )
    })
}

// ------------------------------------------------------------------------------------- HTML

const CSS: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#1b1f24}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{margin:0;white-space:pre-wrap;word-break:break-all;max-height:16em;overflow:auto}
.verdict{display:inline-block;padding:.35em .9em;border-radius:6px;font-weight:600;font-size:1.1em;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.PASS{color:#1a7f37;font-weight:600}.FAIL{color:#cf222e;font-weight:600}.WARN{color:#9a6700;font-weight:600}
.muted{color:#57606a}ul.notes{margin:.2em 0 .6em 1.2em;padding:0}
";

pub fn write_html(a: &Audit, out: &mut dyn Write) -> io::Result<()> {
    let mut h = String::new();
    let v = verdict(a);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pgsnapdiff {}: {}</title><style>{CSS}</style></head><body>\n",
        a.command,
        esc(&v)
    );
    let class = if a.proven && a.complete { "ok" } else { "bad" };
    let _ = writeln!(
        h,
        "<h1>pgsnapdiff {}</h1><p><span class=\"verdict {class}\" id=\"verdict\">{}</span></p>",
        a.command,
        esc(&v)
    );
    h.push_str("<h2>What was checked</h2><table>\n");
    let _ = writeln!(
        h,
        "<tr><th>run started</th><td>{}</td></tr>",
        when(a.started)
    );
    let _ = writeln!(
        h,
        "<tr><th>tool</th><td>pgsnapdiff {}</td></tr>",
        env!("CARGO_PKG_VERSION")
    );
    for (label, value) in &a.facts {
        // Labels carry user text too: a [[case]] name.
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(label), esc(value));
    }
    let _ = writeln!(
        h,
        "<tr><th>timing</th><td>{}</td></tr></table>",
        phases_text(a.phases)
    );
    h.push_str("<table><tr><th>input</th><th>path</th><th>bytes</th><th>SHA-256</th></tr>\n");
    for i in &a.inputs {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            i.role,
            esc(&i.path.display().to_string()),
            i.size,
            i.sha256
        );
    }
    h.push_str("</table>\n");
    for (n, s) in a.sections.iter().enumerate() {
        section_html(&mut h, n, s);
    }
    h.push_str("</body></html>\n");
    out.write_all(h.as_bytes())
}

fn section_html(h: &mut String, n: usize, s: &Section) {
    let failed = s.results.iter().any(CheckResult::fails);
    let mark = if failed { "FAIL" } else { "PASS" };
    let _ = writeln!(
        h,
        "<section id=\"s{n}\"><h2><span class=\"{mark}\">{mark}</span> {}</h2><p class=\"muted\">{}</p>",
        esc(&s.title),
        phases_text(s.phases)
    );
    for line in &s.headlines {
        let _ = writeln!(
            h,
            "<p class=\"headline\"><strong>{}</strong></p>",
            esc(line)
        );
    }
    h.push_str("<h3>Checks</h3><table><tr><th></th><th>check</th><th>findings</th></tr>\n");
    for r in s.results {
        let notes: String = r
            .notes
            .iter()
            .map(|n| format!("<li>{}</li>", esc(n)))
            .collect();
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("<ul class=\"notes\">{notes}</ul>")
        };
        let st = status(r);
        let _ = writeln!(
            h,
            "<tr><td class=\"{st}\">{st}</td><td>{}{notes}</td><td class=\"n\">{}</td></tr>",
            esc(&r.name),
            r.findings.total
        );
    }
    h.push_str("</table>\n");
    if !s.output.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Migration output (last 200 lines)</h3><pre class=\"output\">{}</pre>",
            esc(s.output)
        );
    }
    h.push_str("<h3>Rows per table</h3>");
    h.push_str("<table><tr><th>table</th><th>before</th><th>after</th><th>changed</th><th>added</th><th>removed</th></tr>\n");
    for (t, c) in s.tables {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(t),
            c.rows_before,
            c.rows_after,
            c.changed,
            c.added,
            c.removed
        );
    }
    h.push_str("</table>\n");
    chart(h, s.tables);
    let _ = write!(h, "<h3>Schema changes ({})</h3>", s.schema.len());
    if !s.schema.is_empty() {
        h.push_str("<table><tr><th>op</th><th>path</th><th>value</th></tr>\n");
        for op in s.schema {
            let value = serde_json::to_value(op)
                .ok()
                .and_then(|v| v.get("value").cloned());
            let value = value.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                op_name(op),
                esc(op.path().as_str()),
                esc(&value)
            );
        }
        h.push_str("</table>\n");
    }
    for r in s.results.iter().filter(|r| !r.passed) {
        let _ = writeln!(
            h,
            "<h3><span class=\"{}\">{}</span> {}: {}</h3>",
            status(r),
            status(r),
            esc(&r.id),
            findings(r.findings.total)
        );
        h.push_str("<table><tr><th>where</th><th>what</th><th>before</th><th>expected</th><th>actual</th></tr>\n");
        for f in shown(r) {
            let before = match &f.before {
                Some(_) => json_text(&f.before),
                None => "(not known)".into(),
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                esc(&f.path),
                esc(&f.message),
                esc(&before),
                esc(&json_text(&f.expected)),
                esc(&json_text(&f.actual))
            );
        }
        h.push_str("</table>\n");
        if let Some(m) = more(r) {
            let _ = writeln!(h, "<p class=\"muted\">{}</p>", esc(&m));
        }
    }
    h.push_str("</section>\n");
}

/// Changed, added and removed rows per table as stacked horizontal bars (inline SVG).
fn chart(h: &mut String, tables: &BTreeMap<String, TableCounts>) {
    let rows: Vec<_> = tables
        .iter()
        .filter(|(_, c)| c.changed + c.added + c.removed > 0)
        .collect();
    if rows.is_empty() {
        h.push_str("<p class=\"muted\">No row changed.</p>\n");
        return;
    }
    let max = rows
        .iter()
        .map(|(_, c)| c.changed + c.added + c.removed)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (label_w, bar_w, row_h) = (260.0, 560.0, 26.0);
    let height = row_h * rows.len() as f64 + 30.0;
    let _ = writeln!(
        h,
        "<svg role=\"img\" aria-label=\"changed rows per table\" width=\"{}\" height=\"{height}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\" font-family=\"system-ui,sans-serif\">",
        label_w + bar_w + 80.0
    );
    for (i, (t, c)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 16.0,
            esc(t)
        );
        let mut x = label_w;
        for (n, color) in [
            (c.changed, "#0969da"),
            (c.added, "#1a7f37"),
            (c.removed, "#cf222e"),
        ] {
            let w = n as f64 / max * bar_w;
            if n > 0 {
                let _ = writeln!(
                    h,
                    "<rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"18\" fill=\"{color}\"/>",
                    y + 4.0
                );
            }
            x += w;
        }
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 6.0,
            y + 16.0,
            c.changed + c.added + c.removed
        );
    }
    let y = rows.len() as f64 * row_h + 16.0;
    let _ = writeln!(
        h,
        "<text x=\"{label_w}\" y=\"{y}\"><tspan fill=\"#0969da\">■ changed</tspan> \
         <tspan fill=\"#1a7f37\">■ added</tspan> <tspan fill=\"#cf222e\">■ removed</tspan></text></svg>"
    );
}

// --------------------------------------------------------------------------------- Markdown

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn write_markdown(a: &Audit, out: &mut dyn Write) -> io::Result<()> {
    let mut m = String::new();
    let _ = writeln!(m, "# pgsnapdiff {}: {}\n", a.command, verdict(a));
    m.push_str("## What was checked\n\n| | |\n| --- | --- |\n");
    let _ = writeln!(m, "| run started | {} |", when(a.started));
    let _ = writeln!(m, "| tool | pgsnapdiff {} |", env!("CARGO_PKG_VERSION"));
    for (label, value) in &a.facts {
        let _ = writeln!(m, "| {} | {} |", cell(label), cell(value));
    }
    let _ = writeln!(m, "| timing | {} |\n", phases_text(a.phases));
    m.push_str("| input | path | bytes | SHA-256 |\n| --- | --- | ---: | --- |\n");
    for i in &a.inputs {
        let _ = writeln!(
            m,
            "| {} | `{}` | {} | `{}` |",
            i.role,
            cell(&i.path.display().to_string()),
            i.size,
            i.sha256
        );
    }
    for s in &a.sections {
        let failed = s.results.iter().any(CheckResult::fails);
        let mark = if failed { "FAIL" } else { "PASS" };
        let _ = writeln!(m, "\n## {mark} {}\n\n{}\n", s.title, phases_text(s.phases));
        for line in &s.headlines {
            let _ = writeln!(m, "**{line}**\n");
        }
        m.push_str("| | check | findings |\n| --- | --- | ---: |\n");
        for r in s.results {
            let notes: String = r.notes.iter().map(|n| format!("<br>{}", cell(n))).collect();
            let _ = writeln!(
                m,
                "| {} | {}{notes} | {} |",
                status(r),
                cell(&r.name),
                r.findings.total
            );
        }
        m.push_str("\n| table | before | after | changed | added | removed |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for (t, c) in s.tables {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                cell(t),
                c.rows_before,
                c.rows_after,
                c.changed,
                c.added,
                c.removed
            );
        }
        let _ = writeln!(m, "\nSchema changes: {}\n", s.schema.len());
        for op in s.schema {
            let _ = writeln!(m, "- `{} {}`", op_name(op), op.path());
        }
        if !s.output.is_empty() {
            // Indented, not fenced: the output may hold fences of its own.
            m.push_str("\nMigration output (last 200 lines):\n\n");
            for line in s.output.lines() {
                let _ = writeln!(m, "    {line}");
            }
        }
        for r in s.results.iter().filter(|r| !r.passed) {
            let _ = writeln!(
                m,
                "\n### {} {}: {}\n\n| where | what | before | expected | actual |\n| --- | --- | --- | --- | --- |",
                status(r),
                r.id,
                findings(r.findings.total)
            );
            for f in shown(r) {
                let short = |v: &Option<Value>| match v {
                    Some(v) => format!("`{}`", cell(&v.to_string())),
                    None => "(nothing)".into(),
                };
                let _ = writeln!(
                    m,
                    "| `{}` | {} | {} | {} | {} |",
                    cell(&f.path),
                    cell(&f.message),
                    short(&f.before),
                    short(&f.expected),
                    short(&f.actual)
                );
            }
            if let Some(more) = more(r) {
                let _ = writeln!(m, "\n{more}");
            }
        }
    }
    out.write_all(m.as_bytes())
}

/// Write the report to `path` (atomically), in the format its extension names.
pub fn write(a: &Audit, path: &Path) -> Result<()> {
    let kind = Kind::of(path)?;
    let mut file = super::AtomicFile::create(path)?;
    match kind {
        Kind::Html => write_html(a, &mut file),
        Kind::Markdown => write_markdown(a, &mut file),
    }
    .context(format!("writing {}", path.display()))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::{CheckResult, Finding, Findings};

    /// Every piece of user text (a `[[case]]` name in a fact's label and a section title, a
    /// table name, a check name, a finding) reaches the HTML escaped.
    #[test]
    fn user_text_is_escaped_everywhere_in_the_html() {
        let evil = "<img src=x onerror=alert(1)>";
        let mut findings = Findings::default();
        findings
            .push(Finding::plain(
                "data-lost",
                evil,
                format!("/schema/tables/{evil}"),
            ))
            .unwrap();
        let results = [CheckResult::new("data-lost", evil.into(), findings)];
        let tables: BTreeMap<String, TableCounts> =
            [(evil.to_string(), TableCounts::default())].into();
        let audit = Audit {
            command: "check",
            proven: false,
            complete: true,
            started: SystemTime::UNIX_EPOCH,
            facts: vec![(format!("dump ({evil})"), evil.into())],
            inputs: Vec::new(),
            phases: &[],
            sections: vec![Section {
                title: format!("case {evil}"),
                headlines: vec![format!("lost {evil}")],
                phases: &[],
                tables: &tables,
                schema: &[],
                output: evil,
                results: &results,
            }],
        };
        let mut html = Vec::new();
        write_html(&audit, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("<h3>Migration output (last 200 lines)</h3>"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
