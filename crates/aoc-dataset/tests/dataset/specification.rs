//! The dataset as specified in docs/ARCHITECTURE.md §4.2, on the real RustSec seed: deterministic bytes, the same
//! hash after a round trip through SQLite and PostgreSQL, and verification that names the file and
//! check for every kind of tampering.

use crate::{aoc_dataset, build_options, EPOCH};
use aoc_archive::{ArchiveReader, Compression, Entry, Limits};
use aoc_dataset::{
    build_from_inputs, build_from_store, verify, verify_with, BuildOptions, BuildReport, Check,
    Dataset, VerifyError, VerifyOptions, VerifyReport,
};
use aoc_ingest::report::BackfillReport;
use aoc_ingest::{Backfill, Source};
use aoc_store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seed/rustsec-seed.ndjson.zst")
}

fn build_seed(out: &Path) -> BuildReport {
    build_from_inputs(&[seed()], &build_options(out)).expect("building the seed")
}

/// Loads a dataset tarball into `store` through the ingest engine, as `stella aoc backfill` does.
fn load(archive: &Path, store: &mut Store) -> BackfillReport {
    let mut source = Source::open(&[archive.to_owned()], &[&aoc_dataset::Datasets::default()])
        .expect("the dataset verifies");
    Backfill::new("default", EPOCH)
        .run(&mut source, Some(store))
        .expect("the dataset loads")
        .report
}

fn failed(result: Result<VerifyReport, VerifyError>) -> VerifyReport {
    match result {
        Err(VerifyError::Failed(report)) => *report,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

fn has(report: &VerifyReport, file: &str, check: impl Fn(Check) -> bool) -> bool {
    report
        .failures
        .iter()
        .any(|f| f.file.ends_with(file) && check(f.check))
}

/// The archive's members, edited by `edit`, packed again under `name` in `dir` (valid tar, new content).
fn repack(
    report: &BuildReport,
    dir: &Path,
    name: &str,
    edit: impl Fn(&str, &mut Vec<u8>),
) -> PathBuf {
    let members = ArchiveReader::open(&report.archive, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    let entries = members
        .into_iter()
        .map(|(path, mut data)| {
            edit(&path, &mut data);
            Entry::bytes(path, data)
        })
        .collect();
    let out = dir.join(name);
    aoc_archive::pack(entries, &out, Compression::Gzip, EPOCH as u64).unwrap();
    out
}

#[test]
fn building_twice_in_different_directories_at_different_times_gives_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    // Two copies of the input with different mtimes, built a second apart.
    let (in_a, in_b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, age) in [(&in_a, 0), (&in_b, 86_400)] {
        std::fs::create_dir_all(dir).unwrap();
        let copy = dir.join("rustsec-seed.ndjson.zst");
        std::fs::copy(seed(), &copy).unwrap();
        let f = std::fs::File::options().write(true).open(&copy).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
    }
    let first = build_from_inputs(
        &[in_a.join("rustsec-seed.ndjson.zst")],
        &build_options(&tmp.path().join("out1")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let second = build_from_inputs(
        &[in_b.join("rustsec-seed.ndjson.zst")],
        &build_options(&tmp.path().join("deeper/out2")),
    )
    .unwrap();
    assert_eq!(first.hash, second.hash);
    assert_eq!(
        std::fs::read(&first.archive).unwrap(),
        std::fs::read(&second.archive).unwrap()
    );
    assert_eq!(
        std::fs::read(&first.manifest_path).unwrap(),
        std::fs::read(&second.manifest_path).unwrap()
    );
    // Only the two outputs remain: staging and temporary files are gone.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("out1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("aoc-dataset-{}.manifest.json", first.hash),
            format!("aoc-dataset-{}.tar.gz", first.hash)
        ]
    );
    // The seed: 302 RustSec advisories with all 1302 of their revisions.
    assert_eq!(first.manifest.totals.records, 1302);
    assert_eq!(first.manifest.totals.upstream_documents, 302);
    assert_eq!(first.manifest.files.len(), 1);
    assert_eq!(first.manifest.files[0].path, "data/default/rustsec.ndjson");
}

#[test]
fn the_hash_is_sha256_of_the_sha256sum_listing_of_the_data_files() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let members = ArchiveReader::open(&built.archive, Limits::default())
        .unwrap()
        .digest_all()
        .unwrap();
    let names: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(names, ["data/default/rustsec.ndjson", "manifest.json"]);
    let listing = format!("{}  data/default/rustsec.ndjson\n", members[0].sha256);
    assert_eq!(built.hash, aoc_digest::Sha256Digest::of(listing.as_bytes()));
    assert_eq!(
        built.archive.file_name().unwrap().to_string_lossy(),
        format!("aoc-dataset-{}.tar.gz", built.hash)
    );
    // The manifest inside is the sidecar, byte for byte.
    let inside = ArchiveReader::open(&built.archive, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(inside[1].1, std::fs::read(&built.manifest_path).unwrap());
}

#[test]
fn zstd_builds_have_the_same_hash_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = build_seed(&tmp.path().join("gz"));
    let zst = build_from_inputs(
        &[seed()],
        &BuildOptions {
            compression: Compression::Zstd,
            ..build_options(&tmp.path().join("zst"))
        },
    )
    .unwrap();
    assert_eq!(gz.hash, zst.hash);
    assert!(zst.archive.to_string_lossy().ends_with(".tar.zst"));
    verify(&zst.archive).unwrap();
}

#[test]
fn a_seed_dataset_loaded_into_a_fresh_sqlite_store_exports_to_the_same_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(&tmp.path().join("built"));
    let mut store = Store::open(&format!(
        "sqlite://{}",
        tmp.path().join("fresh.db").display()
    ))
    .unwrap();
    let loaded = load(&built.archive, &mut store);
    assert_eq!(
        (loaded.records, loaded.written, loaded.noop),
        (1302, 1302, 0)
    );
    // Loading again is idempotent: all no-ops.
    let again = load(&built.archive, &mut store);
    assert_eq!((again.written, again.noop), (0, 1302));
    let exported =
        build_from_store(&mut store, &build_options(&tmp.path().join("exported"))).unwrap();
    assert_eq!(exported.hash, built.hash);
    assert_eq!(exported.manifest.files, built.manifest.files);
    verify(&exported.archive).unwrap();
}

