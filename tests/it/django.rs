//! The same verdicts with the real Django from PyPI.

use super::*;

// ---------------------------------------------------------------- the same verdicts with Django

/// The Django test project migrated to head (0002) on `theirs`, with rows in every table, and
/// dumped: what a user of the shop site would feed pgsnapdiff.
pub(crate) fn django_dump(theirs: &ScratchServer, ctx: &Ctx) -> std::path::PathBuf {
    theirs.query("postgres", "CREATE DATABASE shop");
    let out = std::process::Command::new("sh")
        .args(["-c", &django("migrate")])
        .env("DATABASE_URL", theirs.url("shop"))
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate: {out:?}");
    theirs.query(
        "shop",
        "INSERT INTO shop_customer (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');
         INSERT INTO shop_order (id, customer_id, total) VALUES (1, 1, 10.50), (2, 1, 99.99), (3, 2, 1500.00), (4, 3, 0.10);
         INSERT INTO shop_note (order_id, body) VALUES (1, 'gift wrap'), (2, 'call first'), (2, 'fragile'), (3, 'refund asked'), (4, 'VIP');",
    );
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
    assert_eq!(lost, [("public.shop_note", 5, false)]);
    // Django's own bookkeeping row for 0002 goes too: rows-preserved says so.
    let gone: Vec<&str> = findings_of(&doc, "rows-preserved")
        .iter()
        .map(|f| f.table.as_deref().unwrap())
        .collect();
    assert_eq!(gone, ["public.django_migrations"]);
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
