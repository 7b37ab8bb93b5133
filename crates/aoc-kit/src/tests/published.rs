//! The published directory's verifier on small published directories: the signed index, its
//! sequence pin, each kit's listed files and the identity the index claims for each kit.

use std::path::Path;

use aoc_sigstore::{message_signature_bundle, Signer};

use super::{render, sha256, signer, stranger, trusting, Parts, BUILT_AT, COMMIT};
use crate::layout;
use crate::published::{
    is_published_dir, verify_published_with, OfflineKitManifest, PublishedFile, PublishedKit,
    PublishedReport, MANIFEST, MANIFEST_BUNDLE, PUBLIC_KEY,
};
use crate::report::{CheckId, Class};
use crate::verify::VerifyOptions;

/// Writes `kits` under `prefix/<version>/` and an index of them with `sequence`, signed by
/// `signer`; `entry` may change each index entry before it is signed.
fn publish(
    prefix: &Path,
    kits: &[(&str, &Parts)],
    sequence: u64,
    signer: &Signer,
    entry: impl Fn(&mut PublishedKit),
) {
    let mut index = OfflineKitManifest::new(&signer.key_id());
    index.sequence = sequence;
    for (version, parts) in kits {
        let dir = prefix.join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let sealed = parts.seal();
        let mut files = Vec::new();
        for (name, bytes) in &sealed {
            std::fs::write(dir.join(name), bytes).unwrap();
            files.push(PublishedFile {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256(bytes).to_string(),
            });
        }
        let mut kit = PublishedKit {
            version: version.to_string(),
            commit: COMMIT.into(),
            dataset_hash: parts.hash.clone(),
            key_id: signer.key_id(),
            built_at: BUILT_AT.into(),
            sha256sums_sha256: sha256(&sealed[layout::SUMS]).to_string(),
            files,
        };
        entry(&mut kit);
        index.upsert(kit);
    }
    let bytes = index.render();
    std::fs::write(prefix.join(MANIFEST), &bytes).unwrap();
    std::fs::write(
        prefix.join(MANIFEST_BUNDLE),
        message_signature_bundle(signer, &sha256(&bytes)),
    )
    .unwrap();
    std::fs::write(prefix.join(PUBLIC_KEY), signer.public_key().to_pem()).unwrap();
}

fn verify(prefix: &Path, opts: &VerifyOptions) -> PublishedReport {
    verify_published_with(prefix, opts, &mut |_, _| {})
}

fn describe(report: &PublishedReport) -> String {
    let mut lines: Vec<String> = report.checks.iter().map(crate::render_check).collect();
    for kit in &report.kits {
        lines.extend(kit.checks.iter().map(crate::render_check));
        lines.push(render(&kit.kit));
    }
    lines.join("\n")
}

/// The first failure is `check` (in the index or kit `scope`) of `class`, and the exit code
/// is the class's.
fn assert_first_failure(
    report: &PublishedReport,
    scope: Option<&str>,
    check: CheckId,
    class: Class,
) {
    let (at, first) = report
        .first_failure()
        .unwrap_or_else(|| panic!("no failure:\n{}", describe(report)));
    assert_eq!(
        (at, first.check, first.class),
        (scope, check, class),
        "{}",
        describe(report)
    );
    assert_eq!(report.exit_code, class.exit_code(), "{}", describe(report));
}

#[test]
fn a_published_directory_of_two_kits_verifies() {
    let prefix = tempfile::tempdir().unwrap();
    let parts = Parts::new();
    publish(
        prefix.path(),
        &[("0.1.0-aa", &parts), ("0.2.0-bb", &parts)],
        3,
        signer(),
        |_| {},
    );
    assert!(is_published_dir(prefix.path()));
    assert!(!is_published_dir(&prefix.path().join("0.1.0-aa")));
    let report = verify(prefix.path(), &trusting(signer()));
    assert!(report.passed(), "{}", describe(&report));
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.sequence, Some(3), "the number to pin next time");
    assert_eq!(report.kits.len(), 2);
    for kit in &report.kits {
        assert!(kit.kit.passed(), "{}", render(&kit.kit));
        assert!(kit
            .checks
            .iter()
            .any(|c| c.check == CheckId::ManifestKit && c.ok));
        assert!(kit
            .checks
            .iter()
            .any(|c| c.check == CheckId::ManifestFiles && c.ok));
    }
    // The command on a published directory.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("trusted.pub");
    std::fs::write(&key, signer().public_key().to_pem()).unwrap();
    let args = crate::cli::VerifyArgs {
        key: Some(key),
        expect_min_index_sequence: Some(3),
        integrity_only: true,
        ..crate::cli::VerifyArgs::default()
    };
    assert_eq!(crate::cli::run(prefix.path(), &args, "test"), 0);
}

