//! The offline kit's file names (docs/ARCHITECTURE.md §4.3) and the pieces `aoc-release` writes and
//! `aoc-verify` reads back, so both sides agree on one definition.

pub mod dataset;
pub mod provenance;
pub mod runner;
pub mod script;

use std::path::Path;

use anyhow::{Context, Result};

pub use crate::sbom::{CDX_FILE, SPDX_FILE};

pub const RUNNER_TARBALL: &str = "aoc-backfill-runner.tar.gz";
pub const RUNNER_BUNDLE: &str = "aoc-backfill-runner.dsse.json";
pub const SUMS: &str = "SHA256SUMS";
pub const SUMS_BUNDLE: &str = "SHA256SUMS.sigstore.json";
pub const VERIFY_SCRIPT: &str = "verify-kit.sh";
pub const PUBLIC_KEY: &str = "cosign.pub";

/// The single directory inside the runner tarball, so extracting it never litters the cwd.
pub const RUNNER_DIR: &str = "aoc-backfill-runner";
/// Where `stella` sits inside the runner tarball.
pub const BINARY_MEMBER: &str = "aoc-backfill-runner/bin/stella";

/// SLSA Provenance v1 (https://slsa.dev/spec/v1.0/provenance).
pub const SLSA_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

pub fn dataset_tarball(hash: &str) -> String {
    format!("aoc-dataset-{hash}.tar.gz")
}

pub fn dataset_manifest(hash: &str) -> String {
    format!("aoc-dataset-{hash}.manifest.json")
}

pub fn provenance(hash: &str) -> String {
    format!("aoc-dataset-{hash}.provenance.json")
}

/// `rehearsal-<hash>.json`: the report of the dev rehearsal of this dataset (`cargo xtask
/// aoc-rehearsal`). The kit's one optional file: carried, summed and a provenance subject when the
/// release found a report for its dataset.
pub fn rehearsal_report(hash: &str) -> String {
    format!("rehearsal-{hash}.json")
}

/// `files` plus the optional files a kit carries, sorted by name bytes.
pub fn with_optional(mut files: Vec<String>, optional: &[String]) -> Vec<String> {
    files.extend(optional.iter().cloned());
    files.sort();
    files.dedup();
    files
}

/// Every file of a kit whose dataset has `hash`, sorted by name bytes (SHA256SUMS order).
pub fn expected_files(hash: &str) -> Vec<String> {
    let mut files = vec![
        RUNNER_TARBALL.to_string(),
        SPDX_FILE.to_string(),
        CDX_FILE.to_string(),
        RUNNER_BUNDLE.to_string(),
        dataset_tarball(hash),
        dataset_manifest(hash),
        provenance(hash),
        SUMS.to_string(),
        SUMS_BUNDLE.to_string(),
        VERIFY_SCRIPT.to_string(),
        PUBLIC_KEY.to_string(),
    ];
    files.sort();
    files
}

/// The files SHA256SUMS lists: all but itself and its own signature.
pub fn summed_files(hash: &str) -> Vec<String> {
    expected_files(hash)
        .into_iter()
        .filter(|f| f != SUMS && f != SUMS_BUNDLE)
        .collect()
}

/// The provenance subjects: every artefact but the provenance and the checksum pair written after
/// it.
pub fn subject_files(hash: &str) -> Vec<String> {
    summed_files(hash)
        .into_iter()
        .filter(|f| *f != provenance(hash))
        .collect()
}

/// The dataset hash a kit directory's `aoc-dataset-<64 hex>.tar.gz` names; errors unless there is
/// exactly one such file.
pub fn find_dataset_hash(dir: &Path) -> Result<String> {
    let mut hashes = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hash) = name
            .strip_prefix("aoc-dataset-")
            .and_then(|r| r.strip_suffix(".tar.gz"))
        {
            if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                hashes.push(hash.to_string());
            }
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

/// SHA-256 of a file, hashed in process (docs/ARCHITECTURE.md §11: never shell out to sha256sum).
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let (_, digest) = aoc_archive::sha256_file(path)?;
    Ok(digest)
}
