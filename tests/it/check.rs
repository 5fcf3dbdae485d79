//! The main job on the sample, its verdicts, and failing downgrades.

use super::*;

// ---------------------------------------------------------------- the main job

#[test]
pub(crate) fn readme_main_command_proves_the_sample_rollback() {
    // `pgsnapdiff check` in the repo reads ./pgsnapdiff.toml: the shipped sample scenario.
    let ctx = Ctx::new();
    let out = ctx
        .command(&["check"])
        .current_dir(repo())
        .output()
        .unwrap();
    ctx.assert_clean();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS  expected patch"), "{stdout}");
    assert!(stdout.contains("PASS  rule rows-preserved"), "{stdout}");
    // The intended loss is acknowledged in the sample's config, and said.
    assert!(stdout.contains("PASS  rule data-lost (no table or column that held data is dropped or narrowed)\n      acknowledged (allow_lost): public.onboarding_states.agent_history: column dropped with 12 non-NULL values\n"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("rollback proven, with warnings from new-shape"),
        "{stdout}"
    );
}

#[test]
pub(crate) fn human_report_shows_schema_definitions_and_the_same_counts_as_every_output() {
    let ctx = Ctx::new();
    let (result, report) = (ctx.path("result.json"), ctx.path("report.html"));
    let dump = sample_dump("onboarding.dump");
    let extra = ["--result-out", s(&result), "--report", s(&report)];
    let run = check_with(&ctx, s(&dump), s(&downgrade_sql()), &extra);
    run.assert_code(0);
    run.assert_stdout("revision  b2c3d4e5f6g7 → a1b2c3d4e5f6\n");
    // A changed constraint is readable on screen: its old and new definitions.
    run.assert_stdout(
        "schema    2 changes
          remove   /schema/tables/public.onboarding_states/columns/agent_history  was {\"default\":\"'[]'::jsonb\",\"nullable\":false,\"type\":\"jsonb\"}
          replace  /schema/tables/public.onboarding_states/constraints/valid_current_step/definition  CHECK (((current_step >= 0) AND (current_step <= 9))) → CHECK (((current_step >= 0) AND (current_step <= 11)))
patch     122 operations (1 revision, 2 schema, 119 data)
",
    );
    // Unchanged tables: one line, unless --verbose.
    run.assert_stdout("table     1 table unchanged (1 untouched: counted, not read)\n");
    assert!(!run.stdout.contains("table     public.users"));
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(
        (
            doc.patch.revision,
            doc.patch.schema,
            doc.patch.data,
            doc.patch.operations
        ),
        (1, 2, 119, 122)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Schema changes (2)"), "{html}");
    assert!(html.contains("122 operations (1 revision, 2 schema, 119 data)"));

    let mut verbose = extra.to_vec();
    verbose.push("-v");
    let run = check_with(&ctx, s(&dump), s(&downgrade_sql()), &verbose);
    run.assert_code(0);
    run.assert_stdout(
        "table     public.users: 12 rows before, 12 after (0 changed, 0 added, 0 removed), untouched: counted, not read\n",
    );
}

#[test]
pub(crate) fn every_dump_format_restores_and_is_left_unchanged() {
    for name in [
        "onboarding.sql",
        "onboarding.sql.gz",
        "onboarding.dump",
        "onboarding.dir",
        "onboarding.tar",
    ] {
        let ctx = Ctx::new();
        let before = tree_bytes(&sample_dump(name));
        let run = check_sample(&ctx, name);
        run.assert_code(0);
        assert!(
            run.stdout.contains("rollback proven"),
            "{name}: {}",
            run.stdout
        );
        assert_eq!(
            before,
            tree_bytes(&sample_dump(name)),
            "{name} was modified"
        );
    }
}

#[test]
pub(crate) fn format_is_detected_from_content_not_name() {
    let ctx = Ctx::new();
    let disguised = ctx.path("backup.txt");
    std::fs::copy(sample_dump("onboarding.dump"), &disguised).unwrap();
    let run = check_with(
        &ctx,
        s(&disguised),
        s(&downgrade_sql()),
        &["--expect-patch", s(&expected_patch())],
    );
    run.assert_code(0);
    assert!(run.stdout.contains("(custom format"), "{}", run.stdout);
}

// ---------------------------------------------------------------- verdicts

#[test]
pub(crate) fn downgrade_that_loses_a_row_is_not_proven_and_names_the_row() {
    let ctx = Ctx::new();
    let lossy = fixture("onboarding/broken/deletes-row.sql");
    let run = check_vs_baseline(&ctx, &lossy);
    run.assert_code(1);
    let lost = r#"{"op":"remove","path":"/data/public.onboarding_states/7"}"#;
    run.assert_stdout("FAIL  expected patch");
    run.assert_stdout("FAIL  rule rows-preserved");
    run.assert_stdout(&format!("unexpected  {lost}"));
    run.assert_stdout("      /data/public.onboarding_states/7: row disappeared");
    run.assert_stdout("PASS  rule data-lost");
    run.assert_stdout("rollback NOT proven: 2 of 3 checks failed");
}

#[test]
pub(crate) fn rows_preserved_rule_catches_loss_without_an_expected_patch() {
    let ctx = Ctx::new();
    let lossy = fixture("onboarding/broken/deletes-row.sql");
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.sql")),
        s(&lossy),
        &["--table", "onboarding_states"],
    );
    run.assert_code(1);
    run.assert_stdout("/data/public.onboarding_states/7");
    assert!(
        !run.stdout.contains("public.users"),
        "--table must narrow: {}",
        run.stdout
    );
}

#[test]
pub(crate) fn downgrade_leaving_data_unrestored_reports_missing_operations() {
    let ctx = Ctx::new();
    let broken = fixture("onboarding/broken/forgets-step-data.sql");
    let run = check_vs_baseline(&ctx, &broken);
    run.assert_code(1);
    // Row 4's step_4 should have come back from the metadata.
    run.assert_stdout(r#"missing     {"op":"add","path":"/data/public.onboarding_states/4/step_data/step_4","value":{"target_weight_kg":75.0}}"#);
    run.assert_stdout("PASS  rule rows-preserved");
}

#[test]
pub(crate) fn patch_out_is_the_expected_patch_byte_for_byte() {
    let ctx = Ctx::new();
    let out = ctx.path("emitted.json");
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&downgrade_sql()),
        &["-o", s(&out)],
    );
    run.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(expected_patch()).unwrap(),
        "output must be deterministic and equal the committed baseline"
    );
    let leftovers: Vec<_> = std::fs::read_dir(ctx.cwd.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "atomic write left {leftovers:?}");
}

