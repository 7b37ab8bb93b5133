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
mod pg_connect;
mod pg_tls;
mod postgres;
mod row;
mod sqlite;
pub mod verify;

pub use batch::{Batch, BatchOutcome, Checkpoint, Deletion, DocOutcome, WrittenDoc};
pub use document::{prepare_docs, StoreDoc};
pub use postgres::PgStore;
pub use row::{Orphan, ScanFilter, SourceCount, StoreCounts, StoredRow};
pub use sqlite::SqliteStore;
pub use verify::{verify_store, StoreVerifier, VerifyOptions, VerifyReport};

use serde_json::Value;

/// The raw table's name in both engines.
pub const RAW_TABLE: &str = "advisory_raw";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store URL {0:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
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
    #[error("stored row {location} is unreadable: {message}")]
    BadRow { location: String, message: String },
    /// An error returned by a [`Store::scan`] callback, passed through unchanged.
    #[error(transparent)]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store URL fit for messages and reports: the password of `scheme://user:secret@host/...` and
/// of a `password=` query parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
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

/// The SQL of one schema migration, for tests that build a store as an older version left it.
#[doc(hidden)]
pub fn migration_sql(engine: Engine, version: i64) -> Option<&'static str> {
    let all = match engine {
        Engine::Sqlite => sqlite::MIGRATIONS,
        Engine::Postgres => postgres::MIGRATIONS,
    };
    all.iter().find(|m| m.version == version).map(|m| m.sql)
}

impl Store {
    /// Opens (creating if needed) the store at `url` and applies pending schema migrations.
    ///
    /// `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://rel/path`, `sqlite://:memory:`) or
    /// `postgres://...` / `postgresql://...`: a libpq URL with libpq's `sslmode` (`disable`,
    /// `allow`, `prefer` by default, `require`, `verify-ca`, `verify-full`) and `sslrootcert`,
    /// also from `PGSSLMODE` / `PGSSLROOTCERT`; without a password in the URL, `PGPASSWORD` or
    /// the password file (`PGPASSFILE`, default `~/.pgpass`) supplies it.
    pub fn open(url: &str) -> Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.to_owned()));
            }
            Ok(Store::Sqlite(sqlite::SqliteStore::open(path)?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::open(url)?))
        } else {
            Err(StoreError::BadUrl(redact_url(url)))
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Store::Sqlite(_) => Engine::Sqlite,
            Store::Postgres(_) => Engine::Postgres,
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
    fn redact_url_hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://aoc:s3cr@t@db:5432/store?sslmode=verify-full&password=x&a=b"),
            "postgres://aoc:***@db:5432/store?sslmode=verify-full&password=***&a=b"
        );
        for kept in [
            "postgres://aoc@db/store?sslmode=require",
            "sqlite://relative/store.db",
            "sqlite://:memory:",
        ] {
            assert_eq!(redact_url(kept), kept);
        }
        let err = Store::open("mysql://root:hunter2@db/x").err().unwrap();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
