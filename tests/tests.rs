//! Integration tests: the real binary, the real embedded PostgreSQL, real dumps.
//! Every `Ctx::run` also asserts that no temp dir and no process was left behind.

mod util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;

fn check_sample(ctx: &Ctx, dump: &str) -> Run {
    let dump = sample_dump(dump);
    check_with(
        ctx,
        s(&dump),
        s(&downgrade_sql()),
        &["--expect-patch", s(&expected_patch())],
    )
}

// ---------------------------------------------------------------- the main job

#[test]
fn readme_main_command_proves_the_sample_rollback() {
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
fn human_report_shows_schema_definitions_and_the_same_counts_as_every_output() {
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
    run.assert_stdout("table     1 table unchanged\n");
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
        "table     public.users: 12 rows before, 12 after (0 changed, 0 added, 0 removed)\n",
    );
}

#[test]
fn every_dump_format_restores_and_is_left_unchanged() {
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
fn format_is_detected_from_content_not_name() {
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
fn downgrade_that_loses_a_row_is_not_proven_and_names_the_row() {
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
fn rows_preserved_rule_catches_loss_without_an_expected_patch() {
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
fn downgrade_leaving_data_unrestored_reports_missing_operations() {
    let ctx = Ctx::new();
    let broken = fixture("onboarding/broken/forgets-step-data.sql");
    let run = check_vs_baseline(&ctx, &broken);
    run.assert_code(1);
    // Row 4's step_4 should have come back from the metadata.
    run.assert_stdout(r#"missing     {"op":"add","path":"/data/public.onboarding_states/4/step_data/step_4","value":{"target_weight_kg":75.0}}"#);
    run.assert_stdout("PASS  rule rows-preserved");
}

#[test]
fn patch_out_is_the_expected_patch_byte_for_byte() {
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
fn failing_downgrade_command_shows_its_output_and_exits_2() {
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
fn downgrade_command_not_found_says_so() {
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
fn downgrade_sql_error_names_file_and_line() {
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
fn downgrade_gets_the_connection_in_its_environment() {
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
fn server_runs_unprivileged_on_loopback_with_a_private_data_dir_and_a_password() {
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
fn hung_downgrade_is_killed_at_the_timeout() {
    let ctx = Ctx::new();
    let run = hanging_downgrade(&ctx, "78.25", &["--downgrade-timeout", "1"]);
    run.assert_error(&["did not finish within 1s", "killed"]);
}

#[test]
fn sigint_during_downgrade_cleans_up_everything() {
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

// ---------------------------------------------------------------- bad inputs

/// The sample dump, this downgrade, the committed expected patch.
fn check_vs_baseline(ctx: &Ctx, downgrade: &std::path::Path) -> Run {
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
fn check_with(ctx: &Ctx, dump: &str, sql: &str, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--dump", dump, "--downgrade-sql", sql];
    args.extend_from_slice(&SAMPLE_LOSS);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

fn check_dump(ctx: &Ctx, dump: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--dump", s(dump), "--downgrade-sql"];
    let sql = downgrade_sql();
    args.push(s(&sql));
    args.extend_from_slice(&SAMPLE_LOSS);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

/// A check of the sample whose downgrade is `sleep SECS` (SECS unique per test, so its
/// process can be found), with `extra` flags; asserts afterwards that no sleep is left.
fn hanging_downgrade(ctx: &Ctx, secs: &str, extra: &[&str]) -> Run {
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
fn spawn_hanging(ctx: &Ctx, secs: &str) -> std::process::Child {
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
fn bad_input_matrix() {
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
        ("pg16.sql", &["--pg-bin", s(&pg15)], 2, &["written by pg_dump 16", "--pg-version 16"]),
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
fn newer_dump_picks_matching_binaries_when_not_forced() {
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
fn unknown_table_lists_the_tables_there() {
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
fn missing_inputs_fail_before_any_restore() {
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
fn config_file_unknown_key_and_flag_precedence() {
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

// ---------------------------------------------------------------- snapshot and diff

#[test]
fn snapshot_maps_types_losslessly_and_keys_rows_as_documented() {
    let ctx = Ctx::new();
    let a = ctx.path("a.json");
    let b = ctx.path("b.json");
    let dump = fixture("ok/types.sql");
    let run = ctx.run(&["snapshot", "--dump", s(&dump), "-o", s(&a)]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("public.events has no primary key"),
        "{}",
        run.stderr
    );
    ctx.run(&["snapshot", "--dump", s(&dump), "-o", s(&b)])
        .assert_code(0);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b).unwrap(),
        "snapshots must be deterministic"
    );

    // Exact numeric text survives (no float rounding), as does jsonb's 1.10.
    assert!(text.contains(r#""exact":0.33333333333333333333"#), "{text}");
    assert!(text.contains(r#""n":1.10"#), "{text}");
    assert!(text.contains(r#""big":9223372036854775807"#), "{text}");

    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["format"], "pgsnapdiff-snapshot/1");
    assert_eq!(doc["alembic_version"], Value::Null);
    let samples = &doc["data"]["public.samples"];
    assert_eq!(samples["a/b~c"]["raw"], "\\xdeadbeef");
    assert_eq!(samples["a/b~c"]["ratio"], "NaN");
    assert_eq!(samples["a/b~c"]["tags"], serde_json::json!(["x", "y z"]));
    assert_eq!(samples["a/b~c"]["seen"], "2026-01-02T03:04:05.678+00:00");
    assert_eq!(samples["inf"]["exact"], "Infinity");
    assert_eq!(samples["nan"]["ratio"], "-Infinity");
    // Composite keys are JSON arrays as text, in byte order.
    let pairs: Vec<&String> = doc["data"]["public.pairs"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(pairs, [r#"[1, "x"]"#, r#"[1, "y"]"#, r#"[10, "x"]"#]);
    // A NOT NULL unique column keys the row when there is no primary key.
    assert!(doc["data"]["public.by_email"]["a@example.com"].is_object());
    // No key at all: content hash plus occurrence number; duplicates stay distinct.
    let events: Vec<&String> = doc["data"]["public.events"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().any(|k| k.ends_with("-2")), "{events:?}");
    // Tables and columns named like the query's aliases are read like any other.
    assert_eq!(
        doc["data"]["public.s"],
        serde_json::json!({
            "10": {"c": "c10", "k": "k10", "r": "r10", "t": 10},
            "2": {"c": "c2", "k": "k2", "r": "r2", "t": 2}
        })
    );
    let t: Vec<&Value> = doc["data"]["public.t"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    assert_eq!(t, [&serde_json::json!({"r": "y", "t": "x"}); 2]);
    let cols = &doc["schema"]["tables"]["public.samples"]["columns"];
    assert_eq!(cols["exact"]["type"], "numeric");
    assert_eq!(cols["id"]["nullable"], false);
    let schema = &doc["schema"];
    assert_eq!(
        schema["enums"]["public.mood"],
        serde_json::json!(["low", "ok", "high"])
    );
    assert_eq!(schema["sequences"]["public.ticket_seq"]["start"], 100);
    assert_eq!(schema["sequences"]["public.ticket_seq"]["increment"], 5);
    assert!(
        schema["views"]["public.sample_ids"]["definition"]
            .as_str()
            .unwrap()
            .contains("samples")
    );
    assert!(
        schema["functions"]["public.touch()"]
            .as_str()
            .unwrap()
            .contains("RETURN NEW")
    );
    assert!(
        schema["tables"]["public.samples"]["triggers"]["samples_touch"]
            .as_str()
            .unwrap()
            .contains("BEFORE UPDATE")
    );
    assert_eq!(
        schema["tables"]["public.pairs"]["constraints"]["pairs_pkey"]["definition"],
        "PRIMARY KEY (left_id, right_id)"
    );
}

#[test]
fn diff_of_snapshot_files_is_a_patch_that_turns_before_into_after() {
    let ctx = Ctx::new();
    let before = ctx.path("before.json");
    ctx.run(&[
        "snapshot",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "-o",
        s(&before),
    ])
    .assert_code(0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&before).unwrap()).unwrap();

    // After: a row gone, a nested value changed, a row added, a table dropped, a table added.
    let mut after = doc.clone();
    let states = after["data"]["public.onboarding_states"]
        .as_object_mut()
        .unwrap();
    states.remove("7");
    states.get_mut("4").unwrap()["step_data"]["step_1"]["goal"] = "strength".into();
    states.insert(
        "99".into(),
        serde_json::json!({"id": 99, "current_step": 1}),
    );
    let data = after["data"].as_object_mut().unwrap();
    data.remove("public.users");
    data.insert("public.zz/new~".into(), serde_json::json!({"1": {"id": 1}}));
    after["alembic_version"] = serde_json::json!(["a1b2c3d4e5f6"]);
    let after_path = ctx.path("after.json");
    write_snapshot(&after, &after_path);

    let patch_path = ctx.path("patch.json");
    let run = ctx.run(&["diff", s(&before), s(&after_path), "-o", s(&patch_path)]);
    run.assert_code(1);
    let patch: json_patch::Patch =
        serde_json::from_str(&std::fs::read_to_string(&patch_path).unwrap()).unwrap();
    let mut applied = doc.clone();
    json_patch::patch(&mut applied, &patch).unwrap();
    assert_eq!(applied, after);
    let paths: Vec<String> = patch.iter().map(|op| op.path().to_string()).collect();
    assert!(
        paths.contains(&"/data/public.onboarding_states/7".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/data/public.zz~1new~0".to_string()),
        "{paths:?}"
    );

    // Other layouts of the same JSON give the same patch: all on one line, and a row broken
    // over two lines halfway through a table (the line reader hands over to the general
    // parser there, which skips what was already read).
    let canonical = std::fs::read_to_string(&after_path).unwrap();
    let one_line = ctx.path("one-line.json");
    std::fs::write(&one_line, canonical.replace('\n', " ")).unwrap();
    let broken_row = ctx.path("broken-row.json");
    assert!(canonical.contains("\"5\": {"));
    std::fs::write(
        &broken_row,
        canonical.replacen("\"5\": {", "\"5\":\n   {", 1),
    )
    .unwrap();
    for other in [&one_line, &broken_row] {
        let out = ctx.path("other-patch.json");
        ctx.run(&["diff", s(&before), s(other), "-o", s(&out)])
            .assert_code(1);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&patch_path).unwrap(),
            "{}",
            other.display()
        );
    }

    // Identical files: exit 0 and an empty patch.
    let run = ctx.run(&["diff", s(&before), s(&before)]);
    run.assert_code(0);
    assert_eq!(run.stdout, "[]\n");
}

#[test]
fn diff_rejects_files_that_are_not_snapshots() {
    let ctx = Ctx::new();
    let bad = ctx.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"format": "pgsnapdiff-snapshot/1", "schema": {}, "data": {"t": {"2": {}, "1": {}}}}"#,
    )
    .unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&["bad.json: not a valid pgsnapdiff snapshot", "out of order"]);
    // The same in the layout pgsnapdiff writes (the line reader's path).
    let header = pgsnapdiff::snapshot::Header {
        alembic_version: Value::Null,
        schema: serde_json::json!({}),
    };
    let mut w = pgsnapdiff::snapshot::file::Writer::begin(Vec::new(), &header).unwrap();
    w.table("t").unwrap();
    w.row("2", &serde_json::json!({})).unwrap();
    w.row("1", &serde_json::json!({})).unwrap();
    std::fs::write(&bad, w.finish().unwrap()).unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&[
        "bad.json: not a valid pgsnapdiff snapshot",
        "row \"1\" of \"t\" is out of order",
    ]);
    std::fs::write(
        &bad,
        "{\"format\": \"pgsnapdiff-snapshot/1\", \"schema\": {",
    )
    .unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&["bad.json: not a valid pgsnapdiff snapshot"]);
    let run = ctx.run(&["diff", "missing.json", s(&bad)]);
    run.assert_error(&["missing.json: no such snapshot file"]);
}

/// Write a snapshot document the way pgsnapdiff does (data last, sorted keys).
fn write_snapshot(doc: &Value, path: &std::path::Path) {
    let header = pgsnapdiff::snapshot::Header {
        alembic_version: doc["alembic_version"].clone(),
        schema: doc["schema"].clone(),
    };
    let file = std::fs::File::create(path).unwrap();
    let mut w = pgsnapdiff::snapshot::file::Writer::begin(file, &header).unwrap();
    for (table, rows) in doc["data"].as_object().unwrap() {
        w.table(table).unwrap();
        for (key, row) in rows.as_object().unwrap() {
            w.row(key, row).unwrap();
        }
    }
    w.finish().unwrap();
}

// ---------------------------------------------------------------- restoration rules (issue 3)

/// The JSON result, decoded into our own mirror of its documented schema: a format change
/// breaks this test.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ResultDoc {
    format: String,
    verdict: String,
    dump: serde_json::Map<String, Value>,
    server: String,
    upgrade: Option<String>,
    downgrade: String,
    timing_seconds: std::collections::BTreeMap<String, f64>,
    tables: std::collections::BTreeMap<String, TableCountsDoc>,
    patch: PatchCountsDoc,
    data_lost: Vec<LossDoc>,
    checks: Vec<CheckDoc>,
    findings: Vec<FindingDoc>,
}

/// A table or column dropped (or narrowed) with data (README "Result JSON", `data_lost`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LossDoc {
    name: String,
    kind: String,
    count: u64,
    acknowledged: bool,
    from_type: Option<String>,
    to_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TableCountsDoc {
    rows_before: u64,
    rows_after: u64,
    added: u64,
    removed: u64,
    changed: u64,
    #[serde(default)]
    dropped: bool,
    #[serde(default)]
    created: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PatchCountsDoc {
    operations: u64,
    revision: u64,
    schema: u64,
    data: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckDoc {
    id: String,
    #[allow(dead_code)]
    name: String,
    passed: bool,
    severity: String,
    notes: Vec<String>,
    findings: u64,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingDoc {
    rule: String,
    message: String,
    table: Option<String>,
    key: Option<String>,
    path: String,
    before: Option<Value>,
    expected: Option<Value>,
    actual: Option<Value>,
}

/// The sample's rules (as in the repo's pgsnapdiff.toml), with absolute paths and no expected
/// patch: the rollback must be provable by rules alone.
fn rules_config(ctx: &Ctx) -> std::path::PathBuf {
    let text = format!(
        r#"dump = "{}"
allow_lost = ["public.onboarding_states.agent_history"]
[[rules.metadata]]
table = "public.onboarding_states"
metadata = "/step_data/_migration_metadata"
fields = {{ "/current_step" = "/original_current_step", "/step_data" = "/original_step_data" }}
[expect]
revision = "a1b2c3d4e5f6"
absent = ["/schema/tables/public.onboarding_states/columns/agent_history"]
tests = [
  {{ path = "/schema/tables/public.onboarding_states/constraints/valid_current_step/definition", value = "CHECK (((current_step >= 0) AND (current_step <= 11)))" }},
]
"#,
        s(&sample_dump("onboarding.dump"))
    );
    let path = ctx.path("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `check` with the sample rules and `downgrade`, returning the run and its JSON result.
fn check_rules(ctx: &Ctx, downgrade: &std::path::Path, extra: &[&str]) -> (Run, ResultDoc) {
    let config = rules_config(ctx);
    let result = ctx.path("result.json");
    let mut args = vec![
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "-c",
        s(&config),
        "--downgrade-sql",
        s(downgrade),
    ];
    args.extend_from_slice(&["--result-out", s(&result)]);
    args.extend_from_slice(extra);
    let run = ctx.run(&args);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap())
        .unwrap_or_else(|e| panic!("result JSON does not match its schema: {e}"));
    assert_eq!(doc.format, "pgsnapdiff-result/1");
    (run, doc)
}

fn findings_of<'a>(doc: &'a ResultDoc, rule: &str) -> Vec<&'a FindingDoc> {
    doc.findings.iter().filter(|f| f.rule == rule).collect()
}

fn keys(findings: &[&FindingDoc]) -> Vec<String> {
    let mut keys: Vec<String> = findings.iter().filter_map(|f| f.key.clone()).collect();
    keys.dedup();
    keys
}

fn broken(name: &str) -> std::path::PathBuf {
    fixture(&format!("onboarding/broken/{name}.sql"))
}

#[test]
fn sample_is_proven_by_rules_alone() {
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &downgrade_sql(), &[]);
    run.assert_code(0);
    assert_eq!(doc.verdict, "proven");
    let ids: Vec<&str> = doc.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "rows-preserved",
            "data-lost",
            "metadata-restored",
            "after-state",
            "revision",
            "new-shape"
        ]
    );
    let errors = doc.checks.iter().filter(|c| c.severity == "error");
    assert!(errors.clone().all(|c| c.passed && c.findings == 0));
    assert_eq!(errors.count(), 5);
    assert!(doc.findings.iter().all(|f| f.rule == "new-shape"));
    run.assert_stdout("9 rows with /step_data/_migration_metadata restored");
    run.assert_stdout("3 rows without it unchanged");
}

#[test]
fn rows_created_after_the_migration_are_reported_as_left_in_the_new_shape() {
    // Rows 10 and 11 were written by the 9-state app: merged step keys, state numbers. The
    // downgrade restores rows 1-9 from their metadata and leaves 10-12 as they are. Row 12
    // (step 0, {}) reads the same in both shapes, so it is not reported.
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &downgrade_sql(), &[]);
    run.assert_code(0);
    let found = findings_of(&doc, "new-shape");
    assert_eq!(keys(&found), ["10", "11"]);
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let t = "/data/public.onboarding_states";
    assert_eq!(
        paths,
        [
            format!("{t}/10/step_data/step_1/fitness_level"),
            format!("{t}/10/step_data/step_2/age"),
            format!("{t}/10/step_data/step_2/height_cm"),
            format!("{t}/10/current_step"),
            format!("{t}/11/step_data/step_1/fitness_level"),
            format!("{t}/11/step_data/step_9/confirmed"),
            format!("{t}/11/current_step"),
        ]
    );
    assert_eq!(found[3].actual, Some(serde_json::json!(2)));
    // Untouched by the downgrade: before is what is there.
    assert_eq!(found[3].before, found[3].actual);
    assert!(found[0].message.contains("key not in the old shape"));
    let check = doc.checks.iter().find(|c| c.id == "new-shape").unwrap();
    assert_eq!((check.severity.as_str(), check.passed), ("warning", false));
    assert_eq!(
        check.notes,
        [
            "public.onboarding_states: 2 of 12 rows left in the new shape (old shape of step_data learned from 9 rows the downgrade rewrote)"
        ]
    );
    run.assert_stdout("WARN  rule new-shape");
    run.assert_stdout("rollback proven, with warnings from new-shape");

    // --strict turns the warning into a failure; --new-shape off removes the rule.
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &downgrade_sql(), &["--strict"]);
    run.assert_code(1);
    assert_eq!(doc.verdict, "not proven");
    assert_eq!(findings_of(&doc, "new-shape").len(), 7);
    run.assert_stdout("FAIL  rule new-shape");
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &downgrade_sql(), &["--new-shape", "off"]);
    run.assert_code(0);
    assert!(doc.checks.iter().all(|c| c.id != "new-shape"));
    assert!(doc.findings.is_empty());
}

#[test]
fn correct_downgrade_of_a_dump_without_post_migration_rows_leaves_nothing_in_the_new_shape() {
    // The 11-step dump, upgraded then downgraded: every row carries metadata and is restored.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding-a1b2c3d4e5f6.dump")),
        "--upgrade-sql",
        s(&fixture("onboarding/upgrade.sql")),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "--strict",
        "--result-out",
        s(&result),
    ]);
    run.assert_code(0);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let check = doc.checks.iter().find(|c| c.id == "new-shape").unwrap();
    assert!(check.passed, "{:?}", doc.findings);
    assert_eq!(check.severity, "error");
    assert_eq!(
        check.notes,
        [
            "public.onboarding_states: 0 of 9 rows left in the new shape (old shape of step_data learned from 9 rows the downgrade rewrote)"
        ]
    );
    run.assert_stdout("PASS  rule new-shape");
}

#[test]
fn metadata_left_in_place_is_caught_in_every_migrated_row() {
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &broken("metadata-left"), &[]);
    run.assert_code(1);
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(keys(&found), ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    for f in &found {
        assert_eq!(f.message, "metadata left in place");
        assert_eq!(
            f.path,
            format!(
                "/data/public.onboarding_states/{}/step_data/_migration_metadata",
                f.key.as_ref().unwrap()
            )
        );
        assert!(f.actual.as_ref().unwrap()["original_current_step"].is_number());
    }
}

#[test]
fn truthiness_bug_skipping_step_zero_and_empty_data_is_caught() {
    // Through flags this time: the same rules, no config file.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.sql")),
        s(&broken("truthiness")),
        &[
            "--result-out",
            s(&result),
            "--metadata-rule",
            "public.onboarding_states /step_data/_migration_metadata /current_step=/original_current_step /step_data=/original_step_data",
            "--expect-revision",
            "a1b2c3d4e5f6",
            "--expect-absent",
            "/schema/tables/public.onboarding_states/columns/agent_history",
        ],
    );
    run.assert_code(1);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key.as_deref(), Some("1"));
    assert_eq!(
        found[0].path,
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );
    assert_eq!(found[0].message, "metadata left in place");
    assert_eq!(
        found[0].actual,
        Some(serde_json::json!({"original_current_step": 0, "original_step_data": {}}))
    );
}

#[test]
fn deleting_rows_without_metadata_is_caught_by_two_rules() {
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &broken("deletes-unmigrated"), &[]);
    run.assert_code(1);
    for rule in ["rows-preserved", "metadata-restored"] {
        let found = findings_of(&doc, rule);
        assert_eq!(keys(&found), ["10", "11", "12"], "{rule}");
        assert!(found.iter().all(|f| f.message == "row disappeared"
            && f.actual.is_none()
            && f.table.as_deref() == Some("public.onboarding_states")));
        assert_eq!(found[0].expected.as_ref().unwrap()["current_step"], 2);
    }
}

#[test]
fn constraint_not_reverted_fails_the_schema_test() {
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &broken("constraint-not-reverted"), &[]);
    run.assert_code(1);
    let found = findings_of(&doc, "after-state");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].path,
        "/schema/tables/public.onboarding_states/constraints/valid_current_step/definition"
    );
    assert_eq!(found[0].message, "test failed: nothing there");
    assert!(findings_of(&doc, "metadata-restored").is_empty());
}

#[test]
fn revision_not_moved_is_reported_with_both_revisions() {
    let ctx = Ctx::new();
    let (run, doc) = check_rules(&ctx, &broken("revision-not-moved"), &[]);
    run.assert_code(1);
    let found = findings_of(&doc, "revision");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].expected, Some(serde_json::json!(["a1b2c3d4e5f6"])));
    assert_eq!(found[0].actual, Some(serde_json::json!(["b2c3d4e5f6g7"])));
    let failed: Vec<&str> = doc
        .checks
        .iter()
        .filter(|c| !c.passed && c.severity == "error")
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(failed, ["revision"]);
}

#[test]
fn misspelt_metadata_pointer_is_a_finding_not_a_pass() {
    let ctx = Ctx::new();
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&downgrade_sql()),
        &[
            "--metadata-rule",
            "onboarding_states /step_data/_migration_meta /current_step=/original_current_step",
        ],
    );
    run.assert_code(1);
    run.assert_stdout("rule matched no rows");
    // Rows without metadata must be unchanged by default, so the real downgrade fails it too.
    run.assert_stdout("changed (row has no metadata)");
}

#[test]
fn bad_rule_configuration_is_an_error() {
    let ctx = Ctx::new();
    let dump = sample_dump("onboarding.dump");
    let sql = downgrade_sql();
    let base = ["check", "--dump", s(&dump), "--downgrade-sql", s(&sql)];
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--metadata-rule", "t step_data /a=/b"],
            &["is not a JSON Pointer"],
        ),
        (
            &["--metadata-rule", "t /m"],
            &["maps no FIELD_PTR=SOURCE_PTR"],
        ),
        (
            &["--expect-test", "/schema=not json"],
            &["the value is not JSON"],
        ),
        (&["--roundtrip-ignore", "t.c"], &["needs --upgrade-sql"]),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        ctx.run(&args).assert_error(needles);
    }
}

#[test]
fn round_trip_passes_with_the_correct_migration_and_names_a_lost_jsonb_key() {
    let dump = sample_dump("onboarding-a1b2c3d4e5f6.dump");
    let upgrade = fixture("onboarding/upgrade.sql");
    let roundtrip = |ctx: &Ctx, downgrade: &std::path::Path| {
        let result = ctx.path("result.json");
        let run = ctx.run(&[
            "check",
            SAMPLE_LOSS[0],
            SAMPLE_LOSS[1],
            "--dump",
            s(&dump),
            "--upgrade-sql",
            s(&upgrade),
            "--downgrade-sql",
            s(downgrade),
            "--result-out",
            s(&result),
        ]);
        let doc: ResultDoc =
            serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        (run, doc)
    };

    let ctx = Ctx::new();
    let (run, doc) = roundtrip(&ctx, &downgrade_sql());
    run.assert_code(0);
    assert!(doc.upgrade.is_some());
    assert!(doc.checks.iter().any(|c| c.id == "round-trip" && c.passed));

    let ctx = Ctx::new();
    let (run, doc) = roundtrip(&ctx, &broken("loses-jsonb-key"));
    run.assert_code(1);
    let found = findings_of(&doc, "round-trip");
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let want: Vec<String> = (4..=9)
        .map(|k| format!("/data/public.onboarding_states/{k}/step_data/step_3/height_cm"))
        .collect();
    assert_eq!(paths, want);
    assert!(
        found
            .iter()
            .all(|f| f.actual.as_ref().unwrap()["op"] == "remove")
    );
    run.assert_stdout("upgrade   ");
}

#[test]
fn round_trip_ignores_declared_columns() {
    // An "upgrade" that only touches updated_at, undone by nothing: ignored, it passes.
    let ctx = Ctx::new();
    let upgrade = ctx.path("touch.sql");
    std::fs::write(
        &upgrade,
        "UPDATE onboarding_states SET updated_at = now();\n",
    )
    .unwrap();
    let noop = ctx.path("noop.sql");
    std::fs::write(&noop, "SELECT 1;\n").unwrap();
    let dump = sample_dump("onboarding.dump");
    // The "downgrade" does nothing and leaves the revision, on purpose: said so.
    let args = [
        "check",
        "--dump",
        s(&dump),
        "--upgrade-sql",
        s(&upgrade),
        "--downgrade-sql",
        s(&noop),
        "--allow-noop",
        "--expect-revision",
        "b2c3d4e5f6g7",
    ];
    let run = ctx.run(&args);
    run.assert_code(1);
    run.assert_stdout("/updated_at");
    let mut ignoring = args.to_vec();
    ignoring.extend_from_slice(&["--roundtrip-ignore", "public.onboarding_states.updated_at"]);
    let run = ctx.run(&ignoring);
    run.assert_code(0);
    run.assert_stdout("12 operations in ignored columns");
}

// ---------------------------------------------------------------- the real Alembic client (issue 4)

/// `check` of the sample with `alembic downgrade -1` from the sample's Alembic project, the
/// sample's rules and expected patch, and `SAMPLE_DOWNGRADE_BUG=bug` when given.
fn alembic_check(ctx: &Ctx, bug: Option<&str>, downgrade_cmd: &str) -> (Run, ResultDoc) {
    let config = rules_config(ctx);
    let result = ctx.path("result.json");
    let mut cmd = ctx.command(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "-c",
        s(&config),
        "--downgrade-cmd",
        downgrade_cmd,
        "--downgrade-cwd",
        s(&alembic_dir()),
        "--url-scheme",
        "postgresql+asyncpg",
        "--expect-patch",
        s(&expected_patch()),
        "--result-out",
        s(&result),
    ]);
    match bug {
        Some(bug) => cmd.env("SAMPLE_DOWNGRADE_BUG", bug),
        None => cmd.env_remove("SAMPLE_DOWNGRADE_BUG"),
    };
    let out = cmd.output().unwrap();
    ctx.assert_clean();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let doc = std::fs::read_to_string(&result)
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or_else(|_| panic!("no result written: {run:?}"));
    (run, doc)
}

#[test]
fn alembic_downgrade_is_proven_and_alembic_current_is_the_old_revision() {
    let ctx = Ctx::new();
    let current = ctx.path("current.txt");
    // The write-up's own verification: `alembic downgrade -1`, then `alembic current`.
    let cmd = format!(
        "{} && {} > {}",
        alembic("downgrade -1"),
        alembic("current"),
        s(&current)
    );
    let (run, doc) = alembic_check(&ctx, None, &cmd);
    run.assert_code(0);
    assert_eq!(doc.verdict, "proven");
    assert_eq!(doc.checks.len(), 7, "{:?}", doc.checks);
    assert!(doc.checks.iter().any(|c| c.id == "revision" && c.passed));
    let current = std::fs::read_to_string(&current).unwrap();
    assert!(
        current.starts_with("a1b2c3d4e5f6"),
        "alembic current: {current}"
    );
}

fn alembic_bug(bug: &str) -> ResultDoc {
    let ctx = Ctx::new();
    let (run, doc) = alembic_check(&ctx, Some(bug), &alembic("downgrade -1"));
    run.assert_code(1);
    assert_eq!(doc.verdict, "not proven");
    doc
}

#[test]
fn alembic_truthiness_bug_is_caught_on_the_step_zero_row() {
    let doc = alembic_bug("truthiness");
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(keys(&found), ["1"]);
    assert_eq!(
        found[0].path,
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );
}

#[test]
fn alembic_keep_metadata_bug_is_caught_in_every_migrated_row() {
    let doc = alembic_bug("keep-metadata");
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(keys(&found), ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert!(found.iter().all(|f| f.message == "metadata left in place"));
}

#[test]
fn alembic_delete_new_rows_bug_names_the_deleted_rows() {
    let doc = alembic_bug("delete-new-rows");
    assert_eq!(
        keys(&findings_of(&doc, "rows-preserved")),
        ["10", "11", "12"]
    );
}

#[test]
fn alembic_no_constraint_bug_fails_the_constraint_test() {
    let doc = alembic_bug("no-constraint");
    let found = findings_of(&doc, "after-state");
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .path
            .ends_with("/constraints/valid_current_step/definition")
    );
    assert!(findings_of(&doc, "metadata-restored").is_empty());
}

#[test]
fn alembic_float_json_bug_shows_the_changed_number_text() {
    let doc = alembic_bug("float-json");
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].path,
        "/data/public.onboarding_states/6/step_data/step_4/target_weight_kg"
    );
    assert_eq!(found[0].expected.as_ref().unwrap().to_string(), "0.1000");
    assert_eq!(found[0].actual.as_ref().unwrap().to_string(), "0.1");
}

