//! Verification of stored rows (`stella aoc verify --store`): each row's JSON must parse, agree
//! with the row's columns and hash to its content hash (else ERR_AOC_005: changed behind the
//! store's back), pass the guard, and each upstream document's revisions must form one chain
//! 1..n where every revision supersedes the one before (ERR_AOC_003).

use crate::row::{ScanFilter, StoredRow};
use crate::{Result, Store};
use aoc_contract::canonical::content_hash_with;
use aoc_contract::chain::{ChainChecker, ChainEntry, ChainViolation};
use aoc_contract::{DocHead, Guard, GuardOptions, UpstreamKey, Violation, ViolationCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Run the AOC guard on every document too; `None` checks only storage integrity and chains.
    pub guard: Option<GuardOptions>,
    /// Rows are a window (e.g. `--since`): links to revisions outside it are not violations.
    pub partial: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            // The verifier recomputes the hash itself (and compares it with the column too).
            guard: Some(GuardOptions {
                verify_hash: false,
                ..GuardOptions::default()
            }),
            partial: false,
        }
    }
}

/// The result of [`verify_store`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub rows: u64,
    pub upstream_documents: u64,
    /// In scan order (tenant, vendor, upstream id, revision); chain violations of an upstream
    /// document follow its rows.
    pub violations: Vec<ChainViolation>,
    /// Append-only triggers that are missing or disabled: the store no longer enforces the
    /// contract, even if every row is still intact.
    pub missing_guards: Vec<String>,
}

impl VerifyReport {
    /// No violation and every append-only trigger in place.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.missing_guards.is_empty()
    }
}

/// Checks rows one at a time, in scan order, keeping only the current upstream document's chain
/// in memory.
pub struct StoreVerifier {
    options: VerifyOptions,
    guard: Option<Guard>,
    buf: Vec<u8>,
    group: Option<(UpstreamKey, ChainChecker)>,
    rows: u64,
    upstream_documents: u64,
}

impl StoreVerifier {
    pub fn new(options: VerifyOptions) -> Self {
        StoreVerifier {
            options,
            guard: options.guard.map(Guard::new),
            buf: Vec::with_capacity(16 * 1024),
            group: None,
            rows: 0,
            upstream_documents: 0,
        }
    }

    /// Checks one row (rows must come in scan order) and returns its violations, followed by the
    /// chain violations of the previous upstream document when this row starts a new one.
    pub fn check_row(&mut self, row: &StoredRow) -> Vec<ChainViolation> {
        self.rows += 1;
        let key = UpstreamKey {
            tenant: row.tenant.clone(),
            vendor: row.vendor.clone(),
            upstream_id: row.upstream_id.clone(),
        };
        let mut out = Vec::new();
        if self.group.as_ref().is_some_and(|(k, _)| *k != key) {
            out.extend(self.finish_group());
        }
        let location = row.location();
        let mut found = Vec::new();
        let head = match serde_json::from_str::<Value>(&row.json) {
            Err(e) => {
                found.push(changed(
                    "",
                    format!("stored document is not valid JSON: {e}"),
                ));
                None
            }
            Ok(doc) => {
                let head = self.check_document(row, &doc, &mut found);
                if let Some(guard) = &mut self.guard {
                    found.extend(guard.check(&doc));
                }
                head
            }
        };
        out.extend(found.into_iter().map(|violation| ChainViolation {
            location: location.clone(),
            id: row.id.clone(),
            violation,
        }));
        // The chain is built from what the documents say; a column that disagrees was reported.
        let head = head.unwrap_or_else(|| DocHead {
            id: row.id.clone(),
            key: key.clone(),
            content_hash: row.content_hash.clone(),
            supersedes: row.supersedes.clone(),
        });
        let (_, chain) = self.group.get_or_insert_with(|| {
            self.upstream_documents += 1;
            (key, ChainChecker::new(self.options.partial))
        });
        chain.push(ChainEntry {
            head,
            revision: Some(row.revision),
            location,
        });
        out
    }

    /// Chain violations of the last upstream document, and the counts.
    pub fn finish(mut self) -> (Vec<ChainViolation>, u64, u64) {
        let last = self.finish_group();
        (last, self.rows, self.upstream_documents)
    }

    fn finish_group(&mut self) -> Vec<ChainViolation> {
        self.group
            .take()
            .map(|(_, chain)| chain.finish())
            .unwrap_or_default()
    }

    /// Columns against the document, and the document's hash against its content.
    fn check_document(
        &mut self,
        row: &StoredRow,
        doc: &Value,
        found: &mut Vec<Violation>,
    ) -> Option<DocHead> {
        let text = |ptr: &str| doc.pointer(ptr).and_then(Value::as_str);
        let columns: [(&str, &str, Option<&str>); 7] = [
            ("/_id", "id", Some(&row.id)),
            ("/tenant", "tenant", Some(&row.tenant)),
            ("/source/vendor", "vendor", Some(&row.vendor)),
            (
                "/upstream/upstream_id",
                "upstream_id",
                Some(&row.upstream_id),
            ),
            (
                "/upstream/content_hash",
                "content_hash",
                Some(&row.content_hash),
            ),
            ("/supersedes", "supersedes", row.supersedes.as_deref()),
            ("/ingested_at", "ingested_at", Some(&row.ingested_at)),
        ];
        for (ptr, column, value) in columns {
            if text(ptr) != value {
                found.push(changed(
                    ptr,
                    format!(
                        "column {column} is {value:?} but the stored document has {:?}",
                        text(ptr)
                    ),
                ));
            }
        }
        match (doc.pointer("/content/raw"), text("/upstream/content_hash")) {
            (Some(raw), Some(claimed)) => {
                let actual = content_hash_with(raw, &mut self.buf);
                if actual != claimed {
                    found.push(changed(
                        "/upstream/content_hash",
                        format!("content.raw hashes to {actual}, the document says {claimed}"),
                    ));
                }
            }
            _ => found.push(changed(
                "/content/raw",
                "stored document has no content.raw or upstream.content_hash".into(),
            )),
        }
        DocHead::from_value(doc)
    }
}

fn changed(path: &str, detail: String) -> Violation {
    Violation::new(
        ViolationCode::HashMismatch,
        path,
        format!("{detail}: the row was changed after it was written"),
    )
}

/// Verifies every row `filter` selects (a `since` window checks chains as partial) and whether
/// the append-only triggers are in place.
pub fn verify_store(
    store: &mut Store,
    filter: &ScanFilter,
    mut options: VerifyOptions,
) -> Result<VerifyReport> {
    options.partial |= filter.since.is_some();
    let mut verifier = StoreVerifier::new(options);
    let mut violations = Vec::new();
    store.scan(filter, |row| {
        violations.extend(verifier.check_row(&row));
        Ok(())
    })?;
    let (last, rows, upstream_documents) = verifier.finish();
    violations.extend(last);
    violations.extend(store.orphans()?.into_iter().map(|o| ChainViolation {
        location: o.location(),
        id: o.id,
        violation: changed(
            "/upstream/upstream_id",
            format!("upstream key {} names no upstream document", o.upstream),
        ),
    }));
    Ok(VerifyReport {
        rows,
        upstream_documents,
        violations,
        missing_guards: store.missing_guards()?,
    })
}
