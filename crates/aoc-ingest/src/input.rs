//! Walks input paths and yields one record per upstream document, revision-feed line or raw document.
//!
//! Accepted: `.json` files (one document, or an array of documents), NDJSON (`.ndjson`, `.jsonl`:
//! one per line), any of those compressed as `.zst` or `.gz`, directories (walked recursively in
//! byte order of the path), and `-` for standard input (NDJSON or a single JSON document).
//! Compression is recognised by magic bytes, so a misnamed file still reads.
//! A line that does not parse becomes an [`Item::Broken`] record: it is reported with its file and
//! line and never hides the records around it.

use serde_json::Value;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// What one input record is.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An upstream document (OSV, CSAF), with the time it was retrieved when the feed says so.
    Upstream {
        doc: Value,
        retrieved_at: Option<String>,
    },
    /// An already-built raw document (has `_id` and `content`), e.g. from an export.
    Raw(Value),
    /// A revision feed's record that the upstream removed a document.
    Deleted {
        path: String,
        at: Option<String>,
        upstream_id: Option<String>,
    },
    /// Unreadable input: bad JSON, an unsupported shape.
    Broken(String),
}

/// One record and where it came from (`file`, or `file:line` for line-oriented inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    pub location: String,
    pub item: Item,
}

/// Streams the records of a list of paths in a stable order.
pub struct InputReader {
    pending: VecDeque<PathBuf>,
    current: Option<Current>,
    /// Records of a JSON array file not yet handed out.
    queued: VecDeque<InputRecord>,
    buf: Vec<u8>,
    /// Records read so far, in order: the position a checkpoint refers to.
    position: u64,
}

struct Current {
    name: String,
    lines: Box<dyn BufRead + Send>,
    line_no: u64,
}

impl InputReader {
    /// Expands directories now (sorted), so a missing path fails before any work is done.
    pub fn open(paths: &[PathBuf]) -> io::Result<InputReader> {
        let mut files = Vec::new();
        for path in paths {
            if path.as_os_str() == "-" {
                files.push(path.clone());
                continue;
            }
            let meta = std::fs::metadata(path).map_err(|e| annotate(path, e))?;
            if meta.is_dir() {
                let mut found = Vec::new();
                walk(path, &mut found)?;
                found.sort();
                files.extend(found);
            } else {
                files.push(path.clone());
            }
        }
        Ok(InputReader {
            pending: files.into(),
            current: None,
            queued: VecDeque::new(),
            buf: Vec::with_capacity(64 * 1024),
            position: 0,
        })
    }

    /// Number of records yielded so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Skips `n` records (resuming from a checkpoint); returns how many were actually skipped.
    pub fn skip_records(&mut self, n: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while skipped < n && self.next_record()?.is_some() {
            skipped += 1;
        }
        Ok(skipped)
    }

    /// The next record, or `None` at the end. I/O errors (an unreadable file) end the read.
    pub fn next_record(&mut self) -> io::Result<Option<InputRecord>> {
        let record = self.read_one()?;
        if record.is_some() {
            self.position += 1;
        }
        Ok(record)
    }

    fn read_one(&mut self) -> io::Result<Option<InputRecord>> {
        if let Some(r) = self.queued.pop_front() {
            return Ok(Some(r));
        }
        loop {
            if self.current.is_none() {
                let Some(path) = self.pending.pop_front() else {
                    return Ok(None);
                };
                self.current = Some(open_file(&path)?);
            }
            let cur = self.current.as_mut().expect("set above");
            self.buf.clear();
            let n = cur
                .lines
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| annotate(Path::new(&cur.name), e))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            cur.line_no += 1;
            let line = self.buf.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let location = format!("{}:{}", cur.name, cur.line_no);
            let parsed = serde_json::from_slice::<Value>(line);
            match parsed {
                // The first line of a pretty-printed document: the document is the whole file.
                Err(e) if cur.line_no == 1 && e.is_eof() => {
                    cur.lines
                        .read_to_end(&mut self.buf)
                        .map_err(|e| annotate(Path::new(&cur.name), e))?;
                    let name = std::mem::take(&mut cur.name);
                    self.current = None;
                    self.queued.extend(whole_document(&name, &self.buf));
                    if let Some(r) = self.queued.pop_front() {
                        return Ok(Some(r));
                    }
                }
                Err(e) => {
                    return Ok(Some(InputRecord {
                        location,
                        item: Item::Broken(format!("invalid JSON: {e}")),
                    }))
                }
                Ok(Value::Array(items)) if cur.line_no == 1 => {
                    let name = cur.name.clone();
                    self.queued.extend(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| classify(v, format!("{name}#{i}"))),
                    );
                    if let Some(r) = self.queued.pop_front() {
                        return Ok(Some(r));
                    }
                }
                Ok(v) => return Ok(Some(classify(v, location))),
            }
        }
    }
}

impl Iterator for InputReader {
    type Item = io::Result<InputRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn whole_document(name: &str, bytes: &[u8]) -> Vec<InputRecord> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| classify(v, format!("{name}#{i}")))
            .collect(),
        Ok(v) => vec![classify(v, name.to_owned())],
        Err(e) => vec![InputRecord {
            location: format!("{name}:{}", e.line()),
            item: Item::Broken(format!("invalid JSON: {e}")),
        }],
    }
}

/// Sorts a parsed value into an [`Item`]: revision-feed line, raw document, or upstream document.
fn classify(mut v: Value, location: String) -> InputRecord {
    if let Value::Object(ref mut map) = v {
        let feed_time = map
            .get("committed_at")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if map.contains_key("committed_at")
            && (map.contains_key("document") || map.contains_key("deleted"))
        {
            if map.get("deleted").and_then(Value::as_bool) == Some(true) {
                let path = map
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let upstream_id = Path::new(&path)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                return InputRecord {
                    location,
                    item: Item::Deleted {
                        path,
                        at: feed_time,
                        upstream_id,
                    },
                };
            }
            // Taken out, not copied: the feed line's wrapper is dropped here.
            return match map.swap_remove("document") {
                Some(doc @ Value::Object(_)) => InputRecord {
                    location,
                    item: Item::Upstream {
                        doc,
                        retrieved_at: feed_time,
                    },
                },
                _ => InputRecord {
                    location,
                    item: Item::Broken("revision-feed line without a `document` object".into()),
                },
            };
        }
        if map.contains_key("_id") && map.contains_key("content") {
            return InputRecord {
                location,
                item: Item::Raw(v),
            };
        }
        return InputRecord {
            location,
            item: Item::Upstream {
                doc: v,
                retrieved_at: None,
            },
        };
    }
    InputRecord {
        location,
        item: Item::Broken("record is not a JSON object".into()),
    }
}

fn open_file(path: &Path) -> io::Result<Current> {
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
    Ok(Current {
        name,
        lines,
        line_no: 0,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| annotate(dir, e))? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() && is_input_name(&path) {
            out.push(path);
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

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
