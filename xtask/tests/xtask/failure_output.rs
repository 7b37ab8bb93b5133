//! How `cargo xtask` fails, run as the real binary: its error line says each cause once (an
//! anyhow context that repeats its source's text is not printed twice), `--format json` prints
//! the same error as the failure document on stdout (usage errors too), and a reader that closed
//! stdout early ends a task's output quietly with the task's own exit code, never a panic.

use crate::{run, xtask};
use serde_json::Value;
use std::process::{Command, Stdio};

/// `cargo xtask ARGS` with a signing password set.
fn task(args: &[&str]) -> Command {
    let mut cmd = xtask();
    cmd.args(args).env("COSIGN_PASSWORD", "pw");
    cmd
}

/// Exit code, stdout and stderr.
fn run_task(args: &[&str]) -> (i32, String, String) {
    run(&mut task(args))
}

/// Exit code and stderr, with stdout a pipe whose only read end is closed before the task
/// writes to it (`... | head -c 0`): every write to stdout meets EPIPE.
fn run_into_closed_pipe(args: &[&str]) -> (i32, String) {
    let mut child = task(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_failure_says_each_cause_once_on_stderr_and_in_the_json_document() {
    let tmp = tempfile::tempdir().unwrap();
    // A truncated gzip input: the dataset step fails with the reader's error, which the build's
    // "loading inputs: {0}" carries in its own text and again as its source.
    let input = tmp.path().join("feed.ndjson.gz");
    std::fs::write(&input, b"\x1f\x8b\x08\x00truncated").unwrap();
    let cause = format!("{}: incomplete deflate stream", input.display());
    for format in ["text", "json"] {
        let out = tmp.path().join(format);
        let (code, stdout, stderr) = run_task(&[
            "aoc-rehearsal",
            "--from",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--dataset-epoch",
            "1700000000",
            "--format",
            format,
        ]);
        assert_eq!(code, 1, "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("cargo xtask: error: "))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        let error = line.strip_prefix("cargo xtask: error: ").unwrap();
        assert_eq!(
            error,
            format!(
                "aoc-rehearsal: step `dataset` failed: building the dataset: loading inputs: \
                 {cause}"
            ),
            "each cause once"
        );
        if format == "json" {
            let doc: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(
                doc,
                serde_json::json!({ "ok": false, "error": error, "exit_code": 1 })
            );
        } else {
            assert_eq!(stdout, "");
        }
    }
}

#[test]
fn a_usage_error_under_json_is_the_failure_document() {
    let (code, stdout, stderr) = run_task(&["aoc-verify", "--format", "json", "--no-such-flag"]);
    assert_eq!(code, 2, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "ok": false, "error": "unexpected argument '--no-such-flag' found", "exit_code": 2,
        })
    );
    assert!(stderr.contains("Usage: cargo xtask aoc-verify"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_a_task_quietly_with_its_own_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let quiet = |what: &str, stderr: &str| {
        for noise in ["panicked", "Broken pipe", "error"] {
            assert!(
                !stderr.contains(noise),
                "{what}: {noise} on stderr: {stderr}"
            );
        }
    };
    // keygen's data: the two key paths (text) or the JSON document.
    for format in ["text", "json"] {
        let dir = tmp.path().join(format);
        let (code, stderr) = run_into_closed_pipe(&[
            "keygen",
            "--out",
            dir.to_str().unwrap(),
            "--name",
            "k",
            "--format",
            format,
        ]);
        assert_eq!(code, 0, "keygen --format {format}: {stderr}");
        quiet(&format!("keygen --format {format}"), &stderr);
        assert!(dir.join("k.key").is_file() && dir.join("k.pub").is_file());
    }
    // aoc-verify's report: its verdict (here: not a kit, 14) whether or not anyone reads it.
    let not_a_kit = tmp.path().join("not-a-kit");
    let args = [
        "aoc-verify",
        "--format",
        "json",
        "--dir",
        not_a_kit.to_str().unwrap(),
    ];
    let (read_code, _, _) = run_task(&args);
    let (code, stderr) = run_into_closed_pipe(&args);
    assert_eq!((code, read_code), (14, 14), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
