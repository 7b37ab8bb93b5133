//! What a batch carries in and out, and the engine-independent append rule: which documents are
//! no-ops and which become revision N+1 superseding the head (docs/ARCHITECTURE.md §3.1).

use crate::document::StoreDoc;
use crate::{Result, StoreError};
use aoc_contract::UpstreamKey;
use aoc_digest::Sha256Digest;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map for one batch's keys and digests: hashed a word at a time (FxHash, the compiler's
/// own), which took a third of SipHash's time in the writer's per-document work. Such a map holds
/// at most a batch's entries, so keys crafted to collide can cost no more than quadratic time in
/// the batch size.
pub(crate) type BatchMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One transaction's worth of writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch<'a> {
    /// Raw documents, already mapped and guarded by the caller. `supersedes` is set by the store;
    /// a non-null value given here must equal what the store computes (a dataset being reloaded).
    pub docs: &'a [StoreDoc],
    /// Upstream deletions to record.
    pub deletions: &'a [Deletion],
    /// Written in the same transaction, so a resumed run starts exactly after this batch. Its
    /// counts are the run's totals *before* this batch: the store adds the batch's own outcome
    /// (written, no-ops, deletions recorded; a deletion already on record counts as a no-op)
    /// before writing it, so the totals commit atomically with the documents they count.
    pub checkpoint: Option<&'a Checkpoint>,
}

/// The persisted record of where a backfill run is and what it has done so far: one row per run
/// key, written in each batch's transaction. A checkpoint is only ever this stored record; the
/// place itself is the runner's position (`aoc_ingest`'s `Position`, encoded with the run's
/// clock and rejects journal length).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub run_key: String,
    /// Opaque to the store: the runner's own encoding of the position the run resumes from.
    pub position: String,
    pub written: i64,
    pub noop: i64,
    pub rejected: i64,
    pub deleted: i64,
}

impl Checkpoint {
    /// This checkpoint with a batch's outcome added to its totals (see [`Batch::checkpoint`]).
    pub(crate) fn with_outcome(
        &self,
        outcome: &BatchOutcome,
        deletions_given: usize,
    ) -> Checkpoint {
        let recorded = outcome.deletions_recorded;
        Checkpoint {
            written: self.written + outcome.written() as i64,
            noop: self.noop
                + outcome.noops() as i64
                + deletions_given.saturating_sub(recorded) as i64,
            deleted: self.deleted + recorded as i64,
            ..self.clone()
        }
    }
}

/// An upstream deletion. Recording is idempotent on (tenant, vendor, upstream_id, recorded_at), so
/// pass the upstream's own deletion time (a feed's `committed_at`) to make re-runs no-ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub key: UpstreamKey,
    /// RFC 3339 UTC.
    pub recorded_at: String,
    /// Where the deletion was read (`file:line`, a commit).
    pub location: String,
}

/// What happened to each document of a batch, in input order.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub docs: Vec<DocOutcome>,
    pub deletions_recorded: usize,
}

impl BatchOutcome {
    pub fn written(&self) -> usize {
        self.docs
            .iter()
            .filter(|d| matches!(d, DocOutcome::Written(_)))
            .count()
    }

    pub fn noops(&self) -> usize {
        self.docs.len() - self.written()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocOutcome {
    /// Stored as a new revision.
    Written(WrittenDoc),
    /// Same (tenant, vendor, upstream_id, content_hash) already stored, as `_id` `id`.
    Noop { id: String },
}

/// A stored revision as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenDoc {
    pub id: String,
    pub revision: i64,
    pub supersedes: Option<String>,
    /// Exactly the JSON bytes stored.
    pub json: String,
}

/// The newest stored revision of an upstream document.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub revision: i64,
    pub id: String,
}

/// What the engine found in the store for a batch's keys, read under the write lock. Keyed by
/// the batch's own keys and digests, so planning a document clones and allocates nothing to look
/// it up.
#[derive(Debug, Default)]
pub(crate) struct StoredState<'a> {
    pub heads: BatchMap<&'a UpstreamKey, Head>,
    /// (key, digest) → `_id` of the stored document with that content.
    pub existing: BatchMap<(&'a UpstreamKey, Sha256Digest), String>,
}

