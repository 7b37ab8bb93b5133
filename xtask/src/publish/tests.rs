//! Publishing specified against a directory and a real S3-compatible server (moto, started by the
//! tests on a free loopback port), with small but real kits: a packed runner tarball (a shell
//! script stands in for `stella`), SBOMs naming its digests, a dataset built by aoc-dataset from
//! testdata/, provenance and checksums signed with the public dev key. `verify_kit` passes on
//! them, so publishing runs the same verification as for a release.
//!
//! The S3 tests need `moto_server` from `xtask/third-party/setup.sh`: without it they skip
//! loudly, and with `AOC_THIRD_PARTY=1` (as `cargo xtask test` sets) they fail instead.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, statement_json, Signer, Subject, IN_TOTO_PAYLOAD_TYPE,
};

use aoc_digest::Sha256Digest;
use aoc_kit::published::{
    verify_published_with, OfflineKitManifest, PublishedFile, PublishedKit, PublishedReport,
    MANIFEST, MANIFEST_BUNDLE,
};
use aoc_kit::CheckId;

use super::destination::Destination;
use super::manifest;
use super::store::{Conflict, Object, Store, Tag};
use super::*;
use crate::kit::provenance;

use crate::release::tests::{root, EPOCH};

/// The dev key, decrypted once (scrypt N=65536 is the slow part).
fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let pem = std::fs::read_to_string(root().join(aoc_sigstore::policy::DEV_KEY_PATH)).unwrap();
        Signer::from_cosign_pem(
            &pem,
            aoc_sigstore::policy::DEV_KEY_PASSWORD.as_bytes(),
            "dev key",
        )
        .unwrap()
    })
}

/// Writes a complete kit into `dir`. Different `seed`s give kits with different commits (and so
/// different provenance and SHA256SUMS); the same seed gives the same bytes.
fn write_kit(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let signer = signer();
    let scratch = tempfile::tempdir().unwrap();
    let stand_in = scratch.path().join("stella");
    std::fs::write(
        &stand_in,
        format!("#!/bin/sh\n# stand-in for stella, kit {seed}\nexit 0\n"),
    )
    .unwrap();
    let packed =
        kit::runner::pack(&root(), &stand_in, &dir.join(kit::RUNNER_TARBALL), EPOCH).unwrap();
    let tarball = packed.archive_sha256.to_string();
    let binary = packed
        .members
        .iter()
        .find(|m| m.path == kit::BINARY_MEMBER)
        .unwrap()
        .sha256
        .to_string();
    let spdx = serde_json::json!({
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {"SPDXID": "SPDXRef-Package-runner-tarball", "versionInfo": "0.1.0",
             "checksums": [{"algorithm": "SHA256", "checksumValue": tarball}]},
            {"SPDXID": "SPDXRef-Package-runner-binary", "versionInfo": "0.1.0",
             "checksums": [{"algorithm": "SHA256", "checksumValue": binary}]},
        ],
    });
    std::fs::write(dir.join(kit::SPDX_FILE), spdx.to_string()).unwrap();
    let cdx = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "metadata": {"component": {"hashes": [{"alg": "SHA-256", "content": tarball}]}},
        "components": [{"bom-ref": crate::sbom::RUNNER_BINARY,
                        "hashes": [{"alg": "SHA-256", "content": binary}]}],
    });
    std::fs::write(dir.join(kit::CDX_FILE), cdx.to_string()).unwrap();
    let input = root().join("testdata/osv-rustsec/RUSTSEC-2023-0044.json");
    let hash = kit::dataset::build(&[input], dir, EPOCH).unwrap().hash;
    std::fs::write(
        dir.join(kit::RUNNER_BUNDLE),
        message_signature_bundle(signer, &packed.archive_sha256),
    )
    .unwrap();
    std::fs::write(dir.join(kit::VERIFY_SCRIPT), kit::script::render(&hash)).unwrap();
    std::fs::write(dir.join(kit::PUBLIC_KEY), signer.public_key().to_pem()).unwrap();

    let subjects: Vec<Subject> = kit::subject_files(&hash)
        .into_iter()
        .map(|name| Subject {
            sha256: kit::sha256_file(&dir.join(&name)).unwrap(),
            name,
        })
        .collect();
    let source = provenance::Source {
        repository: "git+https://git.stella-ops.org/stella-ops/aoc-backfill".into(),
        commit: format!("{seed:02x}").repeat(20),
        dirty: false,
        cargo_lock_sha256: aoc_digest::Sha256Digest([0; 32]),
        rustc: "rustc 1.85.0".into(),
    };
    let params = provenance::Parameters {
        dataset_from: vec!["testdata/osv-rustsec/RUSTSEC-2023-0044.json".into()],
        dataset_hash_pin: None,
        dataset_hash: hash.clone(),
    };
    let signing = provenance::Signing {
        key_id: signer.key_id(),
        source: "dev-key".into(),
        is_dev: true,
    };
    let predicate = provenance::predicate(
        &subjects,
        &source,
        &params,
        &signing,
        &[],
        &provenance::rfc3339(EPOCH).unwrap(),
    );
    let statement = statement_json(&subjects, kit::SLSA_PREDICATE_TYPE, &predicate);
    std::fs::write(
        dir.join(kit::provenance(&hash)),
        dsse_bundle(signer, IN_TOTO_PAYLOAD_TYPE, &statement),
    )
    .unwrap();

    let paths: Vec<PathBuf> = kit::summed_files(&hash)
        .iter()
        .map(|n| dir.join(n))
        .collect();
    let sums = aoc_archive::Sha256Sums::from_files(&paths)
        .unwrap()
        .render();
    std::fs::write(dir.join(kit::SUMS), &sums).unwrap();
    let digest = Sha256Digest::of(sums.as_bytes());
    std::fs::write(
        dir.join(kit::SUMS_BUNDLE),
        message_signature_bundle(signer, &digest),
    )
    .unwrap();
}

/// A kit in its own temporary directory.
fn kit(seed: u8) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write_kit(t.path(), seed);
    t
}

