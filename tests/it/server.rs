//! `--server`: an existing PostgreSQL (the system's, started by the test as a plain server,
//! not through pgsnapdiff) holding a database of its own that pgsnapdiff must never touch.

use super::*;

/// A server with the user's own database (`theirs`, with rows) and the roles the tests use:
/// `ci` (CREATEDB, CREATEROLE, no superuser), `weak` (CREATEDB only), `nocreate` (neither).
pub(crate) fn their_server() -> ScratchServer {
    let theirs = ScratchServer::start();
    theirs.query("postgres", "CREATE DATABASE theirs");
    theirs.query(
        "theirs",
        "CREATE TABLE accounts (id int PRIMARY KEY, name text); INSERT INTO accounts VALUES (1, 'kept'), (2, 'also kept')",
    );
    for role in [
        "CREATE ROLE ci LOGIN CREATEDB CREATEROLE",
        "CREATE ROLE weak LOGIN CREATEDB",
        "CREATE ROLE nocreate LOGIN",
    ] {
        theirs.query("postgres", role);
    }
    theirs
}

/// Everything on the server outside pgsnapdiff's reach: its databases, roles, and the rows and
/// comments of `theirs`.
pub(crate) fn server_state(theirs: &ScratchServer) -> String {
    [
        theirs.query(
            "postgres",
            "SELECT string_agg(datname || ':' || coalesce(shobj_description(oid, 'pg_database'), ''), ',' ORDER BY datname) FROM pg_database",
        ),
        theirs.query(
            "postgres",
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles",
        ),
        theirs.query(
            "theirs",
            "SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM accounts",
        ),
    ]
    .join("\n")
}

fn check_on(ctx: &Ctx, server: &str, dump: &str, extra: &[&str]) -> Run {
    let dump = sample_dump(dump);
    let baseline = expected_patch();
    let sql = downgrade_sql();
    let mut args = vec![
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&sql),
        "--server",
        server,
        "--expect-patch",
        s(&baseline),
    ];
    args.extend_from_slice(&SAMPLE_LOSS);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

#[test]
pub(crate) fn check_on_an_existing_server_proves_the_sample_and_leaves_the_server_as_it_was() {
    let theirs = their_server();
    let before = server_state(&theirs);
    let ctx = Ctx::new();
    // As a role without superuser rights: a custom-format and a plain dump (whose `OWNER TO
    // postgres` lines are left out, as pg_restore --no-owner does: no role is made for them).
    for dump in ["onboarding.dump", "onboarding.sql"] {
        let run = check_on(&ctx, &theirs.url_as("ci", "postgres"), dump, &[]);
        run.assert_code(0)
            .assert_stdout("PASS  expected patch")
            .assert_stdout("server    PostgreSQL 15 at postgresql://ci@127.0.0.1:");
        assert_eq!(server_state(&theirs), before, "after {dump}");
    }
    // The patch is the embedded server's, byte for byte.
    let (embedded, external) = (ctx.path("embedded.json"), ctx.path("external.json"));
    check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&downgrade_sql()),
        &["-c", "/dev/null", "--patch-out", s(&embedded)],
    )
    .assert_code(0);
    check_on(
        &ctx,
        &theirs.url_as("postgres", "postgres"),
        "onboarding.dump",
        &["--patch-out", s(&external)],
    )
    .assert_code(0);
    assert_eq!(
        std::fs::read(&embedded).unwrap(),
        std::fs::read(&external).unwrap()
    );
    assert_eq!(server_state(&theirs), before);
}

