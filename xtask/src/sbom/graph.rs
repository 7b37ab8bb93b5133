//! The set of crates linked into the `stella` binary, read from `cargo metadata`'s resolve graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use super::platform::Platform;

/// The package and binary the runner ships.
pub const RUNNER_PACKAGE: &str = "aoc-cli";
pub const RUNNER_BINARY: &str = "stella";

#[derive(Deserialize)]
pub struct Metadata {
    pub packages: Vec<Package>,
    pub workspace_members: Vec<String>,
    pub resolve: Option<Resolve>,
}

#[derive(Deserialize)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub license: Option<String>,
    pub license_file: Option<String>,
    pub targets: Vec<Target>,
    pub dependencies: Vec<Dependency>,
    pub features: BTreeMap<String, Vec<String>>,
}

/// A dependency as declared in a manifest.
#[derive(Deserialize)]
pub struct Dependency {
    /// The package name; `rename` is what the manifest and the features table call it.
    pub name: String,
    pub rename: Option<String>,
    pub kind: Option<String>,
    pub target: Option<String>,
    pub optional: bool,
    pub uses_default_features: bool,
    pub features: Vec<String>,
}

#[derive(Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: Vec<String>,
}

#[derive(Deserialize)]
pub struct Resolve {
    pub nodes: Vec<Node>,
}

#[derive(Deserialize)]
pub struct Node {
    pub id: String,
    pub deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
pub struct NodeDep {
    /// The extern crate name (`rename` or the library name, `-` as `_`).
    pub name: String,
    pub pkg: String,
    pub dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
pub struct DepKind {
    /// `null` for a normal dependency, `"dev"` or `"build"` otherwise.
    pub kind: Option<String>,
    /// The `cfg(...)` or triple the declaration is limited to.
    pub target: Option<String>,
}

impl Metadata {
    /// Index of the workspace member called `name`.
    pub fn member(&self, name: &str) -> Result<usize> {
        self.packages
            .iter()
            .position(|p| p.name == name && self.workspace_members.contains(&p.id))
            .with_context(|| format!("workspace has no `{name}` member"))
    }

    /// Packages reachable from `roots` along edges whose kinds pass `follow` (`None` = normal),
    /// optionally stepping into proc-macro crates. Used to explain what an SBOM left out.
    pub fn reach(
        &self,
        roots: &[usize],
        follow: impl Fn(Option<&str>) -> bool,
        into_proc_macros: bool,
        platform: &Platform,
    ) -> BTreeSet<usize> {
        let index: BTreeMap<&str, usize> = self
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let nodes: BTreeMap<&str, &Node> = self
            .resolve
            .iter()
            .flat_map(|r| &r.nodes)
            .map(|n| (n.id.as_str(), n))
            .collect();
        let mut seen: BTreeSet<usize> = roots.iter().copied().collect();
        let mut queue: VecDeque<usize> = roots.iter().copied().collect();
        while let Some(at) = queue.pop_front() {
            let Some(node) = nodes.get(self.packages[at].id.as_str()) else {
                continue;
            };
            for dep in &node.deps {
                let applies = |k: &DepKind| platform.applies(k.target.as_deref()).unwrap_or(true);
                if !dep
                    .dep_kinds
                    .iter()
                    .any(|k| follow(k.kind.as_deref()) && applies(k))
                {
                    continue;
                }
                let Some(&to) = index.get(dep.pkg.as_str()) else {
                    continue;
                };
                if !into_proc_macros && self.packages[to].is_proc_macro() {
                    continue;
                }
                if seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        seen
    }
}

impl Package {
    pub fn is_proc_macro(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
    }
}

/// `cargo metadata` for `triple`, with the lock file held fixed.
pub fn metadata(sh: &Shell, triple: &str) -> Result<Metadata> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let json = cmd!(
        sh,
        "{cargo} metadata --format-version 1 --locked --filter-platform {triple}"
    )
    .read()
    .context("running cargo metadata")?;
    serde_json::from_str(&json).context("parsing cargo metadata output")
}

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
