//! The same verdicts with the real Django from PyPI.

use super::*;

// ---------------------------------------------------------------- the same verdicts with Django

/// The Django test project migrated to head on `theirs`, with rows in every table, and dumped:
/// what a user of the shop site would feed pgsnapdiff. Migrated in a fixed order, so the last
/// migration applied is shop's 0003 (the data migration): shop to 0002 with rows, billing,
/// then shop 0003, which fills the customers' emails.
pub(crate) fn django_dump(theirs: &ScratchServer, ctx: &Ctx) -> std::path::PathBuf {
    theirs.query("postgres", "CREATE DATABASE shop");
    let migrate = |args: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", &django(&format!("migrate {args}"))])
            .env("DATABASE_URL", theirs.url("shop"))
            .output()
            .unwrap();
        assert!(out.status.success(), "migrate {args}: {out:?}");
    };
    migrate("shop 0002");
    theirs.query(
        "shop",
        "INSERT INTO shop_customer (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');
         INSERT INTO shop_order (id, customer_id, total) VALUES (1, 1, 10.50), (2, 1, 99.99), (3, 2, 1500.00), (4, 3, 0.10);
         INSERT INTO shop_note (order_id, body) VALUES (1, 'gift wrap'), (2, 'call first'), (2, 'fragile'), (3, 'refund asked'), (4, 'VIP');",
    );
    migrate("billing");
    theirs.query(
        "shop",
        "INSERT INTO billing_invoice (order_id, amount) VALUES (1, 10.50), (2, 99.99), (3, 1500.00);",
    );
    migrate("shop");
    let dump = ctx.path("shop.dump");
    theirs.dump("shop", &dump);
    dump
}

#[test]
pub(crate) fn django_rollback_that_drops_a_table_with_rows_is_not_proven() {
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
    // `migrate shop 0001` unapplies billing too (it depends on shop 0002): Django's cascade.
    assert_eq!(
        lost,
        [
            ("public.billing_invoice", 3, false),
            ("public.shop_customer.email", 3, false),
            ("public.shop_note", 5, false)
        ]
    );
    // Django's bookkeeping is detected and kept out of the data: no row of django_migrations
    // is "lost"; the revision says what moved.
    assert!(findings_of(&doc, "rows-preserved").is_empty());
    assert!(!doc.tables.contains_key("public.django_migrations"));
    assert_eq!(doc.revision.tool.as_deref(), Some("django"));
    assert_eq!(
        doc.revision.after,
        Some(vec!["shop.0001_initial".to_string()])
    );
    run.assert_stdout(
        "revision  billing.0001_initial+shop.0003_email → shop.0001_initial (django)\n",
    );
    assert!(
        run.stderr
            .contains("migration tool: django (detected by its django_migrations table")
    );
}