#[test]
pub(crate) fn roles_without_the_rights_are_told_what_they_lack() {
    let theirs = their_server();
    let before = server_state(&theirs);
    let ctx = Ctx::new();
    // No CREATEROLE: the work runs as the role itself, said in a note; still proven.
    let run = check_on(
        &ctx,
        &theirs.url_as("weak", "postgres"),
        "onboarding.dump",
        &[],
    );
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("role weak on --server postgresql://weak@127.0.0.1:")
            && run
                .stderr
                .contains("has no CREATEROLE: the restore and the downgrade run as weak itself"),
        "{}",
        run.stderr
    );
    // No CREATEDB: refused before anything is created, with the fix.
    check_on(
        &ctx,
        &theirs.url_as("nocreate", "postgres"),
        "onboarding.dump",
        &[],
    )
    .assert_error(&[
        "role nocreate",
        "cannot create databases",
        "ALTER ROLE nocreate CREATEDB",
    ]);
    // A password in the URL is never shown.
    let url = format!(
        "postgresql://nocreate:hunter2@127.0.0.1:{}/postgres",
        theirs.port
    );
    let run = check_on(&ctx, &url, "onboarding.dump", &[]);
    run.assert_error(&["postgresql://nocreate@127.0.0.1:"]);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    // An unreachable server: one line saying what to check.
    check_on(
        &ctx,
        "postgresql://ci@127.0.0.1:1/postgres",
        "onboarding.dump",
        &[],
    )
    .assert_error(&[
        "cannot connect to --server postgresql://ci@127.0.0.1:1/postgres",
        "pg_hba.conf",
    ]);
    assert_eq!(server_state(&theirs), before);
}

