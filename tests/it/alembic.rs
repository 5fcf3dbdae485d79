//! The real Alembic client from PyPI, with the sample's own migration and its bugs.

use super::*;

// ---------------------------------------------------------------- the real Alembic client (issue 4)

/// `check` of the sample with `alembic downgrade -1` from the sample's Alembic project, the
/// sample's rules and expected patch, and `SAMPLE_DOWNGRADE_BUG=bug` when given.
pub(crate) fn alembic_check(ctx: &Ctx, bug: Option<&str>, downgrade_cmd: &str) -> (Run, ResultDoc) {
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
pub(crate) fn alembic_downgrade_is_proven_and_alembic_current_is_the_old_revision() {
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

pub(crate) fn alembic_bug(bug: &str) -> ResultDoc {
    let ctx = Ctx::new();
    let (run, doc) = alembic_check(&ctx, Some(bug), &alembic("downgrade -1"));
    run.assert_code(1);
    assert_eq!(doc.verdict, "not proven");
    doc
}

#[test]
pub(crate) fn alembic_truthiness_bug_is_caught_on_the_step_zero_row() {
    let doc = alembic_bug("truthiness");
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(keys(&found), ["1"]);
    assert_eq!(
        found[0].path,
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );
}

#[test]
pub(crate) fn alembic_keep_metadata_bug_is_caught_in_every_migrated_row() {
    let doc = alembic_bug("keep-metadata");
    let found = findings_of(&doc, "metadata-restored");
    assert_eq!(keys(&found), ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert!(found.iter().all(|f| f.message == "metadata left in place"));
}

#[test]
pub(crate) fn alembic_delete_new_rows_bug_names_the_deleted_rows() {
    let doc = alembic_bug("delete-new-rows");
    assert_eq!(
        keys(&findings_of(&doc, "rows-preserved")),
        ["10", "11", "12"]
    );
}

#[test]
pub(crate) fn alembic_no_constraint_bug_fails_the_constraint_test() {
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
pub(crate) fn alembic_float_json_bug_shows_the_changed_number_text() {
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
pub(crate) fn alembic_round_trip_from_the_11_step_dump() {
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
pub(crate) fn missing_alembic_is_one_clear_line() {
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

#[test]
pub(crate) fn alembic_preset_runs_alembics_own_downgrade_and_reads_its_revision() {
    // The README's recipe: --tool alembic, no command of the user's own, the venv activated.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let (dump, cwd) = (sample_dump("onboarding.dump"), alembic_dir());
    // What check and walk share: the sample, its intended loss, the app's Alembic project.
    let common = |command: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [command, SAMPLE_LOSS[0], SAMPLE_LOSS[1], "-c", "/dev/null"]
            .map(String::from)
            .to_vec();
        args.extend(["--dump".into(), s(&dump).into(), "--downgrade-cwd".into()]);
        args.extend([
            s(&cwd).into(),
            "--url-scheme".into(),
            "postgresql+asyncpg".into(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let check = common(
        "check",
        &["--tool", "alembic", "--expect-revision", "a1b2c3d4e5f6"],
    );
    let mut check: Vec<&str> = check.iter().map(String::as_str).collect();
    check.extend(["--result-out", s(&result)]);
    let run = ctx.finish(activated(&mut ctx.command(&check)));
    run.assert_code(0);
    run.assert_stdout("downgrade `alembic downgrade -1`\n");
    run.assert_stdout("revision  b2c3d4e5f6g7 → a1b2c3d4e5f6\n");
    run.assert_stdout("PASS  revision: alembic_version is a1b2c3d4e5f6 after the downgrade\n");
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(doc.revision.tool.as_deref(), Some("alembic"));
    // Alembic's own log lines are kept in the result.
    let output = doc.downgrade_output.join("\n");
    assert!(
        output.contains("Running downgrade b2c3d4e5f6g7 -> a1b2c3d4e5f6"),
        "{output}"
    );
    // And walk, with the detected tool's own step: one revision, down to the previous.
    let walked = ctx.path("walk.json");
    let walk = common("walk", &["--to", "a1b2c3d4e5f6"]);
    let mut walk: Vec<&str> = walk.iter().map(String::as_str).collect();
    walk.extend(["--result-out", s(&walked)]);
    let run = ctx.finish(activated(&mut ctx.command(&walk)));
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("migration tool: alembic (detected by its alembic_version table"),
        "{}",
        run.stderr
    );
    let doc: WalkDoc = serde_json::from_str(&std::fs::read_to_string(&walked).unwrap()).unwrap();
    assert_eq!(doc.step_cmd, "`alembic downgrade -1`");
    assert_eq!(doc.steps.len(), 1);
}
