//! SOURCE_DATE_EPOCH: the one clock every release artefact reads (docs/ARCHITECTURE.md §6).

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

/// The clock of a dataset built from `inputs` (its documents' `ingested_at`, and `retrieved_at`
/// where an input carries no time of its own). It must not move with every commit, or a
/// `DATASET_HASH` pinned by a rehearsal would stop matching after any unrelated change:
/// `AOC_DATASET_EPOCH` when set; else the time of the last commit that touched the inputs, when
/// they are all committed and unmodified (the seed); else `fallback` (SOURCE_DATE_EPOCH).
pub fn dataset_epoch(sh: &Shell, inputs: &[std::path::PathBuf], fallback: i64) -> Result<i64> {
    if let Ok(v) = std::env::var("AOC_DATASET_EPOCH") {
        return v.trim().parse().with_context(|| {
            format!("AOC_DATASET_EPOCH={v:?} is not a whole number of seconds since 1970")
        });
    }
    let committed = cmd!(sh, "git ls-files --error-unmatch -- {inputs...}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
        && cmd!(sh, "git status --porcelain -- {inputs...}")
            .quiet()
            .read()
            .is_ok_and(|s| s.trim().is_empty());
    if !committed {
        return Ok(fallback);
    }
    let out = cmd!(sh, "git log -1 --format=%ct -- {inputs...}")
        .quiet()
        .read()?;
    Ok(out.trim().parse().unwrap_or(fallback))
}