#[test]
pub(crate) fn interrupted_and_killed_runs_are_cleaned_up_and_clean_never_touches_a_live_run() {
    let theirs = their_server();
    // A database that only looks like ours (no pgsnapdiff comment): never dropped.
    theirs.query("postgres", "CREATE DATABASE pgsnapdiff_run_decoy");
    let before = server_state(&theirs);
    let ctx = Ctx::new();
    let url = theirs.url_as("ci", "postgres");
    let dump = sample_dump("onboarding.dump");
    let sleeping = |ctx: &Ctx| {
        ctx.command(&[
            "check",
            "-c",
            "/dev/null",
            "--dump",
            s(&dump),
            "--server",
            &url,
            "--downgrade-cmd",
            "sleep 300",
        ])
    };
    let hanging = |ctx: &Ctx| {
        sleeping(ctx)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ours = || {
        theirs.query(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgsnapdiff_run_%' AND datname <> 'pgsnapdiff_run_decoy'",
        )
    };
    // SIGTERM during the downgrade: its databases and role are dropped on the way out.
    let child = hanging(&ctx);
    wait_for(60, "the downgrade", || {
        descendant_running(child.id(), "sleep 300")
    });
    assert_eq!(ours(), "2", "work database and before-copy exist");
    lifecycle::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(ours(), "0");
    assert_eq!(server_state(&theirs), before);
    // The same at --timeout.
    ctx.finish(sleeping(&ctx).args(["--timeout", "4"]))
        .assert_error(&["did not finish within --timeout 4s"]);
    assert_eq!(ours(), "0");
    assert_eq!(server_state(&theirs), before);

    // kill -9 leaves them; `clean` lists a live run but leaves it, and removes the dead one's.
    let killed = hanging(&ctx);
    wait_for(60, "the downgrade", || {
        descendant_running(killed.id(), "sleep 300")
    });
    lifecycle::signal(killed.id(), nix::sys::signal::Signal::SIGKILL);
    let _ = killed.wait_with_output();
    wait_for(10, "the orphaned sleep gone", || {
        processes_running("sleep 300").is_empty()
    });
    let live = hanging(&ctx);
    wait_for(60, "the downgrade", || {
        descendant_running(live.id(), "sleep 300")
    });
    assert_eq!(ours(), "4");
    let dry = ctx.run(&["clean", "--server", &url, "--dry-run"]);
    dry.assert_code(0)
        .assert_stdout("would remove database pgsnapdiff_run_");
    assert_eq!(
        dry.stdout.matches("still running, left alone").count(),
        1,
        "{}",
        dry.stdout
    );
    assert_eq!(ours(), "4", "--dry-run drops nothing");
    let cleaned = ctx.run(&["clean", "--server", &url]);
    cleaned
        .assert_code(0)
        .assert_stdout("removed database pgsnapdiff_run_");
    assert!(cleaned.stdout.contains("_owner"), "{}", cleaned.stdout);
    assert!(!cleaned.stdout.contains("decoy"), "{}", cleaned.stdout);
    assert_eq!(ours(), "2", "the live run's databases are still there");
    lifecycle::signal(live.id(), nix::sys::signal::Signal::SIGTERM);
    let _ = live.wait_with_output();
    ctx.run(&["clean", "--server", &url])
        .assert_code(0)
        .assert_stdout("nothing of pgsnapdiff's on postgresql://ci@127.0.0.1:");
    assert_eq!(server_state(&theirs), before);
}

#[test]
pub(crate) fn a_database_already_restored_on_the_server_is_copied_and_never_written() {
    let theirs = their_server();
    // The user's thin clone, restored by (and owned by) the role pgsnapdiff will use.
    theirs.query("postgres", "CREATE DATABASE prodclone OWNER ci");
    let out = std::process::Command::new(system_pg_bin().join("pg_restore"))
        .args([
            "--no-owner",
            "--exit-on-error",
            "-d",
            &theirs.url_as("ci", "prodclone"),
        ])
        .arg(sample_dump("onboarding.dump"))
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {out:?}");
    // One the role does not own.
    theirs.restore("notours", &sample_dump("onboarding.dump"));
    let clone_state = || {
        theirs.query(
            "prodclone",
            "SELECT (SELECT version_num FROM alembic_version) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM onboarding_states t",
        )
    };
    let (before, clone_before) = (server_state(&theirs), clone_state());
    let ctx = Ctx::new();
    let url = theirs.url_as("ci", "postgres");
    let baseline = expected_patch();
    let sql = downgrade_sql();
    let check = |db: &str, extra: &[&str]| {
        let mut args = vec![
            "check",
            "-c",
            "/dev/null",
            "--restored",
            db,
            "--downgrade-sql",
            s(&sql),
            "--expect-patch",
            s(&baseline),
        ];
        args.extend_from_slice(&SAMPLE_LOSS);
        args.extend_from_slice(extra);
        ctx.run(&args)
    };
    let run = check("prodclone", &["--server", &url]);
    run.assert_code(0)
        .assert_stdout("PASS  expected patch")
        .assert_stdout("dump      prodclone (a database already restored on the server: copied, never written)");
    assert!(
        run.stderr
            .contains("with --restored, migration commands and reads run as ci"),
        "{}",
        run.stderr
    );
    assert_eq!(
        clone_state(),
        clone_before,
        "the restored database is never written"
    );
    assert_eq!(server_state(&theirs), before);

    // Copying needs nobody else on it: said, with what to do.
    let mut session = std::process::Command::new(system_pg_bin().join("psql"))
        .args([
            "-X",
            "-d",
            &theirs.url("prodclone"),
            "-c",
            "SELECT pg_sleep(60)",
        ])
        .spawn()
        .unwrap();
    wait_for(10, "the other session", || {
        theirs.query(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'prodclone'",
        ) == "1"
    });
    check("prodclone", &["--server", &url]).assert_error(&[
        "copying database prodclone",
        "close the other sessions on prodclone",
    ]);
    let _ = session.kill();
    let _ = session.wait();
    // Not the role's to copy; no such database; no --server.
    check("notours", &["--server", &url])
        .assert_error(&["copying database notours", "must own notours"]);
    check("nosuch", &["--server", &url])
        .assert_error(&["--restored nosuch: no such database on --server"]);
    check("prodclone", &[]).assert_error(&["--restored prodclone needs --server URL"]);
    assert_eq!(clone_state(), clone_before);
    assert_eq!(server_state(&theirs), before);
}

/// `--jobs N` reads each table in N key ranges at once (forced here on small tables with
/// `PGSNAPDIFF_SPLIT_ROWS`): the patch is byte for byte that of `--jobs 1`, for integer, text,
/// composite and content keys (the last is never split), on the sample and on a dump whose
/// names collide with the reading query's own aliases.
#[test]
pub(crate) fn parallel_key_ranges_write_the_patch_of_one_job_byte_for_byte() {
    let ctx = Ctx::new();
    let edit = ctx.path("edit.sql");
    std::fs::write(
        &edit,
        "UPDATE public.samples SET exact = exact + 1 WHERE id > 'a';
         UPDATE public.pairs SET weight = weight * 2 WHERE right_id = 'y';
         INSERT INTO public.pairs VALUES (2, 'z', 9);
         UPDATE public.s SET k = 'changed' WHERE t = 10;
         INSERT INTO public.t VALUES ('new', 'row');
         UPDATE public.by_email SET name = 'Bee' WHERE email = 'b@example.com';\n",
    )
    .unwrap();
    let inputs = [
        (sample_dump("onboarding.dump"), downgrade_sql()),
        (fixture("ok/types.sql"), edit),
    ];
    for (dump, sql) in &inputs {
        let patch = |jobs: &str| {
            let out = ctx.path(&format!("patch-{jobs}.json"));
            let run = ctx.finish(
                ctx.command(&[
                    "-v",
                    "check",
                    "-c",
                    "/dev/null",
                    "--dump",
                    s(dump),
                    "--downgrade-sql",
                    s(sql),
                    "--allow-lost",
                    "public.onboarding_states.agent_history",
                    "--jobs",
                    jobs,
                    "--patch-out",
                    s(&out),
                ])
                .env("PGSNAPDIFF_SPLIT_ROWS", "1"),
            );
            run.assert_code(0);
            (std::fs::read(&out).unwrap(), run.stderr)
        };
        let (one, stderr) = patch("1");
        assert!(!stderr.contains("key ranges"), "{stderr}");
        assert!(one.len() > 100, "a patch with operations");
        for jobs in ["2", "3", "7"] {
            let (many, stderr) = patch(jobs);
            assert!(stderr.contains("key ranges at once"), "{stderr}");
            assert!(
                !stderr.contains("public.t in"),
                "a keyless table is read whole: {stderr}"
            );
            assert_eq!(
                String::from_utf8_lossy(&one),
                String::from_utf8_lossy(&many),
                "--jobs {jobs} on {}",
                dump.display()
            );
        }
    }
}

/// `walk` with the real Alembic client on an existing server, as a role without superuser
/// rights: the same revisions and findings as on the embedded server, and nothing left there.
#[test]
pub(crate) fn walk_with_real_alembic_on_an_existing_server_matches_the_embedded_walk() {
    let theirs = their_server();
    let before = server_state(&theirs);
    let ctx = Ctx::new();
    let url = theirs.url_as("ci", "postgres");
    let steps = |doc: &walk::WalkDoc| -> Vec<(String, String, usize, Vec<String>)> {
        doc.steps
            .iter()
            .map(|s| {
                let lost: Vec<String> = s.lost_rows.keys().cloned().collect();
                (s.from.join(","), s.to.join(","), s.findings.len(), lost)
            })
            .collect()
    };
    let (embedded, doc) = walk::walk(&ctx, &shop_dump(), "walk/alembic", &["--to", "0001"]);
    embedded.assert_code(1);
    let want = steps(&doc.unwrap());
    let (run, doc) = walk::walk(
        &ctx,
        &shop_dump(),
        "walk/alembic",
        &["--to", "0001", "--server", &url, "--downgrade-superuser"],
    );
    run.assert_code(1);
    assert_eq!(steps(&doc.unwrap()), want);
    assert_eq!(want.len(), 3);
    // Asked for superuser rights the role does not have: said, not pretended.
    assert!(
        run.stderr
            .contains("--downgrade-superuser: role ci on --server is not a superuser"),
        "{}",
        run.stderr
    );
    assert_eq!(server_state(&theirs), before);
}
