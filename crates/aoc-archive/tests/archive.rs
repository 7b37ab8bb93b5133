//! aoc-archive's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary); each module is one subject, in `tests/archive/`.

#[path = "archive/entries.rs"]
mod entries;
#[path = "archive/hostile_archives.rs"]
mod hostile_archives;
#[path = "archive/sha256sums.rs"]
mod sha256sums;
#[path = "archive/untrusted_open.rs"]
mod untrusted_open;
#[path = "archive/writer.rs"]
mod writer;
