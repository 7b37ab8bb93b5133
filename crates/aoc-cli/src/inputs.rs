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
    /// dataset against a rollback to another, also validly signed one). Empty: a usage error.
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
        let Some(pin) = self.expect_dataset_hash.as_deref() else {
            return Ok(None);
        };
        // An unset variable expanded into the flag (or DATASET_HASH) must not lift the pin.
        anyhow::ensure!(
            !pin.trim().is_empty(),
            "--expect-dataset-hash / DATASET_HASH is empty: give the dataset hash, or unset \
             DATASET_HASH"
        );
        if pin == UNPINNED {
            eprintln!(
                "stella: warning: DATASET_HASH={UNPINNED}: datasets are NOT pinned to a hash"
            );
            return Ok(None);
        }
        if let Err(e) = aoc_digest::Sha256Digest::parse_hex(pin) {
            anyhow::bail!(
                "--expect-dataset-hash {pin:?}: not a dataset hash (64 lowercase hex digits): it {e}"
            );
        }
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

/// `--allow-empty`: an input with nothing to read (an empty directory, one without `.json`,
/// `.ndjson` or `.jsonl` files, empty files), or a store that holds no document, is an error
/// unless this is given, so that a gate that checked nothing does not pass.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct AllowEmpty {
    /// Succeed when the inputs hold no record (an empty directory, no .json/.ndjson/.jsonl
    /// file) or the store no document; without it that is an error (exit 2).
    #[arg(long)]
    pub allow_empty: bool,
}

impl AllowEmpty {
    /// Before any work: says which files the directories' walk left out, and refuses inputs
    /// that are no file at all.
    pub fn check_files(self, source: &Source, paths: &[PathBuf]) -> anyhow::Result<()> {
        say_skipped(source);
        let skipped = source.skipped_files();
        if source.inputs() == 0 && !self.allow_empty {
            anyhow::bail!(
                "nothing to read: {} hold(s) no .json, .ndjson or .jsonl file{}; give --allow-empty \
                 to accept inputs with no record",
                names(paths),
                match skipped.len() {
                    0 => String::new(),
                    n => format!(" ({n} other file(s) skipped)"),
                }
            );
        }
        Ok(())
    }

    /// After reading: refuses inputs that held no record.
    pub fn check_records(self, records: u64, paths: &[PathBuf]) -> anyhow::Result<()> {
        anyhow::ensure!(
            records > 0 || self.allow_empty,
            "nothing to read: {} hold(s) no record; give --allow-empty to accept inputs with \
             no record",
            names(paths)
        );
        Ok(())
    }

    /// After a store's check: refuses a store that holds no document, `what` naming it.
    pub fn check_documents(self, stored: i64, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            stored > 0 || self.allow_empty,
            "nothing to check: {what} holds no document; give --allow-empty to accept a store \
             with nothing to check"
        );
        Ok(())
    }
}

/// Names on stderr the files the directories' walk left out by their name, if any.
pub fn say_skipped(source: &Source) {
    let skipped = source.skipped_files();
    if !skipped.is_empty() {
        aoc_term::say(format!(
            "stella: skipped {} file(s) not named .json, .ndjson or .jsonl (optionally .gz or \
             .zst): {}",
            skipped.len(),
            some_names(skipped)
        ));
    }
}

/// The paths, escaped for a terminal, comma-separated.
fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| aoc_term::escape_path(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first few of `paths`, escaped, and how many more.
fn some_names(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 3;
    let mut text = paths[..paths.len().min(SHOWN)]
        .iter()
        .map(|p| aoc_term::escape_path(p))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}
