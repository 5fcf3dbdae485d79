//! Which PostgreSQL binaries to run: `--pg-bin`, the cache, `postgresql_embedded`'s download
//! (the only place that knows that crate), then the system's; the newest that fits the dumps.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::unistd::Uid;

use crate::error::{Error, Result};

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
    /// Lowest acceptable major version (the newest pg_dump of the archive dumps: pg_restore
    /// refuses newer archives), when no version is forced.
    pub min_major: Option<u32>,
    /// The newest pg_dump of all the dumps: preferred where it is here, asked of the download.
    /// A plain dump newer than the binaries is tried anyway (`restore::check_compatible`).
    pub dump_major: Option<u32>,
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
    // The dump's own major, where it is already here (cache or system): it behaves like the
    // server the dump came from, and needs no download.
    if let (None, Some(major)) = (&opts.pg_version, opts.dump_major.or(opts.min_major)) {
        let mut here = installed_in(&cache, "cache");
        here.extend(system_binaries());
        if let Some(found) = best(here, |b| b.major == major) {
            return Ok(found);
        }
    }
    if let Some(found) = best(installed_in(&cache, "cache"), wanted) {
        return Ok(found);
    }
    let mut download_problem = None;
    if !opts.offline {
        match FailedDownload::recent(&cache) {
            Some(failed) => download_problem = Some(failed),
            None => match download(opts, &cache).await {
                Ok(bins) if wanted(&bins) => {
                    let _ = fs::remove_file(cache.join(FailedDownload::FILE));
                    return Ok(bins);
                }
                Ok(bins) => {
                    download_problem = Some(format!("downloaded {} does not fit", bins.version))
                }
                Err(problem) => {
                    FailedDownload::remember(&cache, &problem);
                    download_problem = Some(problem);
                }
            },
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

/// A failed download, remembered in the cache for an hour so that offline runs do not pay for
/// it every time (about 6 s where GitHub is unreachable).
struct FailedDownload;

impl FailedDownload {
    const FILE: &'static str = ".download-failed";
    const FOR: Duration = Duration::from_secs(3600);

    /// The remembered failure, if it is recent: why, and how to retry now.
    fn recent(cache: &Path) -> Option<String> {
        let path = cache.join(Self::FILE);
        let age = fs::metadata(&path).ok()?.modified().ok()?.elapsed().ok()?;
        if age >= Self::FOR {
            return None;
        }
        let reason = fs::read_to_string(&path).unwrap_or_default();
        Some(format!(
            "not tried: it failed {} min ago ({}); it is tried again after an hour, or at once if you delete {}",
            age.as_secs() / 60,
            reason.trim(),
            path.display()
        ))
    }

    fn remember(cache: &Path, problem: &str) {
        let _ = fs::create_dir_all(cache);
        let _ = fs::write(
            cache.join(Self::FILE),
            problem.lines().next().unwrap_or(problem),
        );
    }
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
        None => match opts.dump_major.or(opts.min_major) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_download_is_remembered_for_an_hour() {
        let cache = tempfile::tempdir().unwrap();
        assert!(FailedDownload::recent(cache.path()).is_none());
        FailedDownload::remember(cache.path(), "error sending request\nmore");
        let said = FailedDownload::recent(cache.path()).expect("remembered");
        assert!(
            said.contains("failed 0 min ago (error sending request)"),
            "{said}"
        );
        // An hour later it is tried again.
        let file = fs::File::options()
            .write(true)
            .open(cache.path().join(FailedDownload::FILE))
            .unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3601);
        file.set_modified(old).unwrap();
        assert!(FailedDownload::recent(cache.path()).is_none());
    }

    #[test]
    fn version_matching_compares_given_components() {
        assert!(version_matches("16.15", "16"));
        assert!(version_matches("16.15", "16.15"));
        assert!(!version_matches("16.15", "16.1"));
        assert!(!version_matches("15.18", "16"));
        assert!(version_key("16.9") < version_key("16.15"));
    }
}
