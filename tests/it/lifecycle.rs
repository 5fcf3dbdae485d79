//! Interruption, timeouts, kill -9, concurrent runs, inputs never changed.

use super::*;

// ---------------------------------------------------------------- interruption, timeouts, concurrency

pub(crate) fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
pub(crate) fn sigterm_during_restore_cleans_up_everything() {
    let ctx = Ctx::new();
    let child = ctx
        .command(&[
            "check",
            "--dump",
            s(&fixture("err/slow.sql")),
            "--downgrade-sql",
            s(&downgrade_sql()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // psql is restoring (and sleeping in pg_sleep) once it runs with our restricted stdin.
    wait_for(60, "the restore's psql", || psql_running_under(pid));
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    wait_for(10, "no process left", || {
        processes_mentioning(ctx.work.path()).is_empty()
    });
    ctx.assert_clean();
}

/// The restore's psql (reading the dump from stdin) running under `pid`.
pub(crate) fn psql_running_under(pid: u32) -> bool {
    descendant_matching(pid, |cmd| cmd.contains("bin/psql") && cmd.contains("-f -"))
}

#[test]
pub(crate) fn whole_run_timeout_stops_everything() {
    let ctx = Ctx::new();
    let run = hanging_downgrade(&ctx, "81.25", &["--timeout", "4"]);
    run.assert_error(&["did not finish within --timeout 4s", "was removed"]);
    // The same from pgsnapdiff.toml, with `quiet` there too.
    let config = ctx.path("timeout.toml");
    std::fs::write(&config, "timeout = 3\nquiet = true\n").unwrap();
    let run = hanging_downgrade(&ctx, "81.75", &["-c", s(&config)]);
    run.assert_error(&["did not finish within --timeout 3s"]);
    assert!(
        !run.stderr.contains("pgsnapdiff: starting"),
        "{}",
        run.stderr
    );
}

#[test]
pub(crate) fn kill_9_leaves_nothing_that_blocks_the_next_run() {
    let ctx = Ctx::new();
    let child = spawn_hanging(&ctx, "82.75");
    let pid = child.id();
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "killed by a signal");
    // The server and the downgrade die with the tool (PR_SET_PDEATHSIG)...
    wait_for(10, "postgres and the downgrade to exit", || {
        processes_mentioning(ctx.work.path()).is_empty()
            && processes_running("sleep 82.75").is_empty()
    });
    // ...but its files remain until the next run, which removes them and works.
    let stale: Vec<_> = std::fs::read_dir(ctx.work.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(stale.len(), 1, "the killed run's temp dir");
    let run = check_sample(&ctx, "onboarding.dump");
    run.assert_code(0);
    assert!(
        run.stderr.contains("removed the files of 1 earlier run(s)"),
        "{}",
        run.stderr
    );
}

#[test]
pub(crate) fn concurrent_runs_do_not_collide() {
    let ctx = Ctx::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            ctx.command(&[
                "check",
                SAMPLE_LOSS[0],
                SAMPLE_LOSS[1],
                "--dump",
                s(&sample_dump("onboarding.dump")),
                "--downgrade-sql",
                s(&downgrade_sql()),
                "--expect-patch",
                s(&expected_patch()),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("removed the files"));
    }
    ctx.assert_clean();
}

#[test]
pub(crate) fn inputs_are_never_changed() {
    let ctx = Ctx::new();
    let config = rules_config(&ctx);
    let inputs = [
        sample_dump("onboarding.dump"),
        expected_patch(),
        downgrade_sql(),
        config.clone(),
    ];
    let stamp = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap();
        (
            std::fs::read(p).unwrap(),
            m.modified().unwrap(),
            m.permissions(),
        )
    };
    let before: Vec<_> = inputs.iter().map(|p| stamp(p)).collect();
    let run = ctx.run(&[
        "check",
        "-c",
        s(&config),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "--expect-patch",
        s(&expected_patch()),
    ]);
    run.assert_code(0);
    let after: Vec<_> = inputs.iter().map(|p| stamp(p)).collect();
    assert!(before == after, "an input file was modified");
}

#[test]
pub(crate) fn uuid_ossp_dump_restores_as_the_unprivileged_owner() {
    // On the system's PostgreSQL: the theseus 16 build's uuid-ossp needs libossp-uuid16
    // (README "Known limits").
    let ctx = Ctx::new();
    let out = ctx.path("snap.json");
    let pg15 = system_pg_bin();
    let run = ctx.run(&[
        "snapshot",
        "--pg-bin",
        s(&pg15),
        "--dump",
        s(&fixture("ok/uuid-ossp.sql")),
        "-o",
        s(&out),
    ]);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(doc["schema"]["extensions"]["uuid-ossp"].is_string());
    assert!(doc["data"]["public.devices"]["6f1c0e2a-4b8d-4c3e-9a7f-2d5e8b1c0f3a"].is_object());
}

#[test]
pub(crate) fn output_to_a_fifo_or_symlink_never_replaces_it() {
    // `-o /dev/null` as root once renamed a temp file over /dev/null. A FIFO stands in for
    // the device here, so that a regression cannot damage the machine running the tests.
    let ctx = Ctx::new();
    let fifo = ctx.path("patch.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "-o",
        s(&fifo),
    ]);
    if run.code != 0 {
        // Unblock the reader (it waits for a writer) before failing.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    }
    let written = reader.join().unwrap();
    run.assert_code(0);
    assert_eq!(written, std::fs::read_to_string(expected_patch()).unwrap());
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );

    let real = ctx.path("real.json");
    std::fs::write(&real, "old").unwrap();
    let link = ctx.path("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "-o",
        s(&link),
    ]);
    run.assert_code(0);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        std::fs::read_to_string(expected_patch()).unwrap()
    );
}
