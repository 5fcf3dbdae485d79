//! Verdicts you can trust: data lost, a downgrade that ran elsewhere, no-ops, the environment, round trips.

use super::*;

// ---------------------------------------------------------------- verdicts you can trust (issue 12)

/// The sample's Alembic project with an env.py that reads its URL from APP_DATABASE_URL, as an
/// app with its own settings does: pgsnapdiff's DATABASE_URL is never looked at.
pub(crate) fn alembic_reading_another_variable(ctx: &Ctx) -> std::path::PathBuf {
    let project = ctx.path("app-alembic");
    copy_dir(&alembic_dir(), &project);
    let env_py = project.join("migrations/env.py");
    let text = std::fs::read_to_string(&env_py).unwrap();
    std::fs::write(&env_py, text.replace("DATABASE_URL", "APP_DATABASE_URL")).unwrap();
    project
}

#[test]
pub(crate) fn downgrade_that_migrates_another_database_is_an_error_that_names_the_variable_not_its_value()
 {
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
        ctx.finish(ctx.command(&args).env(
            "APP_DATABASE_URL",
            theirs.url(db).replace("postgresql:", "postgresql+asyncpg:"),
        ))
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
pub(crate) fn downgrade_that_drops_a_table_with_rows_fails_data_lost_in_every_output() {
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
pub(crate) fn dropped_and_narrowed_columns_are_one_finding_each_until_acknowledged() {
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
pub(crate) fn a_downgrade_that_changes_nothing_is_never_proven() {
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
pub(crate) fn migration_commands_get_our_connection_only_and_isolate_env_gives_them_nothing_else() {
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
        ctx.finish(
            ctx.command(&["check", "-c", s(&config)])
                .env("SECRET_DB_URL", secret)
                .env("PGSERVICE", "prod")
                .env("PGOPTIONS", "-c search_path=evil"),
        )
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
pub(crate) fn without_a_config_file_commands_run_where_pgsnapdiff_was_started_and_errors_say_where()
{
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
pub(crate) fn down_then_up_round_trip_alone_catches_the_sample_bugs_row_by_row() {
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
