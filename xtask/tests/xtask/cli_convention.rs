//! `cargo xtask` keeps the command-line convention, run as the real binary: `--format json`
//! prints one JSON document on stdout (a failure too) while the human text goes to stderr, and
//! every task's `--help` says `cargo xtask` and names its exit codes and environment. (The clap
//! tree itself is walked by `cli.rs`'s unit test; the long tasks' JSON documents are checked on
//! their end-to-end runs in `src/*/tests.rs`, a failed release's in `dataset_pin.rs`.)

use crate::{run, xtask};
use serde_json::Value;

/// `cargo xtask ARGS` with the environment variables `envs`: exit code, stdout, stderr.
fn xtask_with(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    run(xtask().args(args).envs(envs.iter().copied()))
}

fn json(what: &str, out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
}

#[test]
fn keygen_prints_the_new_pair_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (code, out, err) = xtask_with(
        &["keygen", "--out", dir, "--name", "k", "--format", "json"],
        &[("COSIGN_PASSWORD", "pw")],
    );
    assert_eq!(code, 0, "{err}");
    let pair = json("keygen", &out);
    let public = pair["public_key"].as_str().unwrap();
    assert!(public.ends_with("k.pub"), "{pair}");
    let pem = std::fs::read_to_string(public).unwrap();
    let key = aoc_sigstore::PublicKey::from_pem(&pem, "k.pub").unwrap();
    assert_eq!(pair["key_id"], key.key_id(), "{pair}");
    assert!(err.contains("new key pair"), "{err}");
    // Refused (the pair exists): the error is the JSON document, the cause on stderr.
    let (code, out, err) = xtask_with(
        &["keygen", "--out", dir, "--name", "k", "--format", "json"],
        &[("COSIGN_PASSWORD", "pw")],
    );
    assert_eq!(code, 1);
    let refused = json("keygen refusal", &out);
    assert_eq!(refused["ok"], false);
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn sbom_prints_its_files_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = xtask_with(
        &[
            "sbom",
            "--out",
            tmp.path().to_str().unwrap(),
            "--format",
            "json",
        ],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    assert_eq!(code, 0, "{err}");
    let sbom = json("sbom", &out);
    assert!(std::path::Path::new(sbom["spdx"].as_str().unwrap()).is_file());
    assert!(sbom["packages"].as_u64().unwrap() > 10, "{sbom}");
    assert!(err.contains("crates linked into `stella`"), "{err}");
}

#[test]
fn every_task_help_says_cargo_xtask_and_names_exit_codes_and_environment() {
    for task in [
        &["aoc-release"][..],
        &["aoc-verify"],
        &["aoc-rehearsal"],
        &["aoc-publish"],
        &["keygen"],
        &["sbom"],
        &["bench", "sbom"],
        &["bench", "release"],
        &["bench", "verify"],
        &["test"],
    ] {
        let mut args = task.to_vec();
        args.push("--help");
        let (code, out, _) = xtask_with(&args, &[]);
        assert_eq!(code, 0);
        let usage = format!("Usage: cargo xtask {}", task.join(" "));
        for needle in [&*usage, "Exit codes:", "Environment:", "--format <FORMAT>"] {
            assert!(
                out.contains(needle),
                "{task:?} --help lacks {needle:?}: {out}"
            );
        }
        assert!(!out.contains("see verify.rs"), "{out}");
    }
}
