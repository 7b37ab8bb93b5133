//! aoc-store's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary); each module is one subject, in `tests/store/`.

#[path = "store/suite.rs"]
mod suite;
#[path = "store/tls.rs"]
mod tls;