/// The dev key as the release selects it (COSIGN_ALLOW_DEV_KEY=1).
fn dev_selected() -> aoc_sigstore::SelectedKey {
    aoc_sigstore::SelectedKey {
        signer: signer().clone(),
        description: aoc_sigstore::KeyDescription {
            source: aoc_sigstore::policy::DEV_KEY_PATH.into(),
            key_id: signer().key_id(),
            is_dev: true,
        },
    }
}

/// One publisher state file for the whole test binary (keyed by prefix, and every test has its
/// own prefix), under `target/xtask-test-scratch/`.
fn shared_state() -> &'static State {
    static STATE: OnceLock<(tempfile::TempDir, State)> = OnceLock::new();
    &STATE
        .get_or_init(|| {
            let dir = crate::release::tests::static_scratch();
            let state = State::at(dir.path().join("publisher-state.json"));
            (dir, state)
        })
        .1
}

/// The update policy of a publisher with the shared state, waiting the real [`manifest::SETTLE`]
/// for another publisher's signature.
fn policy() -> manifest::Policy<'static> {
    manifest::Policy {
        state: shared_state(),
        settle: manifest::SETTLE,
    }
}

fn opts(env: &BTreeMap<String, String>) -> PublishOptions {
    PublishOptions {
        version: None,
        force: false,
        key: Some(root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH)),
        signing: dev_selected(),
        print: false,
        env: env.clone(),
        fail_after: None,
        env_require_prod_key: false,
        state: shared_state().clone(),
        settle: manifest::SETTLE,
    }
}

/// `<runner version>-<12 hex of the commit>` of `kit(seed)`.
fn version_of(seed: u8) -> String {
    format!("0.1.0-{}", format!("{seed:02x}").repeat(6))
}

/// The published manifest, after checking its signature by the dev key.
fn manifest_of(store: &dyn Store) -> OfflineKitManifest {
    let obj = store
        .get(MANIFEST)
        .unwrap()
        .expect("offline-kit.json exists");
    let bundle = store
        .get(MANIFEST_BUNDLE)
        .unwrap()
        .expect("its signature exists");
    let digest = Sha256Digest::of(&obj.bytes);
    aoc_sigstore::verify_message_bundle(&bundle.bytes, &digest, signer().public_key()).unwrap();
    OfflineKitManifest::parse(&obj.bytes).unwrap()
}

fn versions_of(store: &dyn Store) -> Vec<String> {
    manifest_of(store)
        .kits
        .into_iter()
        .map(|k| k.version)
        .collect()
}

/// Downloads `<version>/` through `store` into a fresh directory (as a mirror would).
fn download(store: &dyn Store, version: &str, dir: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let obj = store
            .get(&format!("{version}/{name}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{name} was not published"));
        std::fs::write(out.path().join(&name), obj.bytes).unwrap();
    }
    out
}

