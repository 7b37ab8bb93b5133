//! One specification of the raw store, run against both engines: `sqlite::*` on a fresh SQLite
//! file per test, `postgres::*` on a fresh database per test in the server at `AOC_TEST_PG`.
//!
//! PostgreSQL: `eval "$(scripts/pg-test-cluster.sh start)"; cargo test -p aoc-store;
//! scripts/pg-test-cluster.sh stop`. Without `AOC_TEST_PG` those tests print how to run them and
//! pass, except under `CI`, where they fail.

use aoc_contract::canonical::content_hash;
use aoc_contract::{map_document, MapContext, UpstreamKey, ViolationCode};
use aoc_store::{
    verify_store, Batch, Checkpoint, Deletion, DocOutcome, ScanFilter, Store, StoreError,
    StoredRow, VerifyOptions, WriterScope,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------------
// Fixtures

enum Engine {
    // Held for its lifetime: the directory is removed on drop.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

struct Fixture {
    url: String,
    store: Store,
    engine: Engine,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/store.db", dir.path().display());
        Fixture {
            store: Store::open(&url).unwrap(),
            url,
            engine: Engine::Sqlite(dir),
        }
    }

    /// A fresh database on the `AOC_TEST_PG` server, or `None` (after saying so) without one.
    fn postgres() -> Option<Fixture> {
        let Ok(admin_url) = std::env::var("AOC_TEST_PG") else {
            aoc_testkit::skip(
                "aoc-store PostgreSQL test: AOC_TEST_PG is not set. Run it with a throwaway \
                 server: eval \"$(scripts/pg-test-cluster.sh start)\" && cargo test -p aoc-store; \
                 scripts/pg-test-cluster.sh stop; or point AOC_TEST_PG at a server: \
                 postgres://postgres@127.0.0.1:PORT/postgres",
            );
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let database = format!(
            "aoc_store_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = ::postgres::Client::connect(&admin_url, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to AOC_TEST_PG={admin_url}: {e}"));
        // Two calls: several statements in one string run as one transaction, which DROP and
        // CREATE DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .unwrap();
        let url = with_database(&admin_url, &database);
        Some(Fixture {
            store: Store::open(&url).unwrap(),
            url,
            engine: Engine::Postgres {
                admin_url,
                database,
            },
        })
    }

    fn engine_kind(&self) -> aoc_store::Engine {
        self.store.engine()
    }

    /// The URL of a second, empty database of the fixture's engine, and what keeps it alive.
    fn second_database(&self) -> (String, SecondDatabase) {
        match &self.engine {
            Engine::Sqlite(_) => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/second.db", dir.path().display());
                (url, SecondDatabase::Sqlite(dir))
            }
            Engine::Postgres {
                admin_url,
                database,
            } => {
                let name = format!("{database}_second");
                let mut admin = ::postgres::Client::connect(admin_url, ::postgres::NoTls).unwrap();
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                    .unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let url = with_database(admin_url, &name);
                (
                    url,
                    SecondDatabase::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                )
            }
        }
    }

    /// Replaces `from` by `to` in the stored JSON of `id`, with the append-only triggers bypassed
    /// (and restored), as someone with direct database access could.
    fn tamper_doc(&mut self, id: &str, from: &str, to: &str) {
        match &mut self.store {
            Store::Sqlite(s) => bypass_sqlite(
                s.connection(),
                "advisory_raw_no_update",
                "UPDATE advisory_raw SET doc = replace(doc, ?2, ?3) WHERE id = ?1",
                &[&id, &from, &to],
            ),
            Store::Postgres(s) => bypass_pg(
                s.client(),
                "UPDATE advisory_raw SET doc = replace(doc::text, $2, $3)::json WHERE id = $1",
                &[&id, &from, &to],
            ),
        }
    }

    /// Sets the `supersedes` column of `id` (not the document), triggers bypassed.
    fn tamper_supersedes_column(&mut self, id: &str, value: &str) {
        match &mut self.store {
            Store::Sqlite(s) => bypass_sqlite(
                s.connection(),
                "advisory_raw_no_update",
                "UPDATE advisory_raw SET supersedes = ?2 WHERE id = ?1",
                &[&id, &value],
            ),
            Store::Postgres(s) => bypass_pg(
                s.client(),
                "UPDATE advisory_raw SET supersedes = $2 WHERE id = $1",
                &[&id, &value],
            ),
        }
    }

    /// Deletes the row of `id`, triggers bypassed.
    fn tamper_delete(&mut self, id: &str) {
        match &mut self.store {
            Store::Sqlite(s) => bypass_sqlite(
                s.connection(),
                "advisory_raw_no_delete",
                "DELETE FROM advisory_raw WHERE id = ?1",
                &[&id],
            ),
            Store::Postgres(s) => {
                bypass_pg(s.client(), "DELETE FROM advisory_raw WHERE id = $1", &[&id])
            }
        }
    }

    /// Runs `sql` (one row affected) on the `upstreams` table with its triggers and the foreign
    /// key from the raw rows bypassed.
    fn tamper_upstreams(&mut self, sql: &str) {
        match &mut self.store {
            Store::Sqlite(s) => {
                let conn = s.connection();
                conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
                let trigger = if sql.starts_with("DELETE") {
                    "upstreams_no_delete"
                } else {
                    "upstreams_no_update"
                };
                bypass_sqlite(conn, trigger, sql, &[]);
                conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            }
            // A replica session fires neither the triggers nor the foreign key's checks.
            Store::Postgres(s) => bypass_pg(s.client(), sql, &[]),
        }
    }

    /// Runs a statement directly on the engine, triggers in force.
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        match &mut self.store {
            Store::Sqlite(s) => s.connection().execute_batch(sql).map_err(|e| e.to_string()),
            Store::Postgres(s) => s.client().batch_execute(sql).map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            }),
        }
    }

    /// Fault injection: the database refuses to insert rows of `upstream_id`.
    fn fail_inserts_of(&mut self, upstream_id: &str) {
        let sql = match self.store {
            Store::Sqlite(_) => format!(
                "CREATE TRIGGER test_fail BEFORE INSERT ON advisory_raw
                 WHEN NEW.id LIKE 'advisory_raw:%:{upstream_id}:%'
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ),
            Store::Postgres(_) => format!(
                "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$;
                 CREATE TRIGGER test_fail BEFORE INSERT ON advisory_raw FOR EACH ROW
                 WHEN (NEW.id LIKE 'advisory_raw:%:{upstream_id}:%') EXECUTE FUNCTION test_fail()"
            ),
        };
        self.execute(&sql).unwrap();
    }

    /// Removes an append-only trigger for good.
    fn drop_guard(&mut self) {
        let sql = match self.store {
            Store::Sqlite(_) => "DROP TRIGGER advisory_raw_no_update",
            Store::Postgres(_) => {
                "ALTER TABLE advisory_raw DISABLE TRIGGER advisory_raw_append_only"
            }
        };
        self.execute(sql).unwrap();
    }
}

