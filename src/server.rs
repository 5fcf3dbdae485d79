//! The embedded PostgreSQL server's life: find binaries, initdb, start, connect, stop, clean up.
//!
//! The only module that knows `postgresql_embedded`. That crate resolves and downloads binaries
//! (its theseus cache layout and release archives); the lifecycle is ours, because its
//! `setup`/`start` run `initdb`/`pg_ctl` as the current user and PostgreSQL refuses root. When
//! the tool runs as root, `initdb` and `postgres` run as the `postgres` user (else `nobody`); the
//! client tools and the downgrade command keep the caller's identity.
//!
//! Invariants:
//! - a `Server` value owns one temp dir and one postmaster; dropping it stops the postmaster
//!   (SIGINT, then SIGKILL) and removes the dir, on every path including panics;
//! - the postmaster gets `PR_SET_PDEATHSIG`, so it shuts down even if the tool is killed;
//! - it listens on 127.0.0.1 and a private socket dir only, with a random scram password;
//! - besides the superuser there is one unprivileged role, `OWNER_ROLE`, for untrusted work.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::{Context, Error, Result, db_message};

/// Disposable-server settings: durability off (the data is thrown away), no autovacuum noise.
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("autovacuum", "off"),
    ("maintenance_work_mem", "512MB"),
    ("listen_addresses", "127.0.0.1"),
    ("log_min_messages", "warning"),
];

/// The cluster's bootstrap superuser. Not `postgres`, so that dumps saying `OWNER TO postgres`
/// get an ordinary role of that name (see `restore`).
pub const SUPERUSER: &str = "pgsnapdiff";
/// The unprivileged role that owns the working database: the dump is restored, and the
/// downgrade runs, as this role (README "Security model").
pub const OWNER_ROLE: &str = "pgsnapdiff_owner";

/// A PostgreSQL installation: the directory holding `postgres`, `initdb`, `psql`, `pg_restore`.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub bin_dir: PathBuf,
    /// As printed by `postgres --version`, e.g. "16.15".
    pub version: String,
    pub major: u32,
    /// Where they were found, for messages: "--pg-bin", "cache", "download", "system".
    pub origin: &'static str,
}

impl Binaries {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

#[derive(Debug, Clone)]
pub struct BinaryOptions {
    /// `--pg-bin`: use exactly this directory.
    pub pg_bin: Option<PathBuf>,
    /// `--pg-version`: "16", "16.4" or "16.4.0".
    pub pg_version: Option<String>,
    /// Skip the download step.
    pub offline: bool,
    pub download_timeout: Duration,
    /// Lowest acceptable major version (the dump's pg_dump version), when no version is forced.
    pub min_major: Option<u32>,
}

/// Where downloaded and staged binaries live: `$PGSNAPDIFF_PG_CACHE`; else, as root,
/// `/var/cache/pgsnapdiff/postgresql` (root's home is unreadable by the server user); else
/// postgresql_embedded's own cache `~/.theseus/postgresql`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGSNAPDIFF_PG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if Uid::effective().is_root() {
        return PathBuf::from("/var/cache/pgsnapdiff/postgresql");
    }
    std::env::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".theseus/postgresql")
}

/// Where initdb'd template clusters are kept: `$PGSNAPDIFF_CLUSTER_CACHE`; else, as root,
/// `/var/cache/pgsnapdiff/clusters`; else `~/.cache/pgsnapdiff/clusters`.
pub fn cluster_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGSNAPDIFF_CLUSTER_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if Uid::effective().is_root() {
        return PathBuf::from("/var/cache/pgsnapdiff/clusters");
    }
    std::env::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/pgsnapdiff/clusters")
}

