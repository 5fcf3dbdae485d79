//! The cluster on disk: initdb once per binaries and OS user (cached, copied per run), the
//! unprivileged OS user the server runs as when we are root, and the run directories
//! (`owner.pid`, stale runs of dead processes removed).

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

use super::{Binaries, SUPERUSER, random_password};
use crate::error::{Context, Error, Result};

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

/// Where the cluster lives by default: `/dev/shm` (memory-backed: initdb 0.4 s instead of
/// 1.2 s, faster restores, measured in scripts/bench) when it is writable and has room for
/// `space_needed` plus 1 GiB to spare; else the system temp dir. Containers often give
/// /dev/shm only 64 MiB, hence the check.
pub(super) fn default_work_dir(space_needed: u64) -> PathBuf {
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

/// initdb into `data` (an existing, empty dir owned by the server user). Local socket: trust
/// (see `Server::spawn_postmaster`); TCP: scram-sha-256 with a password set at each start.
pub(super) fn initdb(
    binaries: &Binaries,
    user: &Option<User>,
    data: &Path,
    cwd: &Path,
) -> Result<()> {
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
pub(super) fn cached_cluster(
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
pub(super) fn copy_cluster(template: &Path, data: &Path) -> Result<()> {
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
pub(super) fn server_user() -> Result<Option<User>> {
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

pub(super) fn server_command(program: PathBuf, user: &Option<User>, cwd: &Path) -> Command {
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

pub(super) fn own_by(path: &Path, user: &Option<User>, mode: u32) -> Result<()> {
    if let Some(user) = user {
        chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .context(format!("chown {}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .context(format!("chmod {}", path.display()))
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

pub(super) fn write_owner(dir: &Path) -> Result<()> {
    let me = process_identity(std::process::id()).unwrap_or_default();
    fs::write(dir.join(OWNER_FILE), me).context("writing owner.pid")
}

/// Remove the temp dirs of runs that died without cleaning up (kill -9, power loss): those
/// whose owner process is gone. A live run's dir is never touched; a postmaster still running
/// in a dead run's dir is stopped first. Returns how many were removed.
pub(super) fn remove_stale_runs(parent: &Path) -> usize {
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
