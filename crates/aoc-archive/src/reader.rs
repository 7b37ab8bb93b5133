//! Defensive archive reader for `.tar`, `.tar.gz` and `.tar.zst` (recognised by magic bytes, not by
//! name). It streams members to a callback and refuses, with an error naming the member, anything
//! an extractor could be tricked by: absolute paths, `..`, links, devices, fifos and other special
//! types, duplicate or non-UTF-8 or overlong names, members over a size limit, and decompressed
//! data past a total bound (a decompression bomb stops at the bound: memory and work stay bounded).
//! It never writes to disk and never allocates from a size a header declares before checking it.
//! gzip written by [`ParallelGzEncoder`](crate::ParallelGzEncoder) (members carrying their size)
//! is inflated on two threads, a few members ahead; other gzip is inflated sequentially.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use crate::gzip;
use crate::hashing::{sha256_reader, MemberDigest};
use crate::path_rules::{check_path, PathMode, PathProblem, MAX_PATH_BYTES};

const BLOCK: u64 = 512;
/// Largest PAX extended header accepted: real ones are a few hundred bytes.
const MAX_PAX_BYTES: u64 = 64 * 1024;
/// zstd window accepted by the decoder (2^27 = 128 MiB, zstd's own default cap): bounds memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Allocation step when collecting a member in memory: a declared size is never trusted up front.
const MAX_PREALLOCATION: u64 = 1 << 20;

/// Bounds on what one archive may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest member, in bytes (checked against the header before any data is read).
    pub max_entry_bytes: u64,
    /// Most decompressed bytes read in total, headers and padding included.
    pub max_total_bytes: u64,
    /// Most members (files and directories).
    pub max_entries: u64,
}

impl Default for Limits {
    /// 2 GiB per member, 8 GiB in total, one million members.
    fn default() -> Self {
        Limits {
            max_entry_bytes: 2 << 30,
            max_total_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// The container format, from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Uncompressed tar.
    Tar,
    /// gzip-compressed tar (one or more gzip members).
    Gzip,
    /// zstd-compressed tar.
    Zstd,
}

/// Why an archive was refused or could not be read. Member-specific variants name the member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or decompressing failed.
    #[error("reading archive: {0}")]
    Io(#[from] io::Error),
    /// The first bytes are neither gzip, zstd nor a tar header.
    #[error("not a tar, gzip or zstd archive (unrecognised leading bytes)")]
    UnknownFormat,
    /// A tar header is malformed.
    #[error("corrupt tar header at byte {offset}: {reason}")]
    CorruptHeader { offset: u64, reason: String },
    /// A member path starts with `/`.
    #[error("entry {entry:?}: absolute path")]
    AbsolutePath { entry: String },
    /// A member path has a `..` component.
    #[error("entry {entry:?}: `..` path component")]
    ParentComponent { entry: String },
    /// A member name is not UTF-8 (shown lossily).
    #[error("entry {entry:?}: name is not UTF-8")]
    NonUtf8Name { entry: String },
    /// A member name is over 1024 bytes or has a component over 255 bytes.
    #[error("entry {entry:?}: name too long: {problem}")]
    OverlongName { entry: String, problem: PathProblem },
    /// A member name breaks another path rule (empty component, backslash, control character).
    #[error("entry {entry:?}: invalid name: {problem}")]
    InvalidName { entry: String, problem: PathProblem },
    /// A symbolic link.
    #[error("entry {entry:?}: symbolic links are not allowed")]
    Symlink { entry: String },
    /// A hard link.
    #[error("entry {entry:?}: hard links are not allowed")]
    Hardlink { entry: String },
    /// A character or block device.
    #[error("entry {entry:?}: device files are not allowed")]
    Device { entry: String },
    /// A named pipe.
    #[error("entry {entry:?}: fifos are not allowed")]
    Fifo { entry: String },
    /// Any other type that is neither a regular file nor a directory (sparse, contiguous, ...).
    #[error("entry {entry:?}: unsupported entry type {type_flag:?}")]
    UnsupportedType { entry: String, type_flag: char },
    /// A PAX or GNU extension this reader does not accept.
    #[error("unsupported tar extension at byte {offset}: {reason}")]
    UnsupportedExtension { offset: u64, reason: String },
    /// Two members with the same (canonical) name.
    #[error("entry {entry:?}: duplicate name")]
    DuplicateName { entry: String },
    /// A member larger than [`Limits::max_entry_bytes`].
    #[error("entry {entry:?}: {size} bytes exceeds the per-entry limit of {limit}")]
    EntryTooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    /// More than [`Limits::max_total_bytes`] decompressed bytes.
    #[error("archive exceeds the limit of {limit} decompressed bytes (decompression bomb?)")]
    TotalSizeExceeded { limit: u64 },
    /// More than [`Limits::max_entries`] members.
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    /// The data ends inside a member.
    #[error("entry {entry:?}: archive truncated inside this entry")]
    TruncatedEntry { entry: String },
    /// The data ends without the tar end-of-archive marker.
    #[error("archive truncated: no end-of-archive marker")]
    MissingEndMarker,
}

/// Streams the members of one archive: pulled one at a time with
/// [`next_entry`](Self::next_entry) and read through [`entry`](Self::entry) (like
/// `tar::Archive::entries`), or passed to a callback by [`for_each_entry`](Self::for_each_entry).
pub struct ArchiveReader<'a> {
    stream: Bounded<Box<dyn Read + 'a>>,
    format: Format,
    limits: Limits,
    /// Canonical names seen so far (duplicates are refused).
    seen: HashSet<String>,
    count: u64,
    /// The member being read.
    current: Current,
    /// The end-of-archive marker was read and the rest of the data verified.
    finished: bool,
}

/// The member [`ArchiveReader::entry`] reads: what is left of it and whether the data ended early.
#[derive(Default)]
struct Current {
    name: String,
    size: u64,
    remaining: u64,
    truncated: bool,
}

/// What extension headers (GNU long name, PAX) said about the entry that follows them.
#[derive(Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

impl Extensions {
    fn is_pending(&self) -> bool {
        self.long_name.is_some() || self.pax_path.is_some() || self.pax_size.is_some()
    }

