//! Cosign-compatible keys, deterministic ECDSA P-256 signatures and Sigstore bundles v0.3.
//!
//! - [`key`]: cosign's encrypted private key PEM and SPKI public key, key ids, signing.
//! - [`policy`]: which key signs a release (production key from the environment, or the dev key).
//! - [`bundle`]: `messageSignature` and `dsseEnvelope` bundles, written and verified offline.
//! - [`dsse`] and [`intoto`]: the PAE and in-toto Statement v1 that provenance bundles carry.
//!
//! Signatures use RFC 6979 nonces, so the same key and input always give the same bundle bytes.

pub mod bundle;
pub mod dsse;
pub mod intoto;
pub mod key;
mod pem;
pub mod policy;

/// The digest type of bundle message digests and in-toto subjects, from the lowest crate.
pub use aoc_digest::Sha256Digest;
pub use bundle::{
    dsse_bundle, message_signature_bundle, verify_dsse_bundle, verify_message_bundle, BundleError,
    VerifiedPayload, BUNDLE_MEDIA_TYPE_V03, IN_TOTO_PAYLOAD_TYPE,
};
pub use intoto::{parse_statement, statement_json, Statement, Subject};
pub use key::{generate_key_pair, KeyError, PublicKey, Signer};
pub use policy::{select_signing_key, KeyDescription, KeySelectionError, SelectedKey};
