//! The dataset's identity is its definition and its inputs' bytes: the same hash from a full clone,
//! a `git clone --depth 1`, a `git archive` export without `.git` and a clone at another path,
//! whatever SOURCE_DATE_EPOCH the release runs with; another input byte or another definition
//! value gives another hash. The acceptance check rehearses in a full clone and then runs the
//! production release's dataset step, pinned to the rehearsed hash, in a depth-1 clone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xshell::{cmd, Shell};

use super::{is_definition, parse_clock, DatasetSpec, Origin, DEFAULT_DEFINITION, KIND};
use crate::rehearsal::report::Lookup;
use crate::release::tests::{names, root, EPOCH};
use crate::release::{release_carrying, ReleaseOptions};

/// A definition file's text.
fn definition_text(inputs: &[&str], clock: &str, tenant: Option<&str>) -> String {
    let inputs: Vec<String> = inputs.iter().map(|i| format!("{i:?}")).collect();
    let tenant = tenant.map_or(String::new(), |t| format!(",\n  \"tenant\": {t:?}"));
    format!(
        "{{\n  \"kind\": {KIND:?},\n  \"schema_version\": 1,\n  \"inputs\": [{}],\n  \
         \"clock\": {clock}{tenant}\n}}\n",
        inputs.join(", ")
    )
}

/// The hash of the dataset the definition at `path` describes.
fn hash_of(path: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    DatasetSpec::load(path)
        .unwrap()
        .build(out.path())
        .unwrap()
        .hash
}

fn error_of(r: anyhow::Result<DatasetSpec>) -> String {
    format!("{:#}", r.expect_err("must be refused"))
}

/// A directory holding a copy of the small revision feed from testdata and a definition of it.
fn small_definition(clock: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("testdata/history-sample.ndjson"),
        dir.path().join("feed.ndjson"),
    )
    .unwrap();
    let def = dir.path().join("dataset.json");
    std::fs::write(&def, definition_text(&["feed.ndjson"], clock, None)).unwrap();
    (dir, def)
}

#[test]
fn the_repository_dataset_is_its_definition() {
    let seed = DatasetSpec::resolve(&root(), &[], None, None).unwrap();
    assert_eq!(
        seed,
        DatasetSpec::load(&root().join(DEFAULT_DEFINITION)).unwrap()
    );
    assert_eq!(
        seed.inputs,
        [root().join("seed/rustsec-seed.ndjson.zst")],
        "seed/dataset.json names the seed feed"
    );
    assert_eq!(seed.tenant.as_deref(), Some("default"));
    assert!(is_definition(&root().join(DEFAULT_DEFINITION)));
    assert!(!is_definition(
        &root().join("testdata/osv-rustsec/RUSTSEC-2023-0044.json")
    ));
    // Passing the definition explicitly is the same dataset.
    let explicit =
        DatasetSpec::resolve(&root(), &[root().join(DEFAULT_DEFINITION)], None, Some(1)).unwrap();
    assert_eq!(explicit, seed);
}

