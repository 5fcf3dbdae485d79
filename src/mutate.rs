//! Property tests' mutations of untrusted files (snapshots, patches, configs): a seed with a few
//! byte-level edits and JSON/TOML tokens spliced in. The readers must return an error or a
//! value on any of them, and never panic (the properties live beside each reader).

use proptest::prelude::*;

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

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, usize),
    Delete(usize, usize),
    Truncate(usize),
    Repeat(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..32).prop_map(|(at, n)| Edit::Repeat(at, n)),
    ]
}

/// `seed` with up to six edits.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 0..6).prop_map(move |edits| {
        let mut data = seed.clone();
        for edit in edits {
            let at = |i: usize, data: &Vec<u8>| if data.is_empty() { 0 } else { i % data.len() };
            match edit {
                Edit::Flip(i, b) if !data.is_empty() => {
                    let i = at(i, &data);
                    data[i] ^= b | 1;
                }
                Edit::Flip(..) => {}
                Edit::Insert(i, t) => {
                    let i = at(i, &data);
                    data.splice(i..i, TOKENS[t].bytes());
                }
                Edit::Delete(i, n) => {
                    let i = at(i, &data);
                    let end = (i + n).min(data.len());
                    data.drain(i..end);
                }
                Edit::Truncate(i) => {
                    let i = at(i, &data);
                    data.truncate(i);
                }
                Edit::Repeat(i, n) => {
                    let i = at(i, &data);
                    let end = (i + n).min(data.len());
                    let copy = data[i..end].to_vec();
                    data.splice(end..end, copy);
                }
            }
        }
        data
    })
}
