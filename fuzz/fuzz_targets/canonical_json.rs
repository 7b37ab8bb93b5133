//! RFC 8785 canonical JSON over arbitrary JSON values: never panics, the canonical form parses
//! back to a value whose canonical form is the same bytes (a fixed point), and the content hash
//! is `sha256:` and 64 lowercase hex digits. The borrowed tree a verifier reads records with
//! parses exactly the texts a `Value` does (but refuses keys serde_json reserves) and, unless an
//! object repeats a key, is the same value with the same canonical form.
#![no_main]

use aoc_contract::canonical::{
    content_hash, is_content_hash, to_canonical_vec, write_canonical_tree,
};
use aoc_contract::tree::{Node, RESERVED_KEY_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = serde_json::from_slice::<serde_json::Value>(data);
    let node = Node::parse(data);
    // The node refuses keys serde_json reserves; otherwise the same texts parse.
    let reserved = data
        .windows(RESERVED_KEY_PREFIX.len())
        .any(|w| w == RESERVED_KEY_PREFIX.as_bytes());
    assert!(
        parsed.is_ok() == node.is_ok() || (reserved && node.is_err()),
        "the same texts parse"
    );
    let (Ok(value), Ok(node)) = (parsed, node) else {
        return;
    };
    let canonical = to_canonical_vec(&value);
    let again: serde_json::Value =
        serde_json::from_slice(&canonical).expect("canonical JSON is JSON");
    assert_eq!(
        to_canonical_vec(&again),
        canonical,
        "canonical form is a fixed point"
    );
    assert!(is_content_hash(&content_hash(&value)));
    assert_eq!(node.keys_unique(), node.to_value().is_some());
    let mut out = Vec::new();
    match node.to_value() {
        Some(v) => {
            assert_eq!(v, value, "the same value");
            assert!(write_canonical_tree(&node, &mut out), "no repeated key");
            assert_eq!(out, canonical, "the same canonical form");
        }
        None => assert!(!write_canonical_tree(&node, &mut out), "a repeated key"),
    }
});
