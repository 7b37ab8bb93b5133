//! The PostgreSQL engine: per batch one transaction holding an advisory lock, in four round
//! trips: BEGIN, the lock and one lookup query over unnest()ed arrays (upstream keys, heads,
//! stored digests) as one simple query; binary `COPY` of the new rows (two); the per-source
//! counts, the checkpoint and COMMIT as one simple query.
//!
//! The document column is `text` (migration 4; `json` before): the exact bytes written, which the
//! verifier needs to detect a changed row and which datasets export unchanged. `jsonb` reorders
//! and deduplicates keys, drops whitespace and refuses `\u0000`, which upstream text may contain;
//! `json` keeps the bytes but parses every document again on insert (json_recv: 18% of the
//! server's time in a backfill) to check what the store's own serializer wrote. The store never
//! queries inside documents, the verifier parses every stored document, and `doc::json` reads
//! one as JSON in SQL.

use crate::batch::{
    plan, rows_with_json, Batch, BatchMap, BatchOutcome, Checkpoint, Counted, Head, NewRow,
    StoredState,
};
use crate::document::{render_digest, StoreDoc};
use crate::row::{Orphan, SourceCount, StoreCounts, StoredRow};
use crate::writer_lock::{Claims, WriterScope};
use crate::{Migration, OpenMode, Result, StoreError};
use aoc_contract::UpstreamKey;
use aoc_digest::Sha256Digest;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, SimpleQueryMessage, Statement};
use std::collections::HashSet;
use std::io::Write;

/// Key columns use `COLLATE "C"` so that ORDER BY is byte order whatever the database's locale:
/// both engines (and the datasets exported from them) then list rows in one order. Migration 1 is
/// the first schema, kept as shipped; migration 2 moves its rows to upstream keys.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "raw store: advisory_raw, upstream_deletions, backfill_checkpoints, append-only triggers",
        sql: r#"
CREATE TABLE advisory_raw (
    tenant        text COLLATE "C" NOT NULL,
    vendor        text COLLATE "C" NOT NULL,
    upstream_id   text COLLATE "C" NOT NULL,
    revision      bigint NOT NULL CHECK (revision >= 1),
    id            text COLLATE "C" NOT NULL,
    content_hash  text COLLATE "C" NOT NULL,
    supersedes    text COLLATE "C",
    ingested_at   text NOT NULL,
    ingested_unix bigint NOT NULL,
    doc           json NOT NULL,
    CONSTRAINT advisory_raw_content_key  UNIQUE (tenant, vendor, upstream_id, content_hash),
    CONSTRAINT advisory_raw_revision_key UNIQUE (tenant, vendor, upstream_id, revision)
) WITH (toast_tuple_target = 8160);

-- Rows over 2 kB (most OSV documents) would otherwise be pglz-compressed on insert, which cost
-- more server CPU than everything else of the append; up to 8 kB they now stay inline as is.
-- Larger ones are compressed with lz4 where the server has it (~10x cheaper than pglz).
DO $$
BEGIN
    IF 'lz4' = ANY (SELECT unnest(enumvals) FROM pg_settings
                    WHERE name = 'default_toast_compression') THEN
        ALTER TABLE advisory_raw ALTER COLUMN doc SET COMPRESSION lz4;
    END IF;
END
$$;

CREATE TABLE upstream_deletions (
    tenant       text COLLATE "C" NOT NULL,
    vendor       text COLLATE "C" NOT NULL,
    upstream_id  text COLLATE "C" NOT NULL,
    recorded_at  text NOT NULL,
    location     text NOT NULL,
    CONSTRAINT upstream_deletions_key UNIQUE (tenant, vendor, upstream_id, recorded_at)
);

CREATE TABLE backfill_checkpoints (
    run_key   text PRIMARY KEY,
    position  text   NOT NULL,
    written   bigint NOT NULL,
    noop      bigint NOT NULL,
    rejected  bigint NOT NULL,
    deleted   bigint NOT NULL
);

CREATE FUNCTION aoc_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP;
END
$$;

-- Statement-level, so even an UPDATE or DELETE that matches no row fails, and TRUNCATE (which
-- skips row triggers) is covered.
CREATE TRIGGER advisory_raw_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON advisory_raw
    FOR EACH STATEMENT EXECUTE FUNCTION aoc_reject_change();
CREATE TRIGGER upstream_deletions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON upstream_deletions
    FOR EACH STATEMENT EXECUTE FUNCTION aoc_reject_change();
