//! The set of crates linked into the `stella` binary, read from `cargo metadata`'s resolve graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

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
    pub pkg: String,
    pub dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
pub struct DepKind {
    /// `null` for a normal dependency, `"dev"` or `"build"` otherwise.
    pub kind: Option<String>,
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
            let Some(node) = nodes.get(self.packages[at].id.as_str()) else { continue };
            for dep in &node.deps {
                if !dep.dep_kinds.iter().any(|k| follow(k.kind.as_deref())) {
                    continue;
                }
                let Some(&to) = index.get(dep.pkg.as_str()) else { continue };
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

/// The host triple, which is also the release target: the release builds with plain
/// `cargo build --release` (no `--target`).
pub fn host_triple(sh: &Shell) -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = cmd!(sh, "{rustc} -vV").read().context("running rustc -vV")?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV printed no `host:` line")
}

/// `cargo metadata` for `triple` (every platform when `None`), with the lock file held fixed.
pub fn metadata(sh: &Shell, triple: Option<&str>) -> Result<Metadata> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let filter = triple.map(|t| ["--filter-platform", t]);
    let json = cmd!(sh, "{cargo} metadata --format-version 1 --locked {filter...}")
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

/// Walks the resolve graph from the runner package along normal edges only.
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
/// - other platforms: `--filter-platform` already removed edges whose `cfg(...)` does not match.
pub fn linked(meta: &Metadata) -> Result<Linked> {
    let root = meta.member(RUNNER_PACKAGE)?;
    let root_pkg = &meta.packages[root];
    if !root_pkg
        .targets
        .iter()
        .any(|t| t.name == RUNNER_BINARY && t.kind.iter().any(|k| k == "bin"))
    {
        bail!("package `{RUNNER_PACKAGE}` has no `{RUNNER_BINARY}` binary target");
    }
    let resolve = meta
        .resolve
        .as_ref()
        .context("cargo metadata returned no resolve graph")?;
    let index: BTreeMap<&str, usize> = meta
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let seen = meta.reach(&[root], |kind| kind.is_none(), false);
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for node in &resolve.nodes {
        let Some(&from) = index.get(node.id.as_str()) else { continue };
        if !seen.contains(&from) {
            continue;
        }
        let to = node
            .deps
            .iter()
            .filter(|d| d.dep_kinds.iter().any(|k| k.kind.is_none()))
            .filter_map(|d| index.get(d.pkg.as_str()).copied())
            .filter(|to| seen.contains(to));
        edges.insert(from, to.collect());
    }

    let key = |&i: &usize| {
        let p = &meta.packages[i];
        (p.name.as_str(), p.version.as_str(), p.source.as_deref())
    };
    let mut packages: Vec<usize> = seen.into_iter().collect();
    packages.sort_by_key(key);
    Ok(Linked {
        root,
        packages,
        edges,
    })
}
