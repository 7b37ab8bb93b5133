//! `cargo metadata`'s JSON as the SBOM reads it: packages, their declared dependencies and the
//! resolve graph, and the walks over it that the graph (graph.rs) and the feature resolution
//! (features.rs) share.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use super::platform::Platform;

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
