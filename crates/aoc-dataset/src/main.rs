//! `aoc-dataset`: build a deterministic seeded dataset from a store or from inputs, and verify one.
//!
//! Exit codes: 0 success; 1 verification failed (verify) or inputs rejected (build); 2 usage
//! error, unreadable or hostile input, store or I/O error; 3 TMPDIR or the output directory
//! missing, not writable or short of space; 130/143 SIGINT/SIGTERM. The command-line convention
//! is `aoc-term`'s (`--format text|json`, progress on a terminal, help sections).

use anyhow::Context;
use aoc_dataset::{
    build_from_inputs_observed, build_from_store, verify_with, BuildError, BuildOptions,
    BuildReport, Compression, LoadError, VerifyError, VerifyOptions, VerifyReport,
};
use aoc_store::{Store, StoreLocation};
use aoc_term::{after_help, escape, Format as OutputFormat, Progress, ENV_NO_COLOR};
use clap::{Parser, Subcommand};
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
    about = "Deterministic AOC advisory datasets: build and verify",
    after_help = after_help(EXIT, &[CLOCK, ENV_NO_COLOR])
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export raw documents (from a store, or from inputs via a temporary SQLite store) into
    /// aoc-dataset-<hash>.tar.gz plus aoc-dataset-<hash>.manifest.json.
    #[command(after_help = build_help())]
    Build {
        /// Export this store: sqlite:PATH, postgres://USER@HOST:PORT/DB[?sslmode=...] or a libpq
        /// key=value string; without --store and --from, the one in STELLA_STORE.
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
        /// Output: text (summary on stderr, `<hash>  <archive>` on stdout) or json (one document
        /// on stdout).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
        format: OutputFormat,
    },
    /// Verify a dataset archive: contents, manifest (inside and sidecar), hash in the name, the AOC
    /// guard and revision chains over every record.
    #[command(after_help = after_help(EXIT, &[TMPDIR, ENV_NO_COLOR]))]
    Verify {
        path: PathBuf,
        /// Fail unless the dataset has this hash (a pinned DATASET_HASH).
        #[arg(long)]
        expect_hash: Option<String>,
        /// Output: text (on stderr) or json (the report on stdout).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
        format: OutputFormat,
    },
}

const EXIT: &[(&str, &str)] = &[
    ("0", "success"),
    (
        "1",
        "verification failed (verify), or input records rejected (build)",
    ),
    (
        "2",
        "usage, unreadable or hostile archive, store or I/O error",
    ),
    aoc_term::EXIT_ENVIRONMENT_HELP,
    aoc_term::EXIT_INTERRUPTED_HELP,
];
const CLOCK: (&str, &str) = (
    "SOURCE_DATE_EPOCH",
    "the manifest's created_at, tar mtimes and, from inputs, ingested_at; else the wall clock",
);
const TMPDIR: (&str, &str) = ("TMPDIR", "temporary copies and the build's working store");

fn build_help() -> String {
    let mut env = vec![
        (
            "STELLA_STORE",
            "the store when neither --store nor --from is given",
        ),
        CLOCK,
        TMPDIR,
    ];
    env.extend_from_slice(aoc_store::ENV_HELP);
    env.push(ENV_NO_COLOR);
    after_help(EXIT, &env)
}

