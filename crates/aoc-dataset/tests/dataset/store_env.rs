//! `aoc-dataset build` takes its store from `STELLA_STORE` when neither `--store` nor `--from`
//! is given; `--from` with the variable set still builds from the inputs, and a password in the
//! variable is never printed.

use crate::{aoc_dataset, run_build, testdata};
use aoc_ingest::{Backfill, Source};
use aoc_store::Store;
use std::process::Command;

#[test]
fn build_exports_the_store_named_by_stella_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());

    // --from wins over the variable (which names no store at all).
    let (code, from_inputs, err) = run_build(
        aoc_dataset()
            .env("STELLA_STORE", &missing)
            .args(["build", "--from"])
            .arg(testdata("osv-rustsec"))
            .arg("--out")
            .arg(dir.path().join("a")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!dir.path().join("missing.db").exists());
    let archive = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();

    // Loaded into a store, and exported again from STELLA_STORE alone: the same dataset.
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let mut store = Store::open(&url).unwrap();
    let mut source = Source::open(&[archive], &[&aoc_dataset::Datasets::default()]).unwrap();
    Backfill::new("default", 1_764_000_000)
        .run(&mut source, Some(&mut store))
        .unwrap();
    drop(store);
    let (code, from_store, err) = run_build(
        aoc_dataset()
            .env("STELLA_STORE", &url)
            .args(["build", "--out"])
            .arg(dir.path().join("b")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(from_store, from_inputs);

    // Neither --store, --from nor the variable: a usage error.
    let (code, _, err) = run_build(
        aoc_dataset()
            .args(["build", "--out"])
            .arg(dir.path().join("c")),
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_password_in_stella_store_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the loopback address: the connection is refused at once.
    let url = "postgres://aoc:hunter2-not-printed@127.0.0.1:1/aoc?sslmode=disable";
    let (code, _, err) = run_build(
        aoc_dataset()
            .env("STELLA_STORE", url)
            .args(["build", "--out"])
            .arg(dir.path()),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postgres://aoc:***@127.0.0.1:1/aoc"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A password holding every character a URL reserves in its user info, and its URL form.
const RESERVED_PASSWORD: &str = "p/a?s@s#w%o:rd";
const RESERVED_ENCODED: &str = "p%2Fa%3Fs%40s%23w%25o%3Ard";

/// The piece of the password `text` shows, if any: raw, encoded, or six characters of either.
fn leak(text: &str) -> Option<String> {
    [RESERVED_PASSWORD, RESERVED_ENCODED]
        .iter()
        .flat_map(|pw| {
            let chars: Vec<char> = pw.chars().collect();
            chars
                .windows(6)
                .map(|w| w.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .find(|piece| text.contains(piece.as_str()))
}

#[test]
fn a_password_with_reserved_characters_reaches_the_server_and_no_output() {
    let Ok(server) = std::env::var("AOC_TEST_PG") else {
        let msg = "AOC_TEST_PG is not set: the PostgreSQL store arguments were NOT TESTED. Run \
                   `eval \"$(scripts/pg-test-cluster.sh start)\"` first.";
        aoc_testkit::skip(msg);
        return;
    };
    // A role and database of this test's own on the test server (which trusts every connection:
    // the password is delivered and ignored; aoc-store's TLS test checks it is the right one).
    let name = format!("dataset_pw_{}", std::process::id());
    let mut admin = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}"),
        format!("CREATE ROLE {name} LOGIN PASSWORD '{RESERVED_PASSWORD}'"),
        format!("CREATE DATABASE {name} OWNER {name}"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let authority = server
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(_, hostport)| hostport.split('/').next().unwrap().to_owned())
        .expect("AOC_TEST_PG is postgres://USER@HOST:PORT/DB");
    let (host, port) = authority.split_once(':').unwrap();
    let url = format!("postgres://{name}:{RESERVED_ENCODED}@{authority}/{name}?sslmode=disable");
    let shown = format!("postgres://{name}:***@{authority}/{name}?sslmode=disable");
    let keywords = format!(
        "host={host} port={port} user={name} dbname={name} sslmode=disable \
         password='{RESERVED_PASSWORD}'"
    );

    // The store holds the samples, loaded through the same parser.
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&url).unwrap();
    let mut source = Source::open(
        &[testdata("osv-rustsec")],
        &[&aoc_dataset::Datasets::default()],
    )
    .unwrap();
    Backfill::new("default", 1_764_000_000)
        .run(&mut source, Some(&mut store))
        .unwrap();
    drop(store);

    // (exit code, stdout, everything printed); no piece of the password anywhere.
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!(
            "--- stdout\n{stdout}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(piece) = leak(&all) {
            panic!("the password shows ({piece:?}):\n{all}");
        }
        (out.status.code().unwrap(), stdout, all)
    };

    // Success: from --store and from STELLA_STORE, as a URL and as a keyword/value string.
    let mut hashes = Vec::new();
    for (i, (store, from_env)) in [(&url, false), (&url, true), (&keywords, true)]
        .into_iter()
        .enumerate()
    {
        let mut cmd = aoc_dataset();
        cmd.args(["build", "--format", "json", "--out"])
            .arg(dir.path().join(format!("out{i}")));
        if from_env {
            cmd.env("STELLA_STORE", store);
        } else {
            cmd.args(["--store", store]);
        }
        let (code, stdout, all) = run(&mut cmd);
        assert_eq!(code, 0, "{all}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        hashes.push(doc["hash"].clone());
    }
    assert!(
        hashes.iter().all(|h| h == &hashes[0] && h.is_string()),
        "{hashes:?}"
    );

    // libpq's variables fill what the store argument leaves out: a bare URL with the host only,
    // and a keyword string with no database; the same store, so the same dataset. (Without
    // PGUSER the user would be the login name, without PGDATABASE the database `postgres`.)
    for (i, store) in [format!("postgres://{host}"), format!("host={host}")]
        .iter()
        .enumerate()
    {
        let (code, stdout, all) = run(aoc_dataset()
            .env("PGPORT", port)
            .env("PGUSER", "postgres")
            .env("PGDATABASE", &name)
            .env("PGSSLMODE", "disable")
            .args(["build", "--format", "json", "--store", store, "--out"])
            .arg(dir.path().join(format!("env{i}"))));
        assert_eq!(code, 0, "{store}: {all}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(doc["hash"], hashes[0], "{store}");
    }

    // Failures: nothing listening, and a database that does not exist (the server's message);
    // each names the store by its redacted form.
    let unreachable = url.replace(&authority, "127.0.0.1:1");
    let no_db = url.replace(&format!("/{name}?"), "/no_such_db?");
    for (bad, shown, why) in [
        (
            &unreachable,
            shown.replace(&authority, "127.0.0.1:1"),
            "cannot connect to PostgreSQL at 127.0.0.1:1",
        ),
        (
            &no_db,
            shown.replace(&format!("/{name}?"), "/no_such_db?"),
            "does not exist",
        ),
    ] {
        for from_env in [false, true] {
            let mut cmd = aoc_dataset();
            cmd.args(["build", "--format", "json", "--out"])
                .arg(dir.path().join("failed"));
            if from_env {
                cmd.env("STELLA_STORE", bad);
            } else {
                cmd.args(["--store", bad]);
            }
            let (code, stdout, all) = run(&mut cmd);
            assert_eq!(code, 2, "{all}");
            assert!(all.contains(why), "{all}");
            assert!(all.contains(&format!("cannot open store {shown}")), "{all}");
            let failure: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(failure["ok"], false, "{stdout}");
        }
    }
    // An unencoded password is ambiguous: refused, saying how to encode it.
    let ambiguous = url.replace(RESERVED_ENCODED, "pa?ss/w0rd");
    let (code, _, all) = run(aoc_dataset()
        .args(["build", "--out"])
        .arg(dir.path().join("ambiguous"))
        .args(["--store", &ambiguous]));
    assert_eq!(code, 2, "{all}");
    assert!(all.contains("'?' as %3F") && !all.contains("w0rd"), "{all}");

    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {name}"));
}
