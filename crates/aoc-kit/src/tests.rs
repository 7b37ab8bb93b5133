//! aoc-kit tested on its own: small kits built in a temporary directory (no release build) and
//! verified through the public API, one test per check and per failure class.
//!
//! A kit here is real in every byte the verifier reads: a deterministic runner tarball holding a
//! stand-in `stella`, SBOMs naming its digests, a dataset built by aoc-dataset from `testdata/`,
//! an in-toto provenance in a DSSE bundle, `SHA256SUMS` and its message-signature bundle, all
//! signed with a key generated for the test run. [`Parts`] holds the files before sealing, so a
//! test can change one part and re-seal (the change then reaches the check it is for) or tamper
//! with the sealed files on disk (the change is caught by the checksums).
//!
//! Every check a test names is a [`CheckId`], so a renamed check fails to compile, and
//! `a_full_kit_records_exactly_the_known_check_ids` proves each id a negative assertion
//! (`assert_not_run`) may name is recorded by a good kit, so "no check X ran" is never vacuously
//! true.

mod published;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aoc_archive::{Compression, Entry, PackOptions, Sha256Sums};
use aoc_digest::Sha256Digest;
use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, statement_json, Signer, Subject, IN_TOTO_PAYLOAD_TYPE,
};
use serde_json::{json, Value};

use crate::report::{CheckId, CheckResult, Class, VerifyReport, EXIT_CODES, EXIT_USAGE};
use crate::verify::{verify_kit, TrustedKey, VerifyOptions, SKIPPED_BY_INTEGRITY};
use crate::{cli, layout, rehearsal};

/// Every id a passing kit (full mode, a rehearsal report carried, the dataset pinned) records.
const PASSING_IDS: &[CheckId] = &[
    CheckId::Signature,
    CheckId::SumsParse,
    CheckId::SumsComplete,
    CheckId::SumsLayout,
    CheckId::DatasetPinned,
    CheckId::Sha256,
    CheckId::ProvenanceSubjects,
    CheckId::RehearsalReport,
    CheckId::RunnerBinary,
    CheckId::SbomSpdx,
    CheckId::SbomCycloneDx,
    CheckId::DatasetManifest,
    CheckId::Dataset,
    CheckId::Origin,
];

/// The release clock of every fixture (2023-11-14T22:13:20Z).
const EPOCH: i64 = 1_700_000_000;
const BUILT_AT: &str = "2023-11-14T22:13:20Z";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const STELLA: &[u8] = b"\x7fELF stand-in for the stella binary\n";

// ---- fixtures ------------------------------------------------------------------------------

/// A dataset built once per test run, as bytes.
struct Dataset {
    hash: String,
    tarball: Vec<u8>,
    manifest: Vec<u8>,
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn build_dataset(input: &str) -> Dataset {
    let out = tempfile::tempdir().unwrap();
    let mut opts = aoc_dataset::BuildOptions::new(out.path());
    opts.source_date_epoch = Some(EPOCH);
    let built = aoc_dataset::build_from_inputs(&[testdata(input)], &opts).unwrap();
    Dataset {
        tarball: std::fs::read(&built.archive).unwrap(),
        manifest: std::fs::read(&built.manifest_path).unwrap(),
        hash: built.hash.to_string(),
    }
}

/// The kits' dataset.
fn dataset() -> &'static Dataset {
    static D: OnceLock<Dataset> = OnceLock::new();
    D.get_or_init(|| build_dataset("osv-rustsec/RUSTSEC-2016-0001.json"))
}

/// A second, different dataset.
fn other_dataset() -> &'static Dataset {
    static D: OnceLock<Dataset> = OnceLock::new();
    D.get_or_init(|| build_dataset("osv-rustsec/RUSTSEC-2020-0071.json"))
}

/// The key the kits are signed with (the operator's trusted key in most tests).
fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(Signer::generate)
}

/// Somebody else's key.
fn stranger() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(Signer::generate)
}

/// The project's public dev key (its private half is committed, password public).
fn dev_signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(aoc_sigstore::policy::DEV_KEY_PATH);
        let pem = std::fs::read_to_string(&path).unwrap();
        Signer::from_cosign_pem(
            &pem,
            aoc_sigstore::policy::DEV_KEY_PASSWORD.as_bytes(),
            "dev key",
        )
        .unwrap()
    })
}

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::of(bytes)
}

/// A deterministic gzip tarball of `members`.
fn tarball(members: &[(&str, &[u8])]) -> Vec<u8> {
    let entries = members
        .iter()
        .map(|(name, bytes)| Entry::bytes(*name, bytes.to_vec()).executable(true))
        .collect();
    let options = PackOptions {
        compression: Compression::Gzip,
        source_date_epoch: EPOCH as u64,
        include_directories: false,
    };
    aoc_archive::pack_to_writer(entries, Vec::new(), &options)
        .unwrap()
        .0
}

fn spdx(tarball: &Sha256Digest, binary: &Sha256Digest) -> Vec<u8> {
    let package = |id: &str, digest: &Sha256Digest| {
        json!({
            "SPDXID": id,
            "checksums": [{"algorithm": "SHA256", "checksumValue": digest.to_string()}],
        })
    };
    serde_json::to_vec_pretty(&json!({
        "spdxVersion": "SPDX-2.3",
        "packages": [
            package(layout::SPDX_TARBALL_ID, tarball),
            package(layout::SPDX_BINARY_ID, binary),
        ],
    }))
    .unwrap()
}

fn cdx(tarball: &Sha256Digest, binary: &Sha256Digest) -> Vec<u8> {
    let hashes = |digest: &Sha256Digest| json!([{"alg": "SHA-256", "content": digest.to_string()}]);
    serde_json::to_vec_pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "metadata": {"component": {"name": layout::RUNNER_NAME, "hashes": hashes(tarball)}},
        "components": [{"bom-ref": layout::RUNNER_BINARY, "hashes": hashes(binary)}],
    }))
    .unwrap()
}

fn rehearsal_report(hash: &str) -> rehearsal::Report {
    rehearsal::Report {
        kind: rehearsal::KIND.into(),
        schema_version: rehearsal::SCHEMA_VERSION,
        ok: true,
        dataset_hash: hash.into(),
        dataset: rehearsal::DatasetInfo {
            archive: layout::dataset_tarball(hash),
            archive_sha256: sha256(&dataset().tarball).to_string(),
            inputs: vec!["testdata/osv-rustsec/RUSTSEC-2016-0001.json".into()],
        },
        counts: rehearsal::Counts {
            records: 1,
            upstream_documents: 1,
            written: 1,
            noop: 0,
            rejected: 0,
            rerun_written: 0,
            rerun_noop: 1,
            verified_documents: 1,
            violations: 0,
            by_vendor: Vec::new(),
        },
        steps: Vec::new(),
        tools: rehearsal::Tools {
            stella: "stella 0.1.0".into(),
            aoc_dataset: "aoc-dataset 0.1.0".into(),
            dataset_schema_version: 1,
            xtask: "xtask 0.1.0".into(),
        },
        source: rehearsal::SourceInfo {
            commit: COMMIT.into(),
            dirty: false,
        },
        store: rehearsal::StoreInfo {
            engine: "sqlite".into(),
            url: "sqlite://rehearsal.db".into(),
            temporary: true,
        },
        source_date_epoch: EPOCH,
        finished_at: BUILT_AT.into(),
        release_command: "cargo xtask aoc-release".into(),
    }
}