#[test]
fn a_seed_dataset_loaded_into_a_fresh_postgres_database_exports_to_the_same_hash() {
    let Some(url) = fresh_pg_database("dataset_roundtrip") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(&tmp.path().join("built"));
    let mut store = Store::open(&url).unwrap();
    load(&built.archive, &mut store);
    let exported =
        build_from_store(&mut store, &build_options(&tmp.path().join("exported"))).unwrap();
    assert_eq!(exported.hash, built.hash);
    assert_eq!(
        exported.manifest.source,
        aoc_dataset::SourceInfo::Store {
            engine: "postgresql".into()
        }
    );
}

/// A fresh database on the `AOC_TEST_PG` server, or `None` with a loud skip (a failure under CI).
fn fresh_pg_database(name: &str) -> Option<String> {
    let Ok(base) = std::env::var("AOC_TEST_PG") else {
        let msg = "AOC_TEST_PG is not set: PostgreSQL round trip NOT TESTED. Run \
                   `eval \"$(scripts/pg-test-cluster.sh start)\"` first (see docs/ARCHITECTURE.md §12).";
        aoc_testkit::skip(msg);
        return None;
    };
    let db = format!(
        "{name}_{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin =
        postgres::Client::connect(&base, postgres::NoTls).expect("connecting to AOC_TEST_PG");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("AOC_TEST_PG is a URL with a database");
    Some(format!("{prefix}/{db}"))
}

#[test]
fn records_are_read_back_in_order_with_their_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let dataset = Dataset::open_verified(&built.archive).unwrap();
    assert_eq!(dataset.hash(), built.hash);
    let seen: Vec<(String, String)> = dataset
        .records()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            let id = r.doc()["upstream"]["upstream_id"]
                .as_str()
                .unwrap()
                .to_owned();
            (r.location, id)
        })
        .collect();
    assert_eq!(seen.len(), 1302);
    assert_eq!(seen[0].0, "data/default/rustsec.ndjson:1");
    assert_eq!(seen[1301].0, "data/default/rustsec.ndjson:1302");
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "upstream ids in order"
    );
}