    /// The entry's name (the PAX path, else the GNU long name, else the header's) and size (the
    /// PAX size, else the header's `declared` one).
    fn name_and_size(self, header: &tar::Header, declared: u64) -> (Vec<u8>, u64) {
        let raw_name = self
            .pax_path
            .or(self.long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        (raw_name, self.pax_size.unwrap_or(declared))
    }
}

impl ArchiveReader<'static> {
    /// Opens the archive at `path`, detecting its format from the first bytes.
    pub fn open(path: &Path, limits: Limits) -> Result<Self, ArchiveError> {
        let file = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::new(file, limits)
    }
}

impl<'a> ArchiveReader<'a> {
    /// Reads an archive from any reader, detecting its format from the first bytes.
    pub fn new<R: Read + 'a>(reader: R, limits: Limits) -> Result<Self, ArchiveError> {
        let mut source = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
        let mut head = Vec::with_capacity(BLOCK as usize);
        (&mut source).take(BLOCK).read_to_end(&mut head)?;
        let format = detect(&head).ok_or(ArchiveError::UnknownFormat)?;
        let sized_members = gzip::member_size_subfield(&head).is_some();
        let source = Cursor::new(head).chain(source);
        let decoded: Box<dyn Read + 'a> = match format {
            Format::Tar => Box::new(source),
            // Our own writer's members say how long they are: inflate them on both cores.
            Format::Gzip if sized_members => Box::new(gzip::ParallelGzDecoder::new(source)?),
            // Foreign gzip (one member, or members without the size subfield): sequential.
            Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(source)),
            Format::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(source)?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(decoder)
            }
        };
        Ok(ArchiveReader {
            stream: Bounded {
                inner: decoded,
                limit: limits.max_total_bytes,
                consumed: 0,
                exceeded: false,
            },
            format,
            limits,
            seen: HashSet::new(),
            count: 0,
            current: Current::default(),
            finished: false,
        })
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Calls `f(path, reader)` for every regular file, in archive order, with its canonical path
    /// (no `./`, no trailing slash). Directories are checked but not passed on. Whatever `f` leaves
    /// unread is skipped. After the last member the rest of the stream is read (within the bound)
    /// so that gzip/zstd checksums are verified.
    pub fn for_each_entry<F, E>(mut self, mut f: F) -> Result<(), E>
    where
        F: FnMut(&str, &mut EntryReader<'_>) -> Result<(), E>,
        E: From<ArchiveError>,
    {
        while let Some(name) = self.next_entry()? {
            let result = f(&name, &mut self.entry());
            if let Err(e) = result {
                return Err(match self.entry_failure() {
                    Some(archive_error) => archive_error.into(),
                    None => e,
                });
            }
        }
        Ok(())
    }

    /// The next regular file's canonical path (no `./`, no trailing slash), in archive order, or
    /// `None` once the end-of-archive marker has been read, and with it the rest of the stream
    /// (within the bound), so that gzip/zstd checksums are verified. What was left unread of the
    /// previous member is skipped first. Directories are checked but not returned. After an
    /// error the reader must not be used again.
    pub fn next_entry(&mut self) -> Result<Option<String>, ArchiveError> {
        if self.finished {
            return Ok(None);
        }
        self.skip_rest_of_current()?;
        let mut extensions = Extensions::default();
        let mut block = [0u8; BLOCK as usize];
        loop {
            let offset = self.stream.consumed;
            if !self.read_block(&mut block)? {
                return Err(ArchiveError::MissingEndMarker);
            }
            if block.iter().all(|b| *b == 0) {
                self.finish_at_end_marker(&extensions, offset)?;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            verify_checksum(header, offset)?;
            let declared = header
                .entry_size()
                .map_err(|e| corrupt(offset, &format!("size field: {e}")))?;
            let type_flag = header.entry_type().as_byte();
            if self.read_extension(&mut extensions, type_flag, declared, offset)? {
                continue;
            }
            let (raw_name, size) = std::mem::take(&mut extensions).name_and_size(header, declared);
            let is_dir = type_flag == b'5';
            let Some(canonical) = self.check_name(raw_name, size, is_dir)? else {
                continue;
            };
            self.check_entry(&canonical, type_flag, size)?;
            if is_dir {
                self.skip(size + padding(size))
                    .map_err(|e| self.entry_error(e, &canonical))?;
                continue;
            }
            self.current = Current {
                name: canonical.clone(),
                size,
                remaining: size,
                truncated: false,
            };
            return Ok(Some(canonical));
        }
    }

    /// What was left unread of the member returned last, with its padding.
    fn skip_rest_of_current(&mut self) -> Result<(), ArchiveError> {
        if !self.current.name.is_empty() {
            let left = self.current.remaining + padding(self.current.size);
            let name = std::mem::take(&mut self.current.name);
            self.current.remaining = 0;
            self.skip(left).map_err(|e| self.entry_error(e, &name))?;
        }
        Ok(())
    }

    /// At the end-of-archive marker (the zero block at `offset`): no extension header may be left
    /// waiting for its entry, and the rest of the stream is read.
    fn finish_at_end_marker(
        &mut self,
        extensions: &Extensions,
        offset: u64,
    ) -> Result<(), ArchiveError> {
        if extensions.is_pending() {
            return Err(corrupt(
                offset,
                "extension header without a following entry",
            ));
        }
        // Reading to the end verifies the gzip CRC / zstd checksum of everything returned.
        self.skip(u64::MAX).map_err(|e| self.io_error(e))?;
        self.finished = true;
        Ok(())
    }

    /// Reads a GNU long name or link (`L`, `K`) or a PAX header (`x`, `g`) of `declared` bytes
    /// into `extensions` for the entry that follows; `false` for any other type, an entry.
    fn read_extension(
        &mut self,
        extensions: &mut Extensions,
        type_flag: u8,
        declared: u64,
        offset: u64,
    ) -> Result<bool, ArchiveError> {
        match type_flag {
            b'L' => {
                if extensions.long_name.is_some() {
                    return Err(corrupt(offset, "two GNU long names for one entry"));
                }
                if declared > MAX_PATH_BYTES as u64 + 1 {
                    return Err(ArchiveError::OverlongName {
                        entry: "././@LongLink".to_owned(),
                        problem: PathProblem::PathTooLong {
                            bytes: declared as usize,
                        },
                    });
                }
                let mut name = self.read_small(declared)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                extensions.long_name = Some(name);
            }
            b'K' => {
                // Long link target: the link entry it belongs to is refused below.
                if declared > MAX_PATH_BYTES as u64 + 1 {
                    return Err(corrupt(offset, "overlong GNU long link name"));
                }
                self.read_small(declared)?;
            }
            b'x' | b'g' => {
                if declared > MAX_PAX_BYTES {
                    return Err(ArchiveError::UnsupportedExtension {
                        offset,
                        reason: format!("PAX header of {declared} bytes (limit {MAX_PAX_BYTES})"),
                    });
                }
                let data = self.read_small(declared)?;
                let (path, size) = parse_pax(&data, offset)?;
                if type_flag == b'g' {
                    if path.is_some() || size.is_some() {
                        return Err(ArchiveError::UnsupportedExtension {
                            offset,
                            reason: "global PAX header sets path or size".to_owned(),
                        });
                    }
                } else {
                    if extensions.pax_path.is_some() || extensions.pax_size.is_some() {
                        return Err(corrupt(offset, "two PAX headers for one entry"));
                    }
                    extensions.pax_path = path;
                    extensions.pax_size = size;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Counts the entry and checks its name; `None` for the root directory as `tar -C dir .`
    /// writes it (`./`), which is skipped: nothing to check or return.
    fn check_name(
        &mut self,
        raw_name: Vec<u8>,
        size: u64,
        is_dir: bool,
    ) -> Result<Option<String>, ArchiveError> {
        let name = String::from_utf8(raw_name).map_err(|e| ArchiveError::NonUtf8Name {
            entry: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        self.count += 1;
        if self.count > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        match check_path(&name, PathMode::Read { is_dir }) {
            Ok(canonical) => Ok(Some(canonical.into_owned())),
            Err(PathProblem::Empty) if is_dir && !name.is_empty() => {
                self.skip(size + padding(size))
                    .map_err(|e| self.io_error(e))?;
                Ok(None)
            }
            Err(problem) => Err(path_error(&name, problem)),
        }
    }

    /// The entry's type, that its name is new, and its size against the limits.
    fn check_entry(
        &mut self,
        canonical: &str,
        type_flag: u8,
        size: u64,
    ) -> Result<(), ArchiveError> {
        check_type(type_flag, canonical)?;
        if !self.seen.insert(canonical.to_owned()) {
            return Err(ArchiveError::DuplicateName {
                entry: canonical.to_owned(),
            });
        }
        if size > self.limits.max_entry_bytes {
            return Err(ArchiveError::EntryTooLarge {
                entry: canonical.to_owned(),
                size,
                limit: self.limits.max_entry_bytes,
            });
        }
        if size > self.limits.max_total_bytes - self.stream.consumed {
            // Reading it would cross the bound anyway: stop before doing the work.
            return Err(ArchiveError::TotalSizeExceeded {
                limit: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// The data of the member [`next_entry`](Self::next_entry) returned last (empty before the
    /// first and after the last).
    pub fn entry(&mut self) -> EntryReader<'_> {
        EntryReader {
            stream: &mut self.stream,
            remaining: &mut self.current.remaining,
            size: self.current.size,
            truncated: &mut self.current.truncated,
        }
    }

    /// Why reading the current member failed, when the archive is to blame (the bound crossed, the
    /// data ending inside the member) rather than whoever was reading it.
    pub fn entry_failure(&self) -> Option<ArchiveError> {
        if self.stream.exceeded {
            Some(self.bound_error())
        } else if self.current.truncated {
            Some(ArchiveError::TruncatedEntry {
                entry: self.current.name.clone(),
            })
        } else {
            None
        }
    }

    /// Every regular file with its content, in archive order. Memory is bounded by
    /// [`Limits::max_total_bytes`].
    pub fn read_all(self) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
        let mut files = Vec::new();
        self.for_each_entry(|path, reader| {
            let mut data = Vec::with_capacity(reader.size().min(MAX_PREALLOCATION) as usize);
            reader.read_to_end(&mut data)?;
            files.push((path.to_owned(), data));
            Ok::<_, ArchiveError>(())
        })?;
        Ok(files)
    }

    /// Path, size and SHA-256 of every regular file, in archive order, streaming.
    pub fn digest_all(self) -> Result<Vec<MemberDigest>, ArchiveError> {
        let mut digests = Vec::new();
        self.for_each_entry(|path, reader| {
            let (size, sha256) = sha256_reader(reader)?;
            digests.push(MemberDigest {
                path: path.to_owned(),
                size,
                sha256,
            });
            Ok::<_, ArchiveError>(())
        })?;
        Ok(digests)
    }

    /// Reads one header block; `false` on a clean end of data.
    fn read_block(&mut self, block: &mut [u8; BLOCK as usize]) -> Result<bool, ArchiveError> {
        let mut filled = 0;
        while filled < block.len() {
            match self.stream.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(ArchiveError::MissingEndMarker),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(true)
    }

    /// Reads an extension header's data (already checked to be small) and its padding.
    fn read_small(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut data = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut data)
            .map_err(|e| self.io_error(e))?;
        self.skip(padding(size)).map_err(|e| self.io_error(e))?;
        Ok(data)
    }

    /// Discards up to `n` bytes (to the end of data for `u64::MAX`).
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.stream).take(n), &mut io::sink())?;
        if n != u64::MAX && copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn bound_error(&self) -> ArchiveError {
        ArchiveError::TotalSizeExceeded {
            limit: self.limits.max_total_bytes,
        }
    }

    fn io_error(&self, e: io::Error) -> ArchiveError {
        if self.stream.exceeded {
            self.bound_error()
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            ArchiveError::MissingEndMarker
        } else {
            ArchiveError::Io(e)
        }
    }

    fn entry_error(&self, e: io::Error, entry: &str) -> ArchiveError {
        if self.stream.exceeded {
            self.bound_error()
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            ArchiveError::TruncatedEntry {
                entry: entry.to_owned(),
            }
        } else {
            ArchiveError::Io(e)
        }
    }
}

/// The content of one member, limited to its size. Reading past the end of the archive data
/// fails with `UnexpectedEof` instead of returning a short member.
pub struct EntryReader<'r> {
    stream: &'r mut dyn Read,
    remaining: &'r mut u64,
    size: u64,
    truncated: &'r mut bool,
}

impl EntryReader<'_> {
    /// The member's size as declared (already checked against the limits).
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min((*self.remaining).min(usize::MAX as u64) as usize);
        let n = self.stream.read(&mut buf[..max])?;
        if n == 0 {
            *self.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside an entry",
            ));
        }
        *self.remaining -= n as u64;
        Ok(n)
    }
}

/// Counts decompressed bytes and fails once more than `limit` would be returned.
struct Bounded<R> {
    inner: R,
    limit: u64,
    consumed: u64,
    exceeded: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.consumed >= self.limit || self.exceeded {
            // At the bound: data ending exactly here is fine, one byte more is not.
            let mut probe = [0u8; 1];
            if !self.exceeded && self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other(format!(
                "more than {} decompressed bytes",
                self.limit
            )));
        }
        let max = buf
            .len()
            .min((self.limit - self.consumed).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.consumed += n as u64;
        Ok(n)
    }
}

fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(&GZIP_MAGIC) {
        Some(Format::Gzip)
    } else if head.starts_with(&ZSTD_MAGIC) {
        Some(Format::Zstd)
    } else if head.len() == BLOCK as usize
        && (&head[257..262] == b"ustar" || head.iter().all(|b| *b == 0))
    {
        Some(Format::Tar)
    } else {
        None
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn corrupt(offset: u64, reason: &str) -> ArchiveError {
    ArchiveError::CorruptHeader {
        offset,
        reason: reason.to_owned(),
    }
}

fn verify_checksum(header: &tar::Header, offset: u64) -> Result<(), ArchiveError> {
    let stored = header
        .cksum()
        .map_err(|e| corrupt(offset, &format!("checksum field: {e}")))?;
    let bytes = header.as_bytes();
    // The checksum field itself counts as eight spaces (POSIX ustar).
    let sum = bytes[..148]
        .iter()
        .chain(&bytes[156..])
        .fold(8 * u32::from(b' '), |acc, b| acc + u32::from(*b));
    if sum != stored {
        return Err(corrupt(offset, "checksum mismatch"));
    }
    Ok(())
}

fn parse_pax(data: &[u8], offset: u64) -> Result<(Option<Vec<u8>>, Option<u64>), ArchiveError> {
    let mut path = None;
    let mut size = None;
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|e| corrupt(offset, &format!("PAX record: {e}")))?;
        match ext.key_bytes() {
            b"path" => path = Some(ext.value_bytes().to_vec()),
            b"size" => {
                let parsed = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| corrupt(offset, "PAX size is not a number"))?;
                size = Some(parsed);
            }
            _ => {}
        }
    }
    Ok((path, size))
}

fn path_error(name: &str, problem: PathProblem) -> ArchiveError {
    let entry = name.to_owned();
    match problem {
        PathProblem::Absolute => ArchiveError::AbsolutePath { entry },
        PathProblem::ParentComponent => ArchiveError::ParentComponent { entry },
        PathProblem::ComponentTooLong { .. } | PathProblem::PathTooLong { .. } => {
            ArchiveError::OverlongName { entry, problem }
        }
        PathProblem::NotUtf8 => ArchiveError::NonUtf8Name { entry },
        _ => ArchiveError::InvalidName { entry, problem },
    }
}

fn check_type(type_flag: u8, entry: &str) -> Result<(), ArchiveError> {
    let entry = entry.to_owned();
    match type_flag {
        b'0' | b'\0' | b'5' => Ok(()),
        b'1' => Err(ArchiveError::Hardlink { entry }),
        b'2' => Err(ArchiveError::Symlink { entry }),
        b'3' | b'4' => Err(ArchiveError::Device { entry }),
        b'6' => Err(ArchiveError::Fifo { entry }),
        other => Err(ArchiveError::UnsupportedType {
            entry,
            type_flag: other as char,
        }),
    }
}