/// A kit's files before sealing: everything but the provenance and the checksum pair, which
/// [`Parts::seal`] computes from them (unless a test overrides a piece).
#[derive(Clone)]
struct Parts {
    hash: String,
    files: BTreeMap<String, Vec<u8>>,
    predicate_type: String,
    payload_type: String,
    predicate: Value,
    /// `None`: every file, with its digest.
    subjects: Option<Vec<Subject>>,
    /// The key of `SHA256SUMS.sigstore.json`, the runner bundle and the provenance.
    signer: &'static Signer,
    provenance_signer: &'static Signer,
    /// `None`: computed from the files.
    sums: Option<Vec<u8>>,
}

impl Parts {
    /// A complete, valid kit signed by [`signer`].
    fn new() -> Parts {
        Parts::signed_by(signer())
    }

    fn signed_by(signer: &'static Signer) -> Parts {
        Parts::of(dataset(), signer)
    }

    /// A complete, valid kit of dataset `d`, signed by `signer`.
    fn of(d: &Dataset, signer: &'static Signer) -> Parts {
        let mut parts = Parts {
            hash: d.hash.clone(),
            files: BTreeMap::new(),
            predicate_type: layout::SLSA_PREDICATE_TYPE.into(),
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            predicate: json!({
                "buildDefinition": {
                    "buildType": layout::BUILD_TYPE,
                    "externalParameters": {"source": {"digest": {"gitCommit": COMMIT}}},
                    "internalParameters": {"datasetHash": d.hash},
                },
                "runDetails": {
                    "builder": {"id": layout::BUILDER_ID},
                    "metadata": {"startedOn": BUILT_AT},
                },
            }),
            subjects: None,
            signer,
            provenance_signer: signer,
            sums: None,
        };
        parts.set(layout::dataset_tarball(&d.hash), d.tarball.clone());
        parts.set(layout::dataset_manifest(&d.hash), d.manifest.clone());
        parts.set(layout::VERIFY_SCRIPT, b"#!/bin/sh\necho verify\n".to_vec());
        parts.set(
            layout::PUBLIC_KEY,
            signer.public_key().to_pem().into_bytes(),
        );
        parts.runner(&[
            (layout::BINARY_MEMBER, STELLA),
            ("aoc-backfill-runner/README.md", b"the runner\n"),
        ]);
        parts
    }

    fn set(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.files.insert(name.into(), bytes);
    }

    /// The runner tarball of `members`, its bundle and SBOMs naming it and its `stella`.
    fn runner(&mut self, members: &[(&str, &[u8])]) {
        let tar = tarball(members);
        let binary = members
            .iter()
            .find(|(n, _)| *n == layout::BINARY_MEMBER)
            .map_or(Sha256Digest::default(), |(_, b)| sha256(b));
        let digest = sha256(&tar);
        self.set(layout::SPDX_FILE, spdx(&digest, &binary));
        self.set(layout::CDX_FILE, cdx(&digest, &binary));
        self.set(
            layout::RUNNER_BUNDLE,
            message_signature_bundle(self.signer, &digest).into_bytes(),
        );
        self.set(layout::RUNNER_TARBALL, tar);
    }

    fn with_rehearsal(mut self, report: &rehearsal::Report) -> Parts {
        self.set(
            layout::rehearsal_report(&self.hash),
            serde_json::to_vec_pretty(report).unwrap(),
        );
        self
    }

    fn provenance_name(&self) -> String {
        layout::provenance(&self.hash)
    }

    /// The kit's files: these parts plus the provenance over them, `SHA256SUMS` over all of
    /// them and its signature.
    fn seal(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = self.files.clone();
        let subjects = self.subjects.clone().unwrap_or_else(|| {
            files
                .iter()
                .map(|(name, bytes)| Subject {
                    name: name.clone(),
                    sha256: sha256(bytes),
                })
                .collect()
        });
        let payload = statement_json(&subjects, &self.predicate_type, &self.predicate);
        let provenance = dsse_bundle(self.provenance_signer, &self.payload_type, &payload);
        files.insert(self.provenance_name(), provenance.into_bytes());
        let sums = self.sums.clone().unwrap_or_else(|| {
            let mut sums = Sha256Sums::new();
            for (name, bytes) in &files {
                sums.insert(name.clone(), sha256(bytes)).unwrap();
            }
            sums.render().into_bytes()
        });
        let bundle = message_signature_bundle(self.signer, &sha256(&sums));
        files.insert(layout::SUMS.into(), sums);
        files.insert(layout::SUMS_BUNDLE.into(), bundle.into_bytes());
        files
    }

    /// The sealed kit in a fresh temporary directory.
    fn write(&self) -> Kit {
        let kit = Kit {
            dir: tempfile::tempdir().unwrap(),
            hash: self.hash.clone(),
        };
        for (name, bytes) in self.seal() {
            std::fs::write(kit.path(&name), bytes).unwrap();
        }
        kit
    }
}

/// A kit on disk.
struct Kit {
    dir: tempfile::TempDir,
    hash: String,
}

impl Kit {
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn verify(&self, opts: &VerifyOptions) -> VerifyReport {
        verify_kit(self.dir(), opts)
    }
}

/// Options trusting `signer`'s key, as `--key` would.
fn trusting(signer: &Signer) -> VerifyOptions {
    VerifyOptions {
        key: Some(TrustedKey {
            key: signer.public_key().clone(),
            path: "trusted.pub".into(),
        }),
        ..VerifyOptions::default()
    }
}

fn trusted() -> VerifyOptions {
    trusting(signer())
}

// ---- assertions ----------------------------------------------------------------------------

fn ids(report: &VerifyReport) -> BTreeSet<CheckId> {
    report.checks.iter().map(|c| c.check).collect()
}

fn render(report: &VerifyReport) -> String {
    report
        .checks
        .iter()
        .map(crate::render_check)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The report's first failure is `check` on `file` in `class`, and the exit code is the class's.
fn assert_fails<'r>(
    report: &'r VerifyReport,
    check: CheckId,
    file: &str,
    class: Class,
) -> &'r CheckResult {
    let first = report
        .first_failure()
        .unwrap_or_else(|| panic!("no failure:\n{}", render(report)));
    assert_eq!(
        (first.check, first.file.as_str(), first.class),
        (check, file, class),
        "first failure:\n{}",
        render(report)
    );
    assert_eq!(report.exit_code, class.exit_code(), "{}", render(report));
    assert!(!report.passed());
    first
}

/// No check `check` was recorded. `check` must be one the verifier is proven to record
/// ([`PASSING_IDS`]), so a renamed check cannot make this vacuously true.
fn assert_not_run(report: &VerifyReport, check: CheckId) {
    assert!(
        PASSING_IDS.contains(&check),
        "{check} is not a check id a passing kit records"
    );
    assert!(
        !report.checks.iter().any(|c| c.check == check),
        "{check} ran:\n{}",
        render(report)
    );
}