fn assert_verifies(dir: &Path) {
    let report = verify::verify_kit(
        dir,
        Some(&root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH)),
        &VerifyOptions {
            allow_dev_key: true,
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    assert!(
        report.passed(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// The same specification for both backends.

/// Publish, read back with aoc-verify, the signed manifest entry, then an identical re-publish is a no-op.
fn publishes_verifies_and_republishes_as_a_no_op(url: &str, env: &BTreeMap<String, String>) {
    let kit = kit(1);
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let done = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert_eq!(done.version, version_of(1));
    assert_eq!(done.uploaded, 11, "every file of the kit");
    assert!(!done.unchanged);

    let copy = download(store.as_ref(), &done.version, kit.path());
    assert_verifies(copy.path());

    let manifest = manifest_of(store.as_ref());
    assert_eq!(manifest.kind, aoc_kit::published::KIND);
    assert_eq!((manifest.schema_version, manifest.sequence), (2, 1));
    assert_eq!(manifest.name, "aoc-backfill");
    assert_eq!(manifest.key_id, signer().key_id());
    let [entry] = manifest.kits.as_slice() else {
        panic!("one kit: {manifest:?}")
    };
    assert_eq!(entry.version, version_of(1));
    assert_eq!(entry.commit, "01".repeat(20));
    assert_eq!(entry.key_id, signer().key_id());
    assert_eq!(entry.built_at, "2023-11-14T22:13:20Z");
    assert_eq!(
        entry.dataset_hash,
        kit::find_dataset_hash(kit.path()).unwrap()
    );
    // Every file of the kit, with its real size and digest.
    assert_eq!(entry.files.len(), 11);
    for f in &entry.files {
        let bytes = std::fs::read(kit.path().join(&f.name)).unwrap();
        assert_eq!(
            (f.size, f.sha256.clone()),
            (bytes.len() as u64, Sha256Digest::of(&bytes).to_string())
        );
    }
    let sums = std::fs::read(kit.path().join(kit::SUMS)).unwrap();
    assert_eq!(entry.sha256sums_sha256, Sha256Digest::of(&sums).to_string());
    assert_eq!(
        store.get("cosign.pub").unwrap().unwrap().bytes,
        signer().public_key().to_pem().as_bytes()
    );

    let manifest_before = store.get(MANIFEST).unwrap().unwrap().bytes;
    let bundle_before = store.get(MANIFEST_BUNDLE).unwrap().unwrap().bytes;
    let again = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert!(again.unchanged);
    assert_eq!(again.uploaded, 0);
    // `--format json`: where the kit is and what was uploaded, as one document.
    let json: serde_json::Value =
        serde_json::from_slice(&aoc_term::pretty_json(&again.to_json())).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "ok": true,
            "location": done.location,
            "version": version_of(1),
            "uploaded": 0,
            "unchanged": true,
        })
    );
    assert_eq!(store.get(MANIFEST).unwrap().unwrap().bytes, manifest_before);
    assert_eq!(
        store.get(MANIFEST_BUNDLE).unwrap().unwrap().bytes,
        bundle_before
    );
}

/// Another kit under a version that is taken: refused, and nothing changes; `--force` replaces it.
fn refuses_a_different_kit_under_a_taken_version_unless_forced(
    url: &str,
    env: &BTreeMap<String, String>,
) {
    let (first, second) = (kit(2), kit(3));
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let mut o = opts(env);
    o.version = Some("1.0.0".into());
    publish_with(first.path(), url, &o).unwrap();
    let sums_key = format!("1.0.0/{}", kit::SUMS);
    let published = store.get(&sums_key).unwrap().unwrap().bytes;

    let err = format!("{:#}", publish_with(second.path(), url, &o).unwrap_err());
    assert!(err.contains("already holds a different kit"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(store.get(&sums_key).unwrap().unwrap().bytes, published);
    assert_eq!(manifest_of(store.as_ref()).kits[0].commit, "02".repeat(20));

    o.force = true;
    let done = publish_with(second.path(), url, &o).unwrap();
    assert_eq!(done.uploaded, 11);
    assert_eq!(
        store.get(&sums_key).unwrap().unwrap().bytes,
        std::fs::read(second.path().join(kit::SUMS)).unwrap()
    );
    let manifest = manifest_of(store.as_ref());
    assert_eq!(manifest.kits.len(), 1);
    assert_eq!(manifest.kits[0].commit, "03".repeat(20));
    assert_verifies(download(store.as_ref(), "1.0.0", second.path()).path());
}

/// Interrupted after every object but SHA256SUMS: the kit does not exist (no SHA256SUMS, no
/// manifest entry); a clean re-run publishes it.
fn an_interrupted_upload_leaves_no_kit_and_a_rerun_completes_it(
    url: &str,
    env: &BTreeMap<String, String>,
) {
    let kit = kit(4);
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let version = version_of(4);
    for after in [3, 10] {
        let mut o = opts(env);
        o.fail_after = Some(after);
        let err = format!("{:#}", publish_with(kit.path(), url, &o).unwrap_err());
        assert!(err.contains("simulated interruption"), "{err}");
        assert!(store
            .get(&format!("{version}/{}", kit::SUMS))
            .unwrap()
            .is_none());
        assert!(store.get(MANIFEST).unwrap().is_none(), "no manifest entry");
    }
    // The last try got as far as the signature of SHA256SUMS.
    assert!(store
        .get(&format!("{version}/{}", kit::SUMS_BUNDLE))
        .unwrap()
        .is_some());

    let done = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert_eq!(done.uploaded, 11);
    assert_eq!(versions_of(store.as_ref()), std::slice::from_ref(&version));
    assert_verifies(download(store.as_ref(), &version, kit.path()).path());
}

/// Two publishers at once, each with its own kit: both entries end up in the signed manifest.
fn concurrent_publishes_keep_both_manifest_entries(url: &str, env: &BTreeMap<String, String>) {
    let kits = [kit(5), kit(6)];
    let barrier = Arc::new(Barrier::new(2));
    std::thread::scope(|s| {
        for k in &kits {
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                publish_with(k.path(), url, &opts(env)).unwrap();
            });
        }
    });
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    assert_eq!(versions_of(store.as_ref()), [version_of(5), version_of(6)]);
}

/// A manifest entry for a kit that is not in the store (the manifest's own rules only).
fn entry(version: &str) -> PublishedKit {
    let sums = "5".repeat(64);
    PublishedKit {
        version: version.into(),
        commit: "c".repeat(40),
        dataset_hash: "d".repeat(64),
        key_id: signer().key_id(),
        built_at: "2023-11-14T22:13:20Z".into(),
        sha256sums_sha256: sums.clone(),
        files: vec![PublishedFile {
            name: kit::SUMS.into(),
            size: 1,
            sha256: sums,
        }],
    }
}

/// Deterministic version of the race: another publisher writes the manifest between our read
/// and our conditional write. The write is refused, re-read, merged: nobody's entry is lost, and
/// the signature is over the final manifest.
fn a_manifest_write_racing_another_publisher_retries_and_keeps_both(
    url: &str,
    env: &BTreeMap<String, String>,
) {
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let theirs_state = tempfile::tempdir().unwrap();
    // Once for the first write (PutMode::Create), once for an update (PutMode::Update).
    for (ours, theirs) in [("1.0.0", "0.9.0"), ("2.0.0", "1.5.0")] {
        let racer = Racer {
            inner: store.as_ref(),
            theirs: entry(theirs),
            raced: std::sync::atomic::AtomicBool::new(false),
            state: State::at(theirs_state.path().join("racer.json")),
        };
        let updated = manifest::update(&racer, &entry(ours), false, signer(), &policy()).unwrap();
        assert_eq!(
            updated.conflicts, 1,
            "the first conditional write lost the race"
        );
    }
    assert_eq!(
        versions_of(store.as_ref()),
        ["0.9.0", "1.0.0", "1.5.0", "2.0.0"]
    );

    // A stale tag is refused by the backend itself.
    let current = store.get(MANIFEST).unwrap().unwrap();
    store
        .put_update(MANIFEST, b"{}", &current.tag)
        .unwrap()
        .unwrap();
    assert_eq!(
        store.put_update(MANIFEST, b"{}", &current.tag).unwrap(),
        Err(Conflict::Changed)
    );
    assert_eq!(
        store.put_create(MANIFEST, b"{}").unwrap(),
        Err(Conflict::Exists)
    );
}

/// A store where another publisher adds `theirs` to the manifest just before our first
/// conditional write.
struct Racer<'a> {
    inner: &'a dyn Store,
    theirs: PublishedKit,
    raced: std::sync::atomic::AtomicBool,
    /// The other publisher's own state.
    state: State,
}

impl Racer<'_> {
    fn race(&self) {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let theirs = manifest::Policy {
                state: &self.state,
                settle: manifest::SETTLE,
            };
            manifest::update(self.inner, &self.theirs, false, signer(), &theirs).unwrap();
        }
    }
}

