//! The rehearsal's throwaway store: a temporary SQLite file by default, or a staging database
//! given by URL, which must be fresh (a rehearsal proves what a *fresh* load produces).

use std::path::Path;

use anyhow::{bail, Context, Result};
use aoc_store::{Engine, StoreLocation};

use super::report::{StoreInfo, VendorCount};

/// The store the rehearsal loads; a temporary one is removed when this is dropped.
pub struct Target {
    /// The store argument as given, for the `stella` runs (through `STELLA_STORE`, so that no
    /// password is on a command line).
    pub url: String,
    location: StoreLocation,
    pub info: StoreInfo,
    _temporary: Option<tempfile::TempDir>,
}

impl Target {
    /// `url` (any store argument `stella` takes), or a new SQLite file in a temporary directory.
    pub fn new(url: Option<&str>) -> Result<Target> {
        let (url, temporary) = match url {
            Some(u) => (u.to_string(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("aoc-rehearsal-store-")
                    .tempdir()
                    .context("creating a temporary directory for the SQLite store")?;
                let db = dir.path().join("rehearsal.db");
                let db = db
                    .to_str()
                    .context("the temporary directory's path is not UTF-8")?;
                (format!("sqlite://{db}"), Some(dir))
            }
        };
        // Parsed once, by the parser stella uses; reports and messages show its redacted form.
        let location = StoreLocation::parse(&url).context("--store")?;
        let engine = match location.engine() {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgresql",
        };
        Ok(Target {
            info: StoreInfo {
                engine: engine.into(),
                url: location.redacted(),
                temporary: temporary.is_some(),
            },
            location,
            url,
            _temporary: temporary,
        })
    }

    pub fn open(&self) -> Result<aoc_store::Store> {
        aoc_store::Store::open_location(&self.location, aoc_store::OpenMode::ReadWrite)
            .with_context(|| format!("opening the store {}", self.info.url))
    }

    /// Refuses a store that already holds documents or deletions: its counts, its export and the
    /// no-op proof would describe more than this dataset.
    pub fn ensure_fresh(&self) -> Result<()> {
        let counts = self.open()?.counts().context("counting the store")?;
        if counts.documents != 0 || counts.deletions != 0 {
            bail!(
                "the store {} is not fresh: it holds {} document(s) and {} deletion(s); a \
                 rehearsal needs an empty store (create a new database, or omit --store for a \
                 temporary SQLite file)",
                self.info.url,
                counts.documents,
                counts.deletions
            );
        }
        Ok(())
    }

    /// Documents per (tenant, vendor) as the store counts them.
    pub fn counts(&self) -> Result<Vec<VendorCount>> {
        let counts = self.open()?.counts().context("counting the store")?;
        Ok(counts
            .by_source
            .into_iter()
            .map(|s| VendorCount {
                tenant: s.tenant,
                vendor: s.vendor,
                records: s.documents as u64,
                upstream_documents: s.upstream_documents as u64,
            })
            .collect())
    }

    /// Exports the store with aoc-dataset into `dir` (gzip, `epoch`); returns the hash.
    pub fn export(&self, dir: &Path, epoch: i64) -> Result<aoc_dataset::BuildReport> {
        let mut store = self.open()?;
        let mut opts = aoc_dataset::BuildOptions::new(dir);
        opts.source_date_epoch = Some(epoch);
        opts.compression = aoc_dataset::Compression::Gzip;
        aoc_dataset::build_from_store(&mut store, &opts).context("exporting the store")
    }
}
