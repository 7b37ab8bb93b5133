//! `stella aoc backfill --from` a released dataset tarball against the same backfill from the
//! dataset's own records as uncompressed NDJSON (issue: within 1.3x: the dataset's verification
//! overlaps the load instead of preceding it), in the same run, into fresh stores.
//!
//! `cargo bench -p aoc-cli --bench dataset` — `AOC_BENCH_DATASET_MB` (default 500) MB of revision
//! feed (copies of `testdata/history-sample.ndjson` with the advisory ids made unique per copy;
//! 500 MB gives the 744 MB, 267,652-record benchmark dataset), built once into `target/` and kept
//! there; `AOC_TEST_PG` adds PostgreSQL; `AOC_BENCH_STELLA=PATH` times another `stella` binary.

use aoc_dataset::{build_from_inputs, BuildOptions, Dataset};
use serde_json::Value;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const EPOCH: i64 = 1_764_000_000;
const ROUNDS: usize = 2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The benchmark dataset and its records as NDJSON, built once per size and kept in `target/`.
fn dataset(mb: u64) -> (PathBuf, PathBuf, u64) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-dataset-{mb}mb"));
    let ndjson = dir.join("records.ndjson");
    let built = dir.join("built");
    if let Some(archive) = std::fs::read_dir(&built).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
    }) {
        if ndjson.is_file() {
            let records = std::io::BufReader::new(std::fs::File::open(&ndjson).unwrap())
                .lines()
                .count() as u64;
            return (archive, ndjson, records);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    let feed = dir.join("feed.ndjson");
    let template = std::fs::read_to_string(root().join("testdata/history-sample.ndjson")).unwrap();
    let mut w = BufWriter::new(std::fs::File::create(&feed).unwrap());
    let (mut written, mut copy) = (0u64, 0u32);
    while written < mb * 1_000_000 {
        let tag = format!("RUSTSEC-C{copy:05}-");
        for line in template.lines() {
            let line = line.replace("RUSTSEC-", &tag);
            w.write_all(line.as_bytes()).unwrap();
            w.write_all(b"\n").unwrap();
            written += line.len() as u64 + 1;
        }
        copy += 1;
    }
    w.flush().unwrap();
    drop(w);
    let opts = BuildOptions {
        source_date_epoch: Some(EPOCH),
        ..BuildOptions::new(&built)
    };
    let report =
        build_from_inputs(std::slice::from_ref(&feed), &opts).expect("building the dataset");
    std::fs::remove_file(&feed).unwrap();
    // The dataset's own records, byte for byte as its data files hold them, in one file.
    let mut w = BufWriter::new(std::fs::File::create(&ndjson).unwrap());
    let mut records = 0u64;
    for r in Dataset::open_verified(&report.archive)
        .unwrap()
        .records()
        .unwrap()
    {
        w.write_all(r.unwrap().stored.json().as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        records += 1;
    }
    w.flush().unwrap();
    println!(
        "built the dataset from {:.0} MB of feed in {:.1} s",
        written as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    (report.archive, ndjson, records)
}

fn stella() -> PathBuf {
    std::env::var_os("AOC_BENCH_STELLA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stella")))
}

/// One backfill into a fresh store: seconds and peak RSS (MiB).
fn backfill(store: &str, from: &Path, dir: &Path) -> (f64, f64) {
    let st = Command::new("sync").status().expect("sync");
    assert!(st.success());
    let report = dir.join("report.json");
    let t = Instant::now();
    let out = Command::new(stella())
        .args(["aoc", "backfill", "--no-progress", "--store", store])
        .arg("--report")
        .arg(&report)
        .arg("--from")
        .arg(from)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .env_remove("DATASET_HASH")
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    (
        secs,
        r["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
    )
}

fn psql(url: &str, sql: &str) {
    let st = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("psql");
    assert!(st.success(), "psql {sql}");
}

fn main() {
    let mb: u64 = std::env::var("AOC_BENCH_DATASET_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (archive, ndjson, records) = dataset(mb);
    println!(
        "dataset: {records} records, {:.0} MB of NDJSON in a {:.0} MB {}",
        std::fs::metadata(&ndjson).unwrap().len() as f64 / 1e6,
        std::fs::metadata(&archive).unwrap().len() as f64 / 1e6,
        archive.file_name().unwrap().to_string_lossy()
    );
    let mut engines = vec![("SQLite", None)];
    if let Ok(base) = std::env::var("AOC_TEST_PG") {
        engines.push(("PostgreSQL", Some(base)));
    } else {
        println!("PostgreSQL: skipped (set AOC_TEST_PG)");
    }
    for (engine, pg) in engines {
        let (mut from_ndjson, mut from_dataset) = (f64::MAX, f64::MAX);
        let (mut rss_ndjson, mut rss_dataset) = (0f64, 0f64);
        for round in 0..ROUNDS {
            // Alternated, so both see the same machine state.
            for (which, from) in [("ndjson", &ndjson), ("dataset", &archive)] {
                let dir = tempfile::tempdir().unwrap();
                let url = match &pg {
                    None => format!("sqlite://{}", dir.path().join("bench.db").display()),
                    Some(base) => {
                        let db = format!("aoc_bench_ds_{}_{round}_{which}", std::process::id());
                        psql(base, &format!("CREATE DATABASE {db}"));
                        format!("{}/{db}", base.rsplit_once('/').unwrap().0)
                    }
                };
                let (secs, rss) = backfill(&url, from, dir.path());
                if let Some(base) = &pg {
                    let db = url.rsplit_once('/').unwrap().1;
                    psql(base, &format!("DROP DATABASE {db}"));
                }
                println!(
                    "{engine:<10}  --from {which:<7}  {secs:>7.1} s  {:>8.0} records/s  peak RSS {rss:>4.0} MiB",
                    records as f64 / secs
                );
                if which == "ndjson" {
                    from_ndjson = from_ndjson.min(secs);
                    rss_ndjson = rss_ndjson.max(rss);
                } else {
                    from_dataset = from_dataset.min(secs);
                    rss_dataset = rss_dataset.max(rss);
                }
            }
        }
        println!(
            "{engine}: dataset {from_dataset:.1} s vs its NDJSON {from_ndjson:.1} s (fastest of {ROUNDS}): {:.2}x (target <= 1.30x); peak RSS {rss_dataset:.0} vs {rss_ndjson:.0} MiB",
            from_dataset / from_ndjson
        );
    }
}
