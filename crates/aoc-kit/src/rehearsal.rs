//! `rehearsal-<hash>.json`: what a dev rehearsal (`cargo xtask aoc-rehearsal`) proved about one
//! dataset. The rehearsal writes it, the release copies it into the kit, and the kit verifiers
//! read it back through these types, so a renamed field fails to compile on both sides.

use serde::{Deserialize, Serialize};

/// The report's `kind`.
pub const KIND: &str = "stellaops.aoc-rehearsal";
/// Bump when a field changes meaning; readers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// A successful rehearsal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub kind: String,
    pub schema_version: u32,
    /// Always true here; failure reports have their own shape.
    pub ok: bool,
    /// The content address of the dataset the rehearsal built, loaded and exported again.
    pub dataset_hash: String,
    pub dataset: DatasetInfo,
    pub counts: Counts,
    /// Every step in order with its wall time.
    pub steps: Vec<StepTime>,
    pub tools: Tools,
    pub source: SourceInfo,
    pub store: StoreInfo,
    /// The clock every dataset timestamp came from; part of the dataset's content (its
    /// `ingested_at` stamps), so the release must run with the same value to get the same hash.
    pub source_date_epoch: i64,
    /// Wall-clock time the report was written (RFC 3339 UTC): when, not what.
    pub finished_at: String,
    /// The release command pinned to this dataset, as printed at the end of the rehearsal.
    pub release_command: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    /// `aoc-dataset-<hash>.tar.gz`, beside this report.
    pub archive: String,
    pub archive_sha256: String,
    /// The inputs, relative to the workspace when inside it (else their file names).
    pub inputs: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Documents in the dataset (manifest totals).
    pub records: u64,
    pub upstream_documents: u64,
    /// First backfill into the fresh store.
    pub written: u64,
    pub noop: u64,
    pub rejected: u64,
    /// Second backfill of the same dataset: must write nothing.
    pub rerun_written: u64,
    pub rerun_noop: u64,
    /// `stella aoc verify` over the loaded store.
    pub verified_documents: u64,
    pub violations: u64,
    /// Per (tenant, vendor), as the store counts them after the backfill (equal to the manifest's).
    pub by_vendor: Vec<VendorCount>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VendorCount {
    pub tenant: String,
    pub vendor: String,
    pub records: u64,
    pub upstream_documents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepTime {
    pub name: String,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tools {
    /// `stella --version` of the runner that loaded the dataset.
    pub stella: String,
    /// The manifest's `tool`.
    pub aoc_dataset: String,
    /// The manifest's `schema_version`.
    pub dataset_schema_version: u32,
    pub xtask: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceInfo {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Tracked files had uncommitted changes: the commit alone does not describe the rehearsal.
    pub dirty: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoreInfo {
    /// `sqlite` or `postgresql`.
    pub engine: String,
    /// The store URL with any password replaced by `***`.
    pub url: String,
    /// A temporary SQLite file, removed after the rehearsal.
    pub temporary: bool,
}

/// Parses a report and checks that it is a successful rehearsal of dataset `hash`; the summary
/// line when it is. Used by the release before copying a report and by `aoc-verify` on the kit.
pub fn check(bytes: &[u8], hash: &str) -> std::result::Result<String, String> {
    let report: Report =
        serde_json::from_slice(bytes).map_err(|e| format!("not a rehearsal report: {e}"))?;
    if report.kind != KIND {
        return Err(format!("kind is {:?}, expected {KIND:?}", report.kind));
    }
    if report.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "schema_version {} is not supported (this build reads {SCHEMA_VERSION})",
            report.schema_version
        ));
    }
    if !report.ok {
        return Err("records a FAILED rehearsal (\"ok\": false)".into());
    }
    if report.dataset_hash != hash {
        return Err(format!(
            "rehearsed dataset {}, the kit's dataset is {hash}",
            report.dataset_hash
        ));
    }
    Ok(format!(
        "rehearsal of dataset {hash} at commit {}{}: {} record(s) loaded into {}, verified, \
         re-exported with the same hash, reloaded as a no-op",
        report.source.commit,
        if report.source.dirty { " (dirty)" } else { "" },
        report.counts.records,
        report.store.engine
    ))
}
