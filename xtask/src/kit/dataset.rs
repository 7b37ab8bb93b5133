//! The kit's dataset, through aoc-dataset's library: built from a dataset definition (the
//! repository's `seed/dataset.json` unless `--dataset-from` says otherwise), verified from its
//! bytes (manifest, content hash, the AOC guard over every record), and its data files extracted
//! for the bundled `stella`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A dataset written into the staging directory with its kit names.
#[derive(Clone, Debug)]
pub struct Built {
    pub hash: String,
    pub archive: PathBuf,
    pub manifest: PathBuf,
}

/// Builds the dataset from `inputs` into `out_dir` (`aoc-dataset-<hash>.tar.gz` and
/// `.manifest.json`, the kit's names), every timestamp from `epoch`, tenant `default`. Releases and
/// rehearsals build through their dataset definition (`DatasetSpec::build`); tests use this.
#[cfg(test)]
pub fn build(inputs: &[PathBuf], out_dir: &Path, epoch: i64) -> Result<Built> {
    build_as(inputs, out_dir, epoch, None)
}

/// [`build`], writing `tenant` (aoc-dataset's `default` when `None`) into every document.
pub fn build_as(
    inputs: &[PathBuf],
    out_dir: &Path,
    epoch: i64,
    tenant: Option<&str>,
) -> Result<Built> {
    let mut opts = aoc_dataset::BuildOptions::new(out_dir);
    opts.source_date_epoch = Some(epoch);
    opts.tenant = tenant.map(str::to_string);
    opts.compression = aoc_dataset::Compression::Gzip;
    let report = aoc_dataset::build_from_inputs(inputs, &opts).context("building the dataset")?;
    Ok(Built {
        hash: report.hash,
        archive: report.archive,
        manifest: report.manifest_path,
    })
}

/// Why a dataset did not verify.
pub enum Problem {
    /// Unreadable, or refused by the defensive reader.
    Hostile(String),
    /// Read completely; a manifest, hash or AOC check failed.
    Invalid(String),
}

/// aoc-dataset's verification (manifest, sidecar, content hash = `hash`, AOC guard and chains over
/// every record) with the reader bounded by `limits`; a one-line summary when it passes.
pub fn verify(
    archive: &Path,
    hash: &str,
    limits: aoc_archive::Limits,
    records: bool,
) -> std::result::Result<String, Problem> {
    let opts = aoc_dataset::VerifyOptions {
        expected_hash: Some(hash.to_string()),
        limits,
        records,
        ..aoc_dataset::VerifyOptions::default()
    };
    match aoc_dataset::verify_with(archive, &opts) {
        Ok(r) if !records => Ok(format!(
            "hash {} recomputed from {} data file(s), {} line(s); records not parsed (--integrity-only)",
            r.hash,
            r.files.len(),
            r.files.iter().map(|f| f.records).sum::<u64>()
        )),
        Ok(r) => Ok(format!(
            "hash {} recomputed from {} data file(s); {} record(s), {} upstream document(s) pass the AOC guard",
            r.hash,
            r.files.len(),
            r.records,
            r.upstream_documents
        )),
        Err(aoc_dataset::VerifyError::Unreadable { message, .. }) => Err(Problem::Hostile(message)),
        Err(aoc_dataset::VerifyError::Failed(r)) => {
            let shown: Vec<String> = r.failures.iter().take(5).map(|f| f.to_string()).collect();
            Err(Problem::Invalid(format!(
                "{} check(s) failed: {}",
                r.failure_count,
                shown.join("; ")
            )))
        }
    }
}

/// The sidecar manifest is present, parses strictly and names the same dataset (aoc-dataset's
/// verification compares it with the archive's own `manifest.json` field by field).
pub fn check_sidecar(archive: &Path, sidecar: &Path) -> std::result::Result<String, String> {
    let bytes = std::fs::read(sidecar).map_err(|e| format!("missing or unreadable: {e}"))?;
    let manifest = aoc_dataset::Manifest::from_slice(&bytes)?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != crate::kit::dataset_tarball(&manifest.dataset_hash) {
        return Err(format!(
            "names dataset {}, the kit ships {name}",
            manifest.dataset_hash
        ));
    }
    Ok(format!(
        "{} record(s) in {} file(s)",
        manifest.totals.records, manifest.totals.files
    ))
}

/// Writes the dataset's data files under `dest` (through the defensive reader bounded by `limits`);
/// returns how many.
pub fn extract_data(
    archive: &Path,
    dest: &Path,
    limits: aoc_archive::Limits,
) -> std::result::Result<usize, String> {
    let reader = aoc_archive::ArchiveReader::open(archive, limits).map_err(|e| e.to_string())?;
    let mut count = 0;
    reader
        .for_each_entry(|path, entry| -> anyhow::Result<()> {
            if aoc_dataset::parse_data_path(path).is_none() {
                return Ok(());
            }
            // The reader has refused absolute paths, `..` and links, so this stays inside `dest`.
            let out = dest.join(path);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::File::create_new(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            std::io::copy(entry, &mut file)?;
            count += 1;
            Ok(())
        })
        .map_err(|e| format!("{e:#}"))?;
    Ok(count)
}
