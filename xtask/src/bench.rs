//! `cargo xtask bench`: times xtask's tasks against the tool a user would otherwise run, in the
//! same process and the same warm cache, and prints the ratio.
//!
//! `--format json`: the benchmark runs as a child `xtask bench` with its lines passed to stderr,
//! and stdout gets one JSON summary of what ran (the lines, the time, the outcome).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

mod release;
mod verify;

use crate::sbom::platform::Platform;
use crate::sbom::{self, graph, metadata, SbomOptions};

#[derive(clap::Args)]
pub struct Cmd {
    #[command(subcommand)]
    what: What,
    /// Output: text (the results on stdout) or json (the results on stderr, a summary of what
    /// ran on stdout).
    #[arg(long, global = true, value_enum, default_value_t = aoc_term::Format::Text, value_name = "FORMAT")]
    pub format: aoc_term::Format,
}

#[derive(clap::Subcommand)]
enum What {
    /// In-process SBOM generation vs `syft dir:. -o spdx-json`, and the package sets compared
    #[command(after_help = crate::cli::bench())]
    Sbom {
        /// Timed runs of each side; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The release's step times (cargo build skipped: an existing stella is packed), default and
    /// large dataset, SBOM step vs syft; run with `cargo run --release -p xtask -- bench release`
    #[command(after_help = crate::cli::bench())]
    Release {
        /// The release `stella` to pack [default: target/aoc-release/release/stella].
        #[arg(long)]
        runner_binary: Option<PathBuf>,
        /// Size of the generated large dataset feed in MB (10^6 bytes); 0 skips it.
        #[arg(long, default_value_t = 500)]
        large_mb: u64,
    },
    /// `aoc-verify` on a kit with a large dataset vs `sha256sum -c` + `gzip -t` (integrity only
    /// and full timings); run with `cargo run --release -p xtask -- bench verify`
    #[command(after_help = crate::cli::bench())]
    Verify {
        /// The release `stella` to pack [default: target/aoc-release/release/stella].
        #[arg(long)]
        runner_binary: Option<PathBuf>,
        /// Size of the generated dataset feed in MB (10^6 bytes).
        #[arg(long, default_value_t = 500)]
        large_mb: u64,
        /// Verify this existing kit instead of building one.
        #[arg(long, conflicts_with = "keep_kit")]
        dir: Option<PathBuf>,
        /// Build the kit into this new directory and keep it, for later runs with `--dir`.
        #[arg(long, value_name = "DIR")]
        keep_kit: Option<PathBuf>,
        /// Timed runs of each side; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.format.is_json() {
            return self.run_json();
        }
        match self.what {
            What::Sbom { runs } => bench_sbom(sh, runs.max(1)),
            What::Release {
                runner_binary,
                large_mb,
            } => release::run(sh, runner_binary, large_mb),
            What::Verify {
                runner_binary,
                large_mb,
                dir,
                keep_kit,
                runs,
            } => verify::run(sh, runner_binary, large_mb, dir, keep_kit, runs),
        }
        .map(|()| ExitCode::SUCCESS)
    }

    /// `--format json`: this benchmark in a child `xtask` (text), its lines passed to stderr and
    /// kept, then one JSON summary on stdout.
    fn run_json(&self) -> Result<ExitCode> {
        use std::io::{BufRead, BufReader};
        let name = match self.what {
            What::Sbom { .. } => "sbom",
            What::Release { .. } => "release",
            What::Verify { .. } => "verify",
        };
        let args = without_format(std::env::args_os().skip(1));
        let started = Instant::now();
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the benchmark")?;
        let mut lines = Vec::new();
        for line in BufReader::new(child.stdout.take().expect("piped above")).lines() {
            let line = line?;
            eprintln!("{line}");
            lines.push(line);
        }
        let status = child.wait()?;
        aoc_term::print_json(&serde_json::json!({
            "ok": status.success(),
            "bench": name,
            "exit_code": status.code(),
            "seconds": started.elapsed().as_secs_f64(),
            "output": lines,
        }))?;
        Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// The command line without its `--format VALUE` / `--format=VALUE`.
fn without_format(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match arg.to_str() {
            Some("--format") => skip_value = true,
            Some(a) if a.starts_with("--format=") => {}
            _ => out.push(arg),
        }
    }
    out
}

fn bench_sbom(sh: &Shell, runs: usize) -> Result<()> {
    let opts = SbomOptions {
        epoch: crate::epoch::source_date_epoch(sh)?,
        runner_tarball: None,
        binary: None,
    };
    let mut ours = Vec::new();
    let mut sbom = None;
    for _ in 0..runs {
        let t = Instant::now();
        sbom = Some(sbom::generate(sh, &opts)?);
        ours.push(t.elapsed());
    }
    let sbom = sbom.expect("runs >= 1");
    let ours = median(ours);
    crate::print_line(format_args!(
        "xtask sbom: median {:>8.1} ms over {runs} runs ({} crates, SPDX + CycloneDX)",
        ms(ours),
        sbom.packages.len()
    ))?;

    let Some(syft) = find_syft(sh) else {
        crate::print_line(
            "syft: SKIPPED, not installed (sh xtask/third-party/setup.sh installs it)",
        )?;
        return Ok(());
    };
    let out = sh.create_temp_dir()?;
    let report = out.path().join("syft.spdx.json");
    let mut theirs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        cmd!(sh, "{syft} dir:. -q -o spdx-json={report}")
            .quiet()
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .run()
            .context("running syft")?;
        theirs.push(t.elapsed());
    }
    let theirs = median(theirs);
    crate::print_line(format_args!(
        "syft dir:.: median {:>8.1} ms over {runs} runs  -> xtask is {:.1}x faster",
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    ))?;

