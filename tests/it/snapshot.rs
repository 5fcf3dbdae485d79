//! Snapshots and `pgsnapdiff diff`: type mapping, row keys, the patch contract.

use super::*;

// ---------------------------------------------------------------- snapshot and diff

#[test]
pub(crate) fn snapshot_maps_types_losslessly_and_keys_rows_as_documented() {
    let ctx = Ctx::new();
    let a = ctx.path("a.json");
    let b = ctx.path("b.json");
    let dump = fixture("ok/types.sql");
    let run = ctx.run(&["snapshot", "--dump", s(&dump), "-o", s(&a)]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("public.events has no primary key"),
        "{}",
        run.stderr
    );
    ctx.run(&["snapshot", "--dump", s(&dump), "-o", s(&b)])
        .assert_code(0);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b).unwrap(),
        "snapshots must be deterministic"
    );

    // Exact numeric text survives (no float rounding), as does jsonb's 1.10.
    assert!(text.contains(r#""exact":0.33333333333333333333"#), "{text}");
    assert!(text.contains(r#""n":1.10"#), "{text}");
    assert!(text.contains(r#""big":9223372036854775807"#), "{text}");

    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["format"], "pgsnapdiff-snapshot/1");
    assert_eq!(doc["alembic_version"], Value::Null);
    let samples = &doc["data"]["public.samples"];
    assert_eq!(samples["a/b~c"]["raw"], "\\xdeadbeef");
    assert_eq!(samples["a/b~c"]["ratio"], "NaN");
    assert_eq!(samples["a/b~c"]["tags"], serde_json::json!(["x", "y z"]));
    assert_eq!(samples["a/b~c"]["seen"], "2026-01-02T03:04:05.678+00:00");
    assert_eq!(samples["inf"]["exact"], "Infinity");
    assert_eq!(samples["nan"]["ratio"], "-Infinity");
    // Composite keys are JSON arrays as text, in byte order.
    let pairs: Vec<&String> = doc["data"]["public.pairs"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(pairs, [r#"[1, "x"]"#, r#"[1, "y"]"#, r#"[10, "x"]"#]);
    // A NOT NULL unique column keys the row when there is no primary key.
    assert!(doc["data"]["public.by_email"]["a@example.com"].is_object());
    // No key at all: content hash plus occurrence number; duplicates stay distinct.
    let events: Vec<&String> = doc["data"]["public.events"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().any(|k| k.ends_with("-2")), "{events:?}");
    // Tables and columns named like the query's aliases are read like any other.
    assert_eq!(
        doc["data"]["public.s"],
        serde_json::json!({
            "10": {"c": "c10", "k": "k10", "r": "r10", "t": 10},
            "2": {"c": "c2", "k": "k2", "r": "r2", "t": 2}
        })
    );
    let t: Vec<&Value> = doc["data"]["public.t"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    assert_eq!(t, [&serde_json::json!({"r": "y", "t": "x"}); 2]);
    let cols = &doc["schema"]["tables"]["public.samples"]["columns"];
    assert_eq!(cols["exact"]["type"], "numeric");
    assert_eq!(cols["id"]["nullable"], false);
    let schema = &doc["schema"];
    assert_eq!(
        schema["enums"]["public.mood"],
        serde_json::json!(["low", "ok", "high"])
    );
    assert_eq!(schema["sequences"]["public.ticket_seq"]["start"], 100);
    assert_eq!(schema["sequences"]["public.ticket_seq"]["increment"], 5);
    assert!(
        schema["views"]["public.sample_ids"]["definition"]
            .as_str()
            .unwrap()
            .contains("samples")
    );
    assert!(
        schema["functions"]["public.touch()"]
            .as_str()
            .unwrap()
            .contains("RETURN NEW")
    );
    assert!(
        schema["tables"]["public.samples"]["triggers"]["samples_touch"]
            .as_str()
            .unwrap()
            .contains("BEFORE UPDATE")
    );
    assert_eq!(
        schema["tables"]["public.pairs"]["constraints"]["pairs_pkey"]["definition"],
        "PRIMARY KEY (left_id, right_id)"
    );
}

#[test]
pub(crate) fn diff_of_snapshot_files_is_a_patch_that_turns_before_into_after() {
    let ctx = Ctx::new();
    let before = ctx.path("before.json");
    ctx.run(&[
        "snapshot",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "-o",
        s(&before),
    ])
    .assert_code(0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&before).unwrap()).unwrap();

    // After: a row gone, a nested value changed, a row added, a table dropped, a table added.
    let mut after = doc.clone();
    let states = after["data"]["public.onboarding_states"]
        .as_object_mut()
        .unwrap();
    states.remove("7");
    states.get_mut("4").unwrap()["step_data"]["step_1"]["goal"] = "strength".into();
    states.insert(
        "99".into(),
        serde_json::json!({"id": 99, "current_step": 1}),
    );
    let data = after["data"].as_object_mut().unwrap();
    data.remove("public.users");
    data.insert("public.zz/new~".into(), serde_json::json!({"1": {"id": 1}}));
    after["alembic_version"] = serde_json::json!(["a1b2c3d4e5f6"]);
    let after_path = ctx.path("after.json");
    write_snapshot(&after, &after_path);

    let patch_path = ctx.path("patch.json");
    let run = ctx.run(&["diff", s(&before), s(&after_path), "-o", s(&patch_path)]);
    run.assert_code(1);
    let patch: json_patch::Patch =
        serde_json::from_str(&std::fs::read_to_string(&patch_path).unwrap()).unwrap();
    let mut applied = doc.clone();
    json_patch::patch(&mut applied, &patch).unwrap();
    assert_eq!(applied, after);
    let paths: Vec<String> = patch.iter().map(|op| op.path().to_string()).collect();
    assert!(
        paths.contains(&"/data/public.onboarding_states/7".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/data/public.zz~1new~0".to_string()),
        "{paths:?}"
    );

    // Other layouts of the same JSON give the same patch: all on one line, and a row broken
    // over two lines halfway through a table (the line reader hands over to the general
    // parser there, which skips what was already read).
    let canonical = std::fs::read_to_string(&after_path).unwrap();
    let one_line = ctx.path("one-line.json");
    std::fs::write(&one_line, canonical.replace('\n', " ")).unwrap();
    let broken_row = ctx.path("broken-row.json");
    assert!(canonical.contains("\"5\": {"));
    std::fs::write(
        &broken_row,
        canonical.replacen("\"5\": {", "\"5\":\n   {", 1),
    )
    .unwrap();
    for other in [&one_line, &broken_row] {
        let out = ctx.path("other-patch.json");
        ctx.run(&["diff", s(&before), s(other), "-o", s(&out)])
            .assert_code(1);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&patch_path).unwrap(),
            "{}",
            other.display()
        );
    }

    // Identical files: exit 0 and an empty patch.
    let run = ctx.run(&["diff", s(&before), s(&before)]);
    run.assert_code(0);
    assert_eq!(run.stdout, "[]\n");
}

#[test]
pub(crate) fn diff_rejects_files_that_are_not_snapshots() {
    let ctx = Ctx::new();
    let bad = ctx.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"format": "pgsnapdiff-snapshot/1", "schema": {}, "data": {"t": {"2": {}, "1": {}}}}"#,
    )
    .unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&["bad.json: not a valid pgsnapdiff snapshot", "out of order"]);
    // The same in the layout pgsnapdiff writes (the line reader's path).
    let header = pgsnapdiff::snapshot::Header {
        alembic_version: Value::Null,
        schema: serde_json::json!({}),
    };
    let mut w = pgsnapdiff::snapshot::file::Writer::begin(Vec::new(), &header).unwrap();
    w.table("t").unwrap();
    w.row("2", &serde_json::json!({})).unwrap();
    w.row("1", &serde_json::json!({})).unwrap();
    std::fs::write(&bad, w.finish().unwrap()).unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&[
        "bad.json: not a valid pgsnapdiff snapshot",
        "row \"1\" of \"t\" is out of order",
    ]);
    std::fs::write(
        &bad,
        "{\"format\": \"pgsnapdiff-snapshot/1\", \"schema\": {",
    )
    .unwrap();
    let run = ctx.run(&["diff", s(&bad), s(&bad)]);
    run.assert_error(&["bad.json: not a valid pgsnapdiff snapshot"]);
    let run = ctx.run(&["diff", "missing.json", s(&bad)]);
    run.assert_error(&["missing.json: no such snapshot file"]);
}

/// Write a snapshot document the way pgsnapdiff does (data last, sorted keys).
pub(crate) fn write_snapshot(doc: &Value, path: &std::path::Path) {
    let header = pgsnapdiff::snapshot::Header {
        alembic_version: doc["alembic_version"].clone(),
        schema: doc["schema"].clone(),
    };
    let file = std::fs::File::create(path).unwrap();
    let mut w = pgsnapdiff::snapshot::file::Writer::begin(file, &header).unwrap();
    for (table, rows) in doc["data"].as_object().unwrap() {
        w.table(table).unwrap();
        for (key, row) in rows.as_object().unwrap() {
            w.row(key, row).unwrap();
        }
    }
    w.finish().unwrap();
}