fn main() -> ExitCode {
    // A usage error under `--format json` is a failure document on stdout too.
    let cli: Cli = aoc_term::failure::parse();
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
            // A signal stops the build between batches, rows and packed chunks; its staging
            // directory goes with it.
            aoc_term::interrupt::stop_at_batch_boundaries("aoc-dataset build");
            match build(store, &from, &opts) {
                Ok(report) => {
                    for note in &report.notes {
                        eprintln!("aoc-dataset: note: {}", escape(note));
                    }
                    print_build(&report, format).map_or_else(|e| failed(&e, 2, format), |()| 0)
                }
                Err(e) => {
                    let code = match e.downcast_ref::<BuildError>() {
                        Some(BuildError::Load(LoadError::Rejected { .. })) => 1,
                        Some(BuildError::Environment(_)) => aoc_term::EXIT_ENVIRONMENT,
                        Some(BuildError::Interrupted { .. }) => aoc_term::interrupt::received()
                            .unwrap_or(aoc_term::interrupt::Signal::INT)
                            .exit_code(),
                        _ => 2,
                    };
                    failed(&e, code, format)
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
            // Nothing but unlinked temporary files is written: a signal ends it at once.
            aoc_term::interrupt::exit_on_signal("aoc-dataset verify", "nothing was written");
            let progress = Progress::spinner(format!("aoc-dataset: verifying {}", path.display()));
            let verified = verify_with(&path, &options);
            drop(progress);
            match verified {
                Ok(report) => {
                    print_verify(&report, format).map_or_else(|e| failed(&e, 2, format), |()| 0)
                }
                Err(VerifyError::Failed(report)) => {
                    for f in &report.failures {
                        // Member names and messages come from the archive; a check on the
                        // archive itself does not name it twice.
                        let line = format!(
                            "{}: {}",
                            report.archive.display(),
                            f.in_archive(&report.archive)
                        );
                        eprintln!("aoc-dataset: FAIL {}", escape(&line));
                    }
                    if report.failure_count > report.failures.len() as u64 {
                        eprintln!(
                            "aoc-dataset: ... {} failures in total",
                            report.failure_count
                        );
                    }
                    print_verify(&report, format).map_or_else(|e| failed(&e, 2, format), |()| 1)
                }
                Err(e) => {
                    let code = e.exit_code();
                    failed(&e.into(), code, format)
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
        let location = StoreLocation::parse(&url).context("the store (--store or STELLA_STORE)")?;
        let shown = location.redacted();
        // An export only reads: never a migration or any other write to the store.
        let mut store = Store::open_location(&location, aoc_store::OpenMode::ReadOnly)
            .with_context(|| format!("cannot open store {shown}"))?;
        let _progress = Progress::spinner(format!("aoc-dataset: exporting {shown}"));
        Ok(build_from_store(&mut store, opts)?)
    } else {
        for p in from {
            anyhow::ensure!(p.exists(), "input {} does not exist", p.display());
        }
        let progress = Progress::counter("aoc-dataset: loading inputs", "records");
        let events = |event: aoc_ingest::Event| {
            if let aoc_ingest::Event::Progress(records) = event {
                progress.set_position(records);
            }
        };
        Ok(build_from_inputs_observed(from, opts, &events)?)
    }
}

/// Reports a failure: the error (each cause once, escaped) on stderr and, under `--format json`,
/// the failure document on stdout. Returns `exit_code`.
fn failed(e: &anyhow::Error, exit_code: u8, format: OutputFormat) -> u8 {
    aoc_term::report_failure("aoc-dataset", e.as_ref(), exit_code, format.is_json())
}

/// Every write to stdout goes through here: a reader that closed it early (`| head`) ends the
/// output quietly and the command keeps its own exit code; another write error is an I/O error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    aoc_term::failure::write_stdout(bytes).context("writing to stdout")
}

fn print_build(report: &BuildReport, format: OutputFormat) -> anyhow::Result<()> {
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
            // The one line of data: `HASH  ARCHIVE`.
            print(format!("{}  {}\n", report.hash, report.archive.display()).as_bytes())
        }
        OutputFormat::Json => print(&aoc_term::pretty_json(&json!({
            "ok": true,
            "hash": report.hash,
            "archive": report.archive,
            "manifest": report.manifest_path,
            "archive_sha256": report.archive_sha256.to_string(),
            "archive_bytes": report.archive_bytes,
            "records": report.records(),
            "files": report.files(),
        }))),
    }
}

fn print_verify(report: &VerifyReport, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {
            for note in &report.notes {
                eprintln!("aoc-dataset: note: {}", escape(note));
            }
            if report.passed() {
                eprintln!(
                    "OK {}  {}: {} files, {} records, {} upstream documents",
                    report.hash,
                    report.archive.display(),
                    report.files.len(),
                    report.records,
                    report.upstream_documents
                );
            }
            Ok(())
        }
        OutputFormat::Json => print(&aoc_term::pretty_json(&json!({
            "ok": report.passed(),
            "archive": report.archive,
            "hash": report.hash,
            "files": report.files,
            "records": report.records,
            "upstream_documents": report.upstream_documents,
            "failure_count": report.failure_count,
            // Escaped like the text: member names are the archive's.
            "failures": report.failures.iter().map(|f| json!({
                "file": escape(&f.file), "line": f.line, "check": f.check.to_string(),
                "message": escape(&f.message),
            })).collect::<Vec<_>>(),
            "notes": report.notes.iter().map(|n| escape(n)).collect::<Vec<_>>(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every leaf command: `--format`, its exit codes, every variable its code path reads, an
    /// `aoc-dataset ...` usage line.
    #[test]
    fn every_command_keeps_the_command_line_convention() {
        let problems = aoc_term::convention_problems(
            super::Cli::command(),
            "aoc-dataset",
            &[
                (
                    "build",
                    &[
                        "STELLA_STORE",
                        "SOURCE_DATE_EPOCH",
                        "TMPDIR",
                        "PGHOST",
                        "PGHOSTADDR",
                        "PGPORT",
                        "PGUSER",
                        "PGDATABASE",
                        "PGOPTIONS",
                        "PGAPPNAME",
                        "PGCONNECT_TIMEOUT",
                        "PGSSLMODE",
                        "PGSSLROOTCERT",
                        "PGPASSWORD",
                        "PGPASSFILE",
                        "HOME",
                        "NO_COLOR",
                    ],
                ),
                ("verify", &["TMPDIR", "NO_COLOR"]),
            ],
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        super::Cli::command().debug_assert();
    }
}
