//! Output plumbing: formats, colour only on a terminal (and never with NO_COLOR), atomic files.

use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;

/// Machine and human output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Table,
}

/// True when stderr is a terminal and NO_COLOR is unset.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Wraps `s` in an ANSI colour when colour is on.
pub fn paint(s: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Writes a report, metrics or rejects file atomically (`aoc_archive::fs`): a reader never sees
/// a half-written file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    aoc_archive::fs::write_atomic(path, bytes, aoc_archive::fs::FILE_MODE)
        .with_context(|| format!("writing {}", path.display()))
}

/// Serialises `value` as pretty JSON with a trailing newline.
pub fn pretty_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("report types always serialise");
    out.push(b'\n');
    out
}

/// Hides a password in a store URL (`user:***@`, `password=***`) for reports and messages.
pub fn redact(url: &str) -> String {
    aoc_store::redact_url(url)
}