impl Store for Racer<'_> {
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    fn get(&self, key: &str) -> anyhow::Result<Option<Object>> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_create(&self, key: &str, bytes: &[u8]) -> anyhow::Result<Result<(), Conflict>> {
        self.race();
        self.inner.put_create(key, bytes)
    }
    fn put_update(
        &self,
        key: &str,
        bytes: &[u8],
        tag: &Tag,
    ) -> anyhow::Result<Result<(), Conflict>> {
        self.race();
        self.inner.put_update(key, bytes, tag)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.delete(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Directories.

fn dir_url(t: &tempfile::TempDir) -> String {
    format!("file://{}", t.path().join("releases/aoc").display())
}

#[test]
fn dir_publishes_verifies_and_republishes_as_a_no_op() {
    let dest = tempfile::tempdir().unwrap();
    publishes_verifies_and_republishes_as_a_no_op(&dir_url(&dest), &BTreeMap::new());
    // Nothing but the kit, the manifest, its signature and the key: no temporary or lock files
    // left behind.
    let top: Vec<String> = std::fs::read_dir(dest.path().join("releases/aoc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        top,
        [
            version_of(1),
            "cosign.pub".into(),
            MANIFEST.into(),
            MANIFEST_BUNDLE.into()
        ]
    );
    let files = std::fs::read_dir(dest.path().join("releases/aoc").join(version_of(1)))
        .unwrap()
        .count();
    assert_eq!(files, 11);
}

#[test]
fn dir_refuses_a_different_kit_under_a_taken_version_unless_forced() {
    let dest = tempfile::tempdir().unwrap();
    refuses_a_different_kit_under_a_taken_version_unless_forced(&dir_url(&dest), &BTreeMap::new());
}

#[test]
fn dir_interrupted_upload_leaves_no_kit_and_a_rerun_completes_it() {
    let dest = tempfile::tempdir().unwrap();
    an_interrupted_upload_leaves_no_kit_and_a_rerun_completes_it(&dir_url(&dest), &BTreeMap::new());
}

#[test]
fn dir_concurrent_publishes_keep_both_manifest_entries() {
    let dest = tempfile::tempdir().unwrap();
    concurrent_publishes_keep_both_manifest_entries(&dir_url(&dest), &BTreeMap::new());
}

#[test]
fn dir_manifest_write_racing_another_publisher_retries_and_keeps_both() {
    let dest = tempfile::tempdir().unwrap();
    a_manifest_write_racing_another_publisher_retries_and_keeps_both(
        &dir_url(&dest),
        &BTreeMap::new(),
    );
}

#[test]
fn dir_manifest_updates_from_many_threads_lose_nothing() {
    let dest = tempfile::tempdir().unwrap();
    let store = Destination::parse(&dir_url(&dest))
        .unwrap()
        .open(&BTreeMap::new())
        .unwrap();
    let store = store.as_ref();
    let barrier = Barrier::new(8);
    let states = dest.path();
    std::thread::scope(|s| {
        for i in 0..8 {
            let barrier = &barrier;
            s.spawn(move || {
                // Eight publishers, each with its own state (as on eight machines): only the
                // compare-and-swap keeps their entries.
                let state = State::at(states.join(format!("state-{i}.json")));
                let policy = manifest::Policy {
                    state: &state,
                    settle: manifest::SETTLE,
                };
                barrier.wait();
                let version = format!("0.{i}.0");
                manifest::update(store, &entry(&version), false, signer(), &policy).unwrap();
            });
        }
    });
    assert_eq!(manifest_of(store).kits.len(), 8);
}

#[test]
fn a_kit_that_does_not_verify_is_not_published() {
    let kit = kit(7);
    std::fs::write(kit.path().join(kit::CDX_FILE), b"{}").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        publish_with(kit.path(), &dir_url(&dest), &opts(&BTreeMap::new())).unwrap_err()
    );
    assert!(err.contains("does not verify"), "{err}");
    assert!(err.contains(kit::CDX_FILE), "{err}");
    assert!(
        !dest.path().join("releases").exists(),
        "nothing was written"
    );
}

#[test]
fn a_dev_key_kit_is_refused_when_the_production_key_is_required() {
    let kit = kit(10);
    let dest = tempfile::tempdir().unwrap();
    let mut o = opts(&BTreeMap::new());
    o.env_require_prod_key = true;
    let err = format!(
        "{:#}",
        publish_with(kit.path(), &dir_url(&dest), &o).unwrap_err()
    );
    assert!(err.contains("AOC_REQUIRE_PROD_KEY=1"), "{err}");
    assert!(
        !dest.path().join("releases").exists(),
        "nothing was written"
    );
}

#[test]
fn the_release_entry_point_publishes_to_a_plain_directory() {
    let kit = kit(8);
    let dest = tempfile::tempdir().unwrap();
    let url = dest.path().join("kits").display().to_string();
    // `publish` is what `aoc-release --publish` calls: the release's signing key, the process env.
    let at = publish(kit.path(), &url, &dev_selected()).unwrap();
    assert_eq!(at, dest.path().join("kits").join(version_of(8)));
    assert!(at.join(kit::SUMS).is_file());
}

// ---------------------------------------------------------------------------------------------
// The published directory: the signed manifest, verified end to end.

fn dev_key_trusted() -> aoc_kit::VerifyOptions {
    aoc_kit::VerifyOptions {
        key: Some(
            aoc_kit::TrustedKey::load(&root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH))
                .unwrap(),
        ),
        allow_dev_key: true,
        ..aoc_kit::VerifyOptions::default()
    }
}

fn verify_published(dir: &Path, opts: &aoc_kit::VerifyOptions) -> PublishedReport {
    verify_published_with(dir, opts, &mut |_, _| {})
}

/// Two kits published into a directory, which stands for a copy of the bucket prefix.
fn published_pair() -> (tempfile::TempDir, PathBuf) {
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    for seed in [11, 12] {
        publish_with(kit(seed).path(), &url, &opts(&BTreeMap::new())).unwrap();
    }
    let dir = dest.path().join("releases/aoc");
    (dest, dir)
}

/// `stella kit verify DIR ...` (the working tree's release build): exit code and stderr.
fn stella_verify(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(crate::rehearsal::tests::stella())
        .args(["kit", "verify"])
        .arg(dir)
        .args(args)
        .env_remove("DATASET_HASH")
        .env_remove("AOC_VERIFY_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_published_directory_verifies_with_the_library_and_with_stella() {
    let (_dest, dir) = published_pair();
    let report = verify_published(&dir, &dev_key_trusted());
    assert!(report.passed(), "{:#?}", report.first_failure());
    assert_eq!(report.exit_code, 0);
    let versions: Vec<&str> = report.kits.iter().map(|k| k.version.as_str()).collect();
    assert_eq!(versions, [version_of(11), version_of(12)]);
    for k in &report.kits {
        assert!(k.kit.passed(), "{}: {:?}", k.version, k.kit.first_failure());
        assert!(k
            .checks
            .iter()
            .any(|c| c.check == CheckId::ManifestFiles && c.ok));
    }
    // The report names each kit.
    let summary = report.summary("t").join("\n");
    for v in &versions {
        assert!(summary.contains(&format!("kit {v} ")), "{summary}");
    }

    let key = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let key = key.to_str().unwrap();
    let (code, stderr) = stella_verify(&dir, &["--key", key, "--allow-dev-key"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("published: 2 kit(s)"), "{stderr}");
    for v in &versions {
        assert!(stderr.contains(&format!("kit {v} (dataset ")), "{stderr}");
    }
    // Intact, but the dev key proves no origin; nor does the directory's own cosign.pub.
    let (code, stderr) = stella_verify(&dir, &["--key", key]);
    assert_eq!(code, 15, "{stderr}");
    let (code, stderr) = stella_verify(&dir, &[]);
    assert_eq!(code, 15, "{stderr}");
    assert!(stderr.contains("OWN cosign.pub"), "{stderr}");
    // The pin asks for a listed kit with that dataset.
    let (code, stderr) = stella_verify(
        &dir,
        &[
            "--key",
            key,
            "--allow-dev-key",
            "--expect-dataset-hash",
            &"0".repeat(64),
        ],
    );
    assert_eq!(code, 13, "{stderr}");
}

#[test]
fn a_tampered_manifest_fails_on_its_signature_before_it_is_read() {
    let (_dest, dir) = published_pair();
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).unwrap();
    // A change that keeps the manifest valid: only the signature can tell.
    std::fs::write(
        &path,
        text.replacen("2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z", 1),
    )
    .unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(
        report.exit_code,
        aoc_kit::Class::Signature.exit_code(),
        "{report:#?}"
    );
    let (_, first) = report.first_failure().unwrap();
    assert_eq!(
        (first.check, first.file.as_str()),
        (CheckId::Signature, MANIFEST_BUNDLE)
    );
    assert!(report.kits.is_empty(), "no kit is looked at");
    assert!(!report
        .checks
        .iter()
        .any(|c| c.check == CheckId::ManifestParse));

    // Garbage, not even JSON: the same, never parsed.
    std::fs::write(&path, b"\x1b[2J not json").unwrap();
    assert_eq!(verify_published(&dir, &dev_key_trusted()).exit_code, 11);
}

#[test]
fn a_manifest_signed_by_another_key_is_refused() {
    let (_dest, dir) = published_pair();
    let other = Signer::generate();
    let bytes = std::fs::read(dir.join(MANIFEST)).unwrap();
    let digest = Sha256Digest::of(&bytes);
    std::fs::write(
        dir.join(MANIFEST_BUNDLE),
        message_signature_bundle(&other, &digest),
    )
    .unwrap();
    // Against the trusted key: the signature is not by it.
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(report.exit_code, 11, "{report:#?}");
    // Against the other key: it signed, but the manifest names the dev key, and every kit is
    // the dev key's.
    let other_pub = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_pub.path(), other.public_key().to_pem()).unwrap();
    let opts = aoc_kit::VerifyOptions {
        key: Some(aoc_kit::TrustedKey::load(other_pub.path()).unwrap()),
        ..aoc_kit::VerifyOptions::default()
    };
    let report = verify_published(&dir, &opts);
    assert_eq!(report.exit_code, 11, "{report:#?}");
    assert_eq!(
        report.first_failure().unwrap().1.check,
        CheckId::ManifestKey
    );
    let (code, stderr) = stella_verify(&dir, &["--key", other_pub.path().to_str().unwrap()]);
    assert_eq!(code, 11, "{stderr}");
}

#[test]
fn a_changed_listed_kit_file_or_an_unlisted_kit_fails_on_its_checksum() {
    let (_dest, dir) = published_pair();
    let kit_dir = dir.join(version_of(12));
    let path = kit_dir.join(kit::CDX_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(b' ');
    std::fs::write(&path, bytes).unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(
        report.exit_code,
        aoc_kit::Class::Checksum.exit_code(),
        "{report:#?}"
    );
    let (scope, first) = report.first_failure().unwrap();
    assert_eq!(scope, Some(version_of(12).as_str()));
    assert_eq!(first.check, CheckId::ManifestFiles);
    assert!(first.detail.contains(kit::CDX_FILE), "{}", first.detail);
    assert!(report.kits[0].kit.passed(), "the other kit is fine");
    let key = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let (code, stderr) = stella_verify(&dir, &["--key", key.to_str().unwrap(), "--allow-dev-key"]);
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains(&format!("kit {} (dataset", version_of(12))),
        "{stderr}"
    );

    // A kit directory the manifest does not list.
    let (_dest, dir) = published_pair();
    std::fs::create_dir(dir.join("9.9.9")).unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(report.exit_code, 10);
    assert_eq!(
        report.first_failure().unwrap().1.check,
        CheckId::PublishedComplete
    );
}

#[test]
fn a_prefix_of_another_key_is_refused_before_anything_is_uploaded() {
    let dest = tempfile::tempdir().unwrap();
    let prefix = dest.path().join("releases/aoc");
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(
        prefix.join("cosign.pub"),
        Signer::generate().public_key().to_pem(),
    )
    .unwrap();
    let kit = kit(13);
    let err = format!(
        "{:#}",
        publish_with(kit.path(), &dir_url(&dest), &opts(&BTreeMap::new())).unwrap_err()
    );
    assert!(err.contains("a publish prefix has one key"), "{err}");
    assert!(
        !prefix.join(version_of(13)).exists(),
        "nothing was uploaded"
    );
}

/// A store whose writes of the index's signature fail: a publish killed between its two writes.
struct NoSignature<'a>(&'a dyn Store);