"#,
    },
    Migration {
        version: 2,
        name: "upstream keys: upstreams table, raw rows unique on (upstream, digest) and (upstream, revision)",
        sql: r#"
-- See the SQLite engine: raw rows key on a bigint per upstream document and the 32-byte digest,
-- so both unique indexes stay small enough to be cached at millions of rows.
CREATE TABLE upstreams (
    key          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant       text COLLATE "C" NOT NULL,
    vendor       text COLLATE "C" NOT NULL,
    upstream_id  text COLLATE "C" NOT NULL,
    CONSTRAINT upstreams_upstream_key UNIQUE (tenant, vendor, upstream_id)
);
CREATE TRIGGER upstreams_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON upstreams
    FOR EACH STATEMENT EXECUTE FUNCTION aoc_reject_change();

CREATE TABLE advisory_raw_v2 (
    upstream      bigint NOT NULL CONSTRAINT advisory_raw_upstream_fkey REFERENCES upstreams (key),
    revision      bigint NOT NULL CONSTRAINT advisory_raw_revision_check CHECK (revision >= 1),
    id            text COLLATE "C" NOT NULL,
    content_hash  bytea NOT NULL
                  CONSTRAINT advisory_raw_content_hash_check CHECK (length(content_hash) = 32),
    supersedes    text COLLATE "C",
    ingested_at   text NOT NULL,
    ingested_unix bigint NOT NULL,
    doc           json NOT NULL,
    CONSTRAINT advisory_raw_v2_content_key  UNIQUE (upstream, content_hash),
    CONSTRAINT advisory_raw_v2_revision_key UNIQUE (upstream, revision)
) WITH (toast_tuple_target = 8160);
DO $$
BEGIN
    IF 'lz4' = ANY (SELECT unnest(enumvals) FROM pg_settings
                    WHERE name = 'default_toast_compression') THEN
        ALTER TABLE advisory_raw_v2 ALTER COLUMN doc SET COMPRESSION lz4;
    END IF;
END
$$;

-- Rows of a store written before this migration move over unchanged but for the key and the
-- digest's encoding ("sha256:<hex>" text to its 32 bytes); a hash that is not hex fails the
-- migration, whose transaction then leaves the store as it was.
INSERT INTO upstreams (tenant, vendor, upstream_id)
SELECT DISTINCT tenant, vendor, upstream_id FROM advisory_raw ORDER BY tenant, vendor, upstream_id;
INSERT INTO advisory_raw_v2 (upstream, revision, id, content_hash, supersedes, ingested_at,
                             ingested_unix, doc)
SELECT u.key, r.revision, r.id, decode(substr(r.content_hash, 8), 'hex'), r.supersedes,
       r.ingested_at, r.ingested_unix, r.doc
FROM advisory_raw r
JOIN upstreams u ON u.tenant = r.tenant AND u.vendor = r.vendor AND u.upstream_id = r.upstream_id
ORDER BY u.key, r.revision;
DROP TABLE advisory_raw;
ALTER TABLE advisory_raw_v2 RENAME TO advisory_raw;
ALTER TABLE advisory_raw RENAME CONSTRAINT advisory_raw_v2_content_key TO advisory_raw_content_key;
ALTER TABLE advisory_raw RENAME CONSTRAINT advisory_raw_v2_revision_key TO advisory_raw_revision_key;
CREATE TRIGGER advisory_raw_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON advisory_raw
    FOR EACH STATEMENT EXECUTE FUNCTION aoc_reject_change();
"#,
    },
    Migration {
        version: 3,
        name: "source_counts kept by each batch; no per-row foreign key check on raw rows",
        sql: r#"
-- The foreign key from raw rows to upstreams ran a query and locked the upstreams row (a heap
-- write and a WAL record) for every row inserted: a quarter of the server's time in a backfill.
-- The store never writes a raw row whose key it has not resolved or added in the same transaction
-- under the write lock, upstreams rows can be neither updated nor deleted (triggers), and the
-- verifier reports any raw row whose upstream is missing.
ALTER TABLE advisory_raw DROP CONSTRAINT advisory_raw_upstream_fkey;

-- Revisions and upstream documents per (tenant, vendor), added to by each batch in its own
-- transaction, so that counting the store reads a few rows instead of all of them.
CREATE TABLE source_counts (
    tenant              text COLLATE "C" NOT NULL,
    vendor              text COLLATE "C" NOT NULL,
    documents           bigint NOT NULL,
    upstream_documents  bigint NOT NULL,
    CONSTRAINT source_counts_key PRIMARY KEY (tenant, vendor)
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
        sql: r#"
-- The bytes stay exactly as written (json kept them as given too); the table is rewritten once.
ALTER TABLE advisory_raw ALTER COLUMN doc TYPE text;
DO $$
BEGIN
    IF 'lz4' = ANY (SELECT unnest(enumvals) FROM pg_settings
                    WHERE name = 'default_toast_compression') THEN
        ALTER TABLE advisory_raw ALTER COLUMN doc SET COMPRESSION lz4;
    END IF;
END
$$;
"#,
    },
    Migration {
        version: 5,
        name: "upstreams looked up by a hash index on upstream_id",
        sql: r#"
-- A batch looks up the key of each of its upstream documents: through a hash index on the
-- upstream id that is one hash and a bucket page, where the unique btree on the three texts
-- compares three texts at every level of its descent (at 200k upstream documents: 1.25 us per
-- key instead of 2.6-3 us). The btree stays: it is the uniqueness.
CREATE INDEX upstreams_upstream_id_hash ON upstreams USING hash (upstream_id);
"#,
    },
];

const GUARDS: [&str; 3] = [
    "upstreams_append_only",
    "advisory_raw_append_only",
    "upstream_deletions_append_only",
];

/// `pg_advisory_xact_lock` keys ("aoc_migr", "aoc_writ" as big-endian ASCII). Advisory locks are
/// per database, so stores in different databases never wait for each other.
const MIGRATE_LOCK: i64 = 0x616f_635f_6d69_6772;
#[cfg_attr(not(test), allow(dead_code))] // spelled out in BEGIN_LOCKED
const WRITE_LOCK: i64 = 0x616f_635f_7772_6974;

/// How long a writer claim waits for a session that holds the lock (see `claim_writer`).
const CLAIM_WAIT: &str = "2s";

