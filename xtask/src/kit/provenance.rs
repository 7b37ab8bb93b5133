//! The kit's SLSA Provenance v1 predicate (<https://slsa.dev/spec/v1.0/provenance>): what was built,
//! from which commit and lock file, with which parameters. Every field is a function of the
//! inputs, so the provenance (and its deterministic signature) reproduces byte for byte.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use aoc_digest::Sha256Digest;
use aoc_sigstore::Subject;

/// Names this release process; bump the suffix when the kit's layout or steps change meaning.
pub const BUILD_TYPE: &str =
    "https://git.stella-ops.org/stella-ops/aoc-backfill/xtask/aoc-release/v1";
pub const BUILDER_ID: &str = "https://git.stella-ops.org/stella-ops/aoc-backfill/xtask/aoc-release";

/// The source the kit was built from.
#[derive(Clone, Debug)]
pub struct Source {
    /// `git+<url>` of the repository (origin remote, else Cargo.toml's `repository`).
    pub repository: String,
    pub commit: String,
    /// Uncommitted changes were present: the commit alone does not describe the build.
    pub dirty: bool,
    /// SHA-256 of Cargo.lock.
    pub cargo_lock_sha256: Sha256Digest,
    /// `rustc -V`.
    pub rustc: String,
}

/// The command's parameters, as the user gave them (paths relative to the workspace).
#[derive(Clone, Debug)]
pub struct Parameters {
    /// The dataset inputs (empty: the repository's seed).
    pub dataset_from: Vec<String>,
    /// `DATASET_HASH` as set, if set.
    pub dataset_hash_pin: Option<String>,
    /// The dataset hash actually shipped.
    pub dataset_hash: String,
}

#[derive(Clone, Debug)]
pub struct Signing {
    pub key_id: String,
    /// `dev-key`, `COSIGN_KEY` or `COSIGN_KEY_B64`: where the key came from, never a local path.
    pub source: String,
    pub is_dev: bool,
}

pub fn predicate(
    subjects: &[Subject],
    source: &Source,
    params: &Parameters,
    signing: &Signing,
    build_flags: &[String],
    timestamp: &str,
) -> Value {
    let resolved = json!([
        {
            "uri": format!("{}@{}", source.repository, source.commit),
            "digest": {"gitCommit": source.commit},
            "name": "source",
        },
        {
            "uri": format!("{}@{}#Cargo.lock", source.repository, source.commit),
            "digest": {"sha256": source.cargo_lock_sha256},
            "name": "Cargo.lock",
        },
    ]);
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            // The output directory and --publish are deliberately absent: they do not change a byte
            // of the kit, and two releases into different directories must be identical.
            "externalParameters": {
                "command": "cargo xtask aoc-release",
                "datasetFrom": if params.dataset_from.is_empty() {
                    json!("default seed")
                } else {
                    json!(params.dataset_from)
                },
                "DATASET_HASH": params.dataset_hash_pin,
                "source": {
                    "uri": format!("{}@{}", source.repository, source.commit),
                    "digest": {"gitCommit": source.commit},
                },
            },
            "internalParameters": {
                "datasetHash": params.dataset_hash,
                "cargoBuild": super::runner::recorded_build_command(),
                "target": super::glibc::TARGET,
                "glibcFloor": super::glibc::FLOOR.to_string(),
                "toolchain": super::runner::recorded_toolchain(),
                "rustflags": build_flags,
                "CARGO_INCREMENTAL": "0",
                "rustc": source.rustc,
                "worktreeDirty": source.dirty,
                "signingKey": {
                    "keyId": signing.key_id,
                    "source": signing.source,
                    "devKey": signing.is_dev,
                },
            },
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": {"xtask": env!("CARGO_PKG_VERSION")},
            },
            "metadata": {
                "invocationId": invocation_id(subjects, source, timestamp),
                "startedOn": timestamp,
                "finishedOn": timestamp,
            },
        },
    })
}

/// Derived from content (commit, lock file, subjects, time) instead of random: the same release
/// inputs give the same id, different outputs a different one.
fn invocation_id(subjects: &[Subject], source: &Source, timestamp: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "commit {}\nlock {}\ntime {timestamp}\n",
        source.commit, source.cargo_lock_sha256
    ));
    for s in subjects {
        h.update(format!("{}  {}\n", s.sha256, s.name));
    }
    format!("aoc-release:{}", Sha256Digest(h.finalize().into()))
}

/// SOURCE_DATE_EPOCH as RFC 3339 UTC with seconds precision.
pub fn rfc3339(epoch: i64) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch)
        .map_err(|e| anyhow::anyhow!("SOURCE_DATE_EPOCH {epoch} is out of range: {e}"))?;
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    Ok(t.format(&f)?)
}
