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

use super::destination::Destination;
use super::index::{self, Index, INDEX};
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
    use sha2::Digest;
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
    let tarball = packed.archive_sha256_hex();
    let binary = packed
        .members
        .iter()
        .find(|m| m.path == kit::BINARY_MEMBER)
        .unwrap()
        .sha256_hex();
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
        cargo_lock_sha256: "00".repeat(32),
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
    let digest: [u8; 32] = sha2::Sha256::digest(sums.as_bytes()).into();
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

fn opts(env: &BTreeMap<String, String>) -> PublishOptions {
    PublishOptions {
        version: None,
        force: false,
        key: Some(root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH)),
        // The stand-in script would pass; not exec'ing files written by a multi-threaded test
        // process avoids ETXTBSY races.
        print: false,
        env: env.clone(),
        fail_after: None,
        env_require_prod_key: false,
    }
}

/// `<runner version>-<12 hex of the commit>` of `kit(seed)`.
fn version_of(seed: u8) -> String {
    format!("0.1.0-{}", format!("{seed:02x}").repeat(6))
}

fn index_of(store: &dyn Store) -> Index {
    let obj = store.get(INDEX).unwrap().expect("index.json exists");
    Index::parse(&obj.bytes, INDEX).unwrap()
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
            print: false,
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

/// Publish, read back with aoc-verify, the index entry, then an identical re-publish is a no-op.
fn publishes_verifies_and_republishes_as_a_no_op(url: &str, env: &BTreeMap<String, String>) {
    let kit = kit(1);
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let done = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert_eq!(done.version, version_of(1));
    assert_eq!(done.uploaded, 11, "every file of the kit");
    assert!(!done.unchanged);

    let copy = download(store.as_ref(), &done.version, kit.path());
    assert_verifies(copy.path());

    let index = index_of(store.as_ref());
    assert_eq!(index.schema, 1);
    let [entry] = index.kits.as_slice() else {
        panic!("one kit: {index:?}")
    };
    assert_eq!(entry.version, version_of(1));
    assert_eq!(entry.commit, "01".repeat(20));
    assert_eq!(entry.key_id, signer().key_id());
    assert_eq!(entry.published_at, "2023-11-14T22:13:20Z");
    assert_eq!(
        entry.dataset_hash,
        kit::find_dataset_hash(kit.path()).unwrap()
    );
    assert_eq!(entry.files.len(), 11);
    let sums = std::fs::read(kit.path().join(kit::SUMS)).unwrap();
    assert_eq!(entry.sha256sums_sha256, sha256_hex(&sums));
    assert_eq!(entry.files[kit::SUMS], sha256_hex(&sums));

    let index_before = store.get(INDEX).unwrap().unwrap().bytes;
    let again = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert!(again.unchanged);
    assert_eq!(again.uploaded, 0);
    assert_eq!(store.get(INDEX).unwrap().unwrap().bytes, index_before);
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
    assert_eq!(index_of(store.as_ref()).kits[0].commit, "02".repeat(20));

    o.force = true;
    let done = publish_with(second.path(), url, &o).unwrap();
    assert_eq!(done.uploaded, 11);
    assert_eq!(
        store.get(&sums_key).unwrap().unwrap().bytes,
        std::fs::read(second.path().join(kit::SUMS)).unwrap()
    );
    let index = index_of(store.as_ref());
    assert_eq!(index.kits.len(), 1);
    assert_eq!(index.kits[0].commit, "03".repeat(20));
    assert_verifies(download(store.as_ref(), "1.0.0", second.path()).path());
}

/// Interrupted after every object but SHA256SUMS: the kit does not exist (no SHA256SUMS, no
/// index entry); a clean re-run publishes it.
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
        assert!(store.get(INDEX).unwrap().is_none(), "no index entry");
    }
    // The last try got as far as the signature of SHA256SUMS.
    assert!(store
        .get(&format!("{version}/{}", kit::SUMS_BUNDLE))
        .unwrap()
        .is_some());

    let done = publish_with(kit.path(), url, &opts(env)).unwrap();
    assert_eq!(done.uploaded, 11);
    assert_eq!(index_of(store.as_ref()).kits[0].version, version);
    assert_verifies(download(store.as_ref(), &version, kit.path()).path());
}

/// Two publishers at once, each with its own kit: both entries end up in the index.
fn concurrent_publishes_keep_both_index_entries(url: &str, env: &BTreeMap<String, String>) {
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
    let versions: Vec<String> = index_of(store.as_ref())
        .kits
        .into_iter()
        .map(|k| k.version)
        .collect();
    assert_eq!(versions, [version_of(5), version_of(6)]);
}

