//! The security model: hostile dumps never reach the host.

use super::*;

// ---------------------------------------------------------------- security model (issue 7)

/// Run `check` on a hostile dump and prove the host was not touched.
pub(crate) fn hostile(name: &str, downgrade: &str, needles: &[&str]) {
    let marker = std::path::PathBuf::from(format!("/tmp/pgsnapdiff-pwned-{name}"));
    let _ = std::fs::remove_file(&marker);
    let ctx = Ctx::new();
    let sql = ctx.path("down.sql");
    std::fs::write(&sql, downgrade).unwrap();
    let dump = fixture(&format!("hostile/{name}.sql"));
    let run = check_with(&ctx, s(&dump), s(&sql), &[]);
    run.assert_error(needles);
    assert!(
        !marker.exists(),
        "{name}: the dump ran a command on the host"
    );
}

#[test]
pub(crate) fn dump_cannot_escape_to_the_shell_through_psql() {
    hostile(
        "shell-escape",
        "SELECT 1;",
        &["restore failed", "psql meta-command", "does not run them"],
    );
    hostile(
        "unrestrict",
        "SELECT 1;",
        &["restore failed", "psql meta-command"],
    );
}

#[test]
pub(crate) fn dump_cannot_use_superuser_powers() {
    for name in [
        "copy-program",
        "language-c",
        "alter-system",
        "grant-predefined",
    ] {
        hostile(name, "SELECT 1;", &["restore failed"]);
    }
    hostile(
        "copy-program",
        "SELECT 1;",
        &["needs superuser power", "Security model"],
    );
}

#[test]
pub(crate) fn planted_trigger_does_not_run_with_superuser_rights_during_the_downgrade() {
    hostile(
        "trigger",
        "UPDATE onboarding_states SET current_step = 4;",
        &[
            "downgrade failed",
            "permission denied to COPY to or from an external program",
        ],
    );
}

#[test]
pub(crate) fn ordinary_dump_with_extensions_owners_and_grants_restores() {
    let ctx = Ctx::new();
    let out = ctx.path("snap.json");
    let run = ctx.run(&[
        "snapshot",
        "--dump",
        s(&fixture("ok/ownership.sql")),
        "-o",
        s(&out),
    ]);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let extensions = doc["schema"]["extensions"].as_object().unwrap();
    assert!(extensions.contains_key("pgcrypto") && extensions.contains_key("pg_trgm"));
    assert_eq!(doc["data"]["public.accounts"].as_object().unwrap().len(), 2);
    assert_eq!(doc["data"]["public.Audit Log"]["1"]["id"], 1);
}
