//! What an attacker who controls a dataset's directory or its archive can still try, through the
//! library (the loader `stella` uses) and the real `aoc-dataset` binary: a FIFO sidecar manifest
//! or a link instead of the archive is refused promptly, never waited on; member names holding
//! U+202E or a C1 CSI reach neither stderr nor stdout raw.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{aoc_dataset, build_options, testdata};
use aoc_dataset::{build_from_inputs, BuildReport, Dataset, VerifyError};

fn build(out: &Path) -> BuildReport {
    build_from_inputs(&[testdata("history-sample.ndjson")], &build_options(out)).unwrap()
}

/// `f` on another thread: a test fails instead of hanging when it blocks.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("blocked for 60 s")
}

/// `aoc-dataset ARGS`: exit code, stdout, stderr (raw bytes), killed after 60 s.
fn run_promptly(args: &[&str]) -> (i32, Vec<u8>, Vec<u8>) {
    let mut child = aoc_dataset()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("aoc-dataset {args:?} blocked for 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap(), out.stdout, out.stderr)
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_sidecar_manifest_is_refused_promptly_by_the_loader_and_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(dir.path());
    std::fs::remove_file(&built.manifest_path).unwrap();
    mkfifo(&built.manifest_path);

    let archive = built.archive.clone();
    let err = promptly(move || Dataset::open_verified(&archive).unwrap_err());
    let VerifyError::Failed(report) = &err else {
        panic!("{err}")
    };
    let message = report.failures[0].to_string();
    assert!(message.contains("sidecar-manifest"), "{message}");
    assert!(
        message.contains("is a FIFO, not a regular file"),
        "{message}"
    );

    let (code, _, stderr) = run_promptly(&["verify", built.archive.to_str().unwrap()]);
    let stderr = String::from_utf8(stderr).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is a FIFO"), "{stderr}");
}

#[test]
fn an_archive_that_is_a_link_or_a_fifo_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(&dir.path().join("real"));
    let elsewhere = dir.path().join("link");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = elsewhere.join(built.archive.file_name().unwrap());
    std::os::unix::fs::symlink(&built.archive, &link).unwrap();
    let (code, _, stderr) = run_promptly(&["verify", link.to_str().unwrap()]);
    let stderr = String::from_utf8(stderr).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a symbolic link, not a regular file"),
        "{stderr}"
    );

    let fifo = dir.path().join("aoc-dataset-fifo.tar.gz");
    mkfifo(&fifo);
    let path = fifo.clone();
    let err = promptly(move || Dataset::open_verified(&path).unwrap_err());
    assert!(err.to_string().contains("is a FIFO"), "{err}");
    let (code, _, _) = run_promptly(&["verify", fifo.to_str().unwrap()]);
    assert_eq!(code, 2);
}

/// The built dataset with one more member whose name holds `evil`, repacked as gzip.
fn with_member(built: &BuildReport, evil: &str, out: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&built.archive).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let mut original = tar::Archive::new(bytes.as_slice());
    let mut builder = tar::Builder::new(Vec::new());
    for entry in original.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        builder.append(&header, data.as_slice()).unwrap();
    }
    let line = b"{}\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(line.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, format!("data/{evil}.ndjson"), &line[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    std::fs::create_dir_all(out).unwrap();
    let path = out.join(built.archive.file_name().unwrap());
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap();
    path
}

/// No terminal control reaches the output: ESC, the C1 CSI (U+009B), the bidi override U+202E.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for bad in ['\u{1b}', '\u{9b}', '\u{202e}', '\u{2028}'] {
        assert!(
            !text.contains(bad),
            "{what} holds U+{:04X} raw: {text}",
            bad as u32
        );
    }
}

#[test]
fn member_names_with_bidi_or_c1_controls_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(&dir.path().join("real"));
    for (evil, shown) in [
        ("x\u{202e}txt.exe", "x\\u{202e}txt.exe"),
        ("csi\u{9b}2J\u{9b}31m", "csi\\u{9b}2J\\u{9b}31m"),
    ] {
        let hostile = with_member(&built, evil, &dir.path().join(format!("h{}", evil.len())));
        // The loader's error names the member as it is; printers escape it (stella's test).
        let err = Dataset::open_verified(&hostile).unwrap_err().to_string();
        assert!(err.contains(&format!("data/{evil}.ndjson")), "{err}");
        // The binary, text and JSON.
        let (code, stdout, stderr) = run_promptly(&["verify", hostile.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert_no_raw_controls("stderr", &stderr);
        assert_no_raw_controls("stdout", &stdout);
        assert!(String::from_utf8_lossy(&stderr).contains(shown));
        let (code, stdout, stderr) =
            run_promptly(&["verify", hostile.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code, 1);
        assert_no_raw_controls("stderr (json)", &stderr);
        assert_no_raw_controls("stdout (json)", &stdout);
        let doc: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        let files: Vec<&str> = doc["failures"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["file"].as_str())
            .collect();
        assert!(
            files.contains(&format!("data/{shown}.ndjson").as_str()),
            "{files:?}"
        );
    }
}
