//! Every file name of the offline kit, in one place: what `cargo xtask aoc-release` writes, what
//! the verifiers (`cargo xtask aoc-verify`, `stella kit verify`) expect, and the identifiers inside
//! the SBOMs and the provenance that bind them together.

use aoc_digest::Sha256Digest;

/// The runner tarball: `aoc-backfill-runner/bin/stella`, scripts, README, LICENSE.
pub const RUNNER_TARBALL: &str = "aoc-backfill-runner.tar.gz";
/// Sigstore bundle v0.3 (message signature) over the runner tarball.
pub const RUNNER_BUNDLE: &str = "aoc-backfill-runner.dsse.json";
/// SPDX 2.3 SBOM of the runner.
pub const SPDX_FILE: &str = "aoc-backfill-runner.sbom.json";
/// CycloneDX 1.5 SBOM of the runner.
pub const CDX_FILE: &str = "aoc-backfill-runner.cdx.json";
/// Coreutils-format checksums of every other kit file.
pub const SUMS: &str = "SHA256SUMS";
/// Sigstore bundle v0.3 (message signature) over `SHA256SUMS`: the root of the kit's trust.
pub const SUMS_BUNDLE: &str = "SHA256SUMS.sigstore.json";
/// The POSIX sh convenience verifier.
pub const VERIFY_SCRIPT: &str = "verify-kit.sh";
/// The public key that signed the kit (proves nothing about origin on its own).
pub const PUBLIC_KEY: &str = "cosign.pub";

/// The single directory inside the runner tarball, so extracting it never litters the cwd.
pub const RUNNER_DIR: &str = "aoc-backfill-runner";
/// Where `stella` sits inside the runner tarball.
pub const BINARY_MEMBER: &str = "aoc-backfill-runner/bin/stella";
/// The runner's name in the SBOMs.
pub const RUNNER_NAME: &str = "aoc-backfill-runner";
/// The binary's name, and its CycloneDX `bom-ref`.
pub const RUNNER_BINARY: &str = "stella";
/// SPDX id of the runner tarball's package.
pub const SPDX_TARBALL_ID: &str = "SPDXRef-Package-runner-tarball";
/// SPDX id of the `stella` binary's package.
pub const SPDX_BINARY_ID: &str = "SPDXRef-Package-runner-binary";

/// SLSA Provenance v1 (<https://slsa.dev/spec/v1.0/provenance>).
pub const SLSA_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Names this release process; bump the suffix when the kit's layout or steps change meaning.
pub const BUILD_TYPE: &str =
    "https://git.stella-ops.org/stella-ops/aoc-backfill/xtask/aoc-release/v1";
/// The builder recorded in the provenance.
pub const BUILDER_ID: &str = "https://git.stella-ops.org/stella-ops/aoc-backfill/xtask/aoc-release";
/// Where the provenance records the dataset hash.
pub const PROVENANCE_DATASET_HASH: &str = "/buildDefinition/internalParameters/datasetHash";

/// `aoc-dataset-<hash>.tar.gz`: the seeded dataset.
pub fn dataset_tarball(hash: &str) -> String {
    format!("aoc-dataset-{hash}.tar.gz")
}

/// `aoc-dataset-<hash>.manifest.json`: the dataset's manifest beside it.
pub fn dataset_manifest(hash: &str) -> String {
    format!("aoc-dataset-{hash}.manifest.json")
}

/// `aoc-dataset-<hash>.provenance.json`: DSSE in-toto statement over every other artefact.
pub fn provenance(hash: &str) -> String {
    format!("aoc-dataset-{hash}.provenance.json")
}

/// `rehearsal-<hash>.json`: the report of the dev rehearsal of this dataset. The kit's one
/// optional file: carried, summed and a provenance subject when the release found a report for
/// its dataset.
pub fn rehearsal_report(hash: &str) -> String {
    format!("rehearsal-{hash}.json")
}

/// The dataset hash in a kit file name `aoc-dataset-<64 hex>.tar.gz`.
pub fn parse_dataset_tarball(name: &str) -> Option<&str> {
    name.strip_prefix("aoc-dataset-")
        .and_then(|r| r.strip_suffix(".tar.gz"))
        .filter(|h| Sha256Digest::parse_hex(h).is_ok())
}

/// `files` plus the optional files a kit carries, sorted by name bytes.
pub fn with_optional(mut files: Vec<String>, optional: &[String]) -> Vec<String> {
    files.extend(optional.iter().cloned());
    files.sort();
    files.dedup();
    files
}

/// Every file of a kit whose dataset has `hash`, sorted by name bytes (SHA256SUMS order).
pub fn expected_files(hash: &str) -> Vec<String> {
    let mut files = vec![
        RUNNER_TARBALL.to_string(),
        SPDX_FILE.to_string(),
        CDX_FILE.to_string(),
        RUNNER_BUNDLE.to_string(),
        dataset_tarball(hash),
        dataset_manifest(hash),
        provenance(hash),
        SUMS.to_string(),
        SUMS_BUNDLE.to_string(),
        VERIFY_SCRIPT.to_string(),
        PUBLIC_KEY.to_string(),
    ];
    files.sort();
    files
}

/// The files SHA256SUMS lists: all but itself and its own signature.
pub fn summed_files(hash: &str) -> Vec<String> {
    expected_files(hash)
        .into_iter()
        .filter(|f| f != SUMS && f != SUMS_BUNDLE)
        .collect()
}

/// The provenance subjects: every artefact but the provenance and the checksum pair written after
/// it.
pub fn subject_files(hash: &str) -> Vec<String> {
    summed_files(hash)
        .into_iter()
        .filter(|f| *f != provenance(hash))
        .collect()
}

/// Largest size each kit file may have before it is even opened: a bound on the work an
/// attacker who controls the kit directory can cause (a 4 GiB sparse sidecar costs nothing on
/// disk). Real kits: bundles and the key are kilobytes, the SBOMs and SHA256SUMS tens of
/// kilobytes, the runner tarball ~10 MB, the dataset tarball tens of MB.
pub fn size_cap(name: &str) -> u64 {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    match name {
        PUBLIC_KEY => 64 * KIB,
        SUMS => MIB,
        SUMS_BUNDLE | RUNNER_BUNDLE | VERIFY_SCRIPT => MIB,
        SPDX_FILE | CDX_FILE => 64 * MIB,
        RUNNER_TARBALL => 1 << 30,
        _ if name.ends_with(".provenance.json") => 16 * MIB,
        _ if name.ends_with(".manifest.json") => 64 * MIB,
        _ if name.starts_with("rehearsal-") => MIB,
        // The dataset tarball: the one file that grows with the data.
        _ => 64 << 30,
    }
}
