//! aoc-sigstore's integration tests, linked as one test binary (cargo links each top-level file of
//! `tests/` as its own binary); each module is one subject, in `tests/sigstore/`. The fixtures
//! they share are here.

use std::path::{Path, PathBuf};

#[path = "sigstore/bundles.rs"]
mod bundles;
#[path = "sigstore/keys.rs"]
mod keys;
#[path = "sigstore/policy.rs"]
mod policy;
#[path = "sigstore/third_party.rs"]
mod third_party;

/// The artefact the committed golden message bundle (`tests/data/message.sigstore.json`) signs.
const ARTEFACT: &[u8] = b"aoc-backfill-runner.tar.gz stand-in bytes\n";

/// The workspace root, where the committed dev key pair lives.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A committed fixture in `tests/data/`.
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