enum SecondDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for SecondDatabase {
    fn drop(&mut self) {
        if let SecondDatabase::Postgres { admin_url, name } = self {
            if let Ok(mut admin) = ::postgres::Client::connect(admin_url, ::postgres::NoTls) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Engine::Postgres {
            admin_url,
            database,
        } = &self.engine
        {
            if let Ok(mut admin) = ::postgres::Client::connect(admin_url, ::postgres::NoTls) {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
            }
        }
    }
}

fn bypass_sqlite(
    conn: &rusqlite::Connection,
    trigger: &str,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) {
    let create: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [trigger],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(&format!("DROP TRIGGER {trigger}"))
        .unwrap();
    assert_eq!(conn.execute(sql, args).unwrap(), 1);
    conn.execute_batch(&create).unwrap();
}

fn bypass_pg(
    client: &mut ::postgres::Client,
    sql: &str,
    args: &[&(dyn ::postgres::types::ToSql + Sync)],
) {
    // Superuser only: triggers of ordinary (ENABLE ORIGIN) kind do not fire for a replica.
    client
        .batch_execute("SET session_replication_role = replica")
        .unwrap();
    assert_eq!(client.execute(sql, args).unwrap(), 1);
    client
        .batch_execute("RESET session_replication_role")
        .unwrap();
}

/// The admin URL with its database replaced.
fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").expect("a URL") + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{head}{authority}/{database}{query}")
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&mut super::Fixture::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(mut f) = super::Fixture::postgres() { super::$name(&mut f) }
            } )*
        }
    };
}

suite!(
    migrations_are_recorded_once_and_reopening_is_idempotent,
    a_store_at_schema_1_is_migrated_on_open_keeping_every_row,
    a_store_newer_than_this_build_is_refused,
    appending_the_same_documents_again_is_a_noop,
    changed_content_appends_a_revision_that_supersedes_the_head,
    revisions_inside_one_batch_chain_onto_each_other,
    stored_bytes_are_exactly_the_bytes_written,
    update_delete_and_truncate_of_raw_rows_are_rejected,
    upstream_deletion_is_recorded_and_never_applied,
    checkpoint_commits_and_rolls_back_with_its_batch,
    row_changed_behind_the_store_is_detected,
    upstream_changed_or_deleted_behind_the_store_is_detected,
    missing_append_only_trigger_is_reported,
    history_replay_stores_one_revision_per_distinct_content,
    scan_filters_by_tenant_and_since_in_stable_order,
    counts_per_tenant_and_vendor,
    reloading_scanned_rows_into_a_fresh_store_reproduces_them,
    given_supersedes_must_match_the_stored_head,
    concurrent_writers_are_serialized,
    invalid_documents_refuse_the_whole_batch,
    keys_and_checkpoints_with_quotes_backslashes_braces_and_nul_round_trip,
    a_read_only_open_reads_and_refuses_every_write,
    a_read_only_open_refuses_an_older_or_newer_schema_and_migrates_nothing,
    a_read_only_open_of_a_place_with_no_store_creates_nothing,
    one_writer_per_tenant_and_source_the_second_is_refused_naming_the_first,
);

// ---------------------------------------------------------------------------------------------
// Data

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");
const T0: &str = "2026-11-26T16:00:00Z";

