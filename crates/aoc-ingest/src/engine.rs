//! The one way records reach the append-only store: a [`Source`] read batch by batch, each batch
//! mapped and guarded on the mapping side (records spread over the cores) while the store writes
//! the previous one, and committed in one transaction together with the run's checkpoint.
//!
//! The checkpoint holds the source's [`Position`] after the batch (input, member, offset), the
//! length of the rejects journal and the run clock, so a run killed at any moment and started again
//! with the same arguments seeks to where the last committed batch ended, reads nothing it already
//! committed, and ends in the state of an uninterrupted run. Accounting: input records = written
//! + no-ops + rejected + deletions recorded.
//!
//! A run asked to stop ([`Backfill::stop`], set by SIGINT/SIGTERM) stops at the next batch
//! boundary: the batches committed are whole, the rejects journal holds exactly their rejections
//! (under its final name), and [`EngineError::Interrupted`] says what was committed. A run that
//! fails after committing batches says what it committed too ([`EngineError::AfterCommit`]).

use crate::input::{InputPosition, InputRecord, Item};
use crate::prepare::{Prepared, Preparer};
use crate::report::{zero_by_code, BackfillReport, MetricsRecorder};
use crate::source::{Position, Source, SourceError};
use aoc_contract::{clock, GuardOptions, MapContext, UpstreamKey, Violation, ViolationCode};
use aoc_store::{
    Batch, Checkpoint, Deletion, DocOutcome, Store, StoreDoc, StoreError, WriterScope,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::{Duration, Instant};

/// Why a run stopped with an error (rejected records and conflicts are not errors: they are
/// counted, journalled and reported).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{context}: {source}")]
    Store {
        context: &'static str,
        source: StoreError,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{0}")]
    Checkpoint(String),
    #[error("the store writer thread panicked")]
    Panicked,
    /// [`Backfill::stop`] was set: the run stopped at a batch boundary.
    #[error("interrupted: {0}")]
    Interrupted(Committed),
    /// An error after batches were committed (a truncated input, a lost connection): those
    /// batches stay, and the same arguments resume after them.
    /// (`error` is no `#[source]`: the message says it once.)
    #[error("{error}; {committed}")]
    AfterCommit {
        error: Box<EngineError>,
        committed: Committed,
    },
}

impl EngineError {
    /// What the store holds of this run's input when it ended early, if anything.
    pub fn committed(&self) -> Option<&Committed> {
        match self {
            EngineError::Interrupted(c) | EngineError::AfterCommit { committed: c, .. } => Some(c),
            _ => None,
        }
    }
}

/// What a run that ended early had committed: every batch up to the last checkpoint, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Input records behind the last committed checkpoint, an interrupted run's before this
    /// one's included.
    pub records: u64,
    /// Batches this run committed.
    pub batches: u64,
    /// Records committed by the interrupted run this one resumed (0: a fresh run).
    pub resumed_after: u64,
    pub written: u64,
    pub noop: u64,
    pub rejected: u64,
    pub deletions: u64,
    /// The rejects file, holding exactly the committed batches' rejections.
    pub rejects: Option<PathBuf>,
    /// Nothing is ever committed: a dry run.
    pub dry_run: bool,
    /// Checkpoints were kept ([`Backfill::run_key`]): the same arguments resume after them.
    pub resumable: bool,
}

impl std::fmt::Display for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dry_run {
            return write!(
                f,
                "dry run, nothing written ({} records read)",
                self.records
            );
        }
        if self.batches == 0 {
            write!(f, "this run committed no batch")?;
        } else {
            write!(
                f,
                "{} records committed (batches 1-{} of this run",
                self.records, self.batches
            )?;
            if self.resumed_after > 0 {
                write!(
                    f,
                    ", after the {} of the run it resumed",
                    self.resumed_after
                )?;
            }
            write!(
                f,
                "; in all {} written, {} no-op, {} rejected, {} deletions recorded)",
                self.written, self.noop, self.rejected, self.deletions
            )?;
        }
        if self.batches == 0 && self.resumed_after > 0 {
            write!(
                f,
                "; the {} records of the interrupted run before it stay",
                self.resumed_after
            )?;
        }
        if let (Some(path), true) = (&self.rejects, self.batches > 0 && self.rejected > 0) {
            write!(f, "; their rejections are in {}", path.display())?;
        }
        if self.resumable {
            write!(f, "; run the same command again to resume after them")?;
        }
        Ok(())
    }
}

