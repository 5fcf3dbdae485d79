//! The embedded PostgreSQL server's life: find binaries, initdb, start, connect, stop, clean up.
//!
//! The only module that knows `postgresql_embedded`. That crate resolves and downloads binaries
//! (its theseus cache layout and release archives); the lifecycle is ours, because its
//! `setup`/`start` run `initdb`/`pg_ctl` as the current user and PostgreSQL refuses root. When
//! the tool runs as root, `initdb` and `postgres` run as the `postgres` user (else `nobody`); the
//! client tools and the downgrade command keep the caller's identity.
//!
//! `binaries.rs` finds the binaries, `cluster.rs` prepares the cluster on disk and the OS user,
//! this file starts, connects to and stops the postmaster.
//!
//! Invariants:
//! - a `Server` value owns one temp dir and one postmaster; dropping it stops the postmaster
//!   (SIGINT, then SIGKILL) and removes the dir, on every path including panics;
//! - the postmaster gets `PR_SET_PDEATHSIG`, so it shuts down even if the tool is killed;
//! - it listens on 127.0.0.1 and a private socket dir only, with a random scram password;
//! - besides the superuser there is one unprivileged role, `OWNER_ROLE`, for untrusted work.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::{Context, Error, Result, db_message};

mod binaries;
mod cluster;
pub mod external;

pub use binaries::{Binaries, BinaryOptions, cache_dir, resolve_binaries};
use cluster::*;

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
            kv_quote(&self.host),
            self.port,
            kv_quote(&self.user),
            kv_quote(dbname)
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

    /// `scheme://user:password@host:port/dbname`, each part percent-encoded (an external
    /// server's role and password may hold any character; a socket directory is a host too).
    pub fn url(&self, scheme: &str, dbname: &str) -> String {
        let auth = if self.password.is_empty() {
            url_encode(&self.user)
        } else {
            format!("{}:{}", url_encode(&self.user), url_encode(&self.password))
        };
        format!(
            "{scheme}://{auth}@{}:{}/{}",
            url_encode(&self.host),
            self.port,
            url_encode(dbname)
        )
    }
}

/// A libpq keyword value: bare when it is plain, else single-quoted with `\` and `'` escaped.
fn kv_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Parent of the temp dir holding the cluster; default: see `default_work_dir`.
    pub work_dir: Option<PathBuf>,
    /// Bytes the cluster may need (an estimate from the dump's size).
    pub space_needed: u64,
    /// `--server`: an existing server's URL, used instead of an embedded one.
    pub external: Option<String>,
}

/// The databases of a run: the working one (the dump restored, the downgrade run), the
/// before-copy and the round trip's original. Fixed names on the embedded server; on an
/// external one, named after the run (`external::PREFIX`).
#[derive(Debug, Clone)]
struct Names {
    work: String,
    before: String,
    original: String,
}

/// The server a run works on: a throwaway PostgreSQL of its own, or an existing one
/// (`--server`) on which it creates and drops only its own databases and role.
pub struct Server {
    /// The run's one administrative connection (to `postgres`, or `--server`'s database):
    /// database copies and drops, activity readings. On an external server it holds the run's
    /// advisory lock.
    admin: tokio::sync::OnceCell<tokio_postgres::Client>,
    /// The administrative role: the embedded superuser, or `--server`'s role.
    conn: ConnInfo,
    /// The role untrusted work (restore, downgrade) runs as.
    owner: ConnInfo,
    names: Names,
    /// The server's major version (an external server's may differ from the binaries').
    major: u32,
    /// Whether `conn`'s role is a superuser.
    superuser: bool,
    pub binaries: Binaries,
    /// Declared last: an embedded server's dir is removed after the postmaster has stopped.
    kind: Kind,
}

enum Kind {
    Embedded {
        child: Option<Child>,
        dir: tempfile::TempDir,
    },
    External {
        /// `--server` without its password, for messages.
        display: String,
        /// What every object of this run is commented with (`external::comment`).
        comment: String,
        maintenance: String,
        /// The owner role, when this run created it (else the owner is `conn`'s role).
        created_role: Option<String>,
    },
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

