//! `verify-kit.sh`: the POSIX sh convenience verifier for sites without `stella` or cargo,
//! rendered from `xtask/templates/verify-kit.sh` with this kit's bundle → artefact pairs.

use super::{dataset_tarball, provenance, RUNNER_BUNDLE, RUNNER_TARBALL};

const TEMPLATE: &str = include_str!("../../templates/verify-kit.sh");

/// The script's text for a kit whose dataset has `hash`. SHA256SUMS' own signature is checked by
/// the template before anything else; these are the bundles checked after the checksums.
pub fn render(hash: &str) -> String {
    let blobs = format!("check_blob {RUNNER_BUNDLE} {RUNNER_TARBALL}");
    let attestations = [dataset_tarball(hash), RUNNER_TARBALL.to_string()]
        .iter()
        .map(|artefact| format!("check_attestation {} {artefact}", provenance(hash)))
        .collect::<Vec<_>>()
        .join("\n");
    TEMPLATE
        .replace("@DATASET_HASH@", hash)
        .replace("@BLOB_CHECKS@", &blobs)
        .replace("@ATTESTATIONS@", &attestations)
}
