//! `cargo xtask`: release tasks for the AOC backfill runner (docs/ARCHITECTURE.md §2, §3.3).
//!
//! A dispatcher only: parse flags once, make one shell rooted at the workspace, hand it to the
//! task. Each task lives in its own module (`release.rs`, `verify.rs`, `sbom.rs`, ...); signing is
//! aoc-sigstore's, called from `release.rs`.

// The tasks' doc comments are their `--help`, where `<hash>` is the usual placeholder notation,
// not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod bench;
mod cli;
mod dataset_definition;
mod epoch;
mod keygen;
mod kit;
mod publish;
#[cfg(test)]
mod readme_synopsis;
mod rehearsal;
mod release;
mod sbom;
mod steps;
mod test;
mod verify;
#[cfg(test)]
mod workflow_tests;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use xshell::Shell;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    // Usage lines say `cargo xtask <task>`, whatever the binary's file name.
    bin_name = "cargo xtask",
    about = "Release tasks for the AOC backfill runner",
    version,
    after_help = cli::top()
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Subcommand)]
enum Task {
    /// Build, sign and self-verify the offline kit in out/aoc/
    #[command(after_help = cli::release())]
    AocRelease(release::Cmd),
    /// Verify a kit offline: checksums, signatures, provenance, SBOM, dataset
    #[command(after_help = aoc_kit::cli::after_help())]
    AocVerify(verify::Cmd),
    /// Dev rehearsal: build the dataset, load it with stella into a fresh store, verify, export
    /// again; prints the DATASET_HASH to release with
    #[command(after_help = cli::rehearsal())]
    AocRehearsal(rehearsal::Cmd),
    /// Publish a verified kit to a directory or an S3-compatible bucket (s3://bucket/prefix)
    #[command(after_help = cli::publish())]
    AocPublish(publish::Cmd),
    /// Generate a cosign-compatible key pair (password from COSIGN_PASSWORD)
    #[command(after_help = cli::keygen())]
    Keygen(keygen::Cmd),
    /// Write the runner's SPDX 2.3 and CycloneDX 1.5 SBOMs
    #[command(after_help = cli::sbom())]
    Sbom(sbom::Cmd),
    /// Time a task against its baseline tool
    #[command(after_help = cli::bench())]
    Bench(bench::Cmd),
    /// Run every test as CI does: third-party verifiers, a throwaway PostgreSQL, cargo test
    #[command(after_help = cli::test())]
    Test(test::Cmd),
}

impl Task {
    /// `--format json` was asked for.
    fn json(&self) -> bool {
        match self {
            Task::AocRelease(c) => c.output.format.is_json(),
            Task::AocVerify(c) => c.json(),
            Task::AocRehearsal(c) => c.output.format.is_json(),
            Task::AocPublish(c) => c.output.format.is_json(),
            Task::Keygen(c) => c.output.format.is_json(),
            Task::Sbom(c) => c.output.format.is_json(),
            Task::Bench(c) => c.format.is_json(),
            Task::Test(c) => c.output.format.is_json(),
        }
    }
}

fn main() -> ExitCode {
    // A usage error under `--format json` is a failure document on stdout too.
    let cli: Cli = aoc_term::failure::parse();
    let Some(task) = cli.task else {
        // `cargo xtask` alone lists the tasks, on stdout, successfully.
        Cli::command().print_help().ok();
        return ExitCode::SUCCESS;
    };
    let json = task.json();
    match run(task) {
        Ok(code) => code,
        // Each cause once (a context often repeats its source's text, which `{:#}` would print
        // twice), escaped: messages carry names from kits and buckets. `--format json` keeps its
        // promise on failure too: the failure document on stdout.
        // A task stopped by SIGINT/SIGTERM exits 130/143: every stop adds `Interrupted` to the
        // error with anyhow's `context`, which `downcast_ref` finds at any depth.
        Err(e) => {
            let code = e
                .downcast_ref::<aoc_term::interrupt::Interrupted>()
                .map_or(1, |i| i.0.exit_code());
            ExitCode::from(aoc_term::report_failure(
                "cargo xtask",
                e.as_ref(),
                code,
                json,
            ))
        }
    }
}

/// Prints `line` and a newline on stdout: every task prints its data this way. A reader that
/// closed stdout early (`cargo xtask ... | head`) ends the output quietly and the task keeps its
/// own exit code, where `println!` would panic; another write error fails the task.
pub(crate) fn print_line(line: impl std::fmt::Display) -> Result<()> {
    aoc_term::failure::write_stdout(format!("{line}\n").as_bytes()).context("writing to stdout")
}

/// SIGINT and SIGTERM: a task run in steps stops after the step in hand (its guards clean up as
/// on any failure); a second signal, or any signal to another task, ends it at once, saying what
/// that leaves.
fn on_signal(task: &Task) {
    use aoc_term::interrupt::{exit_on_signal, stop_at_step_boundaries};
    match task {
        Task::AocRelease(_) => stop_at_step_boundaries(
            "cargo xtask aoc-release",
            "the staging directory is removed; the previous kit, if any, is as it was",
        ),
        Task::AocRehearsal(_) => stop_at_step_boundaries(
            "cargo xtask aoc-rehearsal",
            "its scratch database and files may remain; the next rehearsal starts afresh",
        ),
        Task::Test(_) => stop_at_step_boundaries(
            "cargo xtask test",
            "a PostgreSQL cluster it started may still run: AOC_PG_DIR=<its directory, \
             aoc-pg-xtask-PID in TMPDIR> bash scripts/pg-test-cluster.sh stop",
        ),
        Task::AocPublish(_) => exit_on_signal(
            "cargo xtask aoc-publish",
            "each uploaded file is whole; the same aoc-publish resumes from its state file",
        ),
        Task::AocVerify(_) => exit_on_signal("cargo xtask aoc-verify", "nothing was verified"),
        Task::Keygen(_) | Task::Sbom(_) | Task::Bench(_) => {
            exit_on_signal("cargo xtask", "stopped before finishing")
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    on_signal(&task);
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match task {
        Task::AocRelease(cmd) => cmd.run(&sh).map(|()| ExitCode::SUCCESS),
        Task::AocVerify(cmd) => cmd.run(&sh),
        Task::AocRehearsal(cmd) => cmd.run(&sh).map(|()| ExitCode::SUCCESS),
        Task::AocPublish(cmd) => cmd.run().map(|()| ExitCode::SUCCESS),
        Task::Keygen(cmd) => cmd.run().map(|()| ExitCode::SUCCESS),
        Task::Sbom(cmd) => cmd.run(&sh).map(|()| ExitCode::SUCCESS),
        Task::Bench(cmd) => cmd.run(&sh),
        Task::Test(cmd) => cmd.run(&sh),
    }
}

/// The directory holding the workspace `Cargo.toml`, whatever directory cargo was run from.
fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits inside the workspace root")
        .to_path_buf()
}
