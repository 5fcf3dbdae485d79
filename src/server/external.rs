//! An existing PostgreSQL server (`--server URL`) in place of the embedded one.
//!
//! Invariants:
//! - every database and role a run creates is named `pgsnapdiff_run_<id>...` and carries the
//!   comment `pgsnapdiff run <id> ...`; the run's admin session holds the advisory lock
//!   (`LOCK_CLASS`, `lock_key(id)`) for the run's whole life, which is how `clean` tells a live
//!   run from a leftover;
//! - nothing else on the server is ever written or dropped: `clean` drops only objects whose
//!   name *and* comment say pgsnapdiff, of runs whose lock nobody holds;
//! - dropping the `Server` drops the run's databases (`WITH (FORCE)`) and role, on a thread of
//!   its own (a destructor cannot await), on every path: error, Ctrl-C, SIGTERM, `--timeout`.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::ConnInfo;
use crate::error::{Error, Result, db_message};

/// What every object a run creates is named after.
pub const PREFIX: &str = "pgsnapdiff_run_";
/// The advisory lock class (`'pgsd'`) a live run holds, with `lock_key(id)` as its object.
const LOCK_CLASS: i32 = 0x7067_7364;

/// The URL without its password, for messages.
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((auth, host)) => {
                let user = auth.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => "(a keyword connection string)".to_string(),
    }
}

/// `--server URL` parsed into our connection parameters and the maintenance database (the
/// URL's database, default `postgres`).
pub fn parse(url: &str) -> Result<(ConnInfo, String)> {
    let bad = |why: String| {
        Error::Config(format!(
            "--server {}: {why}; write it as postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            display_url(url)
        ))
    };
    let config = tokio_postgres::Config::from_str(url).map_err(|e| bad(e.to_string()))?;
    let host = match config.get_hosts() {
        [] => "localhost".to_string(),
        [Host::Tcp(h)] => h.clone(),
        [Host::Unix(p)] => p.display().to_string(),
        _ => return Err(bad("more than one host".into())),
    };
    let port = match config.get_ports() {
        [] => 5432,
        [p] => *p,
        _ => return Err(bad("more than one port".into())),
    };
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .ok_or_else(|| bad("no user".into()))?;
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let maintenance = config.get_dbname().unwrap_or("postgres").to_string();
    Ok((
        ConnInfo {
            host,
            port,
            user,
            password,
        },
        maintenance,
    ))
}

/// What the given role may do on the server, read before anything is created.
pub struct Probe {
    pub conn: ConnInfo,
    pub maintenance: String,
    pub display: String,
    pub version: String,
    pub major: u32,
    pub superuser: bool,
    pub createrole: bool,
    pub client: tokio_postgres::Client,
}

/// Connect as the URL's role and read the server's version and the role's rights.
pub async fn probe(url: &str) -> Result<Probe> {
    let (conn, maintenance) = parse(url)?;
    let display = display_url(url);
    let client = connect(&conn, &maintenance).await.map_err(|e| {
        Error::Server(format!(
            "cannot connect to --server {display}: {e}; check the URL, that the server accepts connections from this host (pg_hba.conf), and the password"
        ))
    })?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    r.rolsuper, r.rolcreatedb, r.rolcreaterole
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::Server(format!("reading --server {display}: {}", db_message(&e))))?;
    let version: String = row.get(0);
    let num: i32 = row.get(1);
    let (superuser, createdb, createrole): (bool, bool, bool) =
        (row.get(2), row.get(3), row.get(4));
    let major = (num / 10000) as u32;
    if major < 13 {
        return Err(Error::Server(format!(
            "--server {display} runs PostgreSQL {version}; pgsnapdiff needs 13 or newer (DROP DATABASE ... WITH (FORCE))"
        )));
    }
    if !superuser && !createdb {
        return Err(Error::Server(format!(
            "role {} on --server {display} cannot create databases; grant it CREATEDB (ALTER ROLE {} CREATEDB) or run without --server",
            conn.user, conn.user
        )));
    }
    Ok(Probe {
        conn,
        maintenance,
        display,
        version: version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_string(),
        major,
        superuser,
        createrole: superuser || createrole,
        client,
    })
}

async fn connect(
    conn: &ConnInfo,
    dbname: &str,
) -> std::result::Result<tokio_postgres::Client, String> {
    let mut cfg = conn.config(dbname);
    cfg.connect_timeout(Duration::from_secs(10));
    let (client, connection) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| db_message(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The advisory lock object of run `id`.
fn lock_key(id: &str) -> i32 {
    // FNV-1a, folded to 31 bits: stable across builds and hosts.
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

/// A new run id: 10 lowercase letters and digits.
pub fn new_id() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The comment every object of run `id` carries.
pub fn comment(id: &str) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "",
        );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "pgsnapdiff run {id} (pid {} on {host}, started at unix time {started}); `pgsnapdiff clean` removes it once the run is gone",
        std::process::id()
    )
}

/// Take run `id`'s lock on the admin session.
pub async fn hold_lock(client: &tokio_postgres::Client, id: &str) -> Result<()> {
    client
        .execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&LOCK_CLASS, &lock_key(id)],
        )
        .await
        .map_err(|e| {
            Error::Server(format!(
                "taking the run's advisory lock: {}",
                db_message(&e)
            ))
        })?;
    Ok(())
}

