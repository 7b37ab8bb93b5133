//! One upstream file (or standard input) as an ordered sequence of records with a position that a
//! checkpoint can record and [`FileInput::seek`] can return to without reading the records before
//! it again.
//!
//! Accepted: `.json` files (one document, or an array of documents), NDJSON (`.ndjson`, `.jsonl`:
//! one per line), any of those compressed as `.zst` or `.gz`, and `-` for standard input (NDJSON
//! or a single JSON document). Compression is recognised by magic bytes, so a misnamed file still
//! reads. NDJSON lines are handed out unparsed ([`Item::Json`]): parsing is part of the work the
//! engine spreads over its mapping threads. A line that does not parse becomes an
//! [`Item::Broken`] record there: it is reported with its file and line and never hides the
//! records around it.

use aoc_store::StoreDoc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// What one input record is.
#[derive(Debug, Clone)]
pub enum Item {
    /// One JSON value not parsed yet (an NDJSON line); [`Item::parse`] classifies it.
    Json(Vec<u8>),
    /// An upstream document (OSV, CSAF), with the time it was retrieved when the feed says so.
    Upstream {
        doc: Value,
        retrieved_at: Option<String>,
    },
    /// An already-built raw document (has `_id` and `content`), e.g. from an export.
    Raw(Value),
    /// A raw document its reader has already checked completely, the AOC guard included (a
    /// record of a verified dataset), as the store writes it, rendered (and compared with the
    /// bytes read) by that reader: it is neither guarded nor rendered again.
    Verified(StoreDoc),
    /// A revision feed's record that the upstream removed a document.
    Deleted {
        path: String,
        at: Option<String>,
        upstream_id: Option<String>,
    },
    /// Unreadable input: bad JSON, an unsupported shape.
    Broken(String),
}

/// Equal items: for a verified record, the same document (the rendering follows from it).
impl PartialEq for Item {
    fn eq(&self, other: &Item) -> bool {
        use Item::*;
        match (self, other) {
            (Json(a), Json(b)) => a == b,
            (
                Upstream {
                    doc: a,
                    retrieved_at: x,
                },
                Upstream {
                    doc: b,
                    retrieved_at: y,
                },
            ) => a == b && x == y,
            (Raw(a), Raw(b)) => a == b,
            (Verified(a), Verified(b)) => a.json() == b.json(),
            (
                Deleted {
                    path: a,
                    at: x,
                    upstream_id: i,
                },
                Deleted {
                    path: b,
                    at: y,
                    upstream_id: j,
                },
            ) => a == b && x == y && i == j,
            (Broken(a), Broken(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for InputRecord {
    fn eq(&self, other: &InputRecord) -> bool {
        self.location == other.location && self.item == other.item
    }
}

impl Item {
    /// Parses and classifies an [`Item::Json`]; any other item is returned as it is.
    pub fn parse(self) -> Item {
        match self {
            Item::Json(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => classify(v),
                Err(e) => Item::Broken(format!("invalid JSON: {e}")),
            },
            other => other,
        }
    }
}

/// One record and where it came from (`file`, `file:line`, `file#item`, `archive!member:line`).
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub location: String,
    pub item: Item,
}

/// Where the next record of one input starts. For a line-oriented file: `offset` bytes (of the
/// decompressed stream) and `line` lines are behind it; a value holding several records (a JSON
/// array, a pretty-printed document) is re-read from its start and its first `item` records
/// dropped. `member` counts the data files of an archive input before the current one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPosition {
    pub member: u64,
    pub offset: u64,
    pub line: u64,
    pub item: u64,
}

/// The records of one file or of standard input (`-`).
pub struct FileInput {
    name: String,
    lines: Box<dyn BufRead + Send>,
    /// Where the next record starts.
    position: InputPosition,
    /// Records of a value with several (an array, a whole document) not handed out yet.
    queued: VecDeque<InputRecord>,
    /// The position once `queued` is empty.
    after_queued: InputPosition,
    buf: Vec<u8>,
}

impl FileInput {
    /// Opens `path` (`-`: standard input), recognising compression by its first bytes.
    pub fn open(path: &Path) -> io::Result<FileInput> {
        let name = path.display().to_string();
        let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| annotate(path, e))?)
        };
        let mut reader = BufReader::with_capacity(256 * 1024, raw);
        let magic = reader.fill_buf().map_err(|e| annotate(path, e))?;
        let lines: Box<dyn BufRead + Send> = if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                zstd::Decoder::with_buffer(reader).map_err(|e| annotate(path, e))?,
            ))
        } else if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::bufread::MultiGzDecoder::new(reader),
            ))
        } else {
            Box::new(reader)
        };
        Ok(FileInput {
            name,
            lines,
            position: InputPosition::default(),
            queued: VecDeque::new(),
            after_queued: InputPosition::default(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Where the next record starts.
    pub fn position(&self) -> InputPosition {
        self.position
    }

    /// Moves to `to` (a position this input reported before): the bytes before it are read and
    /// dropped (decompressed, not parsed). Only before the first record.
    pub fn seek(&mut self, to: InputPosition) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.lines).take(to.offset), &mut io::sink())
            .map_err(|e| annotate(Path::new(&self.name), e))?;
        if skipped < to.offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: ends at byte {skipped}, before the resume point at byte {}",
                    self.name, to.offset
                ),
            ));
        }
        self.position = InputPosition {
            item: 0,
            member: 0,
            ..to
        };
        if to.item > 0 {
            // Re-read the value holding several records and drop those already handed out.
            let first = self.read_value()?;
            let records = u64::from(first.is_some()) + self.queued.len() as u64;
            if records < to.item {
                return Err(io::Error::other(format!(
                    "{}: {records} records where the resume point is after {}",
                    self.name, to.item
                )));
            }
            for _ in 1..to.item {
                self.queued.pop_front();
            }
            if self.queued.is_empty() {
                self.position = self.after_queued;
            } else {
                self.position.item = to.item;
            }
        }
        Ok(())
    }

    /// The next record, or `None` at the end. I/O errors (an unreadable file) end the read.
    pub fn next_record(&mut self) -> io::Result<Option<InputRecord>> {
        if let Some(r) = self.queued.pop_front() {
            self.position.item += 1;
            if self.queued.is_empty() {
                self.position = self.after_queued;
            }
            return Ok(Some(r));
        }
        self.read_value()
    }

    /// Reads the next line (or the whole file, for a document spread over lines) and returns
    /// its first record, queueing the others.
    fn read_value(&mut self) -> io::Result<Option<InputRecord>> {
        loop {
            let start = self.position;
            self.buf.clear();
            let n = self
                .lines
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| annotate(Path::new(&self.name), e))?;
            if n == 0 {
                return Ok(None);
            }
            self.position.offset += n as u64;
            self.position.line += 1;
            let line = self.buf.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let location = format!("{}:{}", self.name, self.position.line);
            if self.position.line > 1 {
                return Ok(Some(InputRecord {
                    location,
                    item: Item::Json(line.to_vec()),
                }));
            }
            // The first line tells a pretty-printed document or an array from NDJSON.
            let parsed = serde_json::from_slice::<Value>(line);
            let items: Vec<InputRecord> = match parsed {
                Err(e) if e.is_eof() => {
                    // The first line of a pretty-printed document: the document is the file.
                    self.lines
                        .read_to_end(&mut self.buf)
                        .map_err(|e| annotate(Path::new(&self.name), e))?;
                    self.position.offset = start.offset + self.buf.len() as u64;
                    self.position.line =
                        start.line + memchr::memchr_iter(b'\n', &self.buf).count() as u64;
                    whole_document(&self.name, &self.buf)
                }
                Err(e) => {
                    return Ok(Some(InputRecord {
                        location,
                        item: Item::Broken(format!("invalid JSON: {e}")),
                    }))
                }
                Ok(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| InputRecord {
                        location: format!("{}#{i}", self.name),
                        item: classify(v),
                    })
                    .collect(),
                Ok(v) => {
                    return Ok(Some(InputRecord {
                        location,
                        item: classify(v),
                    }))
                }
            };
            // Several records in one value: until the last is handed out, the position stays at
            // the value's start and counts the records handed out.
            let mut items = VecDeque::from(items);
            let Some(first) = items.pop_front() else {
                continue; // an empty array
            };
            self.after_queued = self.position;
            if !items.is_empty() {
                self.position = InputPosition { item: 1, ..start };
            }
            self.queued = items;
            return Ok(Some(first));
        }
    }
}

