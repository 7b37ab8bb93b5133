//! The deterministic seeded dataset (docs/ARCHITECTURE.md §4.2): raw documents exported in a stable order as
//! NDJSON, described by a manifest, named by a content address and packed as a deterministic
//! `aoc-dataset-<hash>.tar.gz` (or `.tar.zst`); verified and read back defensively.
//!
//! ```no_run
//! use aoc_dataset::{build_from_inputs, BuildOptions, Dataset};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = BuildOptions::new("out/aoc");
//! let built = build_from_inputs(&["seed/rustsec-seed.ndjson.zst".into()], &opts)?;
//! let dataset = Dataset::open_verified(&built.archive)?;
//! for record in dataset.records()? {
//!     let record = record?;
//!     println!("{} {}", record.location, record.stored.id());
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "store")]
mod build;
mod content_address;
mod export;
#[cfg(feature = "store")]
mod input;
mod layout;
mod manifest;
#[cfg(feature = "store")]
mod read;
#[cfg(feature = "store")]
mod records;
#[cfg(feature = "store")]
mod verify;

#[cfg(feature = "store")]
pub use build::{
    build_from_inputs, build_from_inputs_observed, build_from_store, pack_export, BuildError,
    BuildOptions, BuildReport, LoadError, BATCH_SIZE,
};
pub use content_address::{dataset_hash, hash_listing};
pub use export::{Export, ExportedFile, Exporter};
#[cfg(feature = "store")]
pub use input::{is_dataset, Datasets, Refused, FAULT_HOOK_VARS};
pub use layout::{
    archive_name, data_path, manifest_name, parse_archive_name, parse_data_path, DataPath,
};
pub use manifest::{
    FileEntry, InputRef, Manifest, SourceInfo, TenantCount, ToolInfo, Totals, VendorCount,
};
#[cfg(feature = "store")]
pub use read::{Dataset, DatasetPosition, DatasetRecord, ReadError, Records, VerifiedDataset};
#[cfg(feature = "store")]
pub use verify::{
    verify, verify_reader, verify_with, Check, Failure, Sidecar, VerifyError, VerifyOptions,
    VerifyReport,
};

pub use aoc_archive::Compression;

/// The tool name written into manifests.
pub const TOOL_NAME: &str = "aoc-dataset";
/// This build's version, written into manifests.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The manifest schema this build writes and the only one it reads.
pub const SCHEMA_VERSION: u32 = 1;
/// The manifest's member name inside the archive.
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// Data members live under this directory inside the archive.
pub const DATA_DIR: &str = "data";
/// Default largest data file: a (tenant, vendor) export larger than this is split into parts, so
/// no member approaches the reader's per-entry limit and parts can be hashed in parallel.
pub const DEFAULT_SPLIT_BYTES: u64 = 256 * 1024 * 1024;
