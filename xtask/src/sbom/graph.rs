//! The set of crates linked into the `stella` binary, read from `cargo metadata`'s resolve graph
//! (metadata.rs) with the features cargo turns on for it (features.rs).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use super::metadata::Metadata;
use super::platform::Platform;

/// The package and binary the runner ships.
pub const RUNNER_PACKAGE: &str = "aoc-cli";
pub const RUNNER_BINARY: &str = "stella";

/// Crates linked into the runner binary and the normal-dependency edges between them, as indices
/// into `metadata.packages`, both sorted by (name, version, source) so output order is stable.
pub struct Linked {
    pub root: usize,
    pub packages: Vec<usize>,
    pub edges: BTreeMap<usize, BTreeSet<usize>>,
}

/// Walks the resolve graph from the runner package along normal edges only, with the features
/// `cargo build -p aoc-cli` turns on (see `features.rs`).
///
/// What is left out, and why it is not in the binary:
/// - `dev` edges: tests, benches and examples only.
/// - `build` edges: build scripts run on the build machine; their output (generated code, link
///   flags) is part of the crate that owns the script, which is included. A build-dependency's own
///   normal dependencies are reached only through the `build` edge, so they stay out too.
/// - proc-macro crates: compiled as host dylibs that rustc loads while compiling; their code
///   expands into the caller, which is included, and nothing of the macro crate itself (or of its
///   dependencies such as `syn`) is linked. A crate that is also a normal dependency of a runtime
///   crate (e.g. `proc-macro2` used at run time) is still reached through that edge.
/// - other platforms: declarations whose `cfg(...)` does not hold for the target (`platform.rs`).
pub fn linked(meta: &Metadata, platform: &Platform) -> Result<Linked> {
    let root = meta.member(RUNNER_PACKAGE)?;
    let root_pkg = &meta.packages[root];
    if !root_pkg
        .targets
        .iter()
        .any(|t| t.name == RUNNER_BINARY && t.kind.iter().any(|k| k == "bin"))
    {
        bail!("package `{RUNNER_PACKAGE}` has no `{RUNNER_BINARY}` binary target");
    }
    let resolution = super::features::resolve(meta, root, platform)?;
    let edges = resolution.edges;
    let key = |&i: &usize| {
        let p = &meta.packages[i];
        (p.name.as_str(), p.version.as_str(), p.source.as_deref())
    };
    let mut packages: Vec<usize> = resolution.packages.into_iter().collect();
    packages.sort_by_key(key);
    Ok(Linked {
        root,
        packages,
        edges,
    })
}
