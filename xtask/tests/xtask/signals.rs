//! SIGINT during `cargo xtask aoc-release`, run for real: the first signal stops the run at the
//! step in hand's next boundary (the dataset build polls it between batches) and exits 130, the
//! staging directory removed and the previous kit as it was; a second ends it at once, the
//! staging directory removed all the same. The dataset step reads a FIFO that holds half a
//! record when the signal is sent, so the signal lands while the build reads, whatever the
//! machine's speed.

use crate::aoc_release;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

/// A release whose dataset is one record read from the FIFO `dir/feed.json`, with a previous
/// kit at `dir/kit` (a SHA256SUMS and a marker file); stderr piped.
fn start(dir: &Path) -> Option<(Child, BufReader<ChildStderr>, PathBuf)> {
    let fifo = dir.join("feed.json");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        aoc_testkit::skip("no mkfifo to make the FIFO the dataset step waits on");
        return None;
    }
    let kit = dir.join("kit");
    std::fs::create_dir(&kit).unwrap();
    std::fs::write(kit.join("SHA256SUMS"), "").unwrap();
    std::fs::write(kit.join("previous"), "the previous kit").unwrap();
    let mut child = aoc_release(&[])
        .arg("--out")
        .arg(&kit)
        .arg("--runner-binary")
        .arg(dir.join("no-such-stella"))
        .arg("--dataset-from")
        .arg(&fifo)
        .args(["--dataset-epoch", "1700000000"])
        .env("COSIGN_ALLOW_DEV_KEY", "1")
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    Some((child, stderr, fifo))
}

/// The record the dataset is built from, and the FIFO opened for writing once the release's
/// dataset step opened it for reading, with the first half of the record written: the build
/// waits in the middle of its input.
fn half_fed(fifo: &Path) -> (std::fs::File, Vec<u8>) {
    let record =
        std::fs::read(crate::root().join("testdata/osv-rustsec/RUSTSEC-2016-0001.json")).unwrap();
    let mut writer = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    let half = record.len() / 2;
    writer.write_all(&record[..half]).unwrap();
    (writer, record[half..].to_vec())
}

/// Reads stderr up to and including the first line holding `needle`; all lines read.
fn read_until(stderr: &mut BufReader<ChildStderr>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("stderr ended before {needle:?}:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

fn sigint(child: &Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The staging directories left beside the kit.
fn staging_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kit.tmp-"))
        .collect()
}

fn assert_previous_kit_untouched(dir: &Path) {
    let kit = dir.join("kit");
    let mut names: Vec<_> = std::fs::read_dir(&kit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["SHA256SUMS", "previous"]);
    assert_eq!(
        std::fs::read_to_string(kit.join("previous")).unwrap(),
        "the previous kit"
    );
}

#[test]
fn sigint_stops_a_release_in_the_step_in_hand_and_leaves_no_staging() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut child, mut stderr, fifo)) = start(dir.path()) else {
        return;
    };
    let mut seen = read_until(&mut stderr, "staging ");
    let (mut writer, rest) = half_fed(&fifo);
    sigint(&child);
    seen += &read_until(&mut stderr, "SIGINT received");
    // The step in hand goes on: the rest of its input arrives, and the build stops at its next
    // boundary.
    writer.write_all(&rest).unwrap();
    drop(writer);
    let status = child.wait().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("stopping after the step in hand")
            && seen.contains("step `dataset` failed: interrupted by SIGINT"),
        "{seen}"
    );
    assert!(!seen.contains("rehearsal report"), "{seen}");
    assert_eq!(staging_left(dir.path()), Vec::<String>::new(), "{seen}");
    assert_previous_kit_untouched(dir.path());
}

#[test]
fn a_second_sigint_ends_a_release_at_once_and_still_removes_the_staging() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut child, mut stderr, fifo)) = start(dir.path()) else {
        return;
    };
    let mut seen = read_until(&mut stderr, "staging ");
    let (writer, _rest) = half_fed(&fifo);
    sigint(&child);
    seen += &read_until(&mut stderr, "SIGINT received");
    // The dataset step still waits for the rest of its input: only the second signal ends the
    // run.
    sigint(&child);
    let status = child.wait().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("SIGINT again: stopped at once; the staging directory is removed"),
        "{seen}"
    );
    assert_eq!(staging_left(dir.path()), Vec::<String>::new(), "{seen}");
    assert_previous_kit_untouched(dir.path());
    drop(writer);
}
