//! `stella`: the AOC backfill runner. Thin dispatcher over the contract, ingest and store libraries.
//!
//! Exit codes (the `aoc` and `sources` commands): 0 success / no violations, 1 violations or
//! rejected records, 2 configuration, connection or input error, 3 TMPDIR or an output directory
//! missing, not writable or short of space, 130/143 SIGINT/SIGTERM. `kit verify` has the kit
//! verifier's codes (`aoc_kit::EXIT_CODES`). Every command follows the command-line convention of
//! `aoc-term` (`--format`, `-` report files, progress, help sections; docs/ARCHITECTURE.md §5).

mod backfill;
mod help;
mod ingest;
mod inputs;
mod outputs;
mod verify;

#[cfg(test)]
#[path = "../../../xtask/src/readme_synopsis.rs"]
mod readme_synopsis;

use clap::{Args, Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The crates this binary is built from, in `cargo auditable`'s format (zlib-compressed JSON in a
/// `.dep-v0` section) for binary scanners; written by build.rs (an empty list outside
/// `cargo xtask aoc-release`). `#[used]` keeps it although nothing reads it: the linker keeps the
/// section through `--gc-sections` and `strip = "symbols"` removes only symbols.
// `unsafe_code` counts a chosen link section as unsafe (the linker, not Rust, places it); a
// read-only byte array that no code reads cannot be misused.
#[allow(unsafe_code)]
#[used]
#[link_section = ".dep-v0"]
static DEP_V0: [u8; DEP_V0_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/dep-v0.bin"));
const DEP_V0_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/dep-v0.bin")).len();
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "stella",
    version,
    about = "AOC backfill runner: raw advisory ingestion under the Aggregation-Only Contract",
    after_help = help::top()
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Aggregation-Only Contract operations.
    #[command(after_help = help::top())]
    Aoc {
        #[command(subcommand)]
        command: AocCommand,
    },
    /// Upstream sources.
    #[command(after_help = help::top())]
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Offline kits.
    #[command(after_help = help::top())]
    Kit {
        #[command(subcommand)]
        command: KitCommand,
    },
}

#[derive(Subcommand)]
enum KitCommand {
    /// Verify an offline kit offline, fail-closed: SHA256SUMS' signature against the key you
    /// trust, every digest, signatures, provenance, SBOMs, then the dataset's records. Nothing
    /// from the kit is run. Use a stella you already trust, never the one inside the kit.
    #[command(after_help = aoc_kit::cli::after_help())]
    Verify {
        /// The kit directory, or a published directory (a copy of the bucket: `offline-kit.json`,
        /// its signature, `cosign.pub` and one directory per kit version).
        dir: PathBuf,
        #[command(flatten)]
        args: aoc_kit::cli::VerifyArgs,
    },
}

#[derive(Subcommand)]
enum AocCommand {
    /// Backfill upstream advisories into the append-only raw store.
    #[command(after_help = help::backfill())]
    Backfill(backfill::BackfillArgs),
    /// Check raw documents (files, a store) against the contract; read-only.
    #[command(after_help = help::verify())]
    Verify(verify::VerifyArgs),
}

#[derive(Subcommand)]
enum SourcesCommand {
    /// Show the raw documents an input would produce, with their violations; never writes.
    #[command(after_help = help::ingest())]
    Ingest(ingest::IngestArgs),
}

/// Options shared by commands that map upstream documents.
#[derive(Args, Debug, Clone)]
pub struct MapArgs {
    /// Tenant written into every raw document.
    #[arg(long, env = "STELLA_TENANT", default_value = "default")]
    pub tenant: String,
    /// Require upstream signature metadata (ERR_AOC_004 when absent).
    #[arg(long)]
    pub require_signature: bool,
}

/// Exit code classes, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean = 0,
    Violations = 1,
    Error = 2,
}

fn main() -> ExitCode {
    // A usage error under `--format json` is a failure document on stdout too.
    let cli: Cli = aoc_term::failure::parse();
    let json = cli.command.json();
    let result = match cli.command {
        Command::Aoc {
            command: AocCommand::Backfill(args),
        } => backfill::run(args),
        Command::Aoc {
            command: AocCommand::Verify(args),
        } => {
            aoc_term::interrupt::exit_on_signal("stella aoc verify", "nothing was written");
            verify::run(args)
        }
        Command::Sources {
            command: SourcesCommand::Ingest(args),
        } => {
            aoc_term::interrupt::exit_on_signal("stella sources ingest", "nothing was written");
            ingest::run(args)
        }
        // Its own exit codes (0, 2, 10-15), shared with `cargo xtask aoc-verify`.
        Command::Kit {
            command: KitCommand::Verify { dir, args },
        } => {
            // Only unlinked private copies are written: they go with the process.
            aoc_term::interrupt::exit_on_signal("stella kit verify", "nothing was written");
            return ExitCode::from(aoc_kit::cli::run(&dir, &args, "stella kit verify"));
        }
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome as u8),
        // Each cause once; `--format json` keeps its promise on failure too (`"ok": false` on
        // stdout); a reader that closed stdout early hears nothing.
        Err(e) => ExitCode::from(aoc_term::report_failure(
            "stella",
            e.as_ref(),
            outputs::exit_code(&e).unwrap_or_else(|| backfill::failure_exit_code(&e)),
            json,
        )),
    }
}

impl Command {
    /// `--format json` (or ndjson) was asked for.
    fn json(&self) -> bool {
        match self {
            Command::Aoc {
                command: AocCommand::Backfill(a),
            } => a.format.is_json(),
            Command::Aoc {
                command: AocCommand::Verify(a),
            } => a.format.is_json(),
            Command::Sources {
                command: SourcesCommand::Ingest(a),
            } => a.format != aoc_term::StreamFormat::Text,
            Command::Kit { .. } => false,
        }
    }
}

/// Paths given on the command line, checked to exist before any work starts.
pub fn check_inputs(paths: &[PathBuf]) -> anyhow::Result<()> {
    for p in paths {
        if p.as_os_str() != "-" && !p.exists() {
            anyhow::bail!("input {} does not exist", p.display());
        }
    }
    Ok(())
}