/// Where refused records go.
#[derive(Debug, Clone, Default)]
pub enum Rejects {
    /// Counted only.
    #[default]
    Nowhere,
    /// Appended to this NDJSON file (through `<file>.partial`, renamed when the run ends).
    File(PathBuf),
    /// The first this many kept in [`Outcome::rejections`].
    Keep(usize),
}

/// What the engine tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Resuming an interrupted run after this many records.
    Resumed(u64),
    /// Records consumed so far (after each batch).
    Progress(u64),
}

/// One run's settings.
pub struct Backfill<'a> {
    pub tenant: String,
    /// Source vendor (default: derived from each document).
    pub vendor: Option<String>,
    pub guard: GuardOptions,
    /// Written into mapped documents' provenance.
    pub connector_version: String,
    /// Records per transaction.
    pub batch_size: usize,
    /// Stop at the first rejected record (after committing what came before it).
    pub stop_on_error: bool,
    /// Idempotency conflicts (ERR_AOC_003) tolerated before the run stops.
    pub max_conflicts: u64,
    pub rejects: Rejects,
    /// The checkpoint's key ("the same arguments"); `None`: no checkpoints, no resume.
    pub run_key: Option<String>,
    /// The run clock (`ingested_at`, and `retrieved_at` when an input has none) unless resuming:
    /// a resumed run keeps the interrupted run's clock.
    pub clock: i64,
    pub events: Option<&'a (dyn Fn(Event) + Sync)>,
    /// Polled at every batch boundary: once set, the run commits no further batch and ends with
    /// [`EngineError::Interrupted`] (SIGINT/SIGTERM set it).
    pub stop: Option<&'a AtomicBool>,
}

/// A refused record, as the rejects journal holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub location: String,
    pub error: Option<String>,
    pub violations: Vec<Violation>,
    pub document: Option<Value>,
}

