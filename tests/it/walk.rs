//! `pgsnapdiff walk`: one revision at a time.

use super::*;

// ---------------------------------------------------------------- walk (issue 8)

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct WalkDoc {
    pub(crate) format: String,
    pub(crate) verdict: String,
    pub(crate) complete: bool,
    pub(crate) dump: Value,
    pub(crate) server: String,
    pub(crate) step_cmd: String,
    pub(crate) to: String,
    pub(crate) timing_seconds: std::collections::BTreeMap<String, f64>,
    pub(crate) steps: Vec<WalkStepDoc>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct WalkStepDoc {
    /// The step command's own output, its last 200 lines.
    pub(crate) output: Vec<String>,
    pub(crate) from: Vec<String>,
    pub(crate) to: Vec<String>,
    pub(crate) timing_seconds: std::collections::BTreeMap<String, f64>,
    pub(crate) tables: std::collections::BTreeMap<String, TableCountsDoc>,
    pub(crate) patch: PatchCountsDoc,
    pub(crate) lost_rows: std::collections::BTreeMap<String, u64>,
    pub(crate) dropped_tables: std::collections::BTreeMap<String, u64>,
    pub(crate) data_lost: Vec<LossDoc>,
    pub(crate) schema: Vec<Value>,
    pub(crate) checks: Vec<CheckDoc>,
    pub(crate) findings: Vec<FindingDoc>,
}

/// `walk` with the virtualenv's `alembic downgrade -1` in `project`; the run and, when one was
/// written, the walk JSON.
pub(crate) fn walk(
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
pub(crate) const SHOP_NAMES_MERGE: [&str; 4] = [
    "--allow-lost",
    "public.customers.first_name",
    "--allow-lost",
    "public.customers.last_name",
];

pub(crate) fn shop_dump() -> std::path::PathBuf {
    fixture("walk/dumps/shop.dump")
}

#[test]
pub(crate) fn walk_names_the_revision_that_lost_rows_and_exactly_which() {
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
pub(crate) fn walk_of_the_sample_reports_its_one_revision_with_the_new_shape_rows() {
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

pub(crate) fn findings_of_step<'a>(step: &'a WalkStepDoc, rule: &str) -> Vec<&'a FindingDoc> {
    step.findings.iter().filter(|f| f.rule == rule).collect()
}

#[test]
pub(crate) fn walk_errors_name_the_step_and_still_report_what_was_walked() {
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
        run.stderr.contains("no revision found (no migration tool's bookkeeping table, or it is empty); name the tool with --tool, or pass --revision-sql"),
        "{}",
        run.stderr
    );
}
