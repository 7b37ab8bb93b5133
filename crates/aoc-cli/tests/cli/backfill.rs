//! `stella aoc backfill` end to end, the same suite on SQLite and on a real PostgreSQL
//! (`AOC_TEST_PG`, a server URL; `cargo xtask test` starts one): real RustSec revision history,
//! idempotent re-runs, crash-and-resume at every batch boundary, accounting, datasets, deletions.

use crate::{run, stella, testdata, EPOCH};
use aoc_dataset::{build_from_inputs, build_from_store, BuildOptions};
use aoc_store::{ScanFilter, Store};
use aoc_testkit::Unprivileged;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

/// The engines this machine can test: SQLite always; PostgreSQL when `AOC_TEST_PG` is set (a loud
/// skip otherwise, and a failure under CI).
fn engines() -> Vec<Engine> {
    if std::env::var_os("AOC_TEST_PG").is_some() {
        return vec![Engine::Sqlite, Engine::Postgres];
    }
    let msg = "AOC_TEST_PG is not set: the PostgreSQL half of this test did NOT run. \
               Run `cargo xtask test`, or `eval \"$(scripts/pg-test-cluster.sh start)\"` first.";
    aoc_testkit::skip(msg);
    vec![Engine::Sqlite]
}

/// A fresh, empty store URL for `engine`.
fn fresh_store(engine: Engine, dir: &Path, name: &str) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        Engine::Postgres => {
            let base = std::env::var("AOC_TEST_PG").unwrap();
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let db = format!("cli_{name}_{}_{nanos}", std::process::id());
            let mut admin = postgres::Client::connect(&base, postgres::NoTls)
                .expect("connecting to AOC_TEST_PG");
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap();
            format!("{}/{db}", base.rsplit_once('/').unwrap().0)
        }
    }
}

struct Run {
    code: i32,
    stderr: String,
    report: Value,
}

fn backfill(store: &str, from: &[&Path], extra: &[&str], env: &[(&str, &str)], dir: &Path) -> Run {
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stella"));
    cmd.args([
        "aoc",
        "backfill",
        "--store",
        store,
        "--batch-size",
        "10",
        "--report",
    ])
    .arg(&report)
    .arg("--from");
    cmd.args(from)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("NO_COLOR", "1")
        .env_remove("STELLA_FAULT_ABORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: std::fs::read(&report)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(Value::Null),
    }
}

/// The store's whole content as a dataset hash (export in stable order, content-addressed).
fn store_hash(url: &str, dir: &Path) -> aoc_digest::Sha256Digest {
    let mut store = Store::open(url).unwrap();
    let out = tempfile::tempdir_in(dir).unwrap();
    let mut opts = BuildOptions::new(out.path().to_owned());
    opts.source_date_epoch = Some(EPOCH.parse().unwrap());
    build_from_store(&mut store, &opts).unwrap().hash
}

fn revisions_per_upstream(url: &str) -> BTreeMap<String, i64> {
    let mut store = Store::open(url).unwrap();
    let mut out = BTreeMap::new();
    store
        .scan(&ScanFilter::default(), |row| {
            let n = out.entry(row.upstream_id.clone()).or_insert(0);
            *n += 1;
            assert_eq!(row.revision, *n, "revisions are numbered 1.. without gaps");
            Ok(())
        })
        .unwrap();
    out
}

fn verify_store(url: &str) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["aoc", "verify", "--store", url])
        .status()
        .unwrap()
        .code()
        .unwrap()
}

/// A feed with the real history sample plus, in the middle, a broken line, a document with a
/// forbidden top-level field (an already-raw document) and an upstream deletion.
fn mixed_feed(dir: &Path) -> PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(testdata("history-sample.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut out = lines[..40].to_vec();
    out.push("{\"commit\": \"x\", \"committed_at\": ".into());
    out.push(r#"{"_id":"advisory_raw:x:X-1:00","tenant":"default","severity":"HIGH","content":{"format":"OSV","raw":{}}}"#.into());
    out.push(r#"{"commit":"d","committed_at":"2024-05-01T00:00:00Z","path":"crates/RUSTSEC-2099-0001.json","deleted":true}"#.into());
    out.extend_from_slice(&lines[40..]);
    let path = dir.join("mixed.ndjson");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

#[test]
fn replaying_real_history_stores_one_revision_per_distinct_content_and_rerunning_writes_nothing() {
    let feed = testdata("history-sample.ndjson.zst");
    // Expected: per advisory, the number of distinct contents it had.
    let mut distinct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(testdata("history-sample.ndjson"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        let doc = &v["document"];
        distinct
            .entry(doc["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(aoc_contract::content_hash(doc));
    }
    let expected: BTreeMap<String, i64> = distinct
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as i64))
        .collect();
    let total: i64 = expected.values().sum();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store(engine, dir.path(), "history");
        let first = backfill(&url, &[&feed], &[], &[], dir.path());
        assert_eq!(first.code, 0, "{engine:?}: {}", first.stderr);
        assert_eq!(first.report["records"], 121);
        assert_eq!(first.report["written"], total, "{engine:?}");
        assert_eq!(first.report["noop"], 121 - total);
        assert_eq!(revisions_per_upstream(&url), expected, "{engine:?}");
        assert_eq!(verify_store(&url), 0, "{engine:?}: chains intact");
        let hash = store_hash(&url, dir.path());

        let again = backfill(&url, &[&feed], &[], &[], dir.path());
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(
            (
                again.report["written"].as_u64(),
                again.report["noop"].as_u64()
            ),
            (Some(0), Some(121)),
            "{engine:?}"
        );
        assert_eq!(
            store_hash(&url, dir.path()),
            hash,
            "re-running changes nothing"
        );
    }
}

#[test]
fn a_run_killed_before_or_after_any_batch_resumes_to_the_uninterrupted_state() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let feed = mixed_feed(dir.path());
        let reference_url = fresh_store(engine, dir.path(), "reference");
        let rejects = dir.path().join("rejects.ndjson");
        let rejects_arg = rejects.to_str().unwrap();
        let reference = backfill(
            &reference_url,
            &[&feed],
            &["--rejects", rejects_arg],
            &[],
            dir.path(),
        );
        assert_eq!(
            reference.code, 1,
            "two records are rejected: {}",
            reference.stderr
        );
        let reference_rejects = std::fs::read_to_string(&rejects).unwrap();
        let reference_hash = store_hash(&reference_url, dir.path());
        let r = &reference.report;
        assert_eq!(r["rejected"], 2);
        assert_eq!(r["deletions"], 1);
        let sum = ["written", "noop", "rejected", "deletions"]
            .iter()
            .map(|k| r[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            sum,
            r["records"].as_u64().unwrap(),
            "accounting balances: {r}"
        );
        assert_eq!(reference_rejects.lines().count(), 2);

        // 124 records in batches of 10: 13 batches. Crash before and after each one; the points
        // are independent (each its own store, directory and rejects file), so they run on a
        // few threads: every point is still checked, in a fraction of the wall time.
        let points: Vec<String> = (1..=13)
            .flat_map(|n| [format!("before:{n}"), format!("after:{n}")])
            .collect();
        let next = std::sync::Mutex::new(points.iter());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let Some(point) = next.lock().unwrap().next() else {
                        break;
                    };
                    crash_and_resume(
                        engine,
                        &feed,
                        point,
                        &reference,
                        &reference_rejects,
                        &reference_hash,
                        dir.path(),
                    );
                });
            }
        });
    }
}