fn whole_document(name: &str, bytes: &[u8]) -> Vec<InputRecord> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| InputRecord {
                location: format!("{name}#{i}"),
                item: classify(v),
            })
            .collect(),
        Ok(v) => vec![InputRecord {
            location: name.to_owned(),
            item: classify(v),
        }],
        Err(e) => vec![InputRecord {
            location: format!("{name}:{}", e.line()),
            item: Item::Broken(format!("invalid JSON: {e}")),
        }],
    }
}

/// Sorts a parsed value into an [`Item`]: revision-feed line, raw document, or upstream document.
pub fn classify(mut v: Value) -> Item {
    let Value::Object(ref mut map) = v else {
        return Item::Broken("record is not a JSON object".into());
    };
    if map.contains_key("committed_at")
        && (map.contains_key("document") || map.contains_key("deleted"))
    {
        let feed_time = map
            .get("committed_at")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if map.get("deleted").and_then(Value::as_bool) == Some(true) {
            let path = map
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let upstream_id = Path::new(&path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            return Item::Deleted {
                path,
                at: feed_time,
                upstream_id,
            };
        }
        // Taken out, not copied: the feed line's wrapper is dropped here.
        return match map.swap_remove("document") {
            Some(doc @ Value::Object(_)) => Item::Upstream {
                doc,
                retrieved_at: feed_time,
            },
            _ => Item::Broken("revision-feed line without a `document` object".into()),
        };
    }
    if map.contains_key("_id") && map.contains_key("content") {
        return Item::Raw(v);
    }
    Item::Upstream {
        doc: v,
        retrieved_at: None,
    }
}

/// The files under a directory: those that are inputs, and those left out by their name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirFiles {
    /// `.json`, `.ndjson`, `.jsonl`, optionally `.zst` or `.gz`; sorted by path.
    pub inputs: Vec<std::path::PathBuf>,
    /// Every other regular file, sorted by path: counted and shown, so that a directory of
    /// `.txt` files is not read as "0 records" without a word.
    pub skipped: Vec<std::path::PathBuf>,
}

/// The files a directory holds (recursively), sorted into inputs and files skipped by name.
pub fn walk_dir(dir: &Path) -> io::Result<DirFiles> {
    let mut found = DirFiles::default();
    walk(dir, &mut found)?;
    found.inputs.sort();
    found.skipped.sort();
    Ok(found)
}

fn walk(dir: &Path, out: &mut DirFiles) -> io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| annotate(dir, e))? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() && is_input_name(&path) {
            out.inputs.push(path);
        } else if ty.is_file() {
            out.skipped.push(path);
        }
    }
    Ok(())
}

fn is_input_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name
        .strip_suffix(".zst")
        .or_else(|| name.strip_suffix(".gz"))
        .unwrap_or(&name);
    [".json", ".ndjson", ".jsonl"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

pub(crate) fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
