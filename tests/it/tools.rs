//! Migration-tool presets whose clients the test setup does not install (sqlx, golang-migrate,
//! Rails, Flyway): detection, the revision each reads, and bookkeeping kept out of the data, on
//! their bookkeeping tables exactly as the tools create them (tests/fixtures/tools/README.md).
//! Alembic and Django are tested with their real clients (alembic.rs, django.rs); exclusions
//! and chosen tables that a step drops are here too.

use super::*;

/// (tool, table, revision before, revision after the fixture's downgrade)
const PRESETS: &[(&str, &str, &str, &str)] = &[
    (
        "sqlx",
        "_sqlx_migrations",
        "20240201000000",
        "20240101000000",
    ),
    ("golang-migrate", "schema_migrations", "2", "1"),
    (
        "rails",
        "schema_migrations",
        "20240201000000",
        "20240101000000",
    ),
    ("flyway", "flyway_schema_history", "2", "1"),
];

#[test]
pub(crate) fn each_preset_is_detected_reads_its_revision_and_keeps_its_bookkeeping_out() {
    for (tool, table, before, after) in PRESETS {
        let ctx = Ctx::new();
        let result = ctx.path("result.json");
        let run = check_sql(
            &ctx,
            &fixture(&format!("tools/{tool}.sql")),
            &fixture(&format!("tools/{tool}.down.sql")),
            &[
                "--allow-lost",
                "public.widgets.colour",
                "--expect-revision",
                after,
                "--result-out",
                s(&result),
            ],
        );
        run.assert_code(0);
        assert!(
            run.stderr.contains(&format!(
                "migration tool: {tool} (detected by its {table} table"
            )),
            "{tool}: {}",
            run.stderr
        );
        run.assert_stdout(&format!("revision  {before} → {after} ({tool})\n"));
        run.assert_stdout(&format!(
            "PASS  revision: {table} is {after} after the downgrade\n"
        ));
        let doc: ResultDoc =
            serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        assert_eq!(doc.revision.tool.as_deref(), Some(*tool));
        assert_eq!(
            (doc.revision.before.clone(), doc.revision.after.clone()),
            (
                Some(vec![before.to_string()]),
                Some(vec![after.to_string()])
            ),
            "{tool}"
        );
        // Only the data table is data: the tool's rows (timestamps, checksums) never are.
        let tables: Vec<&str> = doc.tables.keys().map(String::as_str).collect();
        assert_eq!(tables, ["public.widgets"], "{tool}");
        assert!(findings_of(&doc, "rows-preserved").is_empty(), "{tool}");
    }
}

#[test]
pub(crate) fn a_said_tool_wins_and_a_missing_bookkeeping_table_is_pointed_out() {
    let ctx = Ctx::new();
    let run = check_sql(
        &ctx,
        &fixture("tools/sqlx.sql"),
        &fixture("tools/sqlx.down.sql"),
        &["--allow-lost", "public.widgets.colour", "--tool", "flyway"],
    );
    assert!(
        run.stderr.contains(
            "--tool flyway: the dump has no flyway_schema_history table, so no revision is known before the downgrade"
        ),
        "{}",
        run.stderr
    );
    // Not flyway's: the sqlx table is data now, and its deleted row is a lost row.
    run.assert_code(1);
    run.assert_stdout("/data/public._sqlx_migrations/20240201000000: row disappeared");
    // Flyway has no default downgrade: refused before any work, with what to do instead.
    let run = ctx.run(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&fixture("tools/flyway.sql")),
        "--tool",
        "flyway",
    ]);
    run.assert_error(&[
        "flyway has no default one",
        "--downgrade-sql with your undo script",
    ]);
}

