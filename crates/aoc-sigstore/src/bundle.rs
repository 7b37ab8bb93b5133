//! Sigstore bundle v0.3 JSON for key-based signatures: writing `messageSignature` and
//! `dsseEnvelope` bundles deterministically, and verifying them against a public key offline.
//!
//! Layout follows sigstore/protobuf-specs `sigstore_bundle.proto` in its canonical JSON form (camelCase
//! names, bytes as standard base64), as `cosign sign-blob --key --bundle --new-bundle-format` writes.

use aoc_digest::Sha256Digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dsse::pae;
use crate::key::{PublicKey, Signer};

pub const BUNDLE_MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a bundle does not verify. Callers branch on the kind: a wrong key is a configuration
/// problem, a digest mismatch means the bundle belongs to another artefact, a bad signature means
/// tampering.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("malformed Sigstore bundle: {0}")]
    Malformed(String),
    #[error(
        "bundle was signed by another key: its key id is {bundle_key_id}, the given public key's is \
         {expected_key_id}"
    )]
    WrongKey {
        expected_key_id: String,
        bundle_key_id: String,
    },
    #[error(
        "bundle is for another artefact: it signs sha256 {bundle_sha256}, the artefact's is \
         {artefact_sha256}"
    )]
    DigestMismatch {
        artefact_sha256: String,
        bundle_sha256: String,
    },
    #[error("bundle signature does not verify with the given public key")]
    BadSignature,
}

/// A verified DSSE envelope's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPayload {
    pub payload_type: String,
    pub payload: Vec<u8>,
}

/// Bundle for an artefact given by its SHA-256, as `cosign sign-blob --key --bundle
/// --new-bundle-format` writes it: the signature is ECDSA over the digest (prehash). The output is
/// pretty JSON with a fixed key order and a trailing newline; same key + digest → same bytes.
pub fn message_signature_bundle(signer: &Signer, artefact_sha256: &Sha256Digest) -> String {
    let signature = signer.sign_sha256_prehash(artefact_sha256);
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE_V03,
        "verificationMaterial": verification_material(signer),
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": STANDARD.encode(artefact_sha256),
            },
            "signature": STANDARD.encode(signature),
        },
    });
    to_canonical_text(&bundle)
}

/// Bundle holding a DSSE envelope over `payload` (an in-toto statement for provenance); the
/// signature covers the PAE of type and payload. Deterministic like [`message_signature_bundle`].
pub fn dsse_bundle(signer: &Signer, payload_type: &str, payload: &[u8]) -> String {
    let signature = signer.sign(&pae(payload_type, payload));
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE_V03,
        "verificationMaterial": verification_material(signer),
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": payload_type,
            "signatures": [{
                "sig": STANDARD.encode(signature),
                "keyid": signer.key_id(),
            }],
        },
    });
    to_canonical_text(&bundle)
}

fn verification_material(signer: &Signer) -> Value {
    // No `tlogEntries`: these are offline key signatures with no log entry, and protobuf JSON
    // omits an empty list (cosign's own output has none). @sigstore/bundle 4 reads a missing list
    // as empty; verifiers then need a tlog threshold of 0 (`--insecure-ignore-tlog` in cosign).
    json!({
        "publicKey": {"hint": signer.key_id()},
    })
}

fn to_canonical_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawVerificationMaterial,
    message_signature: Option<RawMessageSignature>,
    dsse_envelope: Option<RawEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVerificationMaterial {
    public_key: Option<RawPublicKey>,
    certificate: Option<Value>,
    x509_certificate_chain: Option<Value>,
}

#[derive(Deserialize)]
struct RawPublicKey {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: RawDigest,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload: String,
    payload_type: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    sig: String,
    #[serde(default)]
    keyid: String,
}

