//! The terminal: progress lines, notes and error lines on stderr, and whether stdout gets
//! color. Ground floor: every module may say something; nothing here knows what.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no notes, no progress. `--verbose`: progress even when stderr is not a terminal.
pub fn set_verbosity(quiet: bool, verbose: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose && !quiet, Ordering::Relaxed);
}

/// A progress line on stderr (restoring, running the downgrade, ...): shown on a terminal, or
/// with --verbose; silent in CI logs and under --quiet.
pub fn progress(message: impl AsRef<str>) {
    let shown = VERBOSE.load(Ordering::Relaxed)
        || (!QUIET.load(Ordering::Relaxed) && io::stderr().is_terminal());
    if shown {
        stderr_line(&format!("pgsnapdiff: {}", message.as_ref()));
    }
}

/// One line on stderr. A closed stderr (`... 2>&1 | head`) is not worth a panic: the line is
/// dropped, unlike `eprintln!`, which panics (exit 101).
pub fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A note on stderr: something the user should know (a fallback taken, a file removed, a
/// weak check); shown unless --quiet.
pub fn note(message: impl AsRef<str>) {
    if !QUIET.load(Ordering::Relaxed) {
        stderr_line(&format!("pgsnapdiff: note: {}", message.as_ref()));
    }
}

/// A migration command's own output, shown on stderr with --verbose only, each line marked
/// with `| ` so it cannot pass for pgsnapdiff's.
pub fn detail(output: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        for line in output.lines() {
            stderr_line(&format!("  | {line}"));
        }
    }
}

/// Color on stdout: a terminal, and NO_COLOR unset (https://no-color.org).
pub fn color_stdout() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// --verbose: progress lines everywhere, unchanged tables listed one by one.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// The styles of the terminal output (anstyle): verdict labels and diff lines.
pub mod style {
    use anstyle::{AnsiColor, Style};

    pub const PASS: Style = AnsiColor::Green.on_default();
    pub const FAIL: Style = AnsiColor::Red.on_default().bold();
    pub const WARN: Style = AnsiColor::Yellow.on_default();
    pub const ADDED: Style = AnsiColor::Green.on_default();
    pub const REMOVED: Style = AnsiColor::Red.on_default();
    pub const HUNK: Style = AnsiColor::Cyan.on_default();
}

/// `text` in `style` when `color` (stdout is a terminal without NO_COLOR), else as it is.
pub fn paint(text: &str, style: anstyle::Style, color: bool) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}
