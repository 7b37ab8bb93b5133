//! The kit's dataset, through aoc-dataset's library: built from a dataset definition (the
//! repository's `seed/dataset.json` unless `--dataset-from` says otherwise). Its verification is
//! `aoc-kit`'s.

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

/// `build` (tests only), writing `tenant` (aoc-dataset's `default` when `None`) into every document.
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
        hash: report.hash.to_string(),
        archive: report.archive,
        manifest: report.manifest_path,
    })
}
