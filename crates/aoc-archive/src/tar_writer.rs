//! Deterministic, streaming tar writer: GNU-format headers with uid/gid 0, empty owner names,
//! mode 0644/0755 and one `SOURCE_DATE_EPOCH` mtime, members in byte order of their paths, and
//! each member's SHA-256 computed while its bytes are copied (callers never re-read a file).
//!
//! Nothing on disk other than the content of regular files reaches the archive: disk mtimes,
//! owners and permission bits (except the caller's `executable` flag) are ignored, so the output is
//! a function of `(paths, contents, executable flags, epoch)` only.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aoc_digest::Sha256Digest;
use sha2::{Digest, Sha256};

use crate::hashing::{MemberDigest, HASH_BUFFER_BYTES};
use crate::path_rules::{check_path, PathMode, PathProblem};

const BLOCK: usize = 512;
/// Longest name that fits the GNU header's `name` field; longer ones get a `././@LongLink` entry,
/// as GNU tar writes them.
const GNU_NAME_FIELD: usize = 100;

/// Where a member's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A regular file on disk, streamed when the member is written.
    File(PathBuf),
    /// Bytes held in memory.
    Bytes(Vec<u8>),
}

/// One member to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive: relative, `/`-separated, no `.`/`..`/empty components.
    pub archive_path: String,
    /// The content.
    pub source: EntrySource,
    /// Mode 0755 instead of 0644.
    pub executable: bool,
}

impl Entry {
    /// A member whose content is the regular file `disk_path`.
    pub fn file(archive_path: impl Into<String>, disk_path: impl Into<PathBuf>) -> Self {
        Entry {
            archive_path: archive_path.into(),
            source: EntrySource::File(disk_path.into()),
            executable: false,
        }
    }

    /// A member whose content is `data`.
    pub fn bytes(archive_path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            archive_path: archive_path.into(),
            source: EntrySource::Bytes(data.into()),
            executable: false,
        }
    }

    /// Sets the executable flag (mode 0755).
    pub fn executable(mut self, executable: bool) -> Self {
        self.executable = executable;
        self
    }
}

/// Why writing an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A member path breaks the path rules.
    #[error("invalid archive path {path:?}: {problem}")]
    InvalidPath { path: String, problem: PathProblem },
    /// Two members (or a member and a generated directory) share a path.
    #[error("duplicate archive path {path:?}")]
    DuplicatePath { path: String },
    /// [`TarWriter::append`] was called out of byte order.
    #[error("archive path {path:?} appended after {previous:?}: members must be in byte order")]
    OutOfOrder { path: String, previous: String },
    /// An input is not a regular file (symlinks are not followed).
    #[error("{path}: not a regular file")]
    NotARegularFile { path: PathBuf },
    /// An input file changed size while it was being archived.
    #[error("{path}: file changed size while being archived")]
    FileChanged { path: PathBuf },
    /// Reading an input failed.
    #[error("reading {path}: {source}")]
    ReadInput { path: PathBuf, source: io::Error },
    /// Writing the archive failed.
    #[error("writing archive: {0}")]
    Write(#[source] io::Error),
    /// Creating, syncing or renaming the output file failed.
    #[error("{path}: {source}")]
    Output { path: PathBuf, source: io::Error },
}