impl Store for NoSignature<'_> {
    fn url(&self, key: &str) -> String {
        self.0.url(key)
    }
    fn get(&self, key: &str) -> anyhow::Result<Option<Object>> {
        self.0.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.0.put(key, bytes)
    }
    fn put_create(&self, key: &str, bytes: &[u8]) -> anyhow::Result<Result<(), Conflict>> {
        anyhow::ensure!(key != MANIFEST_BUNDLE, "killed before the signature");
        self.0.put_create(key, bytes)
    }
    fn put_update(
        &self,
        key: &str,
        bytes: &[u8],
        tag: &Tag,
    ) -> anyhow::Result<Result<(), Conflict>> {
        anyhow::ensure!(key != MANIFEST_BUNDLE, "killed before the signature");
        self.0.put_update(key, bytes, tag)
    }
    fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.0.delete(key)
    }
}

/// A publisher with its own state file in `dir`, not waiting for other publishers' signatures.
fn impatient(dir: &Path) -> State {
    State::at(dir.join("publisher-state.json"))
}

fn policy_of(state: &State) -> manifest::Policy<'_> {
    manifest::Policy {
        state,
        settle: Duration::ZERO,
    }
}

#[test]
fn an_interrupted_index_write_is_finished_only_by_the_publisher_that_wrote_it() {
    let dest = tempfile::tempdir().unwrap();
    let store = Destination::parse(&dir_url(&dest))
        .unwrap()
        .open(&BTreeMap::new())
        .unwrap();
    let store = store.as_ref();
    let (ours, theirs) = (
        impatient(&dest.path().join("a")),
        impatient(&dest.path().join("b")),
    );
    manifest::update(store, &entry("1.0.0"), false, signer(), &policy_of(&ours)).unwrap();
    let signed_before = store.get(MANIFEST_BUNDLE).unwrap().unwrap().bytes;
    // Killed between the index and its signature.
    let err = manifest::update(
        &NoSignature(store),
        &entry("2.0.0"),
        false,
        signer(),
        &policy_of(&ours),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("written but not its signature"),
        "{err:#}"
    );
    let unsigned = store.get(MANIFEST).unwrap().unwrap().bytes;

    // Another publisher (its own state) does not sign an index it did not write.
    let err = format!(
        "{:#}",
        manifest::update(store, &entry("3.0.0"), false, signer(), &policy_of(&theirs)).unwrap_err()
    );
    assert!(
        err.contains("is not the index this publisher wrote"),
        "{err}"
    );
    assert_eq!(store.get(MANIFEST).unwrap().unwrap().bytes, unsigned);
    assert_eq!(
        store.get(MANIFEST_BUNDLE).unwrap().unwrap().bytes,
        signed_before
    );

    // The one that wrote it finishes it: the very bytes it recorded, signed, sequence 2.
    let done = manifest::update(store, &entry("2.0.0"), false, signer(), &policy_of(&ours));
    assert!(done.is_ok_and(|u| !u.unchanged));
    assert_eq!(store.get(MANIFEST).unwrap().unwrap().bytes, unsigned);
    let index = manifest_of(store);
    assert_eq!((index.schema_version, index.sequence), (2, 2));
    assert_eq!(versions_of(store), ["1.0.0", "2.0.0"]);
    let recorded = ours.lock().unwrap().get(&store.url(MANIFEST)).unwrap();
    assert_eq!(recorded.sequence, 2);
}

