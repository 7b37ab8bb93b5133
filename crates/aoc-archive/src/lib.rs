//! The kit's file formats: deterministic tar archives, parallel gzip and pinned zstd compression,
//! a defensive archive reader, and coreutils `SHA256SUMS` files.
//!
//! Everything that is written is a pure function of its inputs: member paths are sorted by their
//! bytes, headers carry uid/gid 0, empty owner names, mode 0644/0755 and one `SOURCE_DATE_EPOCH`
//! mtime; gzip output is a BGZF-style sequence of independent gzip members, one per 1 MiB of input,
//! each recording its compressed size so that readers can inflate them in parallel (deterministic
//! for the fixed chunk size, whatever the worker count), and zstd runs with a pinned worker count.
//!
//! ```no_run
//! use aoc_archive::{pack, ArchiveReader, Compression, Entry, Limits};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let entries = vec![
//!     Entry::bytes("README.md", b"hello\n".to_vec()),
//!     Entry::file("bin/stella", "target/release/stella").executable(true),
//! ];
//! let report = pack(entries, "out/runner.tar.gz".as_ref(), Compression::Gzip, 1_700_000_000)?;
//! for member in &report.members {
//!     println!("{}  {}", member.sha256, member.path);
//! }
//! let digests = ArchiveReader::open("out/runner.tar.gz".as_ref(), Limits::default())?.digest_all()?;
//! assert_eq!(digests, report.members);
//! # Ok(()) }
//! ```

mod compression;
pub mod fs;
mod gzip;
mod hashing;
mod pack;
mod path_rules;
mod reader;
mod sha256sums;
mod tar_writer;

/// The digest type [`fs::read_hashed`] and [`sha256_reader`] return, from the lowest crate.
pub use aoc_digest::{DigestError, Sha256Digest};
pub use compression::{CompressWriter, Compression, ZSTD_LEVEL, ZSTD_WORKERS};
pub use gzip::{GzOptions, ParallelGzEncoder};
pub use hashing::{
    sha256_file, sha256_files_parallel, sha256_reader, FileDigest, MemberDigest, HASH_BUFFER_BYTES,
};
pub use pack::{pack, pack_to_writer, pack_with, PackOptions, PackReport};
pub use path_rules::{PathProblem, MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
pub use reader::{ArchiveError, ArchiveReader, EntryReader, Format, Limits};
pub use sha256sums::{Sha256Sums, SumsError, SumsErrorKind};
pub use tar_writer::{entries_from_dir, write_tar, Entry, EntrySource, PackError, TarWriter};
