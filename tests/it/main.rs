//! Integration tests: the real binary, the real embedded PostgreSQL, real dumps, in one test
//! binary made of one module per feature. Every `Ctx::run` also asserts that no temp dir and no
//! process was left behind. Helpers shared across modules are `pub(crate)` and reach every
//! module through the glob imports below.

#[path = "../util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;

pub(crate) fn check_sample(ctx: &Ctx, dump: &str) -> Run {
    let dump = sample_dump(dump);
    check_with(
        ctx,
        s(&dump),
        s(&downgrade_sql()),
        &["--expect-patch", s(&expected_patch())],
    )
}

mod alembic;
mod baseline;
mod cases;
mod check;
mod ci;
mod django;
mod inputs;
mod lifecycle;
mod redact;
mod reports;
mod rules;
mod security;
mod server;
mod snapshot;
mod tools;
mod verdict;
mod walk;

#[allow(unused_imports)]
use alembic::*;
#[allow(unused_imports)]
use baseline::*;
#[allow(unused_imports)]
use cases::*;
#[allow(unused_imports)]
use check::*;
#[allow(unused_imports)]
use ci::*;
#[allow(unused_imports)]
use django::*;
#[allow(unused_imports)]
use inputs::*;
#[allow(unused_imports)]
use lifecycle::*;
#[allow(unused_imports)]
use redact::*;
#[allow(unused_imports)]
use reports::*;
#[allow(unused_imports)]
use rules::*;
#[allow(unused_imports)]
use security::*;
#[allow(unused_imports)]
use snapshot::*;
#[allow(unused_imports)]
use verdict::*;
#[allow(unused_imports)]
use walk::*;
