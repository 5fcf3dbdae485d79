//! Bad inputs: every one a clear line, a non-zero exit, nothing left behind.

use super::*;

// ---------------------------------------------------------------- bad inputs

/// The sample dump, this downgrade, the committed expected patch.
pub(crate) fn check_vs_baseline(ctx: &Ctx, downgrade: &std::path::Path) -> Run {
    let dump = sample_dump("onboarding.dump");
    let baseline = expected_patch();
    check_with(
        ctx,
        s(&dump),
        s(downgrade),
        &["--expect-patch", s(&baseline)],
    )
}

/// `check --dump DUMP --downgrade-sql SQL EXTRA...` (of the sample, in all but name), its
/// intended loss (agent_history) acknowledged.
pub(crate) fn check_with(ctx: &Ctx, dump: &str, sql: &str, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--dump", dump, "--downgrade-sql", sql];
    args.extend_from_slice(&SAMPLE_LOSS);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

/// `check` of any dump with SQL files as the downgrade, and `extra` flags (nothing else).
pub(crate) fn check_sql(
    ctx: &Ctx,
    dump: &std::path::Path,
    sql: &std::path::Path,
    extra: &[&str],
) -> Run {
    let mut args = vec!["check", "--dump", s(dump), "--downgrade-sql", s(sql)];
    args.extend_from_slice(extra);
    ctx.run(&args)
}

pub(crate) fn check_dump(ctx: &Ctx, dump: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--dump", s(dump), "--downgrade-sql"];
    let sql = downgrade_sql();
    args.push(s(&sql));
    args.extend_from_slice(&SAMPLE_LOSS);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

/// A check of the sample whose downgrade is `sleep SECS` (SECS unique per test, so its
/// process can be found), with `extra` flags; asserts afterwards that no sleep is left.
pub(crate) fn hanging_downgrade(ctx: &Ctx, secs: &str, extra: &[&str]) -> Run {
    let sleep = format!("sleep {secs}");
    let dump = sample_dump("onboarding.dump");
    let mut args = vec![
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        &sleep,
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let run = ctx.run(&args);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        processes_running(&sleep).is_empty(),
        "{sleep} outlived the run"
    );
    run
}

/// Spawn that check in the background and wait until its downgrade is running.
pub(crate) fn spawn_hanging(ctx: &Ctx, secs: &str) -> std::process::Child {
    let sleep = format!("sleep {secs}");
    let dump = sample_dump("onboarding.dump");
    let child = ctx
        .command(&["check", "--dump", s(&dump), "--downgrade-cmd", &sleep])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for(60, "the downgrade", || descendant_running(pid, &sleep));
    child
}

/// The bad-input matrix: every fixture in tests/fixtures/err, its flags, its exit code and
/// what its one line must say. A fixture without an entry fails the test.
#[test]
pub(crate) fn bad_input_matrix() {
    let pg15 = system_pg_bin();
    let noop = repo().join("tests/fixtures/ok/noop.sql");
    let rule =
        "onboarding_states /step_data/_migration_metadata /current_step=/original_current_step";
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], i32, &[&str])] = &[
        ("missing.dump", &[], 2, &["missing.dump: no such file"]),
        ("empty.dump", &[], 2, &["empty.dump: empty file", "re-create"]),
        ("random.bin", &[], 2, &["random.bin: not a pg_dump output"]),
        ("truncated-header.dump", &[], 2, &["truncated", "re-create the dump"]),
        ("truncated.dump", &[], 2, &["truncated.dump: restore failed", "truncated or corrupt"]),
        ("truncated.sql", &[], 2, &["truncated.sql: truncated", "dump complete"]),
        ("no-toc.dir", &[], 2, &["no-toc.dir: a directory without toc.dat"]),
        ("bad-sql.sql", &[], 2, &["bad-sql.sql: restore failed", "invalid input syntax"]),
        ("pg16.dump", &["--pg-bin", s(&pg15)], 2, &["written by pg_dump 16", "--pg-version 16"]),
        ("pg16-new-syntax.sql", &["--pg-bin", s(&pg15)], 2, &["pg_input_is_valid", "written by pg_dump 16.15, newer than PostgreSQL 15", "--pg-version 16"]),
        ("slow.sql", &["--timeout", "5"], 2, &["did not finish within --timeout 5s"]),
        ("jsonb-not-object.sql", &["--metadata-rule", rule], 1, &["rule matched no rows"]),
        ("no-primary-key.sql", &[], 0, &["public.events has no primary key"]),
        ("unknown-key.toml", &[], 2, &["invalid config (line 2)", "unknown field `expect_pach`"]),
        ("bad-pointer.toml", &[], 2, &["\"step_data/_migration_metadata\" is not a JSON Pointer"]),
    ];
    let dir = fixture("err");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.push("missing.dump".into());
    for file in &files {
        assert!(
            cases.iter().any(|c| c.0 == file),
            "no expectation for tests/fixtures/err/{file}"
        );
    }
    for (file, extra, code, needles) in cases {
        let ctx = Ctx::new();
        let path = dir.join(file);
        let before = path.exists().then(|| tree_bytes(&path));
        let mut args = vec!["check"];
        if file.ends_with(".toml") {
            args.extend(["-c", s(&path)]);
        } else {
            // The downgrade does nothing, on purpose: these are about the inputs.
            args.extend([
                "--dump",
                s(&path),
                "--downgrade-sql",
                s(&noop),
                "--allow-noop",
            ]);
        }
        args.extend_from_slice(extra);
        let run = ctx.run(&args);
        assert_eq!(run.code, *code, "{file}: {run:?}");
        let said = match code {
            2 => run.error_line().to_string(),
            _ => format!("{}{}", run.stdout, run.stderr),
        };
        for needle in *needles {
            assert!(said.contains(needle), "{file}: lacks {needle:?}: {said}");
        }
        if let Some(before) = before {
            assert_eq!(before, tree_bytes(&path), "{file} was modified");
        }
    }
}

