//! Fuzz the readers of untrusted files: snapshot files, patch files, config files.
//!
//!   cargo run --release --example fuzz -- [SECONDS]     (scripts/fuzz; not part of CI)
//!
//! Seeds are the sample's own files; each round mutates one (byte flips, inserts, deletions,
//! truncation, duplicated ranges, JSON/TOML tokens) and feeds it to a reader. Errors are
//! expected; a panic anywhere (including the snapshot parser's thread) saves the input to
//! target/fuzz-crashes/ and fails the run.

use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgsnapdiff::snapshot::Source;
use pgsnapdiff::snapshot::file::{FileSource, Writer};
use rand::Rng;
use rand::seq::IndexedRandom;

static PANICKED: AtomicBool = AtomicBool::new(false);

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "\\u0000",
    "\\ud800",
    "1e999999",
    "-0",
    "null",
    "true",
    "\"data\"",
    "\"schema\"",
    "\"format\"",
    "\"pgsnapdiff-snapshot/1\"",
    "\n",
    "=",
    "[[",
    "]]",
    "\"op\"",
    "\"path\"",
    "~1",
    "~",
    "/",
    "\u{feff}",
    "\u{10ffff}",
];

fn seed_snapshot() -> Vec<u8> {
    let header = pgsnapdiff::snapshot::Header {
        alembic_version: serde_json::json!(["a1b2c3d4e5f6"]),
        schema: serde_json::json!({"tables": {"public.t": {"columns": {"id": {"type": "integer"}}}}}),
    };
    let mut w = Writer::begin(Vec::new(), &header).unwrap();
    w.table("public.t").unwrap();
    for (k, v) in [
        ("1", serde_json::json!({"id": 1, "doc": {"a": [1, 2.50]}})),
        ("2", serde_json::json!({"id": 2})),
    ] {
        w.row(k, &v).unwrap();
    }
    w.table("public.u~/x").unwrap();
    w.row("[1, \"a\"]", &serde_json::json!({"n": null}))
        .unwrap();
    w.finish().unwrap()
}

fn mutate(rng: &mut impl Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let len = data.len().max(1);
        let at = rng.random_range(0..len);
        match rng.random_range(0..6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => data.insert(at.min(data.len()), rng.random()),
            2 if !data.is_empty() => {
                let end = (at + rng.random_range(1..16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => data.truncate(at),
            4 => {
                let token = TOKENS.choose(rng).unwrap().as_bytes();
                let at = at.min(data.len());
                data.splice(at..at, token.iter().copied());
            }
            _ if data.len() > 2 => {
                let start = rng.random_range(0..data.len() - 1);
                let end = (start + rng.random_range(1..64)).min(data.len());
                let chunk = data[start..end].to_vec();
                let at = rng.random_range(0..data.len());
                data.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    data
}

fn read_snapshot(runtime: &tokio::runtime::Runtime, path: &std::path::Path) {
    runtime.block_on(async {
        let Ok(mut source) = FileSource::open(path) else {
            return;
        };
        if source.header().await.is_err() {
            return;
        }
        while let Ok(Some(_)) = source.next_table().await {
            while let Ok(Some(_)) = source.next_row().await {}
        }
    });
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds: [(&str, Vec<u8>); 3] = [
        ("snapshot", seed_snapshot()),
        (
            "patch",
            std::fs::read(repo.join("snapshots/onboarding.patch.json")).unwrap(),
        ),
        (
            "config",
            std::fs::read(repo.join("pgsnapdiff.toml")).unwrap(),
        ),
    ];
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    let crashes = repo.join("target/fuzz-crashes");
    let mut rng = rand::rng();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut counts = [0u64; 3];
    while Instant::now() < deadline {
        let which = rng.random_range(0..seeds.len());
        let (name, seed) = &seeds[which];
        let data = mutate(&mut rng, seed);
        std::fs::write(&input, &data).unwrap();
        let result = panic::catch_unwind(|| match *name {
            "snapshot" => read_snapshot(&runtime, &input),
            "patch" => {
                let _ = pgsnapdiff::expect::patch::read_patch(&input);
            }
            _ => {
                let _ = pgsnapdiff::cli::config_text_is_valid(&String::from_utf8_lossy(&data));
            }
        });
        counts[which] += 1;
        if result.is_err() || PANICKED.load(Ordering::SeqCst) {
            std::fs::create_dir_all(&crashes).unwrap();
            let saved = crashes.join(format!("{name}-{}", counts.iter().sum::<u64>()));
            std::fs::write(&saved, &data).unwrap();
            eprintln!(
                "fuzz: panic on a {name} input, saved as {}",
                saved.display()
            );
            std::process::exit(1);
        }
    }
    println!(
        "fuzz: {seconds}s, no panic: {} snapshot, {} patch, {} config inputs",
        counts[0], counts[1], counts[2]
    );
}