fn assert_passes(report: &VerifyReport) {
    assert!(report.passed(), "{}", render(report));
    assert_eq!(report.exit_code, 0);
}

// ---- the kit's files, against the documented table (docs/ARCHITECTURE.md §4.3) -------------

/// The kit's files as docs/ARCHITECTURE.md §4.3 lists them, for dataset `h`, in SHA256SUMS order.
fn documented_files(h: &str) -> Vec<String> {
    [
        "SHA256SUMS".to_string(),
        "SHA256SUMS.sigstore.json".into(),
        "aoc-backfill-runner.cdx.json".into(),
        "aoc-backfill-runner.dsse.json".into(),
        "aoc-backfill-runner.sbom.json".into(),
        "aoc-backfill-runner.tar.gz".into(),
        format!("aoc-dataset-{h}.manifest.json"),
        format!("aoc-dataset-{h}.provenance.json"),
        format!("aoc-dataset-{h}.tar.gz"),
        "cosign.pub".into(),
        "verify-kit.sh".into(),
    ]
    .to_vec()
}

#[test]
fn the_kit_file_list_is_the_documented_table() {
    let h = "0123456789abcdef".repeat(4);
    assert_eq!(layout::expected_files(&h), documented_files(&h));
    // The one optional file, in its sorted place (before verify-kit.sh).
    let with_rehearsal = |h: &str| {
        let mut files = documented_files(h);
        files.insert(10, format!("rehearsal-{h}.json"));
        files
    };
    assert_eq!(
        layout::with_optional(layout::expected_files(&h), &[format!("rehearsal-{h}.json")]),
        with_rehearsal(&h)
    );
    // A fixture kit holds exactly those files.
    let kit = Parts::new().write();
    assert_eq!(kit.names(), documented_files(&kit.hash));
    let kit = Parts::new()
        .with_rehearsal(&rehearsal_report(&dataset().hash))
        .write();
    assert_eq!(kit.names(), with_rehearsal(&kit.hash));
}

#[test]
fn summed_and_subject_files_leave_out_what_is_written_after_them() {
    let h = "ab".repeat(32);
    let summed = layout::summed_files(&h);
    let mut expected = documented_files(&h);
    expected.retain(|n| n != "SHA256SUMS" && n != "SHA256SUMS.sigstore.json");
    assert_eq!(summed, expected);
    let subjects = layout::subject_files(&h);
    expected.retain(|n| *n != format!("aoc-dataset-{h}.provenance.json"));
    assert_eq!(subjects, expected);
}

#[test]
fn size_caps_bound_each_kit_file() {
    let h = "cd".repeat(32);
    let mib = 1u64 << 20;
    for (name, cap) in [
        ("cosign.pub".to_string(), 64 << 10),
        ("SHA256SUMS".into(), mib),
        ("SHA256SUMS.sigstore.json".into(), mib),
        ("aoc-backfill-runner.dsse.json".into(), mib),
        ("verify-kit.sh".into(), mib),
        ("aoc-backfill-runner.sbom.json".into(), 64 * mib),
        ("aoc-backfill-runner.cdx.json".into(), 64 * mib),
        ("aoc-backfill-runner.tar.gz".into(), 1 << 30),
        (format!("aoc-dataset-{h}.provenance.json"), 16 * mib),
        (format!("aoc-dataset-{h}.manifest.json"), 64 * mib),
        (format!("rehearsal-{h}.json"), mib),
        (format!("aoc-dataset-{h}.tar.gz"), 64 << 30),
    ] {
        assert_eq!(layout::size_cap(&name), cap, "{name}");
    }
}

#[test]
fn a_dataset_tarball_name_carries_exactly_64_lowercase_hex() {
    let h = "ef".repeat(32);
    assert_eq!(
        layout::parse_dataset_tarball(&format!("aoc-dataset-{h}.tar.gz")),
        Some(h.as_str())
    );
    for bad in [
        format!("aoc-dataset-{}.tar.gz", h.to_uppercase()),
        format!("aoc-dataset-{}.tar.gz", &h[1..]),
        format!("aoc-dataset-{h}0.tar.gz"),
        format!("aoc-dataset-{h}.tar.zst"),
        format!("dataset-{h}.tar.gz"),
        format!("aoc-dataset-{}g.tar.gz", &h[1..]),
    ] {
        assert_eq!(layout::parse_dataset_tarball(&bad), None, "{bad}");
    }
}

// ---- a good kit ------------------------------------------------------------------------------

#[test]
fn a_good_kit_verifies_against_the_trusted_key() {
    let kit = Parts::new().write();
    let report = kit.verify(&trusted());
    assert_passes(&report);
    assert_eq!(report.dataset_hash.as_deref(), Some(kit.hash.as_str()));
    assert_eq!(report.key.key_id, Some(signer().key_id()));
    assert!(!report.key.self_contained && !report.key.is_dev);
    assert!(report.skipped.is_empty());
    // Every listed file's digest was checked, and the origin is last.
    let summed = report
        .checks
        .iter()
        .filter(|c| c.check == CheckId::Sha256)
        .count();
    assert_eq!(summed, layout::summed_files(&kit.hash).len());
    assert_eq!(report.checks.last().unwrap().check, CheckId::Origin);
    let summary = report.summary("test");
    assert!(summary[0].contains("verified"), "{summary:?}");
}

#[test]
fn a_full_kit_records_exactly_the_known_check_ids() {
    let kit = Parts::new()
        .with_rehearsal(&rehearsal_report(&dataset().hash))
        .write();
    let opts = VerifyOptions {
        expect_dataset_hash: Some(kit.hash.clone()),
        ..trusted()
    };
    let report = kit.verify(&opts);
    assert_passes(&report);
    let expected: BTreeSet<CheckId> = PASSING_IDS.iter().copied().collect();
    assert_eq!(ids(&report), expected);
}

#[test]
fn the_checks_run_in_chain_of_trust_order() {
    let kit = Parts::new()
        .with_rehearsal(&rehearsal_report(&dataset().hash))
        .write();
    let report = kit.verify(&trusted());
    let position = |check: CheckId| {
        report
            .checks
            .iter()
            .position(|c| c.check == check)
            .unwrap_or_else(|| panic!("{check} not run"))
    };
    let order = [
        CheckId::Signature,
        CheckId::SumsParse,
        CheckId::SumsLayout,
        CheckId::Sha256,
        CheckId::ProvenanceSubjects,
        CheckId::DatasetManifest,
        CheckId::Dataset,
        CheckId::Origin,
    ];
    for pair in order.windows(2) {
        assert!(position(pair[0]) < position(pair[1]), "{pair:?}");
    }
    // The root signature is the very first check.
    assert_eq!(report.checks[0].file, layout::SUMS_BUNDLE);
}