fn osv(name: &str) -> Value {
    let path = format!("{TESTDATA}/osv-rustsec/{name}.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn map(raw: Value, tenant: &str, at: &str) -> Value {
    let ctx = MapContext {
        tenant: tenant.into(),
        vendor: None,
        connector_version: "0.1.0".into(),
        retrieved_at: at.into(),
        ingested_at: at.into(),
    };
    map_document(raw, &ctx, &mut Vec::new())
        .unwrap()
        .into_value()
}

/// Revision `n` of an upstream document: its `modified` time moved on by `n` days.
fn revision(raw: &Value, n: u32) -> Value {
    let mut raw = raw.clone();
    raw["modified"] = Value::String(format!("2030-01-{:02}T00:00:00Z", n + 1));
    raw
}

fn written(outcome: &DocOutcome) -> &aoc_store::WrittenDoc {
    match outcome {
        DocOutcome::Written(w) => w,
        DocOutcome::Noop { id } => panic!("expected a write, got a no-op of {id}"),
    }
}

fn all_rows(store: &mut Store) -> Vec<StoredRow> {
    let mut rows = Vec::new();
    store
        .scan(&ScanFilter::default(), |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
    rows
}

fn key(tenant: &str, vendor: &str, upstream_id: &str) -> UpstreamKey {
    UpstreamKey {
        tenant: tenant.into(),
        vendor: vendor.into(),
        upstream_id: upstream_id.into(),
    }
}

fn codes(report: &aoc_store::VerifyReport) -> Vec<(String, ViolationCode, String)> {
    report
        .violations
        .iter()
        .map(|v| {
            (
                v.location.clone(),
                v.violation.code,
                v.violation.path.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The specification

fn migrations_are_recorded_once_and_reopening_is_idempotent(f: &mut Fixture) {
    let first = f.store.migrations().unwrap();
    assert_eq!(
        first.iter().map(|m| m.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(
        aoc_contract::guard::is_rfc3339_utc(&first[0].1),
        "{}",
        first[0].1
    );
    let mut again = Store::open(&f.url).unwrap();
    assert_eq!(again.migrations().unwrap(), first);
}

fn a_store_newer_than_this_build_is_refused(f: &mut Fixture) {
    f.execute(
        "INSERT INTO schema_migrations (version, name, applied_at)
         VALUES (99, 'from the future', '2030-01-01T00:00:00Z')",
    )
    .unwrap();
    match Store::open(&f.url) {
        Err(StoreError::SchemaTooNew { found: 99, known }) => assert_eq!(known, 5),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store at schema 99 was opened"),
    }
}

/// A store as the first schema left it (text-keyed raw rows, only migration 1 recorded) is
/// migrated on open: every row kept byte for byte, chains intact, and appending goes on from it.
fn a_store_at_schema_1_is_migrated_on_open_keeping_every_row(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2022-0090");
    let docs: Vec<Value> = (0..3).map(|n| map(revision(&raw, n), "t1", T0)).collect();
    let other = map(osv("RUSTSEC-2016-0001"), "t2", T0);
    f.store.append_batch(&docs, None).unwrap();
    f.store
        .append_batch(std::slice::from_ref(&other), None)
        .unwrap();
    let rows = all_rows(&mut f.store);
    assert_eq!(rows.len(), 4);

    // The same rows in a second, empty database of the same engine, as schema 1 stored them.
    let schema_1 = aoc_store::migration_sql(f.engine_kind(), 1).unwrap();
    let ddl = "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                                                applied_at TEXT NOT NULL)";
    let unix = |at: &str| aoc_contract::clock::parse_rfc3339(at).unwrap();
    let (url, _keep) = f.second_database();
    match f.engine_kind() {
        aoc_store::Engine::Sqlite => {
            let conn = rusqlite::Connection::open(url.strip_prefix("sqlite://").unwrap()).unwrap();
            conn.execute_batch(ddl).unwrap();
            conn.execute_batch(schema_1).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (1, 'raw store', '2026-01-01T00:00:00Z')",
                [],
            )
            .unwrap();
            for r in &rows {
                conn.execute(
                    "INSERT INTO advisory_raw (tenant, vendor, upstream_id, revision, id,
                         content_hash, supersedes, ingested_at, ingested_unix, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    rusqlite::params![
                        r.tenant,
                        r.vendor,
                        r.upstream_id,
                        r.revision,
                        r.id,
                        r.content_hash,
                        r.supersedes,
                        r.ingested_at,
                        unix(&r.ingested_at),
                        r.json
                    ],
                )
                .unwrap();
            }
        }
        aoc_store::Engine::Postgres => {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            c.batch_execute(ddl).unwrap();
            c.batch_execute(schema_1).unwrap();
            c.batch_execute(
                "INSERT INTO schema_migrations VALUES (1, 'raw store', '2026-01-01T00:00:00Z')",
            )
            .unwrap();
            for r in &rows {
                c.execute(
                    "INSERT INTO advisory_raw (tenant, vendor, upstream_id, revision, id,
                         content_hash, supersedes, ingested_at, ingested_unix, doc)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json)",
                    &[
                        &r.tenant,
                        &r.vendor,
                        &r.upstream_id,
                        &r.revision,
                        &r.id,
                        &r.content_hash,
                        &r.supersedes,
                        &r.ingested_at,
                        &unix(&r.ingested_at),
                        &r.json,
                    ],
                )
                .unwrap();
            }
        }
    }

    let mut migrated = Store::open(&url).unwrap();
    let versions: Vec<i64> = migrated.migrations().unwrap().iter().map(|m| m.0).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(all_rows(&mut migrated), rows);
    let report = verify_store(
        &mut migrated,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{:#?}", report);
    assert_eq!(report.rows, 4);
    // Appending continues the migrated chain; the same content again is a no-op.
    let next = map(revision(&raw, 3), "t1", T0);
    let out = migrated
        .append_batch(&[next, docs[2].clone()], None)
        .unwrap();
    let w = written(&out.docs[0]);
    assert_eq!(w.revision, 4);
    assert_eq!(w.supersedes.as_deref(), docs[2]["_id"].as_str());
    assert!(matches!(out.docs[1], DocOutcome::Noop { .. }));
    let counts = migrated.counts().unwrap();
    assert_eq!((counts.documents, counts.upstream_documents), (5, 2));
}

fn appending_the_same_documents_again_is_a_noop(f: &mut Fixture) {
    let docs = vec![
        map(osv("RUSTSEC-2016-0001"), "t1", T0),
        map(osv("RUSTSEC-2020-0071"), "t1", T0),
    ];
    let first = f.store.append_batch(&docs, None).unwrap();
    assert_eq!((first.written(), first.noops()), (2, 0));
    // A later run: same content, later clock.
    let later = vec![
        map(osv("RUSTSEC-2016-0001"), "t1", "2026-12-01T00:00:00Z"),
        map(osv("RUSTSEC-2020-0071"), "t1", "2026-12-01T00:00:00Z"),
    ];
    let second = f.store.append_batch(&later, None).unwrap();
    assert_eq!((second.written(), second.noops()), (0, 2));
    assert_eq!(
        second.docs[0],
        DocOutcome::Noop {
            id: docs[0]["_id"].as_str().unwrap().into()
        }
    );
    // The same content under another tenant is another document.
    let other = f
        .store
        .append_batch(&[map(osv("RUSTSEC-2016-0001"), "t2", T0)], None)
        .unwrap();
    assert_eq!(other.written(), 1);
    assert_eq!(f.store.counts().unwrap().documents, 3);
}

fn changed_content_appends_a_revision_that_supersedes_the_head(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2021-0124");
    let mut ids = Vec::new();
    for n in 0..3 {
        let doc = map(revision(&raw, n), "t1", T0);
        let out = f
            .store
            .append_batch(std::slice::from_ref(&doc), None)
            .unwrap();
        let w = written(&out.docs[0]);
        assert_eq!(w.revision, i64::from(n) + 1);
        assert_eq!(w.supersedes, ids.last().cloned());
        ids.push(doc["_id"].as_str().unwrap().to_owned());
    }
    let rows = all_rows(&mut f.store);
    let chain: Vec<_> = rows
        .iter()
        .map(|r| (r.revision, r.id.clone(), r.supersedes.clone()))
        .collect();
    assert_eq!(
        chain,
        [
            (1, ids[0].clone(), None),
            (2, ids[1].clone(), Some(ids[0].clone())),
            (3, ids[2].clone(), Some(ids[1].clone())),
        ]
    );
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{:#?}", report.violations);
    assert_eq!((report.rows, report.upstream_documents), (3, 1));
}

fn revisions_inside_one_batch_chain_onto_each_other(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2022-0090");
    let other = map(osv("RUSTSEC-2023-0044"), "t1", T0);
    let r0 = map(revision(&raw, 0), "t1", T0);
    let r1 = map(revision(&raw, 1), "t1", T0);
    let r2 = map(revision(&raw, 2), "t1", T0);
    f.store
        .append_batch(std::slice::from_ref(&r0), None)
        .unwrap();
    // Interleaved with another advisory, one duplicate and one revert to stored content.
    let batch = [
        r1.clone(),
        other.clone(),
        r1.clone(),
        r2.clone(),
        r0.clone(),
    ];
    let out = f.store.append_batch(&batch, None).unwrap();
    let id = |d: &Value| d["_id"].as_str().unwrap().to_owned();
    assert_eq!(written(&out.docs[0]).revision, 2);
    assert_eq!(written(&out.docs[0]).supersedes, Some(id(&r0)));
    assert_eq!(written(&out.docs[1]).revision, 1);
    assert_eq!(written(&out.docs[1]).supersedes, None);
    assert_eq!(out.docs[2], DocOutcome::Noop { id: id(&r1) });
    assert_eq!(written(&out.docs[3]).revision, 3);
    assert_eq!(written(&out.docs[3]).supersedes, Some(id(&r1)));
    assert_eq!(out.docs[4], DocOutcome::Noop { id: id(&r0) });
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{:#?}", report.violations);
    assert_eq!((report.rows, report.upstream_documents), (4, 2));
}

fn stored_bytes_are_exactly_the_bytes_written(f: &mut Fixture) {
    let mut raw = osv("RUSTSEC-2016-0001");
    // Upstream text may hold NUL, astral-plane characters and numbers JSON writers disagree on;
    // jsonb would refuse the first and reorder keys.
    raw["details"] = Value::String("nul \u{0} emoji \u{1F600} tab \t".into());
    raw["database_specific"] =
        serde_json::json!({"z": 1.5e300, "a": -0.0, "m": 12345678901234567890u64});
    let r0 = map(raw.clone(), "t1", T0);
    let r1 = map(revision(&raw, 1), "t1", T0);
    let out = f.store.append_batch(&[r0.clone(), r1], None).unwrap();
    let rows = all_rows(&mut f.store);
    assert_eq!(rows.len(), 2);
    for (row, o) in rows.iter().zip(&out.docs) {
        assert_eq!(row.json, written(o).json);
    }
    assert_eq!(rows[0].json, serde_json::to_string(&r0).unwrap());
    let back: Value = serde_json::from_str(&rows[1].json).unwrap();
    assert_eq!(back["supersedes"], r0["_id"]);
    assert_eq!(back["content"]["raw"]["details"], raw["details"]);
}

fn update_delete_and_truncate_of_raw_rows_are_rejected(f: &mut Fixture) {
    f.store
        .append_batch(&[map(osv("RUSTSEC-2016-0001"), "t1", T0)], None)
        .unwrap();
    f.store
        .record_deletion(&Deletion {
            key: key("t1", "rustsec", "RUSTSEC-2016-0001"),
            recorded_at: T0.into(),
            location: "feed:1".into(),
        })
        .unwrap();
    let mut attempts = vec![
        "UPDATE advisory_raw SET revision = 7",
        "UPDATE advisory_raw SET doc = doc",
        "DELETE FROM advisory_raw",
        "UPDATE upstream_deletions SET location = 'x'",
        "DELETE FROM upstream_deletions",
        "UPDATE upstreams SET upstream_id = 'x'",
        "DELETE FROM upstreams",
    ];
    if matches!(f.store, Store::Postgres(_)) {
        attempts.extend([
            "TRUNCATE advisory_raw",
            "TRUNCATE upstream_deletions",
            "TRUNCATE upstreams CASCADE",
            // Statement-level triggers: even a statement that matches nothing is refused.
            "DELETE FROM advisory_raw WHERE false",
        ]);
    }
    for sql in attempts {
        let err = f.execute(sql).expect_err(sql);
        assert!(err.contains("is append-only"), "{sql}: {err}");
    }
    let counts = f.store.counts().unwrap();
    assert_eq!((counts.documents, counts.deletions), (1, 1));
    assert_eq!(all_rows(&mut f.store)[0].revision, 1);
}

fn upstream_deletion_is_recorded_and_never_applied(f: &mut Fixture) {
    let doc = map(osv("RUSTSEC-2020-0071"), "t1", T0);
    let deletion = Deletion {
        key: key("t1", "rustsec", "RUSTSEC-2020-0071"),
        recorded_at: "2026-11-27T00:00:00Z".into(),
        location: "history.ndjson:42".into(),
    };
    let out = f
        .store
        .write_batch(&Batch {
            docs: &aoc_store::prepare_docs(&[doc]).unwrap(),
            deletions: std::slice::from_ref(&deletion),
            checkpoint: None,
        })
        .unwrap();
    assert_eq!((out.written(), out.deletions_recorded), (1, 1));
    // Recording it again (a re-run) is a no-op.
    assert!(!f.store.record_deletion(&deletion).unwrap());
    let counts = f.store.counts().unwrap();
    assert_eq!((counts.documents, counts.deletions), (1, 1));
    assert_eq!(all_rows(&mut f.store).len(), 1, "the document stays");
}

fn checkpoint_commits_and_rolls_back_with_its_batch(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2021-0124");
    let cp = |position: &str, written: i64| Checkpoint {
        run_key: "run-1".into(),
        position: position.into(),
        written,
        noop: 0,
        rejected: 2,
        deleted: 0,
    };
    assert_eq!(f.store.checkpoint("run-1").unwrap(), None);
    f.store
        .append_batch(
            &[map(revision(&raw, 0), "t1", T0)],
            Some(&cp("file0:500", 0)),
        )
        .unwrap();
    // The checkpoint carries the totals before the batch; the store adds the batch's outcome.
    assert_eq!(
        f.store.checkpoint("run-1").unwrap(),
        Some(cp("file0:500", 1))
    );

    // A batch that fails inside its transaction (the database refuses its second document's
    // row) leaves neither rows nor checkpoint behind.
    f.fail_inserts_of("RUSTSEC-2016-0001");
    let batch = [
        map(revision(&raw, 1), "t1", T0),
        map(osv("RUSTSEC-2016-0001"), "t1", T0),
    ];
    let err = f
        .store
        .append_batch(&batch, Some(&cp("file0:1000", 1)))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlite(_) | StoreError::Postgres(_)),
        "{err}"
    );
    assert_eq!(
        f.store.checkpoint("run-1").unwrap(),
        Some(cp("file0:500", 1))
    );
    assert_eq!(f.store.counts().unwrap().documents, 1);

    f.store
        .append_batch(
            &[map(revision(&raw, 1), "t1", T0)],
            Some(&cp("file0:1000", 1)),
        )
        .unwrap();
    assert_eq!(
        f.store.checkpoint("run-1").unwrap(),
        Some(cp("file0:1000", 2))
    );
    assert_eq!(f.store.checkpoint("run-2").unwrap(), None);
}

fn row_changed_behind_the_store_is_detected(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2022-0090");
    let docs: Vec<Value> = (0..4).map(|n| map(revision(&raw, n), "t1", T0)).collect();
    let other = map(osv("RUSTSEC-2016-0001"), "t1", T0);
    f.store.append_batch(&docs, None).unwrap();
    f.store
        .append_batch(std::slice::from_ref(&other), None)
        .unwrap();
    let id = |d: &Value| d["_id"].as_str().unwrap().to_owned();
    let clean = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(clean.passed(), "{:#?}", clean.violations);

    // 1. The upstream text of revision 1 edited in place.
    f.tamper_doc(
        &id(&docs[0]),
        "2030-01-01T00:00:00Z",
        "2030-01-01T00:00:01Z",
    );
    // 2. The supersedes column of revision 3 pointed elsewhere (the document left alone).
    f.tamper_supersedes_column(&id(&docs[2]), &id(&docs[0]));
    // 3. Another advisory's tenant rewritten inside the document only.
    f.tamper_doc(&id(&other), r#""tenant":"t1""#, r#""tenant":"t9""#);
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    let loc = |n: i64| format!("advisory_raw/t1/rustsec/RUSTSEC-2022-0090#{n}");
    assert_eq!(
        codes(&report),
        [
            (
                "advisory_raw/t1/rustsec/RUSTSEC-2016-0001#1".into(),
                ViolationCode::HashMismatch,
                "/tenant".into()
            ),
            (
                loc(1),
                ViolationCode::HashMismatch,
                "/upstream/content_hash".into()
            ),
            (loc(3), ViolationCode::HashMismatch, "/supersedes".into()),
        ]
    );
    assert!(report.violations[1]
        .violation
        .message
        .contains("changed after it was written"));

    // 4. A middle revision deleted: the chain has a gap and revision 3 supersedes a missing id.
    f.tamper_delete(&id(&docs[1]));
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    let chain: Vec<_> = codes(&report)
        .into_iter()
        .filter(|c| c.1 == ViolationCode::Idempotency)
        .collect();
    assert_eq!(
        chain,
        [
            (loc(3), ViolationCode::Idempotency, "/supersedes".into()),
            (loc(3), ViolationCode::Idempotency, "/supersedes".into()),
        ],
        "{:#?}",
        report.violations
    );
    assert!(report
        .violations
        .iter()
        .any(|v| v.violation.message.contains("gap")));
    assert!(report.missing_guards.is_empty());
}

fn upstream_changed_or_deleted_behind_the_store_is_detected(f: &mut Fixture) {
    let a = map(osv("RUSTSEC-2016-0001"), "t1", T0);
    let b = map(osv("RUSTSEC-2022-0090"), "t1", T0);
    f.store.append_batch(&[a, b.clone()], None).unwrap();
    // The upstream id behind A's rows renamed: the rows no longer agree with their documents.
    f.tamper_upstreams("UPDATE upstreams SET upstream_id = 'RUSTSEC-2016-9999' WHERE upstream_id = 'RUSTSEC-2016-0001'");
    // B's upstream deleted: a scan (which joins the two) can no longer see B's row at all.
    f.tamper_upstreams("DELETE FROM upstreams WHERE upstream_id = 'RUSTSEC-2022-0090'");
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    let found = codes(&report);
    assert!(
        found.contains(&(
            "advisory_raw/t1/rustsec/RUSTSEC-2016-9999#1".into(),
            ViolationCode::HashMismatch,
            "/upstream/upstream_id".into()
        )),
        "{found:#?}"
    );
    let orphan = report
        .violations
        .iter()
        .find(|v| v.location.starts_with("advisory_raw/upstream-key-"))
        .unwrap_or_else(|| panic!("B's row is not reported: {found:#?}"));
    assert_eq!(orphan.id, b["_id"].as_str().unwrap());
    assert_eq!(orphan.violation.code, ViolationCode::HashMismatch);
    assert!(orphan
        .violation
        .message
        .contains("names no upstream document"));
    assert_eq!(report.rows, 1, "only A's row is still visible to scans");
}

fn missing_append_only_trigger_is_reported(f: &mut Fixture) {
    f.store
        .append_batch(&[map(osv("RUSTSEC-2016-0001"), "t1", T0)], None)
        .unwrap();
    f.drop_guard();
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.violations.is_empty());
    assert!(!report.passed());
    let expected = match f.store {
        Store::Sqlite(_) => "advisory_raw_no_update",
        Store::Postgres(_) => "advisory_raw_append_only",
    };
    assert_eq!(report.missing_guards, [expected]);
}

fn history_replay_stores_one_revision_per_distinct_content(f: &mut Fixture) {
    let text = std::fs::read_to_string(format!("{TESTDATA}/history-sample.ndjson")).unwrap();
    let mut distinct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut docs = Vec::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let Some(raw) = entry.get("document") else {
            continue;
        };
        let id = raw["id"].as_str().unwrap().to_owned();
        distinct.entry(id).or_default().insert(content_hash(raw));
        let committed_at = entry["committed_at"].as_str().unwrap();
        docs.push(map(raw.clone(), "t1", committed_at));
    }
    // Batches of 7 split revisions of one advisory across batches and put several in one.
    for chunk in docs.chunks(7) {
        f.store.append_batch(chunk, None).unwrap();
    }
    // Replaying the whole history again writes nothing.
    let again = f.store.append_batch(&docs, None).unwrap();
    assert_eq!(again.written(), 0);

    let mut stored: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in all_rows(&mut f.store) {
        stored
            .entry(row.upstream_id)
            .or_default()
            .push(row.revision);
    }
    assert_eq!(stored.len(), 16);
    for (id, contents) in &distinct {
        let expected: Vec<i64> = (1..=contents.len() as i64).collect();
        assert_eq!(stored[id], expected, "{id}");
    }
    assert!(stored["RUSTSEC-2020-0071"].len() > 1);
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{:#?}", report.violations);
    assert_eq!(report.upstream_documents, 16);
}

fn scan_filters_by_tenant_and_since_in_stable_order(f: &mut Fixture) {
    let names = [
        "RUSTSEC-2023-0044",
        "RUSTSEC-2016-0001",
        "RUSTSEC-2021-0124",
    ];
    // Written out of order, across tenants and days.
    for (i, tenant) in ["tb", "ta"].iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            let at = format!("2026-11-{:02}T00:00:00Z", 10 + i * 3 + j);
            f.store
                .append_batch(&[map(osv(name), tenant, &at)], None)
                .unwrap();
        }
    }
    f.store
        .append_batch(
            &[map(
                revision(&osv("RUSTSEC-2016-0001"), 1),
                "ta",
                "2026-11-20T00:00:00Z",
            )],
            None,
        )
        .unwrap();
    let scan = |store: &mut Store, filter: ScanFilter| {
        let mut keys = Vec::new();
        store
            .scan(&filter, |r| {
                keys.push(format!("{}/{}#{}", r.tenant, r.upstream_id, r.revision));
                Ok(())
            })
            .unwrap();
        keys
    };
    assert_eq!(
        scan(&mut f.store, ScanFilter::default()),
        [
            "ta/RUSTSEC-2016-0001#1",
            "ta/RUSTSEC-2016-0001#2",
            "ta/RUSTSEC-2021-0124#1",
            "ta/RUSTSEC-2023-0044#1",
            "tb/RUSTSEC-2016-0001#1",
            "tb/RUSTSEC-2021-0124#1",
            "tb/RUSTSEC-2023-0044#1",
        ]
    );
    let tb = ScanFilter {
        tenant: Some("tb".into()),
        since: None,
    };
    assert_eq!(scan(&mut f.store, tb).len(), 3);
    // ta was written on the 13th..15th and 20th; a non-UTC offset is normalised.
    let since = ScanFilter {
        tenant: Some("ta".into()),
        since: Some("2026-11-14T02:00:00+02:00".into()),
    };
    assert_eq!(
        scan(&mut f.store, since),
        [
            "ta/RUSTSEC-2016-0001#1",
            "ta/RUSTSEC-2016-0001#2",
            "ta/RUSTSEC-2021-0124#1"
        ]
    );
    let bad = ScanFilter {
        tenant: None,
        since: Some("yesterday".into()),
    };
    assert!(matches!(
        f.store.scan(&bad, |_| Ok(())),
        Err(StoreError::BadFilter(_))
    ));
    // A `since` window verifies as partial: revision 2 links outside the window, no violation.
    let window = ScanFilter {
        tenant: None,
        since: Some("2026-11-20T00:00:00Z".into()),
    };
    let report = verify_store(&mut f.store, &window, VerifyOptions::default()).unwrap();
    assert_eq!(report.rows, 1);
    assert!(report.passed(), "{:#?}", report.violations);
}

fn counts_per_tenant_and_vendor(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2021-0124");
    let mut docs: Vec<Value> = (0..3).map(|n| map(revision(&raw, n), "t1", T0)).collect();
    docs.push(map(osv("RUSTSEC-2016-0001"), "t1", T0));
    docs.push(map(osv("RUSTSEC-2016-0001"), "t2", T0));
    let other_vendor: Value = serde_json::from_slice(
        &std::fs::read(format!("{TESTDATA}/osv-other/GHSA-22m9-m3ww-53h3.json")).unwrap(),
    )
    .unwrap();
    docs.push(map(other_vendor, "t1", T0));
    f.store.append_batch(&docs, None).unwrap();
    let c = f.store.counts().unwrap();
    assert_eq!((c.documents, c.upstream_documents, c.deletions), (6, 4, 0));
    let rows: Vec<_> = c
        .by_source
        .iter()
        .map(|s| {
            (
                s.tenant.as_str(),
                s.vendor.as_str(),
                s.documents,
                s.upstream_documents,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("t1", "ghsa", 1, 1),
            ("t1", "rustsec", 4, 2),
            ("t2", "rustsec", 1, 1)
        ]
    );
}

fn reloading_scanned_rows_into_a_fresh_store_reproduces_them(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2020-0071");
    let docs: Vec<Value> = (0..3)
        .map(|n| map(revision(&raw, n), "t1", T0))
        .chain([map(osv("RUSTSEC-2016-0001"), "t1", T0)])
        .collect();
    f.store.append_batch(&docs, None).unwrap();
    let rows = all_rows(&mut f.store);
    // Exported documents carry their supersedes links; the store accepts them as they match.
    let exported: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.json).unwrap())
        .collect();
    let mut other = Fixture::sqlite();
    other.store.append_batch(&exported, None).unwrap();
    assert_eq!(all_rows(&mut other.store), rows);
}

fn given_supersedes_must_match_the_stored_head(f: &mut Fixture) {
    let raw = osv("RUSTSEC-2021-0124");
    let r0 = map(revision(&raw, 0), "t1", T0);
    let mut r1 = map(revision(&raw, 1), "t1", T0);
    r1["supersedes"] =
        Value::String("advisory_raw:rustsec:RUSTSEC-2021-0124:0000000000000000".into());
    f.store.append_batch(&[r0], None).unwrap();
    let err = f.store.append_batch(&[r1], None).unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidDocument { index: 0, message } if message.contains("ERR_AOC_003")),
        "{err}"
    );
    assert_eq!(f.store.counts().unwrap().documents, 1);
}

fn concurrent_writers_are_serialized(f: &mut Fixture) {
    // Two runners append overlapping revision sets of the same advisories at the same time.
    let raws = [osv("RUSTSEC-2020-0071"), osv("RUSTSEC-2022-0090")];
    let threads: Vec<_> = (0..2u32)
        .map(|w| {
            let url = f.url.clone();
            let raws = raws.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&url).unwrap();
                for n in 0..12u32 {
                    let docs: Vec<Value> = raws
                        .iter()
                        .map(|raw| map(revision(raw, n + w * 6), "t1", T0))
                        .collect();
                    store.append_batch(&docs, None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Revisions 0..18 of each advisory, each content stored once, one unbroken chain each.
    let c = f.store.counts().unwrap();
    assert_eq!((c.documents, c.upstream_documents), (36, 2));
    let report = verify_store(
        &mut f.store,
        &ScanFilter::default(),
        VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{:#?}", report.violations);
}

fn invalid_documents_refuse_the_whole_batch(f: &mut Fixture) {
    let good = map(osv("RUSTSEC-2016-0001"), "t1", T0);
    let mut no_tenant = map(osv("RUSTSEC-2020-0071"), "t1", T0);
    no_tenant.as_object_mut().unwrap().remove("tenant");
    let mut bad_time = map(osv("RUSTSEC-2020-0071"), "t1", T0);
    bad_time["ingested_at"] = Value::String("last tuesday".into());
    for bad in [no_tenant, bad_time, Value::String("x".into())] {
        let err = f
            .store
            .append_batch(&[good.clone(), bad], None)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidDocument { index: 1, .. }),
            "{err}"
        );
    }
    assert_eq!(f.store.counts().unwrap().documents, 0);
}

/// PostgreSQL sends a batch's keys and its checkpoint as quoted literals (array literals for the
/// keys) in simple queries, and a value with a NUL as parameters: every character that quoting
/// must escape goes through both ways, and comes back unchanged.
fn keys_and_checkpoints_with_quotes_backslashes_braces_and_nul_round_trip(f: &mut Fixture) {
    let odd = r#"RUSTSEC-2020-0071 '"\{a,b}\\x00 NULL ü"#;
    let mut raw = osv("RUSTSEC-2020-0071");
    raw["id"] = Value::String(odd.into());
    let tenant = r#"t'"\{}"#;
    let run_key = r#"run '"\{}"#;
    let (r0, r1) = (
        map(revision(&raw, 0), tenant, T0),
        map(revision(&raw, 1), tenant, T0),
    );
    let cp = |position: &str| Checkpoint {
        run_key: run_key.into(),
        position: position.into(),
        ..Checkpoint::default()
    };
    let quoted = r#"{"at":"it's \"here\""}"#;
    let first = f
        .store
        .append_batch(std::slice::from_ref(&r0), Some(&cp(quoted)))
        .unwrap();
    assert_eq!(first.written(), 1);
    assert_eq!(
        f.store.checkpoint(run_key).unwrap().unwrap().position,
        quoted
    );
    // PostgreSQL text cannot hold a NUL: the batch is refused whole (by the server, as before
    // literals), and nothing of it stays; SQLite stores it.
    let nul = cp("with a \0 NUL");
    if matches!(f.store, Store::Postgres(_)) {
        let refused = f.store.append_batch(&[r0.clone(), r1.clone()], Some(&nul));
        assert!(
            matches!(refused, Err(StoreError::Postgres(_))),
            "{refused:?}"
        );
        assert_eq!(f.store.counts().unwrap().documents, 1);
    }
    let position = match f.store {
        Store::Sqlite(_) => nul.position.clone(),
        Store::Postgres(_) => r#"\\'"#.to_owned(),
    };
    let second = f
        .store
        .append_batch(&[r0.clone(), r1], Some(&cp(&position)))
        .unwrap();
    assert!(matches!(second.docs[0], DocOutcome::Noop { .. }));
    let w = written(&second.docs[1]);
    assert_eq!(w.revision, 2);
    assert_eq!(w.supersedes.as_deref(), r0["_id"].as_str());
    let stored = f.store.checkpoint(run_key).unwrap().unwrap();
    assert_eq!(stored.position, position);
    // The totals before the batch (0) plus its outcome.
    assert_eq!((stored.written, stored.noop), (1, 1));
    let rows = all_rows(&mut f.store);
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.upstream_id == odd && r.tenant == tenant));
    let c = f.store.counts().unwrap();
    assert_eq!((c.documents, c.upstream_documents), (2, 1));
}

// ---------------------------------------------------------------------------------------------
// Read-only opens and writer claims

fn a_read_only_open_reads_and_refuses_every_write(f: &mut Fixture) {
    let docs = vec![
        map(osv("RUSTSEC-2016-0001"), "t1", T0),
        map(osv("RUSTSEC-2020-0071"), "t1", T0),
    ];
    f.store.append_batch(&docs, None).unwrap();
    let mut ro = Store::open_read_only(&f.url).unwrap();
    assert_eq!(all_rows(&mut ro), all_rows(&mut f.store));
    let report = verify_store(&mut ro, &ScanFilter::default(), VerifyOptions::default()).unwrap();
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.rows, 2);
    assert_eq!(ro.counts().unwrap().documents, 2);
    let more = [map(osv("RUSTSEC-2022-0090"), "t1", T0)];
    for err in [
        ro.append_batch(&more, None).unwrap_err(),
        ro.claim_writer(&WriterScope {
            tenant: "t1",
            source: None,
        })
        .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::ReadOnly(_)), "{err}");
    }
    assert_eq!(f.store.counts().unwrap().documents, 2);
}

