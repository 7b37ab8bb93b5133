//! `stella aoc backfill`: upstream inputs into the append-only raw store through the ingest
//! engine (`aoc_ingest::Backfill`), batch by batch.
//!
//! Each batch is one transaction that also stores the run's checkpoint (the inputs' position,
//! bytes of the rejects file, the run clock), so a run killed at any moment and started again with
//! the same arguments seeks to where the last committed batch ended and ends in the state of an
//! uninterrupted run. Accounting: input records = written + no-ops + rejected + deletions recorded.

use crate::inputs::{self, AllowEmpty, DatasetPin};
use crate::{check_inputs, MapArgs, Outcome};
use anyhow::Context;
use aoc_contract::{clock, GuardOptions};
use aoc_digest::Sha256Digest;
use aoc_ingest::engine::peak_rss_bytes;
use aoc_ingest::report::{BackfillReport, MetricsRecorder};
use aoc_ingest::{Backfill, Event, Rejects, Source};
use aoc_store::{Store, StoreLocation};
use aoc_term::{is_stdout, one_stdout, pretty_json, write_report, Format, Progress};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    /// Inputs: OSV/CSAF JSON files or directories, NDJSON revision feeds (.zst/.gz read directly).
    #[arg(long, num_args = 1.., required = true)]
    from: Vec<PathBuf>,
    /// The raw store: sqlite:PATH (embedded), postgres://USER@HOST:PORT/DB[?sslmode=...]
    /// or a libpq key=value string ("host=HOST dbname=DB"); PG* variables fill what it leaves out.
    /// Required (a dry run opens none): no store is created where nobody asked for one.
    #[arg(long, env = "STELLA_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Source vendor (default: derived from each document).
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    map: MapArgs,
    #[command(flatten)]
    pin: DatasetPin,
    #[command(flatten)]
    empty: AllowEmpty,
    /// Input records per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Map and guard everything, write nothing; prints the SHA-256 of the report.
    #[arg(long)]
    dry_run: bool,
    /// Stop at the first rejected record (after committing what came before it).
    #[arg(long)]
    stop_on_error: bool,
    /// Idempotency conflicts (ERR_AOC_003) tolerated before the run stops.
    #[arg(long, default_value_t = 0)]
    max_conflicts: u64,
    /// Write the JSON run report here (`-`: stdout).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write every rejected record, with its violations, here (NDJSON; a file, which a resumed
    /// run appends to).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write Prometheus metrics here (`-`: stdout).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Never draw a progress bar (it is drawn only on a terminal without NO_COLOR anyway).
    #[arg(long)]
    no_progress: bool,
    /// Output: text (summary on stderr) or json (the run report on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
}

pub fn run(args: BackfillArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // SIGINT/SIGTERM: the run stops at the next batch boundary (a second signal: at once).
    let stop = aoc_term::interrupt::stop_at_batch_boundaries("stella aoc backfill");
    check_arguments(&args)?;
    let run_key = run_key(&args)?;
    let location = store_location(&args)?;
    // Datasets are verified (and checked against a pinned hash) before the store is even opened.
    let mut source = {
        // A dataset's integrity pass writes nothing and has no batch boundary: a signal during
        // it ends the run at once.
        let _at_once = aoc_term::interrupt::nothing_written_yet("nothing was written");
        inputs::open(&args.from, &args.pin)?
    };
    args.empty.check_files(&source, &args.from)?;
    let mut store = open_store(location.as_ref(), args.dry_run)?;
    let mut outcome = backfill(&args, run_key, stop, &mut source, store.as_mut())?;
    args.empty
        .check_records(outcome.report.records, &args.from)?;

    let mut report = std::mem::take(&mut outcome.report);
    report.tool = "stella".into();
    report.version = env!("CARGO_PKG_VERSION").into();
    report.store = location.as_ref().map(|l| l.redacted()).unwrap_or_default();
    report.files_skipped = source.skipped_files().len() as u64;
    report.inputs = args.from.iter().map(|p| p.display().to_string()).collect();
    let mut metrics = std::mem::take(&mut outcome.metrics);
    if let Some(s) = &mut store {
        for c in s.counts()?.by_source {
            metrics.revisions(c.vendor, c.tenant, c.documents);
        }
    }
    metrics.observe("total", started.elapsed().as_secs_f64());
    if !args.dry_run {
        report.duration_seconds = Some(started.elapsed().as_secs_f64());
        report.peak_rss_bytes = peak_rss_bytes();
    }
    let body = pretty_json(&report);
    write_outputs(&args, &report, &body, metrics)?;
    summary(&report, started.elapsed().as_secs_f64());
    hints(&args, &report, &body)?;
    // Marked complete only once the report and the rejects file are in place: a run killed
    // before this point resumes at its end and writes them; the next run starts afresh. A
    // stopped run is finished too: the same arguments meet the same stop again.
    if let Some(s) = &mut store {
        outcome.mark_complete(s)?;
    }
    Ok(if report.stopped.is_some() || report.rejected > 0 {
        Outcome::Violations
    } else {
        Outcome::Clean
    })
}