fn parse(bundle_json: &[u8]) -> Result<RawBundle, BundleError> {
    let raw: RawBundle = serde_json::from_slice(bundle_json)
        .map_err(|e| BundleError::Malformed(format!("not bundle JSON: {e}")))?;
    // v0.1 and v0.2 bundles use the older `...bundle+json;version=0.x` form; both are accepted
    // because the key-based content is the same in every version.
    if !(raw
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle.v0.")
        || raw
            .media_type
            .starts_with("application/vnd.dev.sigstore.bundle+json;version=0."))
    {
        return Err(BundleError::Malformed(format!(
            "mediaType \"{}\" is not a Sigstore bundle",
            raw.media_type
        )));
    }
    let material = &raw.verification_material;
    if material.public_key.is_none()
        && (material.certificate.is_some() || material.x509_certificate_chain.is_some())
    {
        return Err(BundleError::Malformed(
            "bundle carries a certificate (keyless signing); only key-based bundles are supported"
                .into(),
        ));
    }
    Ok(raw)
}

fn check_key_id(hint: &str, key: &PublicKey) -> Result<(), BundleError> {
    // An empty hint says nothing about the key; the signature check below then decides.
    let expected = key.key_id();
    if !hint.is_empty() && hint != expected {
        return Err(BundleError::WrongKey {
            expected_key_id: expected,
            bundle_key_id: hint.to_string(),
        });
    }
    Ok(())
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, BundleError> {
    STANDARD
        .decode(text)
        .map_err(|e| BundleError::Malformed(format!("{field} is not base64: {e}")))
}

/// Verifies a `messageSignature` bundle for the artefact whose SHA-256 is `artefact_sha256`: the
/// key id matches, the bundle's digest is the artefact's, and the signature verifies.
pub fn verify_message_bundle(
    bundle_json: &[u8],
    artefact_sha256: &Sha256Digest,
    key: &PublicKey,
) -> Result<(), BundleError> {
    let raw = parse(bundle_json)?;
    let signed = raw.message_signature.ok_or_else(|| {
        BundleError::Malformed(if raw.dsse_envelope.is_some() {
            "bundle holds a dsseEnvelope, expected a messageSignature".into()
        } else {
            "bundle has no messageSignature".into()
        })
    })?;
    if let Some(pk) = &raw.verification_material.public_key {
        check_key_id(&pk.hint, key)?;
    }
    if signed.message_digest.algorithm != "SHA2_256" {
        return Err(BundleError::Malformed(format!(
            "messageDigest.algorithm is {}, only SHA2_256 is supported",
            signed.message_digest.algorithm
        )));
    }
    let digest = decode_b64("messageDigest.digest", &signed.message_digest.digest)?;
    if digest.as_slice() != artefact_sha256.as_ref() {
        return Err(BundleError::DigestMismatch {
            artefact_sha256: artefact_sha256.to_string(),
            // Any length a forged bundle carries, so not a digest type.
            bundle_sha256: hex::encode(&digest),
        });
    }
    let signature = decode_b64("messageSignature.signature", &signed.signature)?;
    if !key.verify_sha256_prehash(artefact_sha256, &signature) {
        return Err(BundleError::BadSignature);
    }
    Ok(())
}

/// Verifies a `dsseEnvelope` bundle (exactly one signature, over the PAE) and returns its payload.
pub fn verify_dsse_bundle(
    bundle_json: &[u8],
    key: &PublicKey,
) -> Result<VerifiedPayload, BundleError> {
    let raw = parse(bundle_json)?;
    let envelope = raw.dsse_envelope.ok_or_else(|| {
        BundleError::Malformed(if raw.message_signature.is_some() {
            "bundle holds a messageSignature, expected a dsseEnvelope".into()
        } else {
            "bundle has no dsseEnvelope".into()
        })
    })?;
    if let Some(pk) = &raw.verification_material.public_key {
        check_key_id(&pk.hint, key)?;
    }
    // The bundle spec allows exactly one DSSE signature (sigstore-js rejects any other count).
    let [signature] = envelope.signatures.as_slice() else {
        return Err(BundleError::Malformed(format!(
            "dsseEnvelope has {} signatures, expected exactly 1",
            envelope.signatures.len()
        )));
    };
    check_key_id(&signature.keyid, key)?;
    let payload = decode_b64("dsseEnvelope.payload", &envelope.payload)?;
    let sig = decode_b64("dsseEnvelope.signatures[0].sig", &signature.sig)?;
    if !key.verify(&pae(&envelope.payload_type, &payload), &sig) {
        return Err(BundleError::BadSignature);
    }
    Ok(VerifiedPayload {
        payload_type: envelope.payload_type,
        payload,
    })
}