/// Find binaries in the documented order: `--pg-bin`, the cache, a download, the system's.
pub async fn resolve_binaries(opts: &BinaryOptions) -> Result<Binaries> {
    if let Some(dir) = &opts.pg_bin {
        let bins = probe(dir, "--pg-bin").ok_or_else(|| {
            Error::Binaries(format!(
                "--pg-bin {}: no runnable `postgres` there; point it at the directory holding postgres, initdb, psql and pg_restore",
                dir.display()
            ))
        })?;
        check_version(&bins, opts)?;
        return Ok(bins);
    }
    let wanted = |b: &Binaries| version_ok(b, opts);

    let cache = cache_dir();
    if let Some(found) = best(installed_in(&cache, "cache"), wanted) {
        return Ok(found);
    }
    let mut download_problem = None;
    if !opts.offline {
        match download(opts, &cache).await {
            Ok(bins) if wanted(&bins) => return Ok(bins),
            Ok(bins) => {
                download_problem = Some(format!("downloaded {} does not fit", bins.version))
            }
            Err(problem) => download_problem = Some(problem),
        }
    }
    if let Some(found) = best(system_binaries(), wanted) {
        if let Some(problem) = download_problem {
            crate::console::note(format!(
                "no PostgreSQL download ({problem}); using the system's {} in {}",
                found.version,
                found.bin_dir.display()
            ));
        }
        return Ok(found);
    }
    let need = match (&opts.pg_version, opts.min_major) {
        (Some(v), _) => format!("PostgreSQL {v}"),
        (None, Some(m)) => format!("PostgreSQL {m} or newer (the dump's pg_dump version)"),
        (None, None) => "PostgreSQL".to_string(),
    };
    let major = opts
        .pg_version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .or(opts.min_major.map(|m| m.to_string()))
        .unwrap_or_else(|| "16".to_string());
    Err(Error::Binaries(format!(
        "no {need} binaries found in {} or the system{}; stage them offline with `scripts/stage-postgres {major}` or pass --pg-bin DIR",
        cache.display(),
        download_problem
            .map(|p| format!(", and the download failed ({p})"))
            .unwrap_or_default()
    )))
}

fn version_ok(bins: &Binaries, opts: &BinaryOptions) -> bool {
    match &opts.pg_version {
        Some(want) => version_matches(&bins.version, want),
        None => opts.min_major.is_none_or(|m| bins.major >= m),
    }
}

/// An explicit `--pg-bin` is used as given; only a `--pg-version` that contradicts it is an
/// error here (whether the dump fits is `restore::check_compatible`'s call, with a better message).
fn check_version(bins: &Binaries, opts: &BinaryOptions) -> Result<()> {
    let Some(want) = &opts.pg_version else {
        return Ok(());
    };
    if version_matches(&bins.version, want) {
        return Ok(());
    }
    Err(Error::Binaries(format!(
        "--pg-bin {} holds PostgreSQL {}, but {want} is needed; pass the matching directory or drop --pg-bin",
        bins.bin_dir.display(),
        bins.version
    )))
}

/// "16" matches 16.x, "16.4" matches 16.4 and 16.4.x: compare the given components only.
fn version_matches(have: &str, want: &str) -> bool {
    let have: Vec<&str> = have.split('.').collect();
    want.split('.')
        .enumerate()
        .all(|(i, part)| have.get(i).is_some_and(|h| *h == part))
}

fn best(candidates: Vec<Binaries>, wanted: impl Fn(&Binaries) -> bool) -> Option<Binaries> {
    candidates
        .into_iter()
        .filter(|b| wanted(b))
        .max_by_key(|b| version_key(&b.version))
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// `dir/bin/postgres --version` → Binaries, or None when it does not run.
fn probe(bin_dir: &Path, origin: &'static str) -> Option<Binaries> {
    let out = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "postgres (PostgreSQL) 16.15" or "... 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?.to_string();
    let major = version.split('.').next()?.parse().ok()?;
    for tool in ["initdb", "psql", "pg_restore"] {
        if !bin_dir.join(tool).exists() {
            return None;
        }
    }
    Some(Binaries {
        bin_dir: bin_dir.to_path_buf(),
        version,
        major,
        origin,
    })
}

/// Installations below a cache dir: `<dir>/<semver>/bin`.
fn installed_in(dir: &Path, origin: &'static str) -> Vec<Binaries> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .filter_map(|e| probe(&e.path().join("bin"), origin))
        .collect()
}

fn system_binaries() -> Vec<Binaries> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        && out.status.success()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        dirs.extend(entries.flatten().map(|e| e.path().join("bin")));
    }
    dirs.sort();
    dirs.dedup();
    dirs.iter().filter_map(|d| probe(d, "system")).collect()
}