/// One crash point of the test above: a run aborted at `point` (`before:N` / `after:N` batch N),
/// then resumed with another clock, must end exactly where the uninterrupted `reference` run did.
fn crash_and_resume(
    engine: Engine,
    feed: &Path,
    point: &str,
    reference: &Run,
    reference_rejects: &str,
    reference_hash: &aoc_digest::Sha256Digest,
    dir: &Path,
) {
    let name = format!("crash_{}", point.replace(':', "_"));
    let work = dir.join(&name);
    std::fs::create_dir(&work).unwrap();
    let url = fresh_store(engine, &work, &name);
    let rejects = work.join("rejects.ndjson");
    let rejects_arg = rejects.to_str().unwrap();
    let crashed = backfill(
        &url,
        &[feed],
        &["--rejects", rejects_arg],
        &[("STELLA_FAULT_ABORT", point)],
        &work,
    );
    assert_ne!(crashed.code, 0, "{engine:?} {point}: the fault must abort");
    assert!(
        !rejects.exists(),
        "{point}: no complete-looking rejects file after a crash"
    );
    // The resumed run uses another clock: the checkpoint's clock must win.
    let resumed = backfill(
        &url,
        &[feed],
        &["--rejects", rejects_arg],
        &[("SOURCE_DATE_EPOCH", "1800000000")],
        &work,
    );
    assert_eq!(resumed.code, 1, "{engine:?} {point}: {}", resumed.stderr);
    for k in ["records", "written", "noop", "rejected", "deletions"] {
        assert_eq!(
            resumed.report[k], reference.report[k],
            "{engine:?} {point}: {k}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        reference_rejects,
        "{engine:?} {point}: rejects file"
    );
    assert_eq!(
        &store_hash(&url, &work),
        reference_hash,
        "{engine:?} {point}: store content"
    );
    assert_eq!(verify_store(&url), 0, "{engine:?} {point}");
}

#[test]
fn a_real_sigkill_mid_run_resumes_cleanly() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seed/rustsec-seed.ndjson.zst");
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let reference_url = fresh_store(engine, dir.path(), "ref");
        assert_eq!(
            backfill(&reference_url, &[&seed], &[], &[], dir.path()).code,
            0
        );
        let reference_hash = store_hash(&reference_url, dir.path());
        let mut landed_mid_run = 0;
        for delay_ms in [60, 200, 450] {
            let url = fresh_store(engine, dir.path(), &format!("kill{delay_ms}"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_stella"))
                .args([
                    "aoc",
                    "backfill",
                    "--batch-size",
                    "10",
                    "--store",
                    &url,
                    "--from",
                ])
                .arg(&seed)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            // SIGKILL: no destructor, no flush, nothing but the database's own atomicity.
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let resumed = backfill(&url, &[&seed], &[], &[], dir.path());
            assert_eq!(
                resumed.code, 0,
                "{engine:?} after {delay_ms} ms: {}",
                resumed.stderr
            );
            let r = &resumed.report;
            assert_eq!(r["records"], 1302);
            if r["resumed_after_records"].as_u64().unwrap() > 0 {
                landed_mid_run += 1;
                assert_eq!(
                    r["written"], 1302,
                    "{engine:?} after {delay_ms} ms: totals restored: {r}"
                );
            } else {
                // Killed before its first batch (a fresh start) or after it finished (no-ops).
                assert_eq!(
                    r["written"].as_u64().unwrap() + r["noop"].as_u64().unwrap(),
                    1302,
                    "{r}"
                );
            }
            assert_eq!(
                store_hash(&url, dir.path()),
                reference_hash,
                "{engine:?} after {delay_ms} ms"
            );
        }
        assert!(
            landed_mid_run > 0,
            "{engine:?}: no kill landed mid-run; the delays need adjusting"
        );
    }
}

#[test]
fn dry_run_writes_nothing_and_prints_the_report_digest() {
    let dir = tempfile::tempdir().unwrap();
    let feed = mixed_feed(dir.path());
    let db = dir.path().join("never.db");
    let report = dir.path().join("dry.json");
    let out = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["aoc", "backfill", "--dry-run", "--store"])
        .arg(format!("sqlite://{}", db.display()))
        .arg("--from")
        .arg(&feed)
        .arg("--report")
        .arg(&report)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections still make the exit code"
    );
    assert!(!db.exists(), "a dry run opens no store");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let bytes = std::fs::read(&report).unwrap();
    use sha2::Digest;
    assert_eq!(
        stdout.trim(),
        format!(
            "report sha256:{}",
            hex::encode(sha2::Sha256::digest(&bytes))
        )
    );
    let r: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        (r["records"].as_u64(), r["rejected"].as_u64()),
        (Some(124), Some(2))
    );
}

#[test]
fn stop_on_error_commits_what_came_before_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let feed = mixed_feed(dir.path());
    let url = fresh_store(Engine::Sqlite, dir.path(), "stop");
    let run = backfill(&url, &[&feed], &["--stop-on-error"], &[], dir.path());
    assert_eq!(run.code, 1);
    assert_eq!(run.report["records"], 41, "stopped at the broken line 41");
    assert!(
        run.report["stopped"]
            .as_str()
            .unwrap()
            .contains("mixed.ndjson:41"),
        "{}",
        run.report
    );
    assert_eq!(
        run.report["written"].as_u64().unwrap() + run.report["noop"].as_u64().unwrap(),
        40
    );
}

#[test]
fn datasets_load_after_verification_and_tampered_ones_are_refused() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = BuildOptions::new(dir.path().join("ds"));
        opts.source_date_epoch = Some(EPOCH.parse().unwrap());
        let built = build_from_inputs(&[testdata("history-sample.ndjson")], &opts).unwrap();
        let url = fresh_store(engine, dir.path(), "load");
        let run = backfill(&url, &[&built.archive], &[], &[], dir.path());
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.report["datasets"][0][1], built.hash.to_string());
        assert_eq!(
            store_hash(&url, dir.path()),
            built.hash,
            "{engine:?}: load then export gives the same hash"
        );

        let mut bytes = std::fs::read(&built.archive).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        let bad = dir.path().join(built.archive.file_name().unwrap());
        std::fs::write(&bad, &bytes).unwrap();
        let url = fresh_store(engine, dir.path(), "tampered");
        let run = backfill(&url, &[&bad], &[], &[], dir.path());
        assert_eq!(run.code, 2, "{engine:?}");
        assert!(
            run.stderr.contains("does not verify, refusing to load it"),
            "{}",
            run.stderr
        );
        let mut store = Store::open(&url).unwrap();
        assert_eq!(store.counts().unwrap().documents, 0, "nothing was written");
    }
}