#[test]
fn integrity_only_skips_the_dataset_content_and_says_so() {
    let kit = Parts::new().write();
    let full = kit.verify(&trusted());
    assert!(ids(&full).contains(&CheckId::Dataset));
    let report = kit.verify(&VerifyOptions {
        integrity_only: true,
        ..trusted()
    });
    assert_passes(&report);
    assert_not_run(&report, CheckId::Dataset);
    assert!(ids(&report).contains(&CheckId::DatasetManifest));
    assert_eq!(report.skipped, [SKIPPED_BY_INTEGRITY]);
    let summary = report.summary("t").join("\n");
    assert!(
        summary.contains("NOT CHECKED (--integrity-only)"),
        "{summary}"
    );
}

#[test]
fn the_report_serialises_with_snake_case_classes_and_round_trips() {
    let kit = Parts::new().write();
    let report = kit.verify(&VerifyOptions::default());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["exit_code"], 15);
    let origin = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == CheckId::Origin.as_str())
        .unwrap();
    assert_eq!(origin["class"], "origin");
    assert_eq!(origin["ok"], false);
    let back: VerifyReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

// ---- origin: exit 15 -----------------------------------------------------------------------

#[test]
fn without_a_key_an_intact_kit_proves_no_origin() {
    let kit = Parts::new().write();
    let report = kit.verify(&VerifyOptions::default());
    let first = assert_fails(&report, CheckId::Origin, layout::SUMS_BUNDLE, Class::Origin);
    assert!(first.detail.contains("OWN cosign.pub"), "{}", first.detail);
    assert!(report.intact());
    assert!(report.key.self_contained);
    assert_eq!(report.failures().count(), 1);
    let summary = report.summary("t");
    assert!(summary[0].contains("INTACT"), "{summary:?}");
    assert!(summary[0].contains("ORIGIN IS NOT PROVEN"), "{summary:?}");
}

#[test]
fn the_public_dev_key_proves_no_origin_unless_allowed() {
    let parts = Parts::signed_by(dev_signer());
    let kit = parts.write();
    let dev = trusting(dev_signer());
    let report = kit.verify(&dev);
    let first = assert_fails(&report, CheckId::Origin, layout::SUMS_BUNDLE, Class::Origin);
    assert!(first.detail.contains("PUBLIC DEV KEY"), "{}", first.detail);
    assert!(report.key.is_dev && report.intact());

    let allowed = kit.verify(&VerifyOptions {
        allow_dev_key: true,
        ..dev
    });
    assert_passes(&allowed);
    let summary = allowed.summary("t").join("\n");
    assert!(summary.contains("PUBLIC DEV KEY"), "{summary}");
}

#[test]
fn allowing_the_dev_key_does_not_make_the_kits_own_key_an_origin() {
    let kit = Parts::signed_by(dev_signer()).write();
    let report = kit.verify(&VerifyOptions {
        allow_dev_key: true,
        ..VerifyOptions::default()
    });
    assert_fails(&report, CheckId::Origin, layout::SUMS_BUNDLE, Class::Origin);
    assert!(report.key.self_contained);
}

// ---- signature: exit 11 --------------------------------------------------------------------

#[test]
fn a_kit_signed_by_another_key_is_refused_before_anything_else_is_read() {
    let kit = Parts::signed_by(stranger()).write();
    let report = kit.verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::SUMS_BUNDLE,
        Class::Signature,
    );
    // Nothing after the root signature ran: no listing, no digest.
    assert_eq!(report.checks.len(), 1, "{}", render(&report));
    assert_not_run(&report, CheckId::SumsParse);
    assert_not_run(&report, CheckId::Sha256);
    assert_eq!(report.dataset_hash, None);
}

#[test]
fn a_kit_signed_by_another_key_names_its_own_cosign_pub_when_no_key_is_given() {
    let kit = Parts::signed_by(stranger()).write();
    // The kit's cosign.pub is the trusted signer's, the signature a stranger's.
    std::fs::write(kit.path(layout::PUBLIC_KEY), signer().public_key().to_pem()).unwrap();
    let report = kit.verify(&VerifyOptions::default());
    let first = assert_fails(
        &report,
        CheckId::Signature,
        layout::SUMS_BUNDLE,
        Class::Signature,
    );
    assert!(
        first.detail.contains("kit's own cosign.pub"),
        "{}",
        first.detail
    );
}

#[test]
fn sha256sums_changed_after_signing_fails_the_signature() {
    let kit = Parts::new().write();
    let mut sums = std::fs::read(kit.path(layout::SUMS)).unwrap();
    sums.extend_from_slice(format!("{}  extra\n", "0".repeat(64)).as_bytes());
    std::fs::write(kit.path(layout::SUMS), sums).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::SUMS_BUNDLE,
        Class::Signature,
    );
    assert_not_run(&report, CheckId::SumsParse);
}

#[test]
fn a_missing_or_malformed_root_bundle_is_a_signature_failure() {
    let kit = Parts::new().write();
    std::fs::remove_file(kit.path(layout::SUMS_BUNDLE)).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::SUMS_BUNDLE,
        Class::Signature,
    );

    let kit = Parts::new().write();
    std::fs::write(kit.path(layout::SUMS_BUNDLE), b"{\"not\": \"a bundle\"}").unwrap();
    let report = kit.verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::SUMS_BUNDLE,
        Class::Signature,
    );
}

#[test]
fn a_runner_bundle_over_another_digest_is_a_signature_failure() {
    let mut parts = Parts::new();
    parts.set(
        layout::RUNNER_BUNDLE,
        message_signature_bundle(signer(), &sha256(b"another tarball")).into_bytes(),
    );
    let report = parts.write().verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::RUNNER_BUNDLE,
        Class::Signature,
    );
}

#[test]
fn a_runner_bundle_by_another_key_is_a_signature_failure() {
    let mut parts = Parts::new();
    let digest = sha256(&parts.files[layout::RUNNER_TARBALL]);
    parts.set(
        layout::RUNNER_BUNDLE,
        message_signature_bundle(stranger(), &digest).into_bytes(),
    );
    let report = parts.write().verify(&trusted());
    assert_fails(
        &report,
        CheckId::Signature,
        layout::RUNNER_BUNDLE,
        Class::Signature,
    );
}

#[test]
fn a_provenance_signed_by_another_key_is_a_signature_failure() {
    let mut parts = Parts::new();
    parts.provenance_signer = stranger();
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    assert_fails(&report, CheckId::Signature, &provenance, Class::Signature);
    // Its statement was not trusted, so its subjects were not compared.
    assert_not_run(&report, CheckId::ProvenanceSubjects);
}

#[test]
fn a_provenance_with_another_payload_type_is_a_signature_failure() {
    let mut parts = Parts::new();
    parts.payload_type = "application/json".into();
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(&report, CheckId::Signature, &provenance, Class::Signature);
    assert!(first.detail.contains("payloadType"), "{}", first.detail);
}

#[test]
fn an_unparsable_cosign_pub_without_a_key_is_a_key_failure() {
    let kit = Parts::new().write();
    std::fs::write(kit.path(layout::PUBLIC_KEY), b"-----BEGIN NOTHING-----\n").unwrap();
    let report = kit.verify(&VerifyOptions::default());
    assert_fails(&report, CheckId::Key, layout::PUBLIC_KEY, Class::Signature);
    assert_eq!(report.checks.len(), 1);
}

// ---- checksum: exit 10 ---------------------------------------------------------------------

