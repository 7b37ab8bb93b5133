//! Repository invariants for the runner SBOMs: deterministic, exactly the linked crates, complete
//! package data, and accepted by third-party validators.

use std::collections::BTreeSet;
use std::path::PathBuf;

use xshell::{cmd, Shell};

use super::platform::Platform;
use super::{cyclonedx, generate, lock, metadata, Artifact, Sbom, SbomOptions};
use aoc_digest::Sha256Digest;

use crate::release::tests::{shell, EPOCH};

fn opts(binary_digest: Sha256Digest) -> SbomOptions {
    SbomOptions {
        epoch: EPOCH,
        runner_tarball: Some(Artifact {
            name: "aoc-backfill-runner.tar.gz".into(),
            sha256: Sha256Digest([0xab; 32]),
        }),
        binary: Some(Artifact {
            name: "stella".into(),
            sha256: binary_digest,
        }),
    }
}

fn sbom(sh: &Shell) -> Sbom {
    generate(sh, &opts(Sha256Digest([0xcd; 32]))).unwrap()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// `name version` pairs and `name version -> name version` edges of the runner as `cargo tree`
/// sees them with per-package feature resolution: the reference for "what is linked".
fn cargo_tree(sh: &Shell) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let triple = Platform::host(sh).unwrap().triple;
    let format = "{p}";
    let out = cmd!(
        sh,
        "{cargo} tree --locked -p aoc-cli -e normal,no-proc-macro --target {triple} --prefix depth -f {format}"
    )
    .read()
    .unwrap();
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    for line in out.lines() {
        let depth_len = line.chars().take_while(char::is_ascii_digit).count();
        let depth: usize = line[..depth_len].parse().unwrap();
        let mut words = line[depth_len..].split(' ');
        let name = words.next().unwrap();
        let version = words.next().unwrap().trim_start_matches('v');
        let node = format!("{name} {version}");
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            edges.insert((parent.clone(), node.clone()));
        }
        stack.push(node.clone());
        nodes.insert(node);
    }
    (nodes, edges)
}

#[test]
fn two_runs_give_identical_bytes() {
    let sh = shell();
    let (a, b) = (sbom(&sh), sbom(&sh));
    assert_eq!(a.spdx, b.spdx);
    assert_eq!(a.cdx, b.cdx);
}

#[test]
fn lists_exactly_the_crates_and_edges_cargo_links_into_stella() {
    let sh = shell();
    let s = sbom(&sh);
    let pkgs = &s.packages;
    let ours: BTreeSet<String> = s
        .packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let our_edges: BTreeSet<(String, String)> = s
        .packages
        .iter()
        .flat_map(|p| {
            p.depends_on.iter().map(move |&d| {
                let to = &pkgs[d];
                (
                    format!("{} {}", p.name, p.version),
                    format!("{} {}", to.name, to.version),
                )
            })
        })
        .collect();
    let (tree, tree_edges) = cargo_tree(&sh);
    assert_eq!(
        ours, tree,
        "SBOM crates vs cargo tree -p aoc-cli -e normal,no-proc-macro"
    );
    assert_eq!(our_edges, tree_edges, "SBOM edges vs cargo tree");
    assert_eq!(s.packages[s.root].name, "aoc-cli");
}

