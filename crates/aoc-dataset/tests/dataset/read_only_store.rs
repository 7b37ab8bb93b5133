//! `aoc-dataset build --store` only reads the store: a SQLite file and directory its user cannot
//! write, a PostgreSQL role with nothing but SELECT, a database whose transactions are read-only
//! (a hot standby's condition) all export the same dataset, and a store at an older schema is
//! refused, not migrated.

use crate::{run_build, testdata, EPOCH};
use aoc_ingest::{Backfill, Source};
use aoc_store::{Store, StoreError};
use aoc_testkit::Unprivileged;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// `aoc-dataset build --store URL --out OUT`, as `nobody` when `unprivileged` and running as
/// root (permission bits do not bind root); (exit code, the hash printed, stderr).
fn build(url: &str, out: &Path, unprivileged: bool) -> (i32, String, String) {
    build_with(&["--store", url], out, unprivileged)
}

fn build_with(source: &[&str], out: &Path, unprivileged: bool) -> (i32, String, String) {
    let bin = Path::new(env!("CARGO_BIN_EXE_aoc-dataset"));
    let unprivileged = unprivileged.then(|| Unprivileged::new(bin));
    let mut cmd = match &unprivileged {
        Some(u) => u.command(),
        None => Command::new(bin),
    };
    run_build(
        cmd.arg("build")
            .args(source)
            .arg("--out")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            .env("NO_COLOR", "1")
            .env_remove("STELLA_STORE"),
    )
}

/// The RustSec sample backfilled into the store at `url`.
fn load(url: &str) {
    let mut store = Store::open(url).unwrap();
    let mut source = Source::open(&[testdata("osv-rustsec")], &[]).unwrap();
    Backfill::new("default", EPOCH)
        .run(&mut source, Some(&mut store))
        .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory anyone may write (the unprivileged build's output).
fn open_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    dir
}

/// Every file of `dir` with a hash of its bytes, its length and its mtime.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, usize, SystemTime)> {
    use std::hash::{Hash, Hasher};
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                (h.finish(), bytes.len(), meta.modified().unwrap()),
            )
        })
        .collect()
}

#[test]
fn build_exports_a_sqlite_store_its_user_cannot_write_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let url = format!("sqlite://{}", store_dir.join("s.db").display());
    load(&url);
    // The dataset of the same inputs, built without the store: a read-only open of the still
    // writable store would leave SQLite's -shm and -wal beside it (a WAL reader's index, which
    // SQLite creates where it may and keeps), and the check below is of a directory without
    // them.
    let inputs = testdata("osv-rustsec");
    let (code, expected, err) = build_with(
        &["--from", inputs.to_str().unwrap()],
        &open_dir(dir.path(), "inputs"),
        false,
    );
    assert_eq!(code, 0, "{err}");
    for name in snapshot(&store_dir).keys() {
        chmod(&store_dir.join(name), 0o444);
    }
    chmod(&store_dir, 0o555);
    let before = snapshot(&store_dir);
    assert!(
        before.keys().all(|n| n == "s.db" || n.ends_with(".lock")),
        "{:?}",
        before.keys()
    );

    let (code, hash, err) = build(&url, &open_dir(dir.path(), "read-only"), true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(hash, expected);
    assert_eq!(
        snapshot(&store_dir),
        before,
        "the export changed the store's directory"
    );
    // As this user too (root here, whom the bits do not stop): the bits still say read-only.
    let (code, hash, err) = build(&url, &open_dir(dir.path(), "as-this-user"), false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(hash, expected);
    assert_eq!(
        snapshot(&store_dir),
        before,
        "the export as this user changed the store's directory"
    );
    chmod(&store_dir, 0o755);
}

#[test]
fn build_refuses_a_store_at_an_older_schema_and_migrates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    load(&url);
    // Recorded as schema 4: a store this build would migrate (migration 5) on a writing open.
    match Store::open(&url).unwrap() {
        Store::Sqlite(s) => s
            .connection()
            .execute_batch("DELETE FROM schema_migrations WHERE version = 5")
            .unwrap(),
        Store::Postgres(_) => unreachable!(),
    }
    let (code, _, err) = build(&url, &dir.path().join("out"), false);
    assert_eq!(code, 2, "{err}");
    for needle in ["schema version 4", "(5)", "stella aoc backfill"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(
        matches!(
            Store::open_read_only(&url),
            Err(StoreError::SchemaTooOld { found: 4, known: 5 })
        ),
        "the export migrated the store"
    );
}

/// The checks on PostgreSQL: a SELECT-only role (no CREATE on schema public) exports
/// the store, and so does anyone on a database set to `default_transaction_read_only`.
#[test]
fn build_needs_only_select_on_postgres_and_works_on_a_read_only_database() {
    let Ok(admin_url) = std::env::var("AOC_TEST_PG") else {
        aoc_testkit::skip(
            "aoc-dataset read-only PostgreSQL export: AOC_TEST_PG is not set (cargo xtask test \
             starts a server)",
        );
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("dataset_ro_{}_{nanos}", std::process::id());
    let role = format!("{db}_reader");
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .unwrap();
    let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
    load(&url);
    let mut owner = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    owner
        .batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ))
        .unwrap();
    drop(owner);
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let reader_url = format!("{scheme}://{role}@{host}");

    let dir = tempfile::tempdir().unwrap();
    let (code, expected, err) = build(&url, &dir.path().join("owner"), false);
    assert_eq!(code, 0, "{err}");
    let (code, hash, err) = build(&reader_url, &dir.path().join("reader"), false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(hash, expected);

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} SET default_transaction_read_only = on"
        ))
        .unwrap();
    // The database now refuses writes (a writing open's migrations check fails)...
    let mut session = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let refused = session.batch_execute("CREATE TABLE t (x int)").unwrap_err();
    let refused = refused.as_db_error().unwrap().message();
    assert!(refused.contains("read-only transaction"), "{refused}");
    drop(session);
    // ...and the export still reads it.
    for (name, url) in [("ro-owner", &url), ("ro-reader", &reader_url)] {
        let (code, hash, err) = build(url, &dir.path().join(name), false);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(hash, expected, "{name}");
    }

    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {role}")).unwrap();
}