fn a_read_only_open_refuses_an_older_or_newer_schema_and_migrates_nothing(f: &mut Fixture) {
    // A store as the first schema left it: migration 1's tables, only version 1 recorded.
    let (url, _keep) = f.second_database();
    let ddl = "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                                                applied_at TEXT NOT NULL)";
    let record = "INSERT INTO schema_migrations VALUES (1, 'raw store', '2026-01-01T00:00:00Z')";
    let schema_1 = aoc_store::migration_sql(f.engine_kind(), 1).unwrap();
    let versions = |url: &str| -> Vec<i64> {
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                let mut q = c
                    .prepare("SELECT version FROM schema_migrations ORDER BY version")
                    .unwrap();
                let v = q.query_map([], |r| r.get(0)).unwrap();
                v.map(Result::unwrap).collect()
            }
            None => ::postgres::Client::connect(url, ::postgres::NoTls)
                .unwrap()
                .query(
                    "SELECT version FROM schema_migrations ORDER BY version",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect(),
        }
    };
    match url.strip_prefix("sqlite://") {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&format!("{ddl}; {schema_1}; {record}"))
            .unwrap(),
        None => ::postgres::Client::connect(&url, ::postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("{ddl}; {schema_1}; {record}"))
            .unwrap(),
    }
    for _ in 0..2 {
        match Store::open_read_only(&url) {
            Err(e @ StoreError::SchemaTooOld { found: 1, known: 5 }) => {
                let msg = e.to_string();
                assert!(msg.contains("version 1") && msg.contains("(5)"), "{msg}");
                assert!(msg.contains("stella aoc backfill"), "{msg}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a store at schema 1 was opened read-only"),
        }
        assert_eq!(versions(&url), [1], "a read-only open migrated the store");
    }
    // A writing open migrates it, and says from and to which version; then it reads.
    assert_eq!(Store::open(&url).unwrap().upgraded_schema(), Some((1, 5)));
    assert_eq!(versions(&url), [1, 2, 3, 4, 5]);
    assert_eq!(Store::open(&url).unwrap().upgraded_schema(), None);
    assert_eq!(
        f.store.upgraded_schema(),
        None,
        "a new store is created, not upgraded"
    );
    Store::open_read_only(&url).unwrap();

    // Newer than this build: refused read-only too, and left as it is.
    f.execute(
        "INSERT INTO schema_migrations (version, name, applied_at)
         VALUES (99, 'from the future', '2030-01-01T00:00:00Z')",
    )
    .unwrap();
    match Store::open_read_only(&f.url) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            known: 5,
        }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store at schema 99 was opened read-only"),
    }
    assert_eq!(versions(&f.url), [1, 2, 3, 4, 5, 99]);
}