fn to_stdout(path: &Option<PathBuf>) -> bool {
    path.as_deref().is_some_and(is_stdout)
}

/// The inputs exist, at most one output goes to stdout, and every output file can be written,
/// checked before the first batch: a run never commits and then loses its report.
fn check_arguments(args: &BackfillArgs) -> anyhow::Result<()> {
    check_inputs(&args.from)?;
    one_stdout(&[
        ("--format json", args.format.is_json()),
        ("--report -", to_stdout(&args.report)),
        ("--metrics -", to_stdout(&args.metrics)),
    ])?;
    anyhow::ensure!(
        !to_stdout(&args.rejects),
        "--rejects -: the rejects file is appended to by a resumed run, so it must be a file"
    );
    crate::outputs::check(&[
        ("--report", args.report.as_deref(), "the run report"),
        ("--metrics", args.metrics.as_deref(), "the metrics"),
        ("--rejects", args.rejects.as_deref(), "the rejects file"),
    ])
}

/// Parsed once: what is opened, and the name every message and the report give it (never with
/// its password). Only a dry run goes without one.
fn store_location(args: &BackfillArgs) -> anyhow::Result<Option<StoreLocation>> {
    let location = args
        .store
        .as_deref()
        .map(|s| StoreLocation::parse(s).context("the store (--store or STELLA_STORE)"))
        .transpose()?;
    anyhow::ensure!(
        location.is_some() || args.dry_run,
        "no store given: name it with --store (sqlite:PATH or postgres://USER@HOST/DB) or set \
         STELLA_STORE"
    );
    Ok(location)
}

/// The store, read-write (none for a dry run).
fn open_store(location: Option<&StoreLocation>, dry_run: bool) -> anyhow::Result<Option<Store>> {
    let Some(location) = location.filter(|_| !dry_run) else {
        return Ok(None);
    };
    let store = Store::open_location(location, aoc_store::OpenMode::ReadWrite)
        .with_context(|| format!("cannot open store {location}"))?;
    // Only a writing command migrates a store, and says so: read-only commands refuse it.
    if let Some((from, to)) = store.upgraded_schema() {
        aoc_term::say(format!(
            "stella: store {location} migrated from schema version {from} to {to}"
        ));
    }
    Ok(Some(store))
}

/// The ingest engine over the inputs, with a progress counter and the resume message.
fn backfill(
    args: &BackfillArgs,
    run_key: String,
    stop: &'static AtomicBool,
    source: &mut Source,
    store: Option<&mut Store>,
) -> anyhow::Result<aoc_ingest::Outcome> {
    let progress = if args.no_progress {
        Progress::hidden()
    } else {
        Progress::counter("stella aoc backfill", "records")
    };
    let events = |event: Event| match event {
        Event::Resumed(records) => aoc_term::say(format!(
            "stella: resuming after {records} records (checkpoint of an interrupted run)"
        )),
        Event::Progress(records) => progress.set_position(records),
    };
    let engine = Backfill {
        tenant: args.map.tenant.clone(),
        vendor: args.source.clone(),
        guard: GuardOptions {
            require_signature: args.map.require_signature,
            ..GuardOptions::default()
        },
        connector_version: env!("CARGO_PKG_VERSION").into(),
        batch_size: args.batch_size as usize,
        stop_on_error: args.stop_on_error,
        max_conflicts: args.max_conflicts,
        rejects: args.rejects.clone().map(Rejects::File).unwrap_or_default(),
        run_key: Some(run_key),
        clock: clock::run_epoch().map_err(anyhow::Error::msg)?,
        events: Some(&events),
        stop: Some(stop),
    };
    Ok(engine.run(source, store)?)
}

