//! Cargo's feature resolution (resolver 2) for one package's target-side normal graph.
//!
//! `cargo metadata` has no `-p`: its resolve graph unifies features over every workspace member,
//! so an optional dependency that only a sibling turns on (e.g. `digest/oid` from the signing
//! crate pulling in `const-oid`) shows up as an edge of `stella`'s graph although
//! `cargo build -p aoc-cli` never compiles it. This replays cargo's rules from the runner alone:
//! the root's `default` feature, then features flowing along normal edges, optional dependencies
//! switched on by `dep:x`, `x/feat` or the implicit feature `x`, and `x?/feat` only once `x` is
//! on. Build-dependencies and proc-macros live on the host side, whose features resolver 2 keeps
//! apart, so they neither contribute nor receive features here. Platform `cfg`s were already
//! applied by `--filter-platform`: a declaration for another platform has no resolved edge.
//! The `sbom` tests hold this to `cargo tree -p aoc-cli -e normal,no-proc-macro`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::metadata::{Dependency, Metadata, Node, Package};
use super::platform::Platform;

pub struct Resolution {
    /// Every package compiled into the root's target-side graph, the root included.
    pub packages: BTreeSet<usize>,
    /// Normal, linked edges between them.
    pub edges: BTreeMap<usize, BTreeSet<usize>>,
}

pub fn resolve(meta: &Metadata, root: usize, platform: &Platform) -> Result<Resolution> {
    let index: BTreeMap<&str, usize> = meta
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let nodes: BTreeMap<&str, &Node> = meta
        .resolve
        .iter()
        .flat_map(|r| &r.nodes)
        .map(|n| (n.id.as_str(), n))
        .collect();

    let mut features: BTreeMap<usize, BTreeSet<String>> =
        BTreeMap::from([(root, BTreeSet::from(["default".to_string()]))]);
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    // Feature sets only grow, so repeating passes until nothing changes reaches the fixed point.
    loop {
        let mut changed = false;
        let active: Vec<usize> = features.keys().copied().collect();
        for p in active {
            let pkg = &meta.packages[p];
            let seed = features[&p].clone();
            let on = Enabled::close(pkg, &seed);
            let Some(node) = nodes.get(pkg.id.as_str()) else {
                continue;
            };
            for decl in pkg.dependencies.iter().filter(|d| d.kind.is_none()) {
                let dep_name = decl.rename.as_deref().unwrap_or(&decl.name);
                if decl.optional && !on.deps.contains(dep_name) {
                    continue;
                }
                if !platform.applies(decl.target.as_deref())? {
                    continue;
                }
                for q in resolved(meta, &index, node, pkg, decl) {
                    if meta.packages[q].is_proc_macro() {
                        continue;
                    }
                    edges.entry(p).or_default().insert(q);
                    let set = features.entry(q).or_insert_with(|| {
                        changed = true;
                        BTreeSet::new()
                    });
                    let wanted = decl
                        .features
                        .iter()
                        .map(String::as_str)
                        .chain(decl.uses_default_features.then_some("default"))
                        .chain(on.dep_features.get(dep_name).into_iter().flatten().copied());
                    for f in wanted {
                        changed |= set.insert(f.to_string());
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok(Resolution {
        packages: features.into_keys().collect(),
        edges,
    })
}

/// What a set of features switches on inside one package.
struct Enabled<'a> {
    /// Optional dependencies (by dependency name, i.e. the rename if any) that are on.
    deps: BTreeSet<&'a str>,
    /// Features asked of a dependency via `x/feat` or `x?/feat`.
    dep_features: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

impl<'a> Enabled<'a> {
    fn close(pkg: &'a Package, seed: &'a BTreeSet<String>) -> Enabled<'a> {
        let is_optional_dep = |name: &str| {
            pkg.dependencies
                .iter()
                .any(|d| d.optional && d.rename.as_deref().unwrap_or(&d.name) == name)
        };
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = seed.iter().map(String::as_str).collect();
        let mut on = Enabled {
            deps: BTreeSet::new(),
            dep_features: BTreeMap::new(),
        };
        while let Some(f) = stack.pop() {
            if !seen.insert(f) {
                continue;
            }
            let Some(values) = pkg.features.get(f) else {
                // Older metadata omits implicit features: an optional dependency's name is one.
                if is_optional_dep(f) {
                    on.deps.insert(f);
                }
                continue;
            };
            for v in values {
                if let Some(dep) = v.strip_prefix("dep:") {
                    on.deps.insert(dep);
                } else if let Some((dep, feat)) = v.split_once('/') {
                    let (dep, weak) = match dep.strip_suffix('?') {
                        Some(dep) => (dep, true),
                        None => (dep, false),
                    };
                    on.dep_features.entry(dep).or_default().insert(feat);
                    if !weak && is_optional_dep(dep) {
                        on.deps.insert(dep);
                        // `x/feat` also turns on the implicit feature `x` where there is one.
                        stack.push(dep);
                    }
                } else {
                    stack.push(v);
                }
            }
        }
        on
    }
}

/// The packages a normal dependency declaration resolved to on the filtered platform.
fn resolved<'m>(
    meta: &'m Metadata,
    index: &'m BTreeMap<&str, usize>,
    node: &'m Node,
    pkg: &'m Package,
    decl: &'m Dependency,
) -> impl Iterator<Item = usize> + 'm {
    let extern_name = |s: &str| s.replace('-', "_");
    node.deps.iter().filter_map(move |d| {
        let q = *index.get(d.pkg.as_str())?;
        if meta.packages[q].name != decl.name {
            return None;
        }
        let same_kind = d
            .dep_kinds
            .iter()
            .any(|k| k.kind.is_none() && k.target == decl.target);
        if !same_kind {
            return None;
        }
        let claimed = match &decl.rename {
            Some(rename) => d.name == extern_name(rename),
            // Unrenamed: any edge to that package that no renamed sibling declaration claims.
            None => !pkg.dependencies.iter().any(|o| {
                o.name == decl.name && o.rename.as_deref().map(extern_name) == Some(d.name.clone())
            }),
        };
        claimed.then_some(q)
    })
}
