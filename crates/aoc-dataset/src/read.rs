//! Reading a dataset for loading. [`Dataset::open_verified`] checks the archive's integrity
//! completely first (the defensive reader, every data file's SHA-256, size and line count, the
//! manifest, the content address, the file name, the sidecar, a pinned hash); [`records`] then
//! streams the records in order, checking each as it is read (compact JSON, the AOC guard, its
//! place in the file order, its revision chain; the per-vendor counts at the end), so that a load
//! parses and guards every record once, while it loads.
//!
//! The records are never read from the archive again. While verifying, every data file's bytes
//! are written, exactly as they are hashed, to a private copy (an unlinked temporary file that no
//! other process can open by name, as large as the data decompressed); records are read from that
//! copy only. A file rewritten in place, truncated or replaced after verification therefore
//! changes nothing that is loaded: the records handed out are exactly those of the bytes that
//! were verified. The copy also makes a resumed read start right at its position: nothing before it
//! is decompressed again.
//!
//! [`records`]: VerifiedDataset::records

use crate::layout::{parse_data_path, DataPath};
use crate::manifest::{Derived, Manifest};
use crate::records::Lines;
use crate::verify::{
    check_line_verified, compare_manifest, verify_with_private_copy, Failure, LineResult,
    PrivateCopy, State, VerifyError, VerifyOptions, VerifyReport,
};
use aoc_archive::ArchiveError;
use aoc_contract::{Guard, GuardOptions};
use aoc_store::StoreDoc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Complete lines checked together (in parallel) and held, parsed, until handed out.
const BATCH_BYTES: usize = 1 << 20;

/// Entry point for datasets: `Dataset::open_verified(path)`.
pub struct Dataset;

/// A dataset whose integrity was verified; its records can be read, each checked as it is.
#[derive(Debug)]
pub struct VerifiedDataset {
    path: PathBuf,
    /// The private copy of exactly the data bytes that were verified: the only thing records
    /// are read from. Unlinked from the start, so it disappears with the last handle.
    private_copy: Arc<File>,
    /// Each data file's place in the copy, in archive order.
    members: Arc<[Member]>,
    report: VerifyReport,
}

/// One data file in the private copy.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    place: DataPath,
    offset: u64,
    bytes: u64,
    lines: u64,
}

/// Where a read of the records is: the next record is at byte `offset` (line `line + 1`) of the
/// `member`-th data file. Recorded by a loader's checkpoint, and sought back to by
/// [`VerifiedDataset::records_from`] without reading what comes before. The ingest engine's
/// [`aoc_ingest::InputPosition`] of a dataset input carries these three fields; it has an `item`
/// too (records of a JSON array on one line), which a dataset, one record a line, never needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPosition {
    /// Data files before this one, in archive order.
    pub member: u64,
    /// Bytes of that data file before the next record.
    pub offset: u64,
    /// Lines of that data file before the next record.
    pub line: u64,
}

/// One raw document, where it is in the dataset, and where the record after it starts.
#[derive(Debug, Clone)]
pub struct DatasetRecord {
    /// `data/<tenant>/<vendor>.ndjson:<line>`.
    pub location: String,
    /// The document as a store writes it: exactly the bytes of its line.
    pub stored: StoreDoc,
    /// The position after this record.
    pub next: DatasetPosition,
}

impl DatasetRecord {
    /// The document as JSON (parsed again from its line: loading needs only [`Self::stored`]).
    pub fn doc(&self) -> Value {
        self.stored.to_value()
    }
}

