//! Reading a dataset for loading. [`Dataset::open_verified`] checks the archive's integrity
//! completely first (the defensive reader, every data file's SHA-256, size and line count, the
//! manifest, the content address, the file name, the sidecar, a pinned hash); [`records`] then
//! streams the records in order, checking each as it is read (compact JSON, the AOC guard, its
//! place in the file order, its revision chain; the per-vendor counts at the end), so that a load
//! parses and guards every record once, while it loads.
//!
//! The records are never read from the file again. While verifying, every byte the verifier reads
//! is also written to a private copy (an unlinked temporary file that no other process can open by
//! name); records are read from that copy only. A file rewritten in place, truncated or replaced
//! after verification therefore changes nothing that is loaded: the records handed out are exactly
//! those of the bytes that were verified.
//!
//! [`records`]: VerifiedDataset::records

use crate::layout::{parse_data_path, DataPath};
use crate::manifest::{Derived, Manifest};
use crate::records::Lines;
use crate::verify::{
    check_line, compare_manifest, verify_reader, Failure, LineResult, State, VerifyError,
    VerifyOptions, VerifyReport,
};
use crate::MANIFEST_MEMBER;
use aoc_archive::{ArchiveError, ArchiveReader, Limits};
use aoc_contract::{Guard, GuardOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Complete lines checked together (in parallel) and held, parsed, until handed out.
const BATCH_BYTES: usize = 2 << 20;

/// Entry point for datasets: `Dataset::open_verified(path)`.
pub struct Dataset;

/// A dataset whose integrity was verified; its records can be read, each checked as it is.
#[derive(Debug)]
pub struct VerifiedDataset {
    path: PathBuf,
    /// The private copy of exactly the bytes that were verified: the only thing records are read
    /// from. Unlinked from the start, so it disappears with the last handle.
    copy: Arc<File>,
    limits: Limits,
    report: VerifyReport,
}

/// Where a read of the records is: the next record is at byte `offset` (line `line + 1`) of the
/// `member`-th data file. Recorded by a loader's checkpoint, and sought back to by
/// [`VerifiedDataset::records_from`] without reading what comes before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetCursor {
    /// Data files before this one, in archive order.
    pub member: u64,
    /// Bytes of that data file before the next record.
    pub offset: u64,
    /// Lines of that data file before the next record.
    pub line: u64,
}

/// One raw document, where it is in the dataset, and where the record after it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// `data/<tenant>/<vendor>.ndjson:<line>`.
    pub location: String,
    pub doc: Value,
    /// The cursor after this record.
    pub next: DatasetCursor,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Archive { path: PathBuf, source: ArchiveError },
    /// A record (or the counts at the end) failed a check: the dataset does not verify.
    #[error("{path}: {failure} (the dataset does not verify)")]
    Failed {
        path: PathBuf,
        failure: Box<Failure>,
    },
    /// The private copy no longer holds what was verified (it cannot be opened by name: a bug, or
    /// tampering through the process itself).
    #[error("{path}: {detail} since it was verified")]
    Changed { path: PathBuf, detail: String },
}

impl Dataset {
    /// Verifies the integrity of the archive at `path` (default options) and returns it for
    /// reading; a dataset with any failed check is refused with the verification error.
    pub fn open_verified(path: &Path) -> Result<VerifiedDataset, VerifyError> {
        Self::open_verified_with(path, &VerifyOptions::default())
    }

    /// [`open_verified`](Self::open_verified) with explicit options (limits, a pinned hash). The
    /// records are checked while they are read ([`VerifiedDataset::records`]), whatever
    /// `options.records` says, so that they are parsed once.
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
        let options = VerifyOptions {
            records: false,
            ..options.clone()
        };
        let report = verify_reader(
            path,
            Tee {
                inner: file,
                copy: &mut copy,
            },
            &options,
        )?;
        if !report.is_ok() {
            return Err(VerifyError::Failed(Box::new(report)));
        }
        copy.flush()
            .map_err(|e| unreadable(format!("writing the private copy: {e}")))?;
        Ok(VerifiedDataset {
            path: path.to_owned(),
            copy: Arc::new(copy),
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

    /// The integrity verification's report (record-level counts are checked by the read).
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// Every record in dataset order (files by path, lines in order), read from the private copy
    /// of the verified bytes and checked as it is read; the first record (or count) that fails a
    /// check ends the iteration with [`ReadError::Failed`]. Independent of other iterators.
    pub fn records(&self) -> Result<Records, ReadError> {
        self.records_from(&DatasetCursor::default())
    }

    /// [`records`](Self::records) from `cursor` on (a resumed load): the data before it is
    /// decompressed and skipped, not parsed. Checks that need the records before the cursor (the
    /// chain links into them, the per-vendor counts) are left to whoever read those.
    pub fn records_from(&self, cursor: &DatasetCursor) -> Result<Records, ReadError> {
        let archive = ArchiveReader::new(
            CopyReader {
                file: Arc::clone(&self.copy),
                at: 0,
            },
            self.limits,
        )
        .map_err(|source| ReadError::Archive {
            path: self.path.clone(),
            source,
        })?;
        let mut records = Records {
            path: self.path.clone(),
            archive,
            manifest: self.manifest().clone(),
            verified: self.report.files.clone(),
            lines: Lines::new(BATCH_BYTES, false),
            member: None,
            members_started: 0,
            state: State::new(1),
            ready: VecDeque::new(),
            cursor: DatasetCursor::default(),
            resumed: *cursor != DatasetCursor::default(),
            done: false,
        };
        if records.resumed {
            records.seek(cursor)?;
        }
        Ok(records)
    }
}

/// The data file being read.
struct Member {
    name: String,
    index: u64,
    place: DataPath,
    pair: (String, String),
}

/// The records of a [`VerifiedDataset`], in order; see [`VerifiedDataset::records`].
pub struct Records {
    path: PathBuf,
    archive: ArchiveReader<'static>,
    manifest: Manifest,
    /// The data files as verified (path, SHA-256, bytes, lines).
    verified: Vec<crate::FileEntry>,
    lines: Lines,
    member: Option<Member>,
    members_started: u64,
    /// Order, chains and counts across records.
    state: State,
    /// Checked records of the current batch not yet handed out.
    ready: VecDeque<DatasetRecord>,
    /// After the last record handed out.
    cursor: DatasetCursor,
    resumed: bool,
    done: bool,
}

impl Iterator for Records {
    type Item = Result<DatasetRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                self.cursor = record.next;
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                self.ready.clear();
                return Some(Err(e));
            }
        }
    }
}

