//! `aoc-dataset build` takes its store from `STELLA_STORE` when neither `--store` nor `--from`
//! is given; `--from` with the variable set still builds from the inputs, and a password in the
//! variable is never printed.

use aoc_ingest::{Backfill, Source};
use aoc_store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

fn aoc_dataset() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aoc-dataset"));
    c.env("SOURCE_DATE_EPOCH", "1764000000")
        .env_remove("STELLA_STORE");
    c
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// Runs a build; (exit code, the hash it printed, stderr).
fn build(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    (
        out.status.code().unwrap(),
        hash,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn build_exports_the_store_named_by_stella_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());

    // --from wins over the variable (which names no store at all).
    let (code, from_inputs, err) = build(
        aoc_dataset()
            .env("STELLA_STORE", &missing)
            .args(["build", "--from"])
            .arg(testdata("osv-rustsec"))
            .arg("--out")
            .arg(dir.path().join("a")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!dir.path().join("missing.db").exists());
    let archive = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();

    // Loaded into a store, and exported again from STELLA_STORE alone: the same dataset.
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let mut store = Store::open(&url).unwrap();
    let mut source = Source::open(&[archive], &[&aoc_dataset::Datasets::default()]).unwrap();
    Backfill::new("default", 1_764_000_000)
        .run(&mut source, Some(&mut store))
        .unwrap();
    drop(store);
    let (code, from_store, err) = build(
        aoc_dataset()
            .env("STELLA_STORE", &url)
            .args(["build", "--out"])
            .arg(dir.path().join("b")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(from_store, from_inputs);

    // Neither --store, --from nor the variable: a usage error.
    let (code, _, err) = build(
        aoc_dataset()
            .args(["build", "--out"])
            .arg(dir.path().join("c")),
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_password_in_stella_store_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the loopback address: the connection is refused at once.
    let url = "postgres://aoc:hunter2-not-printed@127.0.0.1:1/aoc?sslmode=disable";
    let (code, _, err) = build(
        aoc_dataset()
            .env("STELLA_STORE", url)
            .args(["build", "--out"])
            .arg(dir.path()),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postgres://aoc:***@127.0.0.1:1/aoc"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
