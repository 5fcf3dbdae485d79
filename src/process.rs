//! Child processes (pg_restore, psql, the downgrade command): spawned in their own process
//! group, output captured, and the whole group killed when the future is dropped (Ctrl-C,
//! timeout, error elsewhere), so no grandchild outlives the run.

use std::io::Read;
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
    mut cmd: Command,
    stdin: Option<Box<dyn Read + Send>>,
    timeout: Option<Duration>,
) -> Result<Captured, RunError> {
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