#[test]
fn an_index_older_than_the_pinned_sequence_is_refused() {
    let prefix = tempfile::tempdir().unwrap();
    publish(
        prefix.path(),
        &[("1.0.0", &Parts::new())],
        4,
        signer(),
        |_| {},
    );
    let at_pin = verify(
        prefix.path(),
        &VerifyOptions {
            min_index_sequence: Some(4),
            ..trusting(signer())
        },
    );
    assert!(at_pin.passed(), "{}", describe(&at_pin));
    assert!(at_pin
        .checks
        .iter()
        .any(|c| c.check == CheckId::ManifestSequence && c.ok));
    let report = verify(
        prefix.path(),
        &VerifyOptions {
            min_index_sequence: Some(5),
            ..trusting(signer())
        },
    );
    assert_first_failure(&report, None, CheckId::ManifestSequence, Class::Signature);
    assert!(
        report.kits.is_empty(),
        "no kit is verified under a rolled-back index"
    );
}

#[test]
fn an_index_signed_by_another_key_is_refused() {
    let prefix = tempfile::tempdir().unwrap();
    publish(
        prefix.path(),
        &[("1.0.0", &Parts::new())],
        1,
        stranger(),
        |_| {},
    );
    let report = verify(prefix.path(), &trusting(signer()));
    assert_first_failure(&report, None, CheckId::Signature, Class::Signature);
    assert!(report.kits.is_empty());
}

#[test]
fn an_index_entry_whose_commit_the_provenance_does_not_sign_is_refused() {
    let prefix = tempfile::tempdir().unwrap();
    publish(
        prefix.path(),
        &[("1.0.0", &Parts::new())],
        1,
        signer(),
        |kit| {
            kit.commit = "f".repeat(40);
        },
    );
    let report = verify(prefix.path(), &trusting(signer()));
    assert_first_failure(
        &report,
        Some("1.0.0"),
        CheckId::ManifestKit,
        Class::Provenance,
    );
    // The kit itself is intact: only the index lied about it.
    assert!(report.kits[0].kit.passed(), "{}", describe(&report));
}

#[test]
fn a_file_added_to_a_published_kit_is_refused() {
    let prefix = tempfile::tempdir().unwrap();
    publish(
        prefix.path(),
        &[("1.0.0", &Parts::new())],
        1,
        signer(),
        |_| {},
    );
    std::fs::write(prefix.path().join("1.0.0/planted.sh"), b"echo hi\n").unwrap();
    let report = verify(prefix.path(), &trusting(signer()));
    assert_first_failure(
        &report,
        Some("1.0.0"),
        CheckId::ManifestFiles,
        Class::Checksum,
    );
}

/// Thousands of stray entries, in the prefix and in a kit's directory: the first
/// `UNLISTED_SHOWN` are named, the rest counted, so the report (memory and lines printed) stays
/// small, and the first failure, hence the exit code, is the same.
#[test]
fn thousands_of_unlisted_entries_are_counted_not_listed() {
    use crate::verify::UNLISTED_SHOWN;
    const STRAY: u64 = 5_000;
    let prefix = tempfile::tempdir().unwrap();
    publish(
        prefix.path(),
        &[("1.0.0", &Parts::new())],
        1,
        signer(),
        |_| {},
    );
    for i in 0..STRAY {
        std::fs::write(prefix.path().join(format!("stray-{i}")), b"").unwrap();
        std::fs::write(prefix.path().join(format!("1.0.0/stray-{i}")), b"").unwrap();
    }
    let report = verify(prefix.path(), &trusting(signer()));
    assert_first_failure(&report, None, CheckId::PublishedComplete, Class::Checksum);
    let rest = format!("{} more entries", STRAY - UNLISTED_SHOWN);

    // The prefix: one check per named entry and one for the rest.
    let unlisted: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.check == CheckId::PublishedComplete && !c.ok)
        .collect();
    assert_eq!(
        unlisted.len() as u64,
        UNLISTED_SHOWN + 1,
        "{}",
        describe(&report)
    );
    assert!(unlisted[..UNLISTED_SHOWN as usize]
        .iter()
        .all(|c| c.file.starts_with("stray-")));
    assert!(
        unlisted.last().unwrap().detail.contains(&rest),
        "{}",
        unlisted.last().unwrap().detail
    );

    // The kit's directory: the listing check names UNLISTED_SHOWN entries, then counts.
    let [kit] = report.kits.as_slice() else {
        panic!("{}", describe(&report))
    };
    let files = kit
        .checks
        .iter()
        .find(|c| c.check == CheckId::ManifestFiles)
        .unwrap_or_else(|| panic!("{}", describe(&report)));
    assert!(!files.ok);
    assert_eq!(
        files.detail.matches(" is not listed").count() as u64,
        UNLISTED_SHOWN,
        "{}",
        files.detail
    );
    assert!(files.detail.contains(&rest), "{}", files.detail);

    // Everything the command would print: a few dozen lines, not thousands.
    let printed = describe(&report);
    assert!(
        printed.len() < 64 * 1024 && printed.lines().count() < 200,
        "{} bytes, {} lines",
        printed.len(),
        printed.lines().count()
    );
}
