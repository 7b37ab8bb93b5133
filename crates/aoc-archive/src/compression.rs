//! The compressions an archive can be written with, behind one `Write` type.

use std::io::{self, Write};

use crate::gzip::ParallelGzEncoder;

/// zstd level: 3 is zstd's default, ~220 MB/s with two workers here; level 19 runs at ~1 MB/s
/// (docs/ARCHITECTURE.md §11) and is never a default.
pub const ZSTD_LEVEL: i32 = 3;
/// zstd worker threads, pinned: zstd's output differs between 0 and 1+ workers and with the job
/// layout, so a fixed count keeps archives byte-identical across machines.
pub const ZSTD_WORKERS: u32 = 2;

/// How a tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// Parallel gzip, level 6, one gzip member per 1 MiB (see [`ParallelGzEncoder`]).
    Gzip,
    /// zstd level [`ZSTD_LEVEL`], [`ZSTD_WORKERS`] workers, with a content checksum.
    Zstd,
}

impl Compression {
    /// The conventional file extension: `tar`, `tar.gz` or `tar.zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// A `Write` that compresses into `W`; [`finish`](Self::finish) ends the stream.
pub enum CompressWriter<W: Write> {
    /// Pass-through.
    None(W),
    /// Parallel gzip.
    Gzip(ParallelGzEncoder<W>),
    /// Multi-threaded zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> CompressWriter<W> {
    /// Starts a stream of `compression` into `out` (the gzip header is written at once).
    pub fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => CompressWriter::None(out),
            Compression::Gzip => CompressWriter::Gzip(ParallelGzEncoder::new(out)?),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                encoder.multithread(ZSTD_WORKERS)?;
                // Lets `zstd -t` and our reader detect corruption, as the zstd CLI does by default.
                encoder.include_checksum(true)?;
                CompressWriter::Zstd(encoder)
            }
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CompressWriter::None(out) => Ok(out),
            CompressWriter::Gzip(encoder) => encoder.finish(),
            CompressWriter::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for CompressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressWriter::None(out) => out.write(buf),
            CompressWriter::Gzip(encoder) => encoder.write(buf),
            CompressWriter::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            CompressWriter::None(out) => out.write_all(buf),
            CompressWriter::Gzip(encoder) => encoder.write_all(buf),
            CompressWriter::Zstd(encoder) => encoder.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressWriter::None(out) => out.flush(),
            CompressWriter::Gzip(encoder) => encoder.flush(),
            CompressWriter::Zstd(encoder) => encoder.flush(),
        }
    }
}
