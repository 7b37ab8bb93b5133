//! `aoc-verify` against tampered and hostile kits (docs/ARCHITECTURE.md §8): every kit file flipped,
//! truncated, deleted or replaced by another kit's, an unlisted file added; kits whose tarballs
//! hold hostile entries but whose checksums and signatures PASS (re-packed, re-listed and re-signed
//! with the dev key), so the archive defences are what is tested; SHA256SUMS with tricky lines
//! (validly signed); bundles for another artefact or by another key. Each case must fail with the
//! right exit class, name the file in the report (`--json` is this report, serialised), and create
//! nothing outside the verifier's own temporary directory.
//!
//! Classes decided here (and documented in verify.rs' table):
//! - A file replaced, flipped or truncated: 10, except SHA256SUMS, its bundle and the default key,
//!   which break the root signature first: 11.
//! - A deleted file: 10 ("listed but missing"), except SHA256SUMS.sigstore.json and the default
//!   key cosign.pub (11: nothing to check the root signature with).
//! - SHA256SUMS with a CR, `*`, odd spaces, `/` or `..`, validly signed: 10 (it is the checksum
//!   file that is malformed; the signature over its bytes is fine).
//! - A bundle over another artefact or by another key: 11.
//! - A tarball refused by the defensive reader: 14.
//!
//! Reuses the kit that `release::tests` releases once per test binary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aoc_digest::Sha256Digest;
use aoc_kit::CheckId;
use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, parse_statement, select_signing_key, statement_json,
    verify_dsse_bundle, Signer, Subject, IN_TOTO_PAYLOAD_TYPE,
};

use crate::kit;
use crate::release::tests::{
    copy_kit, describe, dev_env, kits, options, reseal, root, shell, EPOCH,
};
use crate::release::{release, Release};
use crate::verify::{verify_kit, Class, VerifyOptions, VerifyReport};

fn hash() -> &'static str {
    &kits().a.dataset_hash
}

fn dev_signer() -> &'static Signer {
    static KEY: OnceLock<aoc_sigstore::SelectedKey> = OnceLock::new();
    &KEY.get_or_init(|| select_signing_key(|k| dev_env().get(k).cloned(), &root()).unwrap())
        .signer
}

fn other_signer() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::generate)
}

/// A second kit, validly signed with the dev key, over another dataset (testdata's revision
/// sample instead of seed/) and another SOURCE_DATE_EPOCH: every file but cosign.pub differs.
fn variant() -> &'static Release {
    static VARIANT: OnceLock<(tempfile::TempDir, Release)> = OnceLock::new();
    &VARIANT
        .get_or_init(|| {
            let scratch = tempfile::tempdir().unwrap();
            let mut opts = options(scratch.path().join("variant/aoc"), dev_env());
            opts.runner_binary = Some(kits().binary.clone());
            opts.epoch = Some(EPOCH + 86_400);
            opts.dataset_from = vec![root().join("testdata/history-sample.ndjson")];
            let r = release(&shell(), &opts).unwrap();
            (scratch, r)
        })
        .1
}

/// The role-equivalent file of the variant kit (dataset files carry its own hash).
fn variant_file(name: &str) -> PathBuf {
    let v = variant();
    let theirs = name.replace(hash(), &v.dataset_hash);
    v.dir.join(theirs)
}

/// The report as `aoc-verify --json` prints it.
fn json(report: &VerifyReport) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

/// Exit code `class`, the first failure has `class`, and a failure names `name` (in its file
/// field or detail) in the JSON report.
fn assert_fails(report: &VerifyReport, class: Class, name: &str, case: &str) {
    assert_eq!(
        report.exit_code,
        class.exit_code(),
        "{case}: {}",
        describe(report)
    );
    let first = report
        .first_failure()
        .unwrap_or_else(|| panic!("{case}: went unnoticed"));
    assert_eq!(first.class, class, "{case}: {}", describe(report));
    assert!(
        report
            .failures()
            .any(|f| f.file == name || f.detail.contains(name)),
        "{case}: no failure names {name}: {}",
        describe(report)
    );
    let json = json(report);
    assert!(json.contains(name), "{case}: JSON report lacks {name}");
    assert!(json.contains(&format!("\"exit_code\": {}", class.exit_code())));
}

/// The class when `name`'s bytes change: the root signature breaks for the checksum pair and for
/// the kit's own key (the default `--key`); every other file fails its checksum.
fn changed_class(name: &str) -> Class {
    match name {
        kit::SUMS | kit::SUMS_BUNDLE | kit::PUBLIC_KEY => Class::Signature,
        _ => Class::Checksum,
    }
}

#[test]
fn the_variant_kit_verifies_and_differs_from_the_first_in_every_file_but_the_key() {
    let report = verify_kit(&variant().dir, None, &VerifyOptions::default()).unwrap();
    assert!(report.intact(), "{}", describe(&report));
    assert_ne!(variant().dataset_hash, hash());
    for name in kit::expected_files(hash()) {
        let same = std::fs::read(kits().a.dir.join(&name)).unwrap()
            == std::fs::read(variant_file(&name)).unwrap();
        assert_eq!(same, name == kit::PUBLIC_KEY, "{name}");
    }
}

#[test]
fn every_kit_file_truncated_to_half_fails_with_its_class_and_name() {
    for name in kit::expected_files(hash()) {
        let (_tmp, dir) = copy_kit();
        let path = dir.join(&name);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        assert_fails(
            &report,
            changed_class(&name),
            &name,
            &format!("truncated {name}"),
        );
    }
}

#[test]
fn every_kit_file_replaced_by_another_kits_fails_with_its_class_and_name() {
    for name in kit::expected_files(hash()) {
        let (_tmp, dir) = copy_kit();
        let case = format!("{name} from the variant kit");
        if name == kit::PUBLIC_KEY {
            // Both kits are signed by the dev key, so their cosign.pub files are identical: the
            // other kit's key here is another signer's.
            std::fs::write(dir.join(&name), other_signer().public_key().to_pem()).unwrap();
        } else {
            std::fs::copy(variant_file(&name), dir.join(&name)).unwrap();
        }
        let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        assert_fails(&report, changed_class(&name), &name, &case);
    }
}

