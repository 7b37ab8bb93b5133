//! `stella aoc backfill`: upstream inputs into the append-only raw store, batch by batch.
//!
//! Each batch is one transaction that also stores the run's checkpoint (records consumed, bytes of
//! the rejects file), so a run killed at any moment and started again with the same arguments
//! resumes after the last committed batch and ends in the state of an uninterrupted run.
//! Accounting: input records = written + no-ops + rejected + deletions recorded.

use crate::metrics::Metrics;
use crate::output::{pretty_json, redact, write_atomic};
use crate::source::{DatasetPin, Source};
use crate::{check_inputs, MapArgs, Outcome};
use anyhow::Context;
use aoc_contract::{clock, GuardOptions, MapContext, UpstreamKey, ViolationCode};
use aoc_ingest::{Prepared, Preparer};
use aoc_store::{Batch, Checkpoint, Deletion, DocOutcome, Store, StoreDoc, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    /// Inputs: OSV/CSAF JSON files or directories, NDJSON revision feeds (.zst/.gz read directly).
    #[arg(long, num_args = 1.., required = true)]
    from: Vec<PathBuf>,
    /// The raw store: sqlite://PATH (embedded default) or
    /// postgres://USER@HOST:PORT/DB[?sslmode=...].
    #[arg(
        long,
        env = "STELLA_STORE",
        hide_env_values = true,
        default_value = "sqlite://stella-aoc.db"
    )]
    store: String,
    /// Source vendor (default: derived from each document).
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    map: MapArgs,
    #[command(flatten)]
    pin: DatasetPin,
    /// Documents per transaction.
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
    /// Write the JSON run report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write every rejected record, with its violations, here (NDJSON).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write Prometheus metrics here.
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Never draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

/// The run report (`--report`); the dry-run report has no timings, so its SHA-256 is reproducible.
#[derive(Debug, Default, Serialize)]
struct Report {
    tool: &'static str,
    version: &'static str,
    dry_run: bool,
    store: String,
    tenant: String,
    inputs: Vec<String>,
    /// Released datasets among the inputs, verified before loading: (path, hash).
    datasets: Vec<(String, String)>,
    records: u64,
    written: u64,
    noop: u64,
    rejected: u64,
    deletions: u64,
    conflicts: u64,
    resumed_after_records: u64,
    stopped: Option<String>,
    by_code: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<f64>,
    /// Peak resident memory of the runner (Linux `VmHWM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_bytes: Option<u64>,
}

/// The checkpoint's opaque position, as the runner encodes it.
///
/// It also keeps the run's clock: a resumed run stamps `ingested_at` with the interrupted run's
/// time, so its documents are exactly those an uninterrupted run would have written. A finished
/// run marks its checkpoint `complete`, and the next run with the same arguments starts afresh
/// (and finds every document already stored: no-ops).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Position {
    records: u64,
    rejects_bytes: u64,
    clock: String,
    complete: bool,
}

impl Position {
    fn encode(&self) -> String {
        json!({
            "records": self.records,
            "rejects_bytes": self.rejects_bytes,
            "clock": self.clock,
            "complete": self.complete,
        })
        .to_string()
    }