        let conn = ConnInfo {
            host: "127.0.0.1".into(),
            port: 0,
            user: SUPERUSER.into(),
            password,
        };
        let mut server = Server {
            admin: tokio::sync::OnceCell::new(),
            owner: conn.as_user(OWNER_ROLE),
            conn,
            names: Names {
                work: "pgsnapdiff".into(),
                before: "pgsnapdiff_before".into(),
                original: "pgsnapdiff_original".into(),
            },
            major: binaries.major,
            superuser: true,
            binaries,
            kind: Kind::Embedded { child: None, dir },
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
        let Kind::Embedded { dir, .. } = &self.kind else {
            unreachable!("only an embedded server is spawned");
        };
        let dir = dir.path().to_path_buf();
        let log_path = dir.join("server.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| StartError::Fatal(Error::io("creating server log", e)))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(Error::io("server log", e)))?;
        let mut cmd = server_command(self.binaries.tool("postgres"), user, &dir);
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
        self.set_child(Some(child));
        self.conn.port = port;
        self.owner.port = port;

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child_exited() {
                self.set_child(None);
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

    /// The administrative role's connection (the embedded superuser, or `--server`'s role).
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// The role untrusted work runs as: `OWNER_ROLE`, this run's owner role on an external
    /// server, or (without CREATEROLE there) `--server`'s own role.
    pub fn owner_conn(&self) -> &ConnInfo {
        &self.owner
    }

    /// The server's major version.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// Whether the administrative role is a superuser (always, on the embedded server).
    pub fn admin_is_superuser(&self) -> bool {
        self.superuser
    }

    /// `--server`'s URL without its password, on an external server.
    pub fn external(&self) -> Option<&str> {
        match &self.kind {
            Kind::External { display, .. } => Some(display),
            Kind::Embedded { .. } => None,
        }
    }

    /// The database the dump is restored into and the downgrade runs on.
    pub fn work_db(&self) -> &str {
        &self.names.work
    }

    /// The untouched copy of the state the downgrade starts from.
    pub fn before_db(&self) -> &str {
        &self.names.before
    }

    /// Round trip only: the restored state before the upgrade.
    pub fn original_db(&self) -> &str {
        &self.names.original
    }

    /// Use an existing server (`external::probe` read its version and the role's rights):
    /// create this run's owner role when the role may (else say what is lost), and hold the
    /// run's lock on the admin session.
    pub async fn attach(
        probe: external::Probe,
        binaries: Binaries,
        owner_role: bool,
    ) -> Result<Server> {
        let external::Probe {
            conn,
            maintenance,
            display,
            major,
            superuser,
            createrole,
            client,
            ..
        } = probe;
        let id = external::new_id();
        let base = format!("{}{id}", external::PREFIX);
        external::hold_lock(&client, &id).await?;
        let comment = external::comment(&id);
        let (owner, created_role) = if !owner_role {
            crate::console::note(format!(
                "with --restored, migration commands and reads run as {}, the role in --server: the restored database's tables belong to the server's roles, not to a role of pgsnapdiff's",
                conn.user
            ));
            (conn.clone(), None)
        } else if createrole {
            let role = format!("{base}_owner");
            let password = random_password();
            // Membership lets the admin role create the work database for it, copy it and
            // read what the owner restores; the owner itself gets nothing of the admin's.
            client
                .batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}';
                     COMMENT ON ROLE {role} IS '{comment}';
                     GRANT {role} TO CURRENT_USER"
                ))
                .await
                .context(format!("creating role {role} on --server {display}"))?;
            let owner = ConnInfo {
                user: role.clone(),
                password,
                ..conn.clone()
            };
            (owner, Some(role))
        } else {
            crate::console::note(format!(
                "role {} on --server {display} has no CREATEROLE: the restore and the downgrade run as {} itself, not as an unprivileged owner role, so they can do whatever it can (README \"Security model\")",
                conn.user, conn.user
            ));
            (conn.clone(), None)
        };
        let admin = tokio::sync::OnceCell::new();
        let _ = admin.set(client);
        Ok(Server {
            admin,
            owner,
            conn,
            names: Names {
                work: base.clone(),
                before: format!("{base}_before"),
                original: format!("{base}_original"),
            },
            major,
            superuser,
            binaries,
            kind: Kind::External {
                display,
                comment,
                maintenance,
                created_role,
            },
        })
    }

    /// The shared administrative connection (to `postgres`, or `--server`'s database): one per
    /// run instead of one per statement.
    pub async fn admin(&self) -> Result<&tokio_postgres::Client> {
        self.admin
            .get_or_try_init(|| self.connect("postgres"))
            .await
    }

    /// An administrative connection to `dbname`, driven on the current runtime.
    pub async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client> {
        connect_with(&self.conn, dbname).await
    }

    /// A connection to `dbname` as the owner role (for SQL the user wrote).
    pub async fn connect_owner(&self, dbname: &str) -> Result<tokio_postgres::Client> {
        connect_with(&self.owner, dbname).await
    }

