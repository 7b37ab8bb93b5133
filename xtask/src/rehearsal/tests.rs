//! The rehearsal as the runbook uses it: on the repository's seed into SQLite and into a real
//! PostgreSQL (the same hash), stopping at the failed step without a success report, and the
//! release pinned to the rehearsed hash carrying the report that aoc-verify then checks.
//!
//! `stella` is the release build (`target/aoc-release`, cached); `AOC_TEST_RUNNER_BINARY=PATH`
//! reuses a prebuilt one. PostgreSQL: `AOC_TEST_PG` = a server URL (a fresh database is created
//! per test); unset, those tests skip loudly, and fail when `CI` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aoc_kit::CheckId;
use xshell::{cmd, Shell};

use super::report::{self, Lookup, Report};
use super::{rehearse, summary, Rehearsal, RehearsalOptions};
use crate::dataset_definition::{DatasetSpec, Origin, DEFAULT_DEFINITION};
use crate::kit;
use crate::release::{release_carrying, ReleaseOptions};
use crate::verify::{verify_kit, VerifyOptions};

use crate::release::tests::{names, root, shell, EPOCH};

fn options(out: PathBuf) -> RehearsalOptions {
    RehearsalOptions {
        out,
        from: Vec::new(),
        store: None,
        runner_binary: Some(stella()),
        epoch: Some(EPOCH),
        dataset_epoch: None,
        print: false,
    }
}

/// The release build of `stella`, built once per test binary through the release's own build
/// (so it is the cached `target/aoc-release` binary), or `AOC_TEST_RUNNER_BINARY`.
pub(crate) fn stella() -> PathBuf {
    static STELLA: OnceLock<PathBuf> = OnceLock::new();
    STELLA
        .get_or_init(|| match std::env::var_os("AOC_TEST_RUNNER_BINARY") {
            Some(p) => PathBuf::from(p),
            None => kit::runner::build(&shell(), &root()).unwrap(),
        })
        .clone()
}

struct Seeded {
    _scratch: tempfile::TempDir,
    out: PathBuf,
    done: Rehearsal,
}

/// One rehearsal of the seed into a temporary SQLite store, shared by the tests that need its
/// hash or report; it runs the real runner build (not `--runner-binary`) unless
/// `AOC_TEST_RUNNER_BINARY` is set.
fn seeded() -> &'static Seeded {
    static SEEDED: OnceLock<Seeded> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let scratch = crate::release::tests::static_scratch();
        let out = scratch.path().join("out/rehearsal");
        let mut opts = options(out.clone());
        opts.runner_binary = std::env::var_os("AOC_TEST_RUNNER_BINARY").map(PathBuf::from);
        let done = rehearse(&shell(), &opts).unwrap();
        Seeded {
            _scratch: scratch,
            out,
            done,
        }
    })
}

/// `rehearsal-<64 hex>.json` files: reports that claim success.
fn success_reports(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| {
            n.strip_prefix("rehearsal-")
                .and_then(|r| r.strip_suffix(".json"))
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect()
}

/// The single failure report in `dir`, parsed.
fn failure_report(dir: &Path) -> serde_json::Value {
    let failed: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with("rehearsal-FAILED-") && n.ends_with(".json"))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", names(dir));
    serde_json::from_slice(&std::fs::read(dir.join(&failed[0])).unwrap()).unwrap()
}

fn git(sh: &Shell, args: &[&str]) -> String {
    cmd!(sh, "git {args...}").quiet().read().unwrap()
}

