//! The rules, one by one, on in-memory snapshots (`diff::testing`).

use jsonptr::PointerBuf;
use serde_json::{Value, json};

use super::*;
use crate::diff::testing::{doc, run};
use crate::expect::CheckResult;
use crate::volatile::Volatile;

/// The findings of a result as (path, message).
fn found(mut result: CheckResult) -> Vec<(String, String)> {
    let mut out = Vec::new();
    result
        .findings
        .for_each(|f| {
            out.push((f.path.clone(), f.message.clone()));
            Ok(())
        })
        .unwrap();
    out
}

fn data(d: Value) -> Value {
    doc(json!(["1"]), json!({}), d)
}

#[test]
fn rows_preserved_reports_vanished_rows_but_not_a_dropped_table() {
    let before = data(json!({"public.t": {"1": {"a": 1}, "2": {"a": 2}}, "public.u": {"9": {}}}));
    let after = data(json!({"public.t": {"1": {"a": 5}}}));
    let mut rule = RowsPreserved::default();
    run(&before, &after, &mut rule);
    assert_eq!(
        found(rule.finish()),
        [(
            "/data/public.t/2".to_string(),
            "row disappeared".to_string()
        )]
    );
}

fn metadata_spec() -> MetadataSpec {
    MetadataSpec {
        id: "metadata-restored".into(),
        table: "public.o".into(),
        metadata: PointerBuf::parse("/d/_m").unwrap(),
        fields: vec![(
            PointerBuf::parse("/step").unwrap(),
            PointerBuf::parse("/step").unwrap(),
        )],
        without_metadata: WithoutMetadata::Unchanged,
        ignore_columns: Vec::new(),
        allow_added_rows: false,
        allow_removed_rows: false,
    }
}

#[test]
fn metadata_restored_holds_each_row_to_its_own_metadata() {
    let before = data(json!({"public.o": {
        "1": {"step": 1, "d": {"_m": {"step": 0}}},
        "2": {"step": 4, "d": {"_m": {"step": 7}}},
        "3": {"step": 2, "d": {}},
    }}));
    // Row 1 (step 0) skipped, the truthiness bug; row 2 restored; row 3 left alone.
    let after = data(json!({"public.o": {
        "1": {"step": 1, "d": {"_m": {"step": 0}}},
        "2": {"step": 7, "d": {}},
        "3": {"step": 2, "d": {}},
    }}));
    let mut rule = MetadataRestored::new(metadata_spec());
    run(&before, &after, &mut rule);
    assert_eq!(
        found(rule.finish().unwrap()),
        [
            (
                "/data/public.o/1/step".to_string(),
                "not restored from metadata".to_string()
            ),
            (
                "/data/public.o/1/d/_m".to_string(),
                "metadata left in place".to_string()
            ),
        ]
    );
    // A pointer that matches nothing is a finding, not a pass.
    let mut spec = metadata_spec();
    spec.metadata = PointerBuf::parse("/d/_meta").unwrap();
    let mut rule = MetadataRestored::new(spec);
    run(&before, &after, &mut rule);
    let findings = found(rule.finish().unwrap());
    assert!(
        findings[0].1.starts_with("rule matched no rows"),
        "{findings:?}"
    );
}

#[test]
fn after_state_tests_absences_and_the_revision() {
    let before = doc(
        json!(["2"]),
        json!({"tables": {"public.o": {"c": 1}}}),
        json!({}),
    );
    let after = doc(
        json!(["2"]),
        json!({"tables": {"public.o": {"c": 2}}}),
        json!({"public.o": {"1": {"x": true}}}),
    );
    let spec = AfterSpec {
        tests: vec![
            (
                PointerBuf::parse("/schema/tables/public.o/c").unwrap(),
                json!(2),
            ),
            (
                PointerBuf::parse("/data/public.o/1/x").unwrap(),
                json!(false),
            ),
        ],
        absent: vec![PointerBuf::parse("/schema/tables/public.o/c").unwrap()],
        revision: Some("1".into()),
    };
    let mut rule = AfterState::new(&spec);
    run(&before, &after, &mut rule);
    rule.judge_revision(
        &json!(["2"]),
        Some(crate::tool::Tool::Alembic),
        ("/alembic_version", "alembic_version"),
    )
    .unwrap();
    let results = rule.finish().unwrap();
    let all: Vec<Vec<(String, String)>> = results.into_iter().map(found).collect();
    assert_eq!(
        all,
        [
            vec![
                (
                    "/schema/tables/public.o/c".to_string(),
                    "should be absent".to_string()
                ),
                (
                    "/data/public.o/1/x".to_string(),
                    "test failed: value differs".to_string()
                ),
            ],
            vec![(
                "/alembic_version".to_string(),
                "alembic is not at the expected revision".to_string()
            )],
        ]
    );
}

