//! Building a dataset: export a store (or inputs backfilled into a temporary SQLite store) into
//! data files, describe them in a manifest, name the result by its content address and pack it.
//!
//! Every output appears atomically (temporary name in the output directory, fsync, rename): the
//! archive through `aoc_archive`'s atomic file, the sidecar manifest here. Staging files (the
//! working store of a build from inputs, the exported data files) live in a directory in
//! `TMPDIR`, `aoc-dataset-staging-<pid>-*`, removed on every path out: errors, SIGINT and
//! SIGTERM (polled between batches, rows and packed chunks: [`BuildError::Interrupted`]). One that
//! a killed process left behind is removed by the next build, once its process is gone.
//!
//! Before any work, the output directory and `TMPDIR` are checked (they exist, take a file);
//! either failing, or running out of room, is a [`BuildError::Environment`].

use crate::export::{Export, Exporter};
use crate::input::Datasets;
use crate::layout::{archive_name, manifest_name};
use crate::manifest::{self, Derived, FileEntry, InputRef, Manifest, SourceInfo, ToolInfo};
use crate::{MANIFEST_MEMBER, SCHEMA_VERSION, TOOL_NAME, TOOL_VERSION};
use aoc_archive::{Compression, Entry, PackError, PackOptions};
use aoc_contract::{clock, GuardOptions};
use aoc_digest::Sha256Digest;
use aoc_ingest::{Backfill, EngineError, Rejects, Source, SourceError};
use aoc_store::{Engine, ScanFilter, Store, StoreError};
use aoc_term::environment::{self, EnvironmentError};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Everything that decides a build's output besides its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Where the archive and the sidecar manifest are written (created if missing).
    pub out_dir: PathBuf,
    /// From a store: export only this tenant. From inputs: the tenant written into every document
    /// (default `default`, as `stella aoc backfill`).
    pub tenant: Option<String>,
    /// [`Compression::Gzip`] (default) or [`Compression::Zstd`].
    pub compression: Compression,
    /// The manifest's `created_at`, every tar mtime and, from inputs, every `ingested_at` and
    /// default `retrieved_at`. `None`: `SOURCE_DATE_EPOCH`, else the wall clock.
    pub source_date_epoch: Option<i64>,
    /// Data files past this size are split into parts ([`crate::DEFAULT_SPLIT_BYTES`]). Part of
    /// the content: a different value gives a different hash for large datasets.
    pub split_bytes: u64,
}

impl BuildOptions {
    /// Defaults: gzip, no tenant, `SOURCE_DATE_EPOCH`, default split size.
    pub fn new(out_dir: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            out_dir: out_dir.into(),
            tenant: None,
            compression: Compression::Gzip,
            source_date_epoch: None,
            split_bytes: crate::DEFAULT_SPLIT_BYTES,
        }
    }

    fn epoch(&self) -> Result<u64, BuildError> {
        let epoch = match self.source_date_epoch {
            Some(e) => e,
            None => clock::run_epoch().map_err(BuildError::Clock)?,
        };
        u64::try_from(epoch)
            .map_err(|_| BuildError::Clock(format!("SOURCE_DATE_EPOCH {epoch} is before 1970")))
    }
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// The content address.
    pub hash: Sha256Digest,
    /// `out_dir/aoc-dataset-<hash>.tar.gz|.tar.zst`.
    pub archive: PathBuf,
    /// `out_dir/aoc-dataset-<hash>.manifest.json` (the same bytes as the archive's `manifest.json`).
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// SHA-256 of the archive file.
    pub archive_sha256: Sha256Digest,
    pub archive_bytes: u64,
    /// Size of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// What the build did besides its output (stale staging directories removed).
    pub notes: Vec<String>,
}

impl BuildReport {
    pub fn files(&self) -> &[FileEntry] {
        &self.manifest.files
    }

    pub fn records(&self) -> u64 {
        self.manifest.totals.records
    }
}

/// Documents per transaction: the runner's default `--batch-size`.
pub const BATCH_SIZE: usize = 500;
/// Rejections quoted in an error; the count is always complete.
const QUOTED_REJECTIONS: usize = 10;

