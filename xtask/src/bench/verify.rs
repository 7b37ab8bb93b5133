//! `cargo xtask bench verify`: `aoc-verify` on a kit with a large dataset against what a site
//! without cargo runs (`sha256sum -c SHA256SUMS` and `gzip -t` of every `.tar.gz`), in the same
//! run and the same warm page cache.
//!
//! Both modes of the real command, for honesty: `aoc-verify --integrity-only` does the work the
//! baseline does (every file hashed, every tarball inflated and CRC-checked) plus signatures,
//! provenance, SBOMs and the dataset's hash and manifest file list recomputed from its inflated
//! data files; the full `aoc-verify` also parses every record (AOC guard, chains, order, counts)
//! and runs the bundled `stella aoc verify --dry-run`: work the baseline cannot do at all.
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
    runs: usize,
) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("aoc-bench-verify-")
        .tempdir()?;
    let kit_dir = match dir {
        // Relative to where cargo was run (the shell has moved to the project root).
        Some(d) => std::env::current_dir()?.join(d),
        None => build_kit(sh, binary, large_mb, scratch.path())?,
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
    println!(
        "kit {}: {:.0} MB on disk, dataset {:.0} MB NDJSON in {:.0} MB {}, {} records",
        kit_dir.display(),
        kit_bytes as f64 / 1e6,
        manifest.totals.bytes as f64 / 1e6,
        std::fs::metadata(&dataset)?.len() as f64 / 1e6,
        kit::dataset_tarball(&hash),
        manifest.totals.records
    );

    // Warm the page cache once so that neither side pays for the first read.
    kit::expected_files(&hash).iter().for_each(|n| {
        let _ = aoc_archive::sha256_file(&kit_dir.join(n));
    });

    let key = sh
        .current_dir()
        .join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let mut baseline = Vec::new();
    let mut integrity = Vec::new();
    let mut full = Vec::new();
    let mut no_stella = Vec::new();
    let verify = |records: bool, stella: bool| {
        time(|| {
            let report = verify_kit(
                &kit_dir,
                Some(&key),
                &VerifyOptions {
                    run_bundled_stella: stella,
                    records,
                    print: false,
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
        integrity.push(verify(false, false)?);
        no_stella.push(verify(true, false)?);
        full.push(verify(true, true)?);
    }
    let (b, i, f, n) = (
        median(baseline),
        median(integrity),
        median(full),
        median(no_stella),
    );
    let mbs = |d: Duration| kit_bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "median of {} run(s), {:.0} MB kit:",
        runs.max(1),
        kit_bytes as f64 / 1e6
    );
    println!(
        "  sha256sum -c SHA256SUMS + gzip -t *.tar.gz  {:>8.2} s  {:>6.0} MB/s  (baseline)",
        b.as_secs_f64(),
        mbs(b)
    );
    println!(
        "  aoc-verify --integrity-only                 {:>8.2} s  {:>6.0} MB/s  {:.1}x faster",
        i.as_secs_f64(),
        mbs(i),
        b.as_secs_f64() / i.as_secs_f64()
    );
    println!(
        "  aoc-verify full, without bundled stella     {:>8.2} s  {:>6.0} MB/s  {:.1}x the baseline's speed",
        n.as_secs_f64(),
        mbs(n),
        b.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "  aoc-verify full (+ stella aoc verify)       {:>8.2} s  {:>6.0} MB/s  {:.1}x the baseline's speed",
        f.as_secs_f64(),
        mbs(f),
        b.as_secs_f64() / f.as_secs_f64()
    );
    Ok(())
}

/// A kit whose dataset is built from a generated revision feed of `large_mb` MB.
fn build_kit(
    sh: &Shell,
    binary: Option<PathBuf>,
    large_mb: u64,
    scratch: &Path,
) -> Result<PathBuf> {
    let root = sh.current_dir();
    let binary =
        binary.unwrap_or_else(|| root.join(kit::runner::TARGET_SUBDIR).join("release/stella"));
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
            out: scratch.join("aoc"),
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
    println!(
        "built a kit from a {:.0} MB feed in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
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
