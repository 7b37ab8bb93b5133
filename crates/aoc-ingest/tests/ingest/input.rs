//! The source over real files: pretty JSON, arrays, NDJSON feeds (plain, .zst, .gz), stdin-like
//! broken lines, deletions, and the positions a checkpoint resumes from.

use crate::testdata;
use aoc_ingest::{Item, Source};
use std::io::Write;
use std::path::PathBuf;

fn items(paths: &[PathBuf]) -> Vec<(String, Item)> {
    Source::open(paths, &[])
        .unwrap()
        .map(|r| r.unwrap())
        .map(|r| (r.location, r.item.parse()))
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
fn seeking_to_any_recorded_position_reads_exactly_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // Every kind of file the source reads itself, in one run: a directory of pretty documents,
    // a plain feed, the same feed compressed, an array file and a one-line array.
    let array = dir.path().join("many.json");
    std::fs::write(
        &array,
        "[\n {\"id\": \"A\", \"modified\": \"1\"},\n {\"id\": \"B\", \"modified\": \"2\"}\n]\n",
    )
    .unwrap();
    let line_array = dir.path().join("line.ndjson");
    std::fs::write(
        &line_array,
        "[{\"id\":\"C\"},{\"id\":\"D\"},{\"id\":\"E\"}]\n{\"id\":\"F\"}\n\n{\"id\":\"G\"}\n",
    )
    .unwrap();
    let paths = vec![
        testdata("osv-rustsec"),
        testdata("history-sample.ndjson"),
        array,
        testdata("history-sample.ndjson.zst"),
        line_array,
    ];
    let mut source = Source::open(&paths, &[]).unwrap();
    let mut all = Vec::new();
    let mut positions = vec![source.at()];
    while let Some(r) = source.next_record().unwrap() {
        all.push((r.location, r.item.parse()));
        positions.push(source.at());
    }
    assert_eq!(all.len(), 5 + 121 + 2 + 121 + 5);
    assert_eq!(source.records_read(), all.len() as u64);
    for (k, at) in positions.iter().enumerate() {
        // What a checkpoint stores, and what the resumed run reads back.
        let at: aoc_ingest::Position =
            serde_json::from_str(&serde_json::to_string(at).unwrap()).unwrap();
        let mut resumed = Source::open(&paths, &[]).unwrap();
        resumed.seek(&at).unwrap();
        let rest: Vec<(String, Item)> = resumed
            .by_ref()
            .map(|r| r.unwrap())
            .map(|r| (r.location, r.item.parse()))
            .collect();
        assert_eq!(rest, all[k..], "resumed after record {k} at {at:?}");
        assert_eq!(
            resumed.records_read(),
            (all.len() - k) as u64,
            "nothing before the position is read again"
        );
        assert_eq!(resumed.at().records, all.len() as u64);
    }
}

#[test]
fn a_position_the_inputs_do_not_have_is_refused() {
    let path = testdata("history-sample.ndjson");
    let mut source = Source::open(std::slice::from_ref(&path), &[]).unwrap();
    let mut at = source.at();
    at.input = 3;
    assert!(source.seek(&at).is_err());
    let mut source = Source::open(std::slice::from_ref(&path), &[]).unwrap();
    at.input = 0;
    at.within.offset = 10_000_000;
    let err = source.seek(&at).unwrap_err().to_string();
    assert!(err.contains("resume point"), "{err}");
}

#[test]
fn a_missing_path_fails_before_reading() {
    let err = Source::open(&[PathBuf::from("/nonexistent/x.json")], &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/x.json"));
}