#[test]
pub(crate) fn django_settings_with_their_own_database_are_an_error_not_a_proof() {
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
    let run = ctx.finish(
        ctx.command(&[
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
        .env("DJANGO_SETTINGS_MODULE", "shopsite.settings_prod"),
    );
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

#[test]
pub(crate) fn django_preset_steps_back_exactly_the_last_migration_and_reads_its_revision() {
    let theirs = ScratchServer::start();
    let ctx = Ctx::new();
    let dump = django_dump(&theirs, &ctx);
    let result = ctx.path("result.json");
    let report = ctx.path("audit.md");
    // The README's recipe: no step command of the user's own.
    let run = ctx.finish(activated(&mut ctx.command(&[
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--tool",
        "django",
        "--downgrade-cwd",
        s(&django_dir()),
        "--expect-revision",
        "shop.0002_note",
        "--allow-lost",
        "public.shop_customer.email",
        "--result-out",
        s(&result),
        "--report",
        s(&report),
    ])));
    run.assert_code(0);
    // The last migration applied was shop 0003: only it is unapplied, billing stays.
    run.assert_stdout("revision  shop.0003_email → shop.0002_note (django), 1 unchanged\n");
    run.assert_stdout("PASS  revision: django_migrations is shop.0002_note after the downgrade\n");
    let doc: ResultDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(
        (doc.revision.before.clone(), doc.revision.after.clone()),
        (
            Some(vec![
                "billing.0001_initial".into(),
                "shop.0003_email".into()
            ]),
            Some(vec!["billing.0001_initial".into(), "shop.0002_note".into()])
        )
    );
    // The plan is printed before Django runs, and Django's own output is kept.
    let output = doc.downgrade_output.join("\n");
    assert!(
        output.contains(
            "pgsnapdiff: migrate shop 0002_note unapplies 1 migration(s) in shop: shop.0003_email"
        ),
        "{output}"
    );
    assert!(
        output.contains("Unapplying shop.0003_email... OK"),
        "{output}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("    Unapplying shop.0003_email... OK"), "{md}");
    // Django's bookkeeping is never data, never data loss; the emails are the one loss.
    assert!(!doc.tables.contains_key("public.django_migrations"));
    let lost: Vec<(&str, u64, bool)> = doc
        .data_lost
        .iter()
        .map(|l| (l.name.as_str(), l.count, l.acknowledged))
        .collect();
    assert_eq!(lost, [("public.shop_customer.email", 3, true)]);
}

#[test]
pub(crate) fn django_preset_walks_one_app_down_and_names_the_cascade() {
    let theirs = ScratchServer::start();
    let ctx = Ctx::new();
    let dump = django_dump(&theirs, &ctx);
    let result = ctx.path("walk.json");
    let run = ctx.finish(activated(&mut ctx.command(&[
        "walk",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--app",
        "shop",
        "--to",
        "shop.0001_initial",
        "--downgrade-cwd",
        s(&django_dir()),
        "--table",
        "public.shop_note",
        "--table",
        "public.shop_order",
        "--result-out",
        s(&result),
        "-v",
    ])));
    // Detected, not said: the note names it.
    assert!(
        run.stderr
            .contains("migration tool: django (detected by its django_migrations table"),
        "{}",
        run.stderr
    );
    // Step 2 drops shop_note, a chosen table: the walk reports it dropped, never errors.
    run.assert_code(1);
    let doc: WalkDoc = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let revisions: Vec<(Vec<String>, Vec<String>)> = doc
        .steps
        .iter()
        .map(|s| (s.from.clone(), s.to.clone()))
        .collect();
    assert_eq!(
        revisions,
        [
            (
                vec!["shop.0003_email".into()],
                vec!["shop.0002_note".into()]
            ),
            (
                vec!["shop.0002_note".into()],
                vec!["shop.0001_initial".into()]
            ),
        ]
    );
    // Unapplying shop 0002 takes billing with it: the plan names both apps first.
    let second = doc.steps[1].output.join("\n");
    assert!(
        second.contains("pgsnapdiff: migrate shop 0001_initial unapplies 2 migration(s) in billing, shop: billing.0001_initial, shop.0002_note"),
        "{second}"
    );
    assert_eq!(
        doc.steps[1].dropped_tables,
        [("public.shop_note".to_string(), 5)].into()
    );
    let lost: Vec<&str> = doc.steps[1]
        .data_lost
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(lost, ["public.billing_invoice", "public.shop_note"]);
    // -v shows Django's own lines as they come, marked as the command's.
    assert!(
        run.stderr
            .contains("  |   Unapplying billing.0001_initial... OK"),
        "{}",
        run.stderr
    );
}

#[test]
pub(crate) fn django_data_migration_reversed_on_some_rows_reads_only_those() {
    // A data-only migration of the user's kind (RunPython both ways): large totals are kept
    // in cents; its reverse turns them back. The reverse writes one order of four, so only
    // that row is read (narrowing forced on from 0 rows), and the patch is the one of
    // reading everything (as the superuser nothing is narrowed).
    let theirs = ScratchServer::start();
    let ctx = Ctx::new();
    let project = ctx.path("django");
    copy_dir(&django_dir(), &project);
    std::fs::write(
        project.join("shop/migrations/0004_cents.py"),
        r#"from django.db import migrations
from django.db.models import F


def to_cents(apps, schema_editor):
    apps.get_model("shop", "Order").objects.filter(total__gte=1000).update(total=F("total") * 100)


def from_cents(apps, schema_editor):
    apps.get_model("shop", "Order").objects.filter(total__gte=100000).update(total=F("total") / 100)


class Migration(migrations.Migration):
    dependencies = [("shop", "0003_email")]
    operations = [migrations.RunPython(to_cents, from_cents)]
"#,
    )
    .unwrap();
    let dump = django_dump(&theirs, &ctx);
    // The dump is at shop 0003: apply 0004 from the copy, then dump again.
    let python = venv().join("bin/python");
    let migrate = std::process::Command::new(&python)
        .args([s(&project.join("manage.py")), "migrate", "shop"])
        .env("DATABASE_URL", theirs.url("shop"))
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    theirs.dump("shop", &dump);
    let base = [
        "check",
        "-c",
        "/dev/null",
        "--dump",
        s(&dump),
        "--tool",
        "django",
        "--downgrade-cwd",
        s(&project),
        "--expect-revision",
        "shop.0003_email",
    ];
    let run = |extra: &[&str], name: &str| {
        super::tools::narrowing_run(&ctx, &[&base[..], extra].concat(), name, 0, activated)
    };
    let (doc, patch) = run(&[], "narrowed");
    let orders = &doc.tables["public.shop_order"];
    assert_eq!(
        (
            orders.rows_before,
            orders.rows_after,
            orders.changed,
            orders.unread
        ),
        (4, 4, 1, 3)
    );
    assert_eq!(
        patch
            .matches(r#""path":"/data/public.shop_order/3/total","value":1500.00}"#)
            .count(),
        1,
        "{patch}"
    );
    let (all, all_patch) = run(&["--downgrade-superuser"], "whole");
    assert_eq!(all.tables["public.shop_order"].unread, 0);
    assert_eq!(patch, all_patch);
}