/// A directory holding a dataset (a kit given whole: the tarball beside its sidecar JSON) is
/// refused before anything is read or stored, naming the tarball: the dataset is not skipped,
/// nor are its sidecars read as advisories.
#[test]
fn a_directory_holding_a_dataset_is_refused_naming_the_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let built = history_dataset(dir.path());
    let holding = built.archive.parent().unwrap();
    let name = built.archive.file_name().unwrap().to_str().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let loaded = backfill(&url, &[holding], &[], &[], dir.path());
    assert_eq!(loaded.code, 2, "{}", loaded.stderr);
    assert!(
        loaded.stderr.contains(name) && loaded.stderr.contains("given itself as an input"),
        "{}",
        loaded.stderr
    );
    if dir.path().join("store.db").exists() {
        let mut store = Store::open(&url).unwrap();
        assert_eq!(store.counts().unwrap().documents, 0, "nothing was written");
    }
    let (code, _, err) = run(stella().args(["aoc", "verify", "--input"]).arg(holding));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(name), "{err}");
}

#[test]
fn an_unreachable_database_is_a_clear_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = backfill(
        "postgres://postgres@127.0.0.1:9/none",
        &[&testdata("osv-rustsec")],
        &[],
        &[],
        dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cannot open store postgres://postgres@127.0.0.1:9/none"),
        "{}",
        run.stderr
    );
    let run = backfill(
        "mysql://x",
        &[&testdata("osv-rustsec")],
        &[],
        &[],
        dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unsupported store scheme \"mysql\""),
        "{}",
        run.stderr
    );
}

/// The history sample with every summary changed, built as a dataset: valid in itself, and what
/// an attacker would write over a verified dataset.
fn tampered_dataset(dir: &Path) -> aoc_dataset::BuildReport {
    let text = std::fs::read_to_string(testdata("history-sample.ndjson")).unwrap();
    let edited = text.replace("\"summary\":\"", "\"summary\":\"TAMPERED ");
    assert_ne!(edited, text);
    let input = dir.join("tampered.ndjson");
    std::fs::write(&input, edited).unwrap();
    let mut opts = BuildOptions::new(dir.join("tampered"));
    opts.source_date_epoch = Some(EPOCH.parse().unwrap());
    build_from_inputs(&[input], &opts).unwrap()
}

fn history_dataset(dir: &Path) -> aoc_dataset::BuildReport {
    let mut opts = BuildOptions::new(dir.join("ds"));
    opts.source_date_epoch = Some(EPOCH.parse().unwrap());
    build_from_inputs(&[testdata("history-sample.ndjson")], &opts).unwrap()
}

/// Runs `stella args`, pausing it after the dataset's verification (the fault hook) to rewrite
/// `target` in place (same inode) with `with`'s bytes; returns the finished process's output.
fn rewrite_between_passes(args: &[&str], target: &Path, with: &Path, dir: &Path) -> (i32, String) {
    use std::io::Write;
    let flag = dir.join("paused");
    let _ = std::fs::remove_file(&flag);
    let child = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("NO_COLOR", "1")
        .env("STELLA_FAULT_PAUSE_AFTER_VERIFY", &flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "stella never paused after verification"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(target)
        .unwrap();
    file.write_all(&std::fs::read(with).unwrap()).unwrap();
    file.sync_all().unwrap();
    drop(file);
    std::fs::remove_file(&flag).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_dataset_rewritten_in_place_after_verification_loads_only_the_verified_records() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let built = history_dataset(dir.path());
        let other = tampered_dataset(dir.path());
        let url = fresh_store(engine, dir.path(), "swapped");
        let report = dir.path().join("swap-report.json");
        let archive = built.archive.to_str().unwrap();
        let (code, stderr) = rewrite_between_passes(
            &[
                "aoc",
                "backfill",
                "--batch-size",
                "10",
                "--store",
                &url,
                "--report",
                report.to_str().unwrap(),
                "--from",
                archive,
            ],
            &built.archive,
            &other.archive,
            dir.path(),
        );
        // First what reached the store, whatever the exit code says.
        let mut store = Store::open(&url).unwrap();
        let mut stored = 0;
        store
            .scan(&ScanFilter::default(), |row| {
                stored += 1;
                assert!(
                    !row.json.contains("TAMPERED"),
                    "{engine:?}: a record of the rewritten file reached the store: {}",
                    row.id
                );
                Ok(())
            })
            .unwrap();
        drop(store);
        assert_eq!(code, 0, "{engine:?}: {stderr}");
        assert!(stored > 0);
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(r["records"], 121, "{engine:?}: {r}");
        assert_eq!(r["datasets"][0][1], built.hash.to_string());
        assert_eq!(
            store_hash(&url, dir.path()),
            built.hash,
            "{engine:?}: the store holds exactly the verified dataset"
        );

        // `stella aoc verify --input` reads the same way: the verified records, no input error.
        let built = history_dataset(&dir.path().join("again"));
        let output = dir.path().join("verify.json");
        let (code, stderr) = rewrite_between_passes(
            &[
                "aoc",
                "verify",
                "--output",
                output.to_str().unwrap(),
                "--input",
                built.archive.to_str().unwrap(),
            ],
            &built.archive,
            &other.archive,
            dir.path(),
        );
        assert_eq!(code, 0, "{stderr}");
        let v: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
        assert_eq!(v["documents_checked"], 121, "{v}");
    }
}

#[test]
fn a_pinned_dataset_hash_that_differs_is_refused_before_anything_is_written() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let built = history_dataset(dir.path());
        // A rollback: another dataset, valid in itself, where the pinned one was expected.
        let pinned = tampered_dataset(dir.path()).hash.to_string();
        let url = fresh_store(engine, dir.path(), "pinned");
        for (extra, env) in [
            (vec!["--expect-dataset-hash", pinned.as_str()], vec![]),
            (vec![], vec![("DATASET_HASH", pinned.as_str())]),
        ] {
            let run = backfill(&url, &[&built.archive], &extra, &env, dir.path());
            assert_eq!(run.code, 2, "{engine:?}: an input error: {}", run.stderr);
            for hash in [pinned.clone(), built.hash.to_string()] {
                assert!(
                    run.stderr.contains(hash.as_str()),
                    "{engine:?}: the message names both hashes: {}",
                    run.stderr
                );
            }
            assert_eq!(run.report, Value::Null, "no report for a refused run");
        }
        if let Engine::Sqlite = engine {
            let path = url.strip_prefix("sqlite://").unwrap();
            assert!(!Path::new(path).exists(), "the store was never opened");
        }
        let mut store = Store::open(&url).unwrap();
        assert_eq!(store.counts().unwrap().documents, 0, "nothing was written");
        drop(store);

        // The right pin loads.
        let run = backfill(
            &url,
            &[&built.archive],
            &["--expect-dataset-hash", &built.hash.to_string()],
            &[],
            dir.path(),
        );
        assert_eq!(run.code, 0, "{engine:?}: {}", run.stderr);
        assert_eq!(run.report["written"], run.report["records"]);
    }
    // `stella aoc verify --input` too.
    let dir = tempfile::tempdir().unwrap();
    let built = history_dataset(dir.path());
    let pinned = "0".repeat(64);
    let out = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["aoc", "verify", "--expect-dataset-hash", &pinned, "--input"])
        .arg(&built.archive)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&pinned) && stderr.contains(&built.hash.to_string()),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["aoc", "verify", "--input"])
        .arg(&built.archive)
        .env("DATASET_HASH", built.hash.to_string())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A pin that is not a hash at all is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args([
            "aoc",
            "verify",
            "--expect-dataset-hash",
            "latest",
            "--input",
        ])
        .arg(&built.archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verifying_a_dataset_input_selects_its_records_by_tenant_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let built = history_dataset(dir.path());
    // Every record of the dataset was ingested at EPOCH (2025-11-24T16:00:00Z), tenant default.
    for (args, checked, skipped) in [
        (&[][..], 121, 0),
        (&["--tenant", "default"][..], 121, 0),
        (&["--tenant", "other"][..], 0, 121),
        (&["--since", "2025-11-24T16:00:00Z"][..], 121, 0),
        (&["--since", "2025-11-24T16:00:01Z"][..], 0, 121),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["aoc", "verify", "--format", "json"])
            .args(args)
            .arg("--input")
            .arg(&built.archive)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["documents_checked"], checked, "{args:?}: {v}");
        assert_eq!(v["documents_skipped"], skipped, "{args:?}: {v}");
        assert_eq!(v["violations_total"], 0, "{args:?}: {v}");
    }
}

