//! What binds the artefacts together, checked over proven bytes: the provenance statement's
//! subjects and dataset hash, and the SBOMs' digests of the runner tarball and the `stella`
//! inside it. The identifiers are [`crate::layout`]'s, the ones the release writes.

use std::collections::BTreeMap;

use aoc_digest::Sha256Digest;
use serde_json::Value;

use crate::layout;

/// An SBOM check over the file's bytes, the tarball's digest and the binary's.
pub type SbomCheck = fn(&[u8], &Sha256Digest, &Sha256Digest) -> Result<String, String>;

/// The statement is SLSA provenance of this release process, its subjects are exactly
/// `subjects` with `digests`, and it records dataset `hash`.
pub fn check_provenance(
    payload: &[u8],
    hash: &str,
    subjects: &[String],
    digests: &BTreeMap<String, Sha256Digest>,
) -> Result<String, String> {
    let statement = aoc_sigstore::parse_statement(payload)?;
    if statement.predicate_type != layout::SLSA_PREDICATE_TYPE {
        return Err(format!(
            "predicateType is {}, expected {}",
            statement.predicate_type,
            layout::SLSA_PREDICATE_TYPE
        ));
    }
    let build_type = statement
        .predicate
        .pointer("/buildDefinition/buildType")
        .and_then(Value::as_str);
    if build_type != Some(layout::BUILD_TYPE) {
        return Err(format!(
            "buildType is {build_type:?}, expected {}",
            layout::BUILD_TYPE
        ));
    }
    let claimed: BTreeMap<String, Sha256Digest> = statement
        .subjects
        .iter()
        .map(|s| (s.name.clone(), s.sha256))
        .collect();
    if claimed.len() != statement.subjects.len() {
        return Err("a subject is listed twice".into());
    }
    let mut problems = Vec::new();
    for name in subjects {
        match (claimed.get(name), digests.get(name)) {
            (Some(c), Some(a)) if c == a => {}
            (Some(c), Some(a)) => {
                problems.push(format!("{name}: subject sha256 {c} but the file's is {a}"))
            }
            (None, _) => problems.push(format!("{name} is not a subject")),
            (Some(_), None) => {
                problems.push(format!("{name} is a subject but missing from the kit"))
            }
        }
    }
    for name in claimed.keys() {
        if !subjects.contains(name) {
            problems.push(format!("subject {name} is not a kit artefact"));
        }
    }
    let recorded = statement
        .predicate
        .pointer(layout::PROVENANCE_DATASET_HASH)
        .and_then(Value::as_str);
    if recorded != Some(hash) {
        problems.push(format!(
            "records dataset hash {recorded:?}, the kit's is {hash}"
        ));
    }
    if problems.is_empty() {
        Ok(format!("{} subjects match the artefacts", claimed.len()))
    } else {
        Err(problems.join("; "))
    }
}

/// The SPDX SBOM's tarball and binary packages carry these digests.
pub fn check_spdx(
    bytes: &[u8],
    tarball: &Sha256Digest,
    binary: &Sha256Digest,
) -> Result<String, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let packages = doc["packages"].as_array().ok_or("no packages array")?;
    let sum_of = |id: &str| -> Result<String, String> {
        let p = packages
            .iter()
            .find(|p| p["SPDXID"] == id)
            .ok_or_else(|| format!("no package {id}"))?;
        p["checksums"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["algorithm"] == "SHA256")
            .and_then(|c| c["checksumValue"].as_str())
            .map(String::from)
            .ok_or_else(|| format!("{id} has no SHA256 checksum"))
    };
    compare(
        &sum_of(layout::SPDX_TARBALL_ID)?,
        &sum_of(layout::SPDX_BINARY_ID)?,
        tarball,
        binary,
    )
}

/// The CycloneDX SBOM's metadata component and `stella` component carry these digests.
pub fn check_cdx(
    bytes: &[u8],
    tarball: &Sha256Digest,
    binary: &Sha256Digest,
) -> Result<String, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let sha = |component: &Value| -> Option<String> {
        component["hashes"]
            .as_array()?
            .iter()
            .find(|h| h["alg"] == "SHA-256")?["content"]
            .as_str()
            .map(String::from)
    };
    let tar = sha(&doc["metadata"]["component"]).ok_or("metadata.component has no SHA-256 hash")?;
    let bin_component = doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["bom-ref"] == layout::RUNNER_BINARY)
        .ok_or("no component with bom-ref stella")?;
    let bin = sha(bin_component).ok_or("component stella has no SHA-256 hash")?;
    compare(&tar, &bin, tarball, binary)
}

fn compare(
    sbom_tarball: &str,
    sbom_binary: &str,
    tarball: &Sha256Digest,
    binary: &Sha256Digest,
) -> Result<String, String> {
    let (tarball, binary) = (tarball.to_string(), binary.to_string());
    let mut problems = Vec::new();
    if sbom_binary != binary {
        problems.push(format!(
            "describes binary sha256 {sbom_binary}, the tarball's stella is {binary}"
        ));
    }
    if sbom_tarball != tarball {
        problems.push(format!(
            "describes tarball sha256 {sbom_tarball}, the tarball is {tarball}"
        ));
    }
    if problems.is_empty() {
        Ok(format!("describes stella {binary} in tarball {tarball}"))
    } else {
        Err(problems.join("; "))
    }
}
