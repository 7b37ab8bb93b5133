//! What the index records about a kit, read from the kit's own files with serde_json: nothing
//! here depends on how aoc-release produced them beyond the file names (kit.rs) and the formats
//! docs/ARCHITECTURE.md §4.3 fixes (Sigstore bundle v0.3, in-toto Statement v1, SLSA Provenance v1, SPDX 2.3).

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::Value;

use crate::kit;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitInfo {
    /// The git commit the provenance names.
    pub commit: String,
    pub dataset_hash: String,
    /// `verificationMaterial.publicKey.hint` of SHA256SUMS' signature: base64(SHA-256(SPKI DER)).
    pub key_id: String,
    /// The provenance's `startedOn`: the release's SOURCE_DATE_EPOCH as RFC 3339 UTC.
    pub built_at: String,
    /// `versionInfo` of the runner binary in the SPDX SBOM, when recorded.
    pub runner_version: Option<String>,
}

impl KitInfo {
    pub fn read(dir: &Path) -> Result<KitInfo> {
        let dataset_hash = kit::find_dataset_hash(dir)?;
        let provenance = kit::provenance(&dataset_hash);
        let bundle = read_json(dir, &provenance)?;
        let statement =
            dsse_payload(&bundle).with_context(|| format!("{provenance}: dsseEnvelope"))?;
        // The same reading of the provenance as the verifier's, which binds an index entry to it.
        let identity = aoc_kit::published::ProvenanceIdentity::from_statement(&statement)
            .map_err(|e| anyhow::anyhow!("{provenance}: {e}"))?;
        if identity.dataset_hash != dataset_hash {
            bail!(
                "{provenance} records dataset {}, the kit ships {dataset_hash}",
                identity.dataset_hash
            );
        }
        let (commit, built_at) = (identity.commit, identity.built_at);
        let key_id = read_json(dir, kit::SUMS_BUNDLE)?
            .pointer("/verificationMaterial/publicKey/hint")
            .and_then(Value::as_str)
            .with_context(|| format!("{} has no publicKey hint", kit::SUMS_BUNDLE))?
            .to_string();
        let runner_version = read_json(dir, kit::SPDX_FILE)
            .ok()
            .and_then(|spdx| {
                spdx["packages"]
                    .as_array()?
                    .iter()
                    .find(|p| p["SPDXID"] == "SPDXRef-Package-runner-binary")?["versionInfo"]
                    .as_str()
                    .map(String::from)
            })
            .filter(|v| !v.is_empty() && v != "NOASSERTION");
        Ok(KitInfo {
            commit,
            dataset_hash,
            key_id,
            built_at,
            runner_version,
        })
    }

    /// `<runner version>-<12 hex of the commit>`, e.g. `0.1.0-1a2b3c4d5e6f`.
    pub fn default_version(&self) -> Result<String> {
        let version = self
            .runner_version
            .as_deref()
            .context("the kit's SPDX SBOM records no runner version: pass --version")?;
        let short = self.commit.get(..12).unwrap_or(&self.commit);
        Ok(format!("{version}-{short}"))
    }
}

/// Kit JSON files (SBOMs, bundles, manifests) are far below this; a larger one is refused unread.
const MAX_JSON_BYTES: u64 = 64 << 20;

fn read_json(dir: &Path, name: &str) -> Result<Value> {
    let bytes = aoc_archive::fs::read_bounded(&dir.join(name), MAX_JSON_BYTES)
        .with_context(|| format!("reading {name}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{name} is not JSON"))
}

/// The DSSE envelope's payload bytes (the kit was verified, signatures included, before this
/// reads it).
fn dsse_payload(bundle: &Value) -> Result<Vec<u8>> {
    let payload = bundle
        .pointer("/dsseEnvelope/payload")
        .and_then(Value::as_str)
        .context("no payload")?;
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .context("payload is not base64")
}
