//! SOURCE_DATE_EPOCH: the clock every release artefact reads (docs/ARCHITECTURE.md §6), except the
//! dataset's records: their clock is the dataset definition's (`dataset_definition.rs`).

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

/// `SOURCE_DATE_EPOCH` when set, else the committer time of `HEAD`, so two clones at the same
/// commit agree without anyone exporting a variable.
pub fn source_date_epoch(sh: &Shell) -> Result<i64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds since 1970")
        });
    }
    let out = cmd!(sh, "git log -1 --format=%ct")
        .read()
        .context("SOURCE_DATE_EPOCH is not set and `git log -1` failed: export it, or run inside the git checkout")?;
    out.trim()
        .parse()
        .with_context(|| format!("git log printed {out:?}, not a timestamp"))
}
