//! Pack-phase benchmark: ≥ 500 MB of real raw documents (the RustSec history, ids varied per
//! copy) exported to NDJSON, then our pack (manifest + content hash + deterministic .tar.gz /
//! .tar.zst, atomic) against `tar --sort=name ... | pigz -6` / `| zstd -3 -T2` plus `sha256sum`,
//! measured in the same run. MB = 10^6 bytes of NDJSON.
//!
//! `AOC_BENCH_MB` (default 500) sets the size; `cargo bench -p aoc-dataset --bench build`. The
//! history comes from `$AOC_CORPORA` (default `../shared/corpora` beside the workspace), else the
//! seed in `seed/`.

use aoc_archive::Compression;
use aoc_dataset::{build_from_inputs, pack_export, BuildOptions, Dataset, Exporter, SourceInfo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const EPOCH: u64 = 1_764_000_000;

fn main() {
    let target_mb: u64 = std::env::var("AOC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The shared corpora: `AOC_CORPORA`, else `../shared/corpora` beside the workspace.
    let corpora = std::env::var_os("AOC_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpora"));
    let corpus = corpora.join("osv-rustsec-history.ndjson.zst");
    let input = if corpus.exists() {
        corpus
    } else {
        root.join("seed/rustsec-seed.ndjson.zst")
    };
    let tmp = tempfile::tempdir().expect("temporary directory");

    // Real raw documents: every revision of the corpus, mapped and guarded.
    let seed_opts = BuildOptions {
        source_date_epoch: Some(EPOCH as i64),
        ..BuildOptions::new(tmp.path().join("seed"))
    };
    let seed = build_from_inputs(std::slice::from_ref(&input), &seed_opts)
        .expect("building the corpus dataset");
    let lines: Vec<(String, String)> = Dataset::open_verified(&seed.archive)
        .expect("corpus dataset verifies")
        .records()
        .expect("reading the corpus dataset")
        .map(|r| {
            let r = r.expect("a corpus record");
            (
                r.stored.key().upstream_id.clone(),
                r.stored.json().to_owned(),
            )
        })
        .collect();
    let corpus_bytes: u64 = lines.iter().map(|(_, l)| l.len() as u64 + 1).sum();
    eprintln!(
        "corpus: {} ({} records, {:.1} MB per copy)",
        input.display(),
        lines.len(),
        corpus_bytes as f64 / 1e6
    );

    // Export phase: copies with distinct ids until the target size, through the real exporter.
    let export_dir = tmp.path().join("export");
    let t = Instant::now();
    let mut exporter = Exporter::new(&export_dir, aoc_dataset::DEFAULT_SPLIT_BYTES).unwrap();
    let mut written = 0u64;
    let mut copy = 0u32;
    while written < target_mb * 1_000_000 {
        let tag = format!("RUSTSEC-C{copy:05}-");
        for (id, line) in &lines {
            let line = line.replace("RUSTSEC-", &tag);
            let id = id.replace("RUSTSEC-", &tag);
            exporter
                .push("default", "rustsec", &id, line.as_bytes())
                .unwrap();
            written += line.len() as u64 + 1;
        }
        copy += 1;
    }
    let export = exporter.finish().unwrap();
    let export_secs = t.elapsed().as_secs_f64();
    let mb = export.bytes() as f64 / 1e6;
    eprintln!(
        "dataset: {:.0} MB NDJSON, {} records, {} files ({} copies); export (write + sha256 + counts): {:.2}s = {:.0} MB/s",
        mb,
        export.records(),
        export.files.len(),
        copy,
        export_secs,
        mb / export_secs
    );
    drop(lines);

    let source = SourceInfo::Store {
        engine: "bench".into(),
    };
    let ours = |compression: Compression, dir: &str| {
        let opts = BuildOptions {
            compression,
            source_date_epoch: Some(EPOCH as i64),
            ..BuildOptions::new(tmp.path().join(dir))
        };
        let t = Instant::now();
        let report = pack_export(&export, source.clone(), None, EPOCH, &opts).expect("pack");
        (t.elapsed().as_secs_f64(), report)
    };
    let sh = |script: &str| {
        let t = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&export_dir)
            .status()
            .expect("sh");
        assert!(status.success(), "{script} failed");
        t.elapsed().as_secs_f64()
    };
    let files: Vec<String> = export.files.iter().map(|f| f.path.clone()).collect();
    let tar = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - data";
    let sums = format!("sha256sum {} > /dev/null", files.join(" "));
    let out = tmp.path().join("baseline");
    std::fs::create_dir_all(&out).unwrap();

    // Interleaved: ours, baseline, ours again (determinism), for each compression.
    let (gz1, gz_report) = ours(Compression::Gzip, "gz1");
    let pigz = sh(&format!("{tar} | pigz -6 > {}/b.tar.gz", out.display()));
    let sha = sh(&sums);
    let (gz2, gz_report2) = ours(Compression::Gzip, "gz2");
    let (zst1, zst_report) = ours(Compression::Zstd, "zst1");
    let zstd = sh(&format!(
        "{tar} | zstd -q -3 -T2 > {}/b.tar.zst",
        out.display()
    ));
    let sha2 = sh(&sums);
    let (zst2, zst_report2) = ours(Compression::Zstd, "zst2");
    let t = Instant::now();
    aoc_archive::sha256_files_parallel(
        &export
            .files
            .iter()
            .map(|f| &f.disk_path)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let rehash = t.elapsed().as_secs_f64();

    let gz_same = gz_report.archive_sha256 == gz_report2.archive_sha256;
    let zst_same = zst_report.archive_sha256 == zst_report2.archive_sha256;
    assert_eq!(gz_report.hash, zst_report.hash);
    if std::env::var_os("AOC_BENCH_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    let size = |p: PathBuf| std::fs::metadata(p).unwrap().len() as f64;
    let (b_gz, b_zst) = (size(out.join("b.tar.gz")), size(out.join("b.tar.zst")));
    let gz = gz1.min(gz2);
    let zs = zst1.min(zst2);
    let sha_best = sha.min(sha2);
    println!(
        "\naoc-dataset pack phase, {mb:.0} MB of NDJSON ({} files), best of 2 for ours:",
        export.files.len()
    );
    println!("{:<58} {:>7} {:>8} {:>8}", "", "secs", "MB/s", "ratio");
    let row = |name: &str, secs: f64, bytes: f64| {
        println!(
            "{name:<58} {secs:>7.2} {:>8.0} {:>8.3}",
            mb / secs,
            bytes / (mb * 1e6)
        );
    };
    row(
        "ours .tar.gz (manifest + hash + tar + parallel gzip)",
        gz,
        gz_report.archive_bytes as f64,
    );
    row("tar | pigz -6", pigz, b_gz);
    row("tar | pigz -6 + sha256sum", pigz + sha_best, b_gz);
    row("ours .tar.zst", zs, zst_report.archive_bytes as f64);
    row("tar | zstd -3 -T2", zstd, b_zst);
    row("tar | zstd -3 -T2 + sha256sum", zstd + sha_best, b_zst);
    row("sha256sum alone", sha_best, 0.0);
    row(
        "ours: fresh per-file sha256 pass (2 threads), alone",
        rehash,
        0.0,
    );
    println!(
        "speed-up vs pipeline incl. sha256sum: gzip {:.2}x, zstd {:.2}x; vs compression alone: gzip {:.2}x, zstd {:.2}x",
        (pigz + sha_best) / gz,
        (zstd + sha_best) / zs,
        pigz / gz,
        zstd / zs
    );
    println!("even with a fresh sha256 pass added to ours: gzip {:.2}x, zstd {:.2}x vs pipeline incl. sha256sum",
        (pigz + sha_best) / (gz + rehash), (zstd + sha_best) / (zs + rehash));
    println!(
        "deterministic over 2 runs: gzip {} ({} / {}), zstd {} ({} / {}); dataset hash {}",
        if gz_same { "IDENTICAL" } else { "DIFFERENT" },
        gz_report.archive_sha256,
        gz_report2.archive_sha256,
        if zst_same { "IDENTICAL" } else { "DIFFERENT" },
        zst_report.archive_sha256,
        zst_report2.archive_sha256,
        gz_report.hash
    );
    assert!(
        gz_same && zst_same,
        "archive bytes differ between two packs of the same data"
    );
}