/// Drop a run's databases (terminating their sessions) and roles, from a thread of its own:
/// used by `Server`'s destructor, which cannot await. Best effort, bounded to 30 s; what
/// could not be dropped is said, with the command that removes it later.
pub fn drop_run_objects(
    conn: ConnInfo,
    maintenance: String,
    databases: Vec<String>,
    roles: Vec<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let display = format!("{}:{}", conn.host, conn.port);
    let worker = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        let result = runtime.block_on(async {
            let client = connect(&conn, &maintenance).await?;
            drop_objects(&client, &databases, &roles)
                .await
                .map_or(Ok(()), Err)
        });
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {
            let _ = worker.join();
        }
        Ok(Err(problem)) => crate::console::note(format!(
            "could not remove this run's objects on {display} ({problem}); `pgsnapdiff clean --server URL` removes them"
        )),
        Err(_) => crate::console::note(format!(
            "removing this run's objects on {display} took over 30 s; `pgsnapdiff clean --server URL` removes what is left"
        )),
    }
}

/// Drop a run's databases (their sessions terminated) and then its roles; what could not be
/// dropped, if anything, one `name: reason` per object.
async fn drop_objects(
    client: &tokio_postgres::Client,
    databases: &[String],
    roles: &[String],
) -> Option<String> {
    let statements = databases
        .iter()
        .map(|db| (db, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .chain(
            roles
                .iter()
                .map(|r| (r, format!("DROP ROLE IF EXISTS {r}"))),
        );
    let mut failed = Vec::new();
    for (name, sql) in statements {
        if let Err(e) = client.batch_execute(&sql).await {
            failed.push(format!("{name}: {}", db_message(&e)));
        }
    }
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// One leftover run on a server: its id and objects.
#[derive(Debug, Default)]
pub struct Leftover {
    pub id: String,
    pub databases: Vec<String>,
    pub roles: Vec<String>,
    /// Its lock is held: a run still going, never touched.
    pub live: bool,
}

/// The runs whose objects are on the server (by name *and* comment), in id order.
pub async fn leftovers(client: &tokio_postgres::Client) -> Result<Vec<Leftover>> {
    let rows = client
        .query(
            "SELECT 'd', d.datname, coalesce(shobj_description(d.oid, 'pg_database'), '')
               FROM pg_database d WHERE starts_with(d.datname, $1)
             UNION ALL
             SELECT 'r', r.rolname, coalesce(shobj_description(r.oid, 'pg_authid'), '')
               FROM pg_roles r WHERE starts_with(r.rolname, $1)
             ORDER BY 2",
            &[&PREFIX],
        )
        .await
        .map_err(|e| Error::Server(format!("listing leftovers: {}", db_message(&e))))?;
    let mut runs: std::collections::BTreeMap<String, Leftover> = Default::default();
    for row in rows {
        let (kind, name, comment): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let id: String = name[PREFIX.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        // Ours only if the comment says so for this very id.
        if id.is_empty() || !comment.starts_with(&format!("pgsnapdiff run {id} ")) {
            continue;
        }
        let run = runs.entry(id.clone()).or_insert_with(|| Leftover {
            id: id.clone(),
            ..Default::default()
        });
        if kind == "d" {
            run.databases.push(name);
        } else {
            run.roles.push(name);
        }
    }
    for run in runs.values_mut() {
        run.live = client
            .query_opt(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int::oid
                   AND objid = $2::int::oid AND objsubid = 2 AND granted",
                &[&LOCK_CLASS, &lock_key(&run.id)],
            )
            .await
            .map_err(|e| Error::Server(format!("reading pg_locks: {}", db_message(&e))))?
            .is_some();
    }
    Ok(runs.into_values().collect())
}

/// `pgsnapdiff clean --server URL`: list the leftovers of runs that are gone and, unless
/// `dry_run`, drop them. Live runs are listed and left alone.
pub async fn clean(url: &str, dry_run: bool) -> Result<Vec<(Leftover, Option<String>)>> {
    let (conn, maintenance) = parse(url)?;
    let display = display_url(url);
    let client = connect(&conn, &maintenance)
        .await
        .map_err(|e| Error::Server(format!("cannot connect to --server {display}: {e}")))?;
    let mut out = Vec::new();
    for run in leftovers(&client).await? {
        if run.live || dry_run {
            out.push((run, None));
            continue;
        }
        let problem = drop_objects(&client, &run.databases, &run.roles).await;
        out.push((run, problem));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            display_url("postgresql://ci:s3cret@db.example:5433/postgres"),
            "postgresql://ci@db.example:5433/postgres"
        );
        assert_eq!(
            display_url("postgres://db.example/postgres"),
            "postgres://db.example/postgres"
        );
    }

    #[test]
    fn a_server_url_parses_into_connection_and_maintenance_database() {
        let (conn, db) = parse("postgresql://ci:p%40ss@10.0.0.5:6432/maint").unwrap();
        assert_eq!(
            (
                conn.host.as_str(),
                conn.port,
                conn.user.as_str(),
                conn.password.as_str()
            ),
            ("10.0.0.5", 6432, "ci", "p@ss")
        );
        assert_eq!(db, "maint");
        let (conn, db) = parse("postgresql://ci@localhost").unwrap();
        assert_eq!((conn.port, db.as_str()), (5432, "postgres"));
        assert!(parse("postgresql://a@h1,h2/x").is_err());
    }

    #[test]
    fn run_ids_and_lock_keys_are_stable_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 10);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(a, b);
        assert_eq!(lock_key("abc"), lock_key("abc"));
        assert_ne!(lock_key("abc"), lock_key("abd"));
        assert!(lock_key(&a) >= 0);
    }
}
