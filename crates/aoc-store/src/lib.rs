//! The append-only raw advisory store (docs/ARCHITECTURE.md §3.1): one semantics over two engines, SQLite
//! (embedded, the default) and PostgreSQL, chosen by the store URL.
//!
//! Writes go through [`Store::write_batch`]: one transaction per batch, idempotent on
//! `(tenant, vendor, upstream_id, content_hash)`, revisions numbered 1.. per upstream document with
//! `supersedes` set by the store to the previous head's `_id`. The database itself rejects UPDATE,
//! DELETE (and on PostgreSQL TRUNCATE) of raw rows with triggers; [`verify`] re-checks every stored
//! row against its columns, its content hash and its revision chain.

mod batch;
mod document;
mod location;
mod pg_connect;
mod pg_tls;
mod postgres;
mod row;
mod sqlite;
pub mod verify;
mod writer_lock;

pub use batch::{Batch, BatchOutcome, Checkpoint, Deletion, DocOutcome, WrittenDoc};
pub use document::{prepare_docs, StoreDoc};
pub use location::{PgLocation, StoreLocation, ENV_DEFAULTS, ENV_HELP};
pub use postgres::PgStore;
pub use row::{Orphan, ScanFilter, SourceCount, StoreCounts, StoredRow};
pub use sqlite::SqliteStore;
pub use verify::{verify_store, StoreVerifier, VerifyOptions, VerifyReport};
pub use writer_lock::WriterScope;

use serde_json::Value;

/// The raw table's name in both engines.
pub const RAW_TABLE: &str = "advisory_raw";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a store argument ([`StoreLocation::parse`]); the text says what was wrong, and never
    /// repeats the argument (which may hold a password).
    #[error(
        "unsupported store {0}: use sqlite:PATH, postgres://USER@HOST:PORT/DATABASE or a \
         key=value string such as \"host=HOST dbname=DATABASE\""
    )]
    BadUrl(String),
    #[error("SQLite store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL store: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// The connection settings are unusable (an unknown sslmode, a missing root certificate, a
    /// malformed URL); nothing was sent to a server.
    #[error("PostgreSQL connection settings: {0}")]
    PgConfig(String),
    /// The server could not be reached, refused the connection, or failed the TLS checks.
    /// `target` is `host:port/database (sslmode=...)`, never a password.
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    PgConnect { target: String, message: String },
    #[error("document {index} of the batch: {message}")]
    InvalidDocument { index: usize, message: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid scan filter: {0}")]
    BadFilter(String),
    #[error(
        "store schema version {found} is newer than this build knows ({known}): use a newer stella"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// A read-only open found a store that a writing open would first migrate.
    #[error(
        "store schema version {found} is older than this build's ({known}), and a read-only \
         command does not migrate it: open the store once with a writing command (stella aoc \
         backfill) as a user who may change its schema, then run this again"
    )]
    SchemaTooOld { found: i64, known: i64 },
    /// A read-only open found no store (no SQLite file, or no `schema_migrations` table).
    #[error(
        "no store there ({0}): nothing has been written to it yet; a writing command (stella \
         aoc backfill) creates it"
    )]
    NotAStore(String),
    /// A write asked of a store opened with [`OpenMode::ReadOnly`].
    #[error("the store was opened read-only: {0} needs a writing open")]
    ReadOnly(&'static str),
    /// Another run holds the writer lock of the same (tenant, source): see [`Store::claim_writer`].
    /// `store` is the store's location without a password.
    #[error(
        "another run is writing to store {store} for {scope}: {holder}. One writer per store, \
         tenant and source: wait for that run to end (or stop it), then run this again"
    )]
    WriterBusy {
        store: String,
        scope: String,
        holder: String,
    },
    #[error("stored row {location} is unreadable: {message}")]
    BadRow { location: String, message: String },
    /// An error returned by a [`Store::scan`] callback, passed through unchanged.
    #[error(transparent)]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store argument fit for messages and reports: its [`StoreLocation`]'s redacted form, read
