//! Packing throughput: our one-pass tar + SHA-256 + parallel gzip / zstd against the shell
//! pipelines a release script would use (`tar | pigz -6`, `tar | zstd -3 -T2`, plus `sha256sum` of
//! the members, since our pack hashes every member in the same pass).
//!
//! Run: `cargo bench -p aoc-archive --bench pack` (`AOC_BENCH_MB=500` for more input). The input
//! is ~20 NDJSON files of RustSec OSV advisories (`$AOC_CORPORA/osv-rustsec`, default
//! `../shared/corpora` beside the workspace; minified, with varied ids),
//! read once beforehand so every contender starts from a warm page cache. Rounds are interleaved
//! and medians reported. The pipelines end with `sync FILE` because our pack fsyncs its output
//! before the atomic rename.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aoc_archive::{entries_from_dir, pack, sha256_files_parallel, Compression};

const FILES: usize = 20;
const ROUNDS: usize = 3;
const EPOCH: u64 = 1_700_000_000;

/// Runs once and returns the archive's size in bytes.
type Contender<'a> = Box<dyn Fn() -> u64 + 'a>;

fn main() {
    let target_mb: usize = std::env::var("AOC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let input = tmp.path().join("input");
    let total = generate(&input, target_mb * 1_000_000);
    let mb = total as f64 / 1e6;
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = fs::read_dir(&input)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    sha256_files_parallel(&files).expect("warming the page cache");
    println!("input: {mb:.1} MB in {} NDJSON files", files.len());

    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let pigz = have("pigz");
    if !pigz {
        println!("pigz not installed (apt-get install -y pigz): skipping the gzip baseline");
    }

    let out = tmp.path();
    let none: &[PathBuf] = &[];
    let mut contenders: Vec<(&str, Contender<'_>)> = vec![
        (
            "aoc-archive tar.gz (+sha256)",
            Box::new(|| ours(&input, &out.join("ours.tar.gz"), Compression::Gzip)),
        ),
        (
            "aoc-archive tar.zst (+sha256)",
            Box::new(|| ours(&input, &out.join("ours.tar.zst"), Compression::Zstd)),
        ),
        (
            "tar | zstd -3 -T2 ; sha256sum",
            Box::new(|| pipeline(&input, "zstd -q -3 -T2", &out.join("base.tar.zst"), &files)),
        ),
        (
            "tar | zstd -3 -T2 (no hashing)",
            Box::new(|| pipeline(&input, "zstd -q -3 -T2", &out.join("base.tar.zst"), none)),
        ),
    ];
    if pigz {
        contenders.push((
            "tar | pigz -6 ; sha256sum",
            Box::new(|| pipeline(&input, "pigz -6", &out.join("base.tar.gz"), &files)),
        ));
        contenders.push((
            "tar | pigz -6 (no hashing)",
            Box::new(|| pipeline(&input, "pigz -6", &out.join("base.tar.gz"), none)),
        ));
    }
    // Where our own time goes without compression: reading, hashing and tar framing.
    contenders.push((
        "aoc-archive plain tar (+sha256)",
        Box::new(|| ours(&input, &out.join("ours.tar"), Compression::None)),
    ));
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    let mut sizes = vec![0u64; contenders.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in contenders.iter().enumerate() {
            let start = Instant::now();
            sizes[i] = run();
            times[i].push(start.elapsed());
        }
    }
    let median = |t: &Vec<Duration>| {
        let mut t = t.clone();
        t.sort();
        t[t.len() / 2]
    };
    let medians: Vec<Duration> = times.iter().map(median).collect();
    println!(
        "{:<34} {:>9} {:>9} {:>10} {:>8}",
        "contender", "seconds", "MB/s", "out MB", "ratio"
    );
    for (i, (name, _)) in contenders.iter().enumerate() {
        let secs = medians[i].as_secs_f64();
        println!(
            "{name:<34} {secs:>9.2} {:>9.1} {:>10.1} {:>8.3}",
            mb / secs,
            sizes[i] as f64 / 1e6,
            sizes[i] as f64 / total as f64
        );
    }
    let speedup =
        |ours: usize, base: usize| medians[base].as_secs_f64() / medians[ours].as_secs_f64();
    println!(
        "zstd: ours is {:.2}x the pipeline with sha256sum, {:.2}x without",
        speedup(1, 2),
        speedup(1, 3)
    );
    if pigz {
        println!(
            "gzip: ours is {:.2}x the pipeline with sha256sum, {:.2}x without",
            speedup(0, 4),
            speedup(0, 5)
        );
    }
}

fn ours(input: &Path, out: &Path, compression: Compression) -> u64 {
    let entries = entries_from_dir(input, "").expect("listing input");
    let report = pack(entries, out, compression, EPOCH).expect("pack");
    report.archive_bytes
}

fn pipeline(input: &Path, compressor: &str, out: &Path, files: &[PathBuf]) -> u64 {
    let script = format!(
        "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '{}' -cf - . | {compressor} > '{out}' && sync '{out}'",
        input.display(),
        out = out.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .status()
        .expect("sh");
    assert!(status.success(), "{script}");
    let sums = Command::new("sha256sum")
        .args(files)
        .output()
        .expect("sha256sum");
    assert!(sums.status.success());
    fs::metadata(out).unwrap().len()
}

/// Index `k` of pass `pass` under a pass-specific permutation `k * a + pass mod len`.
fn permuted(k: usize, pass: usize, len: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut a = 1 + pass * 7919 % len.max(1);
    while gcd(a, len) != 1 {
        a += 1;
    }
    (k * a + pass) % len
}

/// The shared corpora: `AOC_CORPORA`, else `../shared/corpora` beside the workspace.
fn corpora() -> PathBuf {
    std::env::var_os("AOC_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"))
}

/// Writes about `target` bytes of NDJSON: the corpus documents, minified, one per line, cycled
/// with a distinct id per line, spread over [`FILES`] files.
fn generate(dir: &Path, target: usize) -> u64 {
    fs::create_dir_all(dir).unwrap();
    let mut docs: Vec<(String, String)> = Vec::new();
    let corpus = corpora().join("osv-rustsec");
    let mut paths: Vec<PathBuf> = fs::read_dir(&corpus)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
    paths.sort();
    for path in paths {
        let value: serde_json::Value = match serde_json::from_slice(&fs::read(&path).unwrap()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let id = value["id"].as_str().unwrap_or("UNKNOWN").to_owned();
        docs.push((
            serde_json::to_string(&value).unwrap(),
            format!("\"id\":\"{id}\""),
        ));
    }
    if docs.is_empty() {
        println!(
            "corpus {} not found (set AOC_CORPORA): using a synthetic advisory",
            corpus.display()
        );
        docs.push((
            r#"{"id":"RUSTSEC-0000-0000","summary":"synthetic advisory","affected":[{"package":{"ecosystem":"crates.io","name":"x"}}]}"#.to_owned(),
            r#""id":"RUSTSEC-0000-0000""#.to_owned(),
        ));
    }
    let per_file = target / FILES;
    let mut written = 0u64;
    let mut n = 0usize;
    for f in 0..FILES {
        let mut out =
            BufWriter::new(File::create(dir.join(format!("advisories-{f:02}.ndjson"))).unwrap());
        let mut size = 0;
        while size < per_file {
            // Each pass over the corpus visits it in a different order, so that repeats are not
            // a fixed distance apart (which would flatter zstd's long-range matching).
            let revision = n / docs.len();
            let (doc, id_field) = &docs[permuted(n % docs.len(), revision, docs.len())];
            let varied = id_field.replacen("\"id\":\"", &format!("\"id\":\"R{revision}-"), 1);
            let line = doc.replacen(id_field.as_str(), &varied, 1);
            out.write_all(line.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
            size += line.len() + 1;
            n += 1;
        }
        out.flush().unwrap();
        written += size as u64;
    }
    written
}
