//! `aoc-dataset`: build a deterministic seeded dataset from a store or from inputs, and verify one.
//!
//! Exit codes: 0 success; 1 verification failed (verify) or inputs rejected (build); 2 usage
//! error, unreadable or hostile input, store or I/O error.

use anyhow::Context;
use aoc_dataset::{
    build_from_inputs, build_from_store, verify_with, BuildError, BuildOptions, BuildReport,
    Compression, LoadError, VerifyError, VerifyOptions, VerifyReport,
};
use aoc_store::{redact_url, Store};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(test)]
#[path = "../../../xtask/src/readme_synopsis.rs"]
mod readme_synopsis;

#[derive(Parser)]
#[command(
    name = "aoc-dataset",
    version,
    about = "Deterministic AOC advisory datasets: build and verify"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export raw documents (from a store, or from inputs via a temporary SQLite store) into
    /// aoc-dataset-<hash>.tar.gz plus aoc-dataset-<hash>.manifest.json.
    Build {
        /// Export this store: sqlite://PATH or postgres://USER@HOST:PORT/DB[?sslmode=...];
        /// without --store and --from, the URL in STELLA_STORE.
        #[arg(long, conflicts_with = "from")]
        store: Option<String>,
        /// STELLA_STORE: a default only, so it is its own argument without conflicts (clap
        /// counts an environment value as given, and `--from` would then conflict with it).
        #[arg(
            long = "store-from-env",
            env = "STELLA_STORE",
            hide = true,
            hide_env_values = true
        )]
        store_env: Option<String>,
        /// Backfill these inputs (OSV/CSAF files or directories, revision feeds) first.
        #[arg(long, num_args = 1.., required_unless_present_any = ["store", "store_env"])]
        from: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// --store: export only this tenant. --from: the tenant written into documents (default `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Write .tar.zst instead of .tar.gz.
        #[arg(long)]
        zstd: bool,
        /// Split data files larger than this many MiB (part of the content: changes the hash).
        #[arg(long, default_value_t = aoc_dataset::DEFAULT_SPLIT_BYTES >> 20)]
        split_mib: u64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Verify a dataset archive: contents, manifest (inside and sidecar), hash in the name, the AOC
    /// guard and revision chains over every record.
    Verify {
        path: PathBuf,
        /// Fail unless the dataset has this hash (a pinned DATASET_HASH).
        #[arg(long)]
        expect_hash: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Build {
            store,
            store_env,
            from,
            out,
            tenant,
            zstd,
            split_mib,
            format,
        } => {
            let opts = BuildOptions {
                tenant,
                compression: if zstd {
                    Compression::Zstd
                } else {
                    Compression::Gzip
                },
                split_bytes: split_mib.max(1) << 20,
                ..BuildOptions::new(out)
            };
            // STELLA_STORE only when neither --store nor --from was given.
            let store = store.or_else(|| from.is_empty().then_some(store_env).flatten());
            match build(store, &from, &opts) {
                Ok(report) => {
                    print_build(&report, format);
                    0
                }
                Err(e) => {
                    eprintln!("aoc-dataset: error: {e:#}");
                    match e.downcast_ref::<BuildError>() {
                        Some(BuildError::Load(LoadError::Rejected { .. })) => 1,
                        _ => 2,
                    }
                }
            }
        }
        Command::Verify {
            path,
            expect_hash,
            format,
        } => {
            let options = VerifyOptions {
                expected_hash: expect_hash,
                ..VerifyOptions::default()
            };
            match verify_with(&path, &options) {
                Ok(report) => {
                    print_verify(&report, format);
                    0
                }
                Err(VerifyError::Failed(report)) => {
                    for f in &report.failures {
                        eprintln!("aoc-dataset: FAIL {}: {f}", report.archive.display());
                    }
                    if report.failure_count > report.failures.len() as u64 {
                        eprintln!(
                            "aoc-dataset: ... {} failures in total",
                            report.failure_count
                        );
                    }
                    print_verify(&report, format);
                    1
                }
                Err(e) => {
                    eprintln!("aoc-dataset: error: {e}");
                    e.exit_code()
                }
            }
        }
    };
    ExitCode::from(code)
}

fn build(
    store: Option<String>,
    from: &[PathBuf],
    opts: &BuildOptions,
) -> anyhow::Result<BuildReport> {
    if let Some(url) = store {
        let mut store =
            Store::open(&url).with_context(|| format!("cannot open store {}", redact_url(&url)))?;
        Ok(build_from_store(&mut store, opts)?)
    } else {
        for p in from {
            anyhow::ensure!(p.exists(), "input {} does not exist", p.display());
        }
        Ok(build_from_inputs(from, opts)?)
    }
}

fn print_build(report: &BuildReport, format: OutputFormat) {
    match format {
        OutputFormat::Text => {
            eprintln!(
                "aoc-dataset: {} records in {} files, {} bytes of NDJSON → {} ({} bytes)",
                report.records(),
                report.files().len(),
                report.manifest.totals.bytes,
                report.archive.display(),
                report.archive_bytes
            );
            println!("{}  {}", report.hash, report.archive.display());
        }
        OutputFormat::Json => println!(
            "{}",
            json!({
                "hash": report.hash,
                "archive": report.archive,
                "manifest": report.manifest_path,
                "archive_sha256": report.archive_sha256,
                "archive_bytes": report.archive_bytes,
                "records": report.records(),
                "files": report.files(),
            })
        ),
    }
}

fn print_verify(report: &VerifyReport, format: OutputFormat) {
    match format {
        OutputFormat::Text => {
            for note in &report.notes {
                eprintln!("aoc-dataset: note: {note}");
            }
            if report.is_ok() {
                println!(
                    "OK {}  {}: {} files, {} records, {} upstream documents",
                    report.hash,
                    report.archive.display(),
                    report.files.len(),
                    report.records,
                    report.upstream_documents
                );
            }
        }
        OutputFormat::Json => println!(
            "{}",
            json!({
                "ok": report.is_ok(),
                "archive": report.archive,
                "hash": report.hash,
                "files": report.files,
                "records": report.records,
                "upstream_documents": report.upstream_documents,
                "failure_count": report.failure_count,
                "failures": report.failures.iter().map(|f| json!({
                    "file": f.file, "line": f.line, "check": f.check.to_string(), "message": f.message,
                })).collect::<Vec<_>>(),
                "notes": report.notes,
            })
        ),
    }
}
