//! `rehearsal-<hash>.json`: what a dev rehearsal proved about one dataset, the file the release
//! copies into the kit (`kit::rehearsal_report`) and `aoc-verify` reads back.
//!
//! A report exists under that name only when every step passed: it is written last, atomically
//! (temporary file in the same directory, fsync, rename). A failed rehearsal writes
//! `rehearsal-FAILED-<UTC time>.json` with `"ok": false` instead, which no release picks up.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::kit;

/// The report's `kind`.
pub const KIND: &str = "stellaops.aoc-rehearsal";
/// Bump when a field changes meaning; readers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// A successful rehearsal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub kind: String,
    pub schema_version: u32,
    /// Always true here; failure reports have their own shape ([`Failure`]).
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

/// A failed rehearsal: which step, why, and what had passed before it.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub kind: &'static str,
    pub schema_version: u32,
    pub ok: bool,
    pub failed_step: String,
    pub error: String,
    /// Known once the dataset step passed.
    pub dataset_hash: Option<String>,
    pub steps: Vec<StepTime>,
    pub store: Option<StoreInfo>,
    pub source_date_epoch: Option<i64>,
    pub finished_at: String,
}

/// `rehearsal-FAILED-<yyyymmddThhmmssZ>.json`: never matches `kit::rehearsal_report`.
pub fn failure_name(now: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now.format(&f).unwrap_or_else(|_| "unknown-time".into());
    format!("rehearsal-FAILED-{stamp}.json")
}

pub fn now_rfc3339() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// Pretty JSON with a final newline, written to `dir/name` through a temporary file and a rename,
/// so a reader never sees half a report.
pub fn write_atomic(dir: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    let path = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(&bytes)?;
    // tempfile creates 0600; a report is as readable as the dataset beside it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&path)
        .with_context(|| format!("renaming the report to {}", path.display()))?;
    Ok(path)
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

/// Where the release looks for a rehearsal report.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// Nowhere: the kit carries no report (library callers, tests, benchmarks).
    Off,
    /// `<dir>/rehearsal-<hash>.json` when it exists (the CLI default: `out/rehearsal`).
    InDir(PathBuf),
    /// This file, which must exist and rehearse the kit's dataset (`--rehearsal-report PATH`).
    File(PathBuf),
}

/// Copies the report for dataset `hash` (if `lookup` finds one) into the staging directory under
/// its kit name, after checking it; returns the kit names of what was copied (none or one).
pub fn stage_for_kit(lookup: &Lookup, hash: &str, stage: &Path) -> Result<Vec<String>> {
    let name = kit::rehearsal_report(hash);
    let path = match lookup {
        Lookup::Off => return Ok(Vec::new()),
        Lookup::InDir(dir) => {
            let path = dir.join(&name);
            if !path.is_file() {
                eprintln!(
                    "aoc-release: no rehearsal report for dataset {hash} in {}: the kit carries \
                     none (run `cargo xtask aoc-rehearsal` first, or pass --rehearsal-report PATH)",
                    dir.display()
                );
                return Ok(Vec::new());
            }
            path
        }
        Lookup::File(path) => path.clone(),
    };
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the rehearsal report {}", path.display()))?;
    check(&bytes, hash).map_err(|e| anyhow::anyhow!("rehearsal report {}: {e}", path.display()))?;
    std::fs::write(stage.join(&name), &bytes)?;
    Ok(vec![name])
}
