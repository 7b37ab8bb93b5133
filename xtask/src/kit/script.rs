//! `verify-kit.sh`: the POSIX sh verifier for sites without cargo, rendered from
//! `xtask/templates/verify-kit.sh` with this kit's bundle → artefact pairs.

use super::{dataset_tarball, provenance, RUNNER_BUNDLE, RUNNER_TARBALL, SUMS, SUMS_BUNDLE};

const TEMPLATE: &str = include_str!("../../templates/verify-kit.sh");

/// The script's text for a kit whose dataset has `hash`.
pub fn render(hash: &str) -> String {
    // Checksums first, then SHA256SUMS' own signature: together they cover every file.
    let blobs = [
        (SUMS_BUNDLE, SUMS.to_string()),
        (RUNNER_BUNDLE, RUNNER_TARBALL.to_string()),
    ];
    let blob_lines: Vec<String> = blobs
        .iter()
        .map(|(bundle, artefact)| format!("    {bundle} {artefact}"))
        .collect();
    let attestations = [dataset_tarball(hash), RUNNER_TARBALL.to_string()]
        .iter()
        .map(|artefact| format!("check_attestation {} {artefact}", provenance(hash)))
        .collect::<Vec<_>>()
        .join("\n");
    TEMPLATE
        .replace("@DATASET_HASH@", hash)
        .replace("@BLOB_BUNDLES@", &blob_lines.join(" \\\n"))
        .replace("@ATTESTATIONS@", &attestations)
}
