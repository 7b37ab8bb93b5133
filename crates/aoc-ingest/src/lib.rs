//! The ingest engine: every route into the append-only store goes through it.
//!
//! - [`Source`]: the ordered records of every input (files, directories, NDJSON feeds, `.zst` and
//!   `.gz`, stdin; released dataset tarballs through an [`InputKind`] that `aoc-dataset`
//!   provides) as one pull iterator, with a [`Position`] a checkpoint records and seeks back to.
//! - [`Preparer`]: parse, map (OSV, CSAF) and guard one record into a raw document, a recorded
//!   deletion or a rejection with its reasons.
//! - [`Backfill`]: the batch pipeline (map and guard on the mapping side, store writes on the
//!   other, the checkpoint in each batch's transaction, the rejects journal, the accounting).
//! - [`verify`]: the guard and revision chains over raw documents, from any source or a store,
//!   into the verify report.
//! - [`report`]: the reports `stella` writes, as types.

pub mod engine;
pub mod input;
pub mod prepare;
pub mod report;
pub mod source;
pub mod verify;

pub use engine::{Backfill, EngineError, Event, Outcome, Rejection, Rejects};
pub use input::{classify, FileInput, InputPosition, InputRecord, Item};
pub use prepare::{Document, Prepared, Preparer};
pub use source::{Input, InputKind, OpenedInput, Position, Source, SourceError};