    compare_sets(sh, &sbom, &sh.read_file(&report)?)
}

/// syft reads Cargo.lock, so it lists every locked crate; the difference from ours should be
/// exactly what is not linked into `stella`, and each crate is explained by the edge kind that
/// brings it into the lock file.
fn compare_sets(sh: &Shell, sbom: &sbom::Sbom, syft_spdx: &str) -> Result<()> {
    let doc: serde_json::Value = serde_json::from_str(syft_spdx).context("parsing syft output")?;
    let syft: BTreeSet<(String, String)> = doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .filter_map(|r| r["referenceLocator"].as_str()?.strip_prefix("pkg:cargo/"))
        .filter_map(|rest| {
            let (name, version) = rest.split('?').next()?.split_once('@')?;
            Some((name.to_string(), version.replace("%2B", "+")))
        })
        .collect();
    let ours: BTreeSet<(String, String)> = sbom
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();

    let platform = Platform::host(sh)?;
    let host = metadata::metadata(sh, &platform.triple)?;
    let why = explain(&host, &platform)?;

    let only_ours: Vec<_> = ours.difference(&syft).collect();
    let only_syft: Vec<_> = syft.difference(&ours).collect();
    crate::print_line(format_args!(
        "package sets: xtask {}, syft {}, common {}, only xtask {}, only syft {}",
        ours.len(),
        syft.len(),
        ours.intersection(&syft).count(),
        only_ours.len(),
        only_syft.len()
    ))?;
    for (name, version) in &only_ours {
        crate::print_line(format_args!("  only xtask: {name} {version}"))?;
    }
    let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, version) in &only_syft {
        let reason = why
            .get(&(name.clone(), version.clone()))
            .copied()
            // `--filter-platform` drops crates no declaration on this platform can reach.
            .unwrap_or("other target platform only (cfg-gated)");
        by_reason
            .entry(reason)
            .or_default()
            .push(format!("{name}@{version}"));
    }
    for (reason, crates) in &by_reason {
        crate::print_line(format_args!(
            "  only syft, {reason} ({}): {}",
            crates.len(),
            crates.join(" ")
        ))?;
    }
    Ok(())
}

/// Why each crate of the lock file is not linked into `stella`, first matching reason wins.
fn explain(
    host: &metadata::Metadata,
    platform: &Platform,
) -> Result<BTreeMap<(String, String), &'static str>> {
    let root = host.member(sbom::RUNNER_PACKAGE)?;
    let linked = graph::linked(host, platform)?.packages;
    let unified = host.reach(&[root], |k| k.is_none(), false, platform);
    let via_macros = host.reach(&[root], |k| k.is_none(), true, platform);
    let via_build = host.reach(&[root], |k| k != Some("dev"), true, platform);
    let via_dev = host.reach(&[root], |_| true, true, platform);
    let members: Vec<usize> = (0..host.packages.len())
        .filter(|&i| host.workspace_members.contains(&host.packages[i].id))
        .collect();
    let workspace = host.reach(&members, |_| true, true, platform);

    let key = |p: &metadata::Package| (p.name.clone(), p.version.clone());
    let mut why = BTreeMap::new();
    for (i, p) in host.packages.iter().enumerate() {
        let reason = if linked.contains(&i) {
            "linked (should not differ)"
        } else if unified.contains(&i) {
            "optional, turned on only by other workspace members' features"
        } else if p.is_proc_macro() {
            "proc-macro (runs in rustc)"
        } else if via_macros.contains(&i) {
            "dependency of a proc-macro only"
        } else if via_build.contains(&i) {
            "build-dependency only"
        } else if via_dev.contains(&i) {
            "dev-dependency only"
        } else if workspace.contains(&i) {
            "used only by other workspace members (e.g. xtask)"
        } else {
            // In the lock, but reached only through declarations whose cfg fails here.
            "other target platform only (cfg-gated)"
        };
        why.insert(key(p), reason);
    }
    Ok(why)
}

fn find_syft(sh: &Shell) -> Option<PathBuf> {
    let venv = sh.current_dir().join("target/third-party/venv/bin/syft");
    if venv.is_file() {
        return Some(venv);
    }
    cmd!(sh, "syft version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .ok()
        .map(|()| PathBuf::from("syft"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_run_calls_the_same_benchmark_without_its_format() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            without_format(
                args(&["bench", "--format", "json", "verify", "--runs", "2"]).into_iter()
            ),
            args(&["bench", "verify", "--runs", "2"])
        );
        assert_eq!(
            without_format(args(&["bench", "sbom", "--format=json"]).into_iter()),
            args(&["bench", "sbom"])
        );
    }
}