#[test]
fn every_kit_file_deleted_fails_with_its_class_and_name() {
    for name in kit::expected_files(hash()) {
        let (_tmp, dir) = copy_kit();
        std::fs::remove_file(dir.join(&name)).unwrap();
        let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        let class = match name.as_str() {
            kit::SUMS_BUNDLE | kit::PUBLIC_KEY => Class::Signature,
            _ => Class::Checksum,
        };
        assert_fails(&report, class, &name, &format!("deleted {name}"));
    }
    // With the trusted key given, a missing cosign.pub is only a missing listed file.
    let (_tmp, dir) = copy_kit();
    std::fs::remove_file(dir.join(kit::PUBLIC_KEY)).unwrap();
    let key = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let report = verify_kit(&dir, Some(&key), &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Checksum,
        kit::PUBLIC_KEY,
        "cosign.pub with --key",
    );
}

#[test]
fn an_unlisted_file_or_a_second_dataset_fails_as_checksum_naming_it() {
    let (_tmp, dir) = copy_kit();
    std::fs::write(dir.join("notes.txt"), "not in SHA256SUMS").unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(&report, Class::Checksum, "notes.txt", "unlisted notes.txt");

    let (_tmp, dir) = copy_kit();
    let second = kit::dataset_tarball(&variant().dataset_hash);
    std::fs::copy(variant().dir.join(&second), dir.join(&second)).unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(&report, Class::Checksum, &second, "second dataset");
}

#[test]
fn the_checksum_bundle_swapped_with_the_provenance_fails_as_signature() {
    // (release::tests swaps the two message bundles, and runner bundle with provenance.)
    let (_tmp, dir) = copy_kit();
    let (x, y) = (
        dir.join(kit::SUMS_BUNDLE),
        dir.join(kit::provenance(hash())),
    );
    let (bx, by) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    std::fs::write(&x, &by).unwrap();
    std::fs::write(&y, &bx).unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(&report, Class::Signature, kit::SUMS_BUNDLE, "swapped");
}

// ---- bundles ---------------------------------------------------------------------------------

#[test]
fn a_valid_bundle_for_another_artefact_fails_as_signature() {
    let (_tmp, dir) = copy_kit();
    let dataset = kit::sha256_file(&dir.join(kit::dataset_tarball(hash()))).unwrap();
    std::fs::write(
        dir.join(kit::RUNNER_BUNDLE),
        message_signature_bundle(dev_signer(), &dataset),
    )
    .unwrap();
    reseal(&dir, hash());
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Signature,
        kit::RUNNER_BUNDLE,
        "bundle over the dataset",
    );

    // The variant kit's runner bundle: valid, dev key, another runner tarball.
    let (_tmp, dir) = copy_kit();
    std::fs::copy(
        variant().dir.join(kit::RUNNER_BUNDLE),
        dir.join(kit::RUNNER_BUNDLE),
    )
    .unwrap();
    reseal(&dir, hash());
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Signature,
        kit::RUNNER_BUNDLE,
        "variant's runner bundle",
    );
}

#[test]
fn bundles_signed_by_another_key_fail_as_signature() {
    // The runner's, right digest, another key; SHA256SUMS re-sealed by the dev key.
    let (_tmp, dir) = copy_kit();
    let runner = kit::sha256_file(&dir.join(kit::RUNNER_TARBALL)).unwrap();
    std::fs::write(
        dir.join(kit::RUNNER_BUNDLE),
        message_signature_bundle(other_signer(), &runner),
    )
    .unwrap();
    reseal(&dir, hash());
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Signature,
        kit::RUNNER_BUNDLE,
        "runner, other key",
    );

    // The provenance, same statement, another key.
    let (_tmp, dir) = copy_kit();
    let prov = dir.join(kit::provenance(hash()));
    let payload = verify_dsse_bundle(&std::fs::read(&prov).unwrap(), dev_signer().public_key())
        .unwrap()
        .payload;
    std::fs::write(
        &prov,
        dsse_bundle(other_signer(), IN_TOTO_PAYLOAD_TYPE, &payload),
    )
    .unwrap();
    reseal(&dir, hash());
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Signature,
        &kit::provenance(hash()),
        "provenance, other key",
    );

    // SHA256SUMS itself, another key.
    let (_tmp, dir) = copy_kit();
    let sums = Sha256Digest::of(std::fs::read(dir.join(kit::SUMS)).unwrap());
    std::fs::write(
        dir.join(kit::SUMS_BUNDLE),
        message_signature_bundle(other_signer(), &sums),
    )
    .unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_fails(
        &report,
        Class::Signature,
        kit::SUMS_BUNDLE,
        "SHA256SUMS, other key",
    );
}

// ---- SHA256SUMS with tricky lines, validly signed ---------------------------------------------

/// Writes `text` as SHA256SUMS and signs it with the dev key.
fn sign_sums(dir: &Path, text: &[u8]) {
    std::fs::write(dir.join(kit::SUMS), text).unwrap();
    let digest = Sha256Digest::of(text);
    std::fs::write(
        dir.join(kit::SUMS_BUNDLE),
        message_signature_bundle(dev_signer(), &digest),
    )
    .unwrap();
}