/// The run report (`body`) and the metrics where they were asked for.
fn write_outputs(
    args: &BackfillArgs,
    report: &BackfillReport,
    body: &[u8],
    metrics: MetricsRecorder,
) -> anyhow::Result<()> {
    // Every batch is in; the run is marked complete only once its outputs are written, so a
    // failure here (checked before work, but a disk can still fill) loses nothing: it says so.
    let committed = |flag: &str| {
        if report.dry_run {
            format!("{flag}: a dry run, nothing was written")
        } else {
            format!(
                "{flag}: all {} records are committed, but the run is not marked complete: run \
                 the same command again to write its outputs",
                report.records
            )
        }
    };
    if let Some(path) = &args.report {
        write_report(path, body).with_context(|| committed("--report"))?;
    }
    if let Some(path) = &args.metrics {
        write_report(path, metrics.finish().render().as_bytes())
            .with_context(|| committed("--metrics"))?;
    }
    if args.format.is_json() {
        write_report(std::path::Path::new(aoc_term::STDOUT), body)?;
    }
    Ok(())
}

/// How to keep the rejected records, and a dry run's one line of data (the report's digest).
fn hints(args: &BackfillArgs, report: &BackfillReport, body: &[u8]) -> anyhow::Result<()> {
    if report.rejected > 0 && args.rejects.is_none() {
        aoc_term::say(format!(
            "stella: {} record(s) rejected: run again with --rejects FILE to keep each with its \
             violations (what was written is a no-op the second time)",
            report.rejected
        ));
    }
    // The dry run's one line of data, unless stdout carries something else already.
    let stdout_used = args.format.is_json() || to_stdout(&args.report) || to_stdout(&args.metrics);
    if report.dry_run && !stdout_used {
        let line = format!("report {}\n", Sha256Digest::of(body).prefixed());
        aoc_term::failure::write_stdout(line.as_bytes()).context("writing to stdout")?;
    }
    Ok(())
}

/// The run's one summary line on stderr; a dry run says what it would have done.
fn summary(report: &BackfillReport, secs: f64) {
    let counts = if report.dry_run {
        // No store is read: whether a document would be a no-op is not known.
        format!(
            "would write {}, would reject {}, would record {} deletions",
            report.written, report.rejected, report.deletions
        )
    } else {
        format!(
            "{} written, {} no-op, {} rejected, {} deletions recorded, {} conflicts",
            report.written, report.noop, report.rejected, report.deletions, report.conflicts
        )
    };
    eprintln!(
        "stella aoc backfill{}: {} records: {counts} in {secs:.2}s ({:.0} records/s{}){}{}",
        if report.dry_run {
            " --dry-run (no store opened)"
        } else {
            ""
        },
        report.records,
        report.read as f64 / secs.max(1e-9),
        report
            .peak_rss_bytes
            .map(|b| format!(", peak RSS {} MiB", b >> 20))
            .unwrap_or_default(),
        match report.files_skipped {
            0 => String::new(),
            n => format!("; {n} file(s) skipped by name"),
        },
        // The reason names a record's location: an input's file name.
        report
            .stopped
            .as_deref()
            .map(|s| format!("; stopped: {}", aoc_term::escape(s)))
            .unwrap_or_default(),
    );
}

/// The exit code of a backfill refused because another run is writing to the same store for
/// the same tenant and source ([`aoc_store::StoreError::WriterBusy`]): nothing was written, and
/// the same command succeeds once that run has ended.
pub const EXIT_STORE_BUSY: u8 = 4;

/// The exit code of a failed command: [`EXIT_STORE_BUSY`] for a store another run is writing,
/// else [`Outcome::Error`].
pub fn failure_exit_code(e: &anyhow::Error) -> u8 {
    let busy = e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<aoc_store::StoreError>(),
            Some(aoc_store::StoreError::WriterBusy { .. })
        )
    });
    if busy {
        EXIT_STORE_BUSY
    } else {
        Outcome::Error as u8
    }
}

/// Identifies "the same arguments": inputs (path, size, mtime), tenant, vendor, options.
fn run_key(args: &BackfillArgs) -> anyhow::Result<String> {
    let mut inputs = Vec::new();
    for p in &args.from {
        let meta = std::fs::metadata(p).ok();
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let mtime = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos());
        inputs.push(json!({ "path": abs.display().to_string(), "bytes": meta.map(|m| m.len()), "mtime_ns": mtime.map(|n| n.to_string()) }));
    }
    let key = json!({ "inputs": inputs, "tenant": args.map.tenant, "source": args.source, "require_signature": args.map.require_signature });
    Ok(format!(
        "backfill:{}",
        Sha256Digest::of(key.to_string()).to_hex()
    ))
}
