//! aoc-ingest's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary); each module is one subject, in `tests/ingest/`.

use std::path::{Path, PathBuf};

#[path = "ingest/engine.rs"]
mod engine;
#[path = "ingest/input.rs"]
mod input;

/// A file or directory of the workspace's `testdata/`.
fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}