#[test]
fn leaves_out_dev_build_and_proc_macro_crates() {
    let sh = shell();
    let s = sbom(&sh);
    let platform = Platform::host(&sh).unwrap();
    let meta = metadata::metadata(&sh, &platform.triple).unwrap();
    let listed: BTreeSet<(&str, &str)> = s
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    let root = meta.member("aoc-cli").unwrap();
    let normal = meta.reach(&[root], |k| k.is_none(), true, &platform);
    let everything = meta.reach(&[root], |_| true, true, &platform);
    let mut checked = 0;
    for (i, p) in meta.packages.iter().enumerate() {
        let key = (p.name.as_str(), p.version.as_str());
        if p.is_proc_macro() {
            assert!(!listed.contains(&key), "proc-macro {key:?} is listed");
            checked += 1;
        } else if everything.contains(&i) && !normal.contains(&i) {
            assert!(!listed.contains(&key), "dev/build-only {key:?} is listed");
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "the workspace should have proc-macros (serde_derive) to leave out"
    );
    // Named examples from the design: present only where a normal edge links them.
    let (tree, _) = cargo_tree(&sh);
    for name in [
        "tempfile",
        "cc",
        "serde_derive",
        "syn",
        "proc-macro2",
        "pkg-config",
    ] {
        let ours = s.packages.iter().any(|p| p.name == name);
        let linked = tree.iter().any(|t| t.split(' ').next() == Some(name));
        assert_eq!(ours, linked, "{name}: listed {ours}, linked {linked}");
    }
}

#[test]
fn every_crate_has_purl_version_licence_and_lock_checksum() {
    let sh = shell();
    let s = sbom(&sh);
    let sums = lock::checksums(&sh.read_file("Cargo.lock").unwrap()).unwrap();
    for p in &s.packages {
        assert!(!p.version.is_empty());
        assert!(
            p.purl.starts_with(&format!("pkg:cargo/{}@", p.name)),
            "{}",
            p.purl
        );
        match &p.source {
            Some(src) if src.starts_with("registry+") => {
                let want = &sums[&(p.name.clone(), p.version.clone(), src.clone())];
                assert_eq!(p.checksum.as_ref(), Some(want), "{}", p.name);
            }
            Some(_) => {}
            None => assert!(p.checksum.is_none(), "path crate {} has a checksum", p.name),
        }
        assert!(
            p.license.is_some() || p.license_raw.is_some(),
            "{} has no licence",
            p.name
        );
    }

    let spdx = json(&s.spdx);
    let crates: Vec<_> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .starts_with("SPDXRef-Package-crate-")
        })
        .collect();
    assert_eq!(crates.len(), s.packages.len());
    for (c, p) in crates.iter().zip(&s.packages) {
        assert_eq!(c["name"], p.name.as_str());
        assert_eq!(c["versionInfo"], p.version.as_str());
        assert_eq!(c["externalRefs"][0]["referenceLocator"], p.purl.as_str());
        assert_eq!(
            c["checksums"][0]["checksumValue"].as_str(),
            p.checksum.as_deref()
        );
    }
    let cdx = json(&s.cdx);
    let components = cdx["components"].as_array().unwrap();
    for p in &s.packages {
        let c = components
            .iter()
            .find(|c| c["bom-ref"] == p.bom_ref.as_str())
            .unwrap();
        assert_eq!(c["purl"], p.purl.as_str());
        assert_eq!(c["version"], p.version.as_str());
        assert_eq!(c["hashes"][0]["content"].as_str(), p.checksum.as_deref());
    }
}

