//! RFC 8785 canonical JSON over arbitrary JSON values: never panics, the canonical form parses
//! back to a value whose canonical form is the same bytes (a fixed point), and the content hash
//! is `sha256:` and 64 lowercase hex digits.
#![no_main]

use aoc_contract::canonical::{content_hash, is_content_hash, to_canonical_vec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let canonical = to_canonical_vec(&value);
    let again: serde_json::Value =
        serde_json::from_slice(&canonical).expect("canonical JSON is JSON");
    assert_eq!(to_canonical_vec(&again), canonical, "canonical form is a fixed point");
    assert!(is_content_hash(&content_hash(&value)));
});
