//! `cargo xtask bench release`: the release plan's step times without the cargo build (an existing
//! release `stella` is packed), with the default dataset and a large generated one, and the SBOM
//! step against `syft dir:.` in the same run.
//!
//! Run it optimised, as the numbers are about the tool and not about debug builds:
//! `cargo run --release -p xtask -- bench release [--large-mb 500]`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::release::{release, Release, ReleaseOptions};

/// Revision-feed lines copied (with fresh ids) to reach the large dataset's size.
pub(super) const FEED_TEMPLATE: &str = "testdata/history-sample.ndjson";

pub fn run(sh: &Shell, binary: Option<PathBuf>, large_mb: u64) -> Result<()> {
    let root = sh.current_dir();
    let binary = binary.unwrap_or_else(|| crate::kit::runner::built_binary(&root));
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: run `cargo xtask aoc-release` once (or pass --runner-binary)",
        binary.display()
    );
    let scratch = tempfile::Builder::new()
        .prefix("aoc-bench-release-")
        .tempdir()?;
    let epoch = crate::epoch::source_date_epoch(sh)?;
    let env =
        std::collections::BTreeMap::from([("COSIGN_ALLOW_DEV_KEY".to_string(), "1".to_string())]);
    let opts = |out: &str, inputs: Vec<PathBuf>| ReleaseOptions {
        out: scratch.path().join(out),
        dataset_from: inputs,
        publish: None,
        runner_binary: Some(binary.clone()),
        epoch: Some(epoch),
        env: env.clone(),
        print: false,
    };

    let small = release(sh, &opts("default", Vec::new()))?;
    report("default dataset (seed/)", &small)?;
    let sbom_time = step(&small, "sboms");

    match super::find_syft(sh) {
        Some(syft) => {
            let out = scratch.path().join("syft.spdx.json");
            let t = Instant::now();
            cmd!(sh, "{syft} dir:. -q -o spdx-json={out}")
                .quiet()
                .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
                .run()
                .context("running syft")?;
            let theirs = t.elapsed();
            crate::print_line(format_args!(
                "sbom: xtask SPDX + CycloneDX {:.1} ms, syft dir:. {:.1} ms -> xtask {:.1}x faster",
                ms(sbom_time),
                ms(theirs),
                theirs.as_secs_f64() / sbom_time.as_secs_f64()
            ))?;
        }
        None => crate::print_line(
            "sbom: syft SKIPPED, not installed (sh xtask/third-party/setup.sh installs it)",
        )?,
    }

    if large_mb == 0 {
        crate::print_line("large dataset: SKIPPED (--large-mb 0)")?;
        return Ok(());
    }
    let template = root.join(FEED_TEMPLATE);
    if !template.is_file() {
        crate::print_line(format_args!(
            "large dataset: SKIPPED, {} is missing",
            template.display()
        ))?;
        return Ok(());
    }
    let feed = scratch.path().join("large-feed.ndjson");
    let t = Instant::now();
    let bytes = generate_feed(&template, &feed, large_mb * 1_000_000)?;
    crate::print_line(format_args!(
        "large dataset: generated a {:.0} MB revision feed in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ))?;
    let large = release(sh, &opts("large", vec![feed.clone()]))?;
    let archive = large
        .files
        .iter()
        .find(|(n, _, _)| n.ends_with(".tar.gz") && n.starts_with("aoc-dataset-"));
    report(
        &format!(
            "{:.0} MB feed ({} MB dataset tarball)",
            bytes as f64 / 1e6,
            archive.map_or(0, |(_, b, _)| b / 1_000_000)
        ),
        &large,
    )?;
    for name in ["dataset", "self-verify"] {
        let d = step(&large, name);
        crate::print_line(format_args!(
            "  {name}: {:.0} MB/s of feed",
            bytes as f64 / 1e6 / d.as_secs_f64()
        ))?;
    }
    Ok(())
}

/// Copies of the template feed with ids made unique per copy (`RUSTSEC-` → `RUSTSEC-C00001-`),
/// until `target` bytes.
pub(super) fn generate_feed(template: &Path, out: &Path, target: u64) -> Result<u64> {
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(template)?)
        .lines()
        .collect::<std::io::Result<_>>()?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut written = 0u64;
    let mut copy = 0u32;
    while written < target {
        let tag = format!("RUSTSEC-C{copy:05}-");
        for line in &lines {
            let line = line.replace("RUSTSEC-", &tag);
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            written += line.len() as u64 + 1;
        }
        copy += 1;
    }
    w.flush()?;
    Ok(written)
}

fn step(r: &Release, name: &str) -> Duration {
    r.steps
        .iter()
        .find(|(n, _)| n == name)
        .map_or(Duration::ZERO, |(_, d)| *d)
}

fn report(what: &str, r: &Release) -> Result<()> {
    let total: Duration = r.steps.iter().map(|(_, d)| *d).sum();
    crate::print_line(format_args!(
        "release, {what}: total {:.2} s (cargo build skipped)",
        total.as_secs_f64()
    ))?;
    for (name, d) in &r.steps {
        crate::print_line(format_args!(
            "  {name:<16} {:>9.1} ms  {:>5.1}%",
            ms(*d),
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        ))?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
