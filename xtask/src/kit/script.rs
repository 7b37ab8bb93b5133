//! `verify-kit.sh`: the POSIX sh convenience verifier for sites without `stella` or cargo,
//! rendered from `xtask/templates/verify-kit.sh` with this kit's bundle → artefact pairs and the
//! size bound of every file it may carry.

use super::{
    dataset_tarball, expected_files, provenance, rehearsal_report, size_cap, with_optional,
    RUNNER_BUNDLE, RUNNER_TARBALL,
};

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
    // The script copies a file only up to the bound `stella kit verify` reads it with.
    let caps = with_optional(expected_files(hash), &[rehearsal_report(hash)])
        .iter()
        .map(|name| format!("        {name}) echo {} ;;", size_cap(name)))
        .collect::<Vec<_>>()
        .join("\n");
    TEMPLATE
        .replace("@DATASET_HASH@", hash)
        .replace("@CAPS@", &caps)
        .replace("@BLOB_CHECKS@", &blobs)
        .replace("@ATTESTATIONS@", &attestations)
}
