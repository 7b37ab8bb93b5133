//! The inputs of `stella`'s commands: the engine's source over upstream files, feeds and released
//! dataset tarballs (verified when opened, before anything is written), with the dataset pin.

use aoc_dataset::{is_dataset, Datasets, VerifyOptions};
use aoc_ingest::Source;
use std::path::PathBuf;

/// The dataset hash every dataset among the inputs must have (`--expect-dataset-hash`,
/// `DATASET_HASH`), checked against the hash recomputed while verifying, before any record is read.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DatasetPin {
    /// Refuse a dataset tarball among the inputs unless its content hash is this (pins a release's
    /// dataset against a rollback to another, also validly signed one).
    #[arg(
        long = "expect-dataset-hash",
        env = "DATASET_HASH",
        value_name = "HASH"
    )]
    pub expect_dataset_hash: Option<String>,
}

/// The value of `DATASET_HASH` with which `cargo xtask aoc-release` accepts any dataset.
const UNPINNED: &str = "dev-rehearsal-placeholder";

impl DatasetPin {
    /// The hash to enforce, after checking its form; warns when it cannot apply to any input.
    fn expected(&self, paths: &[PathBuf]) -> anyhow::Result<Option<String>> {
        let Some(pin) = self
            .expect_dataset_hash
            .as_deref()
            .filter(|p| !p.is_empty())
        else {
            return Ok(None);
        };
        if pin == UNPINNED {
            eprintln!(
                "stella: warning: DATASET_HASH={UNPINNED}: datasets are NOT pinned to a hash"
            );
            return Ok(None);
        }
        anyhow::ensure!(
            pin.len() == 64 && pin.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "--expect-dataset-hash {pin:?}: not a dataset hash (64 lowercase hex digits)"
        );
        if !paths.iter().any(|p| is_dataset(p)) {
            eprintln!(
                "stella: warning: --expect-dataset-hash/DATASET_HASH {pin} given, but no input is a \
                 dataset tarball: nothing to pin"
            );
        }
        Ok(Some(pin.to_owned()))
    }
}

/// Opens every input in order; datasets are verified here, so a bad one (or one that is not the
/// pinned dataset) stops the command before it writes.
pub fn open(paths: &[PathBuf], pin: &DatasetPin) -> anyhow::Result<Source> {
    let datasets = Datasets {
        options: VerifyOptions {
            expected_hash: pin.expected(paths)?,
            ..VerifyOptions::default()
        },
    };
    // A dataset's integrity pass reads all of it before the first record: a spinner meanwhile.
    let _progress = paths
        .iter()
        .any(|p| is_dataset(p))
        .then(|| aoc_term::Progress::spinner("stella: checking the dataset's integrity"));
    Ok(Source::open(paths, &[&datasets])?)
}
