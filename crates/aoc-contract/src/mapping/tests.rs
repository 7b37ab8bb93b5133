//! Mapping OSV and CSAF 2.0 documents: identifiers, join hints and the JSON Pointers they came
//! from, on real and hand-made documents.

use super::*;
use serde_json::json;

fn ctx() -> MapContext {
    MapContext {
        tenant: "acme".into(),
        vendor: None,
        connector_version: "0.1.0".into(),
        retrieved_at: "2026-01-01T00:00:00Z".into(),
        ingested_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[test]
fn osv_identifiers_are_kept_as_given_with_pointers() {
    let raw = json!({
        "id": "GHSA-xxxx-yyyy-zzzz", "modified": "2024-01-01T00:00:00Z",
        "aliases": [" CVE-2024-0001 ", "CVE-2024-0001", "PYSEC-2024-1"],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "x", "purl": "pkg:pypi/x"}}],
        "references": [{"type": "WEB", "url": "https://example.org/a"}]
    });
    let doc = map_document(raw, &ctx(), &mut Vec::new()).unwrap();
    assert_eq!(doc.source.vendor, "ghsa");
    assert_eq!(doc.identifiers.ghsa, ["GHSA-xxxx-yyyy-zzzz"]);
    assert_eq!(
        doc.identifiers.cve,
        ["CVE-2024-0001", "CVE-2024-0001"],
        "duplicates kept, whitespace trimmed"
    );
    assert_eq!(
        doc.identifiers.aliases,
        ["CVE-2024-0001", "CVE-2024-0001", "PYSEC-2024-1"]
    );
    assert_eq!(doc.linkset.purls, ["pkg:pypi/x"]);
    assert_eq!(
        doc.linkset.reconciled_from,
        [
            "/aliases/0",
            "/aliases/1",
            "/aliases/2",
            "/affected/0/package/purl",
            "/references/0/url"
        ]
    );
    for ptr in &doc.linkset.reconciled_from {
        assert!(doc.raw.pointer(ptr).is_some(), "{ptr} resolves into raw");
    }
}

#[test]
fn unknown_shapes_are_refused() {
    assert_eq!(
        map_document(json!({"hello": 1}), &ctx(), &mut Vec::new()),
        Err(MapError::UnknownFormat)
    );
    assert_eq!(
        map_document(json!([1]), &ctx(), &mut Vec::new()),
        Err(MapError::NotAnObject)
    );
    let no_id = json!({"document": {"csaf_version": "2.0", "tracking": {}}});
    assert_eq!(
        map_document(no_id, &ctx(), &mut Vec::new()),
        Err(MapError::MissingUpstreamId("/document/tracking/id"))
    );
    // No vendor given and none to derive: an OSV id without a prefix (found by the
    // osv_csaf_mapping fuzz target), a CSAF publisher whose name is blank.
    let no_prefix = json!({"id": "-2O0G21-0113", "modified": "0001-01-01T00:00:00Z"});
    assert_eq!(
        map_document(no_prefix.clone(), &ctx(), &mut Vec::new()),
        Err(MapError::MissingVendor("-2O0G21-0113".into()))
    );
    let blank_publisher = json!({"document": {"csaf_version": "2.0",
        "tracking": {"id": "X-1"}, "publisher": {"name": " "}}});
    assert!(matches!(
        map_document(blank_publisher, &ctx(), &mut Vec::new()),
        Err(MapError::MissingVendor(_))
    ));
    // A vendor given by the caller is used instead.
    let given = MapContext {
        vendor: Some("go".into()),
        ..ctx()
    };
    assert!(map_document(no_prefix, &given, &mut Vec::new()).is_ok());
}

#[test]
fn explicit_vendor_wins_and_id_embeds_it() {
    let raw = json!({"id": "RUSTSEC-2020-0001", "modified": "2024-01-01T00:00:00Z"});
    let mut c = ctx();
    c.vendor = Some("osv".into());
    let doc = map_document(raw, &c, &mut Vec::new()).unwrap();
    assert!(
        doc.id.starts_with("advisory_raw:osv:RUSTSEC-2020-0001:"),
        "{}",
        doc.id
    );
    assert_eq!(
        doc.id.len(),
        "advisory_raw:osv:RUSTSEC-2020-0001:".len() + 16
    );
}
