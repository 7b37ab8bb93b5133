//! The dataset definition: a small committed file (`seed/dataset.json`) that, with the bytes of the
//! inputs it names, is everything a dataset's identity depends on.
//!
//! A dataset's records carry `ingested_at` (and `retrieved_at` where an input has no time of its
//! own), so its hash depends on a clock as well as on its inputs. That clock used to be derived
//! from git history, which a `git clone --depth 1`, a `git archive` export or another
//! `SOURCE_DATE_EPOCH` answered differently. It is now written down, reviewed and committed:
//!
//! ```json
//! {
//!   "kind": "stellaops.aoc-dataset-definition",
//!   "schema_version": 1,
//!   "inputs": ["rustsec-seed.ndjson.zst"],
//!   "clock": "2026-11-26T16:28:03Z",
//!   "tenant": "default"
//! }
//! ```
//!
//! `inputs` are paths relative to the definition's directory (inside it: no `..`, not absolute),
//! in the order they are loaded; `clock` is RFC 3339 or whole seconds since 1970; `tenant` is
//! optional (default `default`). Nothing else is read: not git, not the checkout path, not the wall
//! clock, not `SOURCE_DATE_EPOCH`.
//!
//! Inputs given without a definition (`--dataset-from PATH...`) need their clock given explicitly:
//! `--dataset-epoch` or `AOC_DATASET_EPOCH`. A definition carries its own clock, so an explicit one
//! next to it is refused rather than silently preferred or ignored.

#[cfg(test)]
mod tests;

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::kit;

/// The `kind` a definition file declares (how `--dataset-from` tells it from an input).
pub const KIND: &str = "stellaops.aoc-dataset-definition";
pub const SCHEMA_VERSION: u32 = 1;
/// The repository's default dataset, relative to the workspace root.
pub const DEFAULT_DEFINITION: &str = "seed/dataset.json";
/// The environment form of `--dataset-epoch`.
pub const EPOCH_VAR: &str = "AOC_DATASET_EPOCH";

/// A definition file is small; anything larger is an input, not a definition.
const MAX_DEFINITION_BYTES: u64 = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionFile {
    kind: String,
    schema_version: u32,
    inputs: Vec<String>,
    clock: Clock,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Clock {
    Seconds(i64),
    Text(String),
}

/// Where a dataset's inputs and clock came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A definition file (absolute path).
    Definition(PathBuf),
    /// `--dataset-from` inputs with an explicit clock.
    Explicit,
}

/// Everything a dataset is built from: its hash depends on these and on the inputs' bytes only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Absolute input paths, in load order.
    pub inputs: Vec<PathBuf>,
    /// The clock of every `ingested_at` (and default `retrieved_at`), seconds since 1970.
    pub epoch: i64,
    /// The tenant written into every document; `None` is aoc-dataset's `default`.
    pub tenant: Option<String>,
    pub origin: Origin,
}