#[test]
fn one_flipped_byte_in_the_archive_fails_verification_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let mut bytes = std::fs::read(&built.archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&built.archive, &bytes).unwrap();
    let err = verify(&built.archive).unwrap_err();
    assert!(err.to_string().contains(&built.hash.to_string()), "{err}");
    assert!(matches!(err.exit_code(), 1 | 2));
    assert!(Dataset::open_verified(&built.archive).is_err());
}

#[test]
fn one_flipped_byte_inside_a_record_of_a_plain_tar_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let mut tar = Vec::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&built.archive).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    // A letter in the first record's upstream summary: still JSON, different content.
    let at = tar.windows(9).position(|w| w == b"\"summary\"").unwrap() + 12;
    tar[at] ^= 0x20;
    let path = tmp.path().join(format!("aoc-dataset-{}.tar", built.hash));
    std::fs::write(&path, &tar).unwrap();
    let report = failed(verify(&path));
    let guard = report
        .failures
        .iter()
        .find(|f| f.check == Check::Guard(aoc_contract::ViolationCode::HashMismatch))
        .expect("ERR_AOC_005 reported");
    assert_eq!(
        (guard.file.as_str(), guard.line),
        ("data/default/rustsec.ndjson", Some(1))
    );
    assert!(has(&report, "data/default/rustsec.ndjson", |c| c
        == Check::Manifest));
    assert!(has(
        &report,
        &path.file_name().unwrap().to_string_lossy(),
        |c| c == Check::FileName
    ));
}

/// The seed build with the first record's summary edited, repacked under the build's own name.
fn with_an_edited_record(built: &BuildReport, dir: &Path) -> (String, PathBuf) {
    let name = built
        .archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let edited = repack(built, dir, &name, |path, data| {
        if path.starts_with("data/") {
            let text = String::from_utf8(std::mem::take(data)).unwrap();
            *data = text
                .replacen("\"summary\":\"", "\"summary\":\"EDITED ", 1)
                .into_bytes();
        }
    });
    (name, edited)
}

#[test]
fn an_edited_record_in_a_repacked_archive_fails_on_content_manifest_and_name() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(&tmp.path().join("built"));
    let (name, edited) = with_an_edited_record(&built, tmp.path());
    let report = failed(verify(&edited));
    assert!(has(&report, "data/default/rustsec.ndjson", |c| c
        == Check::Guard(aoc_contract::ViolationCode::HashMismatch)));
    assert!(has(&report, "data/default/rustsec.ndjson", |c| c
        == Check::Manifest));
    assert!(has(&report, "manifest.json", |c| c == Check::Hash));
    assert!(has(&report, &name, |c| c == Check::FileName));
}

#[test]
fn without_records_an_edited_record_still_fails_on_manifest_and_hash_but_is_not_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(&tmp.path().join("built"));
    let integrity = VerifyOptions {
        records: false,
        ..VerifyOptions::default()
    };
    let good = verify_with(&built.archive, &integrity).unwrap();
    assert_eq!(good.files, built.files());
    // Records are counted as lines; upstream documents need the records parsed.
    assert_eq!(good.records, built.records());
    assert_eq!(good.upstream_documents, 0);
    let (name, edited) = with_an_edited_record(&built, tmp.path());
    let report = failed(verify_with(&edited, &integrity));
    assert!(has(&report, "data/default/rustsec.ndjson", |c| c
        == Check::Manifest));
    assert!(has(&report, "manifest.json", |c| c == Check::Hash));
    assert!(has(&report, &name, |c| c == Check::FileName));
    assert!(
        !report
            .failures
            .iter()
            .any(|f| matches!(f.check, Check::Guard(_))),
        "{:?}",
        report.failures
    );
}