/// A revision feed of at least `records` records: copies of the real history sample with the
/// advisory ids made unique per copy.
fn generated_feed(dir: &Path, records: usize) -> PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(testdata("history-sample.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut out = String::new();
    let mut copy = 0;
    while copy * lines.len() < records {
        let tag = format!("RUSTSEC-C{copy:05}-");
        for line in &lines {
            out.push_str(&line.replace("RUSTSEC-", &tag));
            out.push('\n');
        }
        copy += 1;
    }
    let path = dir.join("generated.ndjson");
    std::fs::write(&path, out).unwrap();
    path
}

/// A tiny deterministic generator (xorshift), seeded and printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The issue's check: a dataset load SIGKILLed at random points and resumed reads no record twice
/// (the engine counts what it reads) and ends in exactly the uninterrupted run's store.
/// `AOC_TEST_RESUME_RECORDS` sets the dataset's size (default 5,000; the check uses 200,000,
/// best with `cargo test --release`), `AOC_TEST_RESUME_SEED` replays a run's kill points.
#[test]
fn a_dataset_load_killed_at_random_points_resumes_by_seeking_and_reads_no_record_twice() {
    let records: usize = std::env::var("AOC_TEST_RESUME_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let seed: u64 = std::env::var("AOC_TEST_RESUME_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("AOC_TEST_RESUME_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let feed = generated_feed(dir.path(), records);
    let mut opts = BuildOptions::new(dir.path().join("ds"));
    opts.source_date_epoch = Some(EPOCH.parse().unwrap());
    let built = build_from_inputs(&[feed], &opts).unwrap();
    std::fs::remove_file(dir.path().join("generated.ndjson")).unwrap();
    let total = built.manifest.totals.records;
    assert!(total >= records as u64);
    for engine in engines() {
        let reference_url = fresh_store(engine, dir.path(), "resume_ref");
        let t = std::time::Instant::now();
        let reference = backfill(&reference_url, &[&built.archive], &[], &[], dir.path());
        let took = t.elapsed();
        assert_eq!(reference.code, 0, "{engine:?}: {}", reference.stderr);
        assert_eq!(reference.report["records"], total);
        assert_eq!(reference.report["read"], total);
        let reference_hash = store_hash(&reference_url, dir.path());
        assert_eq!(reference_hash, built.hash, "{engine:?}");
        let mut mid_run = 0;
        for point in 0..10 {
            let url = fresh_store(engine, dir.path(), &format!("resume_{point}"));
            // Somewhere between the start (verification) and the end of an uninterrupted load.
            let delay = Duration::from_millis(took.as_millis() as u64 / 20)
                + Duration::from_millis(rng.below(took.as_millis() as u64 * 9 / 10 + 1));
            let mut child = Command::new(env!("CARGO_BIN_EXE_stella"))
                .args(["aoc", "backfill", "--batch-size", "10", "--store", &url])
                .arg("--from")
                .arg(&built.archive)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            // SIGKILL: no destructor, no flush, nothing but the database's own atomicity.
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let resumed = backfill(&url, &[&built.archive], &[], &[], dir.path());
            assert_eq!(
                resumed.code, 0,
                "{engine:?} point {point}: {}",
                resumed.stderr
            );
            let r = &resumed.report;
            let after = r["resumed_after_records"].as_u64().unwrap();
            assert_eq!(r["records"], total, "{engine:?} point {point}: {r}");
            assert_eq!(
                r["read"].as_u64().unwrap(),
                total - after,
                "{engine:?} point {point} (killed after {delay:?}): the resumed run read only \
                 what was not committed: {r}"
            );
            if after > 0 {
                mid_run += 1;
                assert_eq!(r["written"], total, "{engine:?} point {point}: totals: {r}");
            } else {
                // Killed before its first batch (a fresh start) or after it finished (no-ops).
                assert_eq!(
                    r["written"].as_u64().unwrap() + r["noop"].as_u64().unwrap(),
                    total,
                    "{r}"
                );
            }
            assert_eq!(
                store_hash(&url, dir.path()),
                reference_hash,
                "{engine:?} point {point} (killed after {delay:?}, seed {seed})"
            );
        }
        assert!(
            mid_run >= 3,
            "{engine:?}: only {mid_run} of 10 kills landed mid-run (seed {seed})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only verification, and one writer per store, tenant and source

/// `stella aoc verify ARGS` as a user the permission bits bind: this one, or `nobody` for root
/// (permission bits do not bind root).
fn verify_as_unprivileged(args: &[&str]) -> (i32, String, String) {
    let stella = Unprivileged::new(Path::new(env!("CARGO_BIN_EXE_stella")));
    let mut cmd = stella.command();
    cmd.args(["aoc", "verify"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE");
    run(&mut cmd)
}

/// Every file of `dir` with its bytes' SHA-256 and its mtime.
fn snapshot(dir: &Path) -> BTreeMap<String, (String, SystemTime)> {
    use sha2::Digest;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap()));
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            (name, (digest, mtime))
        })
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The issue's check: `stella aoc verify` of a SQLite store whose file (0444) and directory
/// (0555) its user cannot write verifies it, and leaves every byte and mtime as it was, with no
/// `-wal`, `-shm` or journal created: run as `nobody` (for whom the bits bind) and as root (for
/// whom the verifier honours them). With a writer holding uncheckpointed commits in the WAL,
/// the verifier reads them too (an `immutable` open would not).
#[test]
fn verify_reads_a_sqlite_store_its_user_cannot_write_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("ro");
    std::fs::create_dir(&store_dir).unwrap();
    let db = store_dir.join("store.db");
    let url = format!("sqlite://{}", db.display());
    let loaded = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    let written = loaded.report["written"].as_u64().unwrap();
    assert!(written > 0);
    let before = snapshot(&store_dir);
    assert!(
        before
            .keys()
            .all(|n| n == "store.db" || n.ends_with(".lock")),
        "a closed store is its database file (and writer lock files): {:?}",
        before.keys()
    );
    for name in before.keys() {
        chmod(&store_dir.join(name), 0o444);
    }
    chmod(&store_dir, 0o555);
    chmod(dir.path(), 0o755);
    let before = snapshot(&store_dir);

    let (code, stdout, stderr) = verify_as_unprivileged(&["--store", &url, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["documents_checked"], written, "{report}");
    assert_eq!(report["violations_total"], 0, "{report}");
    assert_eq!(
        snapshot(&store_dir),
        before,
        "verify changed the store's directory"
    );
    // As this user too (root here, whom the bits do not stop): the bits still say read-only, so
    // SQLite creates no -shm/-wal there either.
    let (code, stdout, stderr) =
        run(stella().args(["aoc", "verify", "--store", &url, "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["documents_checked"], written, "{report}");
    assert_eq!(
        snapshot(&store_dir),
        before,
        "verify as this user changed the store's directory"
    );

    // A writer alive with a commit still in the WAL (its checkpoints held off): the verifier,
    // unable to write anything there, still reads the WAL through the writer's -shm.
    chmod(&store_dir, 0o755);
    chmod(&db, 0o644);
    let mut writer = Store::open(&url).unwrap();
    let Store::Sqlite(s) = &mut writer else {
        unreachable!()
    };
    s.connection()
        .execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             UPDATE source_counts SET documents = documents + 1000",
        )
        .unwrap();
    assert!(store_dir.join("store.db-wal").exists());
    chmod(&db, 0o444);
    chmod(&store_dir, 0o555);
    let (code, stdout, stderr) =
        verify_as_unprivileged(&["--store", &url, "--dry-run", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let checked: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        checked["checked"]["documents"],
        written + 1000,
        "the commit in the WAL was not read: {checked}"
    );
    drop(writer);
    chmod(&store_dir, 0o755);
}

/// A store that holds no document is nothing to check, as inputs with no record are: exit 2,
/// naming `--allow-empty`, with which it verifies (0 checked, exit 0). A `--tenant` that selects
/// none of a store's documents is a result: 0 checked, exit 0.
#[test]
fn verifying_a_store_with_no_document_is_nothing_to_check_unless_allowed() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store(engine, dir.path(), "empty");
        drop(Store::open(&url).unwrap());
        let verify = |extra: &[&str]| {
            run(stella()
                .args(["aoc", "verify", "--store", &url, "--format", "json"])
                .args(extra))
        };
        let (code, out, err) = verify(&[]);
        assert_eq!(code, 2, "{engine:?}: {err}");
        assert!(
            err.contains("holds no document") && err.contains("--allow-empty"),
            "{engine:?}: {err}"
        );
        let failure: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(failure["ok"], false, "{out}");

        let (code, out, err) = verify(&["--allow-empty"]);
        assert_eq!(code, 0, "{engine:?}: {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["documents_checked"], 0, "{report}");

        let loaded = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
        assert_eq!(loaded.code, 0, "{engine:?}: {}", loaded.stderr);
        let (code, out, err) = verify(&["--tenant", "no-such-tenant"]);
        assert_eq!(code, 0, "{engine:?}: {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["documents_checked"], 0, "{report}");
    }
}

/// A store at an older schema version is refused by the verifier, named with both versions and
/// what to do, and left at its version; the writing command the message names migrates it.
#[test]
fn verify_refuses_a_store_at_an_older_schema_and_migrates_nothing() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store(engine, dir.path(), "old");
        // The store as the first schema left it: migration 1's tables, version 1 recorded.
        let engine_kind = match engine {
            Engine::Sqlite => aoc_store::Engine::Sqlite,
            Engine::Postgres => aoc_store::Engine::Postgres,
        };
        let schema_1 = aoc_store::migration_sql(engine_kind, 1).unwrap();
        let rebuild = format!(
            "DROP TABLE source_counts; DROP TABLE advisory_raw; DROP TABLE upstreams;
             DROP TABLE upstream_deletions; DROP TABLE backfill_checkpoints;
             DROP TABLE schema_migrations;
             {}
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                                             applied_at TEXT NOT NULL);
             {schema_1}
             INSERT INTO schema_migrations VALUES (1, 'raw store', '2026-01-01T00:00:00Z');",
            if matches!(engine, Engine::Postgres) {
                "DROP FUNCTION aoc_reject_change;"
            } else {
                ""
            }
        );
        match Store::open(&url).unwrap() {
            Store::Sqlite(s) => s.connection().execute_batch(&rebuild).unwrap(),
            Store::Postgres(mut s) => s.client().batch_execute(&rebuild).unwrap(),
        }
        for _ in 0..2 {
            let (code, _, stderr) = run(stella().args(["aoc", "verify", "--store", &url]));
            assert_eq!(code, 2, "{engine:?}: {stderr}");
            for needle in ["schema version 1", "(5)", "stella aoc backfill"] {
                assert!(stderr.contains(needle), "{engine:?}: {needle}: {stderr}");
            }
            match Store::open_read_only(&url) {
                Err(aoc_store::StoreError::SchemaTooOld { found: 1, known: 5 }) => {}
                Err(e) => panic!("{engine:?}: {e}"),
                Ok(_) => panic!("{engine:?}: the store was migrated"),
            }
        }
        // The writing command migrates it, and says so (once: the store is current then).
        let run = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
        assert_eq!(run.code, 0, "{engine:?}: {}", run.stderr);
        let said = "migrated from schema version 1 to 5";
        assert!(run.stderr.contains(said), "{engine:?}: {}", run.stderr);
        assert_eq!(verify_store(&url), 0, "{engine:?}");
        let run = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
        assert_eq!(run.code, 0, "{engine:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("migrated"),
            "{engine:?}: {}",
            run.stderr
        );
    }
}

/// `url` with its user replaced.
fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{rest}")
}

/// The issue's checks on PostgreSQL: a role with nothing but SELECT on the store's tables (no
/// CREATE on schema public) verifies the store, and so does anyone on a database whose
/// transactions are read-only (`default_transaction_read_only`, as on a hot standby).
#[test]
fn verify_needs_only_select_on_postgres_and_works_on_a_read_only_database() {
    if !engines().iter().any(|e| matches!(e, Engine::Postgres)) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store(Engine::Postgres, dir.path(), "select_only");
    let loaded = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    let written = loaded.report["written"].as_u64().unwrap();
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    let role = format!("{db}_reader");
    let admin_url = std::env::var("AOC_TEST_PG").unwrap();
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .unwrap();
    let mut owner = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    owner
        .batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ))
        .unwrap();
    let reader_url = with_user(&url, &role);

    // The role really cannot write: a backfill as it fails on the schema.
    let (code, _, stderr) = run(stella().args([
        "aoc",
        "backfill",
        "--store",
        &reader_url,
        "--from",
        testdata("osv-rustsec").to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");

    let verify = |url: &str| {
        let (code, stdout, stderr) =
            run(stella().args(["aoc", "verify", "--store", url, "--format", "json"]));
        assert_eq!(code, 0, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["documents_checked"], written, "{report}");
        assert_eq!(report["violations_total"], 0, "{report}");
    };
    verify(&reader_url);

    // Read-only transactions for every new session of the database.
    drop(owner);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} SET default_transaction_read_only = on"
        ))
        .unwrap();
    let run = backfill(&url, &[&testdata("osv-rustsec")], &[], &[], dir.path());
    assert_eq!(
        run.code, 2,
        "a read-only database took a write: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("read-only transaction"),
        "{}",
        run.stderr
    );
    verify(&url);
    verify(&reader_url);

    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {role}")).unwrap();
}

/// The issue's check: a second `stella aoc backfill` of the same store, tenant and source while
/// the first runs is refused at once (exit 4), naming the store and the run that holds it, and
/// writes nothing; the first run's report holds every row written, and a third run afterwards
/// finds every document stored (no-ops).
#[test]
fn a_second_backfill_of_the_same_store_tenant_and_source_is_refused_while_the_first_runs() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let feed = generated_feed(dir.path(), 20_000);
        let url = fresh_store(engine, dir.path(), "twice");
        let args = |report: &Path| -> Vec<String> {
            [
                "aoc",
                "backfill",
                "--no-progress",
                "--batch-size",
                "10",
                "--store",
                &url,
                "--from",
                feed.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ]
            .map(str::to_owned)
            .to_vec()
        };
        let first_report = dir.path().join("first.json");
        let mut first = stella()
            .args(args(&first_report))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The first run holds the store from before its first batch: wait for rows.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let stored = Store::open_read_only(&url)
                .ok()
                .and_then(|mut s| s.counts().ok())
                .map_or(0, |c| c.documents);
            if stored > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{engine:?}: no rows");
            std::thread::sleep(Duration::from_millis(20));
        }
        let second_report = dir.path().join("second.json");
        let (code, _, stderr) = run(stella().args(args(&second_report)));
        assert!(
            first.try_wait().unwrap().is_none(),
            "{engine:?}: the first run ended before the second started; enlarge the feed"
        );
        assert_eq!(code, 4, "{engine:?}: {stderr}");
        assert!(
            stderr.contains("another run is writing to store"),
            "{stderr}"
        );
        assert!(
            stderr.contains("tenant \"default\", every source"),
            "{stderr}"
        );
        let shown = aoc_store::StoreLocation::parse(&url).unwrap().redacted();
        assert!(stderr.contains(&shown), "{engine:?}: the store: {stderr}");
        let holder = match engine {
            Engine::Sqlite => format!("process {}", first.id()),
            Engine::Postgres => "PostgreSQL session".to_owned(),
        };
        assert!(stderr.contains(&holder), "{engine:?}: the holder: {stderr}");
        assert!(
            !second_report.exists(),
            "{engine:?}: a refused run wrote a report"
        );

        assert!(first.wait().unwrap().success(), "{engine:?}");
        let first: Value = serde_json::from_slice(&std::fs::read(&first_report).unwrap()).unwrap();
        let stored = Store::open_read_only(&url)
            .unwrap()
            .counts()
            .unwrap()
            .documents;
        assert_eq!(first["resumed_after_records"], 0, "{engine:?}: {first}");
        assert_eq!(first["written"], stored, "{engine:?}: {first}");

        let third_report = dir.path().join("third.json");
        let (code, _, stderr) = run(stella().args(args(&third_report)));
        assert_eq!(code, 0, "{engine:?}: {stderr}");
        let third: Value = serde_json::from_slice(&std::fs::read(&third_report).unwrap()).unwrap();
        assert_eq!(third["written"], 0, "{engine:?}: {third}");
        assert_eq!(
            third["noop"].as_u64().unwrap(),
            first["written"].as_u64().unwrap() + first["noop"].as_u64().unwrap(),
            "{engine:?}: {third}"
        );
    }
}

