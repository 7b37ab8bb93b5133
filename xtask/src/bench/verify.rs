//! `cargo xtask bench verify`: `aoc-verify` on a kit with a large dataset against what a site
//! without cargo runs (`sha256sum -c SHA256SUMS` and `gzip -t` of every `.tar.gz`), in the same
//! run and the same warm page cache.
//!
//! Both modes of the real command, for honesty: `aoc-verify --integrity-only` checks every file's
//! SHA-256 against the signed SHA256SUMS, every signature, provenance, SBOMs and the dataset's
//! manifest (the baseline's `gzip -t` proves less: a CRC anyone can recompute); the full
//! `aoc-verify` also inflates and parses every record (AOC guard, chains, order, counts, content
//! hash), and is compared with a bare `serde_json` parse of the same records on the same cores.
//!
//! Run it optimised: `cargo run --release -p xtask -- bench verify [--large-mb 500]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::kit;
use crate::release::{release, ReleaseOptions};
use crate::verify::{verify_kit, VerifyOptions};

pub fn run(
    sh: &Shell,
    binary: Option<PathBuf>,
    large_mb: u64,
    dir: Option<PathBuf>,
    keep_kit: Option<PathBuf>,
    runs: usize,
) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("aoc-bench-verify-")
        .tempdir()?;
    // Paths are relative to where cargo was run (the shell has moved to the project root).
    let cwd = std::env::current_dir()?;
    let kit_dir = match dir {
        Some(d) => cwd.join(d),
        None => {
            let out = keep_kit.map_or_else(|| scratch.path().join("aoc"), |k| cwd.join(k));
            build_kit(sh, binary, large_mb, scratch.path(), &out)?
        }
    };
    let hash = kit::find_dataset_hash(&kit_dir)?;
    let dataset = kit_dir.join(kit::dataset_tarball(&hash));
    let manifest = aoc_dataset::Manifest::from_slice(&std::fs::read(
        kit_dir.join(kit::dataset_manifest(&hash)),
    )?)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kit_bytes: u64 = kit::expected_files(&hash)
        .iter()
        .map(|n| std::fs::metadata(kit_dir.join(n)).map_or(0, |m| m.len()))
        .sum();
    crate::print_line(format_args!(
        "kit {}: {:.0} MB on disk, dataset {:.0} MB NDJSON in {:.0} MB {}, {} records",
        kit_dir.display(),
        kit_bytes as f64 / 1e6,
        manifest.totals.bytes as f64 / 1e6,
        std::fs::metadata(&dataset)?.len() as f64 / 1e6,
        kit::dataset_tarball(&hash),
        manifest.totals.records
    ))?;

    // Warm the page cache once so that neither side pays for the first read.
    kit::expected_files(&hash).iter().for_each(|n| {
        let _ = aoc_archive::sha256_file(&kit_dir.join(n));
    });

    let key = sh
        .current_dir()
        .join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    // The records the full check parses, inflated once into memory for the parse baseline.
    let lines = dataset_lines(&dataset)?;
    let mut baseline = Vec::new();
    let mut parse = Vec::new();
    let mut integrity = Vec::new();
    let mut full = Vec::new();
    let verify = |records: bool| {
        time(|| {
            let report = verify_kit(
                &kit_dir,
                Some(&key),
                &VerifyOptions {
                    integrity_only: !records,
                    allow_dev_key: true,
                    ..VerifyOptions::default()
                },
            )?;
            anyhow::ensure!(
                report.passed(),
                "the kit does not verify: {:?}",
                report.first_failure()
            );
            Ok(())
        })
    };
    for _ in 0..runs.max(1) {
        baseline.push(time(|| coreutils(sh, &kit_dir))?);
        parse.push(time(|| bare_parse(&lines))?);
        integrity.push(verify(false)?);
        full.push(verify(true)?);
    }
    let (b, p, i, f) = (
        median(baseline),
        median(parse),
        median(integrity),
        median(full),
    );
    let mbs = |d: Duration| kit_bytes as f64 / 1e6 / d.as_secs_f64();
    crate::print_line(format_args!(
        "median of {} run(s), {:.0} MB kit:",
        runs.max(1),
        kit_bytes as f64 / 1e6
    ))?;
    crate::print_line(format_args!(
        "  sha256sum -c SHA256SUMS + gzip -t *.tar.gz  {:>8.2} s  {:>6.0} MB/s  (baseline)",
        b.as_secs_f64(),
        mbs(b)
    ))?;
    crate::print_line(format_args!(
        "  aoc-verify --integrity-only                 {:>8.2} s  {:>6.0} MB/s  {:.1}x faster than the baseline",
        i.as_secs_f64(),
        mbs(i),
        b.as_secs_f64() / i.as_secs_f64()
    ))?;
    crate::print_line(format_args!(
        "  bare serde_json parse of every record (2 threads, in memory)  {:>8.2} s  (parse baseline)",
        p.as_secs_f64()
    ))?;
    crate::print_line(format_args!(
        "  aoc-verify full                             {:>8.2} s  {:>6.0} MB/s  {:.2}x the parse baseline's time",
        f.as_secs_f64(),
        mbs(f),
        f.as_secs_f64() / p.as_secs_f64()
    ))?;
    Ok(())
}