/// A batch's transaction and its write lock (`WRITE_LOCK`), in one round trip.
const BEGIN_LOCKED: &str = "BEGIN; SELECT pg_advisory_xact_lock(7020939605770922356)";

/// The pieces a batch's COPY payload is handed to the client library in.
const COPY_CHUNK: usize = 64 << 10;

/// A COPY buffer larger than this (a batch of unusually large documents) is freed after its
/// batch rather than kept for the next.
const COPY_BUF_KEEP: usize = 16 << 20;

/// Rows fetched per round trip when scanning: about 2.5 MB of OSV documents.
const SCAN_FETCH: i32 = 1000;

/// Every lookup below is a LATERAL subquery with `LIMIT 1` (the keys are unique anyway) so that
/// the plan is one index probe per key whatever the statistics say: as a plain join, the planner
/// switched mid-run to a sequential scan and hash of all of `upstreams` per batch once autoanalyze
/// had seen the table grow (a 1M-revision backfill then ran at half the rate, 14k docs/s).
///
/// One round trip per batch resolves the upstream key of each (tenant, vendor, upstream id) of the
/// batch ($1..$3, distinct), adding the new ones, and reads what is stored for the existing ones:
/// the head (newest revision, via the revision index) of each, and the stored row of each
/// document's digest ($5, with the ordinal of its key in $4). Rows: (ordinal, key, existed,
/// revision, id, content_hash): content_hash NULL for a key's own row (with its head, if any),
/// set for a digest already stored. The SELECTs do not see the rows `added` inserts (one snapshot
/// per statement), which are new keys with nothing stored, and the write lock keeps other writers
/// out.
const RESOLVE: &str = r#"
WITH k AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
        AS k(tenant, vendor, upstream_id, i)
), found AS MATERIALIZED (
    SELECT k.i, u.key FROM k
    CROSS JOIN LATERAL (
        -- `|| ''` keeps the planner off the three-text btree: see migration 5.
        SELECT u.key FROM upstreams u
        WHERE u.upstream_id = k.upstream_id AND u.vendor = k.vendor
          AND u.tenant || '' = k.tenant
        LIMIT 1
    ) u
), added AS (
    INSERT INTO upstreams (tenant, vendor, upstream_id)
    SELECT tenant, vendor, upstream_id FROM k WHERE i NOT IN (SELECT i FROM found) ORDER BY i
    RETURNING key, tenant, vendor, upstream_id
)
SELECT f.i, f.key, true, h.revision, h.id, NULL::bytea
FROM found f
LEFT JOIN LATERAL (
    SELECT r.revision, r.id FROM advisory_raw r WHERE r.upstream = f.key
    ORDER BY r.revision DESC LIMIT 1
) h ON true
UNION ALL
SELECT k.i, a.key, false, NULL, NULL, NULL
FROM added a
JOIN k ON k.tenant = a.tenant AND k.vendor = a.vendor AND k.upstream_id = a.upstream_id
UNION ALL
SELECT f.i, f.key, true, x.revision, x.id, x.content_hash
FROM unnest($4::bigint[], $5::bytea[]) AS d(i, content_hash)
JOIN found f ON f.i = d.i
CROSS JOIN LATERAL (
    SELECT r.revision, r.id, r.content_hash FROM advisory_raw r
    WHERE r.upstream = f.key AND r.content_hash = d.content_hash
    LIMIT 1
) x
"#;

const COPY_RAW: &str = "COPY advisory_raw (upstream, revision, id, content_hash, supersedes, \
                        ingested_at, ingested_unix, doc) FROM STDIN (FORMAT binary)";

const INSERT_DELETIONS: &str = r#"
INSERT INTO upstream_deletions (tenant, vendor, upstream_id, recorded_at, location)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT DO NOTHING
"#;

/// The end of a batch in one round trip: the counts of the rows written added per (tenant,
/// vendor) ($1..$4, possibly empty), and the checkpoint when there is one ($5 not NULL).
const FINISH: &str = r#"
WITH counted AS (
    INSERT INTO source_counts (tenant, vendor, documents, upstream_documents)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    ON CONFLICT (tenant, vendor) DO UPDATE
    SET documents = source_counts.documents + excluded.documents,
        upstream_documents = source_counts.upstream_documents + excluded.upstream_documents
)
INSERT INTO backfill_checkpoints (run_key, position, written, noop, rejected, deleted)
SELECT $5::text, $6::text, $7::bigint, $8::bigint, $9::bigint, $10::bigint
WHERE $5::text IS NOT NULL
ON CONFLICT (run_key) DO UPDATE SET position = excluded.position, written = excluded.written,
    noop = excluded.noop, rejected = excluded.rejected, deleted = excluded.deleted
"#;

struct Statements {
    resolve: Statement,
    /// Prepared once: a COPY given as text is prepared again (a round trip) every batch.
    copy_raw: Statement,
    insert_deletions: Statement,
    finish: Statement,
}

pub struct PgStore {
    client: Client,
    /// None when opened read-only: nothing that writes is prepared.
    statements: Option<Statements>,
    /// The writer locks this session holds ([`crate::Store::claim_writer`]).
    claims: Claims<()>,
    /// The location without its password, for messages.
    shown: String,
    /// The schema versions an existing store was migrated from and to by this open.
    upgraded: Option<(i64, i64)>,
    /// The binary COPY payload of a batch, reused from batch to batch.
    copy_buf: Vec<u8>,
}

