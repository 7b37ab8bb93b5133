//! Reading a dataset for loading: verify it completely first, then stream its records in order
//! (a second pass, so memory stays bounded whatever the dataset's size).
//!
//! The second pass never reads the file again. While verifying, every byte the verifier reads is
//! also written to a private copy (an unlinked temporary file that no other process can open by
//! name); records are read from that copy only. A file rewritten in place, truncated or replaced
//! after verification therefore changes nothing that is loaded: the records handed out are exactly
//! those of the bytes that were verified.

use crate::load::{LoadReport, BATCH_SIZE};
use crate::manifest::Manifest;
use crate::records::stream_lines;
use crate::verify::{verify_reader, VerifyError, VerifyOptions, VerifyReport};
use crate::MANIFEST_MEMBER;
use aoc_archive::{ArchiveError, ArchiveReader, Limits};
use aoc_store::{Store, StoreError};
use rayon::prelude::*;
use serde_json::Value;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Entry point for datasets: `Dataset::open_verified(path)`.
pub struct Dataset;

/// A dataset that passed every check of [`crate::verify`]; its records can be read.
#[derive(Debug)]
pub struct VerifiedDataset {
    path: PathBuf,
    /// The private copy of exactly the bytes that were verified: the only thing records are read
    /// from. Unlinked from the start, so it disappears with the handle.
    copy: File,
    limits: Limits,
    report: VerifyReport,
}

/// One raw document and where it is in the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// `data/<tenant>/<vendor>.ndjson:<line>`.
    pub location: String,
    pub doc: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Archive { path: PathBuf, source: ArchiveError },
    /// The archive changed after it was verified.
    #[error("{path}: {detail} since it was verified")]
    Changed { path: PathBuf, detail: String },
    #[error("loading into the store: {0}")]
    Store(#[from] StoreError),
    /// Returned by the caller's callback.
    #[error(transparent)]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

impl Dataset {
    /// Verifies the archive at `path` completely (default options) and returns it for reading;
    /// a dataset with any failed check is refused with the verification error.
    pub fn open_verified(path: &Path) -> Result<VerifiedDataset, VerifyError> {
        Self::open_verified_with(path, &VerifyOptions::default())
    }

    /// [`open_verified`](Self::open_verified) with explicit options (limits, a pinned hash).
    ///
    /// The verified bytes are copied, as they are read, into a private temporary file (in
    /// `TMPDIR`; as large as the archive, compressed) from which the records are read later.
    pub fn open_verified_with(
        path: &Path,
        options: &VerifyOptions,
    ) -> Result<VerifiedDataset, VerifyError> {
        let unreadable = |message: String| VerifyError::Unreadable {
            path: path.to_owned(),
            message,
        };
        let file = File::open(path).map_err(|e| unreadable(format!("cannot open: {e}")))?;
        let mut copy = tempfile::tempfile()
            .map_err(|e| unreadable(format!("cannot create the private copy to load from: {e}")))?;
        let report = verify_reader(
            path,
            Tee {
                inner: file,
                copy: &mut copy,
            },
            options,
        )?;
        if !report.is_ok() {
            return Err(VerifyError::Failed(Box::new(report)));
        }
        copy.flush()
            .map_err(|e| unreadable(format!("writing the private copy: {e}")))?;
        Ok(VerifiedDataset {
            path: path.to_owned(),
            copy,
            limits: options.limits,
            report,
        })
    }
}

impl VerifiedDataset {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content address.
    pub fn hash(&self) -> &str {
        &self.report.hash
    }

    pub fn manifest(&self) -> &Manifest {
        self.report
            .manifest
            .as_ref()
            .expect("a verified dataset has a manifest")
    }

    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// Calls `f` for every record in dataset order (files by path, lines in order), read from the
    /// private copy of the verified bytes, so the file at [`path`](Self::path) changing meanwhile
    /// has no effect. Each file's SHA-256 is still checked again at its end, against the copy.
    pub fn for_each_record<F>(&self, mut f: F) -> Result<(), ReadError>
    where
        F: FnMut(DatasetRecord) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
    {
        let archive_err = |source: ArchiveError| ReadError::Archive {
            path: self.path.clone(),
            source,
        };
        (&self.copy)
            .seek(SeekFrom::Start(0))
            .map_err(|e| archive_err(e.into()))?;
        let reader = ArchiveReader::new(&self.copy, self.limits).map_err(archive_err)?;
        let mut stop: Option<ReadError> = None;
        let result = reader.for_each_entry(|member, entry| {
            if member == MANIFEST_MEMBER {
                return Ok(());
            }
            let Some(expected) = self.report.files.iter().find(|e| e.path == member) else {
                stop = Some(self.changed(format!("member {member} appeared")));
                return Err(ArchiveError::Io(io::Error::other("stopped")));
            };
            let streamed = stream_lines(entry, |batch| {
                let docs: Vec<Result<Value, serde_json::Error>> = batch
                    .lines
                    .par_iter()
                    .map(|line| serde_json::from_slice(batch.bytes(line)))
                    .collect();
                for (line, doc) in batch.lines.iter().zip(docs) {
                    let location = format!("{member}:{}", line.no);
                    let doc = match doc {
                        Ok(doc) => doc,
                        Err(e) => {
                            stop =
                                Some(self.changed(format!("{location} is no longer JSON ({e})")));
                            return Err(io::Error::other("stopped"));
                        }
                    };
                    if let Err(e) = f(DatasetRecord { location, doc }) {
                        stop = Some(ReadError::Callback(e));
                        return Err(io::Error::other("stopped"));
                    }
                }
                Ok(())
            })?;
            if hex::encode(streamed.sha256) != expected.sha256 || streamed.bytes != expected.bytes {
                stop = Some(self.changed(format!("{member} changed")));
                return Err(ArchiveError::Io(io::Error::other("stopped")));
            }
            Ok(())
        });
        match (stop, result) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(archive_err(e)),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Appends every record to `store` in batches of 500 (idempotent: a second load is all no-ops).
    pub fn load_into(&self, store: &mut Store) -> Result<LoadReport, ReadError> {
        let mut report = LoadReport::default();
        let mut docs: Vec<Value> = Vec::with_capacity(BATCH_SIZE);
        let flush = |docs: &mut Vec<Value>,
                     report: &mut LoadReport,
                     store: &mut Store|
         -> Result<(), StoreError> {
            let outcome = store.append_batch(docs, None)?;
            report.written += outcome.written() as u64;
            report.noop += outcome.noops() as u64;
            docs.clear();
            Ok(())
        };
        self.for_each_record(|record| {
            report.records += 1;
            docs.push(record.doc);
            if docs.len() >= BATCH_SIZE {
                flush(&mut docs, &mut report, store)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            }
            Ok(())
        })?;
        if !docs.is_empty() {
            flush(&mut docs, &mut report, store)?;
        }
        Ok(report)
    }

    fn changed(&self, detail: String) -> ReadError {
        ReadError::Changed {
            path: self.path.clone(),
            detail,
        }
    }
}

/// Reads `inner` and writes every byte read to `copy` before handing it on: what the reader
/// consumed is exactly what the copy holds.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing the private copy to load from: {e}"),
            )
        })?;
        Ok(n)
    }
}