#[test]
fn a_missing_sha256sums_is_a_checksum_failure() {
    let kit = Parts::new().write();
    std::fs::remove_file(kit.path(layout::SUMS)).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(&report, CheckId::Signature, layout::SUMS, Class::Checksum);
}

#[test]
fn a_file_changed_after_sealing_fails_its_digest_and_is_read_no_further() {
    let kit = Parts::new().write();
    std::fs::write(kit.path(layout::SPDX_FILE), b"{}").unwrap();
    let report = kit.verify(&trusted());
    let first = assert_fails(&report, CheckId::Sha256, layout::SPDX_FILE, Class::Checksum);
    assert!(
        first.detail.contains("SHA256SUMS lists"),
        "{}",
        first.detail
    );
    // The failed file is not read by its SBOM check; the other SBOM still is.
    assert_not_run(&report, CheckId::SbomSpdx);
    assert!(ids(&report).contains(&CheckId::SbomCycloneDx));
    assert_eq!(report.failures().count(), 1, "{}", render(&report));
}

#[test]
fn a_tampered_dataset_tarball_fails_its_digest_and_its_content_is_not_read() {
    let kit = Parts::new().write();
    let name = layout::dataset_tarball(&kit.hash);
    let mut bytes = std::fs::read(kit.path(&name)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(kit.path(&name), bytes).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(&report, CheckId::Sha256, &name, Class::Checksum);
    assert_not_run(&report, CheckId::Dataset);
}

#[test]
fn a_listed_file_missing_from_the_kit_is_a_checksum_failure() {
    let kit = Parts::new().write();
    std::fs::remove_file(kit.path(layout::VERIFY_SCRIPT)).unwrap();
    let report = kit.verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::SumsComplete,
        layout::VERIFY_SCRIPT,
        Class::Checksum,
    );
    assert!(first.detail.contains("missing"), "{}", first.detail);
}

#[test]
fn a_file_in_the_kit_but_not_listed_is_a_checksum_failure() {
    let kit = Parts::new().write();
    std::fs::write(kit.path("planted.sh"), b"rm -rf /\n").unwrap();
    let report = kit.verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::SumsComplete,
        "planted.sh",
        Class::Checksum,
    );
    assert!(first.detail.contains("not listed"), "{}", first.detail);
}

#[test]
fn a_second_dataset_dropped_into_the_kit_is_only_an_unlisted_file() {
    let kit = Parts::new().write();
    let other = other_dataset();
    let name = layout::dataset_tarball(&other.hash);
    std::fs::write(kit.path(&name), &other.tarball).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(&report, CheckId::SumsComplete, &name, Class::Checksum);
    // The dataset is the one the signed listing names.
    assert_eq!(report.dataset_hash.as_deref(), Some(kit.hash.as_str()));
}

#[test]
fn an_unparsable_signed_sha256sums_is_a_checksum_failure() {
    let mut parts = Parts::new();
    // Upper-case hex: the strict parser refuses it, after the signature passed.
    parts.sums = Some(format!("{}  verify-kit.sh\n", "AB".repeat(32)).into_bytes());
    let report = parts.write().verify(&trusted());
    assert_fails(&report, CheckId::SumsParse, layout::SUMS, Class::Checksum);
    assert!(report.checks[0].ok, "the signature passed first");
}

#[test]
fn a_signed_listing_without_exactly_one_dataset_is_a_layout_failure() {
    let mut parts = Parts::new();
    let files = parts.seal();
    let without: String = files
        .iter()
        .filter(|(n, _)| {
            layout::parse_dataset_tarball(n).is_none()
                && *n != layout::SUMS
                && *n != layout::SUMS_BUNDLE
        })
        .map(|(n, b)| format!("{}  {n}\n", sha256(b)))
        .collect();
    parts.sums = Some(without.into_bytes());
    let report = parts.write().verify(&trusted());
    let failure = report
        .checks
        .iter()
        .find(|c| c.check == CheckId::Layout)
        .unwrap_or_else(|| panic!("{}", render(&report)));
    assert_eq!(
        (failure.file.as_str(), failure.class),
        (layout::SUMS, Class::Checksum)
    );
    assert!(failure.detail.contains("lists 0"), "{}", failure.detail);
    assert_eq!(report.exit_code, 10);
    assert_not_run(&report, CheckId::Sha256);
}

#[test]
fn a_signed_listing_that_omits_a_kit_file_is_a_layout_failure() {
    let mut parts = Parts::new();
    let files = parts.seal();
    let without: String = files
        .iter()
        .filter(|(n, _)| {
            *n != layout::VERIFY_SCRIPT && *n != layout::SUMS && *n != layout::SUMS_BUNDLE
        })
        .map(|(n, b)| format!("{}  {n}\n", sha256(b)))
        .collect();
    parts.sums = Some(without.into_bytes());
    let report = parts.write().verify(&trusted());
    let layout_check = report
        .checks
        .iter()
        .find(|c| c.check == CheckId::SumsLayout)
        .unwrap();
    assert!(!layout_check.ok);
    assert!(
        layout_check.detail.contains("a kit has"),
        "{}",
        layout_check.detail
    );
    assert_eq!(report.exit_code, 10);
    assert_not_run(&report, CheckId::Sha256);
}

#[test]
fn a_signed_listing_with_a_file_a_kit_does_not_have_is_a_layout_failure() {
    let mut parts = Parts::new();
    parts.set("extra.txt", b"not a kit file\n".to_vec());
    let report = parts.write().verify(&trusted());
    assert_fails(&report, CheckId::SumsLayout, layout::SUMS, Class::Checksum);
}

// ---- provenance and SBOMs: exit 12 ---------------------------------------------------------

fn subjects_of(parts: &Parts) -> Vec<Subject> {
    parts
        .files
        .iter()
        .map(|(name, bytes)| Subject {
            name: name.clone(),
            sha256: sha256(bytes),
        })
        .collect()
}

#[test]
fn a_provenance_subject_with_another_digest_is_a_provenance_failure() {
    let mut parts = Parts::new();
    let mut subjects = subjects_of(&parts);
    let script = subjects
        .iter_mut()
        .find(|s| s.name == layout::VERIFY_SCRIPT)
        .unwrap();
    script.sha256 = sha256(b"another script");
    parts.subjects = Some(subjects);
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("verify-kit.sh: subject sha256"),
        "{}",
        first.detail
    );
}

#[test]
fn a_provenance_missing_a_subject_or_naming_a_stranger_is_a_provenance_failure() {
    let mut parts = Parts::new();
    let mut subjects = subjects_of(&parts);
    subjects.retain(|s| s.name != layout::CDX_FILE);
    parts.subjects = Some(subjects);
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("is not a subject"),
        "{}",
        first.detail
    );

    let mut parts = Parts::new();
    let mut subjects = subjects_of(&parts);
    subjects.push(Subject {
        name: "elsewhere.tar.gz".into(),
        sha256: Sha256Digest([7; 32]),
    });
    parts.subjects = Some(subjects);
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("is not a kit artefact"),
        "{}",
        first.detail
    );
}