    fn decode(s: &str) -> anyhow::Result<Position> {
        let v: Value = serde_json::from_str(s).context("unreadable checkpoint position")?;
        let n = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .with_context(|| format!("checkpoint position lacks {k}"))
        };
        Ok(Position {
            records: n("records")?,
            rejects_bytes: n("rejects_bytes")?,
            clock: v
                .get("clock")
                .and_then(Value::as_str)
                .context("checkpoint position lacks clock")?
                .to_owned(),
            complete: v.get("complete").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// The rejects file, appended to `<name>.partial` and renamed into place when the run ends, so a
/// complete file appears only for a complete run; a resumed run truncates the partial file to the
/// length its checkpoint recorded and carries on.
struct Rejects {
    file: Option<(File, PathBuf, PathBuf)>,
    bytes: u64,
}

impl Rejects {
    fn open(path: Option<&Path>, resume_at: Option<u64>) -> anyhow::Result<Rejects> {
        let Some(path) = path else {
            return Ok(Rejects {
                file: None,
                bytes: 0,
            });
        };
        let partial = PathBuf::from(format!("{}.partial", path.display()));
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .read(true)
            .truncate(false)
            .open(&partial)
            .with_context(|| format!("cannot open {}", partial.display()))?;
        let bytes = resume_at.unwrap_or(0);
        file.set_len(bytes)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Rejects {
            file: Some((file, partial, path.to_owned())),
            bytes,
        })
    }

    fn write(&mut self, entry: &Value) -> anyhow::Result<()> {
        if let Some((file, ..)) = &mut self.file {
            let mut line = serde_json::to_vec(entry)?;
            line.push(b'\n');
            file.write_all(&line)?;
            self.bytes += line.len() as u64;
        }
        Ok(())
    }

    /// Durable before the checkpoint that counts these bytes commits.
    fn sync(&mut self) -> anyhow::Result<()> {
        if let Some((file, ..)) = &mut self.file {
            file.sync_data()?;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.sync()?;
        if let Some((_, partial, path)) = self.file.take() {
            std::fs::rename(&partial, &path)
                .with_context(|| format!("renaming into {}", path.display()))?;
        }
        Ok(())
    }
}

/// Everything one run accumulates.
struct Run {
    report: Report,
    metrics: Metrics,
    rejects: Rejects,
    /// Dry run only: (key, hash) pairs seen, to count in-input duplicates as no-ops.
    seen: HashSet<(UpstreamKey, String)>,
}

impl Run {
    fn reject(
        &mut self,
        location: &str,
        doc: Option<&Value>,
        error: Option<&str>,
        violations: &[aoc_contract::Violation],
        tenant: &str,
    ) -> anyhow::Result<()> {
        let source = doc
            .and_then(|d| d.pointer("/source/vendor"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        self.report.rejected += 1;
        self.metrics.write(source, tenant, "reject");
        for v in violations {
            *self.report.by_code.entry(v.code.as_str()).or_default() += 1;
            self.metrics.violation(source, tenant, v.code.as_str());
        }
        self.rejects.write(&json!({
            "location": location,
            "error": error,
            "violations": violations,
            "document": doc,
        }))
    }
}

pub fn run(args: BackfillArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    check_inputs(&args.from)?;
    let run_key = run_key(&args)?;
    // Datasets are verified (and checked against a pinned hash) before the store is even opened.
    let mut reader = Source::open(&args.from, &args.pin)?;
    let mut store = if args.dry_run {
        None
    } else {
        Some(
            Store::open(&args.store)
                .with_context(|| format!("cannot open store {}", redact(&args.store)))?,
        )
    };
    let checkpoint = match &mut store {
        Some(s) => s.checkpoint(&run_key)?,
        None => None,
    };
    let resume = checkpoint
        .as_ref()
        .map(|c| Position::decode(&c.position))
        .transpose()?
        .filter(|p| !p.complete);
    let checkpoint = checkpoint.filter(|_| resume.is_some());
    let now = match &resume {
        Some(p) => p.clock.clone(),
        None => clock::rfc3339(clock::run_epoch().map_err(anyhow::Error::msg)?),
    };
    let tenant = args.map.tenant.clone();
    let ctx = MapContext {
        tenant: tenant.clone(),
        vendor: args.source.clone(),
        connector_version: env!("CARGO_PKG_VERSION").into(),
        retrieved_at: now.clone(),
        ingested_at: now.clone(),
    };
    let options = GuardOptions {
        require_signature: args.map.require_signature,
        ..GuardOptions::default()
    };
    let mut preparer = Preparer::new(ctx, options);
    let datasets = reader.datasets.clone();
    let mut run = Run {
        report: Report {
            tool: "stella",
            version: env!("CARGO_PKG_VERSION"),
            dry_run: args.dry_run,
            store: redact(&args.store),
            tenant: tenant.clone(),
            inputs: args.from.iter().map(|p| p.display().to_string()).collect(),
            datasets,
            by_code: ViolationCode::ALL.iter().map(|c| (c.as_str(), 0)).collect(),
            ..Report::default()
        },
        metrics: Metrics::default(),
        rejects: Rejects::open(
            args.rejects.as_deref(),
            resume.as_ref().map(|p| p.rejects_bytes),
        )?,
        seen: HashSet::new(),
    };
    if let (Some(s), None) = (&mut store, &resume) {
        // Record the run's clock before any document is written, so that a run killed even
        // before its first batch commits resumes with the same clock.
        let start = Position {
            clock: now.clone(),
            ..Position::default()
        };
        let cp = Checkpoint {
            run_key: run_key.clone(),
            position: start.encode(),
            ..Checkpoint::default()
        };
        s.write_batch(&Batch {
            docs: &[],
            deletions: &[],
            checkpoint: Some(&cp),
        })?;
    }
    if let (Some(cp), Some(pos)) = (&checkpoint, &resume) {
        let skipped = reader.skip_records(pos.records)?;
        anyhow::ensure!(skipped == pos.records, "checkpoint is past the end of the inputs ({} of {} records): inputs changed since the interrupted run", skipped, pos.records);
        run.report.resumed_after_records = pos.records;
        run.report.written = cp.written as u64;
        run.report.noop = cp.noop as u64;
        run.report.rejected = cp.rejected as u64;
        run.report.deletions = cp.deleted as u64;
        eprintln!(
            "stella: resuming after {} records (checkpoint of an interrupted run)",
            pos.records
        );
    }

    let progress = progress_bar(args.no_progress);
    let mut prepare_time = Duration::ZERO;
    let mut records = reader.position();
    // Two stages on two cores: this thread maps and guards the next batch while the store
    // writes the previous one. Batches arrive in input order, each with the position after it,
    // so checkpoints and the rejects file advance exactly as in a sequential run.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Pending>(2);
        let batch_size = args.batch_size as usize;
        let stop_on_error = args.stop_on_error;
        let producer = scope
            .spawn(move || produce(&mut reader, &mut preparer, batch_size, stop_on_error, &tx));
        for mut batch in rx.iter() {
            prepare_time += batch.prepare_time;
            records = batch.records;
            for r in std::mem::take(&mut batch.rejects) {
                run.reject(
                    &r.location,
                    r.doc.as_ref(),
                    r.error.as_deref(),
                    &r.violations,
                    &tenant,
                )?;
            }
            if let Some(why) = batch.stop.take() {
                run.report.stopped = Some(why);
            }
            let mut position = Position {
                records,
                rejects_bytes: run.rejects.bytes,
                clock: now.clone(),
                complete: false,
            };
            commit(
                &mut store,
                &mut run,
                &run_key,
                &mut position,
                &mut batch,
                &tenant,
                args.max_conflicts,
            )?;
            progress.set_position(records);
            if run.report.conflicts > args.max_conflicts {
                run.report.stopped = Some(format!(
                    "{} idempotency conflicts exceed --max-conflicts {}",
                    run.report.conflicts, args.max_conflicts
                ));
            }
            if run.report.stopped.is_some() {
                break; // dropping the receiver stops the producer
            }
        }
        drop(rx);
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("input reader thread panicked"))?
    })?;
    progress.finish_and_clear();
    run.metrics.observe("map_guard", prepare_time.as_secs_f64());
    run.report.records = records;
    if let Some(s) = &mut store {
        for c in s.counts()?.by_source {
            run.metrics
                .revisions
                .insert((c.vendor, c.tenant), c.documents);
        }
    }
    run.metrics
        .observe("total", started.elapsed().as_secs_f64());
    if !args.dry_run {
        run.report.duration_seconds = Some(started.elapsed().as_secs_f64());
        run.report.peak_rss_bytes = peak_rss_bytes();
    }
    let last = Position {
        records,
        rejects_bytes: run.rejects.bytes,
        clock: now.clone(),
        complete: true,
    };
    let outcome = finish(&args, run, started)?;
    // Marked complete only once the report and the rejects file are in place: a run killed
    // before this point resumes at its end and writes them; the next run starts afresh. A
    // stopped run is finished too: the same arguments meet the same stop again.
    if let Some(s) = &mut store {
        let totals = s.checkpoint(&run_key)?.unwrap_or_default();
        let cp = Checkpoint {
            run_key: run_key.clone(),
            position: last.encode(),
            ..totals
        };
        s.write_batch(&Batch {
            docs: &[],
            deletions: &[],
            checkpoint: Some(&cp),
        })?;
    }
    Ok(outcome)
}

/// A batch being gathered: documents and where each came from, kept apart so the documents can
/// be handed to the store without copying.
#[derive(Default)]
struct Pending {
    /// Read and rendered for the store here, on the mapping thread: the writer only splices in
    /// each document's `supersedes`.
    docs: Vec<StoreDoc>,
    locations: Vec<String>,
    deletions: Vec<Deletion>,
    /// Records refused while gathering this batch, in input order.
    rejects: Vec<Rejection>,
    /// Input records consumed once this batch is done: its checkpoint position.
    records: u64,
    /// Set when the run must stop after this batch (`--stop-on-error`).
    stop: Option<String>,
    prepare_time: Duration,
}

struct Rejection {
    location: String,
    doc: Option<Value>,
    error: Option<String>,
    violations: Vec<aoc_contract::Violation>,
}

/// The first stage: reads and prepares records into batches of `batch_size` documents; ends at
/// the end of the input, at a stop, or when the writer hangs up.
fn produce(
    reader: &mut Source,
    preparer: &mut Preparer,
    batch_size: usize,
    stop_on_error: bool,
    tx: &std::sync::mpsc::SyncSender<Pending>,
) -> anyhow::Result<()> {
    let mut batch = Pending::default();
    loop {
        let t = Instant::now();
        let record = reader.next_record()?;
        let end = record.is_none();
        if let Some(record) = record {
            match preparer.prepare(record) {
                Prepared::Doc { location, doc } => match StoreDoc::from_value(&doc) {
                    Ok(d) => {
                        batch.docs.push(d);
                        batch.locations.push(location);
                    }
                    // The guard passed it, so this is a mapping bug: refused, never dropped.
                    Err(message) => batch.reject(
                        stop_on_error,
                        Rejection {
                            location,
                            doc: Some(doc),
                            error: Some(message),
                            violations: Vec::new(),
                        },
                    ),
                },
                Prepared::Deleted {
                    location,
                    key,
                    recorded_at,
                } => {
                    batch.deletions.push(Deletion {
                        key,
                        recorded_at,
                        location,
                    });
                }
                Prepared::Rejected {
                    location,
                    error,
                    violations,
                    doc,
                } => batch.reject(
                    stop_on_error,
                    Rejection {
                        location,
                        doc,
                        error,
                        violations,
                    },
                ),
            }
        }
        batch.prepare_time += t.elapsed();
        if batch.docs.len() >= batch_size || end || batch.stop.is_some() {
            batch.records = reader.position();
            let last = end || batch.stop.is_some();
            if tx.send(std::mem::take(&mut batch)).is_err() || last {
                return Ok(());
            }
        }
    }
}

impl Pending {
    /// Books a refused record; with `--stop-on-error` the run stops after this batch.
    fn reject(&mut self, stop_on_error: bool, r: Rejection) {
        if stop_on_error {
            self.stop = Some(format!("--stop-on-error: record {} rejected", r.location));
        }
        self.rejects.push(r);
    }

    fn clear(&mut self) {
        self.docs.clear();
        self.locations.clear();
        self.deletions.clear();
    }
}

/// Writes one batch (documents, deletions, checkpoint) in one transaction and books the outcome.
/// The checkpoint carries the totals before the batch; the store adds the batch's own outcome in
/// the same transaction, so a resumed run restores exact totals.
fn commit(
    store: &mut Option<Store>,
    run: &mut Run,
    run_key: &str,
    position: &mut Position,
    batch: &mut Pending,
    tenant: &str,
    max_conflicts: u64,
) -> anyhow::Result<()> {
    let Some(store) = store else {
        // Dry run: count what would happen against the input alone.
        for doc in batch.docs.drain(..) {
            let source = doc.key().vendor.clone();
            if run
                .seen
                .insert((doc.key().clone(), doc.content_hash().to_owned()))
            {
                run.report.written += 1;
                run.metrics.write(&source, tenant, "ok");
            } else {
                run.report.noop += 1;
                run.metrics.write(&source, tenant, "noop");
            }
        }
        run.report.deletions += batch.deletions.len() as u64;
        batch.clear();
        return Ok(());
    };
    fault_point("before");
    loop {
        // Rejects up to this point must be durable before the checkpoint that counts them.
        run.rejects.sync()?;
        position.rejects_bytes = run.rejects.bytes;
        let checkpoint = Checkpoint {
            run_key: run_key.to_owned(),
            position: position.encode(),
            written: run.report.written as i64,
            noop: run.report.noop as i64,
            rejected: run.report.rejected as i64,
            deleted: run.report.deletions as i64,
        };
        let t = Instant::now();
        let result = store.write_batch(&Batch {
            docs: &batch.docs,
            deletions: &batch.deletions,
            checkpoint: Some(&checkpoint),
        });
        run.metrics.observe("write", t.elapsed().as_secs_f64());
        match result {
            Ok(outcome) => {
                for (doc, o) in batch.docs.iter().zip(&outcome.docs) {
                    let source = &doc.key().vendor;
                    let result = match o {
                        DocOutcome::Written(_) => {
                            run.report.written += 1;
                            "ok"
                        }
                        DocOutcome::Noop { .. } => {
                            run.report.noop += 1;
                            "noop"
                        }
                    };
                    run.metrics.write(source, tenant, result);
                }
                run.report.deletions += outcome.deletions_recorded as u64;
                run.report.noop += (batch.deletions.len() - outcome.deletions_recorded) as u64;
                batch.clear();
                fault_point("after");
                return Ok(());
            }
            Err(StoreError::InvalidDocument { index, message }) => {
                // A document whose `supersedes` disagrees with the store: an idempotency conflict.
                let doc = batch.docs.remove(index);
                let location = batch.locations.remove(index);
                run.report.conflicts += 1;
                let v = aoc_contract::Violation::new(
                    ViolationCode::Idempotency,
                    "/supersedes",
                    message,
                );
                run.reject(
                    &location,
                    Some(&doc.to_value()),
                    None,
                    std::slice::from_ref(&v),
                    tenant,
                )?;
                if run.report.conflicts > max_conflicts {
                    batch.clear();
                    return Ok(());
                }
            }
            Err(e) => return Err(e).context("writing a batch to the store"),
        }
    }
}

/// Fault injection for the crash-safety tests: `STELLA_FAULT_ABORT=before:N` (or `after:N`)
/// aborts the process, as a SIGKILL would, just before (after) the N-th batch commits.
fn fault_point(when: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BATCHES: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("STELLA_FAULT_ABORT") else {
        return;
    };
    // Batches are counted as they start; "after:N" fires once the N-th has committed.
    let n = if when == "before" {
        BATCHES.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        BATCHES.load(Ordering::SeqCst)
    };
    if spec.split_once(':') == Some((when, n.to_string().as_str())) {
        std::process::abort();
    }
}

fn finish(args: &BackfillArgs, run: Run, started: Instant) -> anyhow::Result<Outcome> {
    let Run {
        report,
        metrics,
        rejects,
        ..
    } = run;
    rejects.finish()?;
    let body = pretty_json(&report);
    if let Some(path) = &args.report {
        write_atomic(path, &body)?;
    }
    if let Some(path) = &args.metrics {
        write_atomic(path, metrics.render().as_bytes())?;
    }
    let secs = started.elapsed().as_secs_f64();
    let handled = report.records - report.resumed_after_records;
    eprintln!(
        "stella aoc backfill{}: {} records: {} written, {} no-op, {} rejected, {} deletions recorded, {} conflicts in {:.2}s ({:.0} records/s{}){}",
        if report.dry_run { " (dry run, nothing written)" } else { "" },
        report.records,
        report.written,
        report.noop,
        report.rejected,
        report.deletions,
        report.conflicts,
        secs,
        handled as f64 / secs.max(1e-9),
        report.peak_rss_bytes.map(|b| format!(", peak RSS {} MiB", b >> 20)).unwrap_or_default(),
        report.stopped.as_deref().map(|s| format!("; stopped: {s}")).unwrap_or_default(),
    );
    if report.dry_run {
        println!("report sha256:{}", hex::encode(Sha256::digest(&body)));
    }
    Ok(if report.stopped.is_some() || report.rejected > 0 {
        Outcome::Violations
    } else {
        Outcome::Clean
    })
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
        hex::encode(Sha256::digest(key.to_string().as_bytes()))
    ))
}

fn progress_bar(disabled: bool) -> ProgressBar {
    if disabled || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} records  {per_sec}  {elapsed}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Peak resident set size from `/proc/self/status` (`VmHWM`), where the kernel offers it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
