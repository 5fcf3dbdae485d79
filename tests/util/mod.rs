//! Test helpers: run the real binary against the real embedded PostgreSQL, in a clean
//! environment, and check after every run that it left no temp dir and no process behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

pub fn sample_dump(name: &str) -> PathBuf {
    fixture(&format!("onboarding/dumps/{name}"))
}

pub fn downgrade_sql() -> PathBuf {
    fixture("onboarding/downgrade.sql")
}

/// The sample downgrade's intended loss, acknowledged: the 9-state `agent_history` column
/// (it holds data in every row) goes with the downgrade.
pub const SAMPLE_LOSS: [&str; 2] = ["--allow-lost", "public.onboarding_states.agent_history"];

pub fn expected_patch() -> PathBuf {
    repo().join("snapshots/onboarding.patch.json")
}

/// The sample's Alembic project.
pub fn alembic_dir() -> PathBuf {
    fixture("onboarding/alembic")
}

/// The virtualenv with Alembic, SQLAlchemy and asyncpg: installed by `scripts/setup-python`
/// on first use (once per test run), never skipped.
pub fn venv() -> &'static Path {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new(repo().join("scripts/setup-python"))
            .output()
            .expect("run scripts/setup-python");
        assert!(
            out.status.success(),
            "scripts/setup-python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// The Django test project (`tests/fixtures/django`).
pub fn django_dir() -> PathBuf {
    fixture("django")
}

/// `python manage.py ARGS` of the Django test project, with the virtualenv's Python.
pub fn django(args: &str) -> String {
    format!(
        "{} {} {args}",
        venv().join("bin/python").display(),
        django_dir().join("manage.py").display()
    )
}

/// `ALEMBIC ARGS`, with the virtualenv's alembic.
pub fn alembic(args: &str) -> String {
    format!("{} {args}", venv().join("bin/alembic").display())
}

/// The system's PostgreSQL (Debian's 15 here), for tests that need an older server.
pub fn system_pg_bin() -> PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config on PATH (Debian's postgresql)");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit {} (want {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// stdout contains `needle` (shown whole when it does not).
    pub fn assert_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    /// The one-line error message (exit 2 runs).
    pub fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("pgsnapdiff: error: "))
            .unwrap_or_else(|| panic!("no error line in stderr:\n{}", self.stderr))
    }

    pub fn assert_error(&self, needles: &[&str]) -> &Self {
        self.assert_code(2);
        let line = self.error_line();
        for needle in needles {
            assert!(line.contains(needle), "error line lacks {needle:?}: {line}");
        }
        self
    }
}

/// One isolated invocation context: its own work dir (for the cluster) and its own cwd.
pub struct Ctx {
    pub work: tempfile::TempDir,
    pub cwd: tempfile::TempDir,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx {
            work: tempfile::Builder::new()
                .prefix("pgsnapdiff-test-work-")
                .tempdir()
                .unwrap(),
            cwd: tempfile::Builder::new()
                .prefix("pgsnapdiff-test-cwd-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsnapdiff"));
        cmd.args(args).current_dir(self.cwd.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("PGSNAPDIFF_") || key.starts_with("PG") || key == "DATABASE_URL" {
                cmd.env_remove(key);
            }
        }
        cmd.env("PGSNAPDIFF_WORK_DIR", self.work.path())
            .env("PGSNAPDIFF_OFFLINE", "1")
            .env_remove("CI")
            .env_remove("NO_COLOR");
        cmd
    }

    /// Run to completion, then check nothing was left behind.
    pub fn run(&self, args: &[&str]) -> Run {
        self.finish(&mut self.command(args))
    }

    /// Run a command made with `command` (and given more environment), to completion; then
    /// check nothing was left behind.
    pub fn finish(&self, cmd: &mut Command) -> Run {
        let out = cmd.output().expect("run pgsnapdiff");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.assert_clean();
        run
    }

    /// The work dir is empty and no process mentions it (postgres, psql, pg_restore).
    pub fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.work.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "temp files left behind: {left:?}");
        let procs = processes_mentioning(self.work.path());
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.cwd.path().join(name)
    }
}

/// Live processes: (pid, command line with NULs as spaces).
fn processes() -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
}