/// The attack of issue 22: with write access to the directory and no key, relabel a published
/// kit (version 9.9.9, a fake commit, a 2099 build date), then wait for the next publish to sign
/// the index again.
#[test]
fn a_relabelled_index_is_neither_signed_by_the_next_publish_nor_accepted() {
    let (dest, dir) = published_pair();
    let original = version_of(12);
    std::fs::rename(dir.join(&original), dir.join("9.9.9")).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    let relabelled = index["kits"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|k| k["version"] == original.as_str())
        .unwrap();
    relabelled["version"] = "9.9.9".into();
    relabelled["commit"] = "f".repeat(40).into();
    relabelled["built_at"] = "2099-01-01T00:00:00Z".into();
    let forged = serde_json::to_vec_pretty(&index).unwrap();
    std::fs::write(dir.join(MANIFEST), &forged).unwrap();
    let bundle = std::fs::read(dir.join(MANIFEST_BUNDLE)).unwrap();

    // The next publishes, after the staleness window (zero here), by the publisher that wrote
    // the index and by a fresh one: neither signs it.
    let url = dir_url(&dest);
    for state in [shared_state().clone(), impatient(dest.path())] {
        let mut o = opts(&BTreeMap::new());
        o.state = state;
        o.settle = Duration::ZERO;
        let err = format!("{:#}", publish_with(kit(16).path(), &url, &o).unwrap_err());
        assert!(
            err.contains("is not the index this publisher wrote"),
            "{err}"
        );
        assert!(err.contains("not signed"), "{err}");
    }
    assert_eq!(std::fs::read(dir.join(MANIFEST)).unwrap(), forged);
    assert_eq!(std::fs::read(dir.join(MANIFEST_BUNDLE)).unwrap(), bundle);
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(report.exit_code, 11, "{:#?}", report.first_failure());

    // Refused before anything was uploaded.
    assert!(!dir.join(version_of(16)).exists());

    // Even signed by the key (as the publisher used to sign it), the verifier binds commit and
    // build time to the kit's own signed provenance.
    let digest = Sha256Digest::of(&forged);
    std::fs::write(
        dir.join(MANIFEST_BUNDLE),
        message_signature_bundle(signer(), &digest),
    )
    .unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(
        report.exit_code,
        aoc_kit::Class::Provenance.exit_code(),
        "{report:#?}"
    );
    let (scope, first) = report.first_failure().unwrap();
    assert_eq!((scope, first.check), (Some("9.9.9"), CheckId::ManifestKit));
    for named in [
        format!("commit is {} in the index", "f".repeat(40)),
        "built_at is 2099-01-01T00:00:00Z in the index".to_string(),
        format!("{} in the kit's signed provenance", "0c".repeat(20)),
    ] {
        assert!(first.detail.contains(&named), "{}", first.detail);
    }
}

