//! OSV and CSAF 2.0 mapping over arbitrary JSON: `map_document` returns a raw document or a
//! `MapError`, never panics; a mapped document hashes its untouched upstream document and passes
//! the guard (mapping never writes what the guard refuses).
#![no_main]

use aoc_contract::{content_hash, map_document, Guard, GuardOptions, MapContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let ctx = MapContext {
        tenant: "fuzz".into(),
        vendor: None,
        connector_version: "0.0.0".into(),
        retrieved_at: "2026-01-01T00:00:00Z".into(),
        ingested_at: "2026-01-01T00:00:00Z".into(),
    };
    let expected_hash = content_hash(&raw);
    let mut buf = Vec::new();
    let Ok(doc) = map_document(raw, &ctx, &mut buf) else {
        return;
    };
    let value = doc.into_value();
    assert_eq!(value["upstream"]["content_hash"], expected_hash.as_str());
    let violations = Guard::new(GuardOptions::default()).check_fresh(&value);
    assert!(violations.is_empty(), "{violations:?}");
});