#[test]
fn a_provenance_of_another_dataset_is_a_provenance_failure() {
    let mut parts = Parts::new();
    parts.predicate["buildDefinition"]["internalParameters"]["datasetHash"] =
        other_dataset().hash.clone().into();
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("records dataset hash"),
        "{}",
        first.detail
    );
}

#[test]
fn a_provenance_of_another_predicate_or_build_type_is_a_provenance_failure() {
    let mut parts = Parts::new();
    parts.predicate_type = "https://example.com/other-predicate".into();
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(first.detail.contains("predicateType"), "{}", first.detail);

    let mut parts = Parts::new();
    parts.predicate["buildDefinition"]["buildType"] = "https://example.com/other-build".into();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(first.detail.contains("buildType"), "{}", first.detail);
}

#[test]
fn an_spdx_sbom_of_another_binary_is_a_provenance_failure() {
    let mut parts = Parts::new();
    let tarball = sha256(&parts.files[layout::RUNNER_TARBALL]);
    parts.set(
        layout::SPDX_FILE,
        spdx(&tarball, &sha256(b"another stella")),
    );
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::SbomSpdx,
        layout::SPDX_FILE,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("describes binary"),
        "{}",
        first.detail
    );
    // The runner binary itself was found and hashed.
    assert!(report
        .checks
        .iter()
        .any(|c| c.check == CheckId::RunnerBinary && c.ok));
}

#[test]
fn a_cyclonedx_sbom_of_another_tarball_is_a_provenance_failure() {
    let mut parts = Parts::new();
    parts.set(
        layout::CDX_FILE,
        cdx(&sha256(b"another tarball"), &sha256(STELLA)),
    );
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::SbomCycloneDx,
        layout::CDX_FILE,
        Class::Provenance,
    );
    assert!(
        first.detail.contains("describes tarball"),
        "{}",
        first.detail
    );
}

#[test]
fn an_sbom_that_is_not_json_or_lacks_the_packages_is_a_provenance_failure() {
    let mut parts = Parts::new();
    parts.set(layout::SPDX_FILE, b"not json".to_vec());
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::SbomSpdx,
        layout::SPDX_FILE,
        Class::Provenance,
    );
    assert!(first.detail.contains("not JSON"), "{}", first.detail);

    let mut parts = Parts::new();
    parts.set(
        layout::CDX_FILE,
        br#"{"metadata": {}, "components": []}"#.to_vec(),
    );
    let report = parts.write().verify(&trusted());
    assert_fails(
        &report,
        CheckId::SbomCycloneDx,
        layout::CDX_FILE,
        Class::Provenance,
    );
}

#[test]
fn a_runner_tarball_without_stella_is_a_provenance_failure() {
    let mut parts = Parts::new();
    parts.runner(&[("aoc-backfill-runner/README.md", b"no binary here\n")]);
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::RunnerBinary,
        layout::RUNNER_TARBALL,
        Class::Provenance,
    );
    assert!(
        first.detail.contains(layout::BINARY_MEMBER),
        "{}",
        first.detail
    );
    // Without a binary the SBOMs have nothing to be compared with.
    assert_not_run(&report, CheckId::SbomSpdx);
    assert_not_run(&report, CheckId::SbomCycloneDx);
}

#[test]
fn a_rehearsal_report_of_another_dataset_or_a_failed_one_is_a_provenance_failure() {
    let name = layout::rehearsal_report(&dataset().hash);
    let report = Parts::new()
        .with_rehearsal(&rehearsal_report(&other_dataset().hash))
        .write()
        .verify(&trusted());
    let first = assert_fails(&report, CheckId::RehearsalReport, &name, Class::Provenance);
    assert!(
        first.detail.contains("rehearsed dataset"),
        "{}",
        first.detail
    );

    let mut failed = rehearsal_report(&dataset().hash);
    failed.ok = false;
    let report = Parts::new()
        .with_rehearsal(&failed)
        .write()
        .verify(&trusted());
    let first = assert_fails(&report, CheckId::RehearsalReport, &name, Class::Provenance);
    assert!(
        first.detail.contains("FAILED rehearsal"),
        "{}",
        first.detail
    );

    let mut newer = rehearsal_report(&dataset().hash);
    newer.schema_version = rehearsal::SCHEMA_VERSION + 1;
    let report = Parts::new()
        .with_rehearsal(&newer)
        .write()
        .verify(&trusted());
    assert_fails(&report, CheckId::RehearsalReport, &name, Class::Provenance);
}

// ---- dataset: exit 13 ----------------------------------------------------------------------

#[test]
fn a_kit_of_another_dataset_than_the_pinned_one_is_refused_before_its_files_are_read() {
    let kit = Parts::new().write();
    let pin = other_dataset().hash.clone();
    let report = kit.verify(&VerifyOptions {
        expect_dataset_hash: Some(pin.clone()),
        ..trusted()
    });
    let first = assert_fails(
        &report,
        CheckId::DatasetPinned,
        &layout::dataset_tarball(&kit.hash),
        Class::Dataset,
    );
    assert!(first.detail.contains(&pin), "{}", first.detail);
    assert_not_run(&report, CheckId::Sha256);
    assert_not_run(&report, CheckId::Origin);
}

#[test]
fn a_kit_of_the_pinned_dataset_passes_the_pin() {
    let kit = Parts::new().write();
    let report = kit.verify(&VerifyOptions {
        expect_dataset_hash: Some(kit.hash.clone()),
        ..trusted()
    });
    assert_passes(&report);
    assert!(report
        .checks
        .iter()
        .any(|c| c.check == CheckId::DatasetPinned && c.ok));
}

#[test]
fn a_sidecar_manifest_naming_another_dataset_is_a_dataset_failure() {
    let mut parts = Parts::new();
    let sidecar = layout::dataset_manifest(&parts.hash);
    parts.set(sidecar.clone(), other_dataset().manifest.clone());
    let report = parts.write().verify(&trusted());
    let first = assert_fails(&report, CheckId::DatasetManifest, &sidecar, Class::Dataset);
    assert!(first.detail.contains("names dataset"), "{}", first.detail);
    // Without a proven manifest the records are not read.
    assert_not_run(&report, CheckId::Dataset);
}