#[test]
pub(crate) fn excluded_tables_are_neither_read_nor_lost() {
    // The sample without its users table: the downgrade's own loss stays acknowledged; users
    // is not read at all.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let run = check_with(
        &ctx,
        s(&sample_dump("onboarding.dump")),
        s(&downgrade_sql()),
        &["--exclude-table", "public.us*", "--result-out", s(&result)],
    );
    run.assert_code(0);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let tables: Vec<&str> = doc.tables.keys().map(String::as_str).collect();
    assert_eq!(tables, ["public.onboarding_states"]);
    // Excluding the table whose column the downgrade drops: no loss to acknowledge either.
    let run = check_sql(
        &ctx,
        &sample_dump("onboarding.dump"),
        &downgrade_sql(),
        &[
            "--exclude-table",
            "*.onboarding_*",
            "--result-out",
            s(&result),
        ],
    );
    run.assert_code(0);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert!(doc.data_lost.is_empty(), "{:?}", doc.data_lost);
    assert_eq!(
        doc.tables.keys().map(String::as_str).collect::<Vec<_>>(),
        ["public.users"]
    );
}

#[test]
pub(crate) fn walk_goes_on_past_a_chosen_table_that_a_step_dropped() {
    // Revision 0002 → 0001 drops orders; the walk goes on to base, where orders is gone.
    let ctx = Ctx::new();
    let result = ctx.path("walk.json");
    let dump = shop_dump();
    let mut args = vec![
        "walk",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--to",
        "base",
        "--table",
        "public.orders",
        "--table",
        "customers",
        "--result-out",
        s(&result),
    ];
    let step = alembic("downgrade -1");
    let cwd = fixture("walk/alembic");
    args.extend(["--step-cmd", &step, "--downgrade-cwd", s(&cwd)]);
    args.extend(SHOP_NAMES_MERGE);
    let run = ctx.run(&args);
    run.assert_code(1);
    let doc: WalkDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let dropped: Vec<Vec<&str>> = doc
        .steps
        .iter()
        .map(|s| s.dropped_tables.keys().map(String::as_str).collect())
        .collect();
    assert_eq!(
        dropped,
        [
            vec![],
            vec![],
            vec!["public.orders"],
            vec!["public.customers"]
        ]
    );
    assert!(doc.complete);
}

/// A check with narrowing on from 0 rows (`PGSNAPDIFF_NARROW_ROWS`), `-o` and `--result-out`
/// files named `name`, expected to exit `code`: its result and its patch.
pub(crate) fn narrowing_run(
    ctx: &Ctx,
    args: &[&str],
    name: &str,
    code: i32,
    prepare: impl Fn(&mut std::process::Command) -> &mut std::process::Command,
) -> (ResultDoc, String) {
    let (result, patch) = (
        ctx.path(&format!("{name}.json")),
        ctx.path(&format!("{name}.patch")),
    );
    let mut args = args.to_vec();
    args.extend_from_slice(&["--result-out", s(&result), "-o", s(&patch)]);
    let mut cmd = ctx.command(&args);
    cmd.env("PGSNAPDIFF_NARROW_ROWS", "0");
    ctx.finish(prepare(&mut cmd)).assert_code(code);
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    (doc, std::fs::read_to_string(&patch).unwrap())
}

