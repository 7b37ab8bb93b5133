//! `rehearsal-<hash>.json`: what a dev rehearsal proved about one dataset, the file the release
//! copies into the kit (`kit::rehearsal_report`) and `aoc-verify` reads back.
//!
//! A report exists under that name only when every step passed: it is written last, atomically
//! (temporary file in the same directory, fsync, rename). A failed rehearsal writes
//! `rehearsal-FAILED-<UTC time>.json` with `"ok": false` instead, which no release picks up.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::kit;

pub use aoc_kit::rehearsal::{
    check, Counts, DatasetInfo, Report, SourceInfo, StepTime, StoreInfo, Tools, VendorCount, KIND,
    SCHEMA_VERSION,
};

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
    // As readable as the dataset beside it.
    aoc_archive::fs::write_atomic(&path, &bytes, aoc_archive::fs::FILE_MODE)
        .with_context(|| format!("writing the report {}", path.display()))?;
    Ok(path)
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
                aoc_term::say(format!(
                    "aoc-release: no rehearsal report for dataset {hash} in {}: the kit carries \
                     none (run `cargo xtask aoc-rehearsal` first, or pass --rehearsal-report PATH)",
                    dir.display()
                ));
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