/// without the environment; an argument that does not parse is not shown at all.
pub fn redact_url(url: &str) -> String {
    StoreLocation::parse_with_env(url, &|_| None).map_or_else(
        |_| "(a store argument that does not parse)".into(),
        |l| l.to_string(),
    )
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// An open store. Every method has the same semantics on both engines.
// One per process and never moved in a hot loop, so the variants' size difference is irrelevant.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// One schema migration: applied in order on open, recorded in `schema_migrations`.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations (in version order) a store at schema `current` still needs; a store newer than
/// this build is refused rather than written with an older idea of its schema.
pub(crate) fn pending(all: &'static [Migration], current: i64) -> Result<&'static [Migration]> {
    let known = all.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    Ok(&all[all.partition_point(|m| m.version <= current)..])
}

/// (from, to) when a store that existed at schema `current` is migrated to the last of `all`;
/// `None` for a new store (0) or one already current.
pub(crate) fn upgrade(all: &[Migration], current: i64) -> Option<(i64, i64)> {
    let known = all.last().map_or(0, |m| m.version);
    (current > 0 && current < known).then_some((current, known))
}

/// A read-only open's check of the store's schema (`current`: its `schema_migrations` version,
/// `None` without that table): it must be exactly this build's, since a read-only open neither
/// migrates an older store nor reads a newer one with an older idea of its schema.
pub(crate) fn check_schema(all: &[Migration], current: Option<i64>, at: &str) -> Result<()> {
    let known = all.last().map_or(0, |m| m.version);
    match current {
        None => Err(StoreError::NotAStore(at.to_owned())),
        Some(found) if found < known => Err(StoreError::SchemaTooOld { found, known }),
        Some(found) if found > known => Err(StoreError::SchemaTooNew { found, known }),
        Some(_) => Ok(()),
    }
}

/// The SQL of one schema migration, for tests that build a store as an older version left it.
#[doc(hidden)]
pub fn migration_sql(engine: Engine, version: i64) -> Option<&'static str> {
    let all = match engine {
        Engine::Sqlite => sqlite::MIGRATIONS,
        Engine::Postgres => postgres::MIGRATIONS,
    };
    all.iter().find(|m| m.version == version).map(|m| m.sql)
}

/// How [`Store::open_with`] opens a store. Only commands that write migrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Creates the store if needed and applies pending schema migrations (`stella aoc backfill`).
    ReadWrite,
    /// Writes nothing, ever (`stella aoc verify`, `aoc-dataset build --store`): PostgreSQL
    /// sessions with `default_transaction_read_only` and no DDL, SQLite opened read-only. The
    /// store must exist at exactly this build's schema version ([`StoreError::SchemaTooOld`],
    /// [`StoreError::SchemaTooNew`], [`StoreError::NotAStore`] otherwise). Works for a
    /// SELECT-only PostgreSQL role, a hot standby, and a SQLite file and directory the user
    /// cannot write (see `SqliteStore`'s read-only open for the WAL files).
    ReadOnly,
}

impl Store {
    /// [`Store::open_with`] in [`OpenMode::ReadWrite`]: creates the store if needed and applies
    /// pending schema migrations.
    pub fn open(url: &str) -> Result<Store> {
        Store::open_with(url, OpenMode::ReadWrite)
    }

    /// [`Store::open_with`] in [`OpenMode::ReadOnly`]: writes nothing, migrates nothing.
    pub fn open_read_only(url: &str) -> Result<Store> {
        Store::open_with(url, OpenMode::ReadOnly)
    }

    /// Opens the store at `url` in `mode`: [`StoreLocation::parse`] (`sqlite:PATH`, a libpq
    /// `postgres://` URL or keyword/value string, libpq's environment variables filling what it
    /// leaves out), then [`Store::open_location`].
    pub fn open_with(url: &str, mode: OpenMode) -> Result<Store> {
        Store::open_location(&StoreLocation::parse(url)?, mode)
    }

    /// Opens the store at a parsed `location` in `mode`. PostgreSQL: libpq's `sslmode`
    /// (`disable`, `allow`, `prefer` by default, `require`, `verify-ca`, `verify-full`) and
    /// `sslrootcert`; without a password in the location, `PGPASSWORD` or the password file
    /// (`passfile` / `PGPASSFILE`, default `~/.pgpass`) supplies it.
    pub fn open_location(location: &StoreLocation, mode: OpenMode) -> Result<Store> {
        match location {
            StoreLocation::Sqlite(path) => {
                Ok(Store::Sqlite(sqlite::SqliteStore::open(path, mode)?))
            }
            StoreLocation::Postgres(pg) => Ok(Store::Postgres(postgres::PgStore::open(pg, mode)?)),
        }
    }

    /// The schema versions (from, to) this open migrated an existing store across, if it did
    /// (a writing open of an older store): for the writing command to say so.
    pub fn upgraded_schema(&self) -> Option<(i64, i64)> {
        match self {
            Store::Sqlite(s) => s.upgraded(),
            Store::Postgres(s) => s.upgraded(),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Store::Sqlite(_) => Engine::Sqlite,
            Store::Postgres(_) => Engine::Postgres,
        }
    }