    /// A fresh, empty working database owned by the owner role, this run's earlier databases
    /// (an earlier case's) dropped first.
    pub async fn create_work_db(&self) -> Result<()> {
        let names = self.names.clone();
        self.drop_run_databases().await?;
        self.admin()
            .await?
            .batch_execute(&format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0",
                names.work,
                quote(&self.owner.user)
            ))
            .await
            .context("creating database")?;
        self.mark(&names.work).await
    }

    /// The working database as a copy of `source`, a database already restored on the
    /// (external) server, which is only ever read by `TEMPLATE`.
    pub async fn create_work_from(&self, source: &str) -> Result<()> {
        self.drop_run_databases().await?;
        let names = &self.names;
        if self.external().is_none()
            || [&names.work, &names.before, &names.original].contains(&&source.to_string())
        {
            return Err(Error::Config(format!(
                "--restored {source}: not a database of the --server's to copy"
            )));
        }
        let exists = self
            .admin()
            .await?
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&source])
            .await
            .context("looking up the restored database")?;
        if exists.is_none() {
            return Err(Error::Config(format!(
                "--restored {source}: no such database on --server {}; check the name (SELECT datname FROM pg_database)",
                self.external().unwrap_or_default()
            )));
        }
        self.copy_database(source, &names.work).await
    }

    /// `CREATE DATABASE copy TEMPLATE source`: a file-level copy of a database nobody is using.
    pub async fn copy_database(&self, source: &str, copy: &str) -> Result<()> {
        let strategy = if self.major >= 15 {
            " STRATEGY FILE_COPY"
        } else {
            ""
        };
        let copied = self
            .admin()
            .await?
            .batch_execute(&format!(
                "CREATE DATABASE {copy} TEMPLATE {}{strategy}",
                quote(source)
            ))
            .await;
        if let Err(e) = copied {
            let message = db_message(&e);
            let hint = if message.contains("being accessed by other users") {
                format!(
                    "; PostgreSQL copies a database only while nobody is connected to it: close the other sessions on {source}"
                )
            } else if message.contains("permission denied") {
                format!(
                    "; the role {} must own {source} (or be a member of its owner), or {source} must be marked as a template (ALTER DATABASE {source} IS_TEMPLATE true)",
                    self.conn.user
                )
            } else {
                String::new()
            };
            return Err(Error::Server(format!(
                "copying database {source}: {message}{hint}"
            )));
        }
        self.mark(copy).await
    }

    /// Drop this run's databases, an earlier case's, before a case starts.
    async fn drop_run_databases(&self) -> Result<()> {
        let n = &self.names;
        self.drop_databases(&[&n.work, &n.before, &n.original])
            .await
    }

    /// Drop these databases of this run if they exist (an earlier case's or step's).
    pub async fn drop_databases(&self, names: &[&str]) -> Result<()> {
        let admin = self.admin().await?;
        let force = if self.external().is_some() {
            " WITH (FORCE)"
        } else {
            ""
        };
        for db in names {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db}{force}"))
                .await
                .context(format!("dropping database {db}"))?;
        }
        Ok(())
    }

    /// On an external server, the comment by which `clean` knows a database is a run's.
    async fn mark(&self, db: &str) -> Result<()> {
        let Kind::External { comment, .. } = &self.kind else {
            return Ok(());
        };
        self.admin()
            .await?
            .batch_execute(&format!("COMMENT ON DATABASE {db} IS '{comment}'"))
            .await
            .context(format!("marking database {db} as this run's"))
    }

    fn set_child(&mut self, new: Option<Child>) {
        if let Kind::Embedded { child, .. } = &mut self.kind {
            *child = new;
        }
    }

    fn child_exited(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.kind {
            Kind::Embedded {
                child: Some(child), ..
            } => child.try_wait().ok().flatten(),
            _ => None,
        }
    }

    /// Stop the postmaster: SIGINT (fast shutdown), then SIGKILL after 10 s.
    fn stop(&mut self) {
        let Kind::Embedded { child, .. } = &mut self.kind else {
            return;
        };
        let Some(mut child) = child.take() else {
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

/// A connection as `conn`'s role to `dbname`, driven on the current runtime.
async fn connect_with(conn: &ConnInfo, dbname: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = conn
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

/// An SQL identifier, quoted when it must be.
fn quote(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &self.kind {
            // `dir` (TempDir) is removed after this, by its own Drop.
            Kind::Embedded { .. } => self.stop(),
            Kind::External {
                maintenance,
                created_role,
                ..
            } => external::drop_run_objects(
                self.conn.clone(),
                maintenance.clone(),
                vec![
                    self.names.work.clone(),
                    self.names.before.clone(),
                    self.names.original.clone(),
                ],
                created_role.iter().cloned().collect(),
            ),
        }
    }
}

enum StartError {
    PortTaken(String),
    Fatal(Error),
}