// ---- Environment problems, signals and outputs checked before work (issue 21, items 1, 5, 8) ----

/// A tmpfs mounted for a test (root only), unmounted when dropped: a TMPDIR that is really
/// read-only or really too small, as an operator's would be.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None`, loudly (a failure under CI), where this user may not mount.
    fn mount(at: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(at.to_owned()));
        }
        let msg = "cannot mount a tmpfs (not root?): the read-only and too-small TMPDIR cases \
                   did NOT run";
        aoc_testkit::skip(msg);
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `stella ARGS` with `TMPDIR` set: (exit code, stderr).
fn stella_in(tmpdir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(args)
        .env("TMPDIR", tmpdir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts an environment error naming TMPDIR and `path`: exit 3, never a verdict on the data.
fn assert_tmpdir_problem(what: &str, (code, stderr): (i32, String), path: &Path, says: &str) {
    assert_eq!(code, 3, "{what}: {stderr}");
    assert!(
        stderr.contains(&format!("TMPDIR={}", path.display())) && stderr.contains(says),
        "{what}: {stderr}"
    );
    assert!(
        stderr.contains("no verdict on the data"),
        "{what}: {stderr}"
    );
    for verdict in ["does not verify", "unreadable", "refusing"] {
        assert!(
            !stderr.contains(verdict),
            "{what}: reads as a verdict: {stderr}"
        );
    }
}

#[test]
fn a_tmpdir_missing_unwritable_or_too_small_is_an_environment_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let built = history_dataset(dir.path());
    let needed = built.manifest.totals.bytes;
    let archive = built.archive.to_str().unwrap().to_owned();
    let db = dir.path().join("store.db");
    let store = format!("sqlite:{}", db.display());
    let backfill_args = ["aoc", "backfill", "--store", &store, "--from", &archive];
    let verify_args = ["aoc", "verify", "--input", &archive];

    let missing = dir.path().join("no-such-tmp");
    for args in [&backfill_args[..], &verify_args[..]] {
        assert_tmpdir_problem(
            "missing",
            stella_in(&missing, args),
            &missing,
            &format!("no such directory ({needed} bytes needed there for the private copy of a dataset's verified records, as its sidecar manifest declares)"),
        );
    }
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_tmpdir_problem(
        "a file",
        stella_in(&file, &backfill_args),
        &file,
        "not a directory",
    );

    if let Some(ro) = Tmpfs::mount(&dir.path().join("ro"), "ro,size=1m") {
        assert_tmpdir_problem(
            "read-only",
            stella_in(&ro.0, &backfill_args),
            &ro.0,
            "cannot create a file there: Read-only file system",
        );
    }
    if let Some(small) = Tmpfs::mount(&dir.path().join("small"), "size=64k") {
        // Refused before a byte is copied: the sidecar manifest says how much the copy needs.
        assert_tmpdir_problem(
            "too small",
            stella_in(&small.0, &backfill_args),
            &small.0,
            &format!("65536 bytes free, {needed} bytes needed for the private copy of a dataset's verified records"),
        );
        // Without a sidecar the need is unknown: running out while copying says the same.
        let sidecar = built.manifest_path.clone();
        let aside = dir.path().join("sidecar-aside.json");
        std::fs::rename(&sidecar, &aside).unwrap();
        assert_tmpdir_problem(
            "too small, no sidecar",
            stella_in(&small.0, &backfill_args),
            &small.0,
            "ran out of space",
        );
        std::fs::rename(&aside, &sidecar).unwrap();
    }
    // Nothing was written: the store is opened only after the datasets are verified.
    assert!(!db.exists(), "a store was created");
    // And with a usable TMPDIR the same command loads the dataset.
    let ok_tmp = dir.path().join("tmp");
    std::fs::create_dir(&ok_tmp).unwrap();
    let (code, stderr) = stella_in(&ok_tmp, &backfill_args);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn kit_verify_names_a_tmpdir_too_small_for_the_tarballs_before_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    // Not a kit: the TMPDIR check comes first, and the verdict on a real kit is not in question.
    let kit = dir.path().join("kit");
    std::fs::create_dir(&kit).unwrap();
    std::fs::write(kit.join("aoc-backfill-runner.tar.gz"), vec![0u8; 1 << 20]).unwrap();
    let kit_arg = kit.to_str().unwrap();
    let missing = dir.path().join("no-such-tmp");
    let (code, stderr) = stella_in(&missing, &["kit", "verify", kit_arg]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("TMPDIR={}: no such directory", missing.display()))
            && stderr.contains(
                "1048576 bytes (1.0 MiB) needed there for the private copies of the kit's tarballs"
            ),
        "{stderr}"
    );
    if let Some(small) = Tmpfs::mount(&dir.path().join("small"), "size=512k") {
        let (code, stderr) = stella_in(&small.0, &["kit", "verify", kit_arg]);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("524288 bytes free"), "{stderr}");
    }
    // With room, the same directory gets its verdict (not a kit: no SHA256SUMS), not exit 3.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let (code, stderr) = stella_in(&tmp, &["kit", "verify", kit_arg]);
    assert!((10..=15).contains(&code), "{code}: {stderr}");
}

