//! The verifier's Sigstore bundle parsing over arbitrary bytes: both bundle kinds against the dev
//! public key must return an error (or, for a real bundle, verify), never panic.
#![no_main]

use aoc_sigstore::PublicKey;
use aoc_sigstore::{
    parse_statement, policy::dev_public_key, verify_dsse_bundle, verify_message_bundle,
    Sha256Digest,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(dev_public_key);
    let digest = Sha256Digest(*b"0123456789abcdef0123456789abcdef");
    let _ = verify_message_bundle(data, &digest, key);
    let _ = verify_dsse_bundle(data, key);
    // The in-toto statement reader runs on verified payloads only; fuzz it directly as well.
    let _ = parse_statement(data);
});