/// Equal records: the same bytes at the same place.
impl PartialEq for DatasetRecord {
    fn eq(&self, other: &DatasetRecord) -> bool {
        self.location == other.location
            && self.stored.json() == other.stored.json()
            && self.next == other.next
    }
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
    /// `TMPDIR`; as large as the data decompressed) from which the records are read later.
    /// `TMPDIR` missing, not writable or with less room than the sidecar manifest declares is
    /// [`VerifyError::Environment`] before a byte is read, and so is running out of room while
    /// copying: never a verdict on the dataset.
    pub fn open_verified_with(
        path: &Path,
        options: &VerifyOptions,
    ) -> Result<VerifiedDataset, VerifyError> {
        let unreadable = |message: String| VerifyError::Unreadable {
            path: path.to_owned(),
            message,
        };
        let file = crate::verify::open_archive(path)?;
        let needed = declared_data_bytes(path, options);
        // The size is the sidecar's claim, and the message says so: a sidecar that lies is
        // refused by verification wherever the room is there.
        aoc_term::environment::check_temp_dir(DECLARED_COPY_PURPOSE, needed)
            .map_err(VerifyError::Environment)?;
        let unlinked = tempfile::tempfile().map_err(|e| {
            tmpdir_problem(&e, needed).unwrap_or_else(|| {
                unreadable(format!("cannot create the private copy to load from: {e}"))
            })
        })?;
        let options = VerifyOptions {
            records: false,
            ..options.clone()
        };
        let copy = PrivateCopy {
            file: unlinked,
            written: 0,
            failed: None,
            members: Vec::new(),
        };
        let (report, copy) =
            verify_with_private_copy(path, file, &options, Some(copy)).map_err(|e| match e {
                VerifyError::Environment(env) => {
                    VerifyError::Environment(aoc_term::EnvironmentError {
                        needed: env.needed.or(needed),
                        ..env
                    })
                }
                e => e,
            })?;
        if !report.passed() {
            return Err(VerifyError::Failed(Box::new(report)));
        }
        let copy = copy.expect("the private copy comes back");
        let mut members = Vec::with_capacity(copy.members.len());
        for (name, offset, bytes) in copy.members {
            let file = report.files.iter().find(|f| f.path == name);
            let (Some(place), Some(file)) = (parse_data_path(&name), file) else {
                unreachable!("a verified dataset's data files are listed, with canonical names")
            };
            members.push(Member {
                lines: file.records,
                name,
                place,
                offset,
                bytes,
            });
        }
        copy.file.sync_data().map_err(|e| {
            tmpdir_problem(&e, needed)
                .unwrap_or_else(|| unreadable(format!("writing the private copy: {e}")))
        })?;
        Ok(VerifiedDataset {
            path: path.to_owned(),
            private_copy: Arc::new(copy.file),
            members: members.into(),
            report,
        })
    }
}

/// The same, with the room it needs taken from the sidecar manifest.
const DECLARED_COPY_PURPOSE: &str =
    "the private copy of a dataset's verified records, as its sidecar manifest declares";

/// The decompressed size of the data, as the sidecar manifest declares it (read bounded), when
/// there is one that parses: an estimate of the room the private copy needs, checked before the
/// copy starts. Only an estimate: verification decides whether the sidecar tells the truth, and
/// running out of room while copying is reported the same way.
fn declared_data_bytes(path: &Path, options: &VerifyOptions) -> Option<u64> {
    let bytes = match &options.sidecar {
        crate::Sidecar::Bytes(b) => b.clone(),
        crate::Sidecar::Beside => {
            let name = path.file_name()?.to_str()?;
            let (hash, _) = crate::parse_archive_name(name)?;
            let sidecar = path.with_file_name(crate::manifest_name(&hash));
            aoc_archive::fs::read_bounded(&sidecar, crate::verify::MAX_MANIFEST_BYTES).ok()?
        }
    };
    Manifest::from_slice(&bytes).ok().map(|m| m.totals.bytes)
}

/// `err`, met creating or writing the private copy, as an environment error when it is one.
fn tmpdir_problem(err: &io::Error, needed: Option<u64>) -> Option<VerifyError> {
    aoc_term::environment::classify(
        "TMPDIR",
        &aoc_term::environment::temp_dir(),
        crate::verify::COPY_PURPOSE,
        needed,
        err,
    )
    .map(VerifyError::Environment)
}

impl VerifiedDataset {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content address.
    pub fn hash(&self) -> aoc_digest::Sha256Digest {
        self.report.hash
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
        self.records_from(&DatasetPosition::default())
    }

    /// [`records`](Self::records) from `at` on (a resumed load): the data before it is
    /// decompressed and skipped, not parsed. Checks that need the records before `at` (the
    /// chain links into them, the per-vendor counts) are left to whoever read those.
    pub fn records_from(&self, at: &DatasetPosition) -> Result<Records, ReadError> {
        let mut records = Records {
            path: self.path.clone(),
            private_copy: Arc::clone(&self.private_copy),
            members: Arc::clone(&self.members),
            manifest: self.manifest().clone(),
            verified: self.report.files.clone(),
            next_member: 0,
            member: None,
            lines: Lines::new(BATCH_BYTES, false),
            state: State::new(1),
            ready: VecDeque::new(),
            position: DatasetPosition::default(),
            resumed: *at != DatasetPosition::default(),
            done: false,
        };
        if records.resumed {
            records.seek(at)?;
        }
        Ok(records)
    }
}

/// The records of a [`VerifiedDataset`], in order; see [`VerifiedDataset::records`].
pub struct Records {
    path: PathBuf,
    private_copy: Arc<File>,
    members: Arc<[Member]>,
    manifest: Manifest,
    /// The data files as verified (path, SHA-256, bytes, lines).
    verified: Vec<crate::FileEntry>,
    next_member: usize,
    /// The data file being read, and where in the copy.
    member: Option<(usize, PrivateCopyReader)>,
    lines: Lines,
    /// Order, chains and counts across records.
    state: State,
    /// Checked records of the current batch not yet handed out.
    ready: VecDeque<DatasetRecord>,
    /// After the last record handed out.
    position: DatasetPosition,
    resumed: bool,
    done: bool,
}