/// A row the engine must insert.
pub(crate) struct NewRow<'a> {
    /// The document's index in the batch.
    pub index: usize,
    pub prepared: &'a StoreDoc,
    pub revision: i64,
}

/// Applies the append rule to a batch, in input order, so that several revisions of one upstream
/// document inside the batch chain onto each other. Fills `outcome.docs`; returns the rows to
/// insert (each `outcome` entry of a written row holds its final JSON).
pub(crate) fn plan<'a>(
    prepared: &'a [StoreDoc],
    mut state: StoredState<'a>,
    outcome: &mut BatchOutcome,
) -> Result<Vec<NewRow<'a>>> {
    let mut rows = Vec::with_capacity(prepared.len());
    outcome.docs.reserve(prepared.len());
    for (index, p) in prepared.iter().enumerate() {
        let hash_key = (&p.head.key, p.digest);
        if let Some(id) = state.existing.get(&hash_key) {
            outcome.docs.push(DocOutcome::Noop { id: id.clone() });
            continue;
        }
        let head = state.heads.get(&p.head.key);
        let revision = head.map_or(1, |h| h.revision + 1);
        let supersedes = head.map(|h| h.id.clone());
        if let Some(given) = &p.head.supersedes {
            if Some(given) != supersedes.as_ref() {
                return Err(StoreError::InvalidDocument {
                    index,
                    message: format!(
                        "supersedes {given:?} but the stored head of {}:{} is {:?} (ERR_AOC_003)",
                        p.head.key.vendor, p.head.key.upstream_id, supersedes
                    ),
                });
            }
        }
        let json = p.render(supersedes.as_deref());
        state.existing.insert(hash_key, p.head.id.clone());
        state.heads.insert(
            &p.head.key,
            Head {
                revision,
                id: p.head.id.clone(),
            },
        );
        outcome.docs.push(DocOutcome::Written(WrittenDoc {
            id: p.head.id.clone(),
            revision,
            supersedes,
            json,
        }));
        rows.push(NewRow {
            index,
            prepared: p,
            revision,
        });
    }
    Ok(rows)
}

/// Pairs each row to insert with its rendered JSON from the outcome (written entries, in order).
pub(crate) fn rows_with_json<'o>(
    rows: &'o [NewRow<'o>],
    outcome: &'o BatchOutcome,
) -> impl Iterator<Item = (&'o NewRow<'o>, &'o WrittenDoc)> {
    let written = outcome.docs.iter().filter_map(|d| match d {
        DocOutcome::Written(w) => Some(w),
        DocOutcome::Noop { .. } => None,
    });
    rows.iter().zip(written)
}

/// The rows a batch writes, counted per (tenant, vendor): documents, and upstream documents (a
/// revision 1 is an upstream document's first row), for the store's `source_counts`.
#[derive(Default)]
pub(crate) struct Counted<'a> {
    by_source: Vec<(&'a str, &'a str, i64, i64)>,
}

impl<'a> Counted<'a> {
    pub fn of(rows: &[NewRow<'a>]) -> Counted<'a> {
        let mut counted = Counted::default();
        for row in rows {
            let doc: &'a StoreDoc = row.prepared;
            counted.add(&doc.head.key, row.revision);
        }
        counted
    }

    fn add(&mut self, key: &'a UpstreamKey, revision: i64) {
        let new = i64::from(revision == 1);
        // A batch holds one or a few sources: a linear search beats hashing.
        match self
            .by_source
            .iter_mut()
            .find(|(t, v, _, _)| *t == key.tenant && *v == key.vendor)
        {
            Some(entry) => {
                entry.2 += 1;
                entry.3 += new;
            }
            None => self.by_source.push((&key.tenant, &key.vendor, 1, new)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty()
    }

    /// (tenants, vendors, documents, upstream documents), as parallel columns.
    pub fn columns(&self) -> (Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<i64>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(t, v, d, u) in &self.by_source {
            out.0.push(t);
            out.1.push(v);
            out.2.push(d);
            out.3.push(u);
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'a str, &'a str, i64, i64)> {
        self.by_source.iter()
    }
}
