//! Every record of every input, in command-line order, as one pull iterator with a position that
//! a checkpoint records and [`Source::seek`] returns to.
//!
//! Files, directories (walked in sorted order), NDJSON feeds, compressed files and standard input
//! are read here ([`FileInput`]); other kinds of input (released dataset tarballs) are claimed by
//! an [`InputKind`] given to [`Source::open`], which opens (verifies) them before any record of
//! any input is read, and then hands out their records through the same iterator.

use crate::input::{annotate, walk_dir, FileInput, InputPosition, InputRecord};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Why the source could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// An input of another kind (a dataset) failed to open, verify or read.
    #[error(transparent)]
    Input(Box<dyn std::error::Error + Send + Sync>),
    /// A directory given as an input holds a file another kind claims (a dataset tarball):
    /// a directory is read for advisory files only, so that file must be given itself.
    #[error(
        "{} holds {}, which is read only when given itself as an input: a directory is read \
         for advisory JSON files (.json, .ndjson, .jsonl) only",
        dir.display(),
        file.display()
    )]
    ClaimedInDirectory { dir: PathBuf, file: PathBuf },
    /// A position to resume at that these inputs do not have.
    #[error("cannot resume at the checkpoint: {0}")]
    Seek(String),
}

/// A kind of input the source does not read itself (a dataset tarball).
pub trait InputKind: Sync {
    /// Whether `path` is an input of this kind.
    fn claims(&self, path: &Path) -> bool;
    /// Opens (and verifies) it; called for every such input before any record is read.
    fn open(&self, path: &Path) -> Result<Box<dyn OpenedInput>, SourceError>;
}

/// An opened input of an [`InputKind`].
pub trait OpenedInput {
    /// What reports say about it, e.g. a dataset's content address.
    fn label(&self) -> Option<String> {
        None
    }
    /// Its records from `at` on (the default position: from the start).
    fn records(&self, at: InputPosition) -> Result<Box<dyn Input>, SourceError>;
}

/// The records of one input, in order.
pub trait Input {
    /// The next record, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<InputRecord>, SourceError>;
    /// Where the next record starts.
    fn position(&self) -> InputPosition;
}

impl Input for FileInput {
    fn next_record(&mut self) -> Result<Option<InputRecord>, SourceError> {
        Ok(FileInput::next_record(self)?)
    }

    fn position(&self) -> InputPosition {
        FileInput::position(self)
    }
}

/// Where a source is, the place a resumed run continues from: `records` handed out, and the next
/// record at `within` of input `input` (an index into the inputs with directories expanded).
/// [`InputPosition`] is the part within one input; the engine's checkpoint records both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub records: u64,
    pub input: u64,
    pub within: InputPosition,
}

enum Unit {
    File(PathBuf),
    Opened(PathBuf, Box<dyn OpenedInput>),
}

/// Every record of every input, in order.
pub struct Source {
    units: Vec<Unit>,
    /// Files in the directories given that are not inputs by their name (`notes.txt`).
    skipped: Vec<PathBuf>,
    /// The input being read (`units.len()` at the end).
    index: usize,
    active: Option<Box<dyn Input>>,
    /// Records handed out, those a seek skipped included.
    records: u64,
    /// Records this source read (a seek skips without reading).
    read: u64,
    /// Where the next input opened starts (set by a seek).
    start_at: InputPosition,
}