/// Why inputs could not be loaded into the build's temporary store.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading inputs: {0}")]
    Input(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Inputs that did not map or did not pass the guard: a dataset never silently drops one.
    #[error("{count} input record(s) rejected; first: {}", first.join("; "))]
    Rejected { count: u64, first: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("clock: {0}")]
    Clock(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("exporting the store: {0}")]
    Store(#[from] StoreError),
    #[error("loading inputs: {0}")]
    Load(#[from] LoadError),
    #[error("packing: {0}")]
    Pack(#[from] PackError),
    #[error("data file {path} changed between export and packing ({detail}); is another process writing to the output directory?")]
    Changed { path: String, detail: String },
    /// `TMPDIR` or the output directory cannot serve: no verdict on the inputs.
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// SIGINT or SIGTERM: the build stopped; nothing was written to the output directory and
    /// the staging directory is gone.
    #[error("interrupted: nothing was written to {}, and the staging directory was removed", out.display())]
    Interrupted { out: PathBuf },
}

/// What a build keeps in `TMPDIR`, as environment errors name it.
const STAGING_PURPOSE: &str = "the build's staging (working store and data files)";
/// What a build writes to `--out`.
const OUT_PURPOSE: &str = "the dataset archive and its manifest";
/// Staging directories are `{STAGING_PREFIX}<pid>-<random>` in `TMPDIR`.
const STAGING_PREFIX: &str = "aoc-dataset-staging-";

fn interrupted() -> bool {
    aoc_term::interrupt::flag().load(Ordering::SeqCst)
}

/// `e` as the build reports it: an interruption, or an environment problem in the staging
/// directory, when it is one.
fn explain(e: BuildError, opts: &BuildOptions) -> BuildError {
    if interrupted() {
        return BuildError::Interrupted {
            out: opts.out_dir.clone(),
        };
    }
    // A dataset among the inputs that TMPDIR cannot hold the private copy of.
    let e = match e {
        BuildError::Load(LoadError::Input(SourceError::Input(b))) => {
            match b.downcast::<EnvironmentError>() {
                Ok(env) => return BuildError::Environment(*env),
                Err(b) => BuildError::Load(LoadError::Input(SourceError::Input(b))),
            }
        }
        e => e,
    };
    // Only a write that found no room or a read-only filesystem: an input it cannot read is
    // the input's problem, not the environment's.
    let full = |err: &io::Error| {
        use io::ErrorKind::*;
        matches!(err.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem)
    };
    let tmp = environment::temp_dir();
    let classify = |err: &io::Error| {
        full(err)
            .then(|| environment::classify("TMPDIR", &tmp, STAGING_PURPOSE, None, err))
            .flatten()
    };
    let out = |err: &io::Error| {
        full(err)
            .then(|| environment::classify("--out", &opts.out_dir, OUT_PURPOSE, None, err))
            .flatten()
    };
    let found = match &e {
        // The archive's writes to --out (the manifest's are classified where it is written).
        BuildError::Pack(PackError::Output { source, .. } | PackError::Write(source)) => {
            out(source)
        }
        BuildError::Io { source, .. } => classify(source),
        BuildError::Store(StoreError::Io(source)) => classify(source),
        // SQLITE_FULL, whose text SQLite fixes (sqlite3_errstr): the working store's disk.
        BuildError::Store(s)
        | BuildError::Load(LoadError::Engine(EngineError::Store { source: s, .. }))
            if s.to_string().contains("database or disk is full") =>
        {
            classify(&io::Error::from(io::ErrorKind::StorageFull))
        }
        _ => None,
    };
    found.map_or(e, BuildError::Environment)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// Exports `store` (all tenants, or `opts.tenant`) and packs it.
pub fn build_from_store(store: &mut Store, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let epoch = opts.epoch()?;
    let staging = Staging::create(&opts.out_dir)?;
    let built = (|| {
        let export = export_store(
            store,
            opts.tenant.as_deref(),
            staging.path(),
            opts.split_bytes,
        )?;
        let engine = match store.engine() {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgresql",
        };
        let source = SourceInfo::Store {
            engine: engine.into(),
        };
        pack_export(&export, source, opts.tenant.clone(), epoch, opts)
    })();
    staging.finish(built.map_err(|e| explain(e, opts)))
}

/// Backfills `paths` into a temporary SQLite store with the runner's semantics, then exports it.
/// Any rejected input fails the build (with the first rejections named).
pub fn build_from_inputs(
    paths: &[PathBuf],
    opts: &BuildOptions,
) -> Result<BuildReport, BuildError> {
    build_from_inputs_observed(paths, opts, &|_| {})
}

/// [`build_from_inputs`], telling `events` how far the load is (a progress bar's feed).
pub fn build_from_inputs_observed(
    paths: &[PathBuf],
    opts: &BuildOptions,
    events: &(dyn Fn(aoc_ingest::Event) + Sync),
) -> Result<BuildReport, BuildError> {
    let epoch = opts.epoch()?;
    let inputs = paths
        .iter()
        .map(|p| input_ref(p))
        .collect::<Result<Vec<_>, _>>()?;
    let staging = Staging::create(&opts.out_dir)?;
    let built = load_and_pack(paths, inputs, &staging, epoch, opts, events);
    staging.finish(built.map_err(|e| explain(e, opts)))
}

fn load_and_pack(
    paths: &[PathBuf],
    inputs: Vec<InputRef>,
    staging: &Staging,
    epoch: u64,
    opts: &BuildOptions,
    events: &(dyn Fn(aoc_ingest::Event) + Sync),
) -> Result<BuildReport, BuildError> {
    let db = staging.path().join("store.db");
    let url = format!(
        "sqlite://{}",
        db.to_str().ok_or_else(|| BuildError::Io {
            context: format!("{}", db.display()),
            source: io::Error::other("temporary store path is not UTF-8"),
        })?
    );
    let mut store = Store::open(&url)?;
    let tenant = opts.tenant.clone().unwrap_or_else(|| "default".to_owned());
    // The runner's engine and semantics, so a dataset built from inputs equals one exported from
    // a store that `stella aoc backfill` loaded from the same inputs with the same clock.
    let mut source = Source::open(paths, &[&Datasets::default()]).map_err(LoadError::from)?;
    let load = Backfill {
        tenant: tenant.clone(),
        vendor: None,
        guard: GuardOptions::default(),
        connector_version: TOOL_VERSION.into(),
        batch_size: BATCH_SIZE,
        stop_on_error: false,
        max_conflicts: 0,
        rejects: Rejects::Keep(QUOTED_REJECTIONS),
        run_key: None,
        clock: epoch as i64,
        events: Some(events),
        stop: Some(aoc_term::interrupt::flag()),
    }
    .run(&mut source, Some(&mut store))
    .map_err(LoadError::from)?;
    if load.report.rejected > 0 {
        return Err(LoadError::Rejected {
            count: load.report.rejected,
            first: load
                .rejections
                .iter()
                .map(|r| format!("{}: {}", r.location, r.reason()))
                .collect(),
        }
        .into());
    }
    let export = export_store(
        &mut store,
        None,
        &staging.path().join("export"),
        opts.split_bytes,
    )?;
    drop(store);
    pack_export(
        &export,
        SourceInfo::Inputs { inputs },
        Some(tenant),
        epoch,
        opts,
    )
}

/// Streams the store's rows, in its (tenant, vendor, upstream_id, revision) order, into data files.
fn export_store(
    store: &mut Store,
    tenant: Option<&str>,
    root: &Path,
    split_bytes: u64,
) -> Result<Export, BuildError> {
    let mut exporter =
        Exporter::new(root, split_bytes).map_err(io_err(format!("creating {}", root.display())))?;
    let filter = ScanFilter {
        tenant: tenant.map(str::to_owned),
        since: None,
    };
    store.scan(&filter, |row| {
        if interrupted() {
            return Err(StoreError::Io(io::Error::other("interrupted by a signal")));
        }
        exporter
            .push(
                &row.tenant,
                &row.vendor,
                &row.upstream_id,
                row.json.as_bytes(),
            )
            .map_err(|e| StoreError::Callback(Box::new(e)))
    })?;
    exporter
        .finish()
        .map_err(io_err("finishing the data files"))
}

/// Writes the manifest and the archive for exported data files; `tenant` is the manifest's tenant.
pub fn pack_export(
    export: &Export,
    source: SourceInfo,
    tenant: Option<String>,
    epoch: u64,
    opts: &BuildOptions,
) -> Result<BuildReport, BuildError> {
    let derived = Derived::new(
        export.files.iter().map(|f| f.entry()).collect(),
        export.vendors.clone(),
    );
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        kind: manifest::KIND.into(),
        dataset_hash: derived.dataset_hash.to_string(),
        hash_rule: manifest::HASH_RULE.into(),
        record_order: manifest::RECORD_ORDER.into(),
        tool: ToolInfo {
            name: TOOL_NAME.into(),
            version: TOOL_VERSION.into(),
        },
        created_at: clock::rfc3339(epoch as i64),
        source,
        tenant,
        split_bytes: opts.split_bytes,
        totals: derived.totals,
        tenants: derived.tenants,
        vendors: derived.vendors,
        files: derived.files,
    };
    let manifest_bytes = manifest.to_bytes();
    let hash = derived.dataset_hash;
    fs::create_dir_all(&opts.out_dir)
        .map_err(io_err(format!("creating {}", opts.out_dir.display())))?;
    let archive = opts
        .out_dir
        .join(archive_name(&hash.to_string(), opts.compression));
    let mut entries: Vec<Entry> = export
        .files
        .iter()
        .map(|f| Entry::file(f.path.clone(), f.disk_path.clone()))
        .collect();
    entries.push(Entry::bytes(MANIFEST_MEMBER, manifest_bytes.clone()));
    let packed = pack_stoppable(
        entries,
        &archive,
        &PackOptions {
            compression: opts.compression,
            source_date_epoch: epoch,
            include_directories: false,
        },
    )?;
    // The tar writer hashed every member while copying it: it must agree with the export.
    for f in &export.files {
        let member = packed.members.iter().find(|m| m.path == f.path);
        let detail = match member {
            None => Some("missing from the archive".to_owned()),
            Some(m) if m.size != f.bytes || m.sha256 != f.sha256 => Some(format!(
                "{} bytes sha256 {} at export, {} bytes sha256 {} when packed",
                f.bytes, f.sha256, m.size, m.sha256
            )),
            Some(_) => None,
        };
        if let Some(detail) = detail {
            let _ = fs::remove_file(&archive);
            return Err(BuildError::Changed {
                path: f.path.clone(),
                detail,
            });
        }
    }
    let manifest_path = opts.out_dir.join(manifest_name(&hash.to_string()));
    write_atomic(&manifest_path, &manifest_bytes)?;
    Ok(BuildReport {
        hash,
        archive,
        manifest_path,
        manifest,
        archive_sha256: packed.archive_sha256,
        archive_bytes: packed.archive_bytes,
        tar_bytes: packed.tar_bytes,
        notes: Vec::new(),
    })
}

/// `aoc_archive::pack_with`, stopping at the next chunk written once SIGINT or SIGTERM came (the
/// temporary archive is then removed by its destructor).
fn pack_stoppable(
    entries: Vec<Entry>,
    out_path: &Path,
    options: &PackOptions,
) -> Result<aoc_archive::PackReport, BuildError> {
    let output_err = |source| PackError::Output {
        path: out_path.to_path_buf(),
        source,
    };
    let mut tmp = aoc_archive::fs::AtomicFile::create(out_path, aoc_archive::fs::FILE_MODE)
        .map_err(output_err)?;
    let out = BufWriter::with_capacity(256 << 10, Stoppable(tmp.file()));
    let (out, report) = aoc_archive::pack_to_writer(entries, out, options)?;
    out.into_inner()
        .map_err(|e| PackError::Write(e.into_error()))?;
    tmp.commit().map_err(output_err)?;
    Ok(report)
}

/// A writer that fails once SIGINT or SIGTERM came (not with `ErrorKind::Interrupted`, which
/// `write_all` retries for ever).
struct Stoppable<W>(W);

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if interrupted() {
            return Err(io::Error::other("interrupted by a signal"));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The build's staging directory in `TMPDIR`: removed when dropped, and by the signal handler
/// if a second signal ends the process at once.
struct Staging {
    dir: tempfile::TempDir,
    _on_signal: aoc_term::interrupt::Registered,
    notes: Vec<String>,
}

impl Staging {
    /// Checks the output directory (created if missing) and `TMPDIR`, removes staging
    /// directories whose build process is gone, and creates this build's.
    fn create(out_dir: &Path) -> Result<Staging, BuildError> {
        fs::create_dir_all(out_dir).map_err(|e| {
            environment::classify("--out", out_dir, OUT_PURPOSE, None, &e)
                .map(BuildError::Environment)
                .unwrap_or_else(|| io_err(format!("creating {}", out_dir.display()))(e))
        })?;
        environment::check_dir("--out", out_dir, OUT_PURPOSE, None)?;
        environment::check_temp_dir(STAGING_PURPOSE, None)?;
        let tmp = environment::temp_dir();
        let mut notes = remove_stale_staging(&tmp);
        notes.extend(older_staging(out_dir));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(|e| {
                environment::classify("TMPDIR", &tmp, STAGING_PURPOSE, None, &e)
                    .map(BuildError::Environment)
                    .unwrap_or_else(|| {
                        io_err(format!("creating a staging directory in {}", tmp.display()))(e)
                    })
            })?;
        let on_signal = aoc_term::interrupt::remove_on_exit(dir.path().to_owned());
        Ok(Staging {
            dir,
            _on_signal: on_signal,
            notes,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the directory and hands on the build's result, with the notes.
    fn finish(self, built: Result<BuildReport, BuildError>) -> Result<BuildReport, BuildError> {
        let Staging { dir, notes, .. } = self;
        drop(dir);
        built.map(|mut report| {
            report.notes = notes;
            report
        })
    }
}

/// Staging directories that builds before this one left in the output directory
/// (`.aoc-dataset-staging-*`, without their process id): named, not removed, since such a build
/// may still be running.
fn older_staging(out_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(out_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".aoc-dataset-staging-"))
        })
        .map(|e| {
            format!(
                "{} is the staging directory of an older aoc-dataset build that did not finish: \
                 remove it once no build runs",
                e.path().display()
            )
        })
        .collect()
}

/// Removes the staging directories in `tmp` whose build process no longer runs (a build killed
/// with SIGKILL, or a machine that went down); says which.
fn remove_stale_staging(tmp: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    let Ok(entries) = fs::read_dir(tmp) else {
        return notes;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // A live process of that id may be another build: left alone. (A reused id only delays
        // the removal to a later build.)
        if Path::new("/proc").join(pid.to_string()).exists() || !entry.path().is_dir() {
            continue;
        }
        if fs::remove_dir_all(entry.path()).is_ok() {
            notes.push(format!(
                "removed {}, the staging directory of an earlier build (process {pid}) that did \
                 not finish",
                entry.path().display()
            ));
        }
    }
    notes
}

fn input_ref(path: &Path) -> Result<InputRef, BuildError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let meta = fs::metadata(path).map_err(io_err(format!("input {}", path.display())))?;
    let sha256 = if meta.is_file() {
        let (_, digest) = aoc_archive::sha256_file(path)
            .map_err(io_err(format!("hashing input {}", path.display())))?;
        Some(digest.to_string())
    } else {
        None
    };
    Ok(InputRef { name, sha256 })
}

/// Writes `bytes` to `path` (in `--out`) atomically, world-readable like every release
/// artefact; no room there is an environment error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    aoc_archive::fs::write_atomic(path, bytes, aoc_archive::fs::FILE_MODE).map_err(|e| {
        let out = path.parent().unwrap_or(Path::new("."));
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                match environment::classify("--out", out, OUT_PURPOSE, None, &e) {
                    Some(env) => BuildError::Environment(env),
                    None => io_err(format!("writing {}", path.display()))(e),
                }
            }
            _ => io_err(format!("writing {}", path.display()))(e),
        }
    })
}
