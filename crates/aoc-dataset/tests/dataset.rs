//! aoc-dataset's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary): the library and the real `aoc-dataset` binary, one subject per
//! module in `tests/dataset/` (the specification of §4.2 of docs/ARCHITECTURE.md in
//! `specification.rs`). The clock, inputs and ways of running the binary they share are here.

use aoc_dataset::BuildOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "dataset/cli.rs"]
mod cli;
#[path = "dataset/private_copy.rs"]
mod private_copy;
#[path = "dataset/read_only_store.rs"]
mod read_only_store;
#[path = "dataset/specification.rs"]
mod specification;
#[path = "dataset/store_env.rs"]
mod store_env;
#[path = "dataset/untrusted_files.rs"]
mod untrusted_files;

/// The tests' clock (`SOURCE_DATE_EPOCH`): every dataset built here carries it.
const EPOCH: i64 = 1_764_000_000;

/// A file or directory of the workspace's `testdata/`.
fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// Build options writing to `out`, on the tests' clock.
fn build_options(out: &Path) -> BuildOptions {
    BuildOptions {
        source_date_epoch: Some(EPOCH),
        ..BuildOptions::new(out)
    }
}

/// The real `aoc-dataset` with the tests' clock, no colour and no `STELLA_STORE` of the caller.
fn aoc_dataset() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aoc-dataset"));
    c.env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE");
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

/// Runs an `aoc-dataset build`: its exit code, the hash it printed (the first word of stdout) and
/// stderr.
fn run_build(cmd: &mut Command) -> (i32, String, String) {
    let (code, stdout, stderr) = run(cmd);
    let hash = stdout.split_whitespace().next().unwrap_or_default();
    (code, hash.to_owned(), stderr)
}