impl Records {
    /// Where the next record starts: after the last one handed out.
    pub fn cursor(&self) -> DatasetCursor {
        self.cursor
    }

    /// Reads and checks the next batch of records into `ready`, or moves on to the next member,
    /// or finishes.
    fn fill(&mut self) -> Result<(), ReadError> {
        let Some(member) = &self.member else {
            return self.open_next_member();
        };
        let batch = match self.lines.next_batch(&mut self.archive.entry()) {
            Ok(Some(batch)) => batch,
            Ok(None) => return self.close_member(),
            Err(e) => return Err(archive_error(&self.path, &self.archive, e)),
        };
        let place = &member.place;
        let results: Vec<LineResult> = batch
            .lines
            .par_iter()
            .map_init(
                || Guard::new(GuardOptions::default()),
                |guard, line| check_line(guard, batch.bytes(line), line.terminated, line.no, place),
            )
            .collect();
        for (line, mut result) in batch.lines.iter().zip(results) {
            let doc = result.doc.take();
            self.state.record(&member.name, &member.pair, result);
            if let Some(failure) = self.state.failures.pop() {
                return Err(ReadError::Failed {
                    path: self.path.clone(),
                    failure: Box::new(failure),
                });
            }
            let doc = doc.expect("a record without failures parsed");
            self.ready.push_back(DatasetRecord {
                location: format!("{}:{}", member.name, line.no),
                doc,
                next: DatasetCursor {
                    member: member.index,
                    offset: batch.base + line.end as u64 + u64::from(line.terminated),
                    line: line.no,
                },
            });
        }
        Ok(())
    }

    /// Moves to the next data member; at the end of the archive, finishes.
    fn open_next_member(&mut self) -> Result<(), ReadError> {
        loop {
            let next = self
                .archive
                .next_entry()
                .map_err(|source| ReadError::Archive {
                    path: self.path.clone(),
                    source,
                })?;
            let Some(name) = next else {
                self.done = true;
                return self.finish();
            };
            if name == MANIFEST_MEMBER {
                continue;
            }
            let place = parse_data_path(&name)
                .ok_or_else(|| self.changed(format!("member {name} appeared")))?;
            let pair = (place.tenant.clone(), place.vendor.clone());
            self.state.enter_pair(&pair);
            self.member = Some(Member {
                name,
                index: self.members_started,
                place,
                pair,
            });
            self.members_started += 1;
            self.lines = Lines::new(BATCH_BYTES, false);
            return Ok(());
        }
    }

    /// At a member's end: it must be what was verified (size and lines).
    fn close_member(&mut self) -> Result<(), ReadError> {
        let member = self.member.take().expect("a member is open");
        let streamed = self.lines.streamed();
        match self.verified.iter().find(|f| f.path == member.name) {
            Some(f) if f.bytes == streamed.bytes && f.records == streamed.lines => Ok(()),
            _ => Err(self.changed(format!("{} changed", member.name))),
        }
    }

    /// After the last member: what needs every record (chains closed, per-vendor counts).
    fn finish(&mut self) -> Result<(), ReadError> {
        self.state.finish_pair();
        if !self.resumed {
            let derived = Derived::new(self.verified.clone(), self.state.vendor_counts());
            compare_manifest(&mut self.state, &self.manifest, &derived, true);
        }
        match self.state.failures.pop() {
            Some(failure) => Err(ReadError::Failed {
                path: self.path.clone(),
                failure: Box::new(failure),
            }),
            None => Ok(()),
        }
    }

    /// Skips to `to`: whole members before it and the bytes before it in its member are
    /// decompressed and dropped, nothing parsed.
    fn seek(&mut self, to: &DatasetCursor) -> Result<(), ReadError> {
        loop {
            self.open_next_member()?;
            let Some(member) = &self.member else {
                return Err(self.changed(format!(
                    "no data file {} to resume in (there are {})",
                    to.member + 1,
                    self.members_started
                )));
            };
            if member.index == to.member {
                break;
            }
            self.member = None;
        }
        self.lines
            .skip_to(&mut self.archive.entry(), to.offset, to.line)
            .map_err(|e| archive_error(&self.path, &self.archive, e))?;
        // The upstream document read first may have revisions before the cursor.
        self.state.partial_group = true;
        self.cursor = *to;
        Ok(())
    }

    fn changed(&self, detail: String) -> ReadError {
        ReadError::Changed {
            path: self.path.clone(),
            detail,
        }
    }
}

/// An I/O error reading a member, blamed on the archive when it is the archive's fault.
fn archive_error(path: &Path, archive: &ArchiveReader<'_>, e: io::Error) -> ReadError {
    ReadError::Archive {
        path: path.to_owned(),
        source: archive.entry_failure().unwrap_or(ArchiveError::Io(e)),
    }
}

/// Reads the private copy by position, so that every iterator has its own offset.
struct CopyReader {
    file: Arc<File>,
    at: u64,
}

impl Read for CopyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
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
