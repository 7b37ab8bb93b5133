//! A dataset is read from exactly the bytes that were verified: rewriting the file in place,
//! truncating it or replacing it after `Dataset::open_verified` changes nothing that is read.

use crate::{build_options, testdata};
use aoc_dataset::{build_from_inputs, BuildOptions, BuildReport, Dataset, DatasetRecord};
use std::io::Write;
use std::path::{Path, PathBuf};

fn history() -> PathBuf {
    testdata("history-sample.ndjson")
}

fn build(input: &Path, out: &Path) -> BuildReport {
    build_from_inputs(&[input.to_owned()], &build_options(out)).unwrap()
}

/// The real history sample with every summary changed: a different, equally valid dataset.
fn tampered_input(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(history()).unwrap();
    let edited = text.replace("\"summary\":\"", "\"summary\":\"TAMPERED ");
    assert_ne!(edited, text);
    let path = dir.join("tampered.ndjson");
    std::fs::write(&path, edited).unwrap();
    path
}

fn records(dataset: &aoc_dataset::VerifiedDataset) -> Vec<DatasetRecord> {
    dataset
        .records()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The original dataset, another valid dataset, and the original's records read undisturbed.
fn fixture(dir: &Path) -> (BuildReport, BuildReport, Vec<DatasetRecord>) {
    let original = build(&history(), &dir.join("a"));
    let other = build(&tampered_input(dir), &dir.join("b"));
    assert_ne!(original.hash, other.hash);
    let expected = records(&Dataset::open_verified(&original.archive).unwrap());
    assert_eq!(expected.len(), 121);
    assert!(expected
        .iter()
        .all(|r| !r.stored.json().contains("TAMPERED")));
    (original, other, expected)
}

#[test]
fn rewriting_the_file_in_place_after_verification_changes_no_record_read() {
    let dir = tempfile::tempdir().unwrap();
    let (original, other, expected) = fixture(dir.path());
    let dataset = Dataset::open_verified(&original.archive).unwrap();
    // Same inode, new bytes: what an attacker with write access to the file does between passes.
    let before = std::fs::metadata(&original.archive).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&original.archive)
        .unwrap();
    file.write_all(&std::fs::read(&other.archive).unwrap())
        .unwrap();
    file.sync_all().unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&original.archive).unwrap().ino(),
        before.ino()
    );
    let read = records(&dataset);
    assert_eq!(read, expected, "the records are those that were verified");
    assert_eq!(dataset.hash(), original.hash);
}

#[test]
fn truncating_or_replacing_the_file_after_verification_changes_no_record_read() {
    let dir = tempfile::tempdir().unwrap();
    let (original, other, expected) = fixture(dir.path());

    let dataset = Dataset::open_verified(&original.archive).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&original.archive)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(records(&dataset), expected, "truncated to nothing");

    // Put the original back, verify, then swap another dataset in under the same name.
    let pristine = build(&history(), &dir.path().join("c"));
    let dataset = Dataset::open_verified(&pristine.archive).unwrap();
    std::fs::copy(&other.archive, dir.path().join("swap")).unwrap();
    std::fs::rename(dir.path().join("swap"), &pristine.archive).unwrap();
    assert_eq!(records(&dataset), expected, "replaced by rename");
    // Reading twice gives the same records again.
    assert_eq!(records(&dataset), expected);
}

#[test]
fn reading_from_any_position_gives_exactly_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // Small parts, so that positions fall in every data file and at their ends.
    let opts = BuildOptions {
        split_bytes: 60_000,
        ..build_options(&dir.path().join("parts"))
    };
    let built = build_from_inputs(&[history()], &opts).unwrap();
    assert!(built.manifest.files.len() > 2, "{:?}", built.manifest.files);
    let dataset = Dataset::open_verified(&built.archive).unwrap();
    let all = records(&dataset);
    assert_eq!(all.len(), 121);
    let mut at = aoc_dataset::DatasetPosition::default();
    for k in 0..=all.len() {
        let rest: Vec<DatasetRecord> = dataset
            .records_from(&at)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rest, all[k..], "from record {k} at {at:?}");
        if let Some(r) = all.get(k) {
            at = r.next;
        }
    }
    // A position the dataset does not have is refused, not read from somewhere else.
    let beyond = aoc_dataset::DatasetPosition {
        member: built.manifest.files.len() as u64 + 1,
        offset: 0,
        line: 0,
    };
    assert!(dataset.records_from(&beyond).is_err());
}