impl Iterator for Records {
    type Item = Result<DatasetRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                self.position = record.next;
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
    pub fn position(&self) -> DatasetPosition {
        self.position
    }

    /// Reads and checks the next batch of records into `ready`, or moves on to the next member,
    /// or finishes.
    fn fill(&mut self) -> Result<(), ReadError> {
        let Some((index, reader)) = &mut self.member else {
            return self.open_next_member();
        };
        let index = *index;
        let member = &self.members[index];
        let batch = match self.lines.next_batch(reader) {
            Ok(Some(batch)) => batch,
            Ok(None) => return self.close_member(),
            Err(e) => {
                return Err(ReadError::Archive {
                    path: self.path.clone(),
                    source: ArchiveError::Io(e),
                })
            }
        };
        let place = &member.place;
        let results: Vec<LineResult> = batch
            .lines
            .par_iter()
            .map_init(
                || (Guard::new(GuardOptions::default()), Vec::new()),
                |(guard, buf), line| {
                    check_line_verified(
                        guard,
                        buf,
                        batch.bytes(line),
                        line.terminated,
                        line.no,
                        place,
                        true,
                    )
                },
            )
            .collect();
        let pair = (place.tenant.clone(), place.vendor.clone());
        for (line, mut result) in batch.lines.iter().zip(results) {
            let stored = result.stored.take();
            self.state.record(&member.name, &pair, result);
            if let Some(failure) = self.state.failures.pop() {
                return Err(ReadError::Failed {
                    path: self.path.clone(),
                    failure: Box::new(failure),
                });
            }
            let Some(stored) = stored else {
                unreachable!("a record that passed every check parsed and renders for the store")
            };
            self.ready.push_back(DatasetRecord {
                location: format!("{}:{}", member.name, line.no),
                stored,
                next: DatasetPosition {
                    member: index as u64,
                    offset: batch.base + line.end as u64 + u64::from(line.terminated),
                    line: line.no,
                },
            });
        }
        Ok(())
    }

    /// Moves to the next data file; after the last one, finishes.
    fn open_next_member(&mut self) -> Result<(), ReadError> {
        let index = self.next_member;
        let Some(member) = self.members.get(index) else {
            self.done = true;
            return self.finish();
        };
        self.next_member += 1;
        self.state
            .enter_pair(&(member.place.tenant.clone(), member.place.vendor.clone()));
        self.lines = Lines::new(BATCH_BYTES, false);
        self.member = Some((
            index,
            PrivateCopyReader {
                file: Arc::clone(&self.private_copy),
                at: member.offset,
                end: member.offset + member.bytes,
            },
        ));
        Ok(())
    }

    /// At a data file's end: it must be what was verified (size and lines).
    fn close_member(&mut self) -> Result<(), ReadError> {
        let (index, _) = self.member.take().expect("a member is open");
        let member = &self.members[index];
        let streamed = self.lines.streamed();
        if streamed.bytes != member.bytes || streamed.lines != member.lines {
            return Err(ReadError::Changed {
                path: self.path.clone(),
                detail: format!("{} changed", member.name),
            });
        }
        Ok(())
    }

    /// After the last data file: what needs every record (chains closed, per-vendor counts).
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

    /// Starts at `to`: the copy is read from there on; nothing before it is read or parsed.
    fn seek(&mut self, to: &DatasetPosition) -> Result<(), ReadError> {
        let index = usize::try_from(to.member).unwrap_or(usize::MAX);
        let past_the_end = index == self.members.len() && to.offset == 0;
        match self.members.get(index) {
            Some(member) if to.offset <= member.bytes && to.line <= member.lines => {}
            _ if past_the_end => {}
            _ => {
                return Err(ReadError::Changed {
                    path: self.path.clone(),
                    detail: format!(
                        "no record at {to:?} (the dataset has {} data files)",
                        self.members.len()
                    ),
                })
            }
        }
        self.next_member = index;
        self.open_next_member()?;
        if let Some((_, reader)) = &mut self.member {
            reader.at += to.offset;
            self.lines.start_at(to.offset, to.line);
        }
        // The upstream document read first may have revisions before `to`.
        self.state.partial_group = true;
        self.position = *to;
        Ok(())
    }
}

/// Reads one data file of the private copy by position, so that every iterator has its own.
struct PrivateCopyReader {
    file: Arc<File>,
    at: u64,
    end: u64,
}

impl Read for PrivateCopyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.at)).unwrap_or(usize::MAX);
        let len = buf.len().min(left);
        if len == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..len], self.at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the private copy is shorter than what was verified",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}