#[test]
fn the_hash_moves_with_input_bytes_and_definition_values_only() {
    let (dir, def) = small_definition("\"2024-05-06T07:08:09Z\"");
    let base = hash_of(&def);

    // The same clock as seconds, with other whitespace and key order: the same dataset.
    let seconds = parse_clock("2024-05-06T07:08:09Z").unwrap();
    assert_eq!(seconds, 1_714_979_289);
    std::fs::write(
        &def,
        format!(
            "{{\"clock\":{seconds},\"inputs\":[\"feed.ndjson\"],\"schema_version\":1,\
             \"kind\":{KIND:?}}}"
        ),
    )
    .unwrap();
    assert_eq!(hash_of(&def), base);
    // Its RFC 3339 form with an offset is the same instant.
    std::fs::write(
        &def,
        definition_text(&["feed.ndjson"], "\"2024-05-06T09:08:09+02:00\"", None),
    )
    .unwrap();
    assert_eq!(hash_of(&def), base);
    // `default` is the default tenant.
    std::fs::write(
        &def,
        definition_text(&["feed.ndjson"], &seconds.to_string(), Some("default")),
    )
    .unwrap();
    assert_eq!(hash_of(&def), base);

    // One second later: another dataset.
    std::fs::write(
        &def,
        definition_text(&["feed.ndjson"], &(seconds + 1).to_string(), None),
    )
    .unwrap();
    let later = hash_of(&def);
    assert_ne!(later, base);
    // Another tenant: another dataset.
    std::fs::write(
        &def,
        definition_text(&["feed.ndjson"], &seconds.to_string(), Some("acme")),
    )
    .unwrap();
    let acme = hash_of(&def);
    assert_ne!(acme, base);
    assert_ne!(acme, later);

    // One byte of the input changed (a letter of the first summary): another dataset.
    std::fs::write(
        &def,
        definition_text(&["feed.ndjson"], &seconds.to_string(), None),
    )
    .unwrap();
    assert_eq!(hash_of(&def), base);
    let feed = dir.path().join("feed.ndjson");
    let mut bytes = std::fs::read(&feed).unwrap();
    let at = memchr_find(&bytes, b"\"summary\":\"Possible") + b"\"summary\":\"".len();
    assert_eq!(bytes[at], b'P');
    bytes[at] = b'Q';
    std::fs::write(&feed, &bytes).unwrap();
    let edited = hash_of(&def);
    assert_ne!(edited, base);
    // And back: the same bytes are the same dataset again.
    bytes[at] = b'P';
    std::fs::write(&feed, &bytes).unwrap();
    assert_eq!(hash_of(&def), base);
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn definitions_are_read_strictly() {
    let (dir, def) = small_definition("0");
    let write = |text: &str| std::fs::write(&def, text).unwrap();
    let cases: &[(String, &str)] = &[
        (
            definition_text(&["/etc/passwd"], "0", None),
            "must be a relative path inside the definition's directory",
        ),
        (
            definition_text(&["../feed.ndjson"], "0", None),
            "must be a relative path inside the definition's directory",
        ),
        (
            definition_text(&["missing.ndjson"], "0", None),
            "does not exist",
        ),
        (
            definition_text(&["feed.ndjson", "feed.ndjson"], "0", None),
            "listed twice",
        ),
        (definition_text(&[], "0", None), "names no inputs"),
        (
            definition_text(&["feed.ndjson"], "\"yesterday\"", None),
            "neither whole seconds since 1970 nor an RFC 3339 time",
        ),
        (definition_text(&["feed.ndjson"], "-1", None), "before 1970"),
        (
            definition_text(&["feed.ndjson"], "0", Some("")),
            "tenant is empty",
        ),
        (
            definition_text(&["feed.ndjson"], "0", None).replace(KIND, "something-else"),
            "kind is \"something-else\"",
        ),
        (
            definition_text(&["feed.ndjson"], "0", None)
                .replace("\"schema_version\": 1", "\"schema_version\": 2"),
            "schema_version 2 is not 1",
        ),
        (
            definition_text(&["feed.ndjson"], "0", None)
                .replace("\"clock\"", "\"split_mib\": 1, \"clock\""),
            "is not a dataset definition",
        ),
    ];
    for (text, expected) in cases {
        write(text);
        let err = error_of(DatasetSpec::load(&def));
        assert!(err.contains(expected), "{text}\n=> {err}");
    }
    drop(dir);
}

#[test]
fn explicit_inputs_need_an_explicit_clock_and_a_definition_refuses_one() {
    let r = root();
    let feed = r.join("testdata/history-sample.ndjson");
    let err = error_of(DatasetSpec::resolve(
        &r,
        std::slice::from_ref(&feed),
        None,
        None,
    ));
    assert!(
        err.contains("need their clock") && err.contains("--dataset-epoch"),
        "{err}"
    );
    // --dataset-epoch / AOC_DATASET_EPOCH, else the caller's pinned clock.
    let spec = DatasetSpec::resolve(&r, std::slice::from_ref(&feed), Some(5), Some(7)).unwrap();
    assert_eq!((spec.epoch, &spec.origin), (5, &Origin::Explicit));
    let spec = DatasetSpec::resolve(&r, std::slice::from_ref(&feed), None, Some(7)).unwrap();
    assert_eq!(spec.epoch, 7);
    // A definition carries its clock: another one beside it is refused, a pinned one ignored.
    let err = error_of(DatasetSpec::resolve(&r, &[], Some(5), None));
    assert!(
        err.contains("seed/dataset.json carries its own") && err.contains("AOC_DATASET_EPOCH"),
        "{err}"
    );
    let seed = DatasetSpec::resolve(&r, &[], None, Some(7)).unwrap();
    assert_ne!(seed.epoch, 7);
    // A definition among other inputs is ambiguous.
    let err = error_of(DatasetSpec::resolve(
        &r,
        &[r.join(DEFAULT_DEFINITION), feed],
        Some(5),
        None,
    ));
    assert!(err.contains("pass it alone"), "{err}");
    // No definition where the default one should be.
    let empty = tempfile::tempdir().unwrap();
    let err = error_of(DatasetSpec::resolve(empty.path(), &[], None, Some(7)));
    assert!(err.contains("reading the dataset definition"), "{err}");
    assert_eq!(parse_clock(" 1795710483 ").unwrap(), 1_795_710_483);
    assert_eq!(parse_clock("2026-11-26T16:28:03Z").unwrap(), 1_795_710_483);
}

// ---- checkouts -------------------------------------------------------------------------------

/// git with no user or system configuration, as a fresh CI machine has.
fn git(sh: &Shell, args: &[&str]) -> String {
    cmd!(
        sh,
        "git -c user.name=aoc -c user.email=aoc@invalid {args...}"
    )
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .quiet()
    .read()
    .unwrap_or_else(|e| panic!("git {args:?}: {e}"))
}

fn git_dated(sh: &Shell, date: &str, args: &[&str]) {
    let _author = sh.push_env("GIT_AUTHOR_DATE", date);
    let _committer = sh.push_env("GIT_COMMITTER_DATE", date);
    git(sh, args);
}

/// Every kind of checkout of one repository, which holds the workspace's `seed/` (committed long
/// ago) and the key files a release reads, followed by an unrelated newer commit: so the last
/// commit touching the seed, HEAD's time and SOURCE_DATE_EPOCH all differ.
struct Checkouts {
    _scratch: tempfile::TempDir,
    full: PathBuf,
    shallow: PathBuf,
    archive: PathBuf,
    elsewhere: PathBuf,
    /// The production key pair committed as `tools/cosign/cosign.pub` (key, its password).
    prod_key: PathBuf,
}

const PROD_PASSWORD: &str = "prod-password";

fn checkouts() -> Checkouts {
    let scratch = tempfile::tempdir().unwrap();
    let origin = scratch.path().join("origin");
    std::fs::create_dir_all(origin.join("seed")).unwrap();
    std::fs::create_dir_all(origin.join("tools/cosign")).unwrap();
    for entry in std::fs::read_dir(root().join("seed")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), origin.join("seed").join(entry.file_name())).unwrap();
    }
    for name in ["cosign.dev.key", "cosign.dev.pub"] {
        std::fs::copy(
            root().join("tools/cosign").join(name),
            origin.join("tools/cosign").join(name),
        )
        .unwrap();
    }
    let keys = scratch.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (prod_key, prod_pub) =
        crate::keygen::keygen(&keys, "prod", Some(PROD_PASSWORD), false).unwrap();
    std::fs::copy(&prod_pub, origin.join("tools/cosign/cosign.pub")).unwrap();

    let sh = Shell::new().unwrap();
    sh.change_dir(&origin);
    git(&sh, &["init", "-q", "-b", "main"]);
    git(&sh, &["add", "seed", "tools"]);
    git_dated(
        &sh,
        "2020-01-01T00:00:00Z",
        &["commit", "-q", "-m", "seed and keys"],
    );
    std::fs::write(origin.join("NOTES.md"), "unrelated\n").unwrap();
    git(&sh, &["add", "NOTES.md"]);
    git_dated(
        &sh,
        "2021-06-01T00:00:00Z",
        &["commit", "-q", "-m", "unrelated"],
    );

    let url = format!("file://{}", origin.display());
    let full = scratch.path().join("full");
    let shallow = scratch.path().join("shallow");
    let elsewhere = scratch.path().join("some/other/place/clone");
    let archive = scratch.path().join("archive");
    sh.change_dir(scratch.path());
    let (full_s, shallow_s, elsewhere_s) = (
        full.display().to_string(),
        shallow.display().to_string(),
        elsewhere.display().to_string(),
    );
    git(&sh, &["clone", "-q", &url, &full_s]);
    git(&sh, &["clone", "-q", "--depth", "1", &url, &shallow_s]);
    git(&sh, &["clone", "-q", &url, &elsewhere_s]);
    // `git archive HEAD | tar -x`, without a shell: the same tar through a file.
    std::fs::create_dir(&archive).unwrap();
    let tar = scratch.path().join("head.tar");
    sh.change_dir(&origin);
    git(
        &sh,
        &[
            "archive",
            "--format=tar",
            "-o",
            &tar.display().to_string(),
            "HEAD",
        ],
    );
    cmd!(sh, "tar -xf {tar} -C {archive}")
        .quiet()
        .run()
        .unwrap();

    // What the old clock rule read differs between them.
    sh.change_dir(&shallow);
    assert_eq!(git(&sh, &["rev-parse", "--is-shallow-repository"]), "true");
    assert_eq!(
        git(&sh, &["log", "-1", "--format=%ct", "--", "seed"]),
        "1622505600"
    );
    sh.change_dir(&full);
    assert_eq!(
        git(&sh, &["log", "-1", "--format=%ct", "--", "seed"]),
        "1577836800"
    );
    assert!(!archive.join(".git").exists());
    Checkouts {
        _scratch: scratch,
        full,
        shallow,
        archive,
        elsewhere,
        prod_key,
    }
}

