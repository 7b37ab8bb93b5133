//! The offline kit as xtask builds it: the names and identifiers come from `aoc-kit` (shared with
//! the verifiers); the modules here write the pieces `aoc-release` assembles.

pub mod dataset;
pub mod glibc;
pub mod provenance;
pub mod runner;
pub mod script;

use std::path::Path;

use anyhow::{Context, Result};
use aoc_digest::Sha256Digest;

pub use aoc_kit::layout::*;

/// The dataset hash a kit directory's `aoc-dataset-<64 hex>.tar.gz` names; errors unless there is
/// exactly one such file. (Verification takes the hash from the signed SHA256SUMS instead.)
pub fn find_dataset_hash(dir: &Path) -> Result<String> {
    let mut hashes = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hash) = parse_dataset_tarball(name) {
            hashes.push(hash.to_string());
        }
    }
    hashes.sort();
    match hashes.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "{} holds no aoc-dataset-<64 hex>.tar.gz: not a kit, or the dataset is missing",
            dir.display()
        ),
        many => anyhow::bail!(
            "{} holds {} datasets ({}): a kit carries exactly one",
            dir.display(),
            many.len(),
            many.join(", ")
        ),
    }
}

/// SHA-256 of a file, hashed in process (never shelling out to sha256sum).
pub fn sha256_file(path: &Path) -> Result<Sha256Digest> {
    let (_, digest) = aoc_archive::sha256_file(path)?;
    Ok(digest)
}
