//! xtask's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary): the real `cargo xtask` binary and the repository's invariants, one
//! subject per module in `tests/xtask/`. The workspace root and the ways of running the binary
//! they share are here.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "xtask/cli_convention.rs"]
mod cli_convention;
#[path = "xtask/dataset_pin.rs"]
mod dataset_pin;
#[path = "xtask/failure_output.rs"]
mod failure_output;
#[path = "xtask/production_refusals.rs"]
mod production_refusals;
#[path = "xtask/release_workflow.rs"]
mod release_workflow;
#[path = "xtask/rust_version.rs"]
mod rust_version;
#[path = "xtask/setup_scripts.rs"]
mod setup_scripts;
#[path = "xtask/signals.rs"]
mod signals;
#[path = "xtask/tidy.rs"]
mod tidy;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits inside the workspace root")
        .to_path_buf()
}

/// The real `cargo xtask` binary, without colour and without the caller's `STELLA_STORE` or
/// dataset clock (`AOC_DATASET_EPOCH`): a test sets what it needs.
fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.env("NO_COLOR", "1")
        .env_remove("STELLA_STORE")
        .env_remove("AOC_DATASET_EPOCH");
    cmd
}

/// `cargo xtask aoc-release ARGS`, with none of the caller's signing, pin or clock variables: a
/// test sets what it needs.
fn aoc_release(args: &[&str]) -> Command {
    let mut cmd = xtask();
    cmd.arg("aoc-release").args(args);
    for var in [
        "COSIGN_KEY",
        "COSIGN_KEY_B64",
        "COSIGN_PASSWORD",
        "COSIGN_ALLOW_DEV_KEY",
        "AOC_REQUIRE_PROD_KEY",
        "DATASET_HASH",
        "SOURCE_DATE_EPOCH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd`: its exit code, stdout and stderr (UTF-8 both).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