impl Source {
    /// Expands directories (sorted) and opens every input of the given `kinds` now (a dataset is
    /// verified here), so a missing path or a bad dataset fails before any work is done.
    pub fn open(paths: &[PathBuf], kinds: &[&dyn InputKind]) -> Result<Source, SourceError> {
        let mut units = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            if let Some(kind) = kinds.iter().find(|k| k.claims(path)) {
                units.push(Unit::Opened(path.clone(), kind.open(path)?));
                continue;
            }
            if path.as_os_str() == "-" {
                units.push(Unit::File(path.clone()));
                continue;
            }
            let meta = std::fs::metadata(path).map_err(|e| annotate(path, e))?;
            if meta.is_dir() {
                let files = walk_dir(path)?;
                // A dataset beside advisories (a kit directory given whole) is neither read as
                // one nor skipped without a word: its sidecar JSON would be read as records.
                let claimed = files
                    .inputs
                    .iter()
                    .chain(&files.skipped)
                    .find(|f| kinds.iter().any(|k| k.claims(f)));
                if let Some(file) = claimed {
                    return Err(SourceError::ClaimedInDirectory {
                        dir: path.clone(),
                        file: file.clone(),
                    });
                }
                units.extend(files.inputs.into_iter().map(Unit::File));
                skipped.extend(files.skipped);
            } else {
                units.push(Unit::File(path.clone()));
            }
        }
        Ok(Source {
            units,
            skipped,
            index: 0,
            active: None,
            records: 0,
            read: 0,
            start_at: InputPosition::default(),
        })
    }

    /// How many inputs there are, directories expanded (0: nothing to read).
    pub fn inputs(&self) -> usize {
        self.units.len()
    }

    /// Files in the directories given that were left out by their name, sorted.
    pub fn skipped_files(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// The labels of the inputs that have one, with their paths (datasets and their hashes).
    pub fn labels(&self) -> Vec<(String, String)> {
        self.units
            .iter()
            .filter_map(|u| match u {
                Unit::Opened(path, opened) => {
                    opened.label().map(|l| (path.display().to_string(), l))
                }
                Unit::File(_) => None,
            })
            .collect()
    }

    /// Where the next record is.
    pub fn at(&self) -> Position {
        Position {
            records: self.records,
            input: self.index as u64,
            within: match &self.active {
                Some(input) => input.position(),
                None => self.start_at,
            },
        }
    }

    /// Records read by this source; records a [`seek`](Self::seek) skipped are not counted.
    pub fn records_read(&self) -> u64 {
        self.read
    }

    /// Continues at `to`, a position this source (over the same inputs) reported: the inputs
    /// before it are not opened, and the input it is in skips to `to.within` without parsing what
    /// is before it. Only before the first record.
    pub fn seek(&mut self, to: &Position) -> Result<(), SourceError> {
        let input = usize::try_from(to.input).unwrap_or(usize::MAX);
        if input > self.units.len()
            || (input == self.units.len() && to.within != InputPosition::default())
        {
            return Err(SourceError::Seek(format!(
                "input {} of {}: the inputs changed since the interrupted run",
                to.input + 1,
                self.units.len()
            )));
        }
        self.index = input;
        self.records = to.records;
        self.start_at = to.within;
        self.active = None;
        if input < self.units.len() {
            // Opened now, so that a position these inputs do not have fails before any work.
            self.active = Some(self.open_unit().map_err(|e| {
                SourceError::Seek(format!(
                    "{e} (the inputs changed since the interrupted run?)"
                ))
            })?);
        }
        Ok(())
    }

    /// Reads (and drops) up to `n` records; returns how many there were. For checkpoints that
    /// recorded only a record count.
    pub fn skip_records(&mut self, n: u64) -> Result<u64, SourceError> {
        let mut skipped = 0;
        while skipped < n && self.next_record()?.is_some() {
            skipped += 1;
        }
        Ok(skipped)
    }

    /// The next record, or `None` after the last input.
    pub fn next_record(&mut self) -> Result<Option<InputRecord>, SourceError> {
        loop {
            if self.active.is_none() {
                if self.index >= self.units.len() {
                    return Ok(None);
                }
                self.active = Some(self.open_unit()?);
            }
            let input = self.active.as_mut().expect("opened above");
            match input.next_record()? {
                Some(record) => {
                    self.records += 1;
                    self.read += 1;
                    return Ok(Some(record));
                }
                None => {
                    self.active = None;
                    self.index += 1;
                    self.start_at = InputPosition::default();
                }
            }
        }
    }

    fn open_unit(&mut self) -> Result<Box<dyn Input>, SourceError> {
        let at = std::mem::take(&mut self.start_at);
        match &self.units[self.index] {
            Unit::File(path) => {
                let mut file = FileInput::open(path)?;
                if at != InputPosition::default() {
                    file.seek(at)?;
                }
                Ok(Box::new(file))
            }
            Unit::Opened(_, opened) => opened.records(at),
        }
    }
}

impl Iterator for Source {
    type Item = Result<InputRecord, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