impl PgStore {
    /// Connects as libpq would (TLS per `sslmode`, password from the URL, `PGPASSWORD` or the
    /// password file: see the `pg_connect` module). Read-write: applies pending migrations.
    /// Read-only: every transaction of the session is read-only (`default_transaction_read_only`,
    /// as on a hot standby), nothing is created or prepared that writes, and the schema must be
    /// exactly this build's; a role with SELECT on the store's tables is enough.
    pub(crate) fn open(location: &crate::PgLocation, mode: OpenMode) -> Result<PgStore> {
        let mut client = crate::pg_connect::connect(location)?;
        // Every query here is a short index lookup or a stream; JIT compiling them only adds
        // latency to each batch. A commit returns without waiting for its WAL flush, the
        // guarantee SQLite's synchronous=NORMAL gives: the database stays consistent, and a
        // server crash may lose the last commits, which a resumed backfill writes again from its
        // checkpoint (committed with them, so never ahead of them).
        client.batch_execute(
            "SET jit = off; SET synchronous_commit = off; SET standard_conforming_strings = on; \
             SET bytea_output = hex",
        )?;
        if mode == OpenMode::ReadOnly {
            client.batch_execute("SET default_transaction_read_only = on")?;
            let version = schema_version(&mut client)?;
            crate::check_schema(MIGRATIONS, version, "no schema_migrations table")?;
            return Ok(PgStore {
                client,
                statements: None,
                claims: Claims::default(),
                shown: location.to_string(),
                upgraded: None,
                copy_buf: Vec::new(),
            });
        }
        let upgraded = migrate(&mut client)?;
        client.batch_execute(&format!(
            "PREPARE aoc_resolve(text[], text[], text[], bigint[], bytea[]) AS {RESOLVE}"
        ))?;
        let statements = Statements {
            resolve: client.prepare(RESOLVE)?,
            copy_raw: client.prepare(COPY_RAW)?,
            insert_deletions: client.prepare(INSERT_DELETIONS)?,
            finish: client.prepare(FINISH)?,
        };
        Ok(PgStore {
            client,
            statements: Some(statements),
            claims: Claims::default(),
            shown: location.to_string(),
            upgraded,
            copy_buf: Vec::new(),
        })
    }

    pub(crate) fn upgraded(&self) -> Option<(i64, i64)> {
        self.upgraded
    }

    /// Session advisory locks (the two levels of `writer_lock`). Each waits at most
    /// `CLAIM_WAIT`: the session of a run killed a moment ago ends as soon as its server process
    /// reads the closed connection, but not before the next run may ask (a SIGKILLed run
    /// restarted at once). On a refusal the locks this claim took are given back and the
    /// holders named from `pg_locks`.
    pub(crate) fn claim_writer(&mut self, scope: &WriterScope<'_>) -> Result<()> {
        if self.statements.is_none() {
            return Err(StoreError::ReadOnly("claiming the store for a writing run"));
        }
        // A session never conflicts with its own locks, so a wider claim needs no release.
        if self.claims.covers(scope) {
            return Ok(());
        }
        let mut taken: Vec<(i64, bool)> = Vec::new();
        for lock in scope.locks() {
            let key = lock.pg_key();
            let sql = if lock.exclusive {
                "SELECT pg_advisory_lock($1)"
            } else {
                "SELECT pg_advisory_lock_shared($1)"
            };
            self.client
                .batch_execute(&format!("SET lock_timeout = '{CLAIM_WAIT}'"))?;
            let got = match self.client.query_one(sql, &[&key]) {
                Ok(_) => true,
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => false,
                Err(e) => return Err(e.into()),
            };
            self.client.batch_execute("RESET lock_timeout")?;
            if !got {
                let holder = self.lock_holders(key)?;
                for (key, exclusive) in taken {
                    let sql = if exclusive {
                        "SELECT pg_advisory_unlock($1)"
                    } else {
                        "SELECT pg_advisory_unlock_shared($1)"
                    };
                    self.client.query_one(sql, &[&key])?;
                }
                return Err(StoreError::WriterBusy {
                    store: self.shown.clone(),
                    scope: scope.describe(),
                    holder,
                });
            }
            taken.push((key, lock.exclusive));
        }
        self.claims.add(scope, ());
        Ok(())
    }

    /// The sessions holding advisory lock `key` in this database, from `pg_locks` (a bigint key
    /// is its high half in `classid`, its low half in `objid`, `objsubid` 1).
    fn lock_holders(&mut self, key: i64) -> Result<String> {
        let bits = key as u64;
        let (high, low) = ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64);
        let rows = self.client.query(
            "SELECT l.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
                    coalesce(host(a.client_addr), 'a local socket'),
                    coalesce(to_char(a.backend_start AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '?')
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
             ORDER BY l.pid",
            &[&high, &low],
        )?;
        let holders: Vec<String> = rows
            .iter()
            .map(|r| {
                let app: &str = r.get(2);
                let app = if app.is_empty() {
                    String::new()
                } else {
                    format!(", application {app:?}")
                };
                format!(
                    "PostgreSQL session {} (user {:?}{app}, client {}, connected since {})",
                    r.get::<_, i32>(0),
                    r.get::<_, &str>(1),
                    r.get::<_, &str>(3),
                    r.get::<_, &str>(4),
                )
            })
            .collect();
        Ok(if holders.is_empty() {
            "a session that has just ended (run this again)".into()
        } else {
            holders.join("; ")
        })
    }

