//! One-shot packing: entries → deterministic tar → compression → file, in one streaming pass that
//! also hashes every member and the finished archive, written atomically (temporary file in the
//! target directory, fsync, rename) so no half-written archive ever carries the final name.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use aoc_digest::{HashingWriter, Sha256Digest};

use crate::compression::{CompressWriter, Compression};
use crate::fs::{AtomicFile, FILE_MODE};
use crate::hashing::MemberDigest;
use crate::tar_writer::{write_tar, Entry, PackError};

/// Output buffer between the compressor and the file: keeps small writes (plain tar headers) from
/// becoming one syscall each.
const OUTPUT_BUFFER_BYTES: usize = 256 * 1024;

/// Everything that decides an archive's bytes besides its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// The compression.
    pub compression: Compression,
    /// The mtime of every member (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// Also write an entry for every parent directory.
    pub include_directories: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackReport {
    /// Every file member in archive order, with its size and SHA-256.
    pub members: Vec<MemberDigest>,
    /// Size of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Size of the archive as written.
    pub archive_bytes: u64,
    /// SHA-256 of the archive as written.
    pub archive_sha256: Sha256Digest,
}

/// Packs `entries` into `out_path` with the given compression and mtime, without directory entries.
pub fn pack(
    entries: Vec<Entry>,
    out_path: &Path,
    compression: Compression,
    source_date_epoch: u64,
) -> Result<PackReport, PackError> {
    let options = PackOptions {
        compression,
        source_date_epoch,
        include_directories: false,
    };
    pack_with(entries, out_path, &options)
}

/// Packs `entries` into `out_path` atomically: the file appears, complete and synced, or not at all.
pub fn pack_with(
    entries: Vec<Entry>,
    out_path: &Path,
    options: &PackOptions,
) -> Result<PackReport, PackError> {
    let output_err = |source| PackError::Output {
        path: out_path.to_path_buf(),
        source,
    };
    let mut tmp = AtomicFile::create(out_path, FILE_MODE).map_err(output_err)?;
    let out = BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, tmp.file());
    let (out, report) = pack_to_writer(entries, out, options)?;
    out.into_inner()
        .map_err(|e| PackError::Write(e.into_error()))?;
    // On error the temporary file is removed by its destructor.
    tmp.commit().map_err(output_err)?;
    Ok(report)
}

/// Packs `entries` into any writer, returning it with the report (nothing is synced or renamed).
pub fn pack_to_writer<W: Write>(
    entries: Vec<Entry>,
    out: W,
    options: &PackOptions,
) -> Result<(W, PackReport), PackError> {
    let hashing = HashingWriter::new(out);
    let compressor = CompressWriter::new(hashing, options.compression).map_err(PackError::Write)?;
    let counting = CountingWriter {
        inner: compressor,
        bytes: 0,
    };
    let (counting, members) = write_tar(
        entries,
        counting,
        options.source_date_epoch,
        options.include_directories,
    )?;
    let tar_bytes = counting.bytes;
    let mut hashing = counting.inner.finish().map_err(PackError::Write)?;
    hashing.flush().map_err(PackError::Write)?;
    let (out, archive_bytes, archive_sha256) = hashing.finish();
    let report = PackReport {
        members,
        tar_bytes,
        archive_bytes,
        archive_sha256,
    };
    Ok((out, report))
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