/// postgresql_embedded's normal download into the cache, bounded in time (its HTTP client has
/// no timeout of its own). Returns a one-line reason on failure.
async fn download(opts: &BinaryOptions, cache: &Path) -> std::result::Result<Binaries, String> {
    use postgresql_embedded::{PostgreSQL, Settings, VersionReq};

    let req = match &opts.pg_version {
        Some(v) if v.split('.').count() >= 3 => format!("={v}"),
        Some(v) => format!("~{v}"),
        None => match opts.min_major {
            Some(m) => format!(">={m}"),
            None => "*".to_string(),
        },
    };
    let version = VersionReq::parse(&req).map_err(|e| format!("bad version {req}: {e}"))?;
    fs::create_dir_all(cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let _ = fs::set_permissions(cache, fs::Permissions::from_mode(0o755));

    // `setup()` installs, then runs initdb unless the data dir looks initialized. We only want
    // the install (initdb is ours, see the module doc), so hand it a data dir that looks done.
    let marker = tempfile::Builder::new()
        .prefix("pgsnapdiff-install-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    fs::write(marker.path().join("postgresql.conf"), b"").map_err(|e| e.to_string())?;

    let mut settings = Settings::new();
    // Settings::new() creates two temp dirs of its own; remove them (they are empty).
    let _ = fs::remove_dir(&settings.data_dir);
    if let Some(parent) = settings.password_file.parent() {
        let _ = fs::remove_dir(parent);
    }
    settings.version = version;
    settings.installation_dir = cache.to_path_buf();
    settings.data_dir = marker.path().to_path_buf();
    settings.password_file = marker.path().join("pwfile");
    settings.temporary = false;
    let mut pg = PostgreSQL::new(settings);
    match tokio::time::timeout(opts.download_timeout, pg.setup()).await {
        Err(_) => {
            return Err(format!(
                "no answer within {}s",
                opts.download_timeout.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(())) => {}
    }
    let dir = pg.settings().installation_dir.join("bin");
    // Binaries under a cache must be usable by the unprivileged server user.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&pg.settings().installation_dir)
        .status();
    probe(&dir, "download").ok_or_else(|| format!("nothing runnable in {}", dir.display()))
}

/// Connection parameters of the running server.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl ConnInfo {
    /// The same server, as another role (all roles share the run's random password).
    pub fn as_user(&self, user: &str) -> ConnInfo {
        ConnInfo {
            user: user.to_string(),
            ..self.clone()
        }
    }

    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(dbname)
            .application_name("pgsnapdiff");
        cfg
    }

    /// A libpq connection string, for psql and pg_restore `-d`.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.host, self.port, self.user, dbname
        )
    }

    /// libpq environment for client tools: the password never appears on a command line.
    pub fn libpq_env(&self, dbname: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", dbname.to_string()),
        ]
    }

    /// `scheme://user:password@host:port/dbname`. The password is alphanumeric: no escaping.
    pub fn url(&self, scheme: &str, dbname: &str) -> String {
        format!(
            "{scheme}://{}:{}@{}:{}/{dbname}",
            self.user, self.password, self.host, self.port
        )
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Parent of the temp dir holding the cluster; default: see `default_work_dir`.
    pub work_dir: Option<PathBuf>,
    /// Bytes the cluster may need (an estimate from the dump's size).
    pub space_needed: u64,
}

/// Where the cluster lives by default: `/dev/shm` (memory-backed: initdb 0.4 s instead of
/// 1.2 s, faster restores, measured in scripts/bench) when it is writable and has room for
/// `space_needed` plus 1 GiB to spare; else the system temp dir. Containers often give
/// /dev/shm only 64 MiB, hence the check.
fn default_work_dir(space_needed: u64) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let room = nix::sys::statvfs::statvfs(shm)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0);
    let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
    if writable && room >= space_needed.saturating_add(1 << 30) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A running throwaway PostgreSQL.
pub struct Server {
    child: Option<Child>,
    conn: ConnInfo,
    pub binaries: Binaries,
    /// Declared last: removed after the postmaster has stopped.
    dir: tempfile::TempDir,
}

/// initdb into `data` (an existing, empty dir owned by the server user). Local socket: trust
/// (see `Server::spawn_postmaster`); TCP: scram-sha-256 with a password set at each start.
fn initdb(binaries: &Binaries, user: &Option<User>, data: &Path, cwd: &Path) -> Result<()> {
    let pwfile = cwd.join(format!("pwfile-{}", random_password()));
    fs::write(&pwfile, random_password()).context("writing password file")?;
    own_by(&pwfile, user, 0o600)?;
    let mut cmd = server_command(binaries.tool("initdb"), user, cwd);
    cmd.arg("-D")
        .arg(data)
        .args([
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .args(["-E", "UTF8", "--locale=C", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let out = cmd.output();
    let _ = fs::remove_file(&pwfile);
    let out = out.map_err(|e| {
        Error::Server(format!(
            "cannot run {}: {e}",
            binaries.tool("initdb").display()
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Server(format!(
            "initdb failed: {}",
            crate::error::tail(&String::from_utf8_lossy(&out.stderr), 3).replace('\n', " | ")
        )));
    }
    Ok(())
}

/// A cluster initdb'd once per binaries and server user, copied by every run (initdb takes
/// 0.4-1.2 s; the copy tens of milliseconds). Kept beside the binaries cache, in
/// `clusters/<version>-<uid>-<hash of the bin dir>`; created under a temp name and renamed, so
/// concurrent runs never see half of one.
fn cached_cluster(
    binaries: &Binaries,
    user: &Option<User>,
) -> std::result::Result<PathBuf, String> {
    let uid = user
        .as_ref()
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| Uid::effective().as_raw());
    let mut hash: u64 = 0xcbf29ce484222325; // FNV-1a: a stable name, not security
    for b in binaries.bin_dir.to_string_lossy().bytes() {
        hash = (hash ^ b as u64).wrapping_mul(0x100000001b3);
    }
    let root = cluster_cache_dir();
    let template = root.join(format!("{}-{uid}-{:08x}", binaries.version, hash as u32));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o755));
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&root)
        .map_err(|e| format!("cannot write in {}: {e}", root.display()))?;
    let data = staging.path().join("data");
    fs::create_dir(&data).map_err(|e| e.to_string())?;
    own_by(&data, user, 0o700).map_err(|e| e.to_string())?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o711))
        .map_err(|e| e.to_string())?;
    initdb(binaries, user, &data, staging.path()).map_err(|e| e.to_string())?;
    // Another run may have won the race; either template is as good.
    if fs::rename(&data, &template).is_err() && !template.join("PG_VERSION").is_file() {
        return Err(format!("cannot create {}", template.display()));
    }
    Ok(template)
}

