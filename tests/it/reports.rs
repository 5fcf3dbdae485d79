//! Audit reports, opened in a real browser.

use super::*;

// ---------------------------------------------------------------- audit reports

/// Where test screenshots of HTML reports go, for a human to look at.
pub(crate) fn screenshot(name: &str) -> std::path::PathBuf {
    let dir = repo().join("target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

pub(crate) fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} is not a real screenshot",
        path.display()
    );
}

/// The HTML must not fetch anything: no src/href/url()/@import at all.
pub(crate) fn assert_self_contained(html: &str) {
    for needle in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(needle), "report references {needle}");
    }
}

#[test]
pub(crate) fn walk_html_report_has_one_section_per_revision_in_a_real_browser() {
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
pub(crate) fn check_reports_identify_inputs_and_render_in_a_real_browser() {
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
pub(crate) fn walk_works_with_any_step_command_and_revision_query() {
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