/// Low-level streaming writer. Members must be appended in strictly increasing byte order of
/// their paths (directories compare as `path/`); [`write_tar`] sorts for you.
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
    buf: Vec<u8>,
    last_key: Option<String>,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer stamping every header with `source_date_epoch`.
    pub fn new(out: W, source_date_epoch: u64) -> Self {
        TarWriter {
            out,
            mtime: source_date_epoch,
            buf: Vec::new(),
            last_key: None,
            written: 0,
        }
    }

    /// Tar bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Appends a directory entry (`path/`, mode 0755).
    pub fn append_dir(&mut self, path: &str) -> Result<(), PackError> {
        let canonical = checked(path)?;
        let name = format!("{canonical}/");
        self.check_order(&name)?;
        self.write_header(&name, 0, 0o755, tar::EntryType::Directory)?;
        self.last_key = Some(name);
        Ok(())
    }

    /// Appends one member, streaming its content and hashing it in the same pass.
    pub fn append(&mut self, entry: &Entry) -> Result<MemberDigest, PackError> {
        let path = checked(&entry.archive_path)?;
        self.check_order(path)?;
        let mode = if entry.executable { 0o755 } else { 0o644 };
        let mut hasher = Sha256::new();
        let size = match &entry.source {
            EntrySource::Bytes(data) => {
                self.write_header(path, data.len() as u64, mode, tar::EntryType::Regular)?;
                hasher.update(data);
                self.write_out(data)?;
                data.len() as u64
            }
            EntrySource::File(disk) => self.copy_file(path, disk, mode, &mut hasher)?,
        };
        self.pad(size)?;
        self.last_key = Some(path.to_owned());
        Ok(MemberDigest {
            path: path.to_owned(),
            size,
            sha256: Sha256Digest(hasher.finalize().into()),
        })
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the inner writer.
    pub fn finish(mut self) -> Result<W, PackError> {
        self.write_out(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }

    fn copy_file(
        &mut self,
        path: &str,
        disk: &Path,
        mode: u32,
        hasher: &mut Sha256,
    ) -> Result<u64, PackError> {
        let read_err = |source| PackError::ReadInput {
            path: disk.to_path_buf(),
            source,
        };
        let meta = std::fs::symlink_metadata(disk).map_err(read_err)?;
        if !meta.is_file() {
            return Err(PackError::NotARegularFile {
                path: disk.to_path_buf(),
            });
        }
        let mut file = File::open(disk).map_err(read_err)?;
        let size = meta.len();
        self.write_header(path, size, mode, tar::EntryType::Regular)?;
        if self.buf.len() < HASH_BUFFER_BYTES {
            self.buf.resize(HASH_BUFFER_BYTES, 0);
        }
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(PackError::FileChanged {
                        path: disk.to_path_buf(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            hasher.update(&self.buf[..n]);
            self.out
                .write_all(&self.buf[..n])
                .map_err(PackError::Write)?;
            self.written += n as u64;
            remaining -= n as u64;
        }
        // A file that grew would otherwise be silently cut at its stat size.
        if file.read(&mut self.buf[..1]).map_err(read_err)? != 0 {
            return Err(PackError::FileChanged {
                path: disk.to_path_buf(),
            });
        }
        Ok(size)
    }

    fn check_order(&self, key: &str) -> Result<(), PackError> {
        match &self.last_key {
            Some(prev) if prev.as_bytes() == key.as_bytes() => Err(PackError::DuplicatePath {
                path: key.to_owned(),
            }),
            Some(prev) if prev.as_bytes() > key.as_bytes() => Err(PackError::OutOfOrder {
                path: key.to_owned(),
                previous: prev.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn write_header(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        kind: tar::EntryType,
    ) -> Result<(), PackError> {
        if name.len() > GNU_NAME_FIELD {
            let mut data = Vec::with_capacity(name.len() + 1);
            data.extend_from_slice(name.as_bytes());
            data.push(0);
            let long = self.header(b"././@LongLink", data.len() as u64, 0o644, 0, {
                tar::EntryType::GNULongName
            });
            self.write_out(long.as_bytes())?;
            self.write_out(&data)?;
            self.pad(data.len() as u64)?;
        }
        let short = &name.as_bytes()[..name.len().min(GNU_NAME_FIELD)];
        let header = self.header(short, size, mode, self.mtime, kind);
        self.write_out(header.as_bytes())
    }

    fn header(
        &self,
        name: &[u8],
        size: u64,
        mode: u32,
        mtime: u64,
        kind: tar::EntryType,
    ) -> tar::Header {
        // `new_gnu` zeroes every field (so uname/gname are empty) and sets the GNU magic.
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().expect("GNU header").name[..name.len()].copy_from_slice(name);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    fn pad(&mut self, size: u64) -> Result<(), PackError> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_out(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn write_out(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.out.write_all(bytes).map_err(PackError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

fn checked(path: &str) -> Result<&str, PackError> {
    check_path(path, PathMode::Write)
        .map(|_| path)
        .map_err(|problem| PackError::InvalidPath {
            path: path.to_owned(),
            problem,
        })
}

/// Writes `entries` as a complete tar to `out`, sorted by path bytes, optionally preceded by an
/// entry for every parent directory. Returns the writer and the members' digests in archive order.
pub fn write_tar<W: Write>(
    mut entries: Vec<Entry>,
    out: W,
    source_date_epoch: u64,
    include_directories: bool,
) -> Result<(W, Vec<MemberDigest>), PackError> {
    for entry in &entries {
        checked(&entry.archive_path)?;
    }
    entries.sort_by(|a, b| a.archive_path.as_bytes().cmp(b.archive_path.as_bytes()));
    if let Some(pair) = entries
        .windows(2)
        .find(|w| w[0].archive_path == w[1].archive_path)
    {
        return Err(PackError::DuplicatePath {
            path: pair[0].archive_path.clone(),
        });
    }
    let dirs: BTreeSet<String> = if include_directories {
        entries
            .iter()
            .flat_map(|e| {
                let p = e.archive_path.as_str();
                p.match_indices('/')
                    .map(move |(i, _)| format!("{}/", &p[..i]))
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    for dir in &dirs {
        let as_file = &dir[..dir.len() - 1];
        if entries
            .binary_search_by(|e| e.archive_path.as_str().cmp(as_file))
            .is_ok()
        {
            return Err(PackError::DuplicatePath {
                path: as_file.to_owned(),
            });
        }
    }

    let mut writer = TarWriter::new(out, source_date_epoch);
    let mut digests = Vec::with_capacity(entries.len());
    let mut dirs = dirs.into_iter().peekable();
    for entry in &entries {
        // `dir/` sorts before everything under it, so merging the two sorted lists keeps byte order.
        while let Some(dir) = dirs.next_if(|d| d.as_bytes() < entry.archive_path.as_bytes()) {
            writer.append_dir(&dir[..dir.len() - 1])?;
        }
        digests.push(writer.append(entry)?);
    }
    Ok((writer.finish()?, digests))
}

/// Lists every regular file under `root` as an entry named `prefix/relative/path` (no prefix when
/// `prefix` is empty), executable when any execute bit is set on disk. Symlinks and other special
/// files are refused rather than followed; non-UTF-8 names are refused.
pub fn entries_from_dir(root: &Path, prefix: &str) -> Result<Vec<Entry>, PackError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), prefix.trim_end_matches('/').to_owned())];
    while let Some((dir, archive_dir)) = stack.pop() {
        let read_err = |source| PackError::ReadInput {
            path: dir.clone(),
            source,
        };
        for item in std::fs::read_dir(&dir).map_err(read_err)? {
            let item = item.map_err(read_err)?;
            let disk = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|raw| PackError::InvalidPath {
                    path: raw.to_string_lossy().into_owned(),
                    problem: PathProblem::NotUtf8,
                })?;
            let archive_path = if archive_dir.is_empty() {
                name
            } else {
                format!("{archive_dir}/{name}")
            };
            let meta = item.metadata().map_err(|source| PackError::ReadInput {
                path: disk.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push((disk, archive_path));
            } else if meta.is_file() {
                out.push(Entry::file(archive_path, disk).executable(is_executable(&meta)));
            } else {
                return Err(PackError::NotARegularFile { path: disk });
            }
        }
    }
    Ok(out)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}
