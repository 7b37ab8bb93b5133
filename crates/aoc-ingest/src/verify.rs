//! Verification of raw documents (`stella aoc verify`): the AOC guard and the revision chains,
//! over the records of any [`Source`](crate::Source) ([`DocumentVerifier`]) or over a store's rows
//! ([`verify_stored`], through [`aoc_store::verify_store`], which also checks each row against
//! its columns and recomputes its hash), into the one [`VerifyReport`]. Read-only.

use crate::input::{InputRecord, Item};
use crate::report::{zero_by_code, Finding, InputError, VerifyReport};
use aoc_contract::chain::{ChainChecker, ChainEntry, ChainViolation};
use aoc_contract::{clock, DocHead, Guard, GuardOptions};
use aoc_store::{ScanFilter, Store, StoreDoc, StoreError};
use serde_json::Value;
use std::time::Instant;

/// Which documents are checked: those of `tenant` (all: `None`) ingested at or after `since`
/// (as given, and in Unix seconds). A time window sees only part of each chain, so links into
/// older revisions are not violations.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tenant: Option<String>,
    pub since: Option<(String, i64)>,
}

/// Checks documents from any source, one at a time, and produces the report.
pub struct DocumentVerifier {
    guard: Guard,
    chains: ChainChecker,
    findings: Vec<Finding>,
    errors: Vec<InputError>,
    selection: Selection,
    checked: u64,
    skipped: u64,
    started: Instant,
}

impl DocumentVerifier {
    pub fn new(options: GuardOptions, selection: Selection) -> Self {
        DocumentVerifier {
            guard: Guard::new(options),
            chains: ChainChecker::new(selection.since.is_some()),
            findings: Vec::new(),
            errors: Vec::new(),
            selection,
            checked: 0,
            skipped: 0,
            started: Instant::now(),
        }
    }

    /// Checks one input record: a raw document, a record of a verified dataset, or an input
    /// error (unparsable, or not a raw document).
    pub fn add_record(&mut self, record: InputRecord) {
        match record.item.parse() {
            Item::Raw(doc) => self.add(record.location, &doc),
            Item::Verified(stored) => self.add_verified(record.location, &stored),
            Item::Broken(message) => self.add_error(record.location, message),
            Item::Json(_) => unreachable!("parse() classifies unparsed values"),
            Item::Upstream { .. } | Item::Deleted { .. } => self.add_error(
                record.location,
                "not a raw document (no `_id` and `content`): map it first with `stella sources ingest`".into(),
            ),
        }
    }

    /// Checks one raw document: the guard, then its revision chain.
    pub fn add(&mut self, location: String, doc: &Value) {
        let tenant = doc.get("tenant").and_then(Value::as_str);
        let at = doc
            .get("ingested_at")
            .and_then(Value::as_str)
            .and_then(clock::parse_rfc3339);
        if !self.selected(tenant, at) {
            return;
        }
        self.checked += 1;
        let id = doc.get("_id").and_then(Value::as_str).map(str::to_owned);
        for violation in self.guard.check(doc) {
            self.findings.push(Finding {
                location: location.clone(),
                id: id.clone(),
                violation,
            });
        }
        if let Some(head) = DocHead::from_value(doc) {
            self.chains.push(ChainEntry {
                head,
                revision: None,
                location,
            });
        }
    }

    /// A record of a dataset its reader has verified (guarded, and exactly as a store renders
    /// it): only its revision chain is followed here, from the fields it was read with.
    pub fn add_verified(&mut self, location: String, stored: &StoreDoc) {
        if !self.selected(Some(&stored.key().tenant), Some(stored.ingested_unix())) {
            return;
        }
        self.checked += 1;
        self.chains.push(ChainEntry {
            head: stored.head().clone(),
            revision: None,
            location,
        });
    }

    /// An input that could not be read as a document.
    pub fn add_error(&mut self, location: String, message: String) {
        self.errors.push(InputError { location, message });
    }

    /// Whether a document of `tenant`, ingested at `ingested_at` (Unix seconds), is in the
    /// selection; counts it as skipped when not.
    fn selected(&mut self, tenant: Option<&str>, ingested_at: Option<i64>) -> bool {
        let other_tenant = (self.selection.tenant.as_deref()).is_some_and(|t| tenant != Some(t));
        let too_old = (self.selection.since.as_ref())
            .is_some_and(|(_, cutoff)| ingested_at.is_some_and(|at| at < *cutoff));
        let selected = !other_tenant && !too_old;
        self.skipped += u64::from(!selected);
        selected
    }

    /// The report; `source` names what was read (`input:PATHS`).
    pub fn finish(self, source: String) -> VerifyReport {
        let upstream_documents = self.chains.upstream_documents() as u64;
        let mut findings = self.findings;
        findings.extend(self.chains.finish().into_iter().map(finding));
        new_report(
            source,
            self.selection,
            (self.checked, self.skipped, upstream_documents),
            findings,
            self.errors,
            self.started,
        )
    }
}

/// Every stored row the selection names re-checked (the guard with `options`, columns against
/// the document, content hash recomputed, revision chains), and the store's append-only
/// triggers; `source` names the store (`store:URL`, password redacted). Read-only.
pub fn verify_stored(
    store: &mut Store,
    source: String,
    options: GuardOptions,
    selection: Selection,
) -> Result<VerifyReport, StoreError> {
    let started = Instant::now();
    let filter = ScanFilter {
        tenant: selection.tenant.clone(),
        since: selection.since.as_ref().map(|(s, _)| s.clone()),
    };
    let options = aoc_store::VerifyOptions {
        // The store's verifier recomputes the hash itself (and compares it with the column too).
        guard: Some(GuardOptions {
            verify_hash: false,
            ..options
        }),
        partial: selection.since.is_some(),
    };
    let result = aoc_store::verify_store(store, &filter, options)?;
    let findings = result.violations.into_iter().map(finding).collect();
    let mut report = new_report(
        source,
        selection,
        (result.rows, 0, result.upstream_documents),
        findings,
        Vec::new(),
        started,
    );
    report.store_guards_missing = result.missing_guards;
    Ok(report)
}