#[test]
fn an_edited_manifest_fails_against_contents_and_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let name = built
        .archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    repack(&built, tmp.path(), &name, |path, data| {
        if path == "manifest.json" {
            let text = String::from_utf8(std::mem::take(data)).unwrap();
            *data = text
                .replace("\"records\": 1302", "\"records\": 1301")
                .into_bytes();
        }
    });
    let report = failed(verify(&built.archive));
    assert!(
        has(&report, "data/default/rustsec.ndjson", |c| c
            == Check::Manifest),
        "{:#?}",
        report.failures
    );
    assert!(
        has(&report, ".manifest.json", |c| c == Check::Sidecar),
        "{:#?}",
        report.failures
    );
    // An edited sidecar alone is caught too.
    let built = build_seed(&tmp.path().join("again"));
    std::fs::write(&built.manifest_path, b"{}").unwrap();
    let report = failed(verify(&built.archive));
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].check, Check::Sidecar);
}

#[test]
fn a_renamed_archive_fails_on_the_hash_in_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let wrong = tmp
        .path()
        .join(format!("aoc-dataset-{}.tar.gz", "0".repeat(64)));
    std::fs::copy(&built.archive, &wrong).unwrap();
    let report = failed(verify(&wrong));
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    assert_eq!(report.failures[0].check, Check::FileName);
    assert!(report.failures[0].file.contains(&"0".repeat(64)));
    // A .tar.zst name on gzip data is wrong as well.
    let wrong_ext = tmp
        .path()
        .join(format!("aoc-dataset-{}.tar.zst", built.hash));
    std::fs::copy(&built.archive, &wrong_ext).unwrap();
    assert!(has(&failed(verify(&wrong_ext)), ".tar.zst", |c| c
        == Check::FileName));
    // A neutral name skips the name check with a note.
    let neutral = tmp.path().join("seed.tar.gz");
    std::fs::copy(&built.archive, &neutral).unwrap();
    let ok = verify(&neutral).unwrap();
    assert!(ok.notes.iter().any(|n| n.contains("name check skipped")));
}

#[test]
fn a_pinned_hash_must_match() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(tmp.path());
    let options = aoc_dataset::VerifyOptions {
        expected_hash: Some("ab".repeat(32)),
        ..Default::default()
    };
    let report = failed(aoc_dataset::verify_with(&built.archive, &options));
    assert_eq!(report.failures[0].check, Check::ExpectedHash);
}

/// A raw GNU tar header, so hostile names and types are written as given.
fn hostile_tar(name: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::new(kind));
    if kind == b'2' {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[test]
fn hostile_archives_are_refused_as_unreadable_naming_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, kind, expect) in [
        (&b"data/../../etc/evil.ndjson"[..], b'0', "`..`"),
        (&b"data/default/rustsec.ndjson"[..], b'2', "symbolic link"),
        (&b"/data/default/rustsec.ndjson"[..], b'0', "absolute"),
    ] {
        let path = tmp.path().join("aoc-dataset-hostile.tar");
        std::fs::write(&path, hostile_tar(name, kind, b"{}\n")).unwrap();
        let err = verify(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(expect) && msg.contains("aoc-dataset-hostile.tar"),
            "{msg}"
        );
        assert!(Dataset::open_verified(&path).is_err());
    }
}