#[test]
fn unwritable_output_paths_fail_before_anything_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let feed = testdata("history-sample.ndjson");
    let db = dir.path().join("store.db");
    let store = format!("sqlite:{}", db.display());
    let gone = dir.path().join("no-such-dir");
    for flag in ["--report", "--metrics", "--rejects"] {
        let target = gone.join("out.file");
        let (code, stderr) = stella_in(
            dir.path(),
            &[
                "aoc",
                "backfill",
                "--store",
                &store,
                "--from",
                feed.to_str().unwrap(),
                flag,
                target.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 3, "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {}: no such directory", gone.display())),
            "{flag}: {stderr}"
        );
        assert!(
            !db.exists(),
            "{flag}: the store was opened before the check"
        );
    }
}

#[test]
fn a_truncated_gz_input_says_how_many_records_were_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(testdata("history-sample.ndjson"))
        .output()
        .unwrap()
        .stdout;
    assert!(gz.len() > 1000, "gzip -c gave {} bytes", gz.len());
    let truncated = dir.path().join("feed.ndjson.gz");
    std::fs::write(&truncated, &gz[..gz.len() * 2 / 3]).unwrap();
    let url = fresh_store(Engine::Sqlite, dir.path(), "truncated");
    let run = backfill(&url, &[&truncated], &[], &[], dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    let stored: i64 = revisions_per_upstream(&url).values().sum();
    assert!(
        stored > 0 && stored % 10 == 0,
        "whole batches of 10: {stored}"
    );
    assert!(
        run.stderr.contains(&format!(
            "{stored} records committed (batches 1-{} of this run",
            stored / 10
        )) && run
            .stderr
            .contains("run the same command again to resume after them"),
        "{}",
        run.stderr
    );
}