/// Copy a template cluster to `data`, keeping owners and modes (cp -a).
fn copy_cluster(template: &Path, data: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(data)
        .output()
        .map_err(|e| Error::Server(format!("cannot run cp: {e}")))?;
    if !out.status.success() {
        return Err(Error::Server(format!(
            "copying the cached cluster {} failed: {}",
            template.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Who runs `initdb` and `postgres`: ourselves, or an unprivileged user when we are root.
fn server_user() -> Result<Option<User>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            return Ok(Some(user));
        }
    }
    Err(Error::Server(
        "running as root, and there is neither a `postgres` nor a `nobody` user to run the server as; create one (useradd -r postgres) or run as a normal user".into(),
    ))
}

fn server_command(program: PathBuf, user: &Option<User>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).stdin(Stdio::null());
    crate::process::drop_inherited_pg_env(&mut cmd);
    if let Some(user) = user {
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        // Drop root's supplementary groups, then gid, then uid, in that order (setgroups needs
        // privilege). std's own `uid()`/`gid()` would change ids before this hook could run.
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

fn own_by(path: &Path, user: &Option<User>, mode: u32) -> Result<()> {
    if let Some(user) = user {
        chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .context(format!("chown {}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .context(format!("chmod {}", path.display()))
}

/// 32 random alphanumeric characters: passwords, psql's \restrict key.
pub(crate) fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

/// Identifies the process that owns a run's temp dir: pid and start time (a reused pid has
/// another start time).
fn process_identity(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime), counted after the command name, which may contain spaces.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

const OWNER_FILE: &str = "owner.pid";

fn write_owner(dir: &Path) -> Result<()> {
    let me = process_identity(std::process::id()).unwrap_or_default();
    fs::write(dir.join(OWNER_FILE), me).context("writing owner.pid")
}

/// Remove the temp dirs of runs that died without cleaning up (kill -9, power loss): those
/// whose owner process is gone. A live run's dir is never touched; a postmaster still running
/// in a dead run's dir is stopped first. Returns how many were removed.
fn remove_stale_runs(parent: &Path) -> usize {
    let Ok(entries) = fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("pgsnapdiff-") {
            continue;
        }
        let Ok(owner) = fs::read_to_string(path.join(OWNER_FILE)) else {
            continue; // not ours, or just being created
        };
        let alive = owner
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .and_then(process_identity)
            .is_some_and(|now| now == owner.trim());
        if alive {
            continue;
        }
        if let Some(pid) = fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*path.to_string_lossy()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Server {
    /// initdb a fresh cluster in a temp dir and start it.
    pub async fn start(binaries: Binaries, opts: &ServerOptions) -> Result<Server> {
        let user = server_user()?;
        let parent = match &opts.work_dir {
            Some(dir) => dir.clone(),
            None => default_work_dir(opts.space_needed),
        };
        let stale = remove_stale_runs(&parent);
        if stale > 0 {
            crate::console::note(format!(
                "removed the files of {stale} earlier run(s) that died without cleaning up"
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("pgsnapdiff-")
            .tempdir_in(&parent)
            .map_err(|e| {
                Error::io(
                    format!(
                        "creating a temp dir in {} (set --work-dir to a writable directory)",
                        parent.display()
                    ),
                    e,
                )
            })?;
        write_owner(dir.path())?;
        // The server user must traverse the top dir; only it can read what is inside.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711))
            .context("chmod temp dir")?;
        let data = dir.path().join("data");
        let sockets = dir.path().join("run");
        fs::create_dir(&sockets).context("mkdir run")?;
        own_by(&sockets, &user, 0o700)?;
        match cached_cluster(&binaries, &user) {
            Ok(template) => copy_cluster(&template, &data)?,
            Err(reason) => {
                crate::console::note(format!("no cached cluster ({reason}); running initdb"));
                fs::create_dir(&data).context("mkdir data")?;
                own_by(&data, &user, 0o700)?;
                initdb(&binaries, &user, &data, dir.path())?;
            }
        }
        let password = random_password();

        let mut server = Server {
            child: None,
            conn: ConnInfo {
                host: "127.0.0.1".into(),
                port: 0,
                user: SUPERUSER.into(),
                password,
            },
            binaries,
            dir,
        };
        // The port is free when probed but may be taken before postgres binds it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            match server.spawn_postmaster(&user, &data, &sockets).await {
                Ok(()) => return Ok(server),
                Err(StartError::PortTaken(log)) => last = log,
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(Error::Server(format!(
            "could not bind a port on 127.0.0.1 after 5 tries: {last}"
        )))
    }

    async fn spawn_postmaster(
        &mut self,
        user: &Option<User>,
        data: &Path,
        sockets: &Path,
    ) -> std::result::Result<(), StartError> {
        let port = free_port().map_err(StartError::Fatal)?;
        let log_path = self.dir.path().join("server.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| StartError::Fatal(Error::io("creating server log", e)))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(Error::io("server log", e)))?;
        let mut cmd = server_command(self.binaries.tool("postgres"), user, self.dir.path());
        cmd.arg("-D").arg(data).arg("-p").arg(port.to_string());
        cmd.arg("-k").arg(sockets);
        for (key, value) in SERVER_SETTINGS {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        cmd.stdout(log).stderr(log_err);
        // Own process group: a terminal's Ctrl-C reaches us, and we stop the server in order.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe. The signal fires when the spawning thread exits;
        // the tool spawns from its main thread (current-thread runtime), which lives until exit.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            StartError::Fatal(Error::Server(format!(
                "cannot run {}: {e}",
                self.binaries.tool("postgres").display()
            )))
        })?;
        self.child = Some(child);
        self.conn.port = port;

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("could not bind") || log.contains("Address already in use") {
                    return Err(StartError::PortTaken(crate::error::tail(&log, 1)));
                }
                return Err(StartError::Fatal(Error::Server(format!(
                    "postgres exited ({status}) while starting: {}",
                    crate::error::tail(&log, 3).replace('\n', " | ")
                ))));
            }
            // The local socket trusts its callers (only the server's OS user and root can reach
            // the 0700 socket dir): set this run's password there, then use TCP with it.
            let mut local = tokio_postgres::Config::new();
            local
                .host_path(sockets)
                .port(port)
                .user(SUPERUSER)
                .dbname("postgres");
            match local.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    // Alphanumeric password: safe to inline.
                    let password = &self.conn.password;
                    let sql = format!(
                        "ALTER ROLE {SUPERUSER} PASSWORD '{password}';
                         CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
                    );
                    client.batch_execute(&sql).await.map_err(|e| {
                        StartError::Fatal(Error::Server(format!(
                            "setting up roles: {}",
                            db_message(&e)
                        )))
                    })?;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(StartError::Fatal(Error::Server(format!(
                        "not accepting connections after 30s: {}",
                        db_message(&e)
                    ))));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// A superuser connection to `dbname`, driven on the current runtime.
    pub async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client> {
        self.connect_as(dbname, &self.conn.user).await
    }

    /// A connection to `dbname` as `user` (e.g. `OWNER_ROLE`, for SQL the user wrote).
    pub async fn connect_as(&self, dbname: &str, user: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) = self
            .conn
            .as_user(user)
            .config(dbname)
            .connect(tokio_postgres::NoTls)
            .await
            .context(format!("connecting to {dbname}"))?;
        tokio::spawn(async move {
            // Errors surface on the client's next query; nothing to do with them here.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Stop the postmaster: SIGINT (fast shutdown), then SIGKILL after 10 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // `dir` (TempDir) is removed after this, by its own Drop.
    }
}

enum StartError {
    PortTaken(String),
    Fatal(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matching_compares_given_components() {
        assert!(version_matches("16.15", "16"));
        assert!(version_matches("16.15", "16.15"));
        assert!(!version_matches("16.15", "16.1"));
        assert!(!version_matches("15.18", "16"));
        assert!(version_key("16.9") < version_key("16.15"));
    }
}