    /// The underlying connection (tests use it to tamper with rows behind the store's back).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// One transaction per batch, begun together with the write lock in one round trip and
    /// rolled back on any error.
    pub(crate) fn write_batch(
        &mut self,
        prepared: &[StoreDoc],
        batch: &Batch<'_>,
    ) -> Result<BatchOutcome> {
        if self.statements.is_none() {
            return Err(StoreError::ReadOnly("writing a batch"));
        }
        // Held until commit: the heads read below cannot move before our rows are in. A batch
        // with documents begins its transaction in the round trip that resolves its keys.
        if prepared.is_empty() {
            self.client.batch_execute(BEGIN_LOCKED)?;
        }
        match self.write_in_transaction(prepared, batch) {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // A broken connection has no transaction left to roll back: the first error
                // is the one to report.
                let _ = self.client.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Resolve the batch's keys (beginning the transaction), plan, COPY the new rows, record the
    /// deletions, then the counts, the checkpoint and COMMIT.
    fn write_in_transaction(
        &mut self,
        prepared: &[StoreDoc],
        batch: &Batch<'_>,
    ) -> Result<BatchOutcome> {
        let st = self.statements.as_ref().expect("checked by write_batch");
        let client = &mut self.client;
        let (state, doc_keys) = resolve_keys(client, st, prepared)?;
        let mut outcome = BatchOutcome::default();
        let rows = plan(prepared, state, &mut outcome)?;
        let counted = Counted::of(&rows);
        if !rows.is_empty() {
            copy_rows(client, st, &mut self.copy_buf, &rows, &outcome, &doc_keys)?;
        }
        if !batch.deletions.is_empty() {
            outcome.deletions_recorded = record_deletions(client, st, batch.deletions)?;
        }
        let c = batch
            .checkpoint
            .map(|c| c.with_outcome(&outcome, batch.deletions.len()));
        finish(client, st, &counted, c.as_ref())?;
        Ok(outcome)
    }

    pub(crate) fn checkpoint(&mut self, run_key: &str) -> Result<Option<Checkpoint>> {
        let row = self.client.query_opt(
            "SELECT run_key, position, written, noop, rejected, deleted
             FROM backfill_checkpoints WHERE run_key = $1",
            &[&run_key],
        )?;
        Ok(row.map(|r| Checkpoint {
            run_key: r.get(0),
            position: r.get(1),
            written: r.get(2),
            noop: r.get(3),
            rejected: r.get(4),
            deleted: r.get(5),
        }))
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
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(t) = &tenant {
            args.push(t);
            conditions.push(format!("u.tenant = ${}", args.len()));
        }
        if let Some(s) = &since {
            args.push(s);
            conditions.push(format!("r.ingested_unix >= ${}", args.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // One snapshot for the whole scan; a portal streams it SCAN_FETCH rows at a time. Written
        // as upstreams in key order, each joined to its revisions through the revision index, so
        // the plan streams (an incremental sort of each document's few revisions) where a plain
        // join would hash the whole table and sort it, documents and all, before the first row.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let portal = tx.bind(
            &format!(
                "SELECT u.tenant, u.vendor, u.upstream_id, r.revision, r.id, r.content_hash,
                        r.supersedes, r.ingested_at, r.doc::text
                 FROM (SELECT key, tenant, vendor, upstream_id FROM upstreams
                       ORDER BY tenant, vendor, upstream_id) u
                 CROSS JOIN LATERAL (SELECT * FROM advisory_raw r WHERE r.upstream = u.key
                                     ORDER BY r.revision) r
                 {filter}
                 ORDER BY u.tenant, u.vendor, u.upstream_id, r.revision"
            ),
            &args,
        )?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, SCAN_FETCH)?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                f(StoredRow {
                    tenant: r.get(0),
                    vendor: r.get(1),
                    upstream_id: r.get(2),
                    revision: r.get(3),
                    id: r.get(4),
                    content_hash: render_digest(r.get::<_, &[u8]>(5)),
                    supersedes: r.get(6),
                    ingested_at: r.get(7),
                    json: r.get(8),
                })?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Read from `source_counts`, which every batch updates in its own transaction: a few rows
    /// whatever the store's size (counting the raw rows took 1.5 s at 1M revisions, at the end
    /// of every backfill).
    pub(crate) fn counts(&mut self) -> Result<StoreCounts> {
        let by_source = self
            .client
            .query(
                "SELECT tenant, vendor, documents, upstream_documents FROM source_counts
                 WHERE documents > 0 ORDER BY tenant, vendor",
                &[],
            )?
            .into_iter()
            .map(|r| SourceCount {
                tenant: r.get(0),
                vendor: r.get(1),
                documents: r.get(2),
                upstream_documents: r.get(3),
            })
            .collect();
        let deletions: i64 = self
            .client
            .query_one("SELECT count(*) FROM upstream_deletions", &[])?
            .get(0);
        Ok(StoreCounts::from_sources(by_source, deletions))
    }

    pub(crate) fn orphans(&mut self) -> Result<Vec<Orphan>> {
        Ok(self
            .client
            .query(
                "SELECT r.upstream, r.revision, r.id FROM advisory_raw r
                 WHERE NOT EXISTS (SELECT 1 FROM upstreams u WHERE u.key = r.upstream)
                 ORDER BY r.upstream, r.revision",
                &[],
            )?
            .into_iter()
            .map(|r| Orphan {
                upstream: r.get(0),
                revision: r.get(1),
                id: r.get(2),
            })
            .collect())
    }

    pub(crate) fn migrations(&mut self) -> Result<Vec<(i64, String)>> {
        Ok(self
            .client
            .query(
                "SELECT version, applied_at FROM schema_migrations ORDER BY version",
                &[],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(crate) fn missing_guards(&mut self) -> Result<Vec<String>> {
        let present: HashSet<String> = self
            .client
            .query(
                "SELECT tgname::text FROM pg_trigger
                 WHERE tgrelid IN (to_regclass('upstreams'), to_regclass('advisory_raw'),
                                   to_regclass('upstream_deletions'))
                   AND tgenabled <> 'D'",
                &[],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        Ok(GUARDS
            .iter()
            .filter(|g| !present.contains(**g))
            .map(|g| g.to_string())
            .collect())
    }
}

/// Begins the batch's transaction with the lock and resolves its keys in one round trip (see
/// RESOLVE): what is stored for each document's upstream key, and the key of each document (by
/// its index in the batch). A batch without documents has begun its transaction already.
fn resolve_keys<'a>(
    client: &mut Client,
    st: &Statements,
    prepared: &'a [StoreDoc],
) -> Result<(StoredState<'a>, Vec<i64>)> {
    let mut state = StoredState::default();
    let mut doc_keys: Vec<i64> = Vec::with_capacity(prepared.len());
    if prepared.is_empty() {
        return Ok((state, doc_keys));
    }
    // Each distinct upstream document once, numbered from 1 in order of appearance.
    let mut distinct: Vec<&UpstreamKey> = Vec::new();
    let mut ordinal: BatchMap<&UpstreamKey, i64> = BatchMap::default();
    let mut doc_ordinals = Vec::with_capacity(prepared.len());
    let mut digests = Vec::with_capacity(prepared.len());
    for p in prepared {
        let next = distinct.len() as i64 + 1;
        let i = *ordinal.entry(&p.head.key).or_insert_with(|| {
            distinct.push(&p.head.key);
            next
        });
        doc_ordinals.push(i);
        digests.push(p.digest.as_ref());
    }
    let col =
        |f: fn(&UpstreamKey) -> &str| -> Vec<&str> { distinct.iter().map(|k| f(k)).collect() };
    let (kt, kv, ku) = (
        col(|k| &k.tenant),
        col(|k| &k.vendor),
        col(|k| &k.upstream_id),
    );
    let rows = match resolve_sql(&kt, &kv, &ku, &doc_ordinals, &digests) {
        Some(sql) => parse_resolved(client.simple_query(&sql)?)?,
        None => {
            client.batch_execute(BEGIN_LOCKED)?;
            client
                .query(&st.resolve, &[&kt, &kv, &ku, &doc_ordinals, &digests])?
                .iter()
                .map(|r| Resolved {
                    ordinal: r.get(0),
                    key: r.get(1),
                    revision: r.get(3),
                    id: r.get(4),
                    digest: r.get::<_, Option<Vec<u8>>>(5),
                })
                .collect()
        }
    };
    let resolved = read_resolved(rows, &distinct, &mut state)?;
    let missing = resolved.iter().filter(|k| k.is_none()).count();
    if missing > 0 {
        return Err(StoreError::BadRow {
            location: "upstreams".into(),
            message: format!(
                "{} of {} upstream keys resolved",
                distinct.len() - missing,
                distinct.len()
            ),
        });
    }
    doc_keys.extend(
        doc_ordinals
            .iter()
            .map(|&i| resolved[i as usize - 1].expect("all resolved")),
    );
    Ok((state, doc_keys))
}

/// The rows of RESOLVE into `state` (heads and stored digests); the upstream key of each distinct
/// document once resolved (by its ordinal less one).
fn read_resolved<'a>(
    rows: Vec<Resolved>,
    distinct: &[&'a UpstreamKey],
    state: &mut StoredState<'a>,
) -> Result<Vec<Option<i64>>> {
    let mut resolved: Vec<Option<i64>> = vec![None; distinct.len()];
    for r in rows {
        let i = usize::try_from(r.ordinal - 1)
            .ok()
            .filter(|&i| i < distinct.len())
            .ok_or_else(|| bad_resolve(format!("ordinal {}", r.ordinal)))?;
        let key = distinct[i];
        match r.digest {
            None => {
                resolved[i] = Some(r.key);
                if let (Some(revision), Some(id)) = (r.revision, r.id) {
                    state.heads.insert(key, Head { revision, id });
                }
            }
            Some(digest) => {
                // Equal to a digest of the batch (the probe's condition): 32 bytes.
                if let (Ok(digest), Some(id)) = (<[u8; 32]>::try_from(digest), r.id) {
                    state.existing.insert((key, Sha256Digest(digest)), id);
                }
            }
        }
    }
    Ok(resolved)
}

/// The new rows as one binary COPY, built in `buf` (reused from batch to batch).
fn copy_rows(
    client: &mut Client,
    st: &Statements,
    buf: &mut Vec<u8>,
    rows: &[NewRow<'_>],
    outcome: &BatchOutcome,
    doc_keys: &[i64],
) -> Result<()> {
    buf.clear();
    copy_header(buf);
    for (row, written) in rows_with_json(rows, outcome) {
        let p = row.prepared;
        buf.extend_from_slice(&8i16.to_be_bytes());
        copy_field(buf, Some(&doc_keys[row.index].to_be_bytes()));
        copy_field(buf, Some(&row.revision.to_be_bytes()));
        copy_field(buf, Some(p.head.id.as_bytes()));
        copy_field(buf, Some(p.digest.as_ref()));
        copy_field(buf, written.supersedes.as_deref().map(str::as_bytes));
        copy_field(buf, Some(p.ingested_at.as_bytes()));
        copy_field(buf, Some(&p.ingested_unix.to_be_bytes()));
        copy_field(buf, Some(written.json.as_bytes()));
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    // Sent in pieces of COPY_CHUNK: the client library copies what it is given into a
    // buffer of that size, which the allocator then reuses, where one batch-sized write
    // took fresh pages (zeroed by the kernel) every batch.
    let mut w = client.copy_in(&st.copy_raw)?;
    for chunk in buf.chunks(COPY_CHUNK) {
        w.write_all(chunk)?;
    }
    w.finish()?;
    if buf.capacity() > COPY_BUF_KEEP {
        *buf = Vec::new();
    }
    Ok(())
}

/// The batch's upstream deletions; the number not recorded before.
fn record_deletions(
    client: &mut Client,
    st: &Statements,
    deletions: &[crate::Deletion],
) -> Result<usize> {
    let col = |f: fn(&crate::Deletion) -> &str| -> Vec<&str> { deletions.iter().map(f).collect() };
    let n = client.execute(
        &st.insert_deletions,
        &[
            &col(|d| &d.key.tenant),
            &col(|d| &d.key.vendor),
            &col(|d| &d.key.upstream_id),
            &col(|d| &d.recorded_at),
            &col(|d| &d.location),
        ],
    )?;
    Ok(n as usize)
}

/// The counts, the checkpoint and COMMIT in one round trip: a simple query with the values as
/// literals. A value the simple protocol cannot carry (a NUL, which PostgreSQL text refuses
/// anyway) goes as parameters, and COMMIT after it.
fn finish(
    client: &mut Client,
    st: &Statements,
    counted: &Counted<'_>,
    c: Option<&Checkpoint>,
) -> Result<()> {
    if let Some(sql) = finish_sql(counted, c) {
        client.batch_execute(&sql)?;
        return Ok(());
    }
    if !counted.is_empty() || c.is_some() {
        let (tenants, vendors, documents, upstreams) = counted.columns();
        client.execute(
            &st.finish,
            &[
                &tenants,
                &vendors,
                &documents,
                &upstreams,
                &c.map(|c| &c.run_key),
                &c.map(|c| &c.position),
                &c.map(|c| c.written),
                &c.map(|c| c.noop),
                &c.map(|c| c.rejected),
                &c.map(|c| c.deleted),
            ],
        )?;
    }
    client.batch_execute("COMMIT")?;
    Ok(())
}

/// A row of RESOLVE: see there.
struct Resolved {
    ordinal: i64,
    key: i64,
    revision: Option<i64>,
    id: Option<String>,
    digest: Option<Vec<u8>>,
}

fn bad_resolve(message: String) -> StoreError {
    StoreError::BadRow {
        location: "upstreams".into(),
        message: format!("unexpected key lookup result: {message}"),
    }
}

/// The start of a batch as one simple query: BEGIN, the write lock, and RESOLVE (prepared on the
/// session as `aoc_resolve`) with the batch's keys and digests as array literals, so that the
/// lock and the lookups cost one round trip; `None` when a value holds a NUL.
fn resolve_sql(
    tenants: &[&str],
    vendors: &[&str],
    upstream_ids: &[&str],
    ordinals: &[i64],
    digests: &[&[u8]],
) -> Option<String> {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(64 * (upstream_ids.len() + digests.len()) + 256);
    sql.push_str(BEGIN_LOCKED);
    sql.push_str("; EXECUTE aoc_resolve(");
    for column in [tenants, vendors, upstream_ids] {
        text_array(&mut sql, column)?;
        sql.push_str(", ");
    }
    sql.push_str("'{");
    for (n, o) in ordinals.iter().enumerate() {
        write!(sql, "{}{o}", if n == 0 { "" } else { "," }).expect("to a String");
    }
    sql.push_str("}', '{");
    for (n, d) in digests.iter().enumerate() {
        sql.push_str(if n == 0 { "\"\\\\x" } else { ",\"\\\\x" });
        sql.push_str(&hex::encode(d));
        sql.push('"');
    }
    sql.push_str("}')");
    Some(sql)
}

/// `'{"a","b"}'`: a text array literal, each element double-quoted with `"` and `\` escaped for
/// the array parser and the whole quoted for SQL; `None` for a NUL.
fn text_array(sql: &mut String, values: &[&str]) -> Option<()> {
    sql.push_str("'{");
    for (n, v) in values.iter().enumerate() {
        if v.contains('\0') {
            return None;
        }
        if n > 0 {
            sql.push(',');
        }
        sql.push('"');
        for c in v.chars() {
            match c {
                '"' | '\\' => {
                    sql.push('\\');
                    sql.push(c);
                }
                '\'' => sql.push_str("''"),
                c => sql.push(c),
            }
        }
        sql.push('"');
    }
    sql.push_str("}'");
    Some(())
}

/// The rows of `aoc_resolve` in the simple query's text form (the lock's own row has one column).
fn parse_resolved(messages: Vec<SimpleQueryMessage>) -> Result<Vec<Resolved>> {
    let mut out = Vec::new();
    for m in messages {
        let SimpleQueryMessage::Row(row) = m else {
            continue;
        };
        if row.len() != 6 {
            continue;
        }
        let int = |i: usize| -> Result<Option<i64>> {
            row.get(i)
                .map(|v| v.parse().map_err(|_| bad_resolve(format!("{v:?}"))))
                .transpose()
        };
        let digest = match row.get(5) {
            None => None,
            Some(v) => Some(
                v.strip_prefix("\\x")
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or_else(|| bad_resolve(format!("{v:?}")))?,
            ),
        };
        out.push(Resolved {
            ordinal: int(0)?.ok_or_else(|| bad_resolve("no ordinal".into()))?,
            key: int(1)?.ok_or_else(|| bad_resolve("no key".into()))?,
            revision: int(3)?,
            id: row.get(4).map(str::to_owned),
            digest,
        });
    }
    Ok(out)
}

/// The end of a batch as one simple query (see FINISH): the counts' upsert, the checkpoint's, and
/// COMMIT; `None` when a value holds a NUL, which a simple query cannot carry.
fn finish_sql(counted: &Counted<'_>, checkpoint: Option<&Checkpoint>) -> Option<String> {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(512);
    if !counted.is_empty() {
        sql.push_str(
            "INSERT INTO source_counts (tenant, vendor, documents, upstream_documents) VALUES ",
        );
        for (n, (tenant, vendor, documents, upstreams)) in counted.iter().enumerate() {
            let sep = if n == 0 { "" } else { ", " };
            let (t, v) = (literal(tenant)?, literal(vendor)?);
            write!(sql, "{sep}({t}, {v}, {documents}, {upstreams})").expect("to a String");
        }
        sql.push_str(
            " ON CONFLICT (tenant, vendor) DO UPDATE \
             SET documents = source_counts.documents + excluded.documents, \
             upstream_documents = source_counts.upstream_documents + excluded.upstream_documents; ",
        );
    }
    if let Some(c) = checkpoint {
        write!(
            sql,
            "INSERT INTO backfill_checkpoints (run_key, position, written, noop, rejected, deleted) \
             VALUES ({}, {}, {}, {}, {}, {}) \
             ON CONFLICT (run_key) DO UPDATE SET position = excluded.position, \
             written = excluded.written, noop = excluded.noop, rejected = excluded.rejected, \
             deleted = excluded.deleted; ",
            literal(&c.run_key)?,
            literal(&c.position)?,
            c.written,
            c.noop,
            c.rejected,
            c.deleted
        )
        .expect("to a String");
    }
    sql.push_str("COMMIT");
    Some(sql)
}

/// A string constant for a simple query: quoted, quotes doubled (the session sets
/// standard_conforming_strings, so a backslash is just a backslash); `None` for a NUL.
fn literal(s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    Some(format!("'{}'", s.replace('\'', "''")))
}

/// The binary COPY header: signature, flags, no header extension.
fn copy_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// One binary COPY field: its length and bytes, or -1 for NULL. Text columns take their UTF-8
/// bytes, bigint its 8 big-endian bytes, bytea its bytes.
fn copy_field(buf: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            let len = i32::try_from(v.len()).expect("a field under 2 GiB");
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(v);
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// The store's schema version: `None` without a `schema_migrations` table (on the search path,
/// where the migrations create it).
fn schema_version(client: &mut Client) -> Result<Option<i64>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let version: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )?
        .get(0);
    Ok(Some(version))
}

/// Applies pending migrations under an advisory lock, so concurrent opens do not race; returns
/// (from, to) when an existing store was upgraded.
fn migrate(client: &mut Client) -> Result<Option<(i64, i64)>> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    bigint PRIMARY KEY,
            name       text NOT NULL,
            applied_at text NOT NULL
        )",
    )?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )?
        .get(0);
    for m in crate::pending(MIGRATIONS, current)? {
        tx.batch_execute(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))",
            &[&m.version, &m.name],
        )?;
    }
    tx.commit()?;
    Ok(crate::upgrade(MIGRATIONS, current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_lock_is_the_write_lock() {
        assert_eq!(
            BEGIN_LOCKED,
            format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        );
    }

    #[test]
    fn literals_are_quoted_and_refuse_nul() {
        assert_eq!(literal("a'b\\c").as_deref(), Some("'a''b\\c'"));
        assert_eq!(literal("a\0b"), None);
    }

    #[test]
    fn array_literals_escape_for_the_array_parser_and_sql() {
        let mut sql = String::new();
        text_array(&mut sql, &["a", "q\"b\\c'd", ""]).unwrap();
        assert_eq!(sql, r#"'{"a","q\"b\\c''d",""}'"#);
        assert!(text_array(&mut String::new(), &["a\0"]).is_none());
        let sql = resolve_sql(&["t"], &["v"], &["u"], &[1, 1], &[&[0xab], &[1, 2]]).unwrap();
        assert!(sql.ends_with(r#"'{1,1}', '{"\\xab","\\x0102"}')"#), "{sql}");
    }

    #[test]
    fn copy_fields_are_length_prefixed_or_null() {
        let mut buf = Vec::new();
        copy_field(&mut buf, Some(b"ab"));
        copy_field(&mut buf, None);
        assert_eq!(buf, [0, 0, 0, 2, b'a', b'b', 255, 255, 255, 255]);
    }
}