/// A feed of `records` real revisions (renamed copies of the history sample) with a broken line
/// every 1,000 records, so the rejects file has something to keep.
fn feed_with_rejects(dir: &Path, records: usize) -> PathBuf {
    let feed = generated_feed(dir, records);
    let mut text = String::new();
    for (i, line) in std::fs::read_to_string(&feed).unwrap().lines().enumerate() {
        if i % 1000 == 999 {
            text.push_str("{not json\n");
        }
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&feed, text).unwrap();
    feed
}

/// Files under `dir` whose name ends with `.partial`.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

#[test]
fn sigint_and_sigterm_stop_a_backfill_between_batches_and_the_same_command_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed_with_rejects(dir.path(), 24_000);
    for engine in engines() {
        let reference = fresh_store(engine, dir.path(), "sig_ref");
        let ref_rejects = dir.path().join("ref.rej.ndjson");
        let full = backfill(
            &reference,
            &[&feed],
            &["--rejects", ref_rejects.to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert_eq!(full.code, 1, "rejections: {}", full.stderr);
        let reference_hash = store_hash(&reference, dir.path());
        for (signal, code) in [("INT", 130), ("TERM", 143)] {
            // (Lower case: PostgreSQL folds the unquoted database name.)
            let url = fresh_store(
                engine,
                dir.path(),
                &format!("sig_{}", signal.to_lowercase()),
            );
            let rejects = dir.path().join(format!("{signal}.rej.ndjson"));
            let report = dir.path().join(format!("{signal}.report.json"));
            let child = Command::new(env!("CARGO_BIN_EXE_stella"))
                .args(["aoc", "backfill", "--batch-size", "10", "--store", &url])
                .arg("--rejects")
                .arg(&rejects)
                .arg("--report")
                .arg(&report)
                .arg("--from")
                .arg(&feed)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .env("NO_COLOR", "1")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Once some batches are in: the rejects journal has its first line.
            let partial = PathBuf::from(format!("{}.partial", rejects.display()));
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut child = child;
            while std::fs::metadata(&partial).map_or(true, |m| m.len() == 0) {
                if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "{engine:?} SIG{signal}: no batch committed in 60 s ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{engine:?} SIG{signal}: {stderr}"
            );
            assert!(
                stderr.contains(&format!("SIG{signal} received"))
                    && stderr.contains("records committed (batches 1-")
                    && stderr.contains("run the same command again to resume after them"),
                "{engine:?} SIG{signal}: {stderr}"
            );
            // Nothing half done on disk: no partial file, no report of a run that did not end,
            // and the rejects file holds exactly the committed batches' rejections.
            assert_eq!(partial_files(dir.path()), Vec::<PathBuf>::new());
            assert!(
                !report.exists(),
                "{engine:?} SIG{signal}: a report was written"
            );
            let stored: i64 = revisions_per_upstream(&url).values().sum();
            let rejected = std::fs::read_to_string(&rejects).unwrap().lines().count();
            assert!(stored > 0, "{engine:?} SIG{signal}: nothing committed");
            assert!(
                stderr.contains(&format!("{rejected} rejected")),
                "{engine:?} SIG{signal}: {stderr}"
            );

            let resumed = backfill(
                &url,
                &[&feed],
                &["--rejects", rejects.to_str().unwrap()],
                &[],
                dir.path(),
            );
            assert_eq!(
                resumed.code, 1,
                "{engine:?} SIG{signal}: {}",
                resumed.stderr
            );
            assert!(
                resumed.stderr.contains("resuming after"),
                "{}",
                resumed.stderr
            );
            assert_eq!(resumed.report["written"], full.report["written"]);
            assert_eq!(resumed.report["rejected"], full.report["rejected"]);
            assert_eq!(
                store_hash(&url, dir.path()),
                reference_hash,
                "{engine:?} SIG{signal}: resumed store differs from the uninterrupted one"
            );
            assert_eq!(
                std::fs::read(&rejects).unwrap(),
                std::fs::read(&ref_rejects).unwrap(),
                "{engine:?} SIG{signal}: rejects file"
            );
            assert_eq!(partial_files(dir.path()), Vec::<PathBuf>::new());
        }
    }
}

#[test]
fn a_signal_ends_a_read_only_verify_at_once_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let feed = generated_feed(dir.path(), 24_000);
    let mut opts = BuildOptions::new(dir.path().join("ds"));
    opts.source_date_epoch = Some(EPOCH.parse().unwrap());
    let dataset = build_from_inputs(&[feed], &opts).unwrap().archive;
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["aoc", "verify", "--input"])
            .arg(&dataset)
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "stella aoc verify: interrupted by SIG{signal}; nothing was written"
            )),
            "{stderr}"
        );
    }
}

