//! Backfilling inputs into a store with the runner's append semantics (map, guard, batches of
//! 500, deletions recorded), so that a dataset built from inputs equals one exported from a store
//! that `stella aoc backfill` loaded from the same inputs with the same clock.

use aoc_contract::{GuardOptions, MapContext};
use aoc_ingest::{InputReader, Prepared, Preparer};
use aoc_store::{Batch, Deletion, Store, StoreError};
use serde_json::Value;
use std::path::PathBuf;

/// Documents per transaction: the runner's default `--batch-size`.
pub const BATCH_SIZE: usize = 500;
/// Rejections quoted in an error; the count is always complete.
const QUOTED_REJECTIONS: usize = 10;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub records: u64,
    pub written: u64,
    pub noop: u64,
    pub deletions: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading inputs: {0}")]
    Input(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Inputs that did not map or did not pass the guard: a dataset never silently drops one.
    #[error("{count} input record(s) rejected; first: {}", first.join("; "))]
    Rejected { count: u64, first: Vec<String> },
}

/// Appends every record of `paths` to `store` with `ctx` (tenant, clock) and the default guard.
pub fn load_inputs(
    store: &mut Store,
    paths: &[PathBuf],
    ctx: MapContext,
) -> Result<LoadReport, LoadError> {
    let mut reader = InputReader::open(paths)?;
    let mut preparer = Preparer::new(ctx, GuardOptions::default());
    let mut report = LoadReport::default();
    let mut docs: Vec<Value> = Vec::with_capacity(BATCH_SIZE);
    let mut deletions: Vec<Deletion> = Vec::new();
    let mut rejected = 0u64;
    let mut first = Vec::new();
    loop {
        let record = reader.next_record()?;
        let end = record.is_none();
        if let Some(record) = record {
            report.records += 1;
            match preparer.prepare(record) {
                Prepared::Doc { doc, .. } => docs.push(doc),
                Prepared::Deleted {
                    location,
                    key,
                    recorded_at,
                } => {
                    deletions.push(Deletion {
                        key,
                        recorded_at,
                        location,
                    });
                }
                Prepared::Rejected {
                    location,
                    error,
                    violations,
                    ..
                } => {
                    rejected += 1;
                    if first.len() < QUOTED_REJECTIONS {
                        let why = match error {
                            Some(e) => e,
                            None => violations
                                .iter()
                                .map(|v| format!("{} {} {}", v.code, v.path, v.message))
                                .collect::<Vec<_>>()
                                .join(", "),
                        };
                        first.push(format!("{location}: {why}"));
                    }
                }
            }
        }
        if docs.len() >= BATCH_SIZE || (end && (!docs.is_empty() || !deletions.is_empty())) {
            let outcome = store.write_batch(&Batch {
                docs: &aoc_store::prepare_docs(&docs)?,
                deletions: &deletions,
                checkpoint: None,
            })?;
            report.written += outcome.written() as u64;
            report.noop += outcome.noops() as u64;
            report.deletions += outcome.deletions_recorded as u64;
            docs.clear();
            deletions.clear();
        }
        if end {
            break;
        }
    }
    if rejected > 0 {
        return Err(LoadError::Rejected {
            count: rejected,
            first,
        });
    }
    Ok(report)
}
