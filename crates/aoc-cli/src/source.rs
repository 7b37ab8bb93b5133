//! The runner's inputs in command-line order: upstream files and feeds (through `aoc-ingest`) and
//! released dataset tarballs (through `aoc-dataset`, verified completely before any record is read,
//! and read from a private copy of exactly the verified bytes, never from the file again).

use anyhow::Context;
use aoc_dataset::{Dataset, DatasetRecord, VerifiedDataset, VerifyOptions};
use aoc_ingest::{InputReader, InputRecord, Item};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

enum Segment {
    Files(Vec<PathBuf>),
    Dataset(Box<VerifiedDataset>),
}

enum Active {
    Files(InputReader),
    /// Records streamed by a reader thread (the dataset API is callback-based), in order.
    Dataset {
        name: String,
        rx: Receiver<DatasetRecord>,
        reader: JoinHandle<Result<(), String>>,
    },
}

/// Every record of every input, in order; `position` counts records handed out.
pub struct Source {
    pending: VecDeque<Segment>,
    active: Option<Active>,
    position: u64,
    /// Hashes of the datasets among the inputs, for reports.
    pub datasets: Vec<(String, String)>,
}

/// A released dataset tarball (`aoc-dataset-<hash>.tar.gz|.tar.zst`, or any `.tar*`).
pub fn is_dataset(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    aoc_dataset::parse_archive_name(&name).is_some()
        || [".tar", ".tar.gz", ".tgz", ".tar.zst"]
            .iter()
            .any(|e| name.ends_with(e))
}

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

impl Source {
    /// Opens every input; datasets are verified here, so a bad one (or one that is not the pinned
    /// dataset) stops the run before it writes.
    pub fn open(paths: &[PathBuf], pin: &DatasetPin) -> anyhow::Result<Source> {
        let options = VerifyOptions {
            expected_hash: pin.expected(paths)?,
            ..VerifyOptions::default()
        };
        let mut pending = VecDeque::new();
        let mut datasets = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            if is_dataset(path) {
                if !files.is_empty() {
                    pending.push_back(Segment::Files(std::mem::take(&mut files)));
                }
                let dataset = Dataset::open_verified_with(path, &options).map_err(|e| {
                    anyhow::anyhow!(
                        "dataset {} does not verify, refusing to load it: {e}",
                        path.display()
                    )
                })?;
                datasets.push((path.display().to_string(), dataset.hash().to_owned()));
                pending.push_back(Segment::Dataset(Box::new(dataset)));
            } else {
                files.push(path.clone());
            }
        }
        if !files.is_empty() {
            // Opening now expands directories and fails early on a missing path.
            InputReader::open(&files)?;
            pending.push_back(Segment::Files(files));
        }
        Ok(Source {
            pending,
            active: None,
            position: 0,
            datasets,
        })
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn skip_records(&mut self, n: u64) -> anyhow::Result<u64> {
        let mut skipped = 0;
        while skipped < n && self.next_record()?.is_some() {
            skipped += 1;
        }
        Ok(skipped)
    }

    pub fn next_record(&mut self) -> anyhow::Result<Option<InputRecord>> {
        loop {
            match &mut self.active {
                None => {
                    let Some(segment) = self.pending.pop_front() else {
                        return Ok(None);
                    };
                    self.active = Some(match segment {
                        Segment::Files(paths) => Active::Files(InputReader::open(&paths)?),
                        Segment::Dataset(dataset) => spawn_reader(*dataset)?,
                    });
                }
                Some(Active::Files(reader)) => match reader.next_record()? {
                    Some(r) => {
                        self.position += 1;
                        return Ok(Some(r));
                    }
                    None => self.active = None,
                },
                Some(Active::Dataset { name, rx, .. }) => match rx.recv() {
                    Ok(rec) => {
                        self.position += 1;
                        return Ok(Some(InputRecord {
                            location: format!("{name}!{}", rec.location),
                            item: Item::Raw(rec.doc),
                        }));
                    }
                    Err(_) => {
                        let Some(Active::Dataset { name, reader, .. }) = self.active.take() else {
                            unreachable!()
                        };
                        reader
                            .join()
                            .map_err(|_| anyhow::anyhow!("dataset reader for {name} panicked"))?
                            .map_err(anyhow::Error::msg)
                            .with_context(|| format!("reading dataset {name}"))?;
                    }
                },
            }
        }
    }
}

fn spawn_reader(dataset: VerifiedDataset) -> anyhow::Result<Active> {
    let name = dataset.path().display().to_string();
    pause_after_verification(&name)?;
    // A small bound: the reader runs ahead of the writer by at most this many documents.
    let (tx, rx) = sync_channel::<DatasetRecord>(1024);
    let reader = std::thread::spawn(move || {
        let result = dataset.for_each_record(|rec| {
            tx.send(rec)
                .map_err(|_| Box::new(io::Error::other("runner stopped reading")) as _)
        });
        match result {
            Ok(()) => Ok(()),
            // The consumer stopped early (e.g. --stop-on-error): not an error of the dataset.
            Err(aoc_dataset::ReadError::Callback(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    });
    Ok(Active::Dataset { name, rx, reader })
}

/// Fault injection for the tests: with `STELLA_FAULT_PAUSE_AFTER_VERIFY=FILE`, once a dataset has
/// been verified and before its first record is read, the runner writes the dataset's path to
/// FILE and waits until FILE is removed, so a test can rewrite the dataset at exactly that moment.
fn pause_after_verification(dataset: &str) -> anyhow::Result<()> {
    let Some(flag) = std::env::var_os("STELLA_FAULT_PAUSE_AFTER_VERIFY") else {
        return Ok(());
    };
    let flag = PathBuf::from(flag);
    std::fs::write(&flag, dataset).with_context(|| {
        format!(
            "STELLA_FAULT_PAUSE_AFTER_VERIFY: writing {}",
            flag.display()
        )
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while flag.exists() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "STELLA_FAULT_PAUSE_AFTER_VERIFY: {} still there after 120 s",
            flag.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}
