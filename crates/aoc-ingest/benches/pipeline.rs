//! Map + guard + hash throughput against a bare `serde_json` parse of the same bytes (issue: the
//! full pipeline within 2x of the bare parse). Input: every document in `../shared/corpora`
//! (RustSec OSV files, CSAF examples, and every revision in the RustSec history feed).
//!
//! Run: `cargo bench -p aoc-ingest --bench pipeline` (AOC_CORPORA overrides the corpus folder).

use aoc_contract::{GuardOptions, MapContext};
use aoc_ingest::{InputRecord, Item, Prepared, Preparer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> Vec<Vec<u8>> {
    let root = std::env::var_os("AOC_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    let mut docs = Vec::new();
    for dir in ["osv-rustsec", "csaf-2.0-examples"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{}: {e} (set AOC_CORPORA)", root.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        docs.extend(
            files
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .map(|p| std::fs::read(p).unwrap()),
        );
    }
    let feed =
        zstd::decode_all(std::fs::File::open(root.join("osv-rustsec-history.ndjson.zst")).unwrap())
            .unwrap();
    for line in feed.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        if let Some(doc) = v.get("document") {
            docs.push(serde_json::to_vec_pretty(doc).unwrap());
        }
    }
    docs
}

fn bare(docs: &[Vec<u8>]) -> usize {
    docs.iter()
        .map(|d| {
            serde_json::from_slice::<Value>(d)
                .unwrap()
                .as_object()
                .map_or(0, |m| m.len())
        })
        .sum()
}

fn pipeline(docs: &[Vec<u8>], preparer: &mut Preparer) -> usize {
    let mut ok = 0;
    for d in docs {
        let doc: Value = serde_json::from_slice(d).unwrap();
        let record = InputRecord {
            location: String::new(),
            item: Item::Upstream {
                doc,
                retrieved_at: None,
            },
        };
        if let Prepared::Doc { .. } = preparer.prepare(record) {
            ok += 1;
        }
    }
    ok
}

/// Rounds of each side, interleaved.
const ROUNDS: usize = 15;

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().expect("at least one round")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let docs = corpus();
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let ctx = MapContext {
        tenant: "bench".into(),
        vendor: None,
        connector_version: "bench".into(),
        retrieved_at: "2026-01-01T00:00:00Z".into(),
        ingested_at: "2026-01-01T00:00:00Z".into(),
    };
    let mut preparer = Preparer::new(ctx.clone(), GuardOptions::default());
    assert_eq!(
        pipeline(&docs, &mut preparer),
        docs.len(),
        "every corpus document maps and passes the guard"
    );
    let (mut t_bare, mut t_pipe) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Interleaved, so both see the same machine state.
        let t = Instant::now();
        std::hint::black_box(bare(&docs));
        t_bare.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(pipeline(&docs, &mut preparer));
        t_pipe.push(t.elapsed());
    }
    // The fastest round of each is the one least disturbed by other work on the machine (a
    // shared two-core box); the medians are printed too.
    let (b, p) = (min(&t_bare), min(&t_pipe));
    let mbs = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let dps = |d: Duration| docs.len() as f64 / d.as_secs_f64();
    println!(
        "corpus: {} documents, {:.1} MB (pretty-printed JSON), {ROUNDS} interleaved rounds",
        docs.len(),
        bytes as f64 / 1e6
    );
    println!(
        "bare serde_json parse      {:>8.1} MB/s {:>9.0} docs/s",
        mbs(b),
        dps(b)
    );
    println!(
        "parse+map+guard+hash       {:>8.1} MB/s {:>9.0} docs/s",
        mbs(p),
        dps(p)
    );
    println!(
        "ratio pipeline/bare: {:.2}x fastest rounds, {:.2}x medians (target <= 2.00x)",
        p.as_secs_f64() / b.as_secs_f64(),
        median(t_pipe).as_secs_f64() / median(t_bare).as_secs_f64()
    );
}
