//! Cosign key files over arbitrary text: the SPKI public key reader and the encrypted private key
//! reader (PEM, cosign's key JSON, scrypt parameters bounded to 1 GiB, secretbox) return a key
//! or a `KeyError`, never panic; a public key that parses renders to PEM that parses to the same
//! key id.
#![no_main]

use aoc_sigstore::{PublicKey, Signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(public) = PublicKey::from_pem(&text, "fuzz") {
        let again = PublicKey::from_pem(&public.to_pem(), "fuzz").expect("rendered key re-parses");
        assert_eq!(again.key_id(), public.key_id());
    }
    // The dev key's password: a mutated dev key reaches the decryption, not only the parsing.
    let _ = Signer::from_cosign_pem(&text, b"stellaops-dev", "fuzz");
});