#[test]
fn rehearsal_of_the_seed_into_sqlite_writes_the_report_and_prints_the_release_command() {
    let s = seeded();
    let r = &s.done.report;
    let hash = &r.dataset_hash;
    let definition = assert_out_dir_holds_the_dataset_and_the_report(s);

    // The report on disk: every field.
    let on_disk: Report = serde_json::from_slice(&std::fs::read(&s.done.path).unwrap()).unwrap();
    assert_eq!(on_disk.kind, "stellaops.aoc-rehearsal");
    assert_eq!(on_disk.schema_version, 1);
    assert!(on_disk.ok);
    assert_eq!(&on_disk.dataset_hash, hash);
    assert_eq!(on_disk.dataset.archive, kit::dataset_tarball(hash));
    assert_eq!(
        on_disk.dataset.archive_sha256,
        kit::sha256_file(&s.out.join(kit::dataset_tarball(hash)))
            .unwrap()
            .to_string()
    );
    assert_eq!(on_disk.dataset.inputs, ["seed/rustsec-seed.ndjson.zst"]);
    assert_the_seed_counts(&on_disk.counts);
    assert_steps_and_tools(&on_disk);
    assert_source_and_store(&on_disk);
    // The definition's clock, not the caller's SOURCE_DATE_EPOCH.
    assert_eq!(on_disk.source_date_epoch, definition.epoch);
    assert_ne!(definition.epoch, EPOCH);
    let command = assert_release_command(s, &on_disk);

    // The returned report is the file's, plus the timing of writing it.
    let mut returned = r.clone();
    assert_eq!(returned.steps.pop().unwrap().name, "report");
    assert_eq!(returned, on_disk);

    assert_what_the_user_reads(s, &command);
}

/// The out directory holds the dataset and the report, whose hash is the seed definition's; the
/// definition.
fn assert_out_dir_holds_the_dataset_and_the_report(s: &Seeded) -> DatasetSpec {
    let hash = &s.done.report.dataset_hash;
    // The out directory holds the dataset and the report, nothing else (no work or temp files).
    assert_eq!(s.done.path, s.out.join(format!("rehearsal-{hash}.json")));
    assert_eq!(
        names(&s.out),
        [
            kit::dataset_manifest(hash),
            kit::dataset_tarball(hash),
            kit::rehearsal_report(hash),
        ]
    );
    // The hash is the dataset's content address, and the one the seed's definition gives.
    let manifest = aoc_dataset::verify(&s.out.join(kit::dataset_tarball(hash))).unwrap();
    assert_eq!(&manifest.hash.to_string(), hash);
    let scratch = tempfile::tempdir().unwrap();
    let definition = DatasetSpec::load(&root().join(DEFAULT_DEFINITION)).unwrap();
    assert_eq!(&definition.build(scratch.path()).unwrap().hash, hash);
    definition
}

/// seed/README.md: 302 RustSec advisories with 1,302 revisions.
fn assert_the_seed_counts(c: &report::Counts) {
    assert_eq!(
        (
            c.records,
            c.upstream_documents,
            c.written,
            c.noop,
            c.rejected
        ),
        (1302, 302, 1302, 0, 0)
    );
    assert_eq!((c.rerun_written, c.rerun_noop), (0, 1302));
    assert_eq!((c.verified_documents, c.violations), (1302, 0));
    assert_eq!(
        c.by_vendor
            .iter()
            .map(|v| (
                v.tenant.as_str(),
                v.vendor.as_str(),
                v.records,
                v.upstream_documents
            ))
            .collect::<Vec<_>>(),
        [("default", "rustsec", 1302, 302)]
    );
}

/// The steps in order, and the tools with their versions.
fn assert_steps_and_tools(on_disk: &Report) {
    let steps: Vec<&str> = on_disk.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "fresh store",
            "dataset",
            "build runner",
            "backfill",
            "verify",
            "re-export",
            "backfill again"
        ]
    );
    assert!(on_disk.steps.iter().all(|s| s.seconds >= 0.0));
    assert!(
        on_disk.tools.stella.starts_with("stella "),
        "{}",
        on_disk.tools.stella
    );
    assert_eq!(
        on_disk.tools.aoc_dataset,
        format!("aoc-dataset {}", aoc_dataset::TOOL_VERSION)
    );
    assert_eq!(
        on_disk.tools.dataset_schema_version,
        aoc_dataset::SCHEMA_VERSION
    );
}

/// The commit rehearsed, and the temporary store (removed).
fn assert_source_and_store(on_disk: &Report) {
    let sh = shell();
    assert_eq!(
        on_disk.source.commit,
        git(&sh, &["rev-parse", "HEAD"]).trim()
    );
    assert_eq!(
        on_disk.source.dirty,
        !git(&sh, &["status", "--porcelain", "--untracked-files=no"])
            .trim()
            .is_empty()
    );
    assert_eq!(on_disk.store.engine, "sqlite");
    assert!(on_disk.store.temporary);
    let db = on_disk.store.url.strip_prefix("sqlite://").unwrap();
    assert!(!Path::new(db).exists(), "the temporary store {db} was left");
}

