//! --redact: no original value in any output.

use super::*;

// ---------------------------------------------------------------- --redact

/// Every string leaf (4+ characters) and number leaf (3+ characters) of a snapshot's data.
pub(crate) fn data_values(snapshot: &Value, out: &mut std::collections::BTreeSet<String>) {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::String(s) if s.chars().count() >= 4 => {
                out.insert(s.clone());
            }
            Value::Number(n) if n.to_string().len() >= 3 => {
                out.insert(n.to_string());
            }
            Value::Object(m) => m.values().for_each(|c| walk(c, out)),
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    for rows in snapshot["data"].as_object().unwrap().values() {
        for row in rows.as_object().unwrap().values() {
            walk(row, out);
        }
    }
}

/// Whether `text` carries `original`. A number counts only as a whole token: "158" inside
/// a run time ("2.158"), a temp dir name or a digest is not a leaked height.
pub(crate) fn holds(text: &str, original: &str) -> bool {
    if original.parse::<f64>().is_err() {
        return text.contains(original);
    }
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
    text.match_indices(original).any(|(at, _)| {
        !glued(text[..at].chars().next_back()) && !glued(text[at + original.len()..].chars().next())
    })
}

#[test]
pub(crate) fn redact_leaves_no_original_value_in_any_output() {
    let ctx = Ctx::new();
    // The originals: both sides of the sample's downgrade, unredacted.
    let mut originals = std::collections::BTreeSet::new();
    for dump in ["onboarding.dump", "onboarding-a1b2c3d4e5f6.dump"] {
        let snap = ctx.path("plain.json");
        ctx.run(&[
            "snapshot",
            "-c",
            "/dev/null",
            "--dump",
            s(&sample_dump(dump)),
            "-o",
            s(&snap),
        ])
        .assert_code(0);
        data_values(
            &serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap(),
            &mut originals,
        );
    }
    assert!(
        originals.contains("chloe@example.com") && originals.contains("0.1000"),
        "{originals:?}"
    );
    assert!(
        holds("{\"height_cm\":158}", "158") && holds("<td>chloe@example.com", "chloe@example.com")
    );
    assert!(!holds("time=\"2.158\" /tmp/.tmpx158 1580", "158"));

    let config = rules_config(&ctx);
    let outputs = [
        "patch.json",
        "result.json",
        "report.html",
        "report.md",
        "snap.json",
        "walk.json",
    ];
    let p = |name: &str| ctx.path(name);
    let (truthiness, patch) = (broken("truthiness"), expected_patch());
    let mut texts = Vec::new();
    for format in ["human", "junit", "github", "json"] {
        let run = ctx.run(&[
            "check",
            "--redact",
            "-c",
            s(&config),
            "--downgrade-sql",
            s(&truthiness),
            "--expect-patch",
            s(&patch),
            "--check",
            "--format",
            format,
            "-o",
            s(&p("patch.json")),
            "--result-out",
            s(&p("result.json")),
            "--report",
            s(&p(if format == "json" {
                "report.md"
            } else {
                "report.html"
            })),
        ]);
        run.assert_code(1);
        texts.push(run.stdout + &run.stderr);
    }
    let run = ctx.run(&[
        "snapshot",
        "--redact",
        "-c",
        "/dev/null",
        "--dump",
        s(&sample_dump("onboarding.dump")),
        "-o",
        s(&p("snap.json")),
    ]);
    run.assert_code(0);
    let (run, _) = walk(
        &ctx,
        &sample_dump("onboarding.dump"),
        "onboarding/alembic",
        &[
            "--redact",
            "--to",
            "a1b2c3d4e5f6",
            "--url-scheme",
            "postgresql+asyncpg",
            "--report",
            s(&p("walk.html")),
        ],
    );
    run.assert_code(0);
    texts.push(run.stdout + &run.stderr);
    for name in outputs.iter().chain(&["walk.html"]) {
        texts.push(std::fs::read_to_string(p(name)).unwrap());
    }
    for (i, text) in texts.iter().enumerate() {
        // Hashes are hex: a digit run inside one is not a leaked number.
        let text: String = text
            .split("redacted:")
            .enumerate()
            .map(|(j, part)| {
                if j == 0 {
                    part
                } else {
                    part.get(16..).unwrap_or("")
                }
            })
            .collect();
        for original in &originals {
            assert!(
                !holds(&text, original),
                "output {i} holds {original:?}:\n{text}"
            );
        }
    }
    // Equal values hash equal, and the findings still name what is wrong.
    let result: ResultDoc =
        serde_json::from_str(&std::fs::read_to_string(p("result.json")).unwrap()).unwrap();
    let meta = findings_of(&result, "metadata-restored");
    assert_eq!(
        meta[0].path,
        "/data/public.onboarding_states/1/step_data/_migration_metadata"
    );
    let actual = meta[0].actual.as_ref().unwrap();
    assert!(
        actual["original_current_step"]
            .as_str()
            .unwrap()
            .starts_with("redacted:")
    );
    assert_eq!(actual["original_step_data"], serde_json::json!({}));
    let snap: Value =
        serde_json::from_str(&std::fs::read_to_string(p("snap.json")).unwrap()).unwrap();
    let rows = &snap["data"]["public.onboarding_states"];
    assert_eq!(rows["2"]["is_complete"], rows["3"]["is_complete"]);
    assert_ne!(rows["2"]["user_id"], rows["3"]["user_id"]);
}