/// A release rooted at `root` that must pass the dataset step and then stop at the runner build
/// (the binary it is given does not exist), proving the pin matched without building anything.
fn release_until_the_runner(
    checkout: &Path,
    env: BTreeMap<String, String>,
    epoch: i64,
    rehearsal: &Lookup,
) -> (String, Duration) {
    let sh = Shell::new().unwrap();
    sh.change_dir(checkout);
    let out = tempfile::tempdir().unwrap();
    let opts = ReleaseOptions {
        out: out.path().join("aoc"),
        dataset_from: Vec::new(),
        publish: None,
        runner_binary: Some(out.path().join("no-such-stella")),
        epoch: Some(epoch),
        env,
        print: false,
    };
    let t = Instant::now();
    let err = release_carrying(&sh, &opts, rehearsal)
        .err()
        .map(|e| format!("{e:#}"))
        .expect("the runner binary does not exist, so the release must stop there");
    assert!(names(out.path()).is_empty(), "left {:?}", names(out.path()));
    (err, t.elapsed())
}

fn pinned_dev_env(hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("COSIGN_ALLOW_DEV_KEY".to_string(), "1".to_string()),
        ("DATASET_HASH".to_string(), hash.to_string()),
    ])
}

fn assert_reached_the_runner_build(err: &str) {
    assert!(
        err.contains("step `build runner` failed") && err.contains("does not exist"),
        "the release did not get past the dataset step: {err}"
    );
}

