//! The SQLite engine: bundled SQLite in WAL mode, one `BEGIN IMMEDIATE` transaction per batch
//! (SQLite's single write lock serializes concurrent writers), cached prepared statements; or a
//! read-only connection that never writes the database (see [`SqliteStore::open_read_only`]).

use crate::batch::{
    plan, rows_with_json, Batch, BatchMap, BatchOutcome, Checkpoint, Counted, Deletion, Head,
    NewRow, StoredState,
};
use crate::document::{render_digest, StoreDoc};
use crate::row::{Orphan, SourceCount, StoreCounts, StoredRow};
use crate::writer_lock::{self, Claims, WriterScope};
use crate::{Migration, OpenMode, Result, StoreError};
use aoc_contract::UpstreamKey;
use rusqlite::types::ValueRef;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, ToSql, TransactionBehavior,
};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Migration 1 is the first schema (text-keyed unique indexes), kept as shipped; migration 2 moves
/// to the current one. Raw rows key on a small integer per upstream document (`upstreams.key`)
/// and on the 32-byte digest, not on the text columns: both unique indexes are then ~4x smaller, which keeps them in
/// the page cache at millions of rows (with text keys, the random index writes of a 1M-revision
/// backfill missed the cache and halved the append rate). `upstreams` is append-only too, so a
/// key, once given, always names the same (tenant, vendor, upstream id).
///
/// No UNIQUE (tenant, id): `_id` is derived from vendor, upstream id and content hash, so it is
/// unique whenever the content key is, and the verifier's chain check reports a duplicate `_id`.
/// A third unique index would cost a third more random index writes per append.
///
/// Text columns compare as bytes (SQLite's BINARY collation), the same order PostgreSQL gets from
/// `COLLATE "C"`, so both engines scan and export in one order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "raw store: advisory_raw, upstream_deletions, backfill_checkpoints, append-only triggers",
        sql: r#"
CREATE TABLE advisory_raw (
    seq           INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    vendor        TEXT    NOT NULL,
    upstream_id   TEXT    NOT NULL,
    revision      INTEGER NOT NULL CHECK (revision >= 1),
    id            TEXT    NOT NULL,
    content_hash  TEXT    NOT NULL,
    supersedes    TEXT,
    ingested_at   TEXT    NOT NULL,
    ingested_unix INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    UNIQUE (tenant, vendor, upstream_id, content_hash),
    UNIQUE (tenant, vendor, upstream_id, revision)
);
CREATE TRIGGER advisory_raw_no_update BEFORE UPDATE ON advisory_raw
BEGIN SELECT RAISE(ABORT, 'advisory_raw is append-only: UPDATE rejected'); END;
CREATE TRIGGER advisory_raw_no_delete BEFORE DELETE ON advisory_raw
BEGIN SELECT RAISE(ABORT, 'advisory_raw is append-only: DELETE rejected'); END;

CREATE TABLE upstream_deletions (
    seq          INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL,
    vendor       TEXT NOT NULL,
    upstream_id  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    location     TEXT NOT NULL,
    UNIQUE (tenant, vendor, upstream_id, recorded_at)
);
CREATE TRIGGER upstream_deletions_no_update BEFORE UPDATE ON upstream_deletions
BEGIN SELECT RAISE(ABORT, 'upstream_deletions is append-only: UPDATE rejected'); END;
CREATE TRIGGER upstream_deletions_no_delete BEFORE DELETE ON upstream_deletions
BEGIN SELECT RAISE(ABORT, 'upstream_deletions is append-only: DELETE rejected'); END;

