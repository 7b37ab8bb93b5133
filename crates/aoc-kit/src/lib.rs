//! The offline kit as a library: its layout (every file name, in one place), the identifiers the
//! release writes and the verifiers read (SBOM ids, provenance types, the rehearsal report), and
//! verification as an ordered list of small checks with a typed report and the exit-code policy.
//!
//! `cargo xtask aoc-verify`, the release's self-verify, publish's checks and `stella kit verify`
//! all call [`verify_kit_with`]; the binaries only parse arguments and print. The order and the
//! trust rules are described in `docs/ARCHITECTURE.md` and in [`verify`].

pub mod bindings;
pub mod cli;
pub mod files;
pub mod layout;
pub mod published;
pub mod rehearsal;
pub mod report;
mod trust;
pub mod verify;

#[cfg(test)]
mod tests;

pub use report::{
    escape, render_check, CheckId, CheckResult, Class, KeyInfo, VerifyReport, EXIT_CODES,
    EXIT_USAGE,
};
pub use verify::{dataset_limits, verify_kit, verify_kit_with, TrustedKey, VerifyOptions};
