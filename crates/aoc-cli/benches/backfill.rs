//! The runner end to end on a generated revision feed (issue: ≥ 45,000 documents/s on SQLite,
//! within 1.4x of a bare PostgreSQL `COPY` of the same documents, peak RSS under 160 MiB whatever
//! the input size).
//!
//! `cargo bench -p aoc-cli --bench backfill` — `AOC_BENCH_DOCS` (default 200000) revisions built
//! from the real RustSec documents in `../shared/corpora` (or `testdata/` without it), each
//! advisory revised 5 times; `AOC_TEST_PG` adds the PostgreSQL run and the bare COPY baseline;
//! `AOC_BENCH_KEEP_FEED=PATH` keeps a copy of the generated feed; `AOC_BENCH_STELLA=PATH` times
//! another `stella` binary (an older build, for before/after numbers in the same conditions);
//! `AOC_BENCH_ROUNDS=N` (default 1) alternates N PostgreSQL backfills with N bare `\copy` runs
//! and reports the best and median ratio.

use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const REVISIONS: usize = 5;

fn base_documents() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = root.join("../shared/corpora/osv-rustsec");
    let dir = if corpus.is_dir() {
        corpus
    } else {
        root.join("testdata/osv-rustsec")
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Writes the feed (NDJSON revision lines, oldest first) and, for the COPY baseline, the same
/// documents in COPY text format (`id<TAB>doc`). Returns the feed's size in bytes.
fn generate(n: usize, feed: &Path, copy: &Path) -> u64 {
    let base = base_documents();
    let mut f = BufWriter::with_capacity(1 << 20, std::fs::File::create(feed).unwrap());
    let mut c = BufWriter::with_capacity(1 << 20, std::fs::File::create(copy).unwrap());
    let advisories = n.div_ceil(REVISIONS);
    // Revisions are spread: revision r of every advisory comes before revision r+1 of any.
    for i in 0..n {
        let (rev, adv) = (i / advisories, i % advisories);
        let mut doc = base[adv % base.len()].clone();
        let id = format!("{}-G{adv}", doc["id"].as_str().unwrap());
        doc["id"] = Value::String(id.clone());
        doc["modified"] = Value::String(format!("2024-01-{:02}T00:00:00Z", rev + 1));
        if let Some(d) = doc
            .get_mut("details")
            .and_then(|d| d.as_str().map(str::to_owned))
        {
            doc["details"] = Value::String(format!("{d}\n\nRevision {rev}."));
        }
        let line = serde_json::json!({"commit": format!("{i:040x}"), "committed_at": "2024-01-01T00:00:00Z", "path": format!("crates/{id}.json"), "document": doc});
        serde_json::to_writer(&mut f, &line).unwrap();
        f.write_all(b"\n").unwrap();
        let text = serde_json::to_string(&line["document"]).unwrap();
        writeln!(c, "{id}\t{}", text.replace('\\', "\\\\")).unwrap();
    }
    f.flush().unwrap();
    c.flush().unwrap();
    std::fs::metadata(feed).unwrap().len()
}

struct Result {
    secs: f64,
    rss_mib: f64,
}

/// Flushes dirty pages (`sync`, timed and printed) so that one phase's writeback is never billed
/// to the next: each phase writes gigabytes and this VM's disk writes back at tens of MB/s.
fn settle() {
    let t = Instant::now();
    let st = Command::new("sync").status().expect("sync");
    assert!(st.success());
    println!(
        "(sync before the next phase: {:.1} s)",
        t.elapsed().as_secs_f64()
    );
}

fn backfill(store: &str, feed: &Path, dir: &Path) -> Result {
    settle();
    let report = dir.join("report.json");
    let t = Instant::now();
    let out = Command::new(stella())
        .args([
            "aoc",
            "backfill",
            "--no-progress",
            "--store",
            store,
            "--report",
        ])
        .arg(&report)
        .arg("--from")
        .arg(feed)
        .env("SOURCE_DATE_EPOCH", "1764000000")
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    Result {
        secs,
        rss_mib: r["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
    }
}

/// The binary under test: this build's, unless `AOC_BENCH_STELLA` names another.
fn stella() -> PathBuf {
    std::env::var_os("AOC_BENCH_STELLA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stella")))
}

fn psql(url: &str, sql: &str) {
    let st = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("psql");
    assert!(st.success(), "psql {sql}");
}

fn main() {
    let n: usize = std::env::var("AOC_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let (feed, copy) = (dir.path().join("feed.ndjson"), dir.path().join("copy.txt"));
    let bytes = generate(n, &feed, &copy);
    if let Some(keep) = std::env::var_os("AOC_BENCH_KEEP_FEED") {
        // For profiling a single engine by hand: the feed, and nothing else, is copied out.
        std::fs::copy(&feed, &keep).unwrap();
        println!("feed copied to {}", Path::new(&keep).display());
    }
    println!(
        "feed: {n} revisions ({} advisories x {REVISIONS}), {:.0} MB, {:.1} KB/document",
        n.div_ceil(REVISIONS),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64 / 1e3
    );

    let sqlite = backfill(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        &feed,
        dir.path(),
    );
    println!(
        "SQLite      stella aoc backfill  {:>7.1} s  {:>8.0} docs/s  peak RSS {:>5.0} MiB",
        sqlite.secs,
        n as f64 / sqlite.secs,
        sqlite.rss_mib
    );

    let Ok(base) = std::env::var("AOC_TEST_PG") else {
        println!(
            "PostgreSQL: skipped (set AOC_TEST_PG, e.g. via scripts/pg-test-cluster.sh start)"
        );
        return;
    };
    // Rounds alternate the backfill and the bare \copy, each into a database of its own, so that
    // a busy machine weighs on both alike; the ratio is reported per round, best and median.
    let rounds: usize = std::env::var("AOC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let db = format!("aoc_bench_{}_{round}", std::process::id());
        psql(&base, &format!("CREATE DATABASE {db}"));
        let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
        let pg = backfill(&url, &feed, dir.path());
        println!(
            "PostgreSQL  stella aoc backfill  {:>7.1} s  {:>8.0} docs/s  peak RSS {:>5.0} MiB",
            pg.secs,
            n as f64 / pg.secs,
            pg.rss_mib
        );
        psql(&base, &format!("DROP DATABASE {db}"));
        psql(&base, &format!("CREATE DATABASE {db}"));
        psql(&url, "CREATE TABLE bare (id text, doc jsonb)");
        settle();
        let t = Instant::now();
        psql(
            &url,
            &format!("\\copy bare (id, doc) FROM '{}'", copy.display()),
        );
        let copy_secs = t.elapsed().as_secs_f64();
        println!(
            "PostgreSQL  bare \\copy into (id text, doc jsonb)  {:>7.1} s  {:>8.0} docs/s",
            copy_secs,
            n as f64 / copy_secs
        );
        psql(&base, &format!("DROP DATABASE {db}"));
        ratios.push(pg.secs / copy_secs);
        println!(
            "round {round}/{rounds}: ratio backfill/COPY on PostgreSQL {:.2}x (target <= 1.40x)",
            pg.secs / copy_secs
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio backfill/COPY on PostgreSQL over {rounds} round(s): best {:.2}x, median {:.2}x (target <= 1.40x)",
        ratios[0],
        ratios[ratios.len() / 2]
    );
}