CREATE TABLE backfill_checkpoints (
    run_key   TEXT PRIMARY KEY,
    position  TEXT    NOT NULL,
    written   INTEGER NOT NULL,
    noop      INTEGER NOT NULL,
    rejected  INTEGER NOT NULL,
    deleted   INTEGER NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        name: "upstream keys: upstreams table, raw rows unique on (upstream, digest) and (upstream, revision)",
        sql: r#"
CREATE TABLE upstreams (
    key          INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL,
    vendor       TEXT NOT NULL,
    upstream_id  TEXT NOT NULL,
    UNIQUE (tenant, vendor, upstream_id)
);
CREATE TRIGGER upstreams_no_update BEFORE UPDATE ON upstreams
BEGIN SELECT RAISE(ABORT, 'upstreams is append-only: UPDATE rejected'); END;
CREATE TRIGGER upstreams_no_delete BEFORE DELETE ON upstreams
BEGIN SELECT RAISE(ABORT, 'upstreams is append-only: DELETE rejected'); END;

CREATE TABLE advisory_raw_v2 (
    seq           INTEGER PRIMARY KEY,
    upstream      INTEGER NOT NULL REFERENCES upstreams (key),
    revision      INTEGER NOT NULL CHECK (revision >= 1),
    id            TEXT    NOT NULL,
    content_hash  BLOB    NOT NULL CHECK (length(content_hash) = 32),
    supersedes    TEXT,
    ingested_at   TEXT    NOT NULL,
    ingested_unix INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    UNIQUE (upstream, content_hash),
    UNIQUE (upstream, revision)
);

-- Rows of a store written before this migration move over unchanged but for the key and the
-- digest's encoding ("sha256:<hex>" text to its 32 bytes); a hash that is not 64 hex digits
-- fails the CHECK and with it the migration, leaving the store as it was.
INSERT INTO upstreams (tenant, vendor, upstream_id)
SELECT DISTINCT tenant, vendor, upstream_id FROM advisory_raw ORDER BY tenant, vendor, upstream_id;
INSERT INTO advisory_raw_v2 (seq, upstream, revision, id, content_hash, supersedes, ingested_at,
                             ingested_unix, doc)
SELECT r.seq, u.key, r.revision, r.id, unhex(substr(r.content_hash, 8)), r.supersedes,
       r.ingested_at, r.ingested_unix, r.doc
FROM advisory_raw r
JOIN upstreams u ON u.tenant = r.tenant AND u.vendor = r.vendor AND u.upstream_id = r.upstream_id
ORDER BY r.seq;
DROP TABLE advisory_raw;
ALTER TABLE advisory_raw_v2 RENAME TO advisory_raw;
CREATE TRIGGER advisory_raw_no_update BEFORE UPDATE ON advisory_raw
BEGIN SELECT RAISE(ABORT, 'advisory_raw is append-only: UPDATE rejected'); END;
CREATE TRIGGER advisory_raw_no_delete BEFORE DELETE ON advisory_raw
BEGIN SELECT RAISE(ABORT, 'advisory_raw is append-only: DELETE rejected'); END;
"#,
    },
    Migration {
        version: 3,
        name: "source_counts kept by each batch",
        sql: r#"
-- Revisions and upstream documents per (tenant, vendor), added to by each batch in its own
-- transaction, so that counting the store reads a few rows instead of all of them.
CREATE TABLE source_counts (
    tenant              TEXT    NOT NULL,
    vendor              TEXT    NOT NULL,
    documents           INTEGER NOT NULL,
    upstream_documents  INTEGER NOT NULL,
    PRIMARY KEY (tenant, vendor)
);
INSERT INTO source_counts (tenant, vendor, documents, upstream_documents)
SELECT u.tenant, u.vendor, count(*), count(DISTINCT r.upstream)
FROM upstreams u JOIN advisory_raw r ON r.upstream = u.key
GROUP BY u.tenant, u.vendor;
"#,
    },
    Migration {
        version: 4,
        name: "advisory_raw.doc is text: the same bytes, not parsed again on insert",
        // PostgreSQL's column was json; SQLite's has been TEXT from the start. Recorded so that
        // both engines' stores carry the same schema versions.
        sql: "SELECT 1;",
    },
    Migration {
        version: 5,
        name: "upstreams looked up by a hash index on upstream_id",
        // PostgreSQL only (SQLite has no hash indexes; its key lookups are not the bottleneck).
        // Recorded so that both engines' stores carry the same schema versions.
        sql: "SELECT 1;",
    },
];

/// Triggers that make the raw tables append-only.
const GUARDS: [&str; 6] = [
    "upstreams_no_update",
    "upstreams_no_delete",
    "advisory_raw_no_update",
    "advisory_raw_no_delete",
    "upstream_deletions_no_update",
    "upstream_deletions_no_delete",
];