/// Live processes whose command line starts with `prefix` (e.g. the downgrade's own `sleep`).
pub fn processes_running(prefix: &str) -> Vec<String> {
    let shell = format!("sh -c {prefix}");
    processes()
        .map(|(_, cmd)| cmd)
        .filter(|cmd| cmd.starts_with(prefix) || cmd.starts_with(&shell))
        .collect()
}

/// Command lines of live processes that contain `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    processes()
        .map(|(_, cmd)| cmd)
        .filter(|cmd| cmd.contains(&needle))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn descends_from(mut pid: u32, root: u32) -> bool {
    while let Some(parent) = parent_of(pid) {
        if parent == root {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// Is a descendant of `root` running whose command line satisfies `matches`?
pub fn descendant_matching(root: u32, matches: impl Fn(&str) -> bool) -> bool {
    processes().any(|(pid, cmd)| matches(&cmd) && descends_from(pid, root))
}

/// Is a descendant of `root` running whose command line starts with `prefix`?
pub fn descendant_running(root: u32, prefix: &str) -> bool {
    descendant_matching(root, |cmd| cmd.starts_with(prefix))
}

/// Wait up to `secs` for `cond`.
pub fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn tree_bytes(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            out.extend(tree_bytes(&e.path()));
        }
    } else {
        out.push((path.to_path_buf(), std::fs::read(path).unwrap()));
    }
    out
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Debian's chromium, for checking HTML reports in a real browser. Never skipped: `scripts/test`
/// installs it (`apt-get install chromium`).
pub fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| Path::new("/usr/bin").join(name))
        .find(|p| p.exists())
        .expect("chromium is needed to check HTML reports: apt-get install chromium (scripts/test does)")
}

/// Open `html` in headless chromium with the network disabled: the DOM it built, and a
/// screenshot at `png`.
pub fn render_html(html: &Path, png: &Path, profile: &Path) -> String {
    let run = |extra: &[&str]| {
        let out = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                // Any host lookup fails: a report that needs the network shows it.
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--window-size=1200,2400",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[&format!("--screenshot={}", png.display())]);
    run(&["--dump-dom"])
}

/// A plain PostgreSQL server that the test starts itself (the system's, Debian 15), not through
/// pgsnapdiff: it stands in for the user's own database, which a migration must never reach.
/// Trust authentication on 127.0.0.1; stopped and removed on drop.
pub struct ScratchServer {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

impl ScratchServer {
    /// `Command` for a server binary, as the `postgres` user when we are root.
    fn as_server_user(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if nix_is_root() {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
                .arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pgsnapdiff-test-scratch-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = ScratchServer {
            dir,
            port,
            bin: system_pg_bin(),
        };
        if nix_is_root() {
            let ok = Command::new("chown")
                .args(["postgres:", s(server.dir.path())])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = server.dir.path().join("data");
        let out = server
            .as_server_user("initdb")
            .args([
                "-D",
                s(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            s(server.dir.path())
        );
        let out = server
            .as_server_user("pg_ctl")
            .args([
                "-D",
                s(&data),
                "-l",
                s(&server.dir.path().join("log")),
                "-w",
            ])
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {out:?}");
        server
    }

    pub fn url(&self, db: &str) -> String {
        self.url_as("postgres", db)
    }

    /// The URL of `db` as `user` (trust authentication: no password).
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// psql on `db`, one value out.
    pub fn query(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A new database `db` with `dump` (custom format) restored into it.
    pub fn restore(&self, db: &str, dump: &Path) {
        self.query("postgres", &format!("CREATE DATABASE {db}"));
        let out = Command::new(self.bin.join("pg_restore"))
            .args(["--no-owner", "--exit-on-error", "-d", &self.url(db)])
            .arg(dump)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_restore: {out:?}");
    }
}

impl ScratchServer {
    /// `pg_dump -Fc` of `db` into `path`.
    pub fn dump(&self, db: &str, path: &Path) {
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["-Fc", "-f", s(path), "-d", &self.url(db)])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump: {out:?}");
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .as_server_user("pg_ctl")
            .args(["-D", s(&data), "-m", "immediate", "stop"])
            .output();
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Copy a directory tree (a fixture project a test changes).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The virtualenv first on PATH, as a user with it activated has it: `python3` and `alembic`
/// are its own.
pub fn activated(cmd: &mut Command) -> &mut Command {
    let path = format!(
        "{}:{}",
        venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
}
