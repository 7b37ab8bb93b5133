//! `aoc-dataset` keeps the command-line convention: `--format json` prints one JSON document on
//! stdout (on failure too) while the human text goes to stderr; text mode prints only the
//! documented line of data (`HASH  ARCHIVE`) on stdout.

use crate::{aoc_dataset, run, testdata};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `aoc-dataset ARGS`: exit code, stdout, stderr.
fn aoc_dataset_run(args: &[&str]) -> (i32, String, String) {
    run(aoc_dataset().args(args))
}

fn json(what: &str, out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
}

#[test]
fn build_and_verify_print_json_on_stdout_and_text_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = testdata("osv-rustsec");
    let (code, stdout, stderr) = aoc_dataset_run(&[
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

    let (code, stdout, stderr) = aoc_dataset_run(&["verify", "--format", "json", &archive]);
    assert_eq!(code, 0, "{stderr}");
    let verified = json("verify", &stdout);
    assert_eq!(
        (verified["ok"].as_bool(), verified["hash"].as_str()),
        (Some(true), Some(&*hash))
    );

    // Text: the OK line is human text (stderr); stdout stays empty.
    let (code, stdout, stderr) = aoc_dataset_run(&["verify", &archive]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.starts_with(&format!("OK {hash}")), "{stderr}");

    // A failure is JSON too, with the exit code.
    let missing = tmp.path().join("missing.tar.gz");
    let (code, stdout, stderr) =
        aoc_dataset_run(&["verify", "--format", "json", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(json("verify failure", &stdout)["exit_code"], 2);
    assert!(stderr.contains("aoc-dataset: error"), "{stderr}");
}

#[test]
fn every_help_names_its_exit_codes_and_environment() {
    for sub in ["build", "verify"] {
        let (code, out, _) = aoc_dataset_run(&[sub, "--help"]);
        assert_eq!(code, 0);
        for needle in ["Exit codes:", "Environment:", "--format <FORMAT>", "TMPDIR"] {
            assert!(
                out.contains(needle),
                "aoc-dataset {sub} --help lacks {needle}: {out}"
            );
        }
    }
}

// ---- Signals, staging and environment problems (issue 21, items 1 and 5) ----

/// A feed of `copies` renamed copies of the real history sample (121 revisions each): a build
/// that takes seconds.
fn large_feed(dir: &Path, copies: usize) -> PathBuf {
    let sample = std::fs::read_to_string(testdata("history-sample.ndjson")).unwrap();
    let mut out = String::with_capacity(sample.len() * copies);
    for copy in 0..copies {
        out.push_str(&sample.replace("RUSTSEC-", &format!("RUSTSEC-C{copy:05}-")));
    }
    let path = dir.join("large.ndjson");
    std::fs::write(&path, out).unwrap();
    path
}

/// `aoc-dataset build --from FEED --out OUT` with `TMPDIR`, started, not awaited.
fn spawn_build(feed: &Path, out: &Path, tmpdir: &Path) -> std::process::Child {
    aoc_dataset()
        .arg("build")
        .arg("--from")
        .arg(feed)
        .arg("--out")
        .arg(out)
        .env("TMPDIR", tmpdir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The names in `dir` (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits (at most 60 s) until a build's staging directory appears in `tmpdir`.
fn wait_for_staging(tmpdir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !names(tmpdir)
        .iter()
        .any(|n| n.starts_with("aoc-dataset-staging-"))
    {
        assert!(std::time::Instant::now() < deadline, "no staging directory");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn kill(signal: &str, child: &std::process::Child) {
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
}

/// The staging directory of a running build in `tmpdir`, if there is one yet.
fn staging_in(tmpdir: &Path) -> Option<PathBuf> {
    names(tmpdir)
        .into_iter()
        .find(|n| n.starts_with("aoc-dataset-staging-"))
        .map(|n| tmpdir.join(n))
}

#[test]
fn sigint_or_sigterm_during_a_build_leaves_no_staging_and_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = large_feed(tmp.path(), 150);
    // In each phase: loading the working store, exporting the data files, packing the archive
    // (its temporary file in --out).
    type Phase = fn(&Path, &Path) -> bool;
    let phases: [(&str, i32, &str, Phase); 3] = [
        ("INT", 130, "loading", |tmpdir, _| {
            staging_in(tmpdir).is_some()
        }),
        ("TERM", 143, "exporting", |tmpdir, _| {
            staging_in(tmpdir).is_some_and(|s| s.join("export").exists())
        }),
        ("INT", 130, "packing", |_, out| {
            names(out).iter().any(|n| n.ends_with(".tmp"))
        }),
    ];
    let mut interrupted = 0;
    for (signal, code, phase, reached) in phases {
        let tmpdir = tmp.path().join(format!("tmp-{phase}"));
        let out = tmp.path().join(format!("out-{phase}"));
        std::fs::create_dir(&tmpdir).unwrap();
        let mut child = spawn_build(&feed, &out, &tmpdir);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !reached(&tmpdir, &out) && child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{phase}: never reached"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        kill(signal, &child);
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        if done.status.success() {
            // The phase passed between two looks: complete output, and no staging either.
            eprintln!("{phase}: the build ended before SIG{signal} came");
        } else {
            interrupted += 1;
            assert_eq!(done.status.code(), Some(code), "{phase}: {stderr}");
            assert!(
                stderr.contains(&format!("SIG{signal} received"))
                    && stderr.contains("interrupted: nothing was written to"),
                "{phase}: {stderr}"
            );
            assert_eq!(names(&out), Vec::<String>::new(), "{phase}: output left");
        }
        assert_eq!(
            names(&tmpdir),
            Vec::<String>::new(),
            "{phase}: staging left"
        );
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} of 3 builds were interrupted"
    );
}

#[test]
fn the_staging_directory_of_a_killed_build_is_removed_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = large_feed(tmp.path(), 100);
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let mut child = spawn_build(&feed, &tmp.path().join("out"), &tmpdir);
    wait_for_staging(&tmpdir);
    kill("KILL", &child);
    child.wait().unwrap();
    let left = names(&tmpdir);
    assert_eq!(left.len(), 1, "{left:?}");
    // What an older aoc-dataset left in its output directory: named, not removed.
    let legacy = tmp.path().join("out2/.aoc-dataset-staging-AbC123");
    std::fs::create_dir_all(&legacy).unwrap();
    let out = aoc_dataset()
        .args(["build", "--from"])
        .arg(testdata("history-sample.ndjson"))
        .arg("--out")
        .arg(tmp.path().join("out2"))
        .env("TMPDIR", &tmpdir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: removed {}, the staging directory of an earlier build",
            tmpdir.join(&left[0]).display()
        )),
        "{stderr}"
    );
    assert_eq!(names(&tmpdir), Vec::<String>::new());
    assert!(
        stderr.contains(&format!(
            "note: {} is the staging directory of an older aoc-dataset build",
            legacy.display()
        )),
        "{stderr}"
    );
    assert!(legacy.exists());
}

#[test]
fn a_build_whose_tmpdir_or_out_cannot_serve_is_an_environment_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = testdata("history-sample.ndjson");
    let build = |tmpdir: &Path, out: &Path| {
        run(aoc_dataset()
            .args(["build", "--format", "json", "--from"])
            .arg(&input)
            .arg("--out")
            .arg(out)
            .env("TMPDIR", tmpdir))
    };
    let missing = tmp.path().join("no-such-tmp");
    let (code, stdout, stderr) = build(&missing, &tmp.path().join("out"));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("TMPDIR={}: no such directory", missing.display())),
        "{stderr}"
    );
    assert_eq!(json("env", &stdout)["exit_code"], 3);
    // --out under a file: it cannot be created.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let ok_tmp = tmp.path().join("tmp");
    std::fs::create_dir(&ok_tmp).unwrap();
    let (code, _, stderr) = build(&ok_tmp, &file.join("out"));
    assert_eq!(code, 2, "not a directory is a usage error: {stderr}");
    // Running out of room while staging: a real, tiny filesystem (root only).
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(&small)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        aoc_testkit::skip("cannot mount a tmpfs (not root?): the full TMPDIR case did NOT run");
        return;
    }
    let (code, _, stderr) = build(&small, &tmp.path().join("out"));
    let left = names(&small);
    Command::new("umount").arg(&small).status().unwrap();
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("TMPDIR={}: ran out of space", small.display())),
        "{stderr}"
    );
    assert_eq!(
        left,
        Vec::<String>::new(),
        "staging left in the full TMPDIR"
    );
    // An output directory with no room for the archive: the same class, naming --out.
    let full_out = tmp.path().join("full-out");
    std::fs::create_dir(&full_out).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&full_out)
        .status()
        .unwrap();
    let (code, _, stderr) = build(&ok_tmp, &full_out);
    let left = names(&full_out);
    Command::new("umount").arg(&full_out).status().unwrap();
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("--out {}: ran out of space", full_out.display())),
        "{stderr}"
    );
    assert_eq!(
        left,
        Vec::<String>::new(),
        "a partial archive left in --out"
    );
    assert_eq!(names(&ok_tmp), Vec::<String>::new(), "staging left");
}