#[test]
fn round_trip_reports_every_operation_but_ignored_columns_and_volatile_paths() {
    let before = data(json!({"public.t": {"1": {"a": 1, "at": "x", "n": 1}}}));
    let after = data(json!({"public.t": {"1": {"a": 2, "at": "y", "n": 2}}}));
    let volatile = Volatile::parse(&["/data/public.t/*/at".to_string()]).unwrap();
    let ignore = [("public.t".to_string(), "n".to_string())];
    let mut rule = RoundTrip::new("round trip", &ignore, &volatile);
    run(&before, &after, &mut rule);
    let result = rule.finish();
    assert!(
        result
            .name
            .ends_with(", 2 operations in ignored columns or volatile paths")
    );
    assert_eq!(
        found(result),
        [(
            "/data/public.t/1/a".to_string(),
            "differs from the original".to_string()
        )]
    );
}

#[test]
fn schema_loss_finds_dropped_tables_dropped_and_narrowed_columns() {
    let col = |t: &str| json!({"type": t});
    let before = doc(
        Value::Null,
        json!({"tables": {
            "public.gone": {"columns": {"a": col("integer")}},
            "public.t": {"columns": {"kept": col("integer"), "dropped": col("text"),
                "narrowed": col("bigint"), "widened": col("integer")}},
        }}),
        json!({}),
    );
    let after = doc(
        Value::Null,
        json!({"tables": {
            "public.t": {"columns": {"kept": col("integer"), "narrowed": col("integer"),
                "widened": col("bigint")}},
        }}),
        json!({}),
    );
    let mut sink = SchemaLoss::default();
    run(&before, &after, &mut sink);
    let got: Vec<(String, LossKind)> = sink
        .candidates
        .into_iter()
        .map(|l| (l.name, l.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("public.gone".to_string(), LossKind::Table),
            ("public.t.dropped".to_string(), LossKind::Column),
            (
                "public.t.narrowed".to_string(),
                LossKind::Narrowed {
                    from: "bigint".into(),
                    to: "integer".into()
                }
            ),
        ]
    );
}

fn loss(name: &str, kind: LossKind, count: u64) -> Loss {
    let (table, column) = match kind {
        LossKind::Table => (name.to_string(), None),
        _ => {
            let (t, c) = name.rsplit_once('.').unwrap();
            (t.to_string(), Some(c.to_string()))
        }
    };
    Loss {
        name: name.into(),
        table,
        column,
        kind,
        count,
        acknowledged: false,
    }
}

#[test]
fn data_lost_is_one_finding_per_loss_with_data_unless_acknowledged() {
    let mut losses = vec![
        loss("public.users", LossKind::Table, 342),
        loss("public.empty", LossKind::Table, 0),
        loss("public.t.c", LossKind::Column, 12),
        loss(
            "public.t.n",
            LossKind::Narrowed {
                from: "bigint".into(),
                to: "integer".into(),
            },
            3,
        ),
    ];
    let allow = vec!["public.t.c".to_string(), "public.gone".to_string()];
    let mut result = data_lost(&mut losses, &allow, true).unwrap();
    assert!(!result.passed);
    let mut found = Vec::new();
    result
        .findings
        .for_each(|f| {
            found.push((f.path.clone(), f.message.clone()));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        found,
        [
            (
                "/schema/tables/public.users".to_string(),
                "table dropped with 342 rows".to_string()
            ),
            (
                "/schema/tables/public.t/columns/n".to_string(),
                "column type narrowed from bigint to integer, with 3 non-NULL values".to_string()
            ),
        ]
    );
    assert_eq!(
        result.notes,
        [
            "acknowledged (allow_lost): public.t.c: column dropped with 12 non-NULL values",
            "allow_lost names public.gone, which lost nothing in this run",
        ]
    );
    assert!(losses[2].acknowledged && !losses[0].acknowledged);
    // Nothing lost, nothing allowed: a pass with nothing to say.
    let result = data_lost(&mut [], &[], true).unwrap();
    assert!(result.passed && result.notes.is_empty());
}

#[test]
fn no_op_fails_only_when_nothing_changed_and_it_is_not_allowed() {
    assert!(no_op(1, false).unwrap().is_none());
    assert!(!no_op(0, false).unwrap().unwrap().passed);
    let allowed = no_op(0, true).unwrap().unwrap();
    assert!(allowed.passed && allowed.notes.len() == 1);
}

#[test]
fn widening_is_known_and_everything_else_narrows() {
    for (from, to) in [
        ("smallint", "integer"),
        ("integer", "bigint"),
        ("integer", "numeric"),
        ("real", "double precision"),
        ("character varying(50)", "character varying(255)"),
        ("character varying(50)", "text"),
        ("text", "character varying"),
        ("numeric(10,2)", "numeric(12,2)"),
        ("numeric(10,2)", "numeric"),
        ("jsonb", "json"),
    ] {
        assert!(widens(from, to), "{from} -> {to}");
    }
    for (from, to) in [
        ("bigint", "integer"),
        ("character varying(255)", "character varying(50)"),
        ("text", "character varying(20)"),
        ("numeric(12,2)", "numeric(10,2)"),
        ("numeric(10,2)", "numeric(10,1)"),
        ("numeric", "numeric(10,2)"),
        ("json", "jsonb"),
        ("timestamp with time zone", "date"),
        ("text", "integer"),
        ("character(3)", "text"),
        ("double precision", "real"),
    ] {
        assert!(!widens(from, to), "{from} -> {to}");
    }
}