#[test]
fn an_older_validly_signed_index_is_refused_with_the_minimum_sequence_and_by_the_publisher() {
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    let dir = dest.path().join("releases/aoc");
    let state = impatient(dest.path());
    let mut o = opts(&BTreeMap::new());
    o.state = state.clone();
    publish_with(kit(17).path(), &url, &o).unwrap();
    let old_index = std::fs::read(dir.join(MANIFEST)).unwrap();
    let old_bundle = std::fs::read(dir.join(MANIFEST_BUNDLE)).unwrap();
    publish_with(kit(18).path(), &url, &o).unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!((report.exit_code, report.sequence), (0, Some(2)));

    // The rollback: the older signed index and signature put back, the newer kit removed.
    std::fs::write(dir.join(MANIFEST), &old_index).unwrap();
    std::fs::write(dir.join(MANIFEST_BUNDLE), &old_bundle).unwrap();
    std::fs::remove_dir_all(dir.join(version_of(18))).unwrap();
    let report = verify_published(&dir, &dev_key_trusted());
    assert_eq!(
        (report.exit_code, report.sequence),
        (0, Some(1)),
        "only a pin can tell"
    );
    let pinned = aoc_kit::VerifyOptions {
        min_index_sequence: Some(2),
        ..dev_key_trusted()
    };
    let report = verify_published(&dir, &pinned);
    assert_eq!(report.exit_code, 11, "{report:#?}");
    let (_, first) = report.first_failure().unwrap();
    assert_eq!(first.check, CheckId::ManifestSequence);
    assert!(
        first.detail.contains("sequence 1 is older than 2"),
        "{}",
        first.detail
    );
    assert!(
        report.kits.is_empty(),
        "no kit of a rolled-back index is looked at"
    );
    let pinned = aoc_kit::VerifyOptions {
        min_index_sequence: Some(1),
        ..dev_key_trusted()
    };
    assert_eq!(verify_published(&dir, &pinned).exit_code, 0);

    // The publisher that wrote sequence 2 does not extend sequence 1.
    let err = format!("{:#}", publish_with(kit(19).path(), &url, &o).unwrap_err());
    assert!(err.contains("older than sequence 2"), "{err}");
    assert!(err.contains("rollback"), "{err}");
    assert_eq!(std::fs::read(dir.join(MANIFEST)).unwrap(), old_index);
    assert!(!dir.join(version_of(19)).exists(), "nothing uploaded");

    // Deleting the index does not reset the sequence: the next index continues above it.
    std::fs::remove_file(dir.join(MANIFEST)).unwrap();
    std::fs::remove_file(dir.join(MANIFEST_BUNDLE)).unwrap();
    publish_with(kit(19).path(), &url, &o).unwrap();
    assert_eq!(
        manifest_of(
            &*Destination::parse(&url)
                .unwrap()
                .open(&BTreeMap::new())
                .unwrap()
        )
        .sequence,
        3
    );
}

#[test]
fn stella_refuses_an_index_older_than_its_pin_from_the_flag_or_the_environment() {
    let (_dest, dir) = published_pair();
    let key = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let key = key.to_str().unwrap();
    let trusted = ["--key", key, "--allow-dev-key"];
    let (code, stderr) = stella_verify(
        &dir,
        &[&trusted[..], &["--expect-min-index-sequence", "2"]].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("index sequence 2"), "{stderr}");
    let (code, stderr) = stella_verify(
        &dir,
        &[&trusted[..], &["--expect-min-index-sequence", "3"]].concat(),
    );
    assert_eq!(code, 11, "{stderr}");
    assert!(stderr.contains("sequence 2 is older than 3"), "{stderr}");
    let out = std::process::Command::new(crate::rehearsal::tests::stella())
        .args(["kit", "verify"])
        .arg(&dir)
        .args(trusted)
        .env_remove("DATASET_HASH")
        .env_remove("AOC_VERIFY_KEY")
        .env("AOC_MIN_INDEX_SEQUENCE", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11));
    // On a kit directory there is no index to pin: a usage error, not a silent pass.
    let (code, stderr) = stella_verify(
        &dir.join(version_of(11)),
        &[&trusted[..], &["--expect-min-index-sequence", "1"]].concat(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("pins a published directory's index"),
        "{stderr}"
    );
}

/// `f` on another thread: a test fails instead of hanging when it blocks.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("blocked for 120 s")
}

#[test]
fn a_planted_version_link_or_fifo_in_the_publish_directory_is_refused() {
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    let prefix = dest.path().join("releases/aoc");
    std::fs::create_dir_all(&prefix).unwrap();
    let elsewhere = dest.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, prefix.join(version_of(20))).unwrap();
    let kit20 = kit(20);
    let path = kit20.path().to_path_buf();
    let o = opts(&BTreeMap::new());
    let err = promptly(move || format!("{:#}", publish_with(&path, &url, &o).unwrap_err()));
    assert!(err.contains("is a symbolic link, not a directory"), "{err}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through it"
    );

    // A FIFO where the index is: refused at once, not waited on.
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    let prefix = dest.path().join("releases/aoc");
    std::fs::create_dir_all(&prefix).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(prefix.join(MANIFEST))
        .status()
        .unwrap();
    assert!(status.success());
    let path = kit20.path().to_path_buf();
    let o = opts(&BTreeMap::new());
    let err = promptly(move || format!("{:#}", publish_with(&path, &url, &o).unwrap_err()));
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");

    // A huge (sparse) SHA256SUMS where the version's would be: refused before it is read.
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    let planted = dest.path().join("releases/aoc").join(version_of(20));
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::File::create(planted.join(kit::SUMS))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let path = kit20.path().to_path_buf();
    let o = opts(&BTreeMap::new());
    let err = promptly(move || format!("{:#}", publish_with(&path, &url, &o).unwrap_err()));
    assert!(
        err.contains("is 4294967296 bytes, more than the 1048576"),
        "{err}"
    );
}

