//! CI outputs: JUnit XML (`--format junit`) and GitHub workflow annotations (`--format
//! github`).
//!
//! JUnit: one `<testsuite>` per diff (check: one; walk: one per revision), one `<testcase>`
//! per check; a failing check is a `<failure>` whose text lists its first findings; a warning
//! passes, with its findings in `<system-out>`. Valid against the Jenkins JUnit schema
//! (tests/fixtures/junit-10.xsd). GitHub: one `::error` (or `::warning`) line per finding, up
//! to 20 per check, then the human report.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use crate::expect::{CheckResult, Finding};

/// Findings per check in a JUnit failure text or as GitHub annotations.
const LIST: usize = 20;

/// What stdout gets (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
    Junit,
    Github,
}

/// stdout in a format other than JSON: JUnit from `suites`; GitHub annotations from `suites`,
/// then the human report; or the human report alone.
pub fn write_text(
    out: &mut dyn Write,
    format: OutputFormat,
    suites: &[Suite],
    human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    match format {
        OutputFormat::Junit => write_junit(out, suites),
        OutputFormat::Github => {
            write_github(out, suites)?;
            human(out)
        }
        OutputFormat::Human | OutputFormat::Json => human(out),
    }
}

/// One suite per case (name, phases, checks), then the run-level checks as `baselines`.
pub fn suites<'a>(
    cases: impl Iterator<Item = (String, &'a [(&'static str, Duration)], &'a [CheckResult])>,
    run_results: &'a [CheckResult],
) -> Vec<Suite<'a>> {
    let mut suites: Vec<Suite> = cases
        .map(|(name, phases, results)| Suite {
            name,
            time: phases.iter().map(|(_, d)| *d).sum(),
            results,
        })
        .collect();
    if !run_results.is_empty() {
        suites.push(Suite {
            name: "baselines".into(),
            time: Duration::ZERO,
            results: run_results,
        });
    }
    suites
}

pub struct Suite<'a> {
    pub name: String,
    pub time: Duration,
    pub results: &'a [CheckResult],
}

/// XML text or attribute value: escaped, and without the characters XML 1.0 forbids (data
/// from a dump can hold any of them).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn line(f: &Finding) -> String {
    let show = |v: &Option<serde_json::Value>| match v {
        Some(v) => v.to_string(),
        None => "(nothing)".into(),
    };
    if f.expected.is_none() && f.actual.is_none() {
        format!("{}: {}", f.path, f.message)
    } else {
        format!(
            "{}: {} (expected {}, actual {})",
            f.path,
            f.message,
            show(&f.expected),
            show(&f.actual)
        )
    }
}

fn listing(r: &CheckResult) -> String {
    let mut text = String::new();
    for f in r.findings.shown.iter().take(LIST) {
        let _ = writeln!(text, "{}", line(f));
    }
    let listed = r.findings.shown.len().min(LIST) as u64;
    if r.findings.total > listed {
        let _ = writeln!(text, "... and {} more", r.findings.total - listed);
    }
    text
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

pub fn write_junit(out: &mut dyn Write, suites: &[Suite]) -> io::Result<()> {
    let tests: usize = suites.iter().map(|s| s.results.len()).sum();
    let failures: usize = suites
        .iter()
        .map(|s| s.results.iter().filter(|r| r.fails()).count())
        .sum();
    let time: Duration = suites.iter().map(|s| s.time).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"pgsnapdiff\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        seconds(time)
    );
    for suite in suites {
        let failed = suite.results.iter().filter(|r| r.fails()).count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{}\">",
            xml(&suite.name),
            suite.results.len(),
            seconds(suite.time)
        );
        for r in suite.results {
            let _ = write!(
                x,
                "    <testcase classname=\"pgsnapdiff.{}\" name=\"{}\"",
                xml(&suite.name),
                xml(&r.id)
            );
            if r.passed && r.notes.is_empty() {
                x.push_str("/>\n");
                continue;
            }
            x.push_str(">\n");
            let notes: String = r.notes.iter().map(|n| format!("{n}\n")).collect();
            if r.fails() {
                let s = if r.findings.total == 1 { "" } else { "s" };
                let _ = writeln!(
                    x,
                    "      <failure type=\"{}\" message=\"{}: {} finding{s}\">{}</failure>",
                    xml(&r.id),
                    xml(&r.name),
                    r.findings.total,
                    xml(&format!("{notes}{}", listing(r)))
                );
            } else {
                let _ = writeln!(
                    x,
                    "      <system-out>{}</system-out>",
                    xml(&format!("{notes}{}", listing(r)))
                );
            }
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    out.write_all(x.as_bytes())
}

/// A workflow-command value: `%`, CR and LF escaped (and in properties `:` and `,`).
fn gh(text: &str, property: bool) -> String {
    let mut s = text
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        s = s.replace(':', "%3A").replace(',', "%2C");
    }
    s
}

pub fn write_github(out: &mut dyn Write, suites: &[Suite]) -> io::Result<()> {
    for suite in suites {
        for r in suite.results.iter().filter(|r| !r.passed) {
            let level = if r.fails() { "error" } else { "warning" };
            let title = gh(&format!("pgsnapdiff {} ({})", r.id, suite.name), true);
            for f in r.findings.shown.iter().take(LIST) {
                writeln!(out, "::{level} title={title}::{}", gh(&line(f), false))?;
            }
            let listed = r.findings.shown.len().min(LIST) as u64;
            if r.findings.total > listed {
                let more = format!("... and {} more findings", r.findings.total - listed);
                writeln!(out, "::{level} title={title}::{}", gh(&more, false))?;
            }
        }
    }
    Ok(())
}
