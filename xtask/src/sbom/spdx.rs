//! SPDX 2.3 JSON, written with serde_json: SPDX has no maintained Rust model crate, and the
//! document is a fixed shape whose key order `preserve_order` keeps as written here.

use anyhow::Result;
use serde_json::{json, Value};

use super::{Artifact, Model, PackageRef, RUNNER_BINARY, RUNNER_NAME, TOOL_VERSION};

const NOASSERTION: &str = "NOASSERTION";
const TARBALL_ID: &str = "SPDXRef-Package-runner-tarball";
const BINARY_ID: &str = "SPDXRef-Package-runner-binary";

pub fn write(m: &Model<'_>) -> Result<Vec<u8>> {
    let root = &m.packages[m.root];
    let mut packages = Vec::new();
    let mut relationships = Vec::new();

    let tarball = m.opts.runner_tarball.as_ref();
    let binary = m.opts.binary.as_ref();
    if let Some(t) = tarball {
        packages.push(artifact(TARBALL_ID, t, &m.version, "ARCHIVE", root));
    }
    if let Some(b) = binary {
        let mut package = artifact(BINARY_ID, b, &m.version, "APPLICATION", root);
        package["comment"] = super::runs_on().into();
        packages.push(package);
    }
    // The chain the document describes: tarball CONTAINS binary CONTAINS every linked crate
    // (static linking puts each crate's code in the binary). Missing levels are skipped.
    let described = match (tarball, binary) {
        (Some(_), _) => TARBALL_ID,
        (None, Some(_)) => BINARY_ID,
        (None, None) => root.spdx_id.as_str(),
    };
    relationships.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", described));
    if tarball.is_some() && binary.is_some() {
        relationships.push(relationship(TARBALL_ID, "CONTAINS", BINARY_ID));
    }
    let container = binary.map(|_| BINARY_ID).or(tarball.map(|_| TARBALL_ID));
    for (i, p) in m.packages.iter().enumerate() {
        packages.push(crate_package(p, i == m.root));
        if let Some(c) = container {
            relationships.push(relationship(c, "CONTAINS", &p.spdx_id));
        }
    }
    for p in m.packages {
        for &d in &p.depends_on {
            relationships.push(relationship(
                &p.spdx_id,
                "DEPENDS_ON",
                &m.packages[d].spdx_id,
            ));
        }
    }

    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{RUNNER_NAME}-{}", m.version),
        "documentNamespace": format!(
            "https://stella-ops.org/spdx/{RUNNER_NAME}/{}-{}", m.version, m.digest
        ),
        "creationInfo": {
            "created": m.created,
            "creators": [format!("Tool: xtask-{TOOL_VERSION}")],
            "comment": format!(
                "Crates linked into `{RUNNER_BINARY}`: normal dependencies for the target \
                 platform; dev-, build- and proc-macro-only crates are not shipped and not listed."
            ),
        },
        "packages": packages,
        "relationships": relationships,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn artifact(id: &str, a: &Artifact, version: &str, purpose: &str, root: &PackageRef) -> Value {
    json!({
        "SPDXID": id,
        "name": a.name,
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "checksums": [{ "algorithm": "SHA256", "checksumValue": a.sha256 }],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": root.license.as_deref().unwrap_or(NOASSERTION),
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": purpose,
    })
}

fn crate_package(p: &PackageRef, is_root: bool) -> Value {
    let license = p.license.as_deref().unwrap_or(NOASSERTION);
    let mut v = json!({
        "SPDXID": p.spdx_id,
        "name": p.name,
        "versionInfo": p.version,
        "downloadLocation": p.download_location().unwrap_or_else(|| NOASSERTION.into()),
        "filesAnalyzed": false,
        "licenseConcluded": license,
        "licenseDeclared": license,
        "copyrightText": NOASSERTION,
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl,
        }],
        "primaryPackagePurpose": if is_root { "APPLICATION" } else { "LIBRARY" },
    });
    let obj = v.as_object_mut().expect("json! object");
    if let Some(sum) = &p.checksum {
        obj.insert(
            "checksums".into(),
            json!([{ "algorithm": "SHA256", "checksumValue": sum }]),
        );
    }
    if let Some(raw) = &p.license_raw {
        obj.insert(
            "licenseComments".into(),
            json!(format!(
                "Cargo manifest licence {raw:?} is not an SPDX expression"
            )),
        );
    }
    v
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    })
}