/// The release command the report names; returned.
fn assert_release_command(s: &Seeded, on_disk: &Report) -> String {
    let hash = &on_disk.dataset_hash;
    // Not the default out directory, so the command names the report (relative to the
    // workspace, where the command is run, when it is inside it). The definition is committed,
    // so the command needs no clock.
    let command = format!(
        "DATASET_HASH={hash} AOC_REQUIRE_PROD_KEY=1 COSIGN_KEY=… \
         cargo xtask aoc-release --rehearsal-report {}",
        s.done
            .path
            .strip_prefix(root())
            .unwrap_or(&s.done.path)
            .display()
    );
    assert_eq!(on_disk.release_command, command);

    command
}

/// The summary, and `--format json`, as the user reads them at the end.
fn assert_what_the_user_reads(s: &Seeded, command: &str) {
    let (r, hash) = (&s.done.report, &s.done.report.dataset_hash);
    let text = summary(&s.done);
    assert!(
        text.contains(&format!("dataset {hash} rehearsed on sqlite")),
        "{text}"
    );
    assert!(text.ends_with(&format!("  {command}\n\n")), "{text}");

    // `--format json`: the report and where it is, as one document that parses back.
    let json: serde_json::Value =
        serde_json::from_slice(&aoc_term::pretty_json(&super::summary_json(&s.done))).unwrap();
    assert_eq!(
        (json["ok"].as_bool(), json["dataset_hash"].as_str()),
        (Some(true), Some(&**hash))
    );
    assert_eq!(json["report_path"].as_str(), s.done.path.to_str());
    let reported: Report = serde_json::from_value(json["report"].clone()).unwrap();
    assert_eq!(&reported, r);
}

#[test]
fn a_rehearsal_into_the_default_out_dir_prints_the_plain_release_command() {
    let root = root();
    let opts = RehearsalOptions {
        out: root.join(super::DEFAULT_OUT),
        from: Vec::new(),
        store: None,
        runner_binary: None,
        epoch: None,
        dataset_epoch: None,
        print: false,
    };
    let seed = DatasetSpec::resolve(&root, &[], None, None).unwrap();
    assert_eq!(
        super::release_command(&root, &opts, &seed, "ab"),
        "DATASET_HASH=ab AOC_REQUIRE_PROD_KEY=1 COSIGN_KEY=… cargo xtask aoc-release"
    );
    // Inputs without a definition: their clock is part of the command.
    let opts = RehearsalOptions {
        from: vec![root.join("feeds/a b.ndjson"), PathBuf::from("/srv/osv")],
        ..opts
    };
    let explicit = DatasetSpec {
        inputs: opts.from.clone(),
        epoch: 42,
        tenant: None,
        origin: Origin::Explicit,
    };
    assert_eq!(
        super::release_command(&root, &opts, &explicit, "ab"),
        "DATASET_HASH=ab AOC_REQUIRE_PROD_KEY=1 COSIGN_KEY=… cargo xtask \
         aoc-release --dataset-from 'feeds/a b.ndjson' /srv/osv --dataset-epoch 42"
    );
    // Another definition: named, no clock.
    let opts = RehearsalOptions {
        from: vec![root.join("seed/dataset.json")],
        ..opts
    };
    assert_eq!(
        super::release_command(&root, &opts, &seed, "ab"),
        "DATASET_HASH=ab AOC_REQUIRE_PROD_KEY=1 COSIGN_KEY=… cargo xtask \
         aoc-release --dataset-from seed/dataset.json"
    );
}

// ---- PostgreSQL ------------------------------------------------------------------------------

/// The server from `AOC_TEST_PG`, or None after a loud skip (a failure under CI).
fn pg_server() -> Option<String> {
    if let Some(url) = std::env::var("AOC_TEST_PG").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let how = "set AOC_TEST_PG to a server URL, e.g. \
               eval \"$(bash scripts/pg-test-cluster.sh start)\", or run `cargo xtask test`";
    aoc_testkit::skip(format!("the PostgreSQL rehearsal needs a server: {how}"));
    None
}

/// A fresh database on the server, dropped when this is.
struct Database {
    server: String,
    name: String,
}