#[test]
fn a_local_kit_with_a_fifo_or_a_link_is_refused_and_what_is_uploaded_is_the_verified_copy() {
    let dest = tempfile::tempdir().unwrap();
    let url = dir_url(&dest);
    // A FIFO in the kit: refused without blocking, naming it.
    let with_fifo = kit(21);
    let status = std::process::Command::new("mkfifo")
        .arg(with_fifo.path().join("extra"))
        .status()
        .unwrap();
    assert!(status.success());
    let (path, u, o) = (
        with_fifo.path().to_path_buf(),
        url.clone(),
        opts(&BTreeMap::new()),
    );
    let err = promptly(move || format!("{:#}", publish_with(&path, &u, &o).unwrap_err()));
    assert!(err.contains("extra is a FIFO"), "{err}");
    // A kit file that is a link to the real one: refused too.
    let linked = kit(21);
    let real = dest.path().join("real-cdx.json");
    std::fs::rename(linked.path().join(kit::CDX_FILE), &real).unwrap();
    std::os::unix::fs::symlink(&real, linked.path().join(kit::CDX_FILE)).unwrap();
    let err = format!(
        "{:#}",
        publish_with(linked.path(), &url, &opts(&BTreeMap::new())).unwrap_err()
    );
    assert!(
        err.contains(&format!("{} is a symbolic link", kit::CDX_FILE)),
        "{err}"
    );
    assert!(!dest
        .path()
        .join("releases/aoc")
        .join(version_of(21))
        .exists());
}

// ---------------------------------------------------------------------------------------------
// S3, against moto.

/// `moto_server` on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or returns `None` after saying why (panics under `AOC_THIRD_PARTY=1`).
    fn start() -> Option<Moto> {
        let bin = root().join("target/third-party/venv/bin/moto_server");
        if !bin.is_file() {
            let required = std::env::var("AOC_THIRD_PARTY").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "AOC_THIRD_PARTY=1 but {} is missing: run sh xtask/third-party/setup.sh",
                bin.display()
            );
            aoc_testkit::skip(
                "S3 publishing tests need moto_server: run sh xtask/third-party/setup.sh \
                 (AOC_THIRD_PARTY=1 or CI makes this a failure)",
            );
            return None;
        }
        // The port is free when probed; moto binding it a moment later can race another
        // process, so a failed start is retried on a new port.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning moto_server");
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if moto.child.try_wait().unwrap().is_some() {
                    break;
                }
                if moto.request("GET", "/").is_some_and(|s| s == 200) {
                    return Some(moto);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start on a loopback port within 30 s");
    }

    /// One plain HTTP request; moto does not check signatures, so bucket setup needs no SDK.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// A fresh bucket and the env that points the S3 backend at it.
    fn bucket(&self, name: &str) -> BTreeMap<String, String> {
        assert_eq!(self.request("PUT", &format!("/{name}")), Some(200));
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

#[test]
fn s3_publishes_verifies_and_republishes_as_a_no_op() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    publishes_verifies_and_republishes_as_a_no_op("s3://kits/aoc/releases", &env);
}

#[test]
fn s3_refuses_a_different_kit_under_a_taken_version_unless_forced() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    refuses_a_different_kit_under_a_taken_version_unless_forced("s3://kits/aoc", &env);
}

#[test]
fn s3_interrupted_upload_leaves_no_kit_and_a_rerun_completes_it() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    an_interrupted_upload_leaves_no_kit_and_a_rerun_completes_it("s3://kits/aoc", &env);
}

#[test]
fn s3_concurrent_publishes_keep_both_manifest_entries() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    concurrent_publishes_keep_both_manifest_entries("s3://kits/aoc", &env);
}

#[test]
fn s3_manifest_write_racing_another_publisher_retries_and_keeps_both() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    a_manifest_write_racing_another_publisher_retries_and_keeps_both("s3://kits", &env);
}

#[test]
fn s3_without_the_bucket_fails_with_the_url_named() {
    let Some(moto) = Moto::start() else { return };
    let mut env = moto.bucket("kits");
    env.insert("AWS_REGION".into(), "us-east-1".into());
    let kit = kit(9);
    let err = format!(
        "{:#}",
        publish_with(kit.path(), "s3://no-such-bucket/aoc", &opts(&env)).unwrap_err()
    );
    assert!(err.contains("s3://no-such-bucket/aoc/"), "{err}");
}

/// `stella kit verify` on a kit or a published directory where a file is a FIFO or a link: a
/// refusal at once (exit 14, naming it), never a wait for a writer.
#[test]
fn stella_refuses_a_fifo_or_a_link_in_a_kit_or_a_published_directory_promptly() {
    let key = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let key = key.to_str().unwrap().to_string();
    let run = |dir: PathBuf| {
        let key = key.clone();
        promptly(move || stella_verify(&dir, &["--key", &key, "--allow-dev-key"]))
    };
    let mkfifo = |path: &Path| {
        std::fs::remove_file(path).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    for name in [kit::SUMS, kit::CDX_FILE] {
        let k = kit(22);
        mkfifo(&k.path().join(name));
        let (code, stderr) = run(k.path().to_path_buf());
        assert_eq!(code, 14, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}: is not a regular file")),
            "{stderr}"
        );
    }
    let k = kit(22);
    let real = k.path().join("real.json");
    std::fs::rename(k.path().join(kit::SPDX_FILE), &real).unwrap();
    std::os::unix::fs::symlink(&real, k.path().join(kit::SPDX_FILE)).unwrap();
    let (code, stderr) = run(k.path().to_path_buf());
    assert_eq!(code, 14, "{stderr}");

    let (_dest, dir) = published_pair();
    mkfifo(&dir.join(MANIFEST));
    let (code, stderr) = run(dir);
    assert_eq!(code, 14, "{stderr}");
    assert!(stderr.contains("is not a regular file"), "{stderr}");
}