impl DatasetSpec {
    /// Reads the definition at `path` (absolute, or relative to the current directory).
    pub fn load(path: &Path) -> Result<DatasetSpec> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the dataset definition {}", path.display()))?;
        let file: DefinitionFile = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a dataset definition (kind, schema_version, inputs, clock, tenant)",
                path.display()
            )
        })?;
        let problem =
            |what: String| anyhow::anyhow!("dataset definition {}: {what}", path.display());
        if file.kind != KIND {
            return Err(problem(format!("kind is {:?}, not {KIND:?}", file.kind)));
        }
        if file.schema_version != SCHEMA_VERSION {
            return Err(problem(format!(
                "schema_version {} is not {SCHEMA_VERSION}",
                file.schema_version
            )));
        }
        if file.inputs.is_empty() {
            return Err(problem("names no inputs".into()));
        }
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut inputs = Vec::with_capacity(file.inputs.len());
        for name in &file.inputs {
            let rel = Path::new(name);
            let inside =
                !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
            if !inside {
                return Err(problem(format!(
                    "input {name:?} must be a relative path inside the definition's directory \
                     (no `..`, `.`, or leading `/`)"
                )));
            }
            let input = dir.join(rel);
            if !input.exists() {
                return Err(problem(format!(
                    "input {name:?} does not exist ({})",
                    input.display()
                )));
            }
            if inputs.contains(&input) {
                return Err(problem(format!("input {name:?} is listed twice")));
            }
            inputs.push(input);
        }
        let epoch = match file.clock {
            Clock::Seconds(s) => s,
            Clock::Text(t) => parse_clock(&t).map_err(|e| problem(format!("clock: {e}")))?,
        };
        if epoch < 0 {
            return Err(problem(format!("clock {epoch} is before 1970")));
        }
        if let Some(t) = &file.tenant {
            if t.is_empty() {
                return Err(problem("tenant is empty (omit it for `default`)".into()));
            }
        }
        Ok(DatasetSpec {
            inputs,
            epoch,
            tenant: file.tenant,
            origin: Origin::Definition(path.to_path_buf()),
        })
    }

    /// The dataset of a release or rehearsal run in the workspace at `root`:
    /// - no `from`: the repository's definition, `seed/dataset.json`;
    /// - `from` is one dataset definition file: that definition;
    /// - otherwise `from` are inputs, and `explicit_epoch` (`--dataset-epoch` /
    ///   `AOC_DATASET_EPOCH`) is their clock, else `fallback` (library callers that pin every
    ///   clock, such as tests; the commands pass `None`), else an error.
    ///
    /// An explicit clock together with a definition is refused: the definition's clock is the
    /// reviewed one, and a second clock would make the same definition mean two datasets.
    /// `fallback` never applies to a definition.
    pub fn resolve(
        root: &Path,
        from: &[PathBuf],
        explicit_epoch: Option<i64>,
        fallback: Option<i64>,
    ) -> Result<DatasetSpec> {
        let definition = match from {
            [] => Some(root.join(DEFAULT_DEFINITION)),
            [one] if is_definition(one) => Some(one.clone()),
            many => {
                if let Some(d) = many.iter().find(|p| is_definition(p)) {
                    bail!(
                        "{} is a dataset definition: pass it alone to --dataset-from, not with \
                         other inputs",
                        d.display()
                    );
                }
                None
            }
        };
        match (definition, explicit_epoch) {
            (Some(def), None) => DatasetSpec::load(&def),
            (Some(def), Some(e)) => bail!(
                "a dataset clock was given ({EPOCH_VAR} or --dataset-epoch = {e}), but the dataset \
                 definition {} carries its own: change its `clock` (a reviewed commit) or unset \
                 {EPOCH_VAR}",
                display_rel(root, &def)
            ),
            (None, explicit) => {
                let Some(epoch) = explicit.or(fallback) else {
                    bail!(
                        "--dataset-from inputs without a dataset definition need their clock (the \
                         records' ingested_at, part of the dataset hash): pass --dataset-epoch \
                         SECONDS|RFC3339 (or set {EPOCH_VAR}), or write a definition like \
                         {DEFAULT_DEFINITION} and pass it as --dataset-from DEFINITION.json"
                    );
                };
                anyhow::ensure!(epoch >= 0, "dataset clock {epoch} is before 1970");
                Ok(DatasetSpec {
                    inputs: from.to_vec(),
                    epoch,
                    tenant: None,
                    origin: Origin::Explicit,
                })
            }
        }
    }

    /// Builds the dataset into `out_dir` with its kit names.
    pub fn build(&self, out_dir: &Path) -> Result<kit::dataset::Built> {
        kit::dataset::build_as(&self.inputs, out_dir, self.epoch, self.tenant.as_deref())
    }

    /// The definition file, when the dataset has one.
    pub fn definition(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Definition(p) => Some(p),
            Origin::Explicit => None,
        }
    }
}

/// True when `path` is a file that declares itself a dataset definition (`"kind"`); OSV, CSAF and
/// feed inputs never do.
pub fn is_definition(path: &Path) -> bool {
    let small_json = path.extension().is_some_and(|e| e == "json")
        && std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_DEFINITION_BYTES);
    small_json
        && std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["kind"] == KIND)
}

/// `--dataset-epoch` / `AOC_DATASET_EPOCH`: whole seconds since 1970, or RFC 3339.
pub fn parse_clock(value: &str) -> Result<i64> {
    let v = value.trim();
    if let Ok(seconds) = v.parse::<i64>() {
        return Ok(seconds);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("{value:?} is neither whole seconds since 1970 nor an RFC 3339 time")
        })?;
    Ok(t.unix_timestamp())
}

/// The explicit dataset clock in `env` (`AOC_DATASET_EPOCH`), parsed; empty counts as unset.
pub fn explicit_epoch(value: Option<&str>) -> Result<Option<i64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_clock(v)
            .map(Some)
            .with_context(|| format!("{EPOCH_VAR} / --dataset-epoch")),
    }
}

/// `p` relative to the workspace when inside it.
pub fn display_rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
