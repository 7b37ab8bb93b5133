//! Released dataset tarballs as inputs of the ingest engine: claimed by name, verified when the
//! source opens (before any record of any input is read), then read record by record from the
//! private copy of the verified bytes, each record checked once, by the dataset's own checks.

use crate::read::{Dataset, DatasetPosition, Records, VerifiedDataset};
use crate::verify::{VerifyError, VerifyOptions};
use aoc_ingest::{Input, InputKind, InputPosition, InputRecord, Item, OpenedInput, SourceError};
use std::path::{Path, PathBuf};

/// The [`InputKind`] of dataset tarballs, verified with these options (limits, a pinned hash).
#[derive(Debug, Clone, Default)]
pub struct Datasets {
    pub options: VerifyOptions,
}

/// A dataset that did not verify. The message names the dataset through its cause, which leads
/// with the archive's path (a `VerifyError` always does): named once.
#[derive(Debug, thiserror::Error)]
#[error("dataset does not verify, refusing to load it: {source}")]
pub struct Refused {
    pub path: PathBuf,
    pub source: VerifyError,
}

impl Refused {
    /// 1 for a failed check, 2 for unreadable or hostile input.
    pub fn exit_code(&self) -> u8 {
        self.source.exit_code()
    }
}

/// A released dataset tarball (`aoc-dataset-<hash>.tar.gz|.tar.zst`, or any `.tar*`).
pub fn is_dataset(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    crate::parse_archive_name(&name).is_some()
        || [".tar", ".tar.gz", ".tgz", ".tar.zst"]
            .iter()
            .any(|e| name.ends_with(e))
}

impl InputKind for Datasets {
    fn claims(&self, path: &Path) -> bool {
        is_dataset(path)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn OpenedInput>, SourceError> {
        let dataset = Dataset::open_verified_with(path, &self.options).map_err(|source| {
            match source {
                // TMPDIR cannot hold the copy: nothing was judged, so no refusal is claimed.
                VerifyError::Environment(env) => SourceError::Input(Box::new(env)),
                source => SourceError::Input(Box::new(Refused {
                    path: path.to_owned(),
                    source,
                })),
            }
        })?;
        Ok(Box::new(dataset))
    }
}

impl OpenedInput for VerifiedDataset {
    fn label(&self) -> Option<String> {
        Some(self.hash().to_string())
    }

    fn records(&self, at: InputPosition) -> Result<Box<dyn Input>, SourceError> {
        pause_after_verification(self.path())?;
        let at = DatasetPosition {
            member: at.member,
            offset: at.offset,
            line: at.line,
        };
        let records = self
            .records_from(&at)
            .map_err(|e| SourceError::Input(Box::new(e)))?;
        Ok(Box::new(DatasetInput {
            name: self.path().display().to_string(),
            records,
        }))
    }
}

struct DatasetInput {
    name: String,
    records: Records,
}

impl Input for DatasetInput {
    fn next_record(&mut self) -> Result<Option<InputRecord>, SourceError> {
        match self.records.next() {
            None => Ok(None),
            Some(Err(e)) => Err(SourceError::Input(Box::new(e))),
            Some(Ok(record)) => Ok(Some(InputRecord {
                location: format!("{}!{}", self.name, record.location),
                item: Item::Verified(record.stored),
            })),
        }
    }

    fn position(&self) -> InputPosition {
        let at = self.records.position();
        InputPosition {
            member: at.member,
            offset: at.offset,
            line: at.line,
            item: 0,
        }
    }
}

/// Fault injection for the tests: with `STELLA_FAULT_PAUSE_AFTER_VERIFY=FILE`, once a dataset has
/// been verified and before its first record is read, the loader writes the dataset's path to
/// FILE and waits until FILE is removed, so a test can rewrite the dataset at exactly that moment.
/// Compiled only with the `fault-hooks` feature, which the tests enable and a release never has.
#[cfg(feature = "fault-hooks")]
fn pause_after_verification(dataset: &Path) -> Result<(), SourceError> {
    let Some(flag) = std::env::var_os("STELLA_FAULT_PAUSE_AFTER_VERIFY") else {
        return Ok(());
    };
    let flag = PathBuf::from(flag);
    let fail = |what: String| SourceError::Io(std::io::Error::other(what));
    std::fs::write(&flag, dataset.display().to_string()).map_err(|e| {
        fail(format!(
            "STELLA_FAULT_PAUSE_AFTER_VERIFY: writing {}: {e}",
            flag.display()
        ))
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while flag.exists() {
        if std::time::Instant::now() > deadline {
            return Err(fail(format!(
                "STELLA_FAULT_PAUSE_AFTER_VERIFY: {} still there after 120 s",
                flag.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

#[cfg(not(feature = "fault-hooks"))]
fn pause_after_verification(_dataset: &Path) -> Result<(), SourceError> {
    Ok(())
}

/// The test-only variables this build reads, for `--help`: none without `fault-hooks`.
pub const FAULT_HOOK_VARS: &[(&str, &str)] = if cfg!(feature = "fault-hooks") {
    &[(
        "STELLA_FAULT_PAUSE_AFTER_VERIFY",
        "tests only: pause after a dataset's integrity pass",
    )]
} else {
    &[]
};