#[test]
fn every_kind_of_checkout_gives_the_same_dataset_hash_whatever_source_date_epoch() {
    let c = checkouts();
    let workspace = DatasetSpec::resolve(&root(), &[], None, None).unwrap();
    let t = Instant::now();
    let expected = {
        let out = tempfile::tempdir().unwrap();
        workspace.build(out.path()).unwrap().hash
    };
    eprintln!(
        "dataset of the workspace's seed/dataset.json: {expected} ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    for (kind, dir) in [
        ("full clone", &c.full),
        ("git clone --depth 1", &c.shallow),
        ("git archive HEAD | tar -x (no .git)", &c.archive),
        ("clone at another path", &c.elsewhere),
    ] {
        let spec = DatasetSpec::resolve(dir, &[], None, None).unwrap();
        assert_eq!(spec.epoch, workspace.epoch, "{kind}");
        let out = tempfile::tempdir().unwrap();
        let hash = spec.build(out.path()).unwrap().hash;
        eprintln!("dataset of the {kind}: {hash}");
        assert_eq!(hash, expected, "{kind}");
    }
    // The release's own dataset step, pinned, with SOURCE_DATE_EPOCH far apart (the release reads
    // it for everything but the dataset): the pin holds in the shallow clone and the export.
    for (dir, epoch) in [
        (&c.shallow, 1),
        (&c.shallow, EPOCH),
        (&c.archive, 2_000_000_000),
    ] {
        let (err, _) =
            release_until_the_runner(dir, pinned_dev_env(&expected), epoch, &Lookup::Off);
        assert_reached_the_runner_build(&err);
    }
    // And a pin to another hash fails in the dataset step, naming both.
    let other = "0".repeat(64);
    let (err, _) =
        release_until_the_runner(&c.shallow, pinned_dev_env(&other), EPOCH, &Lookup::Off);
    assert!(
        err.contains("step `dataset` failed") && err.contains(&other) && err.contains(&expected),
        "{err}"
    );
}