// ---------------------------------------------------------------- downgrade failures

#[test]
pub(crate) fn failing_downgrade_command_shows_its_output_and_exits_2() {
    let ctx = Ctx::new();
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-cmd",
        "echo 'alembic: revision not found' >&2; exit 3",
    ]);
    run.assert_error(&["downgrade failed", "exited with 3", "revision not found"]);
}

#[test]
pub(crate) fn downgrade_command_not_found_says_so() {
    let ctx = Ctx::new();
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-cmd",
        "alembic-does-not-exist downgrade -1",
    ]);
    run.assert_error(&["exited with 127", "command not found"]);
}

#[test]
pub(crate) fn downgrade_sql_error_names_file_and_line() {
    let ctx = Ctx::new();
    let bad = fixture("onboarding/broken/syntax-error.sql");
    let run = check_with(&ctx, s(&sample_dump("onboarding.dump")), s(&bad), &[]);
    run.assert_error(&[
        "downgrade failed",
        "syntax-error.sql:2",
        "syntax error",
        "rolled back",
    ]);
}

#[test]
pub(crate) fn downgrade_gets_the_connection_in_its_environment() {
    let ctx = Ctx::new();
    let seen = ctx.path("env.txt");
    let cmd = format!(
        "printf '%s\\n' \"$APP_DB\" \"$PGHOST\" \"$PGUSER\" \"$PGDATABASE\" > {} && psql -X -q -v ON_ERROR_STOP=1 -1 -f {}",
        s(&seen),
        s(&downgrade_sql())
    );
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-cmd",
        &cmd,
        "--url-env",
        "APP_DB",
        "--url-scheme",
        "postgresql+asyncpg",
        "--expect-patch",
        s(&expected_patch()),
    ]);
    run.assert_code(0);
    let env = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = env.lines().collect();
    assert!(
        lines[0].starts_with("postgresql+asyncpg://pgsnapdiff_owner:"),
        "{env}"
    );
    assert!(
        lines[0].contains("@127.0.0.1:") && lines[0].ends_with("/pgsnapdiff"),
        "{env}"
    );
    assert_eq!(&lines[1..], ["127.0.0.1", "pgsnapdiff_owner", "pgsnapdiff"]);
}

#[test]
pub(crate) fn server_runs_unprivileged_on_loopback_with_a_private_data_dir_and_a_password() {
    // CI runs as root. The server must still start, as another OS user, and be reachable only
    // from this machine, with the run's password, its files readable by nobody else.
    let ctx = Ctx::new();
    let seen = ctx.path("seen.txt");
    let work = s(ctx.work.path());
    let cmd = format!(
        r#"data=$(echo {work}/pgsnapdiff-*/data)
{{ stat -c %U /proc/$(head -1 "$data/postmaster.pid")/status
   stat -c %a "$data"
   psql -X -At -c 'SHOW listen_addresses'
   PGPASSWORD=wrong psql -X -At -c 'SELECT 1' 2>&1 | grep -c 'password authentication failed'
}} > {seen} && psql -X -q -v ON_ERROR_STOP=1 -1 -f {down}"#,
        seen = s(&seen),
        down = s(&downgrade_sql())
    );
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-cmd",
        &cmd,
    ]);
    run.assert_code(0);
    let seen = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    if me == "root" {
        assert_ne!(lines[0], "root", "the server must not run as root");
    } else {
        assert_eq!(lines[0], me);
    }
    assert_eq!(&lines[1..], ["700", "127.0.0.1", "1"], "{seen}");
}

#[test]
pub(crate) fn hung_downgrade_is_killed_at_the_timeout() {
    let ctx = Ctx::new();
    let run = hanging_downgrade(&ctx, "78.25", &["--downgrade-timeout", "1"]);
    run.assert_error(&["did not finish within 1s", "killed"]);
}

#[test]
pub(crate) fn sigint_during_downgrade_cleans_up_everything() {
    let ctx = Ctx::new();
    let child = spawn_hanging(&ctx, "79.5");
    signal(child.id(), nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    ctx.assert_clean();
    assert!(processes_running("sleep 79.5").is_empty());
}
