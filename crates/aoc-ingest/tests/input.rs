//! The input reader over real files: pretty JSON, arrays, NDJSON feeds (plain, .zst, .gz), stdin-like
//! broken lines, deletions, and the record positions a checkpoint resumes from.

use aoc_ingest::{InputReader, Item};
use std::io::Write;
use std::path::{Path, PathBuf};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn items(paths: &[PathBuf]) -> Vec<(String, Item)> {
    InputReader::open(paths)
        .unwrap()
        .map(|r| r.unwrap())
        .map(|r| (r.location, r.item))
        .collect()
}

#[test]
fn directories_are_walked_in_sorted_order_and_pretty_files_are_one_document() {
    let got = items(&[testdata("osv-rustsec")]);
    assert_eq!(got.len(), 5);
    let names: Vec<&str> = got
        .iter()
        .map(|(l, _)| l.rsplit('/').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(got.iter().all(|(_, i)| matches!(
        i,
        Item::Upstream {
            retrieved_at: None,
            ..
        }
    )));
}

#[test]
fn revision_feed_lines_carry_their_commit_time_and_compressed_feeds_read_the_same() {
    let plain = items(&[testdata("history-sample.ndjson")]);
    let zst = items(&[testdata("history-sample.ndjson.zst")]);
    assert_eq!(plain.len(), 121);
    assert_eq!(
        plain.iter().map(|x| &x.1).collect::<Vec<_>>(),
        zst.iter().map(|x| &x.1).collect::<Vec<_>>()
    );
    let Item::Upstream { doc, retrieved_at } = &plain[0].1 else {
        panic!("{:?}", plain[0])
    };
    assert!(retrieved_at.is_some());
    assert!(doc["id"].as_str().unwrap().starts_with("RUSTSEC-"));
    assert!(plain[3].0.ends_with("history-sample.ndjson:4"));

    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("feed.ndjson.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(testdata("history-sample.ndjson")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    assert_eq!(items(&[gz]).len(), 121);
}

#[test]
fn broken_lines_deletions_and_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.ndjson");
    std::fs::write(
        &feed,
        concat!(
            "{\"commit\":\"a\",\"committed_at\":\"2024-01-01T00:00:00+01:00\",\"path\":\"crates/RUSTSEC-2024-0001.json\",\"document\":{\"id\":\"RUSTSEC-2024-0001\",\"modified\":\"x\"}}\n",
            "{not json\n",
            "\n",
            "{\"commit\":\"b\",\"committed_at\":\"2024-01-02T00:00:00Z\",\"path\":\"crates/RUSTSEC-2024-0001.json\",\"deleted\":true}\n",
        ),
    )
    .unwrap();
    let got = items(std::slice::from_ref(&feed));
    assert_eq!(got.len(), 3);
    assert!(matches!(&got[1].1, Item::Broken(m) if m.starts_with("invalid JSON")));
    assert!(got[1].0.ends_with("feed.ndjson:2"));
    assert_eq!(
        got[2].1,
        Item::Deleted {
            path: "crates/RUSTSEC-2024-0001.json".into(),
            at: Some("2024-01-02T00:00:00Z".into()),
            upstream_id: Some("RUSTSEC-2024-0001".into())
        }
    );

    let array = dir.path().join("many.json");
    std::fs::write(
        &array,
        "[\n {\"id\": \"A\", \"modified\": \"1\"},\n {\"id\": \"B\", \"modified\": \"2\"}\n]\n",
    )
    .unwrap();
    let got = items(&[array]);
    assert_eq!(got.len(), 2);
    assert!(got[1].0.ends_with("many.json#1"));
}

#[test]
fn skipping_resumes_at_the_same_record() {
    let path = testdata("history-sample.ndjson");
    let all = items(std::slice::from_ref(&path));
    let mut reader = InputReader::open(&[path]).unwrap();
    assert_eq!(reader.skip_records(50).unwrap(), 50);
    assert_eq!(reader.position(), 50);
    let next = reader.next_record().unwrap().unwrap();
    assert_eq!((next.location, next.item), all[50].clone());
}

#[test]
fn a_missing_path_fails_before_reading() {
    let err = InputReader::open(&[PathBuf::from("/nonexistent/x.json")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/x.json"));
}