/// Runs of different sources of one tenant write side by side, each reporting exactly its own
/// rows; a run of every source of that tenant, started meanwhile, is refused (exit 4) naming
/// both.
#[test]
fn backfills_of_different_sources_run_side_by_side_and_a_whole_tenant_run_is_refused_meanwhile() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let feed = generated_feed(dir.path(), 20_000);
        let url = fresh_store(engine, dir.path(), "sources");
        let report = |name: &str| dir.path().join(format!("{name}.json"));
        let args = |source: Option<&str>, name: &str| -> Vec<String> {
            let mut a: Vec<String> = [
                "aoc",
                "backfill",
                "--no-progress",
                "--batch-size",
                "10",
                "--store",
                &url,
                "--from",
                feed.to_str().unwrap(),
                "--report",
                report(name).to_str().unwrap(),
            ]
            .map(str::to_owned)
            .to_vec();
            if let Some(s) = source {
                a.extend(["--source".to_owned(), s.to_owned()]);
            }
            a
        };
        let spawn = |source, name| {
            stella()
                .args(args(Some(source), name))
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut alpha = spawn("alpha", "alpha");
        let mut beta = spawn("beta", "beta");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let sources = Store::open_read_only(&url)
                .ok()
                .and_then(|mut s| s.counts().ok())
                .map_or(0, |c| c.by_source.len());
            if sources == 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{engine:?}: no rows");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (code, _, stderr) = run(stella().args(args(None, "whole")));
        assert!(
            alpha.try_wait().unwrap().is_none() && beta.try_wait().unwrap().is_none(),
            "{engine:?}: a run ended before the third started; enlarge the feed"
        );
        assert_eq!(code, 4, "{engine:?}: {stderr}");
        match engine {
            Engine::Sqlite => {
                for (child, source) in [(&alpha, "alpha"), (&beta, "beta")] {
                    let holder = format!("process {}", child.id());
                    assert!(stderr.contains(&holder), "{engine:?}: {stderr}");
                    assert!(stderr.contains(&format!("source \"{source}\"")), "{stderr}");
                }
            }
            Engine::Postgres => assert_eq!(
                stderr.matches("PostgreSQL session").count(),
                2,
                "{engine:?}: {stderr}"
            ),
        }
        assert!(!report("whole").exists());
        assert!(alpha.wait().unwrap().success(), "{engine:?}");
        assert!(beta.wait().unwrap().success(), "{engine:?}");
        let counts = Store::open_read_only(&url).unwrap().counts().unwrap();
        for source in ["alpha", "beta"] {
            let r: Value = serde_json::from_slice(&std::fs::read(report(source)).unwrap()).unwrap();
            let stored = counts
                .by_source
                .iter()
                .find(|c| c.vendor == source)
                .map_or(0, |c| c.documents);
            assert!(stored > 0, "{engine:?} {source}");
            assert_eq!(r["written"], stored, "{engine:?} {source}: {r}");
        }
    }
}

/// A store shared by two users: a writer lock file the other user created (0644, here 0444 so
/// that the bits bind this user too) is locked through a read-only handle; the run is not
/// refused for want of write access to it.
#[test]
fn a_writer_lock_file_this_user_cannot_write_still_serves_as_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o777);
    let db = dir.path().join("shared.db");
    let url = format!("sqlite://{}", db.display());
    let (code, _, stderr) = run(stella().args([
        "aoc",
        "backfill",
        "--no-progress",
        "--store",
        &url,
        "--from",
        testdata("osv-rustsec").to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let locks: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let described = std::fs::read(&locks[0]).unwrap();
    chmod(&locks[0], 0o444);
    chmod(&db, 0o666);

    let stella = Unprivileged::new(Path::new(env!("CARGO_BIN_EXE_stella")));
    let (code, _, stderr) = run(stella
        .command()
        .args([
            "aoc",
            "backfill",
            "--no-progress",
            "--store",
            &url,
            "--from",
        ])
        .arg(testdata("osv-rustsec"))
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("NO_COLOR", "1")
        .env_remove("STELLA_STORE"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(" 0 written"), "all no-ops: {stderr}");
    assert_eq!(std::fs::read(&locks[0]).unwrap(), described);
}

#[test]
fn a_report_that_cannot_be_written_after_the_last_batch_is_written_by_the_same_command() {
    let dir = tempfile::tempdir().unwrap();
    // A filesystem that takes a new, empty file (the check before work passes) but no byte.
    let Some(full) = Tmpfs::mount(&dir.path().join("full"), "size=4k") else {
        return;
    };
    std::fs::write(full.0.join("fill"), vec![0u8; 4096]).unwrap();
    let report = full.0.join("report.json");
    let url = fresh_store(Engine::Sqlite, dir.path(), "full");
    let feed = testdata("history-sample.ndjson");
    let args = |report: &Path| {
        vec![
            "aoc".to_owned(),
            "backfill".into(),
            "--store".into(),
            url.clone(),
            "--from".into(),
            feed.display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ]
    };
    let argv = args(&report);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (code, stderr) = stella_in(dir.path(), &argv);
    assert_eq!(code, 3, "an environment problem: {stderr}");
    assert!(
        stderr.contains(
            "--report: all 121 records are committed, but the run is not marked complete: run \
             the same command again to write its outputs"
        ),
        "{stderr}"
    );
    assert!(!report.exists());
    std::fs::remove_file(full.0.join("fill")).unwrap();
    let (code, stderr) = stella_in(dir.path(), &argv);
    assert_eq!(code, 0, "{stderr}");
    // The run's own report, not a rerun's no-ops.
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (written["records"].clone(), written["written"].clone()),
        (121.into(), 121.into())
    );
}
