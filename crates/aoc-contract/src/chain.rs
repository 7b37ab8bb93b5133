//! Revision chains across documents: idempotency (one document per upstream key and content hash)
//! and `supersedes` links (one root, each revision pointing at the previous head, no forks, no gaps).

use crate::guard::{Violation, ViolationCode};
use crate::model::{DocHead, UpstreamKey};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One document as the chain check sees it.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    pub head: DocHead,
    /// The store's revision number (1-based), when the source has one.
    pub revision: Option<i64>,
    /// Where the document was read from (file:line, row id), for reports.
    pub location: String,
}

/// A chain violation, attributed to one document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainViolation {
    pub location: String,
    pub id: String,
    pub violation: Violation,
}

/// Collects entries, then checks every upstream document's chain.
#[derive(Debug, Default)]
pub struct ChainChecker {
    groups: BTreeMap<UpstreamKey, Vec<ChainEntry>>,
    /// With `partial`, links may point outside the checked set (e.g. `--since` windows).
    partial: bool,
}

impl ChainChecker {
    pub fn new(partial: bool) -> Self {
        ChainChecker {
            groups: BTreeMap::new(),
            partial,
        }
    }

    pub fn push(&mut self, entry: ChainEntry) {
        self.groups
            .entry(entry.head.key.clone())
            .or_default()
            .push(entry);
    }

    /// Number of distinct upstream documents seen.
    pub fn upstream_documents(&self) -> usize {
        self.groups.len()
    }

    /// All violations, sorted by location.
    pub fn finish(self) -> Vec<ChainViolation> {
        let mut out = Vec::new();
        for (key, entries) in &self.groups {
            check_group(key, entries, self.partial, &mut out);
        }
        out.sort();
        out
    }
}

fn check_group(
    key: &UpstreamKey,
    entries: &[ChainEntry],
    partial: bool,
    out: &mut Vec<ChainViolation>,
) {
    let mut report = |e: &ChainEntry, path: &str, message: String| {
        out.push(ChainViolation {
            location: e.location.clone(),
            id: e.head.id.clone(),
            violation: Violation::new(ViolationCode::Idempotency, path, message),
        });
    };
    let upstream = format!("{}:{}", key.vendor, key.upstream_id);
    let mut by_hash: HashMap<&str, &ChainEntry> = HashMap::new();
    let mut ids: HashSet<&str> = HashSet::new();
    for e in entries {
        if let Some(first) = by_hash.insert(&e.head.content_hash, e) {
            report(
                e,
                "/upstream/content_hash",
                format!(
                    "{upstream} with hash {} written twice (also at {})",
                    e.head.content_hash, first.location
                ),
            );
        }
        if !ids.insert(&e.head.id) {
            report(e, "/_id", format!("_id {} appears twice", e.head.id));
        }
    }
    let mut successors: HashMap<&str, &ChainEntry> = HashMap::new();
    let mut roots = 0;
    for e in entries {
        match &e.head.supersedes {
            None => roots += 1,
            Some(prev) => {
                if !ids.contains(prev.as_str()) && !partial {
                    report(
                        e,
                        "/supersedes",
                        format!("supersedes {prev}, which is not a stored revision of {upstream}"),
                    );
                }
                if let Some(other) = successors.insert(prev, e) {
                    report(
                        e,
                        "/supersedes",
                        format!(
                            "fork: {prev} is superseded by both {} and {}",
                            other.head.id, e.head.id
                        ),
                    );
                }
            }
        }
    }
    if !partial && roots != 1 {
        let first = &entries[0];
        report(
            first,
            "/supersedes",
            format!(
                "{upstream} has {roots} first revisions (supersedes null); exactly one expected"
            ),
        );
    }
    // With store revision numbers: 1..n without gaps, each linking to the one before.
    let mut numbered: Vec<&ChainEntry> = entries.iter().filter(|e| e.revision.is_some()).collect();
    numbered.sort_by_key(|e| e.revision);
    for (i, e) in numbered.iter().enumerate() {
        let rev = e.revision.unwrap_or_default();
        if i > 0 {
            let prev = numbered[i - 1];
            if rev != prev.revision.unwrap_or_default() + 1 {
                report(
                    e,
                    "/supersedes",
                    format!(
                        "revision {rev} of {upstream} follows revision {}: gap",
                        prev.revision.unwrap_or_default()
                    ),
                );
            } else if e.head.supersedes.as_deref() != Some(prev.head.id.as_str()) {
                report(
                    e,
                    "/supersedes",
                    format!(
                        "revision {rev} of {upstream} must supersede {}",
                        prev.head.id
                    ),
                );
            }
        } else if !partial && (rev != 1 || e.head.supersedes.is_some()) {
            report(
                e,
                "/supersedes",
                format!(
                    "first stored revision of {upstream} is {rev} and supersedes {:?}",
                    e.head.supersedes
                ),
            );
        }
    }
}