    /// Claims this store for one writing run of `scope` until the store is closed: a second
    /// claim of an overlapping scope, from any process, fails with [`StoreError::WriterBusy`]
    /// naming the holder, instead of two runs sharing one checkpoint. A run without a source
    /// claims every source of its tenant; runs of different sources of one tenant do not
    /// exclude each other. PostgreSQL: session advisory locks (per database), released when
    /// the session ends; SQLite: `flock(2)` on `<db>-writer-*.lock` files beside the database,
    /// released when the process ends, however it ends. Claiming a scope this store already
    /// holds does nothing.
    pub fn claim_writer(&mut self, scope: &WriterScope<'_>) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.claim_writer(scope),
            Store::Postgres(s) => s.claim_writer(scope),
        }
    }

    /// Appends documents, records deletions and stores the checkpoint, all in one transaction.
    /// Concurrent writers are serialized (SQLite's write lock, a PostgreSQL advisory lock).
    pub fn write_batch(&mut self, batch: &Batch<'_>) -> Result<BatchOutcome> {
        match self {
            Store::Sqlite(s) => s.write_batch(batch.docs, batch),
            Store::Postgres(s) => s.write_batch(batch.docs, batch),
        }
    }

    /// Appends mapped, guarded raw documents (see [`Batch::docs`]) in one transaction.
    pub fn append_batch(
        &mut self,
        docs: &[Value],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<BatchOutcome> {
        self.write_batch(&Batch {
            docs: &prepare_docs(docs)?,
            deletions: &[],
            checkpoint,
        })
    }

    /// Records that the upstream deleted a document; returns false when already recorded. The
    /// document's revisions stay: a deletion is a fact, never applied as a delete.
    pub fn record_deletion(&mut self, deletion: &Deletion) -> Result<bool> {
        let outcome = self.write_batch(&Batch {
            docs: &[],
            deletions: std::slice::from_ref(deletion),
            checkpoint: None,
        })?;
        Ok(outcome.deletions_recorded == 1)
    }

    /// The checkpoint last written for `run_key`.
    pub fn checkpoint(&mut self, run_key: &str) -> Result<Option<Checkpoint>> {
        match self {
            Store::Sqlite(s) => s.checkpoint(run_key),
            Store::Postgres(s) => s.checkpoint(run_key),
        }
    }

    /// Streams stored rows in the order (tenant, vendor, upstream_id, revision) from one
    /// consistent snapshot, in bounded memory; returns the number of rows passed to `f`.
    pub fn scan<F>(&mut self, filter: &ScanFilter, f: F) -> Result<u64>
    where
        F: FnMut(StoredRow) -> Result<()>,
    {
        let since = filter.since_unix()?;
        match self {
            Store::Sqlite(s) => s.scan(filter.tenant.as_deref(), since, f),
            Store::Postgres(s) => s.scan(filter.tenant.as_deref(), since, f),
        }
    }

    /// Documents and upstream documents, in total and per (tenant, vendor); deletions recorded.
    pub fn counts(&mut self) -> Result<StoreCounts> {
        match self {
            Store::Sqlite(s) => s.counts(),
            Store::Postgres(s) => s.counts(),
        }
    }

    /// Raw rows whose upstream key names no `upstreams` row (deleted behind the store's back):
    /// [`Store::scan`] cannot see them, so the verifier asks for them separately.
    pub fn orphans(&mut self) -> Result<Vec<Orphan>> {
        match self {
            Store::Sqlite(s) => s.orphans(),
            Store::Postgres(s) => s.orphans(),
        }
    }

    /// Applied migrations as (version, applied_at), oldest first.
    pub fn migrations(&mut self) -> Result<Vec<(i64, String)>> {
        match self {
            Store::Sqlite(s) => s.migrations(),
            Store::Postgres(s) => s.migrations(),
        }
    }

    /// Names of the append-only triggers that should exist but are missing or disabled.
    pub fn missing_guards(&mut self) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.missing_guards(),
            Store::Postgres(s) => s.missing_guards(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_url, Store};

    #[test]
    fn redact_url_hides_passwords_and_shows_nothing_it_cannot_parse() {
        assert_eq!(
            redact_url("postgres://aoc:s3cr%40t@db:5432/store?sslmode=verify-full&password=x"),
            "postgres://aoc:***@db:5432/store?sslmode=verify-full"
        );
        for kept in [
            "postgres://aoc@db/store?sslmode=require",
            "sqlite://relative/store.db",
            "sqlite://:memory:",
        ] {
            assert_eq!(redact_url(kept), kept);
        }
        let shown = redact_url("postgres://aoc:s3cr@t@db:5432/store");
        assert!(!shown.contains("s3cr"), "{shown}");
        let err = Store::open("mysql://root:hunter2@db/x").err().unwrap();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