// ---- A closed stdout and a failing dataset named once (issue 21, the JSON contract) ----

/// `aoc-dataset ARGS` with stdout a pipe whose read end is closed before the command writes to
/// it (`... | head -c 0`): exit code and stderr.
fn aoc_dataset_into_closed_pipe(args: &[&str]) -> (i32, String) {
    let mut child = aoc_dataset()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The only read end: every write the command makes to stdout meets EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_commands_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let input = testdata("osv-rustsec");
    let quiet = |what: &str, stderr: &str| {
        for noise in ["panicked", "Broken pipe", "error"] {
            assert!(
                !stderr.contains(noise),
                "{what}: {noise} on stderr: {stderr}"
            );
        }
    };
    // build: the JSON document, then the text mode's `HASH  ARCHIVE` line.
    for (format, out) in [("json", "json-out"), ("text", "text-out")] {
        let out = tmp.path().join(out);
        let (code, stderr) = aoc_dataset_into_closed_pipe(&[
            "build",
            "--format",
            format,
            "--from",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "build --format {format}: {stderr}");
        quiet(&format!("build --format {format}"), &stderr);
        // The build itself is complete: the archive and its sidecar are there.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "{out:?}");
    }
    let archive = std::fs::read_dir(tmp.path().join("json-out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let archive = archive.to_str().unwrap();

    // verify: its verdict is its exit code, whether or not anyone reads the report.
    let (code, stderr) = aoc_dataset_into_closed_pipe(&["verify", "--format", "json", archive]);
    assert_eq!(code, 0, "{stderr}");
    quiet("verify", &stderr);
    let (code, stderr) = aoc_dataset_into_closed_pipe(&[
        "verify",
        "--format",
        "json",
        "--expect-hash",
        &"0".repeat(64),
        archive,
    ]);
    assert_eq!(code, 1, "a failed check stays exit 1: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("FAIL"),
        "the FAIL line is stderr's: {stderr}"
    );
    // A failure's document meets the closed pipe too: the error is still said, on stderr.
    let missing = tmp.path().join("missing.tar.gz");
    let (code, stderr) =
        aoc_dataset_into_closed_pipe(&["verify", "--format", "json", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("aoc-dataset: error: "), "{stderr}");
}

#[test]
fn a_dataset_failing_a_check_on_the_archive_is_named_once() {
    use aoc_ingest::InputKind;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = testdata("osv-rustsec");
    let (code, stdout, stderr) = aoc_dataset_run(&[
        "build",
        "--from",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (hash, archive) = stdout.trim_end().split_once("  ").unwrap();
    // The same bytes under another hash's name: the file-name check fails.
    let renamed = out.join(format!("aoc-dataset-{}.tar.gz", "1".repeat(64)));
    std::fs::rename(archive, &renamed).unwrap();
    let name = renamed.file_name().unwrap().to_str().unwrap();
    let pinned = Path::new(archive);
    std::fs::copy(&renamed, pinned).unwrap();
    let pinned_name = pinned.file_name().unwrap().to_str().unwrap();

    // aoc-dataset verify's FAIL line.
    let (code, _, stderr) = aoc_dataset_run(&["verify", renamed.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let fail = stderr.lines().find(|l| l.contains("FAIL")).unwrap();
    assert_eq!(fail.matches(name).count(), 1, "{fail}");
    assert!(
        fail.ends_with(&format!(
            "{}: file-name: the name says hash {}, the contents hash to {hash}",
            renamed.display(),
            "1".repeat(64)
        )),
        "{fail}"
    );
    let (code, _, stderr) = aoc_dataset_run(&["verify", "--expect-hash", &"0".repeat(64), archive]);
    assert_eq!(code, 1, "{stderr}");
    let fail = stderr.lines().find(|l| l.contains("FAIL")).unwrap();
    assert_eq!(fail.matches(pinned_name).count(), 1, "{fail}");

    // The loader's refusal, which stella prints as its error line (through error_chain).
    let refusal = |path: &Path, expected_hash: Option<String>| {
        let datasets = aoc_dataset::Datasets {
            options: aoc_dataset::VerifyOptions {
                expected_hash,
                ..Default::default()
            },
        };
        let Err(e) = datasets.open(path) else {
            panic!("{} loaded", path.display())
        };
        aoc_term::error_chain(&e)
    };
    let line = refusal(&renamed, None);
    assert_eq!(line.matches(name).count(), 1, "{line}");
    assert!(
        line.contains(&format!(
            "refusing to load it: {}: 1 check(s) failed; first: file-name: the name says",
            renamed.display()
        )),
        "{line}"
    );
    let line = refusal(pinned, Some("0".repeat(64)));
    assert_eq!(line.matches(pinned_name).count(), 1, "{line}");
    assert!(
        line.contains("first: expected-hash: expected dataset hash 000"),
        "{line}"
    );
}
