//! The restoration rules on the sample and its broken downgrades.

use super::*;

// ---------------------------------------------------------------- restoration rules (issue 3)

/// The JSON result, decoded into our own mirror of its documented schema: a format change
/// breaks this test.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct ResultDoc {
    pub(crate) format: String,
    pub(crate) verdict: String,
    pub(crate) dump: serde_json::Map<String, Value>,
    pub(crate) server: String,
    pub(crate) upgrade: Option<String>,
    pub(crate) downgrade: String,
    /// The downgrade's own output, its last 200 lines.
    pub(crate) downgrade_output: Vec<String>,
    pub(crate) revision: RevisionDoc,
    pub(crate) timing_seconds: std::collections::BTreeMap<String, f64>,
    pub(crate) tables: std::collections::BTreeMap<String, TableCountsDoc>,
    pub(crate) patch: PatchCountsDoc,
    pub(crate) data_lost: Vec<LossDoc>,
    /// The patch's `/schema` operations, as RFC 6902 operations.
    pub(crate) schema: Vec<json_patch::PatchOperation>,
    pub(crate) checks: Vec<CheckDoc>,
    pub(crate) findings: Vec<FindingDoc>,
}

/// The migration tool and its revision on each side (README "Result JSON", `revision`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevisionDoc {
    pub(crate) tool: Option<String>,
    pub(crate) before: Option<Vec<String>>,
    pub(crate) after: Option<Vec<String>>,
}

/// A table or column dropped (or narrowed) with data (README "Result JSON", `data_lost`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LossDoc {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) count: u64,
    pub(crate) acknowledged: bool,
    pub(crate) from_type: Option<String>,
    pub(crate) to_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct TableCountsDoc {
    pub(crate) rows_before: u64,
    pub(crate) rows_after: u64,
    pub(crate) added: u64,
    pub(crate) removed: u64,
    pub(crate) changed: u64,
    #[serde(default)]
    pub(crate) dropped: bool,
    #[serde(default)]
    pub(crate) created: bool,
    /// Not read: the downgrade never wrote it.
    #[serde(default)]
    pub(crate) untouched: bool,
    /// Rows of a written table that the downgrade never wrote: counted, not read.
    #[serde(default)]
    pub(crate) unread: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct PatchCountsDoc {
    pub(crate) operations: u64,
    pub(crate) revision: u64,
    pub(crate) schema: u64,
    pub(crate) data: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckDoc {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) name: String,
    pub(crate) passed: bool,
    pub(crate) severity: String,
    pub(crate) notes: Vec<String>,
    pub(crate) findings: u64,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingDoc {
    pub(crate) rule: String,
    pub(crate) message: String,
    pub(crate) table: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) path: String,
    pub(crate) before: Option<Value>,
    pub(crate) expected: Option<Value>,
    pub(crate) actual: Option<Value>,
}

/// The sample's rules (as in the repo's pgsnapdiff.toml), with absolute paths and no expected
/// patch: the rollback must be provable by rules alone.
pub(crate) fn rules_config(ctx: &Ctx) -> std::path::PathBuf {
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
pub(crate) fn check_rules(
    ctx: &Ctx,
    downgrade: &std::path::Path,
    extra: &[&str],
) -> (Run, ResultDoc) {
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

pub(crate) fn findings_of<'a>(doc: &'a ResultDoc, rule: &str) -> Vec<&'a FindingDoc> {
    doc.findings.iter().filter(|f| f.rule == rule).collect()
}

pub(crate) fn keys(findings: &[&FindingDoc]) -> Vec<String> {
    let mut keys: Vec<String> = findings.iter().filter_map(|f| f.key.clone()).collect();
    keys.dedup();
    keys
}

pub(crate) fn broken(name: &str) -> std::path::PathBuf {
    fixture(&format!("onboarding/broken/{name}.sql"))
}

#[test]
pub(crate) fn sample_is_proven_by_rules_alone() {
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
pub(crate) fn rows_created_after_the_migration_are_reported_as_left_in_the_new_shape() {
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
pub(crate) fn correct_downgrade_of_a_dump_without_post_migration_rows_leaves_nothing_in_the_new_shape()
 {
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
pub(crate) fn metadata_left_in_place_is_caught_in_every_migrated_row() {
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
pub(crate) fn truthiness_bug_skipping_step_zero_and_empty_data_is_caught() {
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
pub(crate) fn deleting_rows_without_metadata_is_caught_by_two_rules() {
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
pub(crate) fn constraint_not_reverted_fails_the_schema_test() {
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
pub(crate) fn revision_not_moved_is_reported_with_both_revisions() {
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
pub(crate) fn misspelt_metadata_pointer_is_a_finding_not_a_pass() {
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
pub(crate) fn bad_rule_configuration_is_an_error() {
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
pub(crate) fn round_trip_passes_with_the_correct_migration_and_names_a_lost_jsonb_key() {
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
pub(crate) fn round_trip_ignores_declared_columns() {
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

#[test]
pub(crate) fn new_shape_is_silent_on_a_log_whose_keys_vary_by_design_and_finds_the_missed_entry() {
    // Before this rule learned the new shape too, every login, move, comment and lock entry
    // was "left in the new shape" (keys no rewritten entry had): 11 findings in 6 rows, 10 of
    // them false.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let run = check_sql(
        &ctx,
        &fixture("ok/log-shapes.sql"),
        &fixture("ok/log-shapes.down.sql"),
        &["--result-out", s(&result)],
    );
    run.assert_code(0);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let found: Vec<(&str, &str)> = findings_of(&doc, "new-shape")
        .iter()
        .map(|f| (f.path.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [(
            "/data/public.audit_log/101/data/page_title",
            "left in the new shape: key not in the old shape"
        )]
    );
}
