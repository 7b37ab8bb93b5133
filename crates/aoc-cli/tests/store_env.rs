//! `STELLA_STORE`: the store of `stella aoc backfill` and `stella aoc verify` when the command
//! line names none. A store or input given on the command line always wins (and never conflicts
//! with the variable), and the URL's password is never printed, not even by `--help`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SECRET: &str = "hunter2-not-printed";

fn stella() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stella"));
    c.env("SOURCE_DATE_EPOCH", "1764000000")
        .env_remove("STELLA_STORE")
        .env_remove("STELLA_TENANT")
        .env("NO_COLOR", "1");
    c
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// Raw documents of the real samples, as `sources ingest --format ndjson` writes them.
fn raw_documents(dir: &Path) -> PathBuf {
    let (code, out, err) = run(stella()
        .args([
            "sources",
            "ingest",
            "--dry-run",
            "--format",
            "ndjson",
            "--input",
        ])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    let mut docs = String::new();
    for line in out.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        docs.push_str(&serde_json::to_string(&entry["document"]).unwrap());
        docs.push('\n');
    }
    let path = dir.join("raw.ndjson");
    std::fs::write(&path, docs).unwrap();
    path
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn backfill_and_verify_use_stella_store_unless_the_command_line_chooses() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());

    // backfill: the store from the environment.
    let report = dir.path().join("backfill.json");
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &url)
        .args(["aoc", "backfill", "--no-progress", "--from"])
        .arg(testdata("osv-rustsec"))
        .arg("--report")
        .arg(&report));
    assert_eq!(code, 0, "{err}");
    let report = json(&report);
    assert_eq!(report["store"], url.as_str());
    assert!(report["written"].as_u64().unwrap() > 0, "{report}");
    assert!(dir.path().join("env.db").is_file());

    // verify: the same store, from the environment alone.
    let out = dir.path().join("verify.json");
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &url)
        .args(["aoc", "verify", "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let checked = json(&out);
    assert_eq!(checked["source"], format!("store:{url}").as_str());
    assert_eq!(checked["documents_checked"], report["written"]);

    // --store on the command line wins over the environment.
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &missing)
        .args(["aoc", "verify", "--store", &url, "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["source"], format!("store:{url}").as_str());

    // --input with STELLA_STORE set: the inputs are checked, the variable neither used nor in
    // conflict with them.
    let raw = raw_documents(dir.path());
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &missing)
        .args(["aoc", "verify", "--output"])
        .arg(&out)
        .arg("--input")
        .arg(&raw));
    assert_eq!(code, 0, "{err}");
    let checked = json(&out);
    assert_eq!(
        checked["source"],
        format!("input:{}", raw.display()).as_str()
    );
    assert_eq!(checked["documents_checked"], report["written"]);
    assert!(!dir.path().join("missing.db").exists());

    // Nothing at all is still a usage error.
    let (code, _, err) = run(stella().args(["aoc", "verify"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--input"), "{err}");
}

#[test]
fn a_password_in_stella_store_is_never_printed() {
    // Nothing listens on port 1 of the loopback address: the connection is refused at once.
    let url = format!("postgres://aoc:{SECRET}@127.0.0.1:1/aoc?sslmode=disable");
    for args in [
        &["aoc", "verify"][..],
        &["aoc", "backfill", "--no-progress", "--from", "-"][..],
    ] {
        let (code, out, err) = run(stella().env("STELLA_STORE", &url).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("postgres://aoc:***@127.0.0.1:1/aoc?sslmode=disable"),
            "{args:?}: {err}"
        );
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{args:?}: {err}"
        );
    }
    for sub in ["verify", "backfill"] {
        let (code, out, err) = run(stella()
            .env("STELLA_STORE", &url)
            .args(["aoc", sub, "--help"]));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("STELLA_STORE"),
            "{sub} --help names the variable:\n{out}"
        );
        assert!(
            !out.contains(SECRET),
            "{sub} --help shows the password:\n{out}"
        );
    }
}