/// Deterministic version of the race: another publisher writes the index between our read and
/// our conditional write. The write is refused, re-read, merged: nobody's entry is lost.
fn an_index_write_racing_another_publisher_retries_and_keeps_both(
    url: &str,
    env: &BTreeMap<String, String>,
) {
    let store = Destination::parse(url).unwrap().open(env).unwrap();
    let entry = |v: &str| index::Entry {
        version: v.into(),
        commit: "c".repeat(40),
        dataset_hash: "d".repeat(64),
        key_id: "k".into(),
        published_at: "2023-11-14T22:13:20Z".into(),
        files: BTreeMap::new(),
        sha256sums_sha256: "s".into(),
    };
    // Once for the first write (PutMode::Create), once for an update (PutMode::Update).
    for (ours, theirs) in [("1.0.0", "0.9.0"), ("2.0.0", "1.5.0")] {
        let racer = Racer {
            inner: store.as_ref(),
            theirs: entry(theirs),
            raced: std::sync::atomic::AtomicBool::new(false),
        };
        let updated = index::update(&racer, &entry(ours), false).unwrap();
        assert_eq!(
            updated.conflicts, 1,
            "the first conditional write lost the race"
        );
    }
    let versions: Vec<String> = index_of(store.as_ref())
        .kits
        .into_iter()
        .map(|k| k.version)
        .collect();
    assert_eq!(versions, ["0.9.0", "1.0.0", "1.5.0", "2.0.0"]);

    // A stale tag is refused by the backend itself.
    let current = store.get(INDEX).unwrap().unwrap();
    store
        .put_update(INDEX, b"{}", &current.tag)
        .unwrap()
        .unwrap();
    assert_eq!(
        store.put_update(INDEX, b"{}", &current.tag).unwrap(),
        Err(Conflict::Changed)
    );
    assert_eq!(
        store.put_create(INDEX, b"{}").unwrap(),
        Err(Conflict::Exists)
    );
}

/// A store where another publisher adds `theirs` to the index just before our first write.
struct Racer<'a> {
    inner: &'a dyn Store,
    theirs: index::Entry,
    raced: std::sync::atomic::AtomicBool,
}

impl Racer<'_> {
    fn race(&self) {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            index::update(self.inner, &self.theirs, false).unwrap();
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
    // Nothing but the kit and the index: no temporary or lock files left behind.
    let top: Vec<String> = std::fs::read_dir(dest.path().join("releases/aoc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(top, [version_of(1), INDEX.to_string()]);
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
fn dir_concurrent_publishes_keep_both_index_entries() {
    let dest = tempfile::tempdir().unwrap();
    concurrent_publishes_keep_both_index_entries(&dir_url(&dest), &BTreeMap::new());
}

#[test]
fn dir_index_write_racing_another_publisher_retries_and_keeps_both() {
    let dest = tempfile::tempdir().unwrap();
    an_index_write_racing_another_publisher_retries_and_keeps_both(
        &dir_url(&dest),
        &BTreeMap::new(),
    );
}

#[test]
fn dir_index_updates_from_many_threads_lose_nothing() {
    let dest = tempfile::tempdir().unwrap();
    let store = Destination::parse(&dir_url(&dest))
        .unwrap()
        .open(&BTreeMap::new())
        .unwrap();
    let store = store.as_ref();
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for i in 0..8 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let entry = index::Entry {
                    version: format!("0.{i}.0"),
                    commit: "c".repeat(40),
                    dataset_hash: "d".repeat(64),
                    key_id: "k".into(),
                    published_at: "2023-11-14T22:13:20Z".into(),
                    files: BTreeMap::new(),
                    sha256sums_sha256: "s".into(),
                };
                index::update(store, &entry, false).unwrap();
            });
        }
    });
    assert_eq!(index_of(store).kits.len(), 8);
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
    // `publish` is what `aoc-release --publish` calls: the kit's own key, the process env.
    let at = publish(kit.path(), &url).unwrap();
    assert_eq!(at, dest.path().join("kits").join(version_of(8)));
    assert!(at.join(kit::SUMS).is_file());
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
            eprintln!(
                "SKIPPED: S3 publishing tests need moto_server: run sh xtask/third-party/setup.sh \
                 (AOC_THIRD_PARTY=1 makes this a failure)"
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
fn s3_concurrent_publishes_keep_both_index_entries() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    concurrent_publishes_keep_both_index_entries("s3://kits/aoc", &env);
}

#[test]
fn s3_index_write_racing_another_publisher_retries_and_keeps_both() {
    let Some(moto) = Moto::start() else { return };
    let env = moto.bucket("kits");
    an_index_write_racing_another_publisher_retries_and_keeps_both("s3://kits", &env);
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