#[test]
pub(crate) fn a_newer_plain_dump_is_tried_on_older_binaries_with_a_note() {
    // pg_dump 16's plain SQL of the sample loads on PostgreSQL 15's psql: tried, and said.
    let ctx = Ctx::new();
    let pg15 = system_pg_bin();
    let run = check_dump(&ctx, &fixture("ok/pg16.sql"), &["--pg-bin", s(&pg15)]);
    run.assert_code(0);
    run.assert_stdout("server    PostgreSQL 15.");
    assert!(
        run.stderr
            .contains("written by pg_dump 16.15, newer than the PostgreSQL 15"),
        "{}",
        run.stderr
    );
}

#[test]
pub(crate) fn newer_dump_picks_matching_binaries_when_not_forced() {
    // Without --pg-bin, a pg_dump 16 archive must not be given to PostgreSQL 15.
    let ctx = Ctx::new();
    let run = check_dump(&ctx, &fixture("err/pg16.dump"), &[]);
    if run.code == 2 {
        run.assert_error(&["PostgreSQL 16 or newer", "scripts/stage-postgres 16"]);
    } else {
        run.assert_code(0);
        run.assert_stdout("server    PostgreSQL 1");
        assert!(!run.stdout.contains("PostgreSQL 15."), "{}", run.stdout);
    }
}

#[test]
pub(crate) fn unknown_table_lists_the_tables_there() {
    let ctx = Ctx::new();
    let run = check_dump(
        &ctx,
        &sample_dump("onboarding.dump"),
        &["--table", "public.onboarding"],
    );
    run.assert_error(&[
        "has no table public.onboarding",
        "public.onboarding_states",
        "public.users",
    ]);
}

#[test]
pub(crate) fn missing_inputs_fail_before_any_restore() {
    // With --verbose every stage announces itself: validation must fail before the first.
    let ctx = Ctx::new();
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        "nope.sql",
        &["-v"],
    );
    run.assert_error(&["nope.sql: migration SQL file not found"]);
    let run_ok = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&downgrade_sql()),
        &["-v"],
    );
    let runs = [
        run,
        ctx.run(&["check", "-v", "--downgrade-sql", s(&downgrade_sql())]),
        ctx.run(&[
            "check",
            SAMPLE_LOSS[0],
            SAMPLE_LOSS[1],
            "-v",
            "--dump",
            s(&sample_dump("onboarding.dump")),
        ]),
    ];
    runs[1].assert_error(&["no dump given"]);
    runs[2].assert_error(&["no downgrade given"]);
    // The same flags on valid inputs do announce the boot, so the absence below means something.
    assert!(
        run_ok.stderr.contains("starting PostgreSQL"),
        "{}",
        run_ok.stderr
    );
    for run in &runs {
        assert!(
            !run.stderr.contains("starting PostgreSQL"),
            "validation must not boot a server:\n{}",
            run.stderr
        );
    }
}

#[test]
pub(crate) fn config_file_unknown_key_and_flag_precedence() {
    let ctx = Ctx::new();
    std::fs::write(
        ctx.path("pgsnapdiff.toml"),
        "dump = \"x.dump\"\nexpect_pach = \"p.json\"\n",
    )
    .unwrap();
    let run = ctx.run(&["check"]);
    run.assert_error(&["pgsnapdiff.toml: invalid config (line 2)", "expect_pach"]);

    // Flags win over the file; the file's relative paths are relative to the file.
    let dir = ctx.path("conf");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(downgrade_sql(), dir.join("down.sql")).unwrap();
    std::fs::write(
        dir.join("custom.toml"),
        "dump = \"missing.dump\"\nexpect_patch = \"missing.json\"\n[downgrade]\nsql = [\"down.sql\"]\n",
    )
    .unwrap();
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "-c",
        s(&dir.join("custom.toml")),
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--expect-patch",
        s(&expected_patch()),
    ]);
    run.assert_code(0);
    run.assert_stdout("conf/down.sql");
}