fn finding(c: ChainViolation) -> Finding {
    Finding {
        location: c.location,
        id: Some(c.id),
        violation: c.violation,
    }
}

/// A report over `findings` (sorted, deduplicated, counted by code).
fn new_report(
    source: String,
    selection: Selection,
    (checked, skipped, upstream_documents): (u64, u64, u64),
    mut findings: Vec<Finding>,
    input_errors: Vec<InputError>,
    started: Instant,
) -> VerifyReport {
    findings.sort();
    findings.dedup();
    let mut by_code = zero_by_code();
    for f in &findings {
        *by_code
            .entry(f.violation.code.as_str().to_owned())
            .or_default() += 1;
    }
    let mut docs: Vec<&str> = findings.iter().map(|f| f.location.as_str()).collect();
    docs.dedup();
    VerifyReport {
        tool: "stella".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        source,
        tenant: selection.tenant,
        since: selection.since.map(|(s, _)| s),
        documents_checked: checked,
        documents_skipped: skipped,
        files_skipped: 0,
        upstream_documents,
        documents_with_violations: docs.len() as u64,
        violations_total: findings.len() as u64,
        by_code,
        violations: findings,
        input_errors,
        store_guards_missing: Vec::new(),
        duration_seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::{Prepared, Preparer};
    use crate::Source;
    use aoc_contract::{MapContext, ViolationCode};
    use std::path::Path;

    /// The raw documents of the OSV files in testdata/osv-rustsec, mapped and guarded as a
    /// backfill maps them, with their locations.
    fn raw_documents() -> Vec<(String, Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/osv-rustsec");
        let source = Source::open(&[dir], &[]).unwrap();
        let now = "2025-11-24T16:00:00Z".to_owned();
        let mut preparer = Preparer::new(
            MapContext {
                tenant: "acme".into(),
                vendor: None,
                connector_version: "test".into(),
                retrieved_at: now.clone(),
                ingested_at: now,
            },
            GuardOptions::default(),
        );
        source
            .map(|record| match preparer.prepare(record.unwrap()) {
                Prepared::Doc { location, doc } => (location, doc.into_value()),
                other => panic!("testdata does not map: {other:?}"),
            })
            .collect()
    }

    fn verify(docs: &[(String, Value)], selection: Selection) -> VerifyReport {
        let mut verifier = DocumentVerifier::new(GuardOptions::default(), selection);
        for (location, doc) in docs {
            verifier.add(location.clone(), doc);
        }
        verifier.finish("input:test".into())
    }

    #[test]
    fn intact_documents_pass_and_are_counted() {
        let docs = raw_documents();
        assert!(docs.len() >= 5, "{}", docs.len());
        let report = verify(&docs, Selection::default());
        assert!(report.passed(), "{:#?}", report.violations);
        assert_eq!(report.documents_checked, docs.len() as u64);
        assert_eq!(report.upstream_documents, docs.len() as u64);
        assert_eq!(report.documents_skipped, 0);
        assert!(report.by_code.values().all(|n| *n == 0));
    }

    #[test]
    fn a_changed_upstream_document_fails_on_its_hash_and_names_where_it_is() {
        let mut docs = raw_documents();
        docs[1].1["content"]["raw"]["summary"] = Value::from("rewritten after ingestion");
        let report = verify(&docs, Selection::default());
        assert!(!report.passed());
        assert_eq!(report.by_code[ViolationCode::HashMismatch.as_str()], 1);
        assert_eq!(report.documents_with_violations, 1);
        assert!(
            report.violations.iter().all(|f| f.location == docs[1].0),
            "{:#?}",
            report.violations
        );
    }

    #[test]
    fn documents_outside_the_selection_are_skipped_not_checked() {
        let docs = raw_documents();
        let other = Selection {
            tenant: Some("other".into()),
            since: None,
        };
        let report = verify(&docs, other);
        assert_eq!(
            (report.documents_checked, report.documents_skipped),
            (0, docs.len() as u64)
        );
        // Ingested before the window: skipped too.
        let later = Selection {
            tenant: None,
            since: Some(("2026-01-01T00:00:00Z".into(), 1_767_225_600)),
        };
        let report = verify(&docs, later);
        assert_eq!(report.documents_skipped, docs.len() as u64);
        assert_eq!(report.since.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn an_unreadable_record_or_an_upstream_document_is_an_input_error() {
        let mut verifier = DocumentVerifier::new(GuardOptions::default(), Selection::default());
        verifier.add_record(InputRecord {
            location: "feed.ndjson:3".into(),
            item: Item::Json(b"{not json".to_vec()),
        });
        verifier.add_record(InputRecord {
            location: "osv.json".into(),
            item: Item::Json(
                br#"{"id":"RUSTSEC-2099-0001","modified":"2025-01-01T00:00:00Z"}"#.to_vec(),
            ),
        });
        let report = verifier.finish("input:test".into());
        assert!(!report.passed());
        let errors: Vec<(&str, &str)> = report
            .input_errors
            .iter()
            .map(|e| (e.location.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, "feed.ndjson:3");
        assert!(errors[0].1.starts_with("invalid JSON"), "{errors:?}");
        assert!(errors[1].1.starts_with("not a raw document"), "{errors:?}");
        assert_eq!(report.documents_checked, 0);
    }
}