#[test]
fn a_sidecar_manifest_that_is_not_a_manifest_is_a_dataset_failure() {
    let mut parts = Parts::new();
    let sidecar = layout::dataset_manifest(&parts.hash);
    parts.set(sidecar.clone(), br#"{"kind": "something else"}"#.to_vec());
    let report = parts.write().verify(&trusted());
    assert_fails(&report, CheckId::DatasetManifest, &sidecar, Class::Dataset);
}

#[test]
fn another_dataset_under_this_datasets_name_fails_the_content_check() {
    // The kit of the larger dataset carries the smaller one under its name: within the bounds
    // its manifest sets, so only the recomputed content gives it away.
    let big = other_dataset();
    assert!(dataset().tarball.len() < big.tarball.len());
    let mut parts = Parts::of(big, signer());
    let name = layout::dataset_tarball(&big.hash);
    parts.set(name.clone(), dataset().tarball.clone());
    let kit = parts.write();
    let report = kit.verify(&trusted());
    assert_fails(&report, CheckId::Dataset, &name, Class::Dataset);
    // Every signature and digest held: only the content gave it away.
    let before: Vec<&CheckResult> = report
        .checks
        .iter()
        .take_while(|c| c.check != CheckId::Dataset)
        .collect();
    assert!(before.iter().all(|c| c.ok), "{}", render(&report));
    // --integrity-only does not look, and says what it did not check.
    let fast = kit.verify(&VerifyOptions {
        integrity_only: true,
        ..trusted()
    });
    assert_passes(&fast);
    assert_eq!(fast.skipped, [SKIPPED_BY_INTEGRITY]);
}

#[test]
fn a_dataset_larger_than_its_proven_manifest_allows_is_refused_as_hostile() {
    let mut parts = Parts::new();
    let name = layout::dataset_tarball(&parts.hash);
    parts.set(name.clone(), other_dataset().tarball.clone());
    let report = parts.write().verify(&trusted());
    let first = assert_fails(&report, CheckId::Dataset, &name, Class::Hostile);
    assert!(first.detail.contains("limit"), "{}", first.detail);
}

// ---- unreadable or hostile input: exit 14 --------------------------------------------------

#[test]
fn a_path_that_is_not_a_directory_is_not_a_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kit.tar");
    std::fs::write(&file, b"a file").unwrap();
    for path in [file, tmp.path().join("missing")] {
        let report = verify_kit(&path, &trusted());
        let first = assert_fails(
            &report,
            CheckId::Kit,
            &path.display().to_string(),
            Class::Hostile,
        );
        assert!(first.detail.contains("not a directory"), "{}", first.detail);
        assert_eq!(report.checks.len(), 1);
    }
}

#[test]
fn a_listed_file_replaced_by_a_link_is_refused_unread() {
    let kit = Parts::new().write();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), b"#!/bin/sh\necho verify\n").unwrap();
    std::fs::remove_file(kit.path(layout::VERIFY_SCRIPT)).unwrap();
    std::os::unix::fs::symlink(outside.path(), kit.path(layout::VERIFY_SCRIPT)).unwrap();
    let report = kit.verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::Layout,
        layout::VERIFY_SCRIPT,
        Class::Hostile,
    );
    assert!(
        first.detail.contains("not a regular file"),
        "{}",
        first.detail
    );
    // The link is never followed by the digest step.
    assert!(!report
        .checks
        .iter()
        .any(|c| c.check == CheckId::Sha256 && c.file == layout::VERIFY_SCRIPT));
}

#[test]
fn a_directory_inside_the_kit_is_refused() {
    let kit = Parts::new().write();
    std::fs::create_dir(kit.path("nested")).unwrap();
    let report = kit.verify(&trusted());
    assert_fails(&report, CheckId::Layout, "nested", Class::Hostile);
}

#[test]
fn a_fifo_as_a_listed_file_is_refused_without_blocking() {
    let kit = Parts::new().write();
    let path = kit.path(layout::CDX_FILE);
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let report = kit.verify(&trusted());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_fails(&report, CheckId::Layout, layout::CDX_FILE, Class::Hostile);
    assert_not_run(&report, CheckId::SbomCycloneDx);
}

#[test]
fn a_sha256sums_over_its_size_bound_is_refused_unread() {
    let kit = Parts::new().write();
    // Sparse: 2 GiB that cost nothing on disk.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(kit.path(layout::SUMS))
        .unwrap();
    file.set_len(2 << 30).unwrap();
    let report = kit.verify(&trusted());
    let first = assert_fails(&report, CheckId::Signature, layout::SUMS, Class::Hostile);
    assert!(
        first.detail.contains("more than this kit file may be"),
        "{}",
        first.detail
    );
}

#[test]
fn a_listed_file_over_its_size_bound_is_refused_as_hostile() {
    let mut parts = Parts::new();
    // verify-kit.sh may be 1 MiB; this one is signed and listed, but larger.
    parts.set(layout::VERIFY_SCRIPT, vec![b'#'; (1 << 20) + 1]);
    let report = parts.write().verify(&trusted());
    assert_fails(
        &report,
        CheckId::Sha256,
        layout::VERIFY_SCRIPT,
        Class::Hostile,
    );
}

#[test]
fn a_dataset_tarball_that_is_not_an_archive_is_hostile() {
    let mut parts = Parts::new();
    let name = layout::dataset_tarball(&parts.hash);
    parts.set(name.clone(), b"\x1f\x8b not really gzip".to_vec());
    let report = parts.write().verify(&trusted());
    assert_fails(&report, CheckId::Dataset, &name, Class::Hostile);
}

#[test]
fn a_runner_tarball_that_is_not_an_archive_is_hostile() {
    let mut parts = Parts::new();
    let garbage = b"not a tarball".to_vec();
    let digest = sha256(&garbage);
    parts.set(layout::RUNNER_TARBALL, garbage);
    parts.set(
        layout::RUNNER_BUNDLE,
        message_signature_bundle(signer(), &digest).into_bytes(),
    );
    let report = parts.write().verify(&trusted());
    assert_fails(
        &report,
        CheckId::RunnerBinary,
        layout::RUNNER_TARBALL,
        Class::Hostile,
    );
}

#[test]
fn names_from_the_kit_reach_the_report_escaped() {
    let kit = Parts::new().write();
    let name = "evil\u{1b}[2J\rname\u{202e}";
    std::fs::write(kit.path(name), b"x").unwrap();
    let report = kit.verify(&trusted());
    let first = report.first_failure().unwrap();
    assert_eq!(first.check, CheckId::SumsComplete);
    assert!(first.file.starts_with("evil"), "{}", first.file);
    for text in [&first.file, &first.detail] {
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{text:?}"
        );
    }
    let line = crate::render_check(first);
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains('\u{1b}') && !json.contains("\\u001b"),
        "{json}"
    );
}

// ---- the command: usage (2) and the exit-code policy ---------------------------------------

#[test]
fn every_class_has_its_documented_exit_code() {
    for (class, code) in [
        (Class::Checksum, 10),
        (Class::Signature, 11),
        (Class::Provenance, 12),
        (Class::Dataset, 13),
        (Class::Hostile, 14),
        (Class::Origin, 15),
    ] {
        assert_eq!(class.exit_code(), code, "{class:?}");
        assert!(EXIT_CODES.contains(&format!("\n  {code}  ")), "{code}");
    }
    assert_eq!(EXIT_USAGE, 2);
    let help = cli::after_help();
    for code in ["  2 ", "  3 ", "  10 ", "  15 ", "  130/143 "] {
        assert!(help.contains(code), "{code:?} missing from:\n{help}");
    }
}

#[test]
fn a_malformed_dataset_pin_is_a_usage_error_and_the_placeholder_is_no_pin() {
    let args = |pin: &str| cli::VerifyArgs {
        expect_dataset_hash: Some(pin.into()),
        ..cli::VerifyArgs::default()
    };
    let h = dataset().hash.clone();
    assert_eq!(
        args(&h)
            .options(Path::new("kit"))
            .unwrap()
            .expect_dataset_hash,
        Some(h.clone())
    );
    assert_eq!(
        args(cli::DATASET_PLACEHOLDER)
            .options(Path::new("kit"))
            .unwrap()
            .expect_dataset_hash,
        None
    );
    for bad in [h.to_uppercase(), h[1..].to_string(), format!("sha256:{h}")] {
        let err = args(&bad).options(Path::new("kit")).unwrap_err();
        assert!(err.contains("64-digit lowercase hex"), "{bad}: {err}");
    }
}

