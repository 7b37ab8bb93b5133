//! aoc-cli's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary): the real `stella` binary end to end, one subject per module in
//! `tests/cli/`. The ways of running it and the inputs they share are here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "cli/backfill.rs"]
mod backfill;
#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/dataset_pin.rs"]
mod dataset_pin;
#[path = "cli/store_env.rs"]
mod store_env;
#[path = "cli/untrusted_text.rs"]
mod untrusted_text;

/// The tests' clock (`SOURCE_DATE_EPOCH`): reports and datasets carry it instead of the time.
const EPOCH: &str = "1764000000";

/// A file or directory of the workspace's `testdata/`.
fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// `stella` with the tests' clock, no colour, and none of the caller's `STELLA_*` settings (the
/// store, the tenant, an injected fault): a test sets what it needs.
fn stella() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stella"));
    c.env("SOURCE_DATE_EPOCH", EPOCH)
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE")
        .env_remove("STELLA_TENANT")
        .env_remove("STELLA_FAULT_ABORT");
    c
}

/// Runs `cmd`: its exit code (-1 when a signal ended it), stdout and stderr, which must be UTF-8.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Real raw documents: what `stella sources ingest --dry-run` maps `inputs` to (for `tenant`, or
/// the default one).
fn ingested_documents(tenant: Option<&str>, inputs: &[PathBuf]) -> Vec<Value> {
    let mut cmd = stella();
    cmd.args(["sources", "ingest", "--dry-run", "--format", "ndjson"]);
    if let Some(tenant) = tenant {
        cmd.args(["--tenant", tenant]);
    }
    let (code, out, err) = run(cmd.arg("--input").args(inputs));
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["document"].clone())
        .collect()
}

/// `docs` one a line in `dir/raw.ndjson`, an input for `stella aoc verify --input`.
fn write_raw_documents(dir: &Path, docs: &[Value]) -> PathBuf {
    let mut text = String::new();
    for doc in docs {
        text.push_str(&serde_json::to_string(doc).unwrap());
        text.push('\n');
    }
    let path = dir.join("raw.ndjson");
    std::fs::write(&path, text).unwrap();
    path
}