/// A writer waits this long for another writer's transaction before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SqliteStore {
    conn: Connection,
    /// None for in-memory databases, which have no WAL, and for read-only stores.
    checkpointer: Option<Checkpointer>,
    /// The database file; None in memory.
    path: Option<PathBuf>,
    read_only: bool,
    /// The writer locks this store holds ([`crate::Store::claim_writer`]): their open files.
    claims: Claims<Vec<File>>,
    /// The schema versions an existing store was migrated from and to by this open.
    upgraded: Option<(i64, i64)>,
}

/// Copies committed WAL frames back into the database file on its own thread and connection, so
/// the writer neither does that work nor waits for its fsync (measured: ~30% of append time).
/// The writer keeps SQLite's own auto-checkpoint at a high mark as a backstop, which also bounds
/// the WAL when this thread cannot keep up.
struct Checkpointer {
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &str) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("aoc-store-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // PASSIVE never blocks the writer; a failure only means the WAL grows until
                    // the backstop checkpoints it.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    fn nudge(&self) {
        if let Some(wake) = &self.wake {
            // Full means a checkpoint is already due; it will take these frames too.
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    pub(crate) fn open(path: &str, mode: OpenMode) -> Result<SqliteStore> {
        if mode == OpenMode::ReadOnly {
            return SqliteStore::open_read_only(path);
        }
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // 64 KiB pages for a new database (an existing one keeps its own; this must precede WAL
        // mode, which fixes the size): a raw document of a few KB and the index entries that key
        // it sit in far fewer pages than with the default 4 KiB, so an append reads, writes and
        // checkpoints far fewer (measured on 200k revisions: 9.2 s with 4 KiB pages, 4.3 s with
        // 64 KiB, the database 850 -> 610 MB). The page cache stays 64 MiB (set in KiB below).
        conn.pragma_update(None, "page_size", 65536)?;
        // WAL: readers (verify, export) never block the writer. synchronous=NORMAL is durable
        // against application crashes; a power loss may drop the last commits, which a resumed
        // backfill rewrites from its checkpoint.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Raw rows must name an existing upstream (off by default in SQLite, per connection).
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB page cache (default 2 MiB): keeps the three unique indexes hot at millions of
        // rows, and stays well inside the 256 MiB RSS budget.
        conn.pragma_update(None, "cache_size", -65536)?;
        // Backstop checkpoint at 64k pages (256 MiB of WAL) instead of 1k (the default spent ~18%
        // of append time in checkpoints); the background checkpointer normally runs long before.
        // The WAL file is truncated back to 64 MiB after a checkpoint.
        conn.pragma_update(None, "wal_autocheckpoint", 65536)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        conn.set_prepared_statement_cache_capacity(32);
        let mut store = SqliteStore {
            conn,
            checkpointer: None,
            path: (path != ":memory:").then(|| PathBuf::from(path)),
            read_only: false,
            claims: Claims::default(),
            upgraded: None,
        };
        store.upgraded = store.migrate()?;
        if path != ":memory:" {
            store.checkpointer = Some(Checkpointer::start(path)?);
        }
        Ok(store)
    }

    /// Opened with SQLite's read-only flag (`mode=ro`): no pragma that writes, no migration, no
    /// checkpointer, and the schema must be exactly this build's.
    ///
    /// The store is in WAL mode, whose readers share the `-shm` index beside the database. Where
    /// a writer left `-wal`/`-shm` (one is running, or was killed), SQLite reads through them as
    /// usual and sees commits still in the `-wal` file. Where there are none, every commit is in
    /// the database file itself, and the database is opened `immutable=1` (no lock taken, no file
    /// created beside it) when
    /// - its file or its directory has no write permission bit at all (0444, 0555: made
    ///   read-only on purpose; without this, SQLite creates `-shm`/`-wal` wherever the user,
    ///   root for one, may, and keeps them after the read), or
    /// - SQLite cannot build the index (a directory this user cannot write).
    ///
    /// No writer is then running: it would keep its `-wal` there, which only root could create
    /// against those bits, and a root writer started while the file is read is not seen. Else
    /// SQLite's own read-only open, which shares a running writer's index. A `-wal` whose `-shm`
    /// cannot be read or created is refused: its commits cannot be read without the index.
    fn open_read_only(path: &str) -> Result<SqliteStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let (conn, version) = if path == ":memory:" {
            let conn = Connection::open_in_memory()?;
            let version = schema_version(&conn)?;
            (conn, version)
        } else {
            if !Path::new(path).is_file() {
                return Err(StoreError::NotAStore(format!("no SQLite file at {path}")));
            }
            let no_wal = !Path::new(&format!("{path}-wal")).exists()
                && !Path::new(&format!("{path}-shm")).exists();
            let immutable = || -> Result<(Connection, Option<i64>)> {
                let conn = Connection::open_with_flags(
                    immutable_uri(path),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )?;
                let version = schema_version(&conn)?;
                Ok((conn, version))
            };
            if no_wal && marked_read_only(Path::new(path)) {
                immutable()?
            } else {
                let conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                match schema_version(&conn) {
                    Ok(version) => (conn, version),
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if no_wal
                            && matches!(e.code, ErrorCode::ReadOnly | ErrorCode::CannotOpen) =>
                    {
                        drop(conn);
                        immutable()?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        crate::check_schema(MIGRATIONS, version, "no schema_migrations table")?;
        // The same cache as a writer's: the verifier and the export scan every row.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(SqliteStore {
            conn,
            checkpointer: None,
            path: (path != ":memory:").then(|| PathBuf::from(path)),
            read_only: true,
            claims: Claims::default(),
            upgraded: None,
        })
    }

    pub(crate) fn claim_writer(&mut self, scope: &WriterScope<'_>) -> Result<()> {
        if self.read_only {
            return Err(StoreError::ReadOnly("claiming the store for a writing run"));
        }
        if self.claims.covers(scope) {
            return Ok(());
        }
        // An in-memory database is this connection's alone.
        let Some(path) = &self.path else {
            return Ok(());
        };
        if scope.source.is_none() {
            self.claims.release_tenant(scope.tenant);
        }
        let files = writer_lock::claim_files(path, scope)?;
        self.claims.add(scope, files);
        Ok(())
    }

    /// The underlying connection (tests use it to tamper with rows behind the store's back).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Applies pending migrations; returns (from, to) when an existing store was upgraded.
    fn migrate(&mut self) -> Result<Option<(i64, i64)>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                applied_at TEXT NOT NULL
            )",
        )?;
        let current: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        for m in crate::pending(MIGRATIONS, current)? {
            tx.execute_batch(m.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                params![m.version, m.name],
            )?;
        }
        tx.commit()?;
        Ok(crate::upgrade(MIGRATIONS, current))
    }

    pub(crate) fn upgraded(&self) -> Option<(i64, i64)> {
        self.upgraded
    }

    pub(crate) fn write_batch(
        &mut self,
        prepared: &[StoreDoc],
        batch: &Batch<'_>,
    ) -> Result<BatchOutcome> {
        if self.read_only {
            return Err(StoreError::ReadOnly("writing a batch"));
        }
        // IMMEDIATE takes the write lock before the lookups, so heads cannot move under us.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (state, keys) = look_up_stored(&tx, prepared)?;
        let mut outcome = BatchOutcome::default();
        let rows = plan(prepared, state, &mut outcome)?;
        insert_rows(&tx, &rows, &outcome, &keys)?;
        add_counts(&tx, &Counted::of(&rows))?;
        outcome.deletions_recorded += record_deletions(&tx, batch.deletions)?;
        if let Some(c) = batch.checkpoint {
            save_checkpoint(&tx, &c.with_outcome(&outcome, batch.deletions.len()))?;
        }
        tx.commit()?;
        if let Some(c) = &self.checkpointer {
            c.nudge();
        }
        Ok(outcome)
    }

    pub(crate) fn checkpoint(&mut self, run_key: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .query_row(
                "SELECT run_key, position, written, noop, rejected, deleted
                 FROM backfill_checkpoints WHERE run_key = ?1",
                [run_key],
                |r| {
                    Ok(Checkpoint {
                        run_key: r.get(0)?,
                        position: r.get(1)?,
                        written: r.get(2)?,
                        noop: r.get(3)?,
                        rejected: r.get(4)?,
                        deleted: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    pub(crate) fn scan<F>(
        &mut self,
        tenant: Option<&str>,
        since: Option<i64>,
        mut f: F,
    ) -> Result<u64>
    where
        F: FnMut(StoredRow) -> Result<()>,
    {
        let mut conditions = Vec::new();
        let mut args: Vec<&dyn ToSql> = Vec::new();
        if let Some(t) = &tenant {
            conditions.push("u.tenant = ?");
            args.push(t);
        }
        if let Some(s) = &since {
            conditions.push("r.ingested_unix >= ?");
            args.push(s);
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // A read transaction: one WAL snapshot for the whole scan.
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT u.tenant, u.vendor, u.upstream_id, r.revision, r.id, r.content_hash,
                        r.supersedes, r.ingested_at, r.doc
                 FROM upstreams u JOIN advisory_raw r ON r.upstream = u.key {filter}
                 ORDER BY u.tenant, u.vendor, u.upstream_id, r.revision"
            ))?;
            let mut rows = stmt.query(args.as_slice())?;
            while let Some(r) = rows.next()? {
                f(StoredRow {
                    tenant: r.get(0)?,
                    vendor: r.get(1)?,
                    upstream_id: r.get(2)?,
                    revision: r.get(3)?,
                    id: r.get(4)?,
                    content_hash: render_digest(&lossy_bytes(r.get_ref(5)?)),
                    supersedes: r.get(6)?,
                    ingested_at: r.get(7)?,
                    json: lossy_text(r.get_ref(8)?),
                })?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Read from `source_counts`, which every batch updates in its own transaction: a few rows
    /// whatever the store's size.
    pub(crate) fn counts(&mut self) -> Result<StoreCounts> {
        let mut stmt = self.conn.prepare(
            "SELECT tenant, vendor, documents, upstream_documents FROM source_counts
             WHERE documents > 0 ORDER BY tenant, vendor",
        )?;
        let by_source = stmt
            .query_map([], |r| {
                Ok(SourceCount {
                    tenant: r.get(0)?,
                    vendor: r.get(1)?,
                    documents: r.get(2)?,
                    upstream_documents: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let deletions: i64 =
            self.conn
                .query_row("SELECT count(*) FROM upstream_deletions", [], |r| r.get(0))?;
        Ok(StoreCounts::from_sources(by_source, deletions))
    }

    pub(crate) fn orphans(&mut self) -> Result<Vec<Orphan>> {
        // The filter runs on the (upstream, revision) index: only orphans' table rows are read.
        let mut stmt = self.conn.prepare(
            "SELECT upstream, revision, id FROM advisory_raw
             WHERE upstream NOT IN (SELECT key FROM upstreams) ORDER BY upstream, revision",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Orphan {
                    upstream: r.get(0)?,
                    revision: r.get(1)?,
                    id: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub(crate) fn migrations(&mut self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub(crate) fn missing_guards(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")?;
        let present = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<HashSet<_>>>()?;
        Ok(GUARDS
            .iter()
            .filter(|g| !present.contains(**g))
            .map(|g| g.to_string())
            .collect())
    }
}

/// The upstream key of each distinct document of a batch, and whether it was already stored.
type UpstreamKeys<'a> = BatchMap<&'a UpstreamKey, (i64, bool)>;

/// The upstream key of every document: an existing one (whose head and stored hashes are looked
/// up) or a new one (nothing stored yet, so nothing to look up).
fn look_up_stored<'a>(
    tx: &Connection,
    prepared: &'a [StoreDoc],
) -> Result<(StoredState<'a>, UpstreamKeys<'a>)> {
    let mut state = StoredState::default();
    let mut keys = UpstreamKeys::default();
    let mut key_q = tx.prepare_cached(
        "SELECT key FROM upstreams WHERE tenant = ?1 AND vendor = ?2 AND upstream_id = ?3",
    )?;
    let mut key_insert = tx.prepare_cached(
        "INSERT INTO upstreams (tenant, vendor, upstream_id) VALUES (?1, ?2, ?3)",
    )?;
    let mut head_q = tx.prepare_cached(
        "SELECT revision, id FROM advisory_raw WHERE upstream = ?1
         ORDER BY revision DESC LIMIT 1",
    )?;
    let mut hash_q =
        tx.prepare_cached("SELECT id FROM advisory_raw WHERE upstream = ?1 AND content_hash = ?2")?;
    for p in prepared {
        let k = &p.head.key;
        let (key, existed) = match keys.get(k) {
            Some(&found) => found,
            None => {
                let args = params![k.tenant, k.vendor, k.upstream_id];
                let found = match key_q.query_row(args, |r| r.get(0)).optional()? {
                    Some(key) => {
                        let head = head_q
                            .query_row([key], |r| {
                                Ok(Head {
                                    revision: r.get(0)?,
                                    id: r.get(1)?,
                                })
                            })
                            .optional()?;
                        if let Some(head) = head {
                            state.heads.insert(k, head);
                        }
                        (key, true)
                    }
                    None => {
                        key_insert.execute(args)?;
                        (tx.last_insert_rowid(), false)
                    }
                };
                keys.insert(k, found);
                found
            }
        };
        if existed {
            let id: Option<String> = hash_q
                .query_row(params![key, p.digest.as_ref()], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                state.existing.insert((k, p.digest), id);
            }
        }
    }
    Ok((state, keys))
}

/// The planned rows, each under its document's upstream key.
fn insert_rows(
    tx: &Connection,
    rows: &[NewRow<'_>],
    outcome: &BatchOutcome,
    keys: &UpstreamKeys<'_>,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO advisory_raw (upstream, revision, id, content_hash, supersedes,
                                   ingested_at, ingested_unix, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (row, written) in rows_with_json(rows, outcome) {
        let p = row.prepared;
        insert.execute(params![
            keys[&p.head.key].0,
            row.revision,
            p.head.id,
            p.digest.as_ref(),
            written.supersedes,
            p.ingested_at,
            p.ingested_unix,
            written.json,
        ])?;
    }
    Ok(())
}

/// The rows written added to their source's counts.
fn add_counts(tx: &Connection, counted: &Counted<'_>) -> Result<()> {
    if counted.is_empty() {
        return Ok(());
    }
    let mut count = tx.prepare_cached(
        "INSERT INTO source_counts (tenant, vendor, documents, upstream_documents)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, vendor) DO UPDATE
         SET documents = documents + excluded.documents,
             upstream_documents = upstream_documents + excluded.upstream_documents",
    )?;
    for (tenant, vendor, documents, upstreams) in counted.iter() {
        count.execute(params![tenant, vendor, documents, upstreams])?;
    }
    Ok(())
}

/// The batch's upstream deletions; the number not recorded before.
fn record_deletions(tx: &Connection, deletions: &[Deletion]) -> Result<usize> {
    let mut delete = tx.prepare_cached(
        "INSERT INTO upstream_deletions (tenant, vendor, upstream_id, recorded_at, location)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?;
    let mut recorded = 0;
    for d in deletions {
        let k = &d.key;
        recorded += delete.execute(params![
            k.tenant,
            k.vendor,
            k.upstream_id,
            d.recorded_at,
            d.location
        ])?;
    }
    Ok(recorded)
}

/// The run's checkpoint, written in the batch's transaction.
fn save_checkpoint(tx: &Connection, c: &Checkpoint) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO backfill_checkpoints
             (run_key, position, written, noop, rejected, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (run_key) DO UPDATE SET position = excluded.position,
             written = excluded.written, noop = excluded.noop,
             rejected = excluded.rejected, deleted = excluded.deleted",
    )?
    .execute(params![
        c.run_key, c.position, c.written, c.noop, c.rejected, c.deleted
    ])?;
    Ok(())
}

/// The store's schema version: `None` without a `schema_migrations` table.
fn schema_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map(Some)
}

/// The database file or its directory has no write permission bit for anyone.
fn marked_read_only(db: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let no_write_bit =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o222 == 0);
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    no_write_bit(db) || no_write_bit(dir)
}

/// `file:PATH?mode=ro&immutable=1`, with the characters a URI gives meaning to escaped.
fn immutable_uri(path: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// A column's bytes whatever its type (the digest column may have been overwritten).
fn lossy_bytes(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    }
}

/// The document column as text even when it was overwritten with something else (a BLOB, bad
/// UTF-8): the verifier then reports the row instead of the scan failing.
fn lossy_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
    }
}
