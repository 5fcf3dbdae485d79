//! Several cases on one server.

use super::*;

// ---------------------------------------------------------------- several cases, one server

/// A config of three cases: `onboarding` (proven, with a baseline), `onboarding-truthiness`
/// (a broken downgrade: not proven) and `shop` (proven).
pub(crate) fn three_cases(ctx: &Ctx) -> std::path::PathBuf {
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
    config
}

#[test]
pub(crate) fn several_cases_share_one_server_and_each_gets_a_fresh_database() {
    let ctx = Ctx::new();
    let config = three_cases(&ctx);
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
pub(crate) fn after_snapshot_baseline_is_pending_until_accepted_and_then_catches_a_regression() {
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
pub(crate) fn review_shows_the_diff_on_a_terminal_and_accepts_or_rejects_as_answered() {
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
pub(crate) fn an_error_in_one_case_is_reported_in_its_place_and_the_other_cases_still_run() {
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
pub(crate) fn a_closed_stderr_is_not_a_panic() {
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

#[test]
pub(crate) fn shards_run_every_nth_case_and_their_merged_results_match_the_whole_run() {
    let ctx = Ctx::new();
    let config = three_cases(&ctx);
    // The whole run, for comparison.
    let whole = ctx.path("whole.json");
    ctx.run(&[
        "check",
        "-c",
        s(&config),
        "--check",
        "--result-out",
        s(&whole),
    ])
    .assert_code(1);
    // Four shards of three cases: in name order, shard I runs the I-th, so shard 4 has none.
    let mut files = Vec::new();
    for (i, expect) in [
        (1, Some("onboarding")),
        (2, Some("onboarding-truthiness")),
        (3, Some("shop")),
        (4, None),
    ] {
        let file = ctx.path(&format!("shard-{i}.json"));
        let shard = format!("{i}/4");
        let run = ctx.run(&[
            "check",
            "-c",
            s(&config),
            "--check",
            "--shard",
            &shard,
            "--result-out",
            s(&file),
        ]);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(json["format"], "pgsnapdiff-results/1");
        assert_eq!(
            json["shard"],
            serde_json::json!({"index": i, "of": 4, "cases": 3})
        );
        let cases: Vec<&str> = json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case"].as_str().unwrap())
            .collect();
        assert_eq!(cases, expect.into_iter().collect::<Vec<_>>(), "shard {i}");
        // Every shard checks the baselines of all cases: none is an orphan of another shard.
        assert_eq!(json["checks"][0]["id"], "baselines");
        assert_eq!(json["checks"][0]["passed"], true, "{json}");
        match expect {
            Some("onboarding-truthiness") => run.assert_code(1),
            Some(_) => run.assert_code(0),
            None => run
                .assert_code(0)
                .assert_stdout("no case in this shard: nothing proven or disproven here"),
        };
        files.push(file);
    }
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["merge-results".into()];
        args.extend(files.iter().map(|f| s(f).to_string()));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let run_args = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ctx.run(&a)
    };
    let merged = ctx.path("merged.json");
    let report = ctx.path("merged.html");
    let run = run_args(args(&["--result-out", s(&merged), "--report", s(&report)]));
    run.assert_code(1)
        .assert_stdout("== case onboarding (")
        .assert_stdout("== case shop (")
        .assert_stdout("rollback NOT proven in 1 of 3 cases: onboarding-truthiness");
    // The merged result says what the whole run said, case by case and check by check.
    let verdicts = |path: &std::path::Path| {
        let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases: Vec<(String, Vec<(String, bool)>)> = json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let checks = c["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| {
                        (
                            k["id"].as_str().unwrap().to_string(),
                            k["passed"].as_bool().unwrap(),
                        )
                    })
                    .collect();
                (c["case"].as_str().unwrap().to_string(), checks)
            })
            .collect();
        (
            json["verdict"].clone(),
            cases,
            json["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["findings"].as_array().unwrap().len())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(verdicts(&merged), verdicts(&whole));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("onboarding-truthiness") && html.contains("shard-2.json"),
        "{html}"
    );
    let markdown = ctx.path("merged.md");
    run_args(args(&["--report", s(&markdown)])).assert_code(1);
    let md = std::fs::read_to_string(&markdown).unwrap();
    for case in ["onboarding", "onboarding-truthiness", "shop"] {
        assert!(md.contains(&format!("case {case}: before")), "{md}");
    }
    let junit = run_args(args(&["--format", "junit"]));
    assert_eq!(
        junit.stdout.matches("<testsuite ").count(),
        4,
        "{}",
        junit.stdout
    );
    assert_valid_junit(&junit.stdout, &ctx);

    // A missing shard proves nothing: no verdict at all.
    let partial: Vec<&str> = ["merge-results", s(&files[0]), s(&files[2]), s(&files[3])].to_vec();
    ctx.run(&partial)
        .assert_error(&["shard 2/4 missing", "nothing is merged"]);
    // Shards of different selections, or a shard that lost a case on the way: refused.
    let edited = |i: usize, edit: &dyn Fn(&mut Value)| {
        let mut json: Value =
            serde_json::from_str(&std::fs::read_to_string(&files[i]).unwrap()).unwrap();
        edit(&mut json);
        let path = ctx.path(&format!("edited-{i}.json"));
        std::fs::write(&path, json.to_string()).unwrap();
        path
    };
    let other_total = edited(3, &|j| j["shard"]["cases"] = serde_json::json!(4));
    ctx.run(&[
        "merge-results",
        s(&files[0]),
        s(&files[1]),
        s(&files[2]),
        s(&other_total),
    ])
    .assert_error(&["counts 4 cases in all", "same config and --case"]);
    let lost_case = edited(0, &|j| j["cases"] = serde_json::json!([]));
    ctx.run(&[
        "merge-results",
        s(&lost_case),
        s(&files[1]),
        s(&files[2]),
        s(&files[3]),
    ])
    .assert_error(&["the shards hold 2 cases, but each counted 3"]);
    let twice = [
        "merge-results",
        s(&files[0]),
        s(&files[0]),
        s(&files[1]),
        s(&files[2]),
        s(&files[3]),
    ];
    ctx.run(&twice).assert_error(&["is shard 1/4, and so is"]);
    ctx.run(&["merge-results", s(&ctx.path("nope.json"))])
        .assert_error(&["no such file; did that shard run"]);
    // A proven subset merges to proven (exit 0) without shard numbers: single results.
    let one = ctx.path("one.json");
    check_sample(&ctx, "onboarding.dump");
    ctx.run(&[
        "check",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "--downgrade-sql",
        s(&downgrade_sql()),
        "--allow-lost",
        "public.onboarding_states.agent_history",
        "-c",
        "/dev/null",
        "--result-out",
        s(&one),
    ])
    .assert_code(0);
    ctx.run(&["merge-results", s(&one)])
        .assert_code(0)
        .assert_stdout("rollback proven in all 1 cases (merged from 1 result files)");
    ctx.run(&["merge-results", s(&one), s(&files[0])])
        .assert_error(&["is not a shard's result, but the others are"]);
}
