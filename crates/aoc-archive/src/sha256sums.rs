//! `SHA256SUMS` in coreutils' text format: `<64 lowercase hex>  <name>\n` (two spaces), sorted by
//! name. The writer only emits names that `sha256sum -c` reads back unescaped; the parser is strict
//! and rejects, with the line number, anything a hand-edited or hostile file could smuggle in.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use aoc_digest::Sha256Digest;

use crate::hashing::sha256_files_parallel;

/// A set of `name → SHA-256` lines; names are bare file names (no directories).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sha256Sums {
    entries: BTreeMap<String, Sha256Digest>,
}

/// A rejected `SHA256SUMS` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SHA256SUMS line {line}: {kind}")]
pub struct SumsError {
    /// 1-based line number (0 for a name passed to [`Sha256Sums::insert`]).
    pub line: usize,
    /// What is wrong with it.
    pub kind: SumsErrorKind,
}

/// What is wrong with a `SHA256SUMS` line or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsErrorKind {
    /// The file is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// A `\r` anywhere (CRLF files are refused rather than silently fixed).
    #[error("carriage return (CRLF line endings are not accepted)")]
    CarriageReturn,
    /// An empty line before the end of the file.
    #[error("empty line")]
    EmptyLine,
    /// A line starting with `\`: coreutils' escaping for odd names, which we never write.
    #[error("backslash-escaped line")]
    EscapedLine,
    /// Not exactly 64 lowercase hex characters before the separator.
    #[error("digest is not 64 lowercase hex characters")]
    BadDigest,
    /// The `*` binary-mode marker instead of the second space.
    #[error("`*` binary-mode marker (expected two spaces)")]
    BinaryMarker,
    /// Something other than two spaces between digest and name.
    #[error("digest and name must be separated by exactly two spaces")]
    BadSeparator,
    /// No name.
    #[error("empty file name")]
    EmptyName,
    /// A name starting or ending with a space.
    #[error("leading or trailing space in name {0:?}")]
    SpaceAroundName(String),
    /// A name with `/`: entries are files in the kit's own directory.
    #[error("name {0:?} contains `/`")]
    Slash(String),
    /// A name with `\`.
    #[error("name {0:?} contains a backslash")]
    Backslash(String),
    /// A name that is `.` or contains `..`.
    #[error("name {0:?} is `.` or contains `..`")]
    DotDot(String),
    /// A name with a control character (tab, newline, ...).
    #[error("name {0:?} contains a control character")]
    ControlCharacter(String),
    /// A name listed twice.
    #[error("duplicate name {name:?} (first on line {first_line})")]
    DuplicateName { name: String, first_line: usize },
}

impl Sha256Sums {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name`, refusing names the parser would refuse and names already present.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        sha256: Sha256Digest,
    ) -> Result<(), SumsError> {
        let name = name.into();
        let at = |kind| SumsError { line: 0, kind };
        check_name(&name).map_err(at)?;
        if self.entries.contains_key(&name) {
            return Err(at(SumsErrorKind::DuplicateName {
                name,
                first_line: 0,
            }));
        }
        self.entries.insert(name, sha256);
        Ok(())
    }

    /// Hashes `paths` (two threads, streaming) and lists each under its file name.
    pub fn from_files<P: AsRef<Path> + Sync>(paths: &[P]) -> io::Result<Self> {
        let mut sums = Sha256Sums::new();
        for digest in sha256_files_parallel(paths)? {
            let name = digest
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: no UTF-8 file name", digest.path.display()),
                    )
                })?;
            sums.insert(name, digest.sha256)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.kind.to_string()))?;
        }
        Ok(sums)
    }

    /// The digest listed for `name`.
    pub fn get(&self, name: &str) -> Option<&Sha256Digest> {
        self.entries.get(name)
    }

    /// `(name, digest)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sha256Digest)> {
        self.entries.iter().map(|(n, d)| (n.as_str(), d))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's text: one `<hex>  <name>\n` line per entry, sorted by name bytes.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 100);
        for (name, digest) in &self.entries {
            out.push_str(&digest.to_hex());
            out.push_str("  ");
            out.push_str(name);
            out.push('\n');
        }
        out
    }

    /// Writes [`render`](Self::render)'s text to `out`.
    pub fn write_to<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(self.render().as_bytes())
    }

    /// Parses a `SHA256SUMS` file strictly. A missing final newline is accepted.
    pub fn parse(text: &[u8]) -> Result<Self, SumsError> {
        let text = std::str::from_utf8(text).map_err(|e| SumsError {
            line: 1 + text[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            kind: SumsErrorKind::NotUtf8,
        })?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut entries = BTreeMap::new();
        let mut first_lines: BTreeMap<&str, usize> = BTreeMap::new();
        if text.is_empty() {
            return Ok(Sha256Sums { entries });
        }
        for (index, line) in body.split('\n').enumerate() {
            let number = index + 1;
            let at = |kind| SumsError { line: number, kind };
            let (digest, name) = parse_line(line).map_err(at)?;
            if let Some(first_line) = first_lines.insert(name, number) {
                return Err(at(SumsErrorKind::DuplicateName {
                    name: name.to_owned(),
                    first_line,
                }));
            }
            entries.insert(name.to_owned(), digest);
        }
        Ok(Sha256Sums { entries })
    }
}

fn parse_line(line: &str) -> Result<(Sha256Digest, &str), SumsErrorKind> {
    if line.contains('\r') {
        return Err(SumsErrorKind::CarriageReturn);
    }
    if line.is_empty() {
        return Err(SumsErrorKind::EmptyLine);
    }
    if line.starts_with('\\') {
        return Err(SumsErrorKind::EscapedLine);
    }
    let bytes = line.as_bytes();
    let digest = match line.get(..64).map(Sha256Digest::parse_hex) {
        Some(Ok(digest)) if bytes.get(64) == Some(&b' ') => digest,
        _ => return Err(SumsErrorKind::BadDigest),
    };
    match bytes.get(65) {
        Some(b' ') => {}
        Some(b'*') => return Err(SumsErrorKind::BinaryMarker),
        _ => return Err(SumsErrorKind::BadSeparator),
    }
    let name = &line[66..];
    check_name(name)?;
    Ok((digest, name))
}

fn check_name(name: &str) -> Result<(), SumsErrorKind> {
    let owned = || name.to_owned();
    if name.is_empty() {
        Err(SumsErrorKind::EmptyName)
    } else if name.starts_with(' ') || name.ends_with(' ') {
        Err(SumsErrorKind::SpaceAroundName(owned()))
    } else if name.contains('/') {
        Err(SumsErrorKind::Slash(owned()))
    } else if name.contains('\\') {
        Err(SumsErrorKind::Backslash(owned()))
    } else if name == "." || name.contains("..") {
        Err(SumsErrorKind::DotDot(owned()))
    } else if name.chars().any(char::is_control) {
        Err(SumsErrorKind::ControlCharacter(owned()))
    } else {
        Ok(())
    }
}
