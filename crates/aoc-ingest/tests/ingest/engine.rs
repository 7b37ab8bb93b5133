//! Every input kind through the one source and the one pipeline: a directory of OSV files, an
//! NDJSON revision feed plain, `.zst` and `.gz`, a JSON array file and a released dataset tarball,
//! in one run. Seeking to any position the source reports reads exactly the records after it,
//! whatever kind of input it falls in; the engine loads them all with balanced accounting.

use crate::testdata;
use aoc_ingest::{Backfill, Item, Position, Source};
use aoc_store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};

const EPOCH: i64 = 1_764_000_000;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let gz = dir.join("feed.ndjson.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(testdata("history-sample.ndjson")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    let array = dir.join("many.json");
    std::fs::write(
        &array,
        r#"[{"id": "A-1", "modified": "2024-01-01T00:00:00Z"}, {"id": "A-2", "modified": "2024-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let mut opts = aoc_dataset::BuildOptions::new(dir.join("dataset"));
    opts.source_date_epoch = Some(EPOCH);
    opts.tenant = Some("other".into());
    let dataset = aoc_dataset::build_from_inputs(&[testdata("history-sample.ndjson")], &opts)
        .unwrap()
        .archive;
    vec![
        testdata("osv-rustsec"),
        testdata("history-sample.ndjson"),
        dataset,
        testdata("history-sample.ndjson.zst"),
        gz,
        array,
    ]
}

fn open(paths: &[PathBuf]) -> Source {
    Source::open(paths, &[&aoc_dataset::Datasets::default()]).unwrap()
}

fn key(item: Item) -> String {
    match item.parse() {
        Item::Verified(stored) => stored.json().to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_input_kind_reads_through_one_source_and_seeks_from_any_position() {
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let mut source = open(&paths);
    assert_eq!(
        source.labels().len(),
        1,
        "the dataset is labelled with its hash"
    );
    let mut all = Vec::new();
    let mut positions = vec![source.at()];
    while let Some(r) = source.next_record().unwrap() {
        all.push((r.location, key(r.item)));
        positions.push(source.at());
    }
    assert_eq!(all.len(), 5 + 121 + 121 + 121 + 121 + 2);
    assert!(all.iter().any(|(l, _)| l.contains(".tar.gz!data/other/")));
    for (k, at) in positions.iter().enumerate() {
        let at: Position = serde_json::from_str(&serde_json::to_string(at).unwrap()).unwrap();
        let mut resumed = open(&paths);
        resumed.seek(&at).unwrap();
        let rest: Vec<(String, String)> = resumed
            .by_ref()
            .map(|r| r.unwrap())
            .map(|r| (r.location, key(r.item)))
            .collect();
        assert_eq!(rest, all[k..], "resumed after record {k} at {at:?}");
        assert_eq!(resumed.records_read(), (all.len() - k) as u64);
    }
}

#[test]
fn the_pipeline_loads_every_input_kind_with_balanced_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let paths = inputs(dir.path());
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut store = Store::open(&url).unwrap();
    let mut engine = Backfill::new("default", EPOCH);
    engine.run_key = Some("engine-test".into());
    let outcome = engine.run(&mut open(&paths), Some(&mut store)).unwrap();
    let r = &outcome.report;
    assert_eq!(r.records, 491);
    assert_eq!(r.read, 491);
    assert_eq!(
        r.written + r.noop + r.rejected + r.deletions,
        r.records,
        "{r:?}"
    );
    assert_eq!(r.rejected, 0, "{:?}", outcome.rejections);
    // The feed three times (plain, .zst, .gz) is one history: the copies are no-ops. The dataset
    // is the same history for another tenant: all written.
    assert_eq!(store.counts().unwrap().documents as u64, r.written);
    outcome.mark_complete(&mut store).unwrap();
    // The same arguments again start afresh (the run was complete) and write nothing.
    let again = engine.run(&mut open(&paths), Some(&mut store)).unwrap();
    assert_eq!(again.report.resumed_after_records, 0);
    assert_eq!((again.report.written, again.report.read), (0, 491));
}

/// `Backfill::stop`, set after the third batch commits (from the progress event, as a signal
/// handler would set it), ends the run before the fourth: exactly three batches are in the store
/// and the checkpoint, the rejects journal holds exactly their rejections under its final name,
/// and the same run resumes after them to the uninterrupted totals.
#[test]
fn a_stop_request_ends_the_run_at_the_next_batch_boundary_and_the_run_resumes() {
    use aoc_ingest::engine::Rejects;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.ndjson");
    let mut text = String::new();
    for (i, line) in std::fs::read_to_string(testdata("history-sample.ndjson"))
        .unwrap()
        .lines()
        .enumerate()
    {
        if i % 7 == 3 {
            text.push_str("{broken\n");
        }
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&feed, text).unwrap();
    let rejects = dir.path().join("rejects.ndjson");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut store = Store::open(&url).unwrap();
    let stop = AtomicBool::new(false);
    let stop_after_three = |event: aoc_ingest::Event| {
        if let aoc_ingest::Event::Progress(records) = event {
            if records >= 30 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    };
    let mut engine = Backfill::new("default", EPOCH);
    engine.batch_size = 10;
    engine.run_key = Some("stop-test".into());
    engine.rejects = Rejects::File(rejects.clone());
    engine.events = Some(&stop_after_three);
    engine.stop = Some(&stop);
    let open_feed = || Source::open(std::slice::from_ref(&feed), &[]).unwrap();
    let Err(err) = engine.run(&mut open_feed(), Some(&mut store)) else {
        panic!("the run was not stopped")
    };
    let committed = err.committed().expect("says what was committed").clone();
    assert!(
        matches!(err, aoc_ingest::EngineError::Interrupted(_)),
        "{err}"
    );
    assert_eq!(
        (committed.records, committed.batches),
        (30, 3),
        "{committed:?}"
    );
    let broken_in_30 = 30 / 8 + 1; // one broken line before every 7 revisions, from the 4th
    assert_eq!(committed.rejected, broken_in_30 as u64);
    assert_eq!(
        committed.written + committed.noop + committed.rejected + committed.deletions,
        30
    );
    assert_eq!(
        store.counts().unwrap().documents as u64,
        committed.written,
        "only whole batches are in the store"
    );
    assert!(!dir.path().join("rejects.ndjson.partial").exists());
    let journal = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(journal.lines().count() as u64, committed.rejected);
    assert!(
        err.to_string()
            .contains("30 records committed (batches 1-3 of this run"),
        "{err}"
    );

    // The same run again, not stopped: resumes after the 30 records and ends complete.
    stop.store(false, Ordering::SeqCst);
    engine.events = None;
    let resumed = engine.run(&mut open_feed(), Some(&mut store)).unwrap();
    assert_eq!(resumed.report.resumed_after_records, 30);
    let mut fresh = Backfill::new("default", EPOCH);
    fresh.batch_size = 10;
    let other = dir.path().join("other.db");
    let mut reference = Store::open(&format!("sqlite://{}", other.display())).unwrap();
    let uninterrupted = fresh.run(&mut open_feed(), Some(&mut reference)).unwrap();
    for (a, b) in [
        (resumed.report.written, uninterrupted.report.written),
        (resumed.report.rejected, uninterrupted.report.rejected),
        (resumed.report.records, uninterrupted.report.records),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap().lines().count() as u64,
        uninterrupted.report.rejected
    );
}
