//! Text from untrusted input reaches the terminal escaped, through the real `stella`: a document
//! `_id` holding ESC printed by `aoc verify -v`, and dataset member names holding U+202E or a C1
//! CSI met by the loader (`aoc backfill --from`). No raw control character on stderr or stdout.

use crate::{ingested_documents, stella, testdata};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

/// No terminal control reaches the output: ESC, the C1 CSI (U+009B), the bidi override U+202E.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for bad in ['\u{1b}', '\u{9b}', '\u{202e}'] {
        assert!(
            !text.contains(bad),
            "{what} holds U+{:04X} raw: {text}",
            bad as u32
        );
    }
}

/// Real raw documents (OSV advisories mapped by `sources ingest`), one a line.
fn raw_documents() -> Vec<Value> {
    ingested_documents(Some("t1"), &[testdata("osv-rustsec")])
}

#[test]
fn aoc_verify_verbose_prints_a_document_id_holding_esc_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = raw_documents();
    // A violation, so that -v prints the document, and an id that would clear the screen.
    docs[0]["_id"] = "raw:\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}".into();
    docs[0]["severity"] = "HIGH".into();
    let input = dir.path().join("raw.ndjson");
    let text: String = docs.iter().map(|d| format!("{d}\n")).collect();
    std::fs::write(&input, text).unwrap();
    for args in [
        &["--format", "text"][..],
        &["--format", "json"],
        &["--format", "text", "--ndjson", "-"],
    ] {
        let Output {
            status,
            stdout,
            stderr,
        } = stella()
            .args(["aoc", "verify", "-v"])
            .args(args)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&stderr)
        );
        assert_no_raw_controls("stderr", &stderr);
        assert_no_raw_controls("stdout", &stdout);
        let shown = String::from_utf8_lossy(&stderr);
        assert!(
            shown.contains("raw:\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{202e}"),
            "{shown}"
        );
    }
}

/// A real dataset (built from testdata by the library the loader uses) with one more member,
/// `data/<evil>.ndjson`, as aoc-dataset never writes it: a plain tar (the loader reads any `.tar`).
fn hostile_dataset(dir: &Path, evil: &str) -> PathBuf {
    let opts = aoc_dataset::BuildOptions {
        source_date_epoch: Some(1_764_000_000),
        ..aoc_dataset::BuildOptions::new(dir.join("built"))
    };
    let built = aoc_dataset::build_from_inputs(&[testdata("history-sample.ndjson")], &opts)
        .unwrap()
        .archive;
    let limits = aoc_archive::Limits {
        max_entry_bytes: 1 << 30,
        max_total_bytes: 1 << 30,
        max_entries: 1000,
    };
    let reader =
        aoc_archive::ArchiveReader::new(std::fs::File::open(&built).unwrap(), limits).unwrap();
    let mut members = Vec::new();
    reader
        .for_each_entry(|path, entry| {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            members.push((path.to_string(), data));
            Ok::<_, aoc_archive::ArchiveError>(())
        })
        .unwrap();
    members.push((format!("data/{evil}.ndjson"), b"{}\n".to_vec()));
    // The tar writer takes members in path order.
    members.sort();
    let mut writer = aoc_archive::TarWriter::new(Vec::new(), 1_764_000_000);
    for (path, data) in members {
        writer
            .append(&aoc_archive::Entry::bytes(path, data))
            .unwrap();
    }
    let path = dir.join("hostile.tar");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&writer.finish().unwrap())
        .unwrap();
    path
}

#[test]
fn the_loader_prints_member_names_with_bidi_or_c1_controls_escaped() {
    for (evil, shown) in [
        ("x\u{202e}txt.exe", "x\\u{202e}txt.exe"),
        ("csi\u{9b}2J\u{9b}31m", "csi\\u{9b}2J\\u{9b}31m"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dataset = hostile_dataset(dir.path(), evil);
        for format in ["text", "json"] {
            let Output {
                status,
                stdout,
                stderr,
            } = stella()
                .args(["aoc", "backfill", "--dry-run", "--format", format, "--from"])
                .arg(&dataset)
                .output()
                .unwrap();
            assert_ne!(status.code(), Some(0));
            assert_no_raw_controls("stderr", &stderr);
            assert_no_raw_controls("stdout", &stdout);
            let both = format!(
                "{}{}",
                String::from_utf8_lossy(&stderr),
                String::from_utf8_lossy(&stdout)
            );
            assert!(both.contains(shown), "{both}");
        }
    }
}

#[test]
fn sources_ingest_prints_ids_and_text_from_the_input_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut osv: Value = serde_json::from_slice(
        &std::fs::read(testdata("osv-rustsec/RUSTSEC-2023-0044.json")).unwrap(),
    )
    .unwrap();
    osv["id"] = "RUSTSEC-2023-\u{202e}4400".into();
    osv["summary"] = "\u{1b}]0;owned\u{7}\u{9b}2J".into();
    let input = dir.path().join("evil.json");
    std::fs::write(&input, osv.to_string()).unwrap();
    for format in ["text", "ndjson", "json"] {
        let Output {
            status,
            stdout,
            stderr,
        } = stella()
            .args([
                "sources",
                "ingest",
                "--dry-run",
                "--tenant",
                "t1",
                "--format",
                format,
                "--input",
            ])
            .arg(&input)
            .output()
            .unwrap();
        assert!(status.code().is_some(), "{format}");
        assert_no_raw_controls(&format!("stderr ({format})"), &stderr);
        assert_no_raw_controls(&format!("stdout ({format})"), &stdout);
        let both = format!(
            "{}{}",
            String::from_utf8_lossy(&stderr),
            String::from_utf8_lossy(&stdout)
        );
        assert!(
            both.contains("\\u{202e}") || both.contains("\\u202e"),
            "{format}: {both}"
        );
    }
}

#[test]
fn backfill_names_a_rejected_record_in_a_file_whose_name_holds_esc_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    // Not an advisory at all: rejected, and --stop-on-error names its location.
    std::fs::write(
        inputs.join("evil\u{1b}[2J\u{9b}31m\u{202e}.json"),
        b"{\"not\": \"an advisory\"}",
    )
    .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = stella()
        .args(["aoc", "backfill", "--dry-run", "--stop-on-error", "--from"])
        .arg(&inputs)
        .output()
        .unwrap();
    assert_ne!(status.code(), Some(0));
    assert_no_raw_controls("stderr", &stderr);
    assert_no_raw_controls("stdout", &stdout);
    let shown = String::from_utf8_lossy(&stderr);
    assert!(
        shown.contains("evil\\u{1b}[2J\\u{9b}31m\\u{202e}.json"),
        "{shown}"
    );
}