impl Rejection {
    /// One line: the error, or the violations.
    pub fn reason(&self) -> String {
        match &self.error {
            Some(e) => e.clone(),
            None => self
                .violations
                .iter()
                .map(|v| format!("{} {} {}", v.code, v.path, v.message))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A finished run: its report (the engine's fields; the caller adds what only it knows), metrics,
/// kept rejections, and the checkpoint to mark complete once the caller's outputs are in place.
pub struct Outcome {
    pub report: BackfillReport,
    pub metrics: MetricsRecorder,
    pub rejections: Vec<Rejection>,
    complete: Option<(String, RunPosition)>,
}

impl Outcome {
    /// Marks the run complete, so that the next run with the same arguments starts afresh (and
    /// finds every document already stored). Call once the report and other outputs are written:
    /// a run killed before this resumes at its end and writes them.
    pub fn mark_complete(&self, store: &mut Store) -> Result<(), EngineError> {
        let Some((run_key, end)) = &self.complete else {
            return Ok(());
        };
        let totals = store
            .checkpoint(run_key)
            .map_err(|source| EngineError::Store {
                context: "reading the checkpoint",
                source,
            })?
            .unwrap_or_default();
        let cp = Checkpoint {
            run_key: run_key.clone(),
            position: end.encode(),
            ..totals
        };
        store
            .write_batch(&Batch {
                docs: &[],
                deletions: &[],
                checkpoint: Some(&cp),
            })
            .map_err(|source| EngineError::Store {
                context: "marking the run complete",
                source,
            })?;
        Ok(())
    }
}

/// Where a run is: its source's [`Position`], the length of its rejects journal and its clock,
/// encoded (JSON) as the `position` of the store's [`Checkpoint`]. The clock is kept because a
/// resumed run stamps `ingested_at` with the interrupted run's time, so its documents are exactly
/// those an uninterrupted run would have written. A finished run is marked `complete`, and the
/// next run with the same arguments starts afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RunPosition {
    records: u64,
    /// Absent in checkpoints of older runners, which recorded only a record count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<u64>,
    /// `cursor` in the checkpoints every runner has written: the name is the stored format.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "cursor")]
    within: Option<InputPosition>,
    rejects_bytes: u64,
    clock: String,
    #[serde(default)]
    complete: bool,
}

impl RunPosition {
    fn new(at: Position, rejects_bytes: u64, clock: &str, complete: bool) -> RunPosition {
        RunPosition {
            records: at.records,
            input: Some(at.input),
            within: Some(at.within),
            rejects_bytes,
            clock: clock.to_owned(),
            complete,
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain fields serialize")
    }

    fn decode(s: &str) -> Result<RunPosition, EngineError> {
        serde_json::from_str(s)
            .map_err(|e| EngineError::Checkpoint(format!("unreadable checkpoint position: {e}")))
    }

    /// The source's position; `None` in an older runner's checkpoint (a record count only).
    fn source_position(&self) -> Option<Position> {
        Some(Position {
            records: self.records,
            input: self.input?,
            within: self.within?,
        })
    }
}

impl Backfill<'_> {
    /// A run for `tenant` with clock `clock` (epoch seconds) and the defaults: vendors derived
    /// from documents, the default guard, batches of 500, rejections counted only, no stop, no
    /// checkpoints.
    pub fn new(tenant: impl Into<String>, clock: i64) -> Self {
        Backfill {
            tenant: tenant.into(),
            vendor: None,
            guard: GuardOptions::default(),
            connector_version: env!("CARGO_PKG_VERSION").into(),
            batch_size: 500,
            stop_on_error: false,
            max_conflicts: 0,
            rejects: Rejects::Nowhere,
            run_key: None,
            clock,
            events: None,
            stop: None,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Reads `source` to its end (or a stop) into `store` (`None`: a dry run, nothing written:
    /// documents are counted against the input alone). Resumes the interrupted run with the same
    /// [`run_key`](Self::run_key), if any.
    pub fn run(
        &self,
        source: &mut Source,
        mut store: Option<&mut Store>,
    ) -> Result<Outcome, EngineError> {
        if let Some(s) = &mut store {
            self.claim_writer(s)?;
        }
        let resume = match &mut store {
            Some(s) => self.interrupted_run(s)?,
            None => None,
        };
        let now = match &resume {
            Some((_, at)) => at.clock.clone(),
            None => clock::rfc3339(self.clock),
        };
        let mut run = Run {
            report: BackfillReport {
                tenant: self.tenant.clone(),
                dry_run: store.is_none(),
                datasets: source.labels(),
                by_code: zero_by_code(),
                ..BackfillReport::default()
            },
            metrics: MetricsRecorder::default(),
            rejects: Journal::open(
                &self.rejects,
                resume.as_ref().map(|(_, at)| at.rejects_bytes),
            )?,
            seen: HashSet::new(),
            tenant: self.tenant.clone(),
        };
        match (&mut store, &resume) {
            (Some(s), None) => self.record_clock(s, source.at(), &now)?,
            (_, Some((checkpoint, at))) => self.resume(source, &mut run, checkpoint, at)?,
            (None, None) => {}
        }
        let read_before = source.records_read();
        let dry_run = store.is_none();
        let resumed_after = source.at().records;
        let (result, w) = self.read_and_write(source, store, run, &now)?;
        let committed = self.committed(&w, resumed_after, dry_run);
        if let Err(e) = result {
            if committed.records > 0 && !dry_run {
                return Err(EngineError::AfterCommit {
                    error: Box::new(e),
                    committed,
                });
            }
            return Err(e);
        }
        let Written {
            mut run,
            position,
            prepare_time,
            interrupted,
            ..
        } = w;
        if interrupted {
            // The journal holds exactly the committed batches' rejections (a batch's are written
            // only as it is committed): under its final name, no partial file stays. A resumed
            // run takes it back as its partial file.
            run.rejects.finish()?;
            return Err(EngineError::Interrupted(committed));
        }
        run.metrics.observe("map_guard", prepare_time.as_secs_f64());
        run.report.records = position.records;
        run.report.read = source.records_read() - read_before;
        let rejects_bytes = run.rejects.bytes;
        let Run {
            report,
            metrics,
            rejects,
            ..
        } = run;
        let rejections = rejects.finish()?;
        Ok(Outcome {
            report,
            metrics,
            rejections,
            complete: match (dry_run, &self.run_key) {
                (false, Some(key)) => Some((
                    key.clone(),
                    RunPosition::new(position, rejects_bytes, &now, true),
                )),
                _ => None,
            },
        })
    }

    /// One writer per store, tenant and source, held until the store is closed (after the caller
    /// marks the run complete): a second run of the same arguments would otherwise resume this
    /// one's checkpoint while it runs, and both would report its totals.
    fn claim_writer(&self, store: &mut Store) -> Result<(), EngineError> {
        store
            .claim_writer(&WriterScope {
                tenant: &self.tenant,
                source: self.vendor.as_deref(),
            })
            .map_err(|source| EngineError::Store {
                context: "claiming the store for this run",
                source,
            })
    }

    /// The checkpoint of an interrupted run with this [`run_key`](Self::run_key), and where it
    /// was; `None` without a key, without a checkpoint, or when that run completed.
    fn interrupted_run(
        &self,
        store: &mut Store,
    ) -> Result<Option<(Checkpoint, RunPosition)>, EngineError> {
        let Some(key) = &self.run_key else {
            return Ok(None);
        };
        let checkpoint = store.checkpoint(key).map_err(|source| EngineError::Store {
            context: "reading the checkpoint",
            source,
        })?;
        let Some(checkpoint) = checkpoint else {
            return Ok(None);
        };
        let at = RunPosition::decode(&checkpoint.position)?;
        Ok((!at.complete).then_some((checkpoint, at)))
    }

    /// The run's clock is recorded before any document is written, so that a run killed even
    /// before its first batch commits resumes with the same clock.
    fn record_clock(&self, store: &mut Store, at: Position, now: &str) -> Result<(), EngineError> {
        let Some(key) = &self.run_key else {
            return Ok(());
        };
        let cp = Checkpoint {
            run_key: key.clone(),
            position: RunPosition::new(at, 0, now, false).encode(),
            ..Checkpoint::default()
        };
        store
            .write_batch(&Batch {
                docs: &[],
                deletions: &[],
                checkpoint: Some(&cp),
            })
            .map_err(|source| EngineError::Store {
                context: "recording the run clock",
                source,
            })?;
        Ok(())
    }

    /// Resumes the interrupted run: `source` continues where its last committed batch ended, and
    /// the report starts from the totals its checkpoint holds.
    fn resume(
        &self,
        source: &mut Source,
        run: &mut Run,
        checkpoint: &Checkpoint,
        at: &RunPosition,
    ) -> Result<(), EngineError> {
        match at.source_position() {
            Some(position) => source.seek(&position)?,
            None => {
                // An older runner's checkpoint: only a count, so the records are read again.
                let skipped = source.skip_records(at.records)?;
                if skipped != at.records {
                    return Err(EngineError::Checkpoint(format!(
                        "checkpoint is past the end of the inputs ({skipped} of {} records): \
                         inputs changed since the interrupted run",
                        at.records
                    )));
                }
            }
        }
        run.report.resumed_after_records = at.records;
        run.report.written = checkpoint.written as u64;
        run.report.noop = checkpoint.noop as u64;
        run.report.rejected = checkpoint.rejected as u64;
        run.report.deletions = checkpoint.deleted as u64;
        self.notify(Event::Resumed(at.records));
        Ok(())
    }

    /// Two stages: this thread reads and prepares the next batch while the writer commits the
    /// previous one. Batches arrive in input order, each with the position after it, so
    /// checkpoints and the rejects journal advance exactly as in a sequential run. Returns how
    /// the run ended (a reading error wins: the writer only ended because the batches did) and
    /// the writing side's state.
    fn read_and_write(
        &self,
        source: &mut Source,
        mut store: Option<&mut Store>,
        run: Run,
        now: &str,
    ) -> Result<(Result<(), EngineError>, Written), EngineError> {
        let preparer = Preparer::new(
            MapContext {
                tenant: self.tenant.clone(),
                vendor: self.vendor.clone(),
                connector_version: self.connector_version.clone(),
                retrieved_at: now.to_owned(),
                ingested_at: now.to_owned(),
            },
            self.guard,
        );
        let start = source.at();
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Pending>(2);
            let writer = scope.spawn(move || {
                let mut w = Written {
                    totals: Totals::of(&run.report),
                    run,
                    position: start,
                    batches: 0,
                    prepare_time: Duration::ZERO,
                    interrupted: false,
                };
                let result = self.write_batches(&mut store, &mut w, rx, now);
                (w, result)
            });
            let produced = produce(
                source,
                &preparer,
                self.batch_size.max(1),
                self.stop_on_error,
                self.stop,
                &tx,
            );
            drop(tx);
            let (mut w, written) = writer.join().map_err(|_| EngineError::Panicked)?;
            // Stopped on the reading side: the batches sent were all committed, but the input
            // goes on.
            w.interrupted |= produced.as_ref().is_ok_and(|stopped| *stopped);
            Ok((produced.and(written), w))
        })
    }

    /// What the store holds of this run when it ends early.
    fn committed(&self, w: &Written, resumed_after: u64, dry_run: bool) -> Committed {
        Committed {
            records: w.position.records,
            batches: if dry_run { 0 } else { w.batches },
            resumed_after,
            written: w.totals.written,
            noop: w.totals.noop,
            rejected: w.totals.rejected,
            deletions: w.totals.deletions,
            rejects: match &self.rejects {
                Rejects::File(path) => Some(path.clone()),
                _ => None,
            },
            dry_run,
            resumable: self.run_key.is_some(),
        }
    }

    fn notify(&self, event: Event) {
        if let Some(f) = self.events {
            f(event);
        }
    }

    /// The writing side: commits the batches as they arrive, in order, until they end, a stop
    /// (`--stop-on-error`, conflicts), an error, or [`Backfill::stop`] (checked before each
    /// batch, so that none is committed half).
    fn write_batches(
        &self,
        store: &mut Option<&mut Store>,
        w: &mut Written,
        rx: std::sync::mpsc::Receiver<Pending>,
        now: &str,
    ) -> Result<(), EngineError> {
        let run = &mut w.run;
        for mut batch in rx.iter() {
            if self.stopping() {
                w.interrupted = true;
                break; // dropping the receiver stops the reading side
            }
            w.prepare_time += batch.prepare_time;
            let position = batch.position;
            for r in std::mem::take(&mut batch.rejects) {
                run.reject(r)?;
            }
            if let Some(why) = batch.stop.take() {
                run.report.stopped = Some(why);
            }
            self.commit(store, run, position, now, &mut batch)?;
            w.position = position;
            w.batches += 1;
            w.totals = Totals::of(&run.report);
            self.notify(Event::Progress(position.records));
            if run.report.conflicts > self.max_conflicts {
                run.report.stopped = Some(format!(
                    "{} idempotency conflicts exceed --max-conflicts {}",
                    run.report.conflicts, self.max_conflicts
                ));
            }
            if run.report.stopped.is_some() {
                break;
            }
        }
        // A signal after the last batch: nothing was left to stop, the run is complete.
        Ok(())
    }

    /// Writes one batch (documents, deletions, checkpoint) in one transaction and books the
    /// outcome. The checkpoint carries the totals before the batch; the store adds the batch's own
    /// outcome in the same transaction, so a resumed run restores exact totals.
    fn commit(
        &self,
        store: &mut Option<&mut Store>,
        run: &mut Run,
        position: Position,
        now: &str,
        batch: &mut Pending,
    ) -> Result<(), EngineError> {
        let Some(store) = store else {
            // Dry run: count what would happen against the input alone.
            for doc in batch.docs.drain(..) {
                let source = doc.key().vendor.clone();
                if run
                    .seen
                    .insert((doc.key().clone(), doc.content_hash().to_owned()))
                {
                    run.report.written += 1;
                    run.metrics.write(&source, &self.tenant, "ok");
                } else {
                    run.report.noop += 1;
                    run.metrics.write(&source, &self.tenant, "noop");
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
            let checkpoint = self.run_key.as_ref().map(|key| Checkpoint {
                run_key: key.clone(),
                position: RunPosition::new(position, run.rejects.bytes, now, false).encode(),
                written: run.report.written as i64,
                noop: run.report.noop as i64,
                rejected: run.report.rejected as i64,
                deleted: run.report.deletions as i64,
            });
            let t = Instant::now();
            let result = store.write_batch(&Batch {
                docs: &batch.docs,
                deletions: &batch.deletions,
                checkpoint: checkpoint.as_ref(),
            });
            run.metrics.observe("write", t.elapsed().as_secs_f64());
            match result {
                Ok(outcome) => {
                    for (doc, o) in batch.docs.iter().zip(&outcome.docs) {
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
                        run.metrics.write(&doc.key().vendor, &self.tenant, result);
                    }
                    run.report.deletions += outcome.deletions_recorded as u64;
                    run.report.noop += (batch.deletions.len() - outcome.deletions_recorded) as u64;
                    batch.clear();
                    fault_point("after");
                    return Ok(());
                }
                Err(StoreError::InvalidDocument { index, message }) => {
                    // A document whose `supersedes` disagrees with the store: an idempotency
                    // conflict, refused on its own and journalled; the rest of the batch retried.
                    let doc = batch.docs.remove(index);
                    let location = batch.locations.remove(index);
                    run.report.conflicts += 1;
                    run.reject(Rejection {
                        location,
                        error: None,
                        violations: vec![Violation::new(
                            ViolationCode::Idempotency,
                            "/supersedes",
                            message,
                        )],
                        document: Some(doc.to_value()),
                    })?;
                    if run.report.conflicts > self.max_conflicts {
                        batch.clear();
                        return Ok(());
                    }
                }
                Err(source) => {
                    return Err(EngineError::Store {
                        context: "writing a batch to the store",
                        source,
                    })
                }
            }
        }
    }
}

/// The writing side's state when it ends: the run, and how far it committed.
struct Written {
    run: Run,
    /// After the last committed batch.
    position: Position,
    /// Batches committed by this run.
    batches: u64,
    /// The run's totals as of the last committed batch (a batch that fails to commit has
    /// already booked its rejections).
    totals: Totals,
    prepare_time: Duration,
    /// Ended by [`Backfill::stop`].
    interrupted: bool,
}

/// Outcome counts at a point of a run.
#[derive(Clone, Copy)]
struct Totals {
    written: u64,
    noop: u64,
    rejected: u64,
    deletions: u64,
}

impl Totals {
    fn of(r: &BackfillReport) -> Totals {
        Totals {
            written: r.written,
            noop: r.noop,
            rejected: r.rejected,
            deletions: r.deletions,
        }
    }
}

/// Everything one run accumulates on the writing side.
struct Run {
    report: BackfillReport,
    metrics: MetricsRecorder,
    rejects: Journal,
    /// Dry run only: (key, hash) pairs seen, to count in-input duplicates as no-ops.
    seen: HashSet<(UpstreamKey, String)>,
    tenant: String,
}

impl Run {
    fn reject(&mut self, r: Rejection) -> Result<(), EngineError> {
        let source = r
            .document
            .as_ref()
            .and_then(|d| d.pointer("/source/vendor"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        self.report.rejected += 1;
        self.metrics.write(&source, &self.tenant, "reject");
        for v in &r.violations {
            *self
                .report
                .by_code
                .entry(v.code.as_str().to_owned())
                .or_default() += 1;
            self.metrics
                .violation(&source, &self.tenant, v.code.as_str());
        }
        self.rejects.write(r)
    }
}

/// The rejects journal. A file is appended to `<name>.partial` and renamed into place when the
/// run ends, so a complete file appears only for a complete run; a resumed run truncates the
/// partial file to the length its checkpoint recorded and carries on.
struct Journal {
    file: Option<(File, PathBuf, PathBuf)>,
    bytes: u64,
    keep: usize,
    kept: Vec<Rejection>,
}

impl Journal {
    fn open(to: &Rejects, resume_at: Option<u64>) -> Result<Journal, EngineError> {
        let mut journal = Journal {
            file: None,
            bytes: 0,
            keep: 0,
            kept: Vec::new(),
        };
        match to {
            Rejects::Nowhere => {}
            Rejects::Keep(n) => journal.keep = *n,
            Rejects::File(path) => {
                let partial = PathBuf::from(format!("{}.partial", path.display()));
                let io_err = |e| EngineError::Io {
                    context: format!("cannot open {}", partial.display()),
                    source: e,
                };
                if resume_at.is_some() && !partial.exists() && path.exists() {
                    // Killed after the rename but before the run was marked complete.
                    std::fs::rename(path, &partial).map_err(io_err)?;
                }
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .read(true)
                    .truncate(false)
                    .open(&partial)
                    .map_err(io_err)?;
                let bytes = resume_at.unwrap_or(0);
                file.set_len(bytes).map_err(io_err)?;
                file.seek(SeekFrom::End(0)).map_err(io_err)?;
                journal.bytes = bytes;
                journal.file = Some((file, partial, path.to_owned()));
            }
        }
        Ok(journal)
    }

    fn write(&mut self, r: Rejection) -> Result<(), EngineError> {
        if let Some((file, partial, _)) = &mut self.file {
            let mut line = serde_json::to_vec(&json!({
                "location": r.location,
                "error": r.error,
                "violations": r.violations,
                "document": r.document,
            }))
            .expect("values serialize");
            line.push(b'\n');
            file.write_all(&line).map_err(|e| EngineError::Io {
                context: format!("writing {}", partial.display()),
                source: e,
            })?;
            self.bytes += line.len() as u64;
        }
        if self.kept.len() < self.keep {
            self.kept.push(r);
        }
        Ok(())
    }

    /// Durable before the checkpoint that counts these bytes commits.
    fn sync(&mut self) -> Result<(), EngineError> {
        if let Some((file, partial, _)) = &mut self.file {
            file.sync_data().map_err(|e| EngineError::Io {
                context: format!("syncing {}", partial.display()),
                source: e,
            })?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Rejection>, EngineError> {
        self.sync()?;
        if let Some((_, partial, path)) = self.file.take() {
            rename(&partial, &path)?;
        }
        Ok(self.kept)
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), EngineError> {
    std::fs::rename(from, to).map_err(|e| EngineError::Io {
        context: format!("renaming into {}", to.display()),
        source: e,
    })
}

/// A batch being gathered: documents and where each came from, kept apart so the documents can
/// be handed to the store without copying.
#[derive(Default)]
struct Pending {
    /// Read and rendered for the store on the mapping side: the writer only splices in each
    /// document's `supersedes`.
    docs: Vec<StoreDoc>,
    locations: Vec<String>,
    deletions: Vec<Deletion>,
    /// Records refused while gathering this batch, in input order.
    rejects: Vec<Rejection>,
    /// The source's position once this batch is done: its checkpoint.
    position: Position,
    /// Set when the run must stop after this batch (`--stop-on-error`).
    stop: Option<String>,
    prepare_time: Duration,
}

impl Pending {
    fn clear(&mut self) {
        self.docs.clear();
        self.locations.clear();
        self.deletions.clear();
    }
}

/// A record prepared for the store.
enum Ready {
    Doc(String, StoreDoc),
    Deleted(Deletion),
    Rejected(Rejection),
}

fn ready(prepared: Prepared) -> Ready {
    match prepared {
        Prepared::Doc { location, doc } => match doc.to_store() {
            Ok(d) => Ready::Doc(location, d),
            // The guard passed it, so this is a mapping bug: refused, never dropped.
            Err(message) => Ready::Rejected(Rejection {
                location,
                error: Some(message),
                violations: Vec::new(),
                document: Some(doc.into_value()),
            }),
        },
        Prepared::Deleted {
            location,
            key,
            recorded_at,
        } => Ready::Deleted(Deletion {
            key,
            recorded_at,
            location,
        }),
        Prepared::Rejected {
            location,
            error,
            violations,
            doc,
        } => Ready::Rejected(Rejection {
            location,
            error,
            violations,
            document: doc,
        }),
    }
}

/// The mapping side: reads `batch_size` records, prepares them on every core (in input order),
/// and sends the batch; ends at the end of the input, at a stop, when the writer hangs up, or
/// when `interrupt` is set (then returns `true`).
fn produce(
    source: &mut Source,
    preparer: &Preparer,
    batch_size: usize,
    stop_on_error: bool,
    interrupt: Option<&AtomicBool>,
    tx: &SyncSender<Pending>,
) -> Result<bool, EngineError> {
    loop {
        if interrupt.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Ok(true); // the writer commits nothing more either
        }
        let t = Instant::now();
        let mut records: Vec<InputRecord> = Vec::with_capacity(batch_size);
        let mut positions: Vec<Position> = Vec::with_capacity(batch_size);
        let mut end = false;
        while records.len() < batch_size {
            match source.next_record()? {
                Some(r) => {
                    records.push(r);
                    positions.push(source.at());
                }
                None => {
                    end = true;
                    break;
                }
            }
        }
        let prepared: Vec<Ready> = records
            .into_par_iter()
            .map_init(
                || preparer.clone(),
                |p, r| match r.item {
                    // Checked and rendered by its reader: nothing left to do here.
                    Item::Verified(stored) => Ready::Doc(r.location, stored),
                    item => ready(p.prepare(InputRecord {
                        location: r.location,
                        item,
                    })),
                },
            )
            .collect();
        let mut batch = Pending {
            position: positions.last().copied().unwrap_or_else(|| source.at()),
            ..Pending::default()
        };
        for (i, r) in prepared.into_iter().enumerate() {
            match r {
                Ready::Doc(location, doc) => {
                    batch.docs.push(doc);
                    batch.locations.push(location);
                }
                Ready::Deleted(d) => batch.deletions.push(d),
                Ready::Rejected(r) => {
                    let stop = stop_on_error
                        .then(|| format!("--stop-on-error: record {} rejected", r.location));
                    batch.rejects.push(r);
                    if stop.is_some() {
                        // What comes after the refused record is left for no one: the run
                        // ends here, and its checkpoint says so.
                        batch.stop = stop;
                        batch.position = positions[i];
                        break;
                    }
                }
            }
        }
        batch.prepare_time = t.elapsed();
        let last = end || batch.stop.is_some();
        if tx.send(batch).is_err() || last {
            return Ok(false);
        }
    }
}

/// Fault injection for the crash-safety tests: `STELLA_FAULT_ABORT=before:N` (or `after:N`)
/// aborts the process, as a SIGKILL would, just before (after) the N-th batch commits. Compiled
/// only with the `fault-hooks` feature, which the tests enable and a release build never has.
#[cfg(feature = "fault-hooks")]
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

#[cfg(not(feature = "fault-hooks"))]
fn fault_point(_when: &str) {}

/// The test-only variables this build reads, for `--help`: none without `fault-hooks`.
pub const FAULT_HOOK_VARS: &[(&str, &str)] = if cfg!(feature = "fault-hooks") {
    &[(
        "STELLA_FAULT_ABORT",
        "tests only: abort the run at a given point",
    )]
} else {
    &[]
};

/// Peak resident set size from `/proc/self/status` (`VmHWM`), where the kernel offers it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