#[test]
fn another_seed_byte_in_a_checkout_gives_another_hash() {
    let c = checkouts();
    let seed = c.elsewhere.join("seed/rustsec-seed.ndjson.zst");
    let before = hash_of(&c.elsewhere.join(DEFAULT_DEFINITION));
    // A second zstd frame with one more revision line: still a valid feed, one byte more.
    let line = std::fs::read_to_string(root().join("testdata/history-sample.ndjson"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut frame =
        aoc_archive::CompressWriter::new(Vec::new(), aoc_archive::Compression::Zstd).unwrap();
    std::io::Write::write_all(&mut frame, format!("{line}\n").as_bytes()).unwrap();
    let frame = frame.finish().unwrap();
    let mut bytes = std::fs::read(&seed).unwrap();
    bytes.extend_from_slice(&frame);
    std::fs::write(&seed, &bytes).unwrap();
    let after = hash_of(&c.elsewhere.join(DEFAULT_DEFINITION));
    assert_ne!(before, after);
    // The definition's clock is the other input.
    let def = c.full.join(DEFAULT_DEFINITION);
    let text = std::fs::read_to_string(&def).unwrap();
    let clock = DatasetSpec::load(&def).unwrap().epoch;
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["clock"] = (clock + 1).into();
    std::fs::write(&def, v.to_string()).unwrap();
    assert_ne!(hash_of(&def), before);
}

/// The acceptance check: the dev rehearsal in a full clone prints a hash; the production release
/// in a `git clone --depth 1` of the same commit, pinned to it with AOC_REQUIRE_PROD_KEY=1 and the
/// committed production key, passes the dataset step and accepts the rehearsal's report.
#[test]
fn a_hash_rehearsed_in_a_full_clone_pins_the_production_release_in_a_depth_1_clone() {
    let c = checkouts();
    let sh = Shell::new().unwrap();
    sh.change_dir(&c.full);
    let out = c.full.join("out/rehearsal");
    let rehearsed = crate::rehearsal::rehearse(
        &sh,
        &crate::rehearsal::RehearsalOptions {
            out: out.clone(),
            from: Vec::new(),
            store: None,
            runner_binary: Some(crate::rehearsal::tests::stella()),
            epoch: None,
            dataset_epoch: None,
            print: false,
        },
    )
    .unwrap();
    let hash = rehearsed.report.dataset_hash.clone();
    assert_eq!(
        rehearsed.report.release_command,
        format!("DATASET_HASH={hash} AOC_REQUIRE_PROD_KEY=1 COSIGN_KEY=… cargo xtask aoc-release")
    );
    eprintln!("rehearsed in a full clone: {hash}");

    let prod = BTreeMap::from([
        ("AOC_REQUIRE_PROD_KEY".to_string(), "1".to_string()),
        ("COSIGN_KEY".to_string(), c.prod_key.display().to_string()),
        ("COSIGN_PASSWORD".to_string(), PROD_PASSWORD.to_string()),
        ("DATASET_HASH".to_string(), hash.clone()),
    ]);
    let (err, took) = release_until_the_runner(
        &c.shallow,
        prod.clone(),
        EPOCH,
        &Lookup::File(rehearsed.path.clone()),
    );
    assert_reached_the_runner_build(&err);
    eprintln!(
        "production release's dataset step in a depth-1 clone: pin {hash} held ({:.1} s)",
        took.as_secs_f64()
    );
    // The same release pinned to anything else stops in the dataset step.
    let mut wrong = prod;
    wrong.insert("DATASET_HASH".into(), "f".repeat(64));
    let (err, _) = release_until_the_runner(&c.shallow, wrong, EPOCH, &Lookup::Off);
    assert!(
        err.contains("step `dataset` failed") && err.contains(&hash),
        "{err}"
    );
}