#[test]
fn alembic_round_trip_from_the_11_step_dump() {
    let roundtrip = |bug: Option<&str>| {
        let ctx = Ctx::new();
        let mut cmd = ctx.command(&[
            "check",
            SAMPLE_LOSS[0],
            SAMPLE_LOSS[1],
            "--dump",
            s(&sample_dump("onboarding-a1b2c3d4e5f6.dump")),
            "--upgrade-cmd",
            &alembic("upgrade +1"),
            "--downgrade-cmd",
            &alembic("downgrade -1"),
            "--downgrade-cwd",
            s(&alembic_dir()),
            "--url-scheme",
            "postgresql+asyncpg",
        ]);
        if let Some(bug) = bug {
            cmd.env("SAMPLE_DOWNGRADE_BUG", bug);
        }
        let out = cmd.output().unwrap();
        ctx.assert_clean();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = roundtrip(None);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("PASS  round trip"), "{stdout}");
    let (code, stdout) = roundtrip(Some("float-json"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  round trip"), "{stdout}");
    assert!(
        stdout.contains(r#"{"op":"replace","path":"/data/public.onboarding_states/6/step_data/step_4/target_weight_kg","value":0.1}"#),
        "{stdout}"
    );
}

#[test]
fn missing_alembic_is_one_clear_line() {
    let ctx = Ctx::new();
    let run = ctx.run(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-cmd",
        "/nonexistent/.venv/bin/alembic downgrade -1",
    ]);
    run.assert_error(&[
        "exited with 127",
        "`/nonexistent/.venv/bin/alembic` is not installed",
    ]);
}

// ---------------------------------------------------------------- security model (issue 7)

/// Run `check` on a hostile dump and prove the host was not touched.
fn hostile(name: &str, downgrade: &str, needles: &[&str]) {
    let marker = std::path::PathBuf::from(format!("/tmp/pgsnapdiff-pwned-{name}"));
    let _ = std::fs::remove_file(&marker);
    let ctx = Ctx::new();
    let sql = ctx.path("down.sql");
    std::fs::write(&sql, downgrade).unwrap();
    let dump = fixture(&format!("hostile/{name}.sql"));
    let run = check_with(&ctx, s(&dump), s(&sql), &[]);
    run.assert_error(needles);
    assert!(
        !marker.exists(),
        "{name}: the dump ran a command on the host"
    );
}

#[test]
fn dump_cannot_escape_to_the_shell_through_psql() {
    hostile(
        "shell-escape",
        "SELECT 1;",
        &["restore failed", "psql meta-command", "does not run them"],
    );
    hostile(
        "unrestrict",
        "SELECT 1;",
        &["restore failed", "psql meta-command"],
    );
}

#[test]
fn dump_cannot_use_superuser_powers() {
    for name in [
        "copy-program",
        "language-c",
        "alter-system",
        "grant-predefined",
    ] {
        hostile(name, "SELECT 1;", &["restore failed"]);
    }
    hostile(
        "copy-program",
        "SELECT 1;",
        &["needs superuser power", "Security model"],
    );
}

#[test]
fn planted_trigger_does_not_run_with_superuser_rights_during_the_downgrade() {
    hostile(
        "trigger",
        "UPDATE onboarding_states SET current_step = 4;",
        &[
            "downgrade failed",
            "permission denied to COPY to or from an external program",
        ],
    );
}

#[test]
fn ordinary_dump_with_extensions_owners_and_grants_restores() {
    let ctx = Ctx::new();
    let out = ctx.path("snap.json");
    let run = ctx.run(&[
        "snapshot",
        "--dump",
        s(&fixture("ok/ownership.sql")),
        "-o",
        s(&out),
    ]);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let extensions = doc["schema"]["extensions"].as_object().unwrap();
    assert!(extensions.contains_key("pgcrypto") && extensions.contains_key("pg_trgm"));
    assert_eq!(doc["data"]["public.accounts"].as_object().unwrap().len(), 2);
    assert_eq!(doc["data"]["public.Audit Log"]["1"]["id"], 1);
}

// ---------------------------------------------------------------- interruption, timeouts, concurrency

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
fn sigterm_during_restore_cleans_up_everything() {
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
fn psql_running_under(pid: u32) -> bool {
    descendant_matching(pid, |cmd| cmd.contains("bin/psql") && cmd.contains("-f -"))
}

#[test]
fn whole_run_timeout_stops_everything() {
    let ctx = Ctx::new();
    let run = hanging_downgrade(&ctx, "81.25", &["--timeout", "4"]);
    run.assert_error(&["did not finish within --timeout 4s", "files removed"]);
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
fn kill_9_leaves_nothing_that_blocks_the_next_run() {
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
fn concurrent_runs_do_not_collide() {
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
fn inputs_are_never_changed() {
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
fn uuid_ossp_dump_restores_as_the_unprivileged_owner() {
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
fn output_to_a_fifo_or_symlink_never_replaces_it() {
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

// ---------------------------------------------------------------- walk (issue 8)

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct WalkDoc {
    format: String,
    verdict: String,
    complete: bool,
    dump: Value,
    server: String,
    step_cmd: String,
    to: String,
    timing_seconds: std::collections::BTreeMap<String, f64>,
    steps: Vec<WalkStepDoc>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct WalkStepDoc {
    from: Vec<String>,
    to: Vec<String>,
    timing_seconds: std::collections::BTreeMap<String, f64>,
    tables: std::collections::BTreeMap<String, TableCountsDoc>,
    patch: PatchCountsDoc,
    lost_rows: std::collections::BTreeMap<String, u64>,
    dropped_tables: std::collections::BTreeMap<String, u64>,
    data_lost: Vec<LossDoc>,
    schema: Vec<Value>,
    checks: Vec<CheckDoc>,
    findings: Vec<FindingDoc>,
}

/// `walk` with the virtualenv's `alembic downgrade -1` in `project`; the run and, when one was
/// written, the walk JSON.
fn walk(
    ctx: &Ctx,
    dump: &std::path::Path,
    project: &str,
    extra: &[&str],
) -> (Run, Option<WalkDoc>) {
    let result = ctx.path("walk.json");
    let step = alembic("downgrade -1");
    let cwd = fixture(project);
    let mut args = vec!["walk", "-c", "/dev/null", "--dump", s(dump)];
    args.extend_from_slice(&["--step-cmd", &step, "--downgrade-cwd", s(&cwd)]);
    if project.starts_with("onboarding") {
        args.extend_from_slice(&SAMPLE_LOSS);
    } else {
        args.extend_from_slice(&SHOP_NAMES_MERGE);
    }
    args.extend_from_slice(&["--result-out", s(&result)]);
    args.extend_from_slice(extra);
    let run = ctx.run(&args);
    let doc = std::fs::read_to_string(&result).ok().map(|text| {
        serde_json::from_str::<WalkDoc>(&text)
            .unwrap_or_else(|e| panic!("walk JSON does not match its schema: {e}\n{text}"))
    });
    (run, doc)
}

/// The shop's 0004 → 0003 merges first and last names back into full_name: an intended loss
/// of the two columns, acknowledged.
const SHOP_NAMES_MERGE: [&str; 4] = [
    "--allow-lost",
    "public.customers.first_name",
    "--allow-lost",
    "public.customers.last_name",
];

fn shop_dump() -> std::path::PathBuf {
    fixture("walk/dumps/shop.dump")
}

#[test]
fn walk_names_the_revision_that_lost_rows_and_exactly_which() {
    let ctx = Ctx::new();
    let (run, doc) = walk(&ctx, &shop_dump(), "walk/alembic", &["--to", "0001", "-v"]);
    run.assert_code(1);
    let doc = doc.unwrap();
    assert_eq!(
        (doc.format.as_str(), doc.verdict.as_str()),
        ("pgsnapdiff-walk/1", "not proven")
    );
    assert!(doc.complete);
    let revs: Vec<(String, String)> = doc
        .steps
        .iter()
        .map(|s| (s.from.join(","), s.to.join(",")))
        .collect();
    let want = [("0004", "0003"), ("0003", "0002"), ("0002", "0001")];
    assert_eq!(revs, want.map(|(a, b)| (a.to_string(), b.to_string())));

    // 0004 → 0003 merges the names back: every customer changed, no row lost, and the two
    // name columns dropped with their values: acknowledged (the walk helper's --allow-lost).
    let first = &doc.steps[0];
    assert_eq!(first.tables["public.customers"].changed, 5);
    assert!(first.lost_rows.is_empty() && first.findings.is_empty());
    let acknowledged: Vec<(&str, u64, bool)> = first
        .data_lost
        .iter()
        .map(|l| (l.name.as_str(), l.count, l.acknowledged))
        .collect();
    assert_eq!(
        acknowledged,
        [
            ("public.customers.first_name", 5, true),
            ("public.customers.last_name", 4, true)
        ]
    );
    let schema: Vec<(&str, &str)> = first
        .schema
        .iter()
        .map(|op| (op["op"].as_str().unwrap(), op["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        schema,
        [
            ("add", "/schema/tables/public.customers/columns/full_name"),
            (
                "remove",
                "/schema/tables/public.customers/columns/first_name"
            ),
            (
                "remove",
                "/schema/tables/public.customers/columns/last_name"
            ),
        ]
    );

    // 0003 → 0002 is the lossy one: the two USD orders, and only them.
    let lossy = &doc.steps[1];
    assert_eq!(lossy.lost_rows, [("public.orders".to_string(), 2)].into());
    let lost: Vec<(&str, &str)> = lossy
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.path.as_str()))
        .collect();
    assert_eq!(
        lost,
        [
            ("rows-preserved", "/data/public.orders/5"),
            ("rows-preserved", "/data/public.orders/7"),
            // The currency column goes too, with every order's value.
            ("data-lost", "/schema/tables/public.orders/columns/currency"),
        ]
    );
    assert_eq!(
        lossy.findings[2].message,
        "column dropped with 8 non-NULL values"
    );
    // numeric(10,2) keeps its text: 1500.00, not 1500.
    let total = &lossy.findings[1].expected.as_ref().unwrap()["total"];
    assert_eq!(total.to_string(), "1500.00");
    assert!(
        lossy
            .checks
            .iter()
            .any(|c| c.id == "rows-preserved" && !c.passed)
    );

    // 0002 → 0001 drops orders with its 6 rows: not rows that disappeared from a table that
    // stays, but data lost all the same: one data-lost finding for the table.
    let last = &doc.steps[2];
    assert_eq!(
        last.dropped_tables,
        [("public.orders".to_string(), 6)].into()
    );
    assert!(last.tables["public.orders"].dropped);
    assert!(last.lost_rows.is_empty());
    let lost: Vec<(&str, &str, &str)> = last
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.path.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        lost,
        [(
            "data-lost",
            "/schema/tables/public.orders",
            "table dropped with 6 rows"
        )]
    );

    run.assert_stdout("== revision 0003 → 0002");
    run.assert_stdout("lost      2 rows of public.orders");
    run.assert_stdout("lost      public.orders: table dropped with 6 rows");
    run.assert_stdout("table     public.orders: 6 rows before, table dropped");
    // The summary names every loss of the walk, the acknowledged ones too.
    run.assert_stdout(
        "losses over the walk:
  revision 0004 → 0003: lost public.customers.first_name: column dropped with 5 non-NULL values (acknowledged)
  revision 0004 → 0003: lost public.customers.last_name: column dropped with 4 non-NULL values (acknowledged)
  revision 0003 → 0002: lost 2 rows of public.orders
  revision 0003 → 0002: lost public.orders.currency: column dropped with 8 non-NULL values
  revision 0002 → 0001: lost public.orders: table dropped with 6 rows
walk NOT proven: checks failed in revision 0003 → 0002, revision 0002 → 0001",
    );
    // Restored once, then only moved down.
    assert_eq!(
        run.stderr.matches("restoring ").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn walk_of_the_sample_reports_its_one_revision_with_the_new_shape_rows() {
    let ctx = Ctx::new();
    let dump = sample_dump("onboarding.dump");
    let (run, doc) = walk(
        &ctx,
        &dump,
        "onboarding/alembic",
        &["--to", "a1b2c3d4e5f6", "--url-scheme", "postgresql+asyncpg"],
    );
    run.assert_code(0);
    let doc = doc.unwrap();
    assert_eq!(doc.verdict, "proven");
    assert_eq!(doc.steps.len(), 1);
    let step = &doc.steps[0];
    assert_eq!(
        (step.from.clone(), step.to.clone()),
        (vec!["b2c3d4e5f6g7".into()], vec!["a1b2c3d4e5f6".into()])
    );
    assert_eq!(step.tables["public.onboarding_states"].changed, 12);
    let shape = findings_of_step(step, "new-shape");
    assert_eq!(keys(&shape), ["10", "11"]);
    run.assert_stdout("walk proven: 1 step, no check failed");
}

fn findings_of_step<'a>(step: &'a WalkStepDoc, rule: &str) -> Vec<&'a FindingDoc> {
    step.findings.iter().filter(|f| f.rule == rule).collect()
}

#[test]
fn walk_errors_name_the_step_and_still_report_what_was_walked() {
    // A target that is not below the dump's revision: walked to base, then a clear error.
    let ctx = Ctx::new();
    let (run, doc) = walk(&ctx, &shop_dump(), "walk/alembic", &["--to", "9999"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("reached base without passing revision 9999; check --to"),
        "{}",
        run.stderr
    );
    let doc = doc.unwrap();
    assert!(!doc.complete);
    assert_eq!(doc.steps.len(), 4);
    run.assert_stdout("walk stopped after 4 steps");

    // A step command that does not move the revision.
    let ctx = Ctx::new();
    let result = ctx.path("walk.json");
    let run = ctx.run(&[
        "walk",
        "-c",
        "/dev/null",
        "--dump",
        s(&shop_dump()),
        "--to",
        "0001",
        "--step-cmd",
        "true",
        "--result-out",
        s(&result),
    ]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "walk step 1 from revision 0004: `true` exited 0 but never connected to the throwaway database"
        ),
        "{}",
        run.stderr
    );
    // Detected on the first step: nothing was walked.
    let doc: WalkDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert!(doc.steps.is_empty() && !doc.complete);

    // One that connects but does not move the revision.
    let shop_walk = |ctx: &Ctx, step: &str| {
        let dump = shop_dump();
        let args = [
            "walk",
            "-c",
            "/dev/null",
            "--dump",
            s(&dump),
            "--to",
            "0001",
        ];
        ctx.run(&[&args[..], &["--step-cmd", step]].concat())
    };
    let ctx = Ctx::new();
    let run = shop_walk(&ctx, "psql -X -q -c 'SELECT 1' >/dev/null");
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "walk step 1: `psql -X -q -c 'SELECT 1' >/dev/null` left the revision at 0004"
        ),
        "{}",
        run.stderr
    );

    // A failing step: its output, then the step and revision it failed at.
    let ctx = Ctx::new();
    let run = shop_walk(&ctx, "echo no database for you >&2; exit 3");
    run.assert_code(2);
    assert!(run.stderr.contains("no database for you"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("downgrade failed: walk step 1 from revision 0004: `echo"),
        "{}",
        run.stderr
    );

    // Already there, and no target at all: errors before or right after the restore.
    let ctx = Ctx::new();
    let run = ctx.run(&[
        "walk",
        "-c",
        "/dev/null",
        "--dump",
        s(&shop_dump()),
        "--to",
        "0004",
        "--step-cmd",
        "true",
    ]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("is already at revision 0004"),
        "{}",
        run.stderr
    );
    let run = ctx.run(&["walk", "-c", "/dev/null", "--dump", s(&shop_dump())]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no target revision: pass --to REV"),
        "{}",
        run.stderr
    );
    // A dump without alembic_version: say how to name the revision.
    let noop = fixture("ok/noop.sql");
    let run = ctx.run(&["walk", "-c", "/dev/null", "--dump", s(&noop), "--to", "1"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no revision found (no alembic_version row); for another migration tool pass --revision-sql"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------- audit reports

/// Where test screenshots of HTML reports go, for a human to look at.
fn screenshot(name: &str) -> std::path::PathBuf {
    let dir = repo().join("target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} is not a real screenshot",
        path.display()
    );
}

/// The HTML must not fetch anything: no src/href/url()/@import at all.
fn assert_self_contained(html: &str) {
    for needle in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(needle), "report references {needle}");
    }
}

#[test]
fn walk_html_report_has_one_section_per_revision_in_a_real_browser() {
    let ctx = Ctx::new();
    let report = ctx.path("walk.html");
    let (run, _) = walk(
        &ctx,
        &shop_dump(),
        "walk/alembic",
        &["--to", "0001", "--report", s(&report)],
    );
    run.assert_code(1);
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    let png = screenshot("walk.png");
    let dom = render_html(&report, &png, &ctx.path("chromium-profile"));
    assert_png(&png);
    assert!(
        dom.contains(r#"<span class="verdict bad" id="verdict">walk NOT proven</span>"#),
        "{dom}"
    );
    let sections: Vec<&str> = dom.split("<section ").skip(1).collect();
    assert_eq!(sections.len(), 3, "{dom}");
    for (section, title) in sections
        .iter()
        .zip(["0004 → 0003", "0003 → 0002", "0002 → 0001"])
    {
        assert!(
            section.contains(&format!("revision {title}</h2>")),
            "{section}"
        );
    }
    assert!(sections[1].contains("<strong>lost 2 rows of public.orders</strong>"));
    assert!(sections[1].contains("/data/public.orders/7"));
    assert!(sections[2].contains("<strong>lost public.orders: table dropped with 6 rows</strong>"));
    assert!(sections[0].contains(
        "<strong>lost public.customers.first_name: column dropped with 5 non-NULL values (acknowledged)</strong>"
    ));
    // The chart is drawn: one bar per changed table.
    assert!(sections[1].contains(r#"aria-label="changed rows per table""#));
}

#[test]
fn check_reports_identify_inputs_and_render_in_a_real_browser() {
    let ctx = Ctx::new();
    let html = ctx.path("audit.html");
    let md = ctx.path("audit.md");
    let dump = sample_dump("onboarding.dump");
    let (truthiness, patch) = (broken("truthiness"), expected_patch());
    let config = rules_config(&ctx);
    let base = [
        "check",
        "-c",
        s(&config),
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&truthiness),
        "--expect-patch",
        s(&patch),
    ];
    let mut args = base.to_vec();
    args.extend_from_slice(&["--report", s(&html)]);
    ctx.run(&args).assert_code(1);
    let mut args = base.to_vec();
    args.extend_from_slice(&["--report", s(&md)]);
    ctx.run(&args).assert_code(1);

    let sha = std::process::Command::new("sha256sum")
        .arg(&dump)
        .output()
        .unwrap();
    let sha = String::from_utf8(sha.stdout).unwrap();
    let sha = sha.split_whitespace().next().unwrap();
    let text = std::fs::read_to_string(&html).unwrap();
    assert_self_contained(&text);
    assert!(text.contains(sha), "dump SHA-256 missing");
    let png = screenshot("check.png");
    let dom = render_html(&html, &png, &ctx.path("chromium-profile"));
    assert_png(&png);
    assert!(dom.contains("rollback NOT proven"));
    assert!(dom.contains("metadata-restored: 1 finding"));
    assert!(dom.contains("/data/public.onboarding_states/1/step_data/_migration_metadata"));
    assert!(dom.contains("/schema/tables/public.onboarding_states/columns/agent_history"));

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.starts_with("# pgsnapdiff check: rollback NOT proven\n"),
        "{md}"
    );
    assert!(
        md.contains(&format!("| dump | `{}` | 8854 | `{sha}` |", dump.display())),
        "{md}"
    );
    assert!(md.contains("| FAIL | rule metadata-restored"), "{md}");
    assert!(md.contains("### FAIL metadata-restored: 1 finding"), "{md}");

    // The format comes from the name, checked before any work.
    let run = ctx.run(&[
        "check",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "--report",
        "out.txt",
    ]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("--report out.txt: name it FILE.html or FILE.md"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("restoring"), "{}", run.stderr);
}

#[test]
fn walk_works_with_any_step_command_and_revision_query() {
    // No Alembic: the "migration tool" is psql with the connection from the environment, and
    // the revision comes from the user's own query (run read-only, as the owner role).
    let ctx = Ctx::new();
    let step = "psql -X -q -v ON_ERROR_STOP=1 -c \"ALTER TABLE customers ADD COLUMN full_name text; \
        UPDATE customers SET full_name = concat_ws(' ', first_name, last_name); \
        ALTER TABLE customers DROP COLUMN first_name, DROP COLUMN last_name; \
        UPDATE alembic_version SET version_num = '0003'\"";
    let query = "SELECT 'shop-' || version_num FROM alembic_version";
    let result = ctx.path("walk.json");
    let dump = shop_dump();
    let args = [
        "walk",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--to",
        "shop-0003",
        "--step-cmd",
        step,
        "--revision-sql",
        query,
        "--result-out",
        s(&result),
        SHOP_NAMES_MERGE[0],
        SHOP_NAMES_MERGE[1],
        SHOP_NAMES_MERGE[2],
        SHOP_NAMES_MERGE[3],
    ];
    let run = ctx.run(&args);
    run.assert_code(0);
    let doc: WalkDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(doc.steps.len(), 1);
    assert_eq!(
        (doc.steps[0].from.clone(), doc.steps[0].to.clone()),
        (vec!["shop-0004".into()], vec!["shop-0003".into()])
    );
    assert_eq!(doc.steps[0].tables["public.customers"].changed, 5);
    run.assert_stdout("== revision shop-0004 → shop-0003");

    // The revision query may not write.
    let mut writing = args.to_vec();
    writing[10] = "UPDATE alembic_version SET version_num = 'x' RETURNING version_num";
    let run = ctx.run(&writing);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "--revision-sql failed: ERROR: cannot execute UPDATE in a read-only transaction"
        ),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------- regression baselines (issue 5)

/// A check of the sample against the baseline `baseline` (in the test's own dir).
fn check_baseline(
    ctx: &Ctx,
    downgrade: &std::path::Path,
    baseline: &std::path::Path,
    extra: &[&str],
) -> Run {
    let dump = sample_dump("onboarding.dump");
    let mut args = vec![
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(downgrade),
    ];
    args.extend_from_slice(&["--expect-patch", s(baseline), "--new-shape", "off"]);
    args.extend_from_slice(extra);
    ctx.run(&args)
}

#[test]
fn mismatch_writes_a_pending_baseline_locally_and_nothing_in_ci_then_accept_and_reject() {
    let ctx = Ctx::new();
    let dir = ctx.path("snapshots");
    std::fs::create_dir(&dir).unwrap();
    let baseline = dir.join("onboarding.patch.json");
    let pending = dir.join("onboarding.patch.json.new");
    std::fs::copy(expected_patch(), &baseline).unwrap();
    let original = std::fs::read(&baseline).unwrap();

    // Under CI=true: fails, writes nothing.
    let mut cmd = ctx.command(&[
        "check",
        SAMPLE_LOSS[0],
        SAMPLE_LOSS[1],
        "-c",
        "/dev/null",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-sql",
        s(&broken("truthiness")),
        "--expect-patch",
        s(&baseline),
    ]);
    let out = cmd.env("CI", "true").output().unwrap();
    ctx.assert_clean();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("check mode (--check or CI=true): no pending baseline written")
    );
    assert!(!pending.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "CI wrote something"
    );

    // Locally: the new result lands beside the baseline, which is untouched.
    let emitted = ctx.path("emitted.json");
    let run = check_baseline(&ctx, &broken("truthiness"), &baseline, &["-o", s(&emitted)]);
    run.assert_code(1);
    run.assert_stdout(&format!("pending baseline written: {}", pending.display()));
    assert_eq!(std::fs::read(&baseline).unwrap(), original);
    assert_eq!(
        std::fs::read(&pending).unwrap(),
        std::fs::read(&emitted).unwrap()
    );

    // --check fails on the pending file even when the run itself matches.
    let run = check_baseline(&ctx, &downgrade_sql(), &baseline, &["--check"]);
    run.assert_code(1);
    run.assert_stdout("onboarding.patch.json.new: pending baseline: accept or reject it");

    // reject deletes it; a matching run leaves nothing pending.
    let run = ctx.run(&["reject", s(&baseline)]);
    run.assert_code(0);
    assert!(!pending.exists() && baseline.exists());

    // accept replaces the baseline: the next run with the same downgrade passes.
    check_baseline(&ctx, &broken("truthiness"), &baseline, &[]).assert_code(1);
    ctx.run(&["accept", s(&pending)]).assert_code(0);
    assert!(!pending.exists());
    assert_eq!(
        std::fs::read(&baseline).unwrap(),
        std::fs::read(&emitted).unwrap()
    );
    check_baseline(&ctx, &broken("truthiness"), &baseline, &[]).assert_code(0);

    // A pending file made obsolete by a matching run is removed.
    check_baseline(&ctx, &downgrade_sql(), &baseline, &[]).assert_code(1);
    assert!(pending.exists());
    check_baseline(&ctx, &broken("truthiness"), &baseline, &[]).assert_code(0);
    assert!(!pending.exists());

    // review needs a terminal.
    let run = ctx.run(&["review", s(&baseline)]);
    run.assert_code(2);
}

#[test]
fn orphaned_baselines_fail_a_check_run_and_a_missing_baseline_is_pending_until_accepted() {
    let ctx = Ctx::new();
    let dir = ctx.path("snapshots");
    std::fs::create_dir(&dir).unwrap();
    let baseline = dir.join("onboarding.patch.json");
    std::fs::copy(expected_patch(), &baseline).unwrap();
    std::fs::write(dir.join("old-case.patch.json"), "[]\n").unwrap();
    let run = check_baseline(&ctx, &downgrade_sql(), &baseline, &["--check"]);
    run.assert_code(1);
    run.assert_stdout("old-case.patch.json: orphaned baseline: no case uses it");
    run.assert_stdout("rollback NOT proven: 1 of 4 checks failed");
    check_baseline(&ctx, &downgrade_sql(), &baseline, &[]).assert_code(0);

    // First run of a new case: no baseline yet, a pending one to review.
    let fresh = dir.join("new-case.patch.json");
    let run = check_baseline(&ctx, &downgrade_sql(), &fresh, &[]);
    run.assert_code(1);
    run.assert_stdout("no baseline yet (122 operations emitted)");
    ctx.run(&["accept", s(&fresh)]).assert_code(0);
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        std::fs::read(expected_patch()).unwrap()
    );
    check_baseline(&ctx, &downgrade_sql(), &fresh, &[]).assert_code(0);
}

#[test]
fn volatile_values_are_redacted_so_baselines_do_not_churn() {
    // A downgrade that also stamps updated_at with now(): a different value every run.
    let ctx = Ctx::new();
    let stamping = ctx.path("stamping.sql");
    let sql = std::fs::read_to_string(downgrade_sql()).unwrap();
    std::fs::write(
        &stamping,
        format!("{sql}\nUPDATE onboarding_states SET updated_at = clock_timestamp();\n"),
    )
    .unwrap();
    let baseline = ctx.path("stamping.patch.json");
    let volatile = ["--volatile", "/data/public.onboarding_states/*/updated_at"];
    check_baseline(&ctx, &stamping, &baseline, &volatile).assert_code(1);
    ctx.run(&["accept", s(&baseline)]).assert_code(0);
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert_eq!(
        text.matches(r#"/updated_at","value":"[volatile]"}"#)
            .count(),
        12,
        "{text}"
    );
    check_baseline(&ctx, &stamping, &baseline, &volatile).assert_code(0);
    // Without the pattern, the same baseline cannot match: the timestamps moved on.
    check_baseline(&ctx, &stamping, &baseline, &[]).assert_code(1);
}

// ---------------------------------------------------------------- CI outputs

/// `xmllint --schema` against the Jenkins JUnit schema.
fn assert_valid_junit(xml: &str, ctx: &Ctx) {
    let file = ctx.path("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", s(&fixture("junit-10.xsd")), s(&file)])
        .output()
        .expect("xmllint (scripts/setup-test-tools installs it)");
    assert!(
        out.status.success(),
        "invalid JUnit: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junit_github_and_json_formats_for_check_and_walk() {
    let ctx = Ctx::new();
    let config = rules_config(&ctx);
    let base = ["check", "-c", s(&config), "--downgrade-sql"];
    let (truthiness, correct) = (broken("truthiness"), downgrade_sql());

    let mut args = base.to_vec();
    args.extend_from_slice(&[s(&truthiness), "--format", "junit"]);
    let run = ctx.run(&args);
    run.assert_code(1);
    assert_valid_junit(&run.stdout, &ctx);
    assert!(
        run.stdout
            .contains(r#"<testsuites name="pgsnapdiff" tests="6" failures="1" errors="0""#),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            r#"<testcase classname="pgsnapdiff.onboarding.dump" name="rows-preserved"/>"#
        )
    );
    assert!(run.stdout.contains(r#"<failure type="metadata-restored""#));
    // The warning passes, its findings in system-out.
    assert!(
        run.stdout
            .contains("<system-out>public.onboarding_states: 3 of 12 rows left in the new shape")
    );

    let mut args = base.to_vec();
    args.extend_from_slice(&[s(&truthiness), "--format", "github"]);
    let run = ctx.run(&args);
    run.assert_code(1);
    let first = run.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "::error title=pgsnapdiff metadata-restored (onboarding.dump)::/data/public.onboarding_states/1/step_data/_migration_metadata: metadata left in place (expected (nothing), actual {\"original_current_step\":0,\"original_step_data\":{}})"
    );
    assert!(
        run.stdout
            .contains("\n::warning title=pgsnapdiff new-shape (onboarding.dump)::")
    );
    run.assert_stdout("rollback NOT proven");

    let mut args = base.to_vec();
    args.extend_from_slice(&[s(&correct), "--format", "json"]);
    let run = ctx.run(&args);
    run.assert_code(0);
    let doc: ResultDoc = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc.verdict, "proven");

    // walk: one testsuite per revision.
    let (run, _) = walk(
        &ctx,
        &shop_dump(),
        "walk/alembic",
        &["--to", "0001", "--format", "junit"],
    );
    run.assert_code(1);
    assert_valid_junit(&run.stdout, &ctx);
    assert_eq!(run.stdout.matches("<testsuite ").count(), 3);
    assert!(
        run.stdout
            .contains(r#"<testsuite name="revision 0003 → 0002" tests="3" failures="2""#),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("/data/public.orders/5: row disappeared")
    );
}

#[test]
fn color_and_progress_only_on_a_terminal_and_never_with_no_color() {
    // Off a terminal (this test's pipes): no escape codes, no progress lines, notes stay.
    let ctx = Ctx::new();
    let run = check_sample(&ctx, "onboarding.dump");
    run.assert_code(0);
    assert!(!run.stdout.contains('\x1b'), "{}", run.stdout);
    assert!(!run.stderr.contains("restoring"), "{}", run.stderr);
    let run = ctx.run(&[
        "-v",
        "check",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-sql",
        s(&downgrade_sql()),
    ]);
    assert!(
        run.stderr.contains("pgsnapdiff: restoring"),
        "{}",
        run.stderr
    );

    // On a terminal (script(1) gives one): colored labels and progress, unless NO_COLOR.
    let tty = |no_color: bool| {
        let cmd = format!(
            "{} check --dump {} --downgrade-sql {}",
            env!("CARGO_BIN_EXE_pgsnapdiff"),
            s(&sample_dump("onboarding.dump")),
            s(&downgrade_sql())
        );
        // The same environment as every test run, under a pseudo-terminal.
        let env = ctx.command(&[]);
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .current_dir(ctx.path("."));
        for (k, v) in env.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().expect("script(1)");
        ctx.assert_clean();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let colored = tty(false);
    assert!(
        colored.contains("\x1b[32mPASS\x1b[0m  rule rows-preserved"),
        "{colored}"
    );
    assert!(colored.contains("pgsnapdiff: restoring"), "{colored}");
    let plain = tty(true);
    assert!(
        plain.contains("PASS  rule rows-preserved") && !plain.contains("\x1b[32m"),
        "{plain}"
    );
}

// ---------------------------------------------------------------- --redact

/// Every string leaf (4+ characters) and number leaf (3+ characters) of a snapshot's data.
fn data_values(snapshot: &Value, out: &mut std::collections::BTreeSet<String>) {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::String(s) if s.chars().count() >= 4 => {
                out.insert(s.clone());
            }
            Value::Number(n) if n.to_string().len() >= 3 => {
                out.insert(n.to_string());
            }
            Value::Object(m) => m.values().for_each(|c| walk(c, out)),
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    for rows in snapshot["data"].as_object().unwrap().values() {
        for row in rows.as_object().unwrap().values() {
            walk(row, out);
        }
    }
}

/// Whether `text` carries `original`. A number counts only as a whole token: "158" inside
/// a run time ("2.158"), a temp dir name or a digest is not a leaked height.
fn holds(text: &str, original: &str) -> bool {
    if original.parse::<f64>().is_err() {
        return text.contains(original);
    }
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
    text.match_indices(original).any(|(at, _)| {
        !glued(text[..at].chars().next_back()) && !glued(text[at + original.len()..].chars().next())
    })
}

#[test]
fn redact_leaves_no_original_value_in_any_output() {
    let ctx = Ctx::new();
    // The originals: both sides of the sample's downgrade, unredacted.
    let mut originals = std::collections::BTreeSet::new();
    for dump in ["onboarding.dump", "onboarding-a1b2c3d4e5f6.dump"] {
        let snap = ctx.path("plain.json");
        ctx.run(&[
            "snapshot",
            "-c",
            "/dev/null",
            "--dump",
            s(&sample_dump(dump)),
            "-o",
            s(&snap),
        ])
        .assert_code(0);
        data_values(
            &serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap(),
            &mut originals,
        );
    }
    assert!(
        originals.contains("chloe@example.com") && originals.contains("0.1000"),
        "{originals:?}"
    );
    assert!(
        holds("{\"height_cm\":158}", "158") && holds("<td>chloe@example.com", "chloe@example.com")
    );
    assert!(!holds("time=\"2.158\" /tmp/.tmpx158 1580", "158"));

    let config = rules_config(&ctx);
    let outputs = [
        "patch.json",
        "result.json",
        "report.html",
        "report.md",
        "snap.json",
        "walk.json",
    ];
    let p = |name: &str| ctx.path(name);
    let (truthiness, patch) = (broken("truthiness"), expected_patch());
    let mut texts = Vec::new();
    for format in ["human", "junit", "github", "json"] {
        let run = ctx.run(&[
            "check",
            "--redact",
            "-c",
            s(&config),
            "--downgrade-sql",
            s(&truthiness),
            "--expect-patch",
            s(&patch),
            "--check",
            "--format",
            format,
            "-o",
            s(&p("patch.json")),
            "--result-out",
            s(&p("result.json")),
            "--report",
            s(&p(if format == "json" {
                "report.md"
            } else {
                "report.html"
            })),
        ]);
        run.assert_code(1);
        texts.push(run.stdout + &run.stderr);
    }
    let run = ctx.run(&[
        "snapshot",
        "--redact",
        "-c",
        "/dev/null",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "-o",
        s(&p("snap.json")),
    ]);
    run.assert_code(0);
    let (run, _) = walk(
        &ctx,
        &sample_dump("onboarding.dump"),
        "onboarding/alembic",
        &[
            "--redact",
            "--to",
            "a1b2c3d4e5f6",
            "--url-scheme",
            "postgresql+asyncpg",
            "--report",
            s(&p("walk.html")),
        ],
    );
    run.assert_code(0);
    texts.push(run.stdout + &run.stderr);
    for name in outputs.iter().chain(&["walk.html"]) {
        texts.push(std::fs::read_to_string(p(name)).unwrap());
    }
    for (i, text) in texts.iter().enumerate() {
        // Hashes are hex: a digit run inside one is not a leaked number.
        let text: String = text
            .split("redacted:")
            .enumerate()
            .map(|(j, part)| {
                if j == 0 {
                    part
                } else {
                    part.get(16..).unwrap_or("")
                }
            })
            .collect();
        for original in &originals {
            assert!(
                !holds(&text, original),
                "output {i} holds {original:?}:\n{text}"
            );
        }
    }
    // Equal values hash equal, and the findings still name what is wrong.
    let result: ResultDoc =
        serde_json::from_str(&std::fs::read_to_string(p("result.json")).unwrap()).unwrap();
    let meta = findings_of(&result, "metadata-restored");
    assert_eq!(
        meta[0].path,
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );
    let actual = meta[0].actual.as_ref().unwrap();
    assert!(
        actual["original_current_step"]
            .as_str()
            .unwrap()
            .starts_with("redacted:")
    );
    assert_eq!(actual["original_step_data"], serde_json::json!({}));
    let snap: Value =
        serde_json::from_str(&std::fs::read_to_string(p("snap.json")).unwrap()).unwrap();
    let rows = &snap["data"]["public.onboarding_states"];
    assert_eq!(rows["2"]["is_complete"], rows["3"]["is_complete"]);
    assert_ne!(rows["2"]["user_id"], rows["3"]["user_id"]);
}

// ---------------------------------------------------------------- several cases, one server

#[test]
fn several_cases_share_one_server_and_each_gets_a_fresh_database() {
    let ctx = Ctx::new();
    let baseline = ctx.path("onboarding.patch.json");
    std::fs::copy(expected_patch(), &baseline).unwrap();
    let merge_names = ctx.path("merge-names.sql");
    std::fs::write(
        &merge_names,
        "ALTER TABLE customers ADD COLUMN full_name text;
         UPDATE customers SET full_name = concat_ws(' ', first_name, last_name);
         ALTER TABLE customers DROP COLUMN first_name, DROP COLUMN last_name;
         UPDATE alembic_version SET version_num = '0003';\n",
    )
    .unwrap();
    let rules = r#"
[[case.rules.metadata]]
table = "public.onboarding_states"
metadata = "/step_data/_migration_metadata"
fields = { "/current_step" = "/original_current_step", "/step_data" = "/original_step_data" }
"#;
    let config = ctx.path("cases.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Intended: agent_history goes; the shop's names merge into full_name.
allow_lost = ["public.onboarding_states.agent_history", "public.customers.first_name", "public.customers.last_name"]
[rules]
new_shape = "off"

[[case]]
name = "onboarding"
dump = "{onboarding}"
expect_patch = "{baseline}"
downgrade = {{ sql = ["{downgrade}"] }}
{rules}
[[case]]
name = "onboarding-truthiness"
dump = "{onboarding}"
downgrade = {{ sql = ["{truthiness}"] }}
{rules}
[[case]]
name = "shop"
dump = "{shop}"
downgrade = {{ sql = ["{merge}"] }}
"#,
            onboarding = s(&sample_dump("onboarding.dump")),
            baseline = s(&baseline),
            downgrade = s(&downgrade_sql()),
            truthiness = s(&broken("truthiness")),
            shop = s(&shop_dump()),
            merge = s(&merge_names),
        ),
    )
    .unwrap();
    let result = ctx.path("result.json");
    let run = ctx.run(&["-v", "check", "-c", s(&config), "--result-out", s(&result)]);
    run.assert_code(1);
    assert_eq!(
        run.stderr.matches("starting PostgreSQL").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("pgsnapdiff: restoring").count(),
        3,
        "{}",
        run.stderr
    );
    for case in ["onboarding", "onboarding-truthiness", "shop"] {
        run.assert_stdout(&format!("== case {case}\n"));
    }
    run.assert_stdout("rollback NOT proven in 1 of 3 cases: onboarding-truthiness");
    // The shop case saw only its own tables: the onboarding databases were dropped.
    run.assert_stdout("table     public.customers: 5 rows before, 5 after (5 changed, 0 added, 0 removed)\ntable     public.orders: 8 rows before");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(doc["format"], "pgsnapdiff-results/1");
    assert_eq!(doc["verdict"], "not proven");
    let cases: Vec<(&str, &str)> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["case"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cases,
        [
            ("onboarding", "proven"),
            ("onboarding-truthiness", "not proven"),
            ("shop", "proven")
        ]
    );
    let truthy = &doc["cases"][1]["findings"];
    assert_eq!(
        truthy[0]["path"],
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );

    // JUnit: a testsuite per case.
    let run = ctx.run(&["check", "-c", s(&config), "--format", "junit"]);
    run.assert_code(1);
    assert_valid_junit(&run.stdout, &ctx);
    for case in ["onboarding", "onboarding-truthiness", "shop"] {
        assert!(
            run.stdout
                .contains(&format!(r#"<testsuite name="{case}" "#)),
            "{}",
            run.stdout
        );
    }

    // --case picks; flags that describe one case need one case.
    let run = ctx.run(&["check", "-c", s(&config), "--case", "shop"]);
    run.assert_code(0);
    run.assert_stdout("rollback proven (case shop)");
    let run = ctx.run(&["check", "-c", s(&config), "--case", "nope"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "--case nope: no such [[case]]; cases: onboarding, onboarding-truthiness, shop"
        ),
        "{}",
        run.stderr
    );
    let run = ctx.run(&["check", "-c", s(&config), "--dump", s(&shop_dump())]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("--dump applies to one case, and 3 are chosen; pick one with --case NAME"),
        "{}",
        run.stderr
    );
}

#[test]
fn after_snapshot_baseline_is_pending_until_accepted_and_then_catches_a_regression() {
    let ctx = Ctx::new();
    let baseline = ctx.path("onboarding.after.json");
    let pending = ctx.path("onboarding.after.json.new");
    let dump = sample_dump("onboarding.dump");
    let run_with = |downgrade: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "check",
            SAMPLE_LOSS[0],
            SAMPLE_LOSS[1],
            "-c",
            "/dev/null",
            "--dump",
            s(&dump),
            "--new-shape",
            "off",
        ];
        args.extend_from_slice(&[
            "--downgrade-sql",
            s(downgrade),
            "--expect-after",
            s(&baseline),
        ]);
        args.extend_from_slice(extra);
        ctx.run(&args)
    };
    let run = run_with(&downgrade_sql(), &[]);
    run.assert_code(1);
    run.assert_stdout("no baseline yet");
    ctx.run(&["accept", s(&baseline)]).assert_code(0);
    let snap: Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(snap["format"], "pgsnapdiff-snapshot/1");
    assert_eq!(snap["alembic_version"], serde_json::json!(["a1b2c3d4e5f6"]));
    assert!(snap["data"]["public.onboarding_states"]["1"]["agent_history"].is_null());
    run_with(&downgrade_sql(), &[]).assert_code(0);

    // The truthiness bug leaves row 1's metadata: exactly that differs from the baseline.
    let run = run_with(&broken("truthiness"), &["--check"]);
    run.assert_code(1);
    run.assert_stdout(
        r#"{"op":"add","path":"/data/public.onboarding_states/1/step_data/_migration_metadata""#,
    );
    assert!(!pending.exists(), "check mode wrote a pending baseline");
    let run = run_with(&broken("truthiness"), &[]);
    run.assert_code(1);
    assert!(pending.exists());
}

#[test]
fn review_shows_the_diff_on_a_terminal_and_accepts_or_rejects_as_answered() {
    // No server needed: two pending baselines made by hand, reviewed under script(1)'s pty.
    let ctx = Ctx::new();
    let dir = ctx.path("snapshots");
    std::fs::create_dir(&dir).unwrap();
    let text = std::fs::read_to_string(expected_patch()).unwrap();
    let changed = text.replacen("/agent_history\"}", "/agent_story\"}", 1);
    for name in ["a", "b"] {
        std::fs::write(dir.join(format!("{name}.patch.json")), &text).unwrap();
        std::fs::write(dir.join(format!("{name}.patch.json.new")), &changed).unwrap();
    }
    let cmd = format!(
        "printf 'a\\nr\\n' | script -qec '{} review snapshots/a.patch.json snapshots/b.patch.json' /dev/null",
        env!("CARGO_BIN_EXE_pgsnapdiff")
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(ctx.path("."))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("[1/2] --- snapshots/a.patch.json\n+++ snapshots/a.patch.json.new\n"),
        "{shown}"
    );
    assert!(shown.contains("\n-  {\"op\":\"remove\",\"path\":\"/schema/tables/public.onboarding_states/columns/agent_history\"},"), "{shown}");
    assert!(shown.contains("\n+  {\"op\":\"remove\",\"path\":\"/schema/tables/public.onboarding_states/columns/agent_story\"},"), "{shown}");
    assert!(
        shown.contains("accepted: snapshots/a.patch.json")
            && shown.contains("rejected: snapshots/b.patch.json.new removed"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a.patch.json")).unwrap(),
        changed
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("b.patch.json")).unwrap(),
        text
    );
    assert!(!dir.join("a.patch.json.new").exists() && !dir.join("b.patch.json.new").exists());
}

#[test]
fn an_error_in_one_case_is_reported_in_its_place_and_the_other_cases_still_run() {
    let ctx = Ctx::new();
    let config = ctx.path("cases.toml");
    std::fs::write(
        &config,
        format!(
            r#"allow_lost = ["public.onboarding_states.agent_history"]

[[case]]
name = "broken"
dump = "{onboarding}"
downgrade = {{ sql = ["{syntax}"] }}

[[case]]
name = "fine"
dump = "{onboarding}"
expect_patch = "{patch}"
downgrade = {{ sql = ["{downgrade}"] }}
"#,
            onboarding = s(&sample_dump("onboarding.dump")),
            syntax = s(&broken("syntax-error")),
            patch = s(&expected_patch()),
            downgrade = s(&downgrade_sql()),
        ),
    )
    .unwrap();
    let result = ctx.path("result.json");
    let run = ctx.run(&["check", "-c", s(&config), "--result-out", s(&result)]);
    run.assert_code(2);
    run.assert_stdout("== case broken\n");
    run.assert_stdout("FAIL  case broken stopped on an error: 1 finding\n      downgrade failed:");
    run.assert_stdout("== case fine\n");
    run.assert_stdout("PASS  expected patch");
    assert!(
        run.stderr.contains("pgsnapdiff: error: downgrade failed:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("1 of 2 cases stopped on an error (broken); their errors are above"),
        "{}",
        run.stderr
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(doc["cases"][0]["checks"][0]["id"], "error");
    assert_eq!(doc["cases"][1]["verdict"], "proven");
}

#[test]
fn a_closed_stderr_is_not_a_panic() {
    // `pgsnapdiff ... 2>&1 | head -1`: stderr closes early; the exit status must stay ours.
    let ctx = Ctx::new();
    let mut child = ctx
        .command(&[
            "check",
            "--dump",
            "/nonexistent/dump.sql",
            "--downgrade-sql",
            "/nonexistent.sql",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "a write to the closed stderr panicked"
    );
}

// ---------------------------------------------------------------- verdicts you can trust (issue 12)

/// The sample's Alembic project with an env.py that reads its URL from APP_DATABASE_URL, as an
/// app with its own settings does: pgsnapdiff's DATABASE_URL is never looked at.
fn alembic_reading_another_variable(ctx: &Ctx) -> std::path::PathBuf {
    let project = ctx.path("app-alembic");
    copy_dir(&alembic_dir(), &project);
    let env_py = project.join("migrations/env.py");
    let text = std::fs::read_to_string(&env_py).unwrap();
    std::fs::write(&env_py, text.replace("DATABASE_URL", "APP_DATABASE_URL")).unwrap();
    project
}

#[test]
fn downgrade_that_migrates_another_database_is_an_error_that_names_the_variable_not_its_value() {
    // The user's own database, at head, which the downgrade must never reach.
    let theirs = ScratchServer::start();
    let dump = sample_dump("onboarding.dump");
    theirs.restore("app", &dump);
    theirs.restore("app2", &dump);
    let ctx = Ctx::new();
    let project = alembic_reading_another_variable(&ctx);
    let baseline = expected_patch();
    let check = |db: &str, extra: &[&str]| {
        let downgrade = alembic("downgrade -1");
        let mut args = vec!["check", "-c", "/dev/null", "--dump", s(&dump)];
        args.extend_from_slice(&[
            "--downgrade-cmd",
            &downgrade,
            "--downgrade-cwd",
            s(&project),
        ]);
        args.extend_from_slice(&SAMPLE_LOSS);
        args.extend_from_slice(&["--expect-patch", s(&baseline)]);
        args.extend_from_slice(extra);
        let out = ctx
            .command(&args)
            .env(
                "APP_DATABASE_URL",
                theirs.url(db).replace("postgresql:", "postgresql+asyncpg:"),
            )
            .output()
            .unwrap();
        ctx.assert_clean();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };

    let run = check("app", &[]);
    run.assert_error(&[
        "downgrade failed: `",
        "exited 0 but never connected to the throwaway database pgsnapdiff",
        "must read its connection from DATABASE_URL",
        "inherited variables that point at a database: APP_DATABASE_URL",
        "--isolate-env",
    ]);
    // Said before the downgrade ran, too.
    assert!(
        run.stderr
            .contains("note: the migration command inherits APP_DATABASE_URL"),
        "{}",
        run.stderr
    );
    // The name, never the value.
    let port = theirs.port.to_string();
    for out in [&run.stdout, &run.stderr] {
        assert!(!out.contains(&port), "the variable's value leaked: {out}");
    }
    assert!(!run.stdout.contains("rollback proven"));
    // It really did run there: the harm the check reports instead of calling it proven.
    assert_eq!(
        theirs.query("app", "SELECT version_num FROM alembic_version"),
        "a1b2c3d4e5f6"
    );

    // --isolate-env: the command sees neither the variable nor anything else of this shell;
    // the app's own check stops it, and the user's database is untouched.
    let run = check("app2", &["--isolate-env"]);
    run.assert_error(&["downgrade failed:", "exited with 1"]);
    assert!(
        run.stderr.contains("APP_DATABASE_URL is not set"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("inherits APP_DATABASE_URL"));
    assert_eq!(
        theirs.query("app2", "SELECT version_num FROM alembic_version"),
        "b2c3d4e5f6g7"
    );
}

#[test]
fn downgrade_that_drops_a_table_with_rows_fails_data_lost_in_every_output() {
    // The real Alembic client, with a downgrade that "cleans up" the users table.
    let ctx = Ctx::new();
    let (run, doc) = alembic_check(&ctx, Some("drop-users"), &alembic("downgrade -1"));
    run.assert_code(1);
    assert_eq!(doc.verdict, "not proven");
    let lost: Vec<(&str, &str, u64, bool)> = doc
        .data_lost
        .iter()
        .map(|l| (l.name.as_str(), l.kind.as_str(), l.count, l.acknowledged))
        .collect();
    assert_eq!(
        lost,
        [
            (
                "public.onboarding_states.agent_history",
                "column dropped",
                12,
                true
            ),
            ("public.users", "table dropped", 12, false),
        ]
    );
    let found = findings_of(&doc, "data-lost");
    assert_eq!(found.len(), 1, "one finding per table, not per row");
    assert_eq!(found[0].path, "/schema/tables/public.users");
    assert_eq!(found[0].message, "table dropped with 12 rows");
    assert!(doc.tables["public.users"].dropped);
    run.assert_stdout("table     public.users: 12 rows before, table dropped\n");
    run.assert_stdout("FAIL  rule data-lost (no table or column that held data is dropped or narrowed): 1 finding\n");
    run.assert_stdout("      /schema/tables/public.users: table dropped with 12 rows\n");
    run.assert_stdout("      acknowledged (allow_lost): public.onboarding_states.agent_history: column dropped with 12 non-NULL values\n");
    // The foreign key went with the cascade: on screen with its definition.
    run.assert_stdout("          remove   /schema/tables/public.onboarding_states/constraints/onboarding_states_user_id_fkey  was FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE\n");

    // The same loss in JUnit, GitHub and the HTML report (a SQL downgrade: the same drop).
    let drops = ctx.path("drops-users.sql");
    std::fs::write(
        &drops,
        format!("\\ir {}\nDROP TABLE users CASCADE;\n", s(&downgrade_sql())),
    )
    .unwrap();
    let report = ctx.path("report.html");
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&drops),
        &["--format", "junit", "--report", s(&report)],
    );
    run.assert_code(1);
    assert_valid_junit(&run.stdout, &ctx);
    assert!(
        run.stdout.contains(r#"<failure type="data-lost""#)
            && run
                .stdout
                .contains("public.users: table dropped with 12 rows"),
        "{}",
        run.stdout
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("public.users: table dropped with 12 rows"),
        "{html}"
    );
    assert!(html.contains("acknowledged (allow_lost): public.onboarding_states.agent_history"));
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&drops),
        &["--format", "github"],
    );
    run.assert_code(1);
    run.assert_stdout("::error title=pgsnapdiff data-lost (onboarding.dump)::/schema/tables/public.users: table dropped with 12 rows");
}

#[test]
fn dropped_and_narrowed_columns_are_one_finding_each_until_acknowledged() {
    let ctx = Ctx::new();
    let sql = ctx.path("narrows.sql");
    std::fs::write(
        &sql,
        format!(
            "\\ir {}
-- Narrowed (every email fits, yet the type can no longer hold what it held): a loss.
ALTER TABLE users ALTER COLUMN email TYPE varchar(64);
-- Widened: never a loss.
ALTER TABLE onboarding_states ALTER COLUMN user_id TYPE bigint;\n",
            s(&downgrade_sql())
        ),
    )
    .unwrap();
    let dump = sample_dump("onboarding.dump");
    let result = ctx.path("result.json");
    let base = [
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&sql),
        "--result-out",
        s(&result),
    ];
    let doc = || -> ResultDoc {
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap()
    };
    let run = ctx.run(&base);
    run.assert_code(1);
    let doc1 = doc();
    let found: Vec<(&str, &str)> = findings_of(&doc1, "data-lost")
        .iter()
        .map(|f| (f.path.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "/schema/tables/public.onboarding_states/columns/agent_history",
                "column dropped with 12 non-NULL values"
            ),
            (
                "/schema/tables/public.users/columns/email",
                "column type narrowed from text to character varying(64), with 12 non-NULL values"
            ),
        ]
    );
    let narrowed = &doc1.data_lost[1];
    assert_eq!(
        (narrowed.from_type.as_deref(), narrowed.to_type.as_deref()),
        (Some("text"), Some("character varying(64)"))
    );
    run.assert_stdout("rollback NOT proven: 1 of 2 checks failed");

    // Acknowledged by name (flags here; `allow_lost` in the config does the same): proven,
    // and the report still says what was lost. A name that lost nothing is pointed out.
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--allow-lost",
        "public.onboarding_states.agent_history",
        "--allow-lost",
        "public.users.email",
        "--allow-lost",
        "public.users.display_name",
    ]);
    let run = ctx.run(&args);
    run.assert_code(0);
    run.assert_stdout("      acknowledged (allow_lost): public.users.email: column type narrowed from text to character varying(64), with 12 non-NULL values\n");
    run.assert_stdout(
        "      allow_lost names public.users.display_name, which lost nothing in this run\n",
    );
    assert!(doc().data_lost.iter().all(|l| l.acknowledged));

    let run = ctx.run(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&sql),
        "--allow-lost",
        "users",
    ]);
    run.assert_error(&[
        "allow_lost \"users\": name a table as schema.table or a column as schema.table.column",
    ]);
}

#[test]
fn a_downgrade_that_changes_nothing_is_never_proven() {
    let ctx = Ctx::new();
    let noop = fixture("ok/noop.sql");
    // A known revision that did not move, and nothing else changed: it ran nowhere useful.
    let run = check_with(&ctx, s(&sample_dump("onboarding.dump")), s(&noop), &[]);
    run.assert_error(&[
        "noop.sql changed nothing and left the revision at b2c3d4e5f6g7: nothing was rolled back",
    ]);
    // It connected and did something, but left the revision: a failing revision check.
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&broken("revision-not-moved")),
        &[],
    );
    run.assert_code(1);
    run.assert_stdout("FAIL  revision: the downgrade moves alembic_version: 1 finding\n      /alembic_version: the downgrade left the revision where it was: [\"b2c3d4e5f6g7\"]");
    // No revision to go by: the no-op check, which only allow_noop passes.
    let dump = fixture("ok/types.sql");
    let run = ctx.run(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-sql",
        s(&noop),
    ]);
    run.assert_code(1);
    run.assert_stdout("FAIL  no-op: the downgrade changed something: 1 finding\n      the downgrade connected but changed nothing (0 operations)");
    let config = ctx.path("noop.toml");
    std::fs::write(
        &config,
        format!(
            "dump = \"{}\"\nallow_noop = true\n[downgrade]\nsql = [\"{}\"]\n",
            s(&dump),
            s(&noop)
        ),
    )
    .unwrap();
    let run = ctx.run(&["check", "-c", s(&config)]);
    run.assert_code(0);
    run.assert_stdout("PASS  no-op: the downgrade changed something\n      it changed nothing (0 operations); allowed by allow_noop\n");
}

#[test]
fn migration_commands_get_our_connection_only_and_isolate_env_gives_them_nothing_else() {
    let ctx = Ctx::new();
    let seen = ctx.path("env.txt");
    let cmd = format!(
        "env > {} && psql -X -q -v ON_ERROR_STOP=1 -1 -f {}",
        s(&seen),
        s(&downgrade_sql())
    );
    let secret = "postgresql://app:hunter2@db.internal:5432/prod";
    let config = ctx.path("env.toml");
    let write_config = |isolate: bool| {
        std::fs::write(
            &config,
            format!(
                "dump = \"{}\"\nallow_lost = [\"public.onboarding_states.agent_history\"]\n[downgrade]\ncmd = '''{cmd}'''\nisolate_env = {isolate}\nenv = {{ APP_MODE = \"rollback-test\" }}\n",
                s(&sample_dump("onboarding.dump"))
            ),
        )
        .unwrap();
    };
    let run = |ctx: &Ctx| {
        let out = ctx
            .command(&["check", "-c", s(&config)])
            .env("SECRET_DB_URL", secret)
            .env("PGSERVICE", "prod")
            .env("PGOPTIONS", "-c search_path=evil")
            .output()
            .unwrap();
        ctx.assert_clean();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let names = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        v.sort();
        v
    };

    write_config(false);
    let out = run(&ctx);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("note: the migration command inherits SECRET_DB_URL from this shell"),
        "{}",
        out.stderr
    );
    let env = std::fs::read_to_string(&seen).unwrap();
    let inherited = names(&env);
    // Inherited PG* never reach it: the connection is ours alone.
    assert!(
        !inherited.contains(&"PGSERVICE".to_string())
            && !inherited.contains(&"PGOPTIONS".to_string()),
        "{inherited:?}"
    );
    assert!(env.contains("APP_MODE=rollback-test\n") && env.contains("PGDATABASE=pgsnapdiff\n"));
    assert!(inherited.contains(&"SECRET_DB_URL".to_string()));
    for out in [&out.stdout, &out.stderr] {
        assert!(!out.contains("hunter2"), "{out}");
    }

    write_config(true);
    let out = run(&ctx);
    out.assert_code(0);
    assert!(!out.stderr.contains("inherits"), "{}", out.stderr);
    let env = std::fs::read_to_string(&seen).unwrap();
    // What the shell itself adds (PWD, SHLVL, _) aside, exactly the minimal set.
    let shell = ["OLDPWD", "PWD", "SHLVL", "_"];
    let got: Vec<String> = names(&env)
        .into_iter()
        .filter(|n| !shell.contains(&n.as_str()))
        .collect();
    let mut want: Vec<&str> = vec![
        "APP_MODE",
        "DATABASE_URL",
        "PGDATABASE",
        "PGHOST",
        "PGPASSWORD",
        "PGPORT",
        "PGUSER",
        "PATH",
    ];
    for kept in ["HOME", "LANG"] {
        if std::env::var_os(kept).is_some() {
            want.push(kept);
        }
    }
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn without_a_config_file_commands_run_where_pgsnapdiff_was_started_and_errors_say_where() {
    let ctx = Ctx::new();
    let cmd = format!(
        "pwd > where.txt && psql -X -q -v ON_ERROR_STOP=1 -1 -f {}",
        s(&downgrade_sql())
    );
    let dump = sample_dump("onboarding.dump");
    let mut args = vec![
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        &cmd,
    ];
    args.extend_from_slice(&SAMPLE_LOSS);
    ctx.run(&args).assert_code(0);
    let cwd = std::fs::canonicalize(ctx.cwd.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(ctx.path("where.txt"))
            .unwrap()
            .trim(),
        s(&cwd)
    );
    let run = ctx.run(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        "echo nope >&2; exit 3",
    ]);
    run.assert_error(&[&format!("exited with 3 (in {}): nope", s(ctx.cwd.path()))]);
}

/// What the down-then-up round trip alone (no baseline, no rules of the migration) finds with
/// each of the sample's downgrades: the rows whose state after downgrade + upgrade differs from
/// the dump's, or the upgrade's failure. The README's round-trip table is this test.
#[test]
fn down_then_up_round_trip_alone_catches_the_sample_bugs_row_by_row() {
    let upgrade = fixture("onboarding/upgrade.sql");
    let dump = sample_dump("onboarding.dump");
    // Rows 10-12 were created after the migration: every downgrade leaves them in the 9-state
    // shape, so the upgrade maps them a second time (and row 10's agent_history is lost).
    let new_rows = ["10", "11", "12"];
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("../downgrade", &[], None),
        ("deletes-row", &["7"], None),
        ("deletes-unmigrated", &[], None),
        ("forgets-step-data", &["3", "4", "5", "6", "7", "8", "9"], None),
        ("loses-jsonb-key", &["4", "5", "6", "7", "8", "9"], None),
        ("revision-not-moved", &[], None),
        ("constraint-not-reverted", &[], Some("constraint \"valid_current_step\" of relation \"onboarding_states\" does not exist")),
        ("metadata-left", &[], Some("invalid input syntax for type integer: \"ation_metadata\"")),
        ("truthiness", &[], Some("invalid input syntax for type integer: \"ation_metadata\"")),
    ];
    for (name, rows, upgrade_error) in cases {
        let ctx = Ctx::new();
        let result = ctx.path("result.json");
        let downgrade = fixture(&format!("onboarding/broken/{name}.sql"));
        let mut args = vec![
            "check",
            "-c",
            "/dev/null",
            "--dump",
            s(&dump),
            "--downgrade-sql",
            s(&downgrade),
        ];
        args.extend_from_slice(&[
            "--reupgrade-sql",
            s(&upgrade),
            "--new-shape",
            "off",
            "--result-out",
            s(&result),
        ]);
        args.extend_from_slice(&SAMPLE_LOSS);
        let run = ctx.run(&args);
        run.assert_code(1);
        let doc: ResultDoc =
            serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        let found = findings_of(&doc, "round-trip");
        assert!(!found.is_empty(), "{name}: the round trip found nothing");
        match upgrade_error {
            Some(error) => {
                assert_eq!(found.len(), 1, "{name}");
                assert!(found[0].message.starts_with("the migration cannot go up again from the downgraded database: upgrade failed:"), "{name}: {}", found[0].message);
                assert!(
                    found[0].message.contains(error),
                    "{name}: {}",
                    found[0].message
                );
            }
            None => {
                let mut want: Vec<String> = rows
                    .iter()
                    .chain(&new_rows)
                    .map(|k| k.to_string())
                    .collect();
                want.sort();
                let mut got = keys(&found);
                got.sort();
                got.dedup();
                assert_eq!(got, want, "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------- the same verdicts with Django

/// The Django test project migrated to head (0002) on `theirs`, with rows in every table, and
/// dumped: what a user of the shop site would feed pgsnapdiff.
fn django_dump(theirs: &ScratchServer, ctx: &Ctx) -> std::path::PathBuf {
    theirs.query("postgres", "CREATE DATABASE shop");
    let out = std::process::Command::new("sh")
        .args(["-c", &django("migrate")])
        .env("DATABASE_URL", theirs.url("shop"))
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate: {out:?}");
    theirs.query(
        "shop",
        "INSERT INTO shop_customer (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');
         INSERT INTO shop_order (id, customer_id, total) VALUES (1, 1, 10.50), (2, 1, 99.99), (3, 2, 1500.00), (4, 3, 0.10);
         INSERT INTO shop_note (order_id, body) VALUES (1, 'gift wrap'), (2, 'call first'), (2, 'fragile'), (3, 'refund asked'), (4, 'VIP');",
    );
    let dump = ctx.path("shop.dump");
    theirs.dump("shop", &dump);
    dump
}

#[test]
fn django_rollback_that_drops_a_table_with_rows_is_not_proven() {
    let theirs = ScratchServer::start();
    let ctx = Ctx::new();
    let dump = django_dump(&theirs, &ctx);
    let result = ctx.path("result.json");
    let step = django("migrate shop 0001");
    let run = ctx.run(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        &step,
        "--result-out",
        s(&result),
    ]);
    run.assert_code(1);
    run.assert_stdout("table     public.shop_note: 5 rows before, table dropped\n");
    run.assert_stdout("      /schema/tables/public.shop_note: table dropped with 5 rows\n");
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let lost: Vec<(&str, u64, bool)> = doc
        .data_lost
        .iter()
        .map(|l| (l.name.as_str(), l.count, l.acknowledged))
        .collect();
    assert_eq!(lost, [("public.shop_note", 5, false)]);
    // Django's own bookkeeping row for 0002 goes too: rows-preserved says so.
    let gone: Vec<&str> = findings_of(&doc, "rows-preserved")
        .iter()
        .map(|f| f.table.as_deref().unwrap())
        .collect();
    assert_eq!(gone, ["public.django_migrations"]);
}

#[test]
fn django_settings_with_their_own_database_are_an_error_not_a_proof() {
    let theirs = ScratchServer::start();
    let ctx = Ctx::new();
    let dump = django_dump(&theirs, &ctx);
    theirs.restore("shop_prod", &dump);
    // A settings module with the database written in, as on a server.
    let project = ctx.path("shopsite-prod");
    copy_dir(&django_dir(), &project);
    std::fs::write(
        project.join("shopsite/settings_prod.py"),
        format!(
            "import os\nos.environ.setdefault('DATABASE_URL', 'unused')\nfrom .settings import *  # noqa\nDATABASES['default'].update(NAME='shop_prod', USER='postgres', PASSWORD='', HOST='127.0.0.1', PORT={})\n",
            theirs.port
        ),
    )
    .unwrap();
    let step = format!(
        "{} manage.py migrate shop 0001",
        venv().join("bin/python").display()
    );
    let out = ctx
        .command(&[
            "check",
            "-c",
            "/dev/null",
            "--dump",
            s(&dump),
            "--downgrade-cmd",
            &step,
            "--downgrade-cwd",
            s(&project),
        ])
        .env("DJANGO_SETTINGS_MODULE", "shopsite.settings_prod")
        .output()
        .unwrap();
    ctx.assert_clean();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.assert_error(&[
        "exited 0 but never connected to the throwaway database pgsnapdiff",
        "inherited variables that point at a database: DJANGO_SETTINGS_MODULE",
    ]);
    // Django's own words, above the error: it unapplied 0002 on the database it was given.
    assert!(
        run.stderr.contains("Unapplying shop.0002_note... OK"),
        "{}",
        run.stderr
    );
    assert_eq!(
        theirs.query("shop_prod", "SELECT to_regclass('shop_note') IS NULL"),
        "t",
        "the rollback really ran on their database"
    );
}
