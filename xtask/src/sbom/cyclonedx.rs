//! CycloneDX 1.5 JSON through the `cyclonedx-bom` model, validated by the crate before writing.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use cyclonedx_bom::models::component::Classification;
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::prelude::*;

use super::{Model, PackageRef, RUNNER_BINARY, RUNNER_NAME, TOOL_VERSION};
use aoc_digest::Sha256Digest;

pub fn write(m: &Model<'_>) -> Result<Vec<u8>> {
    let root = &m.packages[m.root];

    let mut runner = Component::new(Classification::Application, RUNNER_NAME, &m.version, None);
    runner.bom_ref = Some(RUNNER_NAME.into());
    runner.hashes = m
        .opts
        .runner_tarball
        .as_ref()
        .map(|a| sha256(a.sha256.to_string()));
    runner.licenses = licenses(root);

    let mut tool = Component::new(Classification::Application, "xtask", TOOL_VERSION, None);
    tool.group = Some(NormalizedString::new("stella-ops"));

    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    // runner -> binary -> aoc-cli -> ...: the binary is there only when the caller hashed it.
    let first = match &m.opts.binary {
        Some(b) => {
            let mut bin = Component::new(Classification::File, &b.name, &m.version, None);
            bin.bom_ref = Some(RUNNER_BINARY.into());
            bin.hashes = Some(sha256(b.sha256.to_string()));
            // Where the binary runs: its target and the oldest glibc it starts on (the release
            // checks the ELF's symbol-version needs against it).
            bin.properties = Some(Properties(vec![
                Property::new("aoc:target", crate::kit::glibc::TARGET),
                Property::new("aoc:glibc-floor", &crate::kit::glibc::FLOOR.to_string()),
            ]));
            components.push(bin);
            dependencies.push(dependency(RUNNER_BINARY, [root.bom_ref.as_str()]));
            RUNNER_BINARY
        }
        None => root.bom_ref.as_str(),
    };
    dependencies.insert(0, dependency(RUNNER_NAME, [first]));

    for p in m.packages {
        let mut c = Component::new(Classification::Library, &p.name, &p.version, None);
        c.bom_ref = Some(p.bom_ref.clone());
        c.purl = Some(Purl::from_str(&p.purl).expect("Purl::from_str is infallible"));
        c.licenses = licenses(p);
        c.hashes = p.checksum.clone().map(sha256);
        components.push(c);
        let deps = p.depends_on.iter().map(|&d| m.packages[d].bom_ref.as_str());
        dependencies.push(dependency(&p.bom_ref, deps));
    }

    let bom = Bom {
        version: 1,
        serial_number: Some(
            UrnUuid::new(serial(&m.digest)).map_err(|e| anyhow!("serial number: {e:?}"))?,
        ),
        metadata: Some(Metadata {
            timestamp: Some(DateTime::try_from(m.created.clone()).context("timestamp")?),
            tools: Some(Tools::Object {
                services: None,
                components: Some(Components(vec![tool])),
            }),
            component: Some(runner),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        dependencies: Some(Dependencies(dependencies)),
        spec_version: SpecVersion::V1_5,
        ..Bom::default()
    };
    let result = bom.validate_version(SpecVersion::V1_5);
    if !result.passed() {
        bail!("CycloneDX model failed validation: {result:?}");
    }
    let mut bytes = Vec::new();
    bom.output_as_json(&mut bytes, SpecVersion::V1_5)
        .context("writing CycloneDX JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `urn:uuid:` from the first 16 bytes of the content digest with the RFC 9562 version-4 and
/// variant bits set: the shape validators expect, derived from content rather than random.
pub fn serial(digest: &Sha256Digest) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.0[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A SHA-256 as CycloneDX lists it: an artefact's digest, or a crate's Cargo.lock checksum as
/// the lock file spells it.
fn sha256(hex: String) -> Hashes {
    Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(hex),
    }])
}

fn licenses(p: &PackageRef) -> Option<Licenses> {
    match (&p.license, &p.license_raw) {
        (Some(expr), _) => Some(Licenses(vec![LicenseChoice::expression(expr)])),
        (None, Some(raw)) => Some(Licenses(vec![LicenseChoice::License(
            License::named_license(raw),
        )])),
        (None, None) => None,
    }
}

fn dependency<'a>(from: &str, to: impl IntoIterator<Item = &'a str>) -> Dependency {
    Dependency {
        dependency_ref: from.into(),
        dependencies: to.into_iter().map(String::from).collect(),
    }
}
