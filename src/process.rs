//! Child processes (pg_restore, psql, the downgrade command): spawned in their own process
//! group, output captured, and the whole group killed when the future is dropped (Ctrl-C,
//! timeout, error elsewhere), so no grandchild outlives the run.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

pub struct Captured {
    pub status: ExitStatus,
    /// stdout followed by stderr, lossily decoded.
    pub output: String,
}

/// `sh -c COMMAND` such that the whole process group dies with pgsnapdiff. PR_SET_PDEATHSIG
/// reaches only the direct child, and a shell's own children would outlive a `kill -9` of the
/// tool; so the command runs in the background of a shell that, on SIGTERM (its death signal),
/// kills its process group. `wait` is interruptible, so the trap runs at once.
pub fn shell_killing_group_on_term(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap 'trap - TERM; kill -KILL 0' TERM; sh -c "$1" & wait $!"#)
        .arg("pgsnapdiff")
        .arg(command);
    cmd
}

/// Remove every inherited `PG*` variable (PGSERVICE, PGOPTIONS, another PGHOST...) from
/// `cmd`'s environment: PostgreSQL's tools read them, and a child of pgsnapdiff connects only
/// where pgsnapdiff says. Call it before setting the child's own `PG*` variables.
pub fn drop_inherited_pg_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
}

/// What went wrong running a child, before judging its exit status.
pub enum RunError {
    Spawn(std::io::Error),
    TimedOut(Duration),
}

/// Kills the process group on drop. Harmless when the group is already gone.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// Run `cmd` to completion, feeding `stdin` from a blocking reader if given.
pub async fn run(
    cmd: Command,
    stdin: Option<Box<dyn Read + Send>>,
    timeout: Option<Duration>,
) -> Result<Captured, RunError> {
    run_with_death_signal(cmd, stdin, timeout, libc::SIGKILL).await
}

/// `run`, with the signal the child gets if pgsnapdiff dies (even by SIGKILL): SIGKILL for
/// tools, SIGTERM for `shell_killing_group_on_term`, which passes it on to its whole group.
pub async fn run_with_death_signal(
    mut cmd: Command,
    stdin: Option<Box<dyn Read + Send>>,
    timeout: Option<Duration>,
    death_signal: libc::c_int,
) -> Result<Captured, RunError> {
    // SAFETY: prctl is async-signal-safe. Spawned from the main thread, which lives as long as
    // the process (see server.rs), so the signal comes only when pgsnapdiff itself dies.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.process_group(0)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let feeder = match stdin {
        Some(mut source) => {
            let (reader, mut writer) = std::io::pipe().map_err(RunError::Spawn)?;
            cmd.stdin(reader);
            Some(move || {
                // A write error means the child stopped reading (it failed or exited): its
                // exit status and output tell the story, so the error itself is not needed.
                let _ = std::io::copy(&mut source, &mut writer);
            })
        }
        None => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    let child = cmd.spawn().map_err(RunError::Spawn)?;
    let _group = child.id().map(|pid| GroupGuard(pid as i32));
    // The command holds the read end of the pipe: drop it so the child sees EOF.
    drop(cmd);
    if let Some(feed) = feeder {
        std::thread::spawn(feed);
    }
    let wait = child.wait_with_output();
    let out = match timeout {
        Some(limit) => tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| RunError::TimedOut(limit))?,
        None => wait.await,
    }
    .map_err(RunError::Spawn)?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Captured {
        status: out.status,
        output,
    })
}