/// Every data line of the dataset, inflated through the defensive reader.
fn dataset_lines(dataset: &Path) -> Result<Vec<Vec<u8>>> {
    use std::io::BufRead;
    let reader = aoc_archive::ArchiveReader::open(dataset, aoc_archive::Limits::default())?;
    let mut lines = Vec::new();
    reader.for_each_entry(|path, entry| -> anyhow::Result<()> {
        if aoc_dataset::parse_data_path(path).is_none() {
            return Ok(());
        }
        for line in std::io::BufReader::new(entry).split(b'\n') {
            lines.push(line?);
        }
        Ok(())
    })?;
    Ok(lines)
}

/// `serde_json::Value` of every line on the machine's cores: the least a record check must do.
fn bare_parse(lines: &[Vec<u8>]) -> Result<()> {
    use rayon::prelude::*;
    let parsed = lines
        .par_iter()
        .map(|l| serde_json::from_slice::<serde_json::Value>(l).map(|v| v.is_object()))
        .filter(|r| matches!(r, Ok(true)))
        .count();
    anyhow::ensure!(
        parsed == lines.len(),
        "{} of {} lines parsed",
        parsed,
        lines.len()
    );
    Ok(())
}

/// A kit in `out` whose dataset is built from a generated revision feed of `large_mb` MB.
fn build_kit(
    sh: &Shell,
    binary: Option<PathBuf>,
    large_mb: u64,
    scratch: &Path,
    out: &Path,
) -> Result<PathBuf> {
    let root = sh.current_dir();
    let binary = binary.unwrap_or_else(|| kit::runner::built_binary(&root));
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: run `cargo xtask aoc-release` once (or pass --runner-binary)",
        binary.display()
    );
    let feed = scratch.join("large-feed.ndjson");
    let t = Instant::now();
    let bytes = super::release::generate_feed(
        &root.join(super::release::FEED_TEMPLATE),
        &feed,
        large_mb * 1_000_000,
    )?;
    let built = release(
        sh,
        &ReleaseOptions {
            out: out.to_path_buf(),
            dataset_from: vec![feed.clone()],
            publish: None,
            runner_binary: Some(binary),
            epoch: Some(crate::epoch::source_date_epoch(sh)?),
            env: [("COSIGN_ALLOW_DEV_KEY".to_string(), "1".to_string())].into(),
            print: false,
        },
    )
    .context("releasing the benchmark kit")?;
    std::fs::remove_file(&feed)?;
    crate::print_line(format_args!(
        "built a kit from a {:.0} MB feed in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ))?;
    Ok(built.dir)
}

/// What `verify-kit.sh` does before cosign, plus the gzip integrity test a careful user adds.
fn coreutils(sh: &Shell, dir: &Path) -> Result<()> {
    let _cd = sh.push_dir(dir);
    cmd!(sh, "sha256sum --strict --quiet -c SHA256SUMS")
        .quiet()
        .run()
        .context("sha256sum -c")?;
    let mut tarballs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    tarballs.sort();
    cmd!(sh, "gzip -t {tarballs...}")
        .quiet()
        .run()
        .context("gzip -t")?;
    Ok(())
}

fn time(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
