//! `aoc-dataset` keeps the command-line convention: `--format json` prints one JSON document on
//! stdout (on failure too) while the human text goes to stderr; text mode prints only the
//! documented line of data (`HASH  ARCHIVE`) on stdout.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn aoc_dataset(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aoc-dataset"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1764000000")
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn json(what: &str, out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
}

#[test]
fn build_and_verify_print_json_on_stdout_and_text_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = testdata("osv-rustsec");
    let (code, stdout, stderr) = aoc_dataset(&[
        "build",
        "--format",
        "json",
        "--from",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let built = json("build", &stdout);
    assert_eq!(built["ok"], true);
    assert_eq!(built["records"], 5);
    let archive = built["archive"].as_str().unwrap().to_owned();
    let hash = built["hash"].as_str().unwrap().to_owned();

    let (code, stdout, stderr) = aoc_dataset(&["verify", "--format", "json", &archive]);
    assert_eq!(code, 0, "{stderr}");
    let verified = json("verify", &stdout);
    assert_eq!(
        (verified["ok"].as_bool(), verified["hash"].as_str()),
        (Some(true), Some(&*hash))
    );

    // Text: the OK line is human text (stderr); stdout stays empty.
    let (code, stdout, stderr) = aoc_dataset(&["verify", &archive]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.starts_with(&format!("OK {hash}")), "{stderr}");

    // A failure is JSON too, with the exit code.
    let missing = tmp.path().join("missing.tar.gz");
    let (code, stdout, stderr) =
        aoc_dataset(&["verify", "--format", "json", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(json("verify failure", &stdout)["exit_code"], 2);
    assert!(stderr.contains("aoc-dataset: error"), "{stderr}");
}

#[test]
fn every_help_names_its_exit_codes_and_environment() {
    for sub in ["build", "verify"] {
        let (code, out, _) = aoc_dataset(&[sub, "--help"]);
        assert_eq!(code, 0);
        for needle in ["Exit codes:", "Environment:", "--format <FORMAT>", "TMPDIR"] {
            assert!(
                out.contains(needle),
                "aoc-dataset {sub} --help lacks {needle}: {out}"
            );
        }
    }
}
