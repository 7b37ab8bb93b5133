//! The released `stella` carries its own dependency list (`cargo auditable`'s `.dep-v0` section)
//! and it is exactly its SPDX SBOM: the same crates (name and version), the same root and the same
//! dependency edges; a real syft reads the same crate set from the binary alone. Uses the shared
//! release fixture (`tests::kits()`), so no extra runner build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use xshell::cmd;

use super::tests::{kits, root, shell};
use crate::kit;
use crate::sbom::auditable::{self, VersionInfo};

/// The kit's SPDX SBOM: crate ids (`name@version`), the root's, and the DEPENDS_ON edges between
/// crates.
struct Spdx {
    crates: BTreeSet<String>,
    root: String,
    edges: BTreeSet<(String, String)>,
}

fn spdx() -> Spdx {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kits().a.dir.join(kit::SPDX_FILE)).unwrap()).unwrap();
    let mut by_id = BTreeMap::new();
    let mut root = None;
    for p in doc["packages"].as_array().unwrap() {
        let id = p["SPDXID"].as_str().unwrap();
        if !id.starts_with("SPDXRef-Package-crate-") {
            continue;
        }
        let name = format!(
            "{}@{}",
            p["name"].as_str().unwrap(),
            p["versionInfo"].as_str().unwrap()
        );
        if p["primaryPackagePurpose"] == "APPLICATION" {
            root = Some(name.clone());
        }
        by_id.insert(id.to_string(), name);
    }
    let edges = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON")
        .filter_map(|r| {
            let from = by_id.get(r["spdxElementId"].as_str()?)?;
            let to = by_id.get(r["relatedSpdxElement"].as_str()?)?;
            Some((from.clone(), to.clone()))
        })
        .collect();
    Spdx {
        crates: by_id.into_values().collect(),
        root: root.expect("the SBOM names the runner as its APPLICATION"),
        edges,
    }
}

fn embedded() -> VersionInfo {
    auditable::read_binary(&kits().binary).unwrap()
}

fn id(info: &VersionInfo, i: usize) -> String {
    format!("{}@{}", info.packages[i].name, info.packages[i].version)
}

#[test]
fn the_released_stella_embeds_exactly_its_sbom() {
    let sbom = spdx();
    let info = embedded();
    let crates: BTreeSet<String> = (0..info.packages.len()).map(|i| id(&info, i)).collect();
    assert_eq!(
        crates.len(),
        info.packages.len(),
        "an entry is listed twice"
    );
    assert_eq!(crates, sbom.crates);
    let roots: Vec<String> = (0..info.packages.len())
        .filter(|&i| info.packages[i].root)
        .map(|i| id(&info, i))
        .collect();
    assert_eq!(roots, std::slice::from_ref(&sbom.root));
    assert!(sbom.root.starts_with("aoc-cli@"), "{}", sbom.root);
    let edges: BTreeSet<(String, String)> = info
        .packages
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.dependencies.iter().map(move |&d| (i, d)))
        .map(|(i, d)| (id(&info, i), id(&info, d)))
        .collect();
    assert!(!edges.is_empty());
    assert_eq!(edges, sbom.edges);
    for p in &info.packages {
        assert_eq!(p.kind, "runtime", "{}", p.name);
        let expected = if p.name.starts_with("aoc-") {
            "local"
        } else {
            "crates.io"
        };
        assert_eq!(p.source, expected, "{}", p.name);
    }
}

#[test]
fn a_binary_with_another_list_is_refused_naming_the_difference() {
    let info = embedded();
    let scratch = tempfile::tempdir().unwrap();
    // The same binary, but its section lists one crate fewer: re-encoded and zero-padded to the
    // section's size, patched in place (zlib readers stop at the end of the stream).
    let bytes = std::fs::read(&kits().binary).unwrap();
    let section = auditable::elf_section(&bytes, auditable::SECTION)
        .unwrap()
        .unwrap();
    assert_eq!(auditable::decode(&section).unwrap(), info);
    let at = bytes
        .windows(section.len())
        .position(|w| w == section.as_slice())
        .unwrap();
    let mut fewer = info.clone();
    let dropped = fewer.packages.pop().unwrap();
    let left = fewer.packages.len();
    for p in &mut fewer.packages {
        p.dependencies.retain(|&d| d < left);
    }
    let mut patched_section = auditable::encode(&fewer).unwrap();
    assert!(patched_section.len() <= section.len());
    patched_section.resize(section.len(), 0);
    let mut patched = bytes.clone();
    patched[at..at + section.len()].copy_from_slice(&patched_section);
    let binary = scratch.path().join("stella");
    std::fs::write(&binary, &patched).unwrap();

    let sbom = crate::sbom::generate(
        &shell(),
        &crate::sbom::SbomOptions {
            epoch: 0,
            runner_tarball: None,
            binary: None,
        },
    )
    .unwrap();
    auditable::check_binary(&kits().binary, &sbom.packages, sbom.root).unwrap();
    let err = format!(
        "{:#}",
        auditable::check_binary(&binary, &sbom.packages, sbom.root).unwrap_err()
    );
    assert!(
        err.contains(&format!(
            "missing [\"{}@{}\"]",
            dropped.name, dropped.version
        )),
        "{err}"
    );
}

/// syft (`xtask/third-party/setup.sh` installs it), or None after a loud skip; a failure when
/// `AOC_THIRD_PARTY=1`, as `cargo xtask test` sets under CI.
fn syft() -> Option<PathBuf> {
    let venv = root().join("target/third-party/venv/bin/syft");
    if venv.is_file() {
        return Some(venv);
    }
    let msg = format!(
        "syft is not installed ({}): run `sh xtask/third-party/setup.sh`",
        venv.display()
    );
    if std::env::var("AOC_THIRD_PARTY").as_deref() == Ok("1") {
        panic!("{msg} (AOC_THIRD_PARTY=1 requires it)");
    }
    aoc_testkit::skip(msg);
    None
}

#[test]
fn syft_reads_exactly_the_sbom_crates_from_the_binary_alone() {
    let Some(syft) = syft() else {
        return;
    };
    let sh = shell();
    let binary = &kits().binary;
    let out = cmd!(sh, "{syft} scan file:{binary} -o json -q")
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .quiet()
        .read()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found: Vec<String> = doc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["type"], "rust-crate", "{a}");
            format!(
                "{}@{}",
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap()
            )
        })
        .collect();
    let set: BTreeSet<String> = found.iter().cloned().collect();
    assert_eq!(set.len(), found.len(), "syft listed a crate twice");
    let sbom = spdx();
    let missing: Vec<&String> = sbom.crates.difference(&set).collect();
    let extra: Vec<&String> = set.difference(&sbom.crates).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "syft found {} crates, the SBOM lists {}: missing {missing:?}, extra {extra:?}",
        set.len(),
        sbom.crates.len()
    );
    eprintln!(
        "syft {} found {} crates in stella, exactly the SPDX SBOM's",
        cmd!(sh, "{syft} version")
            .quiet()
            .read()
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Version"))
            .unwrap_or(""),
        set.len()
    );
}
