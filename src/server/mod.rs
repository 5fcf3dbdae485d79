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

/// A running throwaway PostgreSQL.
pub struct Server {
    /// The run's one administrative connection (to `postgres`): database copies and drops,
    /// activity readings. Opened on first use.
    admin: tokio::sync::OnceCell<tokio_postgres::Client>,
    child: Option<Child>,
    conn: ConnInfo,
    pub binaries: Binaries,
    /// Declared last: removed after the postmaster has stopped.
    dir: tempfile::TempDir,
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

        let mut server = Server {
            admin: tokio::sync::OnceCell::new(),
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

    /// The shared superuser connection to the `postgres` database, for administration: one per
    /// run instead of one per statement.
    pub async fn admin(&self) -> Result<&tokio_postgres::Client> {
        self.admin
            .get_or_try_init(|| self.connect("postgres"))
            .await
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