#[test]
fn validly_signed_sha256sums_with_tricky_lines_fail_as_checksum() {
    let good = std::fs::read_to_string(kits().a.dir.join(kit::SUMS)).unwrap();
    let first = good.lines().next().unwrap().to_string();
    let (digest, name) = (&first[..64], &first[66..]);
    let edit = |line: String| good.replacen(&first, &line, 1);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("CRLF", good.replace('\n', "\r\n"), "carriage return"),
        (
            "binary marker",
            edit(format!("{digest} *{name}")),
            "binary-mode",
        ),
        ("three spaces", edit(format!("{digest}   {name}")), "space"),
        ("one space", edit(format!("{digest} {name}")), "two spaces"),
        (
            "trailing space",
            edit(format!("{digest}  {name} ")),
            "space",
        ),
        ("tab", edit(format!("{digest}\t{name}")), "digest"),
        ("slash", edit(format!("{digest}  ./{name}")), "`/`"),
        ("subdir", edit(format!("{digest}  sub/{name}")), "`/`"),
        ("dotdot", edit(format!("{digest}  ../{name}")), "`/`"),
        ("bare dotdot", edit(format!("{digest}  ..")), "`..`"),
        ("absolute", edit(format!("{digest}  /etc/passwd")), "`/`"),
        (
            "uppercase hex",
            edit(format!("{}  {name}", digest.to_uppercase())),
            "hex",
        ),
        ("escaped", edit(format!("\\{digest}  {name}")), "backslash"),
        ("duplicate", format!("{good}{first}\n"), "duplicate"),
        ("blank line", format!("{good}\n"), "empty line"),
    ]
    .into_iter()
    .map(|(case, text, why)| (case, text.into_bytes(), why))
    .collect();
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8.extend_from_slice(b"\xff\n");
    cases.push(("not UTF-8", not_utf8, "UTF-8"));
    for (case, bytes, why) in cases {
        let (_tmp, dir) = copy_kit();
        sign_sums(&dir, &bytes);
        let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        assert_fails(&report, Class::Checksum, kit::SUMS, case);
        let first_failure = report.first_failure().unwrap();
        assert_eq!(
            first_failure.check,
            CheckId::SumsParse,
            "{case}: {}",
            describe(&report)
        );
        assert!(
            first_failure.detail.contains(why),
            "{case}: {}",
            first_failure.detail
        );
    }
}

// ---- hostile tarballs, validly checksummed and signed ------------------------------------------

/// A GNU header for `name`, written raw so that the `tar` crate cannot refuse or rewrite it.
fn header(name: &[u8], kind: u8, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(size);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    h
}

/// Appends a member (header, data, padding).
fn member(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w =
        aoc_archive::CompressWriter::new(Vec::new(), aoc_archive::Compression::Gzip).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// The members of one of kit `a`'s tarballs, as raw tar bytes without the end marker.
fn members_of(name: &str) -> Vec<u8> {
    let files =
        aoc_archive::ArchiveReader::open(&kits().a.dir.join(name), aoc_archive::Limits::default())
            .unwrap()
            .read_all()
            .unwrap();
    let mut out = Vec::new();
    for (path, data) in files {
        member(
            &mut out,
            &header(path.as_bytes(), b'0', data.len() as u64),
            &data,
        );
    }
    out
}

/// A GNU long-name member (`././@LongLink`) for names over 100 bytes.
fn long_member(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8]) {
    let mut long = name.to_vec();
    long.push(0);
    member(
        out,
        &header(b"././@LongLink", b'L', long.len() as u64),
        &long,
    );
    member(out, &header(&name[..100], kind, data.len() as u64), data);
}

/// Re-signs a kit whose tarballs were replaced, as a key holder would: the runner bundle over the
/// new runner tarball, the provenance's subjects over the new digests, SHA256SUMS and its bundle.
fn resign(dir: &Path, hash: &str) {
    resign_with(dir, hash, dev_signer());
}

/// [`resign`] with any signer; its public key becomes the kit's `cosign.pub` first.
fn resign_with(dir: &Path, hash: &str, signer: &Signer) {
    std::fs::write(dir.join(kit::PUBLIC_KEY), signer.public_key().to_pem()).unwrap();
    let runner = kit::sha256_file(&dir.join(kit::RUNNER_TARBALL)).unwrap();
    std::fs::write(
        dir.join(kit::RUNNER_BUNDLE),
        message_signature_bundle(signer, &runner),
    )
    .unwrap();
    let prov = dir.join(kit::provenance(hash));
    let bytes = std::fs::read(&prov).unwrap();
    let payload = verify_dsse_bundle(&bytes, dev_signer().public_key())
        .or_else(|_| verify_dsse_bundle(&bytes, signer.public_key()))
        .unwrap()
        .payload;
    let statement = parse_statement(&payload).unwrap();
    let subjects: Vec<Subject> = kit::subject_files(hash)
        .into_iter()
        .map(|name| Subject {
            sha256: kit::sha256_file(&dir.join(&name)).unwrap(),
            name,
        })
        .collect();
    let payload = statement_json(&subjects, &statement.predicate_type, &statement.predicate);
    std::fs::write(&prov, dsse_bundle(signer, IN_TOTO_PAYLOAD_TYPE, &payload)).unwrap();
    let paths: Vec<PathBuf> = kit::summed_files(hash)
        .iter()
        .map(|n| dir.join(n))
        .collect();
    let text = aoc_archive::Sha256Sums::from_files(&paths)
        .unwrap()
        .render();
    std::fs::write(dir.join(kit::SUMS), &text).unwrap();
    let digest = Sha256Digest::of(text.as_bytes());
    std::fs::write(
        dir.join(kit::SUMS_BUNDLE),
        message_signature_bundle(signer, &digest),
    )
    .unwrap();
}

/// Everything below `dir`: relative path → (size, modified).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().strip_prefix(dir).unwrap().to_path_buf(),
                (meta.len(), meta.modified().unwrap()),
            );
        }
    }
    out
}