impl Database {
    fn create(server: &str, tag: &str) -> Database {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("aoc_rehearsal_{tag}_{}_{n}", std::process::id());
        let mut client = postgres::Client::connect(server, postgres::NoTls).unwrap();
        // One statement per call: several in one simple query run as one transaction, which
        // CREATE/DROP DATABASE refuse.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Database {
            server: server.to_string(),
            name,
        }
    }

    /// The database's URL, with `password` in the user info when given.
    fn url(&self, password: Option<&str>) -> String {
        let base = self.server.split('?').next().unwrap();
        let (scheme, rest) = base.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        let authority = match (password, authority.split_once('@')) {
            (Some(pw), Some((user, host))) => {
                format!("{}:{pw}@{host}", user.split(':').next().unwrap())
            }
            _ => authority.to_string(),
        };
        format!("{scheme}://{authority}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[test]
fn rehearsal_against_postgresql_gives_the_sqlite_hash_and_keeps_the_password_out() {
    let Some(server) = pg_server() else { return };
    let db = Database::create(&server, "pg");
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("rehearsal");
    let mut opts = options(out.clone());
    // The test cluster trusts every connection, so the password is accepted and ignored: enough
    // to prove it never reaches the report.
    let secret = "s3cret-rehearsal";
    opts.store = Some(db.url(Some(secret)));
    let done = rehearse(&shell(), &opts).unwrap();

    let sqlite = &seeded().done.report;
    assert_eq!(done.report.dataset_hash, sqlite.dataset_hash);
    assert_eq!(done.report.counts, sqlite.counts);
    assert_eq!(done.report.store.engine, "postgresql");
    assert!(!done.report.store.temporary);
    assert_eq!(done.report.store.url, db.url(Some("***")));
    let text = std::fs::read_to_string(&done.path).unwrap();
    assert!(!text.contains(secret), "the password leaked into {text}");
    assert!(!summary(&done).contains(secret));

    // The database now holds the dataset: a second rehearsal refuses it before building anything.
    let out2 = scratch.path().join("again");
    let mut opts = options(out2.clone());
    opts.store = Some(db.url(Some(secret)));
    let err = format!("{:#}", rehearse(&shell(), &opts).err().unwrap());
    assert!(err.contains("step `fresh store` failed"), "{err}");
    assert!(
        err.contains("not fresh: it holds 1302 document(s)"),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
    assert!(success_reports(&out2).is_empty());
    assert_eq!(failure_report(&out2)["failed_step"], "fresh store");
}

// ---- failed steps ----------------------------------------------------------------------------

#[test]
fn a_non_empty_sqlite_store_stops_at_the_fresh_store_step_before_any_work() {
    let scratch = tempfile::tempdir().unwrap();
    let db = scratch.path().join("used.db");
    let url = format!("sqlite://{}", db.display());
    let (stella, dataset) = (stella(), seeded().done.archive.clone());
    let sh = shell();
    cmd!(sh, "{stella} aoc backfill --from {dataset} --store {url}")
        .quiet()
        .ignore_stderr()
        .run()
        .unwrap();
    let out = scratch.path().join("rehearsal");
    let mut opts = options(out.clone());
    opts.store = Some(url);
    let err = format!("{:#}", rehearse(&sh, &opts).err().expect("must fail"));
    assert!(err.contains("step `fresh store` failed"), "{err}");
    assert!(err.contains("is not fresh"), "{err}");
    // Nothing but the failure report: no dataset was built, no success report written.
    let failure = failure_report(&out);
    assert_eq!(names(&out).len(), 1, "{:?}", names(&out));
    assert_eq!(failure["ok"], false);
    assert_eq!(failure["failed_step"], "fresh store");
    assert_eq!(failure["dataset_hash"], serde_json::Value::Null);
    assert!(failure["error"].as_str().unwrap().contains("is not fresh"));
}

#[test]
fn a_corrupted_input_stops_at_the_dataset_step_and_leaves_no_success_report() {
    let scratch = tempfile::tempdir().unwrap();
    let seed = root().join("seed/rustsec-seed.ndjson.zst");
    let corrupt = scratch.path().join("rustsec-seed.ndjson.zst");
    let mut bytes = std::fs::read(&seed).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let out = scratch.path().join("rehearsal");
    let mut opts = options(out.clone());
    opts.from = vec![corrupt];
    let err = format!("{:#}", rehearse(&shell(), &opts).err().expect("must fail"));
    assert!(err.contains("step `dataset` failed"), "{err}");
    assert!(success_reports(&out).is_empty(), "{:?}", names(&out));
    let failure = failure_report(&out);
    assert_eq!(failure["failed_step"], "dataset");
    let done: Vec<&str> = failure["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["fresh store"]);
}

#[test]
fn a_failing_stella_verify_stops_at_the_verify_step_and_leaves_no_success_report() {
    // The real runner, except that `aoc verify` reports a violation (exit 1).
    let scratch = tempfile::tempdir().unwrap();
    let wrapper = scratch.path().join("stella");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$2\" = verify ]; then echo 'stella aoc verify: 1 violation \
             (injected)' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
            stella().display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = scratch.path().join("rehearsal");
    let mut opts = options(out.clone());
    opts.runner_binary = Some(wrapper);
    let err = format!("{:#}", rehearse(&shell(), &opts).err().expect("must fail"));
    assert!(err.contains("step `verify` failed"), "{err}");
    assert!(
        err.contains("stella aoc verify on sqlite://") && err.contains("exited with 1"),
        "{err}"
    );
    assert!(err.contains("1 violation (injected)"), "{err}");
    assert!(success_reports(&out).is_empty(), "{:?}", names(&out));
    let failure = failure_report(&out);
    assert_eq!(failure["ok"], false);
    assert_eq!(failure["failed_step"], "verify");
    assert_eq!(failure["dataset_hash"], seeded().done.report.dataset_hash);
    // The work directory (stella's reports) is gone too.
    assert!(
        names(&out).iter().all(|n| !n.starts_with('.')),
        "{:?}",
        names(&out)
    );
}

// ---- the release pinned to the rehearsal -----------------------------------------------------

fn release_options(out: PathBuf, pin: &str, runner: PathBuf) -> ReleaseOptions {
    ReleaseOptions {
        out,
        dataset_from: Vec::new(),
        publish: None,
        runner_binary: Some(runner),
        epoch: Some(EPOCH),
        env: BTreeMap::from([
            ("COSIGN_ALLOW_DEV_KEY".to_string(), "1".to_string()),
            ("DATASET_HASH".to_string(), pin.to_string()),
        ]),
        print: false,
    }
}

#[test]
fn release_pinned_to_the_rehearsed_hash_carries_the_report_and_aoc_verify_checks_it() {
    let s = seeded();
    let hash = s.done.report.dataset_hash.clone();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("aoc");
    let done = release_carrying(
        &shell(),
        &release_options(out.clone(), &hash, stella()),
        &Lookup::InDir(s.out.clone()),
    )
    .unwrap();
    assert_eq!(done.dataset_hash, hash);
    let report = kit::rehearsal_report(&hash);
    assert_eq!(done.rehearsal_report.as_deref(), Some(report.as_str()));
    assert_eq!(
        names(&out),
        kit::with_optional(kit::expected_files(&hash), std::slice::from_ref(&report))
    );
    assert_eq!(
        std::fs::read(out.join(&report)).unwrap(),
        std::fs::read(&s.done.path).unwrap()
    );
    let sums = std::fs::read_to_string(out.join(kit::SUMS)).unwrap();
    assert!(
        sums.lines().any(|l| l.ends_with(&format!("  {report}"))),
        "{sums}"
    );

    let verified = verify_kit(&out, None, &VerifyOptions::default()).unwrap();
    let failures: Vec<String> = verified
        .failures()
        .map(|f| format!("{} {}: {}", f.check, f.file, f.detail))
        .collect();
    assert!(verified.intact(), "{failures:?}");
    let checks: Vec<(CheckId, &str)> = verified
        .checks
        .iter()
        .map(|c| (c.check, c.file.as_str()))
        .collect();
    assert!(
        checks.contains(&(CheckId::RehearsalReport, report.as_str())),
        "{checks:?}"
    );
    let subjects = verified
        .checks
        .iter()
        .find(|c| c.check == CheckId::ProvenanceSubjects)
        .unwrap();
    assert!(
        subjects.ok && subjects.detail.starts_with("9 subjects"),
        "{}",
        subjects.detail
    );

    // Removing the report from the kit is noticed: SHA256SUMS lists it.
    std::fs::remove_file(out.join(&report)).unwrap();
    let verified = verify_kit(&out, None, &VerifyOptions::default()).unwrap();
    let first = verified.first_failure().unwrap();
    assert_eq!(
        (first.check, first.file.as_str()),
        (CheckId::SumsComplete, report.as_str())
    );
}

#[test]
fn a_release_pinned_to_another_hash_fails_naming_both_before_building_the_runner() {
    let s = seeded();
    let scratch = tempfile::tempdir().unwrap();
    let pin = "0".repeat(64);
    // Reaching the runner build would fail differently ("does not exist").
    let missing = scratch.path().join("no-such-stella");
    let t = Instant::now();
    let err = release_carrying(
        &shell(),
        &release_options(scratch.path().join("aoc"), &pin, missing),
        &Lookup::InDir(s.out.clone()),
    )
    .err()
    .expect("must fail");
    let err = format!("{err:#}");
    assert!(
        err.contains(&pin) && err.contains(&s.done.report.dataset_hash),
        "{err}"
    );
    assert!(err.contains("step `dataset` failed"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        names(scratch.path()).is_empty(),
        "left {:?}",
        names(scratch.path())
    );
}

#[test]
fn an_explicit_rehearsal_report_of_another_dataset_is_refused_before_the_runner_build() {
    let s = seeded();
    let scratch = tempfile::tempdir().unwrap();
    // The seed's inputs with another clock give another dataset (its ingested_at stamps
    // differ), so another hash.
    let mut opts = release_options(
        scratch.path().join("aoc"),
        "",
        scratch.path().join("no-such-stella"),
    );
    opts.env.remove("DATASET_HASH");
    opts.env
        .insert("AOC_DATASET_EPOCH".into(), (EPOCH + 1).to_string());
    opts.dataset_from = vec![root().join("seed/rustsec-seed.ndjson.zst")];
    let err = release_carrying(&shell(), &opts, &Lookup::File(s.done.path.clone()))
        .err()
        .expect("must fail");
    let err = format!("{err:#}");
    assert!(err.contains("step `rehearsal report` failed"), "{err}");
    assert!(
        err.contains(&format!(
            "rehearsed dataset {}, the kit's dataset is",
            s.done.report.dataset_hash
        )),
        "{err}"
    );
    assert!(
        names(scratch.path()).is_empty(),
        "left {:?}",
        names(scratch.path())
    );
}

// ---- small parts -----------------------------------------------------------------------------

#[test]
fn report_check_accepts_only_a_passed_rehearsal_of_the_same_dataset() {
    let s = seeded();
    let bytes = std::fs::read(&s.done.path).unwrap();
    let hash = &s.done.report.dataset_hash;
    assert!(report::check(&bytes, hash).is_ok());
    let other = "f".repeat(64);
    assert!(report::check(&bytes, &other)
        .unwrap_err()
        .contains(&format!(
            "rehearsed dataset {hash}, the kit's dataset is {other}"
        )));
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["ok"] = false.into();
    let failed = serde_json::to_vec(&v).unwrap();
    assert!(report::check(&failed, hash).unwrap_err().contains("FAILED"));
    v["ok"] = true.into();
    v["kind"] = "something-else".into();
    assert!(report::check(&serde_json::to_vec(&v).unwrap(), hash)
        .unwrap_err()
        .contains("kind"));
    assert!(report::check(b"{}", hash)
        .unwrap_err()
        .starts_with("not a rehearsal report"));
}

#[test]
fn store_urls_are_reported_without_passwords() {
    let shown = |url: &str| super::store::Target::new(Some(url)).unwrap().info.url;
    assert_eq!(
        shown("postgres://aoc:hunter2@db.internal:5432/staging"),
        "postgres://aoc:***@db.internal:5432/staging"
    );
    assert_eq!(
        shown("postgresql://aoc@db/staging?sslmode=disable&password=hunter2"),
        "postgres://aoc:***@db/staging?sslmode=disable"
    );
    assert_eq!(shown("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    // An ambiguous URL is refused, without the password.
    let err = format!(
        "{:#}",
        super::store::Target::new(Some("postgres://p:a@b@h/db"))
            .err()
            .unwrap()
    );
    assert!(err.contains("%40") && !err.contains("a@b"), "{err}");
}