#[test]
pub(crate) fn of_a_written_table_only_the_rows_the_downgrade_wrote_are_read() {
    // 20 rows per table; narrowing on from 0 rows (PGSNAPDIFF_NARROW_ROWS) so these are
    // narrowed as a big table would be. Where the counts prove nothing was removed, only the
    // written rows are read; a delete, a changed key, a new column or a json column (new-shape
    // reads it) make the table read whole; VACUUM FULL and FREEZE keep the xmin that finds the
    // written rows. Whatever was read, the patch is byte for byte the one of reading
    // everything (as the superuser, no table is narrowed).
    let ctx = Ctx::new();
    let step = format!(
        "psql -X -q -v ON_ERROR_STOP=1 -f {}",
        s(&fixture("ok/written.down.sql"))
    );
    let dump = fixture("ok/written.sql");
    let base = [
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        &step,
    ];
    let run = |extra: &[&str], name: &str| {
        // Rows were removed (rows-preserved fails): exit 1, every table still diffed.
        narrowing_run(&ctx, &[&base[..], extra].concat(), name, 1, |c| c)
    };
    let (doc, patch) = run(&[], "narrowed");
    let counts = |doc: &ResultDoc| -> Vec<(String, [u64; 6])> {
        doc.tables
            .iter()
            .map(|(t, c)| {
                let n = [
                    c.rows_before,
                    c.rows_after,
                    c.changed,
                    c.added,
                    c.removed,
                    c.unread,
                ];
                (t.clone(), n)
            })
            .collect()
    };
    let expect = |t: &str, n: [u64; 6]| (format!("public.{t}"), n);
    assert_eq!(
        counts(&doc),
        [
            // before, after, changed, added, removed, unread
            expect("w_add_column", [20, 20, 20, 0, 0, 0]),
            expect("w_delete", [20, 19, 1, 0, 1, 0]),
            expect("w_freeze", [20, 20, 1, 0, 0, 19]),
            expect("w_insert", [20, 22, 0, 2, 0, 20]),
            expect("w_json", [20, 20, 1, 0, 0, 0]),
            expect("w_noop", [20, 20, 0, 0, 0, 17]),
            expect("w_pair", [20, 20, 4, 0, 0, 16]),
            expect("w_rekey", [20, 20, 0, 1, 1, 0]),
            expect("w_update", [20, 20, 2, 0, 0, 18]),
            expect("w_vacuum_full", [20, 20, 1, 0, 0, 19]),
        ]
    );
    let (all, all_patch) = run(&["--downgrade-superuser"], "whole");
    assert!(
        all.tables.values().all(|c| c.unread == 0),
        "{:?}",
        counts(&all)
    );
    assert_eq!(
        counts(&all)
            .iter()
            .map(|(t, n)| (t, &n[..5]))
            .collect::<Vec<_>>(),
        counts(&doc)
            .iter()
            .map(|(t, n)| (t, &n[..5]))
            .collect::<Vec<_>>()
    );
    assert_eq!(patch, all_patch);
    assert!(
        patch.contains(r#""path":"/data/public.w_pair/[1, \"b\\\\1\"]/v""#),
        "{patch}"
    );
}

#[test]
pub(crate) fn only_a_table_the_downgrade_never_wrote_is_counted_instead_of_read() {
    // Every way of writing a table: an UPDATE (even one that changes nothing), DELETE,
    // INSERT, TRUNCATE, a rewrite (ALTER TYPE, VACUUM FULL, CLUSTER), columns added, dropped
    // or renamed, an enum value renamed, a key added. Each table is read; only t_untouched
    // is counted, not read.
    let ctx = Ctx::new();
    let result = ctx.path("result.json");
    let step = format!(
        "psql -X -q -v ON_ERROR_STOP=1 -f {}",
        s(&fixture("ok/untouched.down.sql"))
    );
    let dump = fixture("ok/untouched.sql");
    let base = [
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--downgrade-cmd",
        &step,
        "--allow-lost",
        "public.t_drop_column.gone",
        "--allow-lost",
        "public.t_rename_column.v",
        "--allow-lost",
        "public.t_truncate",
        "--result-out",
        s(&result),
    ];
    let untouched = |extra: &[&str]| -> Vec<String> {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let run = ctx.run(&args);
        assert!(run.code == 0 || run.code == 1, "{run:?}");
        let doc: ResultDoc =
            serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        assert_eq!(doc.tables.len(), 14, "{:?}", doc.tables.keys());
        doc.tables
            .iter()
            .filter(|(_, c)| c.untouched)
            .map(|(t, _)| t.clone())
            .collect()
    };
    assert_eq!(untouched(&[]), ["public.t_untouched"]);
    // As the superuser, the downgrade could reset the counters: every table is read.
    assert!(untouched(&["--downgrade-superuser"]).is_empty());
    // The enum rename wrote no row, yet every value reads differently: it is in the patch.
    let patch = ctx.path("p.json");
    let mut args = base.to_vec();
    args.extend_from_slice(&["-o", s(&patch)]);
    ctx.run(&args);
    let patch = std::fs::read_to_string(&patch).unwrap();
    assert!(
        patch.contains(r#"{"op":"replace","path":"/data/public.t_enum/1/m","value":"down"}"#),
        "{patch}"
    );
}