/// Paths under the system temporary directory (two levels) whose name contains `token`.
fn temp_files_named(token: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(std::env::temp_dir(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().contains(token) {
                found.push(e.path());
            }
            if depth < 2 && e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

/// Which tarball a hostile case replaces.
#[derive(Clone, Copy, Debug)]
enum Target {
    Runner,
    Dataset,
}

impl Target {
    fn file(self) -> String {
        match self {
            Target::Runner => kit::RUNNER_TARBALL.to_string(),
            Target::Dataset => kit::dataset_tarball(hash()),
        }
    }
}

/// Hostile entries, each with the words the refusal must contain; `{t}` in names is a token that
/// is unique to the case, so that a file it created would be found.
fn hostile_entries(token: &str) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let abs = format!("{}/{token}-abs", std::env::temp_dir().display());
    let dotdot = format!("../../../{token}-dotdot");
    let mut cases = Vec::new();
    let mut one = |case: &'static str, name: &[u8], kind: u8, data: &[u8], why: &'static str| {
        let mut out = Vec::new();
        member(&mut out, &header(name, kind, data.len() as u64), data);
        cases.push((case, out, why));
    };
    one(
        "absolute path",
        abs.as_bytes(),
        b'0',
        b"pwned",
        "absolute path",
    );
    one("dot-dot", dotdot.as_bytes(), b'0', b"pwned", "`..`");
    one(
        "symlink",
        format!("{token}-link").as_bytes(),
        b'2',
        b"",
        "symbolic link",
    );
    one(
        "hardlink",
        format!("{token}-hard").as_bytes(),
        b'1',
        b"",
        "hard link",
    );
    one(
        "char device",
        format!("{token}-dev").as_bytes(),
        b'3',
        b"",
        "device",
    );
    one(
        "block device",
        format!("{token}-blk").as_bytes(),
        b'4',
        b"",
        "device",
    );
    one(
        "fifo",
        format!("{token}-fifo").as_bytes(),
        b'6',
        b"",
        "fifo",
    );
    one(
        "non-UTF-8 name",
        b"caf\xe9-\xff.txt",
        b'0',
        b"x",
        "not UTF-8",
    );
    // A symlink named like a directory the next member goes through.
    let mut out = Vec::new();
    let link = format!("{token}-dir");
    let mut h = header(link.as_bytes(), b'2', 0);
    h.set_link_name(std::env::temp_dir()).unwrap();
    h.set_cksum();
    member(&mut out, &h, b"");
    member(
        &mut out,
        &header(format!("{link}/escaped").as_bytes(), b'0', 1),
        b"x",
    );
    cases.push(("symlink then a file through it", out, "symbolic link"));
    // 1 TiB declared, nothing behind it.
    let mut out = Vec::new();
    member(&mut out, &header(b"huge.bin", b'0', 1 << 40), b"");
    cases.push(("huge declared size", out, "exceeds the per-entry limit"));
    let mut out = Vec::new();
    long_member(&mut out, &vec![b'x'; 300], b'0', b"x");
    cases.push(("overlong component", out, "too long"));
    let mut out = Vec::new();
    long_member(&mut out, ["d"; 700].join("/").as_bytes(), b'0', b"x");
    cases.push(("overlong path", out, "too long"));
    cases
}

/// Builds the hostile tarball for `target`: the real members with `entry` spliced in front (or,
/// for duplicates, the real members twice), gzip-compressed.
fn hostile_tarball(target: Target, entry: &[u8]) -> Vec<u8> {
    let mut tar = entry.to_vec();
    tar.extend(members_of(&target.file()));
    tar.extend_from_slice(&[0; 1024]);
    gzip(&tar)
}

/// Replaces `target` in a fresh copy of kit `a` with `tarball`, re-signs the kit, verifies it,
/// and checks that nothing was created or changed in or beside the kit or at the case's targets.
fn verify_hostile(target: Target, tarball: &[u8], token: &str) -> VerifyReport {
    let (tmp, dir) = copy_kit();
    std::fs::write(dir.join(target.file()), tarball).unwrap();
    resign(&dir, hash());
    std::fs::write(tmp.path().join("canary"), "parent of the kit").unwrap();
    let before = snapshot(tmp.path());
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_eq!(
        before,
        snapshot(tmp.path()),
        "the kit or its parent changed"
    );
    assert_eq!(temp_files_named(token), Vec::<PathBuf>::new());
    report
}

#[test]
fn hostile_entries_in_a_validly_signed_runner_or_dataset_tarball_are_class_14() {
    for target in [Target::Runner, Target::Dataset] {
        let token = format!("aochostile{}{target:?}", std::process::id());
        for (case, entry, why) in hostile_entries(&token) {
            let report = verify_hostile(target, &hostile_tarball(target, &entry), &token);
            let case = format!("{target:?}: {case}");
            assert_fails(&report, Class::Hostile, &target.file(), &case);
            let first = report.first_failure().unwrap();
            assert!(first.detail.contains(why), "{case}: {}", first.detail);
            // Checksums and signatures passed: the archive defence is what refused it.
            assert!(
                report
                    .checks
                    .iter()
                    .filter(|c| matches!(c.check, CheckId::Signature | CheckId::Sha256))
                    .all(|c| c.ok),
                "{case}: {}",
                describe(&report)
            );
        }
    }
}

#[test]
fn duplicate_members_in_a_validly_signed_tarball_are_class_14() {
    for target in [Target::Runner, Target::Dataset] {
        // The real members twice: the second `stella` (or data file) would overwrite the first.
        let mut tar = members_of(&target.file());
        tar.extend(members_of(&target.file()));
        tar.extend_from_slice(&[0; 1024]);
        let token = format!("aocdup{}", std::process::id());
        let report = verify_hostile(target, &gzip(&tar), &token);
        assert_fails(
            &report,
            Class::Hostile,
            &target.file(),
            &format!("{target:?}"),
        );
        assert!(report
            .first_failure()
            .unwrap()
            .detail
            .contains("duplicate name"));
    }
}

// ---- decompression bombs, in a child process so that its peak RSS can be read ---------------

/// Concatenated gzip members (`gzip -t` and every reader accept them): for each `(name, mib)` a
/// tar header declaring `mib` MiB, then `mib` copies of one gzip member holding 1 MiB of zeros
/// (about 1 KiB each); then the end-of-archive marker. Gigabytes in a few megabytes, built in
/// milliseconds.
fn gzip_bomb(members: &[(&str, u64)]) -> Vec<u8> {
    let zeros = gzip(&vec![0u8; 1 << 20]);
    let mut out = Vec::new();
    for (name, mib) in members {
        out.extend(gzip(header(name.as_bytes(), b'0', mib << 20).as_bytes()));
        for _ in 0..*mib {
            out.extend_from_slice(&zeros);
        }
    }
    out.extend(gzip(&[0u8; 1024]));
    out
}

const CHILD_DIR: &str = "AOC_HOSTILE_VERIFY_DIR";

/// Not a test of its own: when the parent sets `AOC_HOSTILE_VERIFY_DIR`, this runs `aoc-verify`'s
/// code on it in a fresh process and prints the report and the peak RSS. Ignored, so a plain run
/// neither runs nor counts it; the parent runs it with `--ignored --exact`.
#[test]
#[ignore = "helper entry point: verify_in_child runs it in a child process"]
fn child_process_entry_point() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let report = verify_kit(Path::new(&dir), None, &VerifyOptions::default()).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .to_string();
    println!("AOC_REPORT {}", serde_json::to_string(&report).unwrap());
    println!("AOC_VMHWM_KB {hwm}");
}

/// Runs the verifier on `dir` in a child process: (report JSON, peak RSS in bytes, wall time).
fn verify_in_child(dir: &Path) -> (serde_json::Value, u64, Duration) {
    let t = Instant::now();
    // /proc/self/exe still runs this binary when cargo has replaced the file meanwhile.
    let exe = Path::new("/proc/self/exe");
    let exe = if exe.exists() {
        exe.to_path_buf()
    } else {
        std::env::current_exe().unwrap()
    };
    let out = std::process::Command::new(exe)
        .args([
            "verify::hostile_tests::child_process_entry_point",
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .output()
        .unwrap();
    let took = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .trim()
            .to_string()
    };
    let report = serde_json::from_str(&field("AOC_REPORT")).unwrap();
    let hwm: u64 = field("AOC_VMHWM_KB").parse().unwrap();
    (report, hwm * 1024, took)
}

/// Peak RSS a verification of the small test kit may reach: the bound is about memory that
/// grows with the bomb, not about the verifier's fixed buffers.
const RSS_BOUND: u64 = 256 << 20;

#[test]
fn decompression_bombs_stop_at_a_bound_quickly_and_in_bounded_memory() {
    let (_tmp, good) = copy_kit();
    let (_, baseline, _) = verify_in_child(&good);
    // Runner: four 768 MiB members of zeros, each under the runner's 1 GiB member limit, past
    // its 2 GiB total bound. Dataset: a 3 GiB data file of zeros (one "line" without a newline),
    // under aoc-dataset's generic 4 GiB member limit: before verify.rs bounded the dataset by its
    // signed manifest this ran 38 s and peaked at 3 GiB RSS (aoc-dataset buffers a whole line).
    let runner: &[(&str, u64)] = &[
        ("aoc-backfill-runner/zeros-0.bin", 768),
        ("aoc-backfill-runner/zeros-1.bin", 768),
        ("aoc-backfill-runner/zeros-2.bin", 768),
        ("aoc-backfill-runner/zeros-3.bin", 768),
    ];
    let dataset: &[(&str, u64)] = &[("data/default/bomb.ndjson", 3 << 10)];
    for (target, members) in [(Target::Runner, runner), (Target::Dataset, dataset)] {
        let bomb = gzip_bomb(members);
        assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
        let (tmp, dir) = copy_kit();
        std::fs::write(dir.join(target.file()), &bomb).unwrap();
        resign(&dir, hash());
        let before = snapshot(tmp.path());
        let (report, rss, took) = verify_in_child(&dir);
        assert_eq!(before, snapshot(tmp.path()));
        let first = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ok"] == false)
            .cloned()
            .unwrap_or_default();
        eprintln!(
            "{target:?} bomb ({} KB compressed, 3 GiB of zeros): exit {}, {:?}, peak RSS {} MB (good kit {} MB): {}",
            bomb.len() / 1000,
            report["exit_code"],
            took,
            rss >> 20,
            baseline >> 20,
            first["detail"]
        );
        assert_eq!(report["exit_code"], 14, "{target:?}: {report:#}");
        assert_eq!(first["file"], target.file().as_str(), "{first}");
        assert!(rss < RSS_BOUND, "{target:?}: peak RSS {} MB", rss >> 20);
        assert!(took < Duration::from_secs(30), "{target:?}: took {took:?}");
    }
}

// ---- the attacks of the kit-trust review, each through both verifiers -----------------------
//
// An attacker controls the kit directory, not the signing key. Each case asserts the exit code,
// the class and file of the first failure, and the side effect that must not happen; and that
// `stella kit verify` (the trusted runner binary) prints the very same JSON report and exit code
// as `cargo xtask aoc-verify`'s code.

/// The dev public key, as an operator would pass it.
fn dev_pub() -> PathBuf {
    root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH)
}

/// Options as `--key dev.pub --allow-dev-key`.
fn trusting_dev() -> VerifyOptions {
    VerifyOptions {
        allow_dev_key: true,
        ..VerifyOptions::default()
    }
}

/// `stella kit verify DIR --format json ARGS...` with the trusted binary: (exit, stdout, stderr).
fn stella_verify(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, Vec<u8>) {
    let mut cmd = std::process::Command::new(&kits().binary);
    cmd.arg("kit").arg("verify").arg(dir);
    // JSON unless the caller chose a format.
    if !args.contains(&"--format") {
        cmd.args(["--format", "json"]);
    }
    cmd.args(args);
    cmd.env_remove("DATASET_HASH").env_remove("AOC_VERIFY_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        out.stderr,
    )
}

/// Verifies `dir` with the library (as aoc-verify does) and with the stella binary given the same
/// key and flags; asserts the same JSON report and exit code, and returns the report.
fn both(dir: &Path, key: Option<&Path>, opts: &VerifyOptions) -> VerifyReport {
    let report = verify_kit(dir, key, opts).unwrap();
    let mut args: Vec<String> = Vec::new();
    if let Some(k) = key {
        args.extend(["--key".into(), k.display().to_string()]);
    }
    if opts.allow_dev_key {
        args.push("--allow-dev-key".into());
    }
    if let Some(h) = &opts.expect_dataset_hash {
        args.extend(["--expect-dataset-hash".into(), h.clone()]);
    }
    if opts.integrity_only {
        args.push("--integrity-only".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, _) = stella_verify(dir, &args, &[]);
    // stella's document is the report with the convention's `ok` and, on a failure, `error`
    // (its summary line) in front.
    let summary = report.summary("stella kit verify");
    let expected = aoc_term::failure::report_json(
        &report,
        report.exit_code,
        summary.first().map_or("", String::as_str),
    );
    assert_eq!(
        stdout.trim_end(),
        serde_json::to_string_pretty(&expected).unwrap(),
        "stella kit verify and aoc-verify differ on {}",
        dir.display()
    );
    assert_eq!(code, i32::from(report.exit_code));
    report
}

/// A runner tarball like kit `a`'s whose `bin/stella` is a shell script that would create
/// `sentinel` if anything ran it.
fn planted_runner(sentinel: &Path) -> Vec<u8> {
    let files = aoc_archive::ArchiveReader::open(
        &kits().a.dir.join(kit::RUNNER_TARBALL),
        Default::default(),
    )
    .unwrap()
    .read_all()
    .unwrap();
    let script = format!("#!/bin/sh\ntouch '{}'\necho pwned\n", sentinel.display());
    let mut tar = Vec::new();
    for (path, data) in files {
        let data = if path == kit::BINARY_MEMBER {
            script.clone().into_bytes()
        } else {
            data
        };
        let mut h = header(path.as_bytes(), b'0', data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        member(&mut tar, &h, &data);
    }
    tar.extend_from_slice(&[0; 1024]);
    gzip(&tar)
}

#[test]
fn attack_1_a_planted_bin_stella_is_never_executed() {
    let sentinel_dir = tempfile::tempdir().unwrap();
    let sentinel = sentinel_dir.path().join("planted-stella-ran");
    let tarball = planted_runner(&sentinel);

    // Dropped in: its checksum fails first.
    let (_tmp, dir) = copy_kit();
    std::fs::write(dir.join(kit::RUNNER_TARBALL), &tarball).unwrap();
    let report = both(&dir, Some(&dev_pub()), &trusting_dev());
    assert_fails(
        &report,
        Class::Checksum,
        kit::RUNNER_TARBALL,
        "planted stella",
    );
    // Nothing after the failed digest read the tarball.
    assert!(!report.checks.iter().any(|c| matches!(
        c.check,
        CheckId::SbomSpdx | CheckId::SbomCycloneDx | CheckId::RunnerBinary
    )));
    assert!(!sentinel.exists(), "the planted stella was run");

    // Even re-signed by a key holder, so that every checksum and signature passes, the binary is
    // hashed for the SBOM check, never run: the SBOMs no longer describe it.
    let (_tmp, dir) = copy_kit();
    std::fs::write(dir.join(kit::RUNNER_TARBALL), &tarball).unwrap();
    resign(&dir, hash());
    let report = both(&dir, Some(&dev_pub()), &trusting_dev());
    assert_fails(
        &report,
        Class::Provenance,
        kit::SPDX_FILE,
        "re-signed planted stella",
    );
    assert!(!sentinel.exists(), "the planted stella was run");
}

#[test]
fn attack_4_a_sparse_4_gib_sidecar_and_a_tiny_line_gzip_cost_nothing() {
    // A 4 GiB sidecar manifest that occupies nothing on disk: refused by its size, never read.
    let (_tmp, dir) = copy_kit();
    let sidecar = dir.join(kit::dataset_manifest(hash()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sidecar)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let (report, rss, took) = verify_in_child(&dir);
    eprintln!(
        "sparse sidecar: exit {}, {took:?}, peak RSS {} MB",
        report["exit_code"],
        rss >> 20
    );
    assert_eq!(report["exit_code"], 14, "{report:#}");
    let first = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .unwrap();
    assert_eq!(first["file"], kit::dataset_manifest(hash()).as_str());
    assert!(
        first["detail"].as_str().unwrap().contains("not read"),
        "{first}"
    );
    assert!(
        rss < RSS_BOUND && took < Duration::from_secs(10),
        "{rss} {took:?}"
    );
    let lib = verify_kit(&dir, Some(&dev_pub()), &trusting_dev()).unwrap();
    assert_fails(
        &lib,
        Class::Hostile,
        &kit::dataset_manifest(hash()),
        "sparse sidecar",
    );

    // 32 MiB of `0\n` lines in a tiny gzip: unsigned, it fails its digest and is never inflated;
    // signed by a key holder, the proven manifest's bounds stop it at its header.
    let mut tar = Vec::new();
    let lines = b"0\n".repeat(16 << 20);
    member(
        &mut tar,
        &header(b"data/default/osv.ndjson", b'0', lines.len() as u64),
        &lines,
    );
    tar.extend_from_slice(&[0; 1024]);
    let bomb = gzip(&tar);
    eprintln!("tiny-line gzip: {} KB", bomb.len() / 1000);
    for resigned in [false, true] {
        let (_tmp, dir) = copy_kit();
        std::fs::write(dir.join(kit::dataset_tarball(hash())), &bomb).unwrap();
        if resigned {
            resign(&dir, hash());
        }
        let (report, rss, took) = verify_in_child(&dir);
        eprintln!(
            "tiny-line gzip (re-signed: {resigned}): exit {}, {took:?}, peak RSS {} MB",
            report["exit_code"],
            rss >> 20
        );
        let expected = if resigned { 14 } else { 10 };
        assert_eq!(report["exit_code"], expected, "{report:#}");
        assert!(
            rss < RSS_BOUND && took < Duration::from_secs(10),
            "{rss} {took:?}"
        );
        let lib = both(&dir, Some(&dev_pub()), &trusting_dev());
        let class = if resigned {
            Class::Hostile
        } else {
            Class::Checksum
        };
        assert_fails(&lib, class, &kit::dataset_tarball(hash()), "tiny-line gzip");
    }
}

#[test]
fn attack_6_names_from_the_kit_never_reach_the_terminal_raw() {
    let (_tmp, dir) = copy_kit();
    // Would erase the FAIL line and print a fake verdict on a terminal.
    let name = "x\r\u{1b}[2K\u{1b}[1A\u{1b}[32mverified\u{1b}[0m\u{7}\u{9b}31m";
    std::fs::write(dir.join(name), "spoof").unwrap();
    let report = both(&dir, Some(&dev_pub()), &trusting_dev());
    // The report names the file escaped (the JSON then escapes the backslashes once more).
    let shown = aoc_kit::escape(name);
    assert_eq!(report.exit_code, 10, "{}", describe(&report));
    let first = report.first_failure().unwrap();
    assert_eq!(
        (first.class, first.file.as_str()),
        (Class::Checksum, shown.as_str())
    );
    let parsed: VerifyReport = serde_json::from_str(&json(&report)).unwrap();
    assert_eq!(parsed.first_failure().unwrap().file, shown);
    for format in ["text", "json"] {
        let (code, stdout, stderr) = stella_verify(
            &dir,
            &[
                "--key",
                &dev_pub().display().to_string(),
                "--allow-dev-key",
                "--format",
                format,
            ],
            &[],
        );
        assert_eq!(code, 10);
        for (stream, bytes) in [("stdout", stdout.as_bytes()), ("stderr", &stderr[..])] {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{format}: a control character reached {stream}: {text:?}"
            );
        }
        assert!(
            String::from_utf8_lossy(&stderr).contains("\\u{1b}[2K"),
            "{format}"
        );
    }
}

#[test]
fn attack_7_origin_is_required_and_the_dataset_can_be_pinned() {
    // A kit re-signed entirely by someone else, their key as the kit's cosign.pub.
    let (_tmp, dir) = copy_kit();
    resign_with(&dir, hash(), other_signer());

    // Without --key: intact by its own key, origin not proven: 15, never 0.
    let report = both(&dir, None, &VerifyOptions::default());
    assert_eq!(report.exit_code, 15, "{}", describe(&report));
    assert!(report.intact());
    assert_eq!(report.first_failure().unwrap().class, Class::Origin);
    // --allow-dev-key does not make a self-contained key an origin.
    assert_eq!(both(&dir, None, &trusting_dev()).exit_code, 15);
    // Against the key the operator trusts: a signature failure on the root.
    let report = both(&dir, Some(&dev_pub()), &trusting_dev());
    assert_fails(
        &report,
        Class::Signature,
        kit::SUMS_BUNDLE,
        "attacker-signed",
    );

    // The dev key is not an origin unless allowed.
    let report = both(&kits().a.dir, Some(&dev_pub()), &VerifyOptions::default());
    assert_eq!(report.exit_code, 15);
    assert!(report
        .first_failure()
        .unwrap()
        .detail
        .contains("PUBLIC DEV KEY"));
    assert_eq!(
        both(&kits().a.dir, Some(&dev_pub()), &trusting_dev()).exit_code,
        0
    );

    // An older, validly signed kit (another dataset) is refused when the dataset is pinned,
    // before any of its files is read; the pin comes from the flag or from DATASET_HASH.
    let pinned = VerifyOptions {
        expect_dataset_hash: Some(hash().to_string()),
        ..trusting_dev()
    };
    assert_eq!(both(&kits().a.dir, Some(&dev_pub()), &pinned).exit_code, 0);
    let report = both(&variant().dir, Some(&dev_pub()), &pinned);
    assert_fails(
        &report,
        Class::Dataset,
        &kit::dataset_tarball(&variant().dataset_hash),
        "rollback",
    );
    assert!(report.first_failure().unwrap().detail.contains(hash()));
    assert!(
        !report.checks.iter().any(|c| c.check == CheckId::Sha256),
        "{}",
        describe(&report)
    );
    let (code, _, _) = stella_verify(
        &variant().dir,
        &["--key", &dev_pub().display().to_string(), "--allow-dev-key"],
        &[("DATASET_HASH", hash())],
    );
    assert_eq!(code, 13);
}

#[test]
fn the_good_kit_and_the_tamper_matrix_give_identical_reports_through_both_verifiers() {
    let report = both(&kits().a.dir, Some(&dev_pub()), &trusting_dev());
    assert!(report.passed(), "{}", describe(&report));
    assert_eq!(
        both(&kits().a.dir, None, &VerifyOptions::default()).exit_code,
        15
    );
    let integrity = VerifyOptions {
        integrity_only: true,
        ..trusting_dev()
    };
    assert_eq!(
        both(&kits().a.dir, Some(&dev_pub()), &integrity).exit_code,
        0
    );
    for name in kit::expected_files(hash()) {
        let (_tmp, dir) = copy_kit();
        crate::release::tests::flip_middle_byte(&dir.join(&name));
        let report = both(&dir, None, &VerifyOptions::default());
        assert_fails(
            &report,
            changed_class(&name),
            &name,
            &format!("flipped {name}"),
        );
        let (_tmp, dir) = copy_kit();
        std::fs::remove_file(dir.join(&name)).unwrap();
        assert!(
            !both(&dir, Some(&dev_pub()), &trusting_dev()).intact(),
            "deleted {name}"
        );
    }
}

#[test]
fn a_stella_copied_alone_into_an_empty_directory_verifies_the_kit_without_cargo() {
    let empty = tempfile::tempdir().unwrap();
    let stella = empty.path().join("stella");
    std::fs::copy(&kits().binary, &stella).unwrap();
    let key = empty.path().join("trusted.pub");
    std::fs::copy(dev_pub(), &key).unwrap();
    let out = std::process::Command::new(&stella)
        .args(["kit", "verify"])
        .arg(&kits().a.dir)
        .args(["--key", "trusted.pub", "--allow-dev-key"])
        .current_dir(empty.path())
        .env_clear()
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("verified"));
}

/// `stella kit verify ARGS...` (the trusted binary) run from `cwd`, with only the given
/// AOC_VERIFY_KEY / DATASET_HASH: (exit, stdout, stderr).
fn stella_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(&kits().binary);
    cmd.args(["kit", "verify"])
        .args(args)
        .current_dir(cwd)
        .env_remove("DATASET_HASH")
        .env_remove("AOC_VERIFY_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Variables a case sets.
type Env<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn attack_8_the_kits_own_key_is_never_taken_as_the_trusted_key() {
    // Kit `a` is signed with the dev key and carries it as cosign.pub: with --allow-dev-key, its
    // own key named by --key used to pass as an origin (exit 0).
    let (_tmp, dir) = copy_kit();
    let dir = dir.canonicalize().unwrap();
    let kit = dir.display().to_string();
    let operator = tempfile::tempdir().unwrap();
    let op = operator.path().canonicalize().unwrap();
    std::fs::copy(dev_pub(), op.join("trusted.pub")).unwrap();
    std::os::unix::fs::symlink(dir.join(kit::PUBLIC_KEY), op.join("link.pub")).unwrap();
    std::fs::hard_link(dir.join(kit::PUBLIC_KEY), op.join("hard.pub")).unwrap();
    let own = dir.join(kit::PUBLIC_KEY).display().to_string();

    let refused: Vec<(&Path, Vec<&str>, Env<'_>)> = vec![
        (&dir, vec![".", "--key", "cosign.pub"], vec![]),
        (&dir, vec![".", "--key", "./cosign.pub"], vec![]),
        (&dir, vec!["."], vec![("AOC_VERIFY_KEY", "cosign.pub")]),
        (&op, vec![&kit, "--key", &own], vec![]),
        (&op, vec![&kit, "--key", "link.pub"], vec![]),
        (&op, vec![&kit, "--key", "hard.pub"], vec![]),
        (&op, vec![&kit], vec![("AOC_VERIFY_KEY", "hard.pub")]),
    ];
    for (cwd, mut args, env) in refused {
        args.push("--allow-dev-key");
        let (code, _, stderr) = stella_in(cwd, &args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("is inside the kit being checked") && stderr.contains("--kit-key"),
            "{stderr}"
        );
        // --format json keeps its promise on the refusal.
        args.extend(["--format", "json"]);
        let (code, stdout, _) = stella_in(cwd, &args, &env);
        assert_eq!(code, 2);
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["exit_code"], 2, "{v}");
    }
    // --kit-key says what it proves: intact, origin not proven (15), even with --allow-dev-key;
    // it takes no --key.
    let (code, _, stderr) = stella_in(&dir, &[".", "--kit-key", "--allow-dev-key"], &[]);
    assert_eq!(code, 15, "{stderr}");
    let (code, _, stderr) = stella_in(&op, &[&kit, "--kit-key", "--key", "trusted.pub"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
    // The control: the same key, obtained separately, outside the kit.
    let (code, _, stderr) = stella_in(
        &op,
        &[
            &kit,
            "--key",
            "trusted.pub",
            "--allow-dev-key",
            "--integrity-only",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn attack_9_an_empty_pin_never_lifts_the_pin() {
    let dir = &variant().dir;
    let key = dev_pub().display().to_string();
    let base = ["--key", key.as_str(), "--allow-dev-key", "--integrity-only"];
    // The variant kit carries another dataset than kit `a`: pinned to `a`'s, it is refused (13);
    // an empty flag must not turn that into a pass.
    let (code, _, _) = stella_in(
        dir,
        &[&["."][..], &base].concat(),
        &[("DATASET_HASH", hash())],
    );
    assert_eq!(code, 13);
    for (args, env) in [
        (
            vec!["--expect-dataset-hash", ""],
            vec![("DATASET_HASH", hash())],
        ),
        (vec!["--expect-dataset-hash", ""], vec![]),
        (vec![], vec![("DATASET_HASH", "")]),
    ] {
        let all = [&["."][..], &base, &args].concat();
        let (code, _, stderr) = stella_in(dir, &all, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("DATASET_HASH is empty"), "{stderr}");
    }
}

#[test]
fn attack_10_fifty_thousand_unlisted_files_cost_bounded_output_and_memory() {
    let (_tmp, dir) = copy_kit();
    std::fs::write(dir.join("junk0"), "").unwrap();
    let (one, rss_one, _) = verify_in_child(&dir);
    let (code_one, _, stderr_one) = stella_in(&dir, &["."], &[]);
    for i in 1..50_000 {
        std::fs::File::create(dir.join(format!("junk{i}"))).unwrap();
    }
    let (many, rss_many, took) = verify_in_child(&dir);
    let (code_many, _, stderr_many) = stella_in(&dir, &["."], &[]);
    eprintln!(
        "unlisted files: 1 → exit {}, {} checks, peak RSS {} MB, {} stderr lines; 50,000 → exit \
         {}, {} checks, peak RSS {} MB, {} stderr lines, {took:?}",
        one["exit_code"],
        one["checks"].as_array().unwrap().len(),
        rss_one >> 20,
        stderr_one.lines().count(),
        many["exit_code"],
        many["checks"].as_array().unwrap().len(),
        rss_many >> 20,
        stderr_many.lines().count(),
    );
    assert_eq!(one["exit_code"], 10, "{one:#}");
    assert_eq!(many["exit_code"], one["exit_code"]);
    assert_eq!((code_one, code_many), (10, 10));
    let unlisted = |r: &serde_json::Value| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == CheckId::SumsComplete.as_str() && c["ok"] == false)
            .count()
    };
    // 20 named, and one check that counts the rest.
    assert_eq!((unlisted(&one), unlisted(&many)), (1, 21));
    assert!(
        serde_json::to_string(&many)
            .unwrap()
            .contains("49980 more entries in the kit are not listed"),
        "{many:#}"
    );
    assert!(
        stderr_many.lines().count() <= stderr_one.lines().count() + 20,
        "{stderr_many}"
    );
    assert!(
        rss_many < rss_one + (32 << 20),
        "peak RSS {} MB with 50,000 unlisted files, {} MB with one",
        rss_many >> 20,
        rss_one >> 20
    );
}
