//! Regression baselines: pending, accept, reject, check mode.

use super::*;

// ---------------------------------------------------------------- regression baselines (issue 5)

/// A check of the sample against the baseline `baseline` (in the test's own dir).
pub(crate) fn check_baseline(
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
pub(crate) fn mismatch_writes_a_pending_baseline_locally_and_nothing_in_ci_then_accept_and_reject()
{
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
pub(crate) fn orphaned_baselines_fail_a_check_run_and_a_missing_baseline_is_pending_until_accepted()
{
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
pub(crate) fn volatile_values_are_redacted_so_baselines_do_not_churn() {
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

#[test]
pub(crate) fn a_migration_tools_audit_row_travels_with_volatile_patterns() {
    // As Airflow's downgrade does: it writes an audit row with a timestamp, the host name and
    // the virtualenv's path, different on every machine and run. The bookkeeping of a known
    // tool is never in the patch; an app's own audit table is, so its varying values are
    // named volatile and the committed baseline holds on the next machine.
    let ctx = Ctx::new();
    let downgrade = ctx.path("down.sql");
    let sql = std::fs::read_to_string(fixture("ok/log-shapes.down.sql")).unwrap();
    std::fs::write(
        &downgrade,
        format!(
            "{sql}\nINSERT INTO audit_log VALUES (200, 'db_downgrade', jsonb_build_object('dttm', clock_timestamp(), 'host', md5(random()::text), 'venv', '/home/' || md5(random()::text) || '/.venv'));\n"
        ),
    )
    .unwrap();
    let baseline = ctx.path("log.patch.json");
    let dump = fixture("ok/log-shapes.sql");
    let run = |extra: &[&str]| {
        let mut args = vec!["--expect-patch", s(&baseline)];
        args.extend_from_slice(extra);
        check_sql(&ctx, &dump, &downgrade, &args)
    };
    let volatile = [
        "--volatile",
        "/data/public.audit_log/*/data/dttm",
        "--volatile",
        "/data/public.audit_log/*/data/host",
        "--volatile",
        "/data/public.audit_log/*/data/venv",
    ];
    run(&volatile).assert_code(1);
    ctx.run(&["accept", s(&baseline)]).assert_code(0);
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(
        text.contains(r#"{"op":"add","path":"/data/public.audit_log/200","value":{"action":"db_downgrade","data":{"dttm":"[volatile]","host":"[volatile]","venv":"[volatile]"},"id":200}}"#),
        "{text}"
    );
    run(&volatile).assert_code(0);
    // Without the patterns the same baseline fails: the row differs on every run.
    run(&[]).assert_code(1);
}
