//! CI outputs: JUnit (schema-validated), GitHub annotations, JSON, colors.

use super::*;

// ---------------------------------------------------------------- CI outputs

/// `xmllint --schema` against the Jenkins JUnit schema.
pub(crate) fn assert_valid_junit(xml: &str, ctx: &Ctx) {
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
pub(crate) fn junit_github_and_json_formats_for_check_and_walk() {
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
pub(crate) fn color_and_progress_only_on_a_terminal_and_never_with_no_color() {
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