#[test]
fn an_unexpected_member_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_seed(&tmp.path().join("built"));
    let members = ArchiveReader::open(&built.archive, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    let mut entries: Vec<Entry> = members
        .into_iter()
        .map(|(p, d)| Entry::bytes(p, d))
        .collect();
    entries.push(Entry::bytes("install.sh", b"rm -rf /\n".to_vec()));
    let out = tmp.path().join("extra.tar.gz");
    aoc_archive::pack(entries, &out, Compression::Gzip, 0).unwrap();
    let report = failed(verify(&out));
    assert!(has(&report, "install.sh", |c| c == Check::UnexpectedMember));
}

#[test]
fn large_exports_split_into_parts_that_verify_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_from_inputs(
        &[seed()],
        &BuildOptions {
            split_bytes: 1_000_000,
            ..build_options(&tmp.path().join("a"))
        },
    )
    .unwrap();
    let paths: Vec<&str> = built
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "data/default/rustsec.part-00000.ndjson",
            "data/default/rustsec.part-00001.ndjson",
            "data/default/rustsec.part-00002.ndjson",
            "data/default/rustsec.part-00003.ndjson"
        ]
    );
    assert!(built.manifest.files.iter().all(|f| f.bytes <= 1_000_000));
    let mut store = Store::open("sqlite://:memory:").unwrap();
    load(&built.archive, &mut store);
    let again = build_from_store(
        &mut store,
        &BuildOptions {
            split_bytes: 1_000_000,
            ..build_options(&tmp.path().join("b"))
        },
    )
    .unwrap();
    assert_eq!(again.hash, built.hash);
}

#[test]
fn a_tenant_filter_exports_only_that_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open("sqlite://:memory:").unwrap();
    for tenant in ["acme", "globex"] {
        let built = build_from_inputs(
            &[seed()],
            &BuildOptions {
                tenant: Some(tenant.into()),
                ..build_options(&tmp.path().join(tenant))
            },
        )
        .unwrap();
        load(&built.archive, &mut store);
    }
    let all = build_from_store(&mut store, &build_options(&tmp.path().join("all"))).unwrap();
    assert_eq!(all.manifest.tenants.len(), 2);
    assert_eq!(all.manifest.totals.records, 2 * 1302);
    let acme = build_from_store(
        &mut store,
        &BuildOptions {
            tenant: Some("acme".into()),
            ..build_options(&tmp.path().join("acme-only"))
        },
    )
    .unwrap();
    assert_eq!(acme.manifest.files[0].path, "data/acme/rustsec.ndjson");
    assert_eq!(acme.manifest.totals.records, 1302);
    assert_eq!(
        acme.hash,
        build_from_inputs(
            &[seed()],
            &BuildOptions {
                tenant: Some("acme".into()),
                ..build_options(&tmp.path().join("acme2"))
            }
        )
        .unwrap()
        .hash
    );
}

#[test]
fn the_cli_exit_codes_follow_the_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| aoc_dataset().args(args).output().unwrap();
    let out = tmp.path().join("out");
    let built = run(&[
        "build",
        "--from",
        seed().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        built.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let stdout = String::from_utf8(built.stdout).unwrap();
    let (hash, archive) = stdout.trim().split_once("  ").unwrap();
    assert_eq!(
        hash,
        build_seed(&tmp.path().join("lib")).hash.to_string(),
        "the CLI builds what the library builds"
    );
    assert_eq!(run(&["verify", archive]).status.code(), Some(0));
    let renamed = out.join(format!("aoc-dataset-{}.tar.gz", "1".repeat(64)));
    std::fs::copy(archive, &renamed).unwrap();
    let failed = run(&["verify", renamed.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("file-name"));
    let hostile = tmp.path().join("h.tar");
    std::fs::write(&hostile, hostile_tar(b"../x", b'0', b"")).unwrap();
    assert_eq!(
        run(&["verify", hostile.to_str().unwrap()]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["verify", "/nonexistent.tar.gz"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["build", "--out", out.to_str().unwrap()])
            .status
            .code(),
        Some(2),
        "no source is a usage error"
    );
}