#[test]
fn an_unreadable_or_malformed_key_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.pub");
    let not_pem = tmp.path().join("not.pub");
    std::fs::write(&not_pem, b"hello").unwrap();
    for path in [missing, not_pem, tmp.path().to_path_buf()] {
        let args = cli::VerifyArgs {
            key: Some(path.clone()),
            ..cli::VerifyArgs::default()
        };
        let err = args.options(Path::new("kit")).unwrap_err();
        assert!(err.contains("--key"), "{}: {err}", path.display());
    }
    let good = tmp.path().join("good.pub");
    std::fs::write(&good, signer().public_key().to_pem()).unwrap();
    let key = TrustedKey::load(&good).unwrap();
    assert_eq!(key.key.key_id(), signer().key_id());
}

#[test]
fn the_command_returns_the_reports_exit_code() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("trusted.pub");
    std::fs::write(&key, signer().public_key().to_pem()).unwrap();
    let kit = Parts::new().write();
    let args = cli::VerifyArgs {
        key: Some(key.clone()),
        integrity_only: true,
        ..cli::VerifyArgs::default()
    };
    assert_eq!(cli::run(kit.dir(), &args, "test"), 0);
    let stranger_kit = Parts::signed_by(stranger()).write();
    assert_eq!(cli::run(stranger_kit.dir(), &args, "test"), 11);
    let no_key = cli::VerifyArgs {
        integrity_only: true,
        ..cli::VerifyArgs::default()
    };
    assert_eq!(cli::run(kit.dir(), &no_key, "test"), 15);
    // An index pin on a kit (no offline-kit.json) is a usage error.
    let pinned = cli::VerifyArgs {
        expect_min_index_sequence: Some(1),
        ..args
    };
    assert_eq!(cli::run(kit.dir(), &pinned, "test"), EXIT_USAGE);
}

#[test]
fn the_room_for_private_copies_is_the_size_of_the_two_tarballs() {
    let kit = Parts::new().write();
    let size = |name: &str| std::fs::metadata(kit.path(name)).unwrap().len();
    assert_eq!(
        cli::copy_bytes_needed(kit.dir()),
        size(layout::RUNNER_TARBALL) + size(&layout::dataset_tarball(&kit.hash))
    );
    assert_eq!(cli::copy_bytes_needed(&kit.path("missing")), 0);
}

#[test]
fn the_observer_sees_every_check_as_it_is_recorded() {
    let kit = Parts::new().write();
    let mut seen = Vec::new();
    let report = crate::verify_kit_with(kit.dir(), &trusted(), &mut |c| seen.push(c.clone()));
    assert_eq!(seen, report.checks);
}

#[test]
fn a_failed_kit_summary_names_the_first_failure_and_the_exit_code() {
    let kit = Parts::signed_by(stranger()).write();
    let report = kit.verify(&trusted());
    let summary = report.summary("tool");
    assert!(
        summary[0].starts_with("tool: ")
            && summary[0].contains("FAILED (1 of 1 checks; exit 11): first: signature"),
        "{summary:?}"
    );
}

#[test]
fn a_carried_rehearsal_report_the_provenance_does_not_name_is_a_provenance_failure() {
    let mut parts = Parts::new().with_rehearsal(&rehearsal_report(&dataset().hash));
    let report_name = layout::rehearsal_report(&parts.hash);
    let mut subjects = subjects_of(&parts);
    subjects.retain(|s| s.name != report_name);
    parts.subjects = Some(subjects);
    let provenance = parts.provenance_name();
    let report = parts.write().verify(&trusted());
    let first = assert_fails(
        &report,
        CheckId::ProvenanceSubjects,
        &provenance,
        Class::Provenance,
    );
    assert!(first.detail.contains(&report_name), "{}", first.detail);
}

#[test]
fn the_dataset_is_read_within_bounds_taken_from_its_proven_manifest() {
    let d = dataset();
    let manifest = aoc_dataset::Manifest::from_slice(&d.manifest).unwrap();
    let limits = crate::dataset_limits(&manifest, d.manifest.len() as u64);
    let largest = manifest.files.iter().map(|f| f.bytes).max().unwrap();
    assert_eq!(limits.max_entry_bytes, largest.max(d.manifest.len() as u64));
    assert_eq!(
        limits.max_entries,
        2 * (manifest.files.len() as u64 + 1) + 8
    );
    assert!(limits.max_total_bytes >= manifest.totals.bytes + d.manifest.len() as u64);
    // Far below aoc-dataset's generic bounds (gigabytes) for a dataset of a few kilobytes.
    assert!(limits.max_total_bytes < 4 << 20, "{limits:?}");
}

#[test]
fn a_key_given_through_a_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real.pub");
    std::fs::write(&real, signer().public_key().to_pem()).unwrap();
    let link = tmp.path().join("link.pub");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = TrustedKey::load(&link).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    assert!(TrustedKey::load(&real).is_ok());
}

/// The kit and key directory a child process verifies (see [`environment_child_entry_point`]).
const CHILD_KIT: &str = "AOC_KIT_TEST_CHILD_KIT";
const CHILD_KEY: &str = "AOC_KIT_TEST_CHILD_KEY";

/// Not a test of its own: `a_tmpdir_that_cannot_take_the_copies_is_exit_3` runs it in a child
/// process whose TMPDIR is unusable (TMPDIR is process-wide, so not in this one), and reads the
/// exit code it prints.
#[test]
#[ignore = "helper entry point: a_tmpdir_that_cannot_take_the_copies_is_exit_3 runs it"]
fn environment_child_entry_point() {
    let (Some(kit), Some(key)) = (std::env::var_os(CHILD_KIT), std::env::var_os(CHILD_KEY)) else {
        return;
    };
    let args = cli::VerifyArgs {
        key: Some(key.into()),
        ..cli::VerifyArgs::default()
    };
    println!("AOC_EXIT {}", cli::run(Path::new(&kit), &args, "test"));
}

#[test]
fn a_tmpdir_that_cannot_take_the_copies_is_exit_3() {
    let kit = Parts::new().write();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("trusted.pub");
    std::fs::write(&key, signer().public_key().to_pem()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::environment_child_entry_point",
            "--ignored",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_KIT, kit.dir())
        .env(CHILD_KEY, &key)
        .env("TMPDIR", keys.path().join("missing"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("AOC_EXIT {}", aoc_term::EXIT_ENVIRONMENT)),
        "{stdout}\n{stderr}"
    );
    assert_eq!(aoc_term::EXIT_ENVIRONMENT, 3);
    assert!(stderr.contains("TMPDIR"), "{stderr}");
    // The kit was not judged: no check ran.
    assert!(
        !stderr.contains("[pass]") && !stderr.contains("[FAIL]"),
        "{stderr}"
    );
}