#[test]
fn time_comes_from_the_epoch_and_identity_from_the_content() {
    let sh = shell();
    let a = sbom(&sh);
    let b = generate(&sh, &opts(Sha256Digest([0xef; 32]))).unwrap();
    let (sa, sb) = (json(&a.spdx), json(&b.spdx));
    assert_eq!(sa["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        json(&a.cdx)["metadata"]["timestamp"],
        "2023-11-14T22:13:20Z"
    );
    assert_ne!(sa["documentNamespace"], sb["documentNamespace"]);
    let (ca, cb) = (json(&a.cdx), json(&b.cdx));
    assert_ne!(ca["serialNumber"], cb["serialNumber"]);
    let serial = ca["serialNumber"].as_str().unwrap();
    let ns = sa["documentNamespace"].as_str().unwrap();
    let digest = ns.rsplit('-').next().unwrap();
    assert_eq!(
        serial,
        cyclonedx::serial(&Sha256Digest::parse_hex(digest).unwrap())
    );
    assert!(ns.starts_with("https://stella-ops.org/spdx/aoc-backfill-runner/0.1.0-"));
}

#[test]
fn uuid_from_digest_is_version_4_shaped() {
    let u = cyclonedx::serial(&Sha256Digest([0xff; 32]));
    assert_eq!(u, "urn:uuid:ffffffff-ffff-4fff-bfff-ffffffffffff");
    let u = cyclonedx::serial(&Sha256Digest([0; 32]));
    assert_eq!(u, "urn:uuid:00000000-0000-4000-8000-000000000000");
}

#[test]
fn cargo_licence_strings_become_spdx_expressions() {
    let n = super::normalise_license;
    assert_eq!(n("MIT/Apache-2.0").as_deref(), Some("MIT OR Apache-2.0"));
    assert_eq!(n("MIT / Apache-2.0").as_deref(), Some("MIT OR Apache-2.0"));
    assert_eq!(
        n("Apache-2.0 WITH LLVM-exception OR MIT").as_deref(),
        Some("Apache-2.0 WITH LLVM-exception OR MIT")
    );
    assert_eq!(n("Unicode-3.0").as_deref(), Some("Unicode-3.0"));
    assert_eq!(n("Some Custom Licence"), None);
}

#[test]
fn spdx_ids_are_sanitised_and_unique() {
    let mut seen = BTreeSet::new();
    let a = super::unique(&mut seen, super::spdx_id("foo_bar", "1.0.0+zstd.1.5"));
    let b = super::unique(&mut seen, super::spdx_id("foo-bar", "1.0.0+zstd.1.5"));
    assert_eq!(a, "SPDXRef-Package-crate-foo-bar-1.0.0-zstd.1.5");
    assert_eq!(b, "SPDXRef-Package-crate-foo-bar-1.0.0-zstd.1.5-2");
}

/// Third-party validators from `xtask/third-party/setup.sh`. Missing tools skip loudly, and fail
/// when `AOC_THIRD_PARTY=1` (CI sets it after running the setup).
fn third_party(sh: &Shell, tool: &str) -> Option<PathBuf> {
    let path = sh
        .current_dir()
        .join("target/third-party/venv/bin")
        .join(tool);
    if path.is_file() {
        return Some(path);
    }
    let msg = format!(
        "third-party validator {tool} is not installed: run `sh xtask/third-party/setup.sh`"
    );
    if std::env::var("AOC_THIRD_PARTY").as_deref() == Ok("1") {
        panic!("{msg} (AOC_THIRD_PARTY=1 requires it)");
    }
    aoc_testkit::skip(msg);
    None
}

#[test]
fn spdx_validates_with_pyspdxtools() {
    let sh = shell();
    let Some(pyspdxtools) = third_party(&sh, "pyspdxtools") else {
        return;
    };
    let dir = sh.create_temp_dir().unwrap();
    let file = dir.path().join(super::SPDX_FILE);
    std::fs::write(&file, sbom(&sh).spdx).unwrap();
    // pyspdxtools exits 0 on some invalid documents (e.g. a dangling relationship) and only logs
    // "The document is invalid", so both the exit code and the log are checked.
    let out = cmd!(sh, "{pyspdxtools} -i {file}")
        .ignore_status()
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !log.contains("invalid"),
        "pyspdxtools: {log}"
    );
}

#[test]
fn cyclonedx_validates_against_the_1_5_schema() {
    let sh = shell();
    let Some(python) = third_party(&sh, "python") else {
        return;
    };
    let dir = sh.create_temp_dir().unwrap();
    let file = dir.path().join(super::CDX_FILE);
    std::fs::write(&file, sbom(&sh).cdx).unwrap();
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        print(err or 'valid')\n\
        sys.exit(1 if err else 0)\n";
    let out = cmd!(sh, "{python} -c {script} {file}")
        .ignore_status()
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cyclonedx-python-lib: {log}");
}