fn a_read_only_open_of_a_place_with_no_store_creates_nothing(f: &mut Fixture) {
    let (url, _keep) = f.second_database();
    let err = Store::open_read_only(&url).err().expect("no store there");
    assert!(matches!(err, StoreError::NotAStore(_)), "{err}");
    match url.strip_prefix("sqlite://") {
        Some(path) => assert!(!std::path::Path::new(path).exists(), "{path} was created"),
        None => {
            let tables: i64 = ::postgres::Client::connect(&url, ::postgres::NoTls)
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(tables, 0);
        }
    }
}

/// Two runs of one tenant and source never write at once: the second claim is refused at once
/// with the first named; other tenants and other sources are not held up; a claim ends with its
/// store.
fn one_writer_per_tenant_and_source_the_second_is_refused_naming_the_first(f: &mut Fixture) {
    let scope = |tenant, source| WriterScope { tenant, source };
    let busy = |store: &mut Store, tenant, source| -> String {
        match store.claim_writer(&scope(tenant, source)) {
            Err(e @ StoreError::WriterBusy { .. }) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(()) => panic!("{tenant} {source:?} claimed twice"),
        }
    };
    let engine = f.engine_kind();
    let holder_named = |msg: &str| match engine {
        aoc_store::Engine::Sqlite => msg.contains(&format!("process {}", std::process::id())),
        aoc_store::Engine::Postgres => msg.contains("PostgreSQL session"),
    };
    f.store.claim_writer(&scope("t1", None)).unwrap();
    // Claiming again, or one source of a tenant it holds whole, is already done.
    f.store.claim_writer(&scope("t1", None)).unwrap();
    f.store.claim_writer(&scope("t1", Some("osv"))).unwrap();

    let mut second = Store::open(&f.url).unwrap();
    let msg = busy(&mut second, "t1", None);
    assert!(msg.contains("tenant \"t1\", every source"), "{msg}");
    assert!(holder_named(&msg), "{msg}");
    let msg = busy(&mut second, "t1", Some("osv"));
    assert!(holder_named(&msg), "{msg}");
    second.claim_writer(&scope("t2", None)).unwrap();
    // The refused claims left nothing behind: once the first store is gone, they succeed.
    let mut first = std::mem::replace(&mut f.store, Store::open(&f.url).unwrap());
    drop(first);
    second.claim_writer(&scope("t1", Some("osv"))).unwrap();
    second.claim_writer(&scope("t1", Some("rustsec"))).unwrap();

    // Sources of one tenant are claimed apart; the whole tenant waits for all of them.
    let mut third = Store::open(&f.url).unwrap();
    third.claim_writer(&scope("t1", Some("ghsa"))).unwrap();
    let msg = busy(&mut third, "t1", Some("osv"));
    assert!(
        msg.contains("source \"osv\"") && holder_named(&msg),
        "{msg}"
    );
    let msg = busy(&mut f.store, "t1", None);
    assert!(holder_named(&msg), "{msg}");
    if engine == aoc_store::Engine::Sqlite {
        // Each single-source holder is named from its own lock file.
        for source in ["osv", "rustsec", "ghsa"] {
            assert!(msg.contains(&format!("source \"{source}\"")), "{msg}");
        }
    }
    drop(second);
    drop(third);
    f.store.claim_writer(&scope("t1", None)).unwrap();
    first = Store::open(&f.url).unwrap();
    busy(&mut first, "t1", Some("ghsa"));
}
