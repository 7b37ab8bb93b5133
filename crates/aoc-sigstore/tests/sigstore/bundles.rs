//! Sigstore bundle v0.3: exact layout, determinism (golden files), and each way verification fails.

use crate::{data, ARTEFACT};
use aoc_sigstore::dsse::pae;
use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, parse_statement, statement_json, verify_dsse_bundle,
    verify_message_bundle, BundleError, PublicKey, Sha256Digest, Signer, Subject,
    IN_TOTO_PAYLOAD_TYPE,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// The committed test key (tests/data/fixture.key, password `test-password`).
fn fixture_signer() -> Signer {
    let pem = std::fs::read_to_string(data("fixture.key")).unwrap();
    Signer::from_cosign_pem(&pem, b"test-password", "fixture.key").unwrap()
}

fn fixture_public() -> PublicKey {
    PublicKey::from_pem(
        &std::fs::read_to_string(data("fixture.pub")).unwrap(),
        "fixture.pub",
    )
    .unwrap()
}

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::of(bytes)
}

fn statement() -> Vec<u8> {
    statement_json(
        &[
            Subject {
                name: "aoc-backfill-runner.tar.gz".into(),
                sha256: sha256(ARTEFACT),
            },
            Subject {
                name: "SHA256SUMS".into(),
                sha256: sha256(b"sums"),
            },
        ],
        "https://slsa.dev/provenance/v1",
        &json!({"buildDefinition": {"buildType": "https://example.invalid/aoc-release@v1"}}),
    )
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it on purpose.
fn assert_golden(name: &str, actual: &str) {
    let path = data(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; UPDATE_GOLDEN=1 if intended"
    );
}

#[test]
fn message_bundle_has_the_v03_layout() {
    let signer = fixture_signer();
    let text = message_signature_bundle(&signer, &sha256(ARTEFACT));
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(
        v["verificationMaterial"]["publicKey"]["hint"],
        signer.key_id()
    );
    let material: Vec<&String> = v["verificationMaterial"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        material,
        ["publicKey"],
        "no tlogEntries: an offline key signature has none"
    );
    assert_eq!(
        v["messageSignature"]["messageDigest"]["algorithm"],
        "SHA2_256"
    );
    assert_eq!(
        v["messageSignature"]["messageDigest"]["digest"],
        STANDARD.encode(sha256(ARTEFACT))
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["mediaType", "verificationMaterial", "messageSignature"]
    );
    // The signature is plain ECDSA-SHA256 over the artefact bytes (prehash = their digest).
    let sig = STANDARD
        .decode(v["messageSignature"]["signature"].as_str().unwrap())
        .unwrap();
    use p256::ecdsa::signature::Verifier;
    let vk =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&signer.public_key().spki_der()[26..]).unwrap();
    vk.verify(ARTEFACT, &p256::ecdsa::Signature::from_der(&sig).unwrap())
        .unwrap();
}

#[test]
fn dsse_bundle_has_the_v03_layout_and_signs_the_pae() {
    let signer = fixture_signer();
    let payload = statement();
    let text = dsse_bundle(&signer, IN_TOTO_PAYLOAD_TYPE, &payload);
    let v: Value = serde_json::from_str(&text).unwrap();
    let env = &v["dsseEnvelope"];
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(
        STANDARD.decode(env["payload"].as_str().unwrap()).unwrap(),
        payload
    );
    assert_eq!(env["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(env["signatures"][0]["keyid"], signer.key_id());
    let sig = STANDARD
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    assert!(signer
        .public_key()
        .verify(&pae(IN_TOTO_PAYLOAD_TYPE, &payload), &sig));
    assert!(
        !signer.public_key().verify(&payload, &sig),
        "must sign the PAE, not the payload"
    );
}

#[test]
fn bundles_are_byte_identical_across_runs_and_key_reloads() {
    let digest = sha256(ARTEFACT);
    let first = message_signature_bundle(&fixture_signer(), &digest);
    let second = message_signature_bundle(&fixture_signer(), &digest);
    assert_eq!(first, second);
    let payload = statement();
    assert_eq!(
        dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &payload),
        dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &payload)
    );
}

#[test]
fn bundles_match_golden_files() {
    // RFC 6979 makes signatures a pure function of key and input: these bytes must never drift.
    let signer = fixture_signer();
    assert_golden(
        "message.sigstore.json",
        &message_signature_bundle(&signer, &sha256(ARTEFACT)),
    );
    assert_golden(
        "provenance.sigstore.json",
        &dsse_bundle(&signer, IN_TOTO_PAYLOAD_TYPE, &statement()),
    );
}

#[test]
fn message_bundle_verifies_for_its_artefact() {
    let bundle = message_signature_bundle(&fixture_signer(), &sha256(ARTEFACT));
    verify_message_bundle(bundle.as_bytes(), &sha256(ARTEFACT), &fixture_public()).unwrap();
}

#[test]
fn flipped_artefact_byte_is_a_digest_mismatch() {
    let bundle = message_signature_bundle(&fixture_signer(), &sha256(ARTEFACT));
    let mut tampered = ARTEFACT.to_vec();
    tampered[3] ^= 0x01;
    let err = verify_message_bundle(bundle.as_bytes(), &sha256(&tampered), &fixture_public())
        .unwrap_err();
    assert!(matches!(err, BundleError::DigestMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("bundle is for another artefact"),
        "{err}"
    );
}

#[test]
fn other_key_is_a_wrong_key_error() {
    let bundle = message_signature_bundle(&fixture_signer(), &sha256(ARTEFACT));
    let other = Signer::generate();
    let err = verify_message_bundle(bundle.as_bytes(), &sha256(ARTEFACT), other.public_key())
        .unwrap_err();
    assert!(matches!(err, BundleError::WrongKey { .. }), "{err:?}");

    let dsse = dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &statement());
    let err = verify_dsse_bundle(dsse.as_bytes(), other.public_key()).unwrap_err();
    assert!(matches!(err, BundleError::WrongKey { .. }), "{err:?}");
}

#[test]
fn other_key_without_hints_is_a_bad_signature() {
    let other = Signer::generate();
    let mut v: Value = serde_json::from_str(&message_signature_bundle(
        &fixture_signer(),
        &sha256(ARTEFACT),
    ))
    .unwrap();
    v["verificationMaterial"]["publicKey"]["hint"] = json!("");
    let err = verify_message_bundle(
        v.to_string().as_bytes(),
        &sha256(ARTEFACT),
        other.public_key(),
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::BadSignature), "{err:?}");
}

#[test]
fn rewritten_digest_with_old_signature_is_a_bad_signature() {
    // An attacker who swaps the digest to match another artefact cannot re-sign it.
    let other_artefact = b"evil";
    let mut v: Value = serde_json::from_str(&message_signature_bundle(
        &fixture_signer(),
        &sha256(ARTEFACT),
    ))
    .unwrap();
    v["messageSignature"]["messageDigest"]["digest"] =
        json!(STANDARD.encode(sha256(other_artefact)));
    let err = verify_message_bundle(
        v.to_string().as_bytes(),
        &sha256(other_artefact),
        &fixture_public(),
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::BadSignature), "{err:?}");
}

#[test]
fn dsse_bundle_verifies_and_returns_the_statement() {
    let bundle = dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &statement());
    let verified = verify_dsse_bundle(bundle.as_bytes(), &fixture_public()).unwrap();
    assert_eq!(verified.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(verified.payload, statement());
    let parsed = parse_statement(&verified.payload).unwrap();
    assert_eq!(parsed.subjects.len(), 2);
    assert_eq!(parsed.subjects[0].name, "aoc-backfill-runner.tar.gz");
    assert_eq!(parsed.subjects[0].sha256, sha256(ARTEFACT));
}

#[test]
fn tampered_dsse_payload_or_type_is_a_bad_signature() {
    let bundle = dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &statement());
    let original: Value = serde_json::from_str(&bundle).unwrap();

    let mut payload = statement();
    payload[20] ^= 0x20;
    let mut v = original.clone();
    v["dsseEnvelope"]["payload"] = json!(STANDARD.encode(&payload));
    let err = verify_dsse_bundle(v.to_string().as_bytes(), &fixture_public()).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature), "{err:?}");

    let mut v = original;
    v["dsseEnvelope"]["payloadType"] = json!("application/json");
    let err = verify_dsse_bundle(v.to_string().as_bytes(), &fixture_public()).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature), "{err:?}");
}

#[test]
fn malformed_bundles_say_what_is_wrong() {
    let key = fixture_public();
    let digest = sha256(ARTEFACT);
    let message = message_signature_bundle(&fixture_signer(), &digest);
    let dsse = dsse_bundle(&fixture_signer(), IN_TOTO_PAYLOAD_TYPE, &statement());

    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not bundle JSON"),
        (
            message.replace("bundle.v0.3+json", "other+json"),
            "is not a Sigstore bundle",
        ),
        (dsse.clone(), "expected a messageSignature"),
        (
            message.replace("SHA2_256", "SHA2_512"),
            "only SHA2_256 is supported",
        ),
        (
            json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                   "verificationMaterial": {"certificate": {"rawBytes": "AA=="}},
                   "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": ""}, "signature": ""}})
            .to_string(),
            "only key-based bundles are supported",
        ),
    ];
    for (bundle, expected) in cases {
        let err = verify_message_bundle(bundle.as_bytes(), &digest, &key).unwrap_err();
        assert!(matches!(err, BundleError::Malformed(_)), "{err:?}");
        assert!(
            err.to_string().contains(expected),
            "{err} should contain {expected}"
        );
    }

    let err = verify_dsse_bundle(message.as_bytes(), &key).unwrap_err();
    assert!(err.to_string().contains("expected a dsseEnvelope"), "{err}");

    let mut v: Value = serde_json::from_str(&dsse).unwrap();
    let sig = v["dsseEnvelope"]["signatures"][0].clone();
    v["dsseEnvelope"]["signatures"] = json!([sig.clone(), sig]);
    let err = verify_dsse_bundle(v.to_string().as_bytes(), &key).unwrap_err();
    assert!(err.to_string().contains("expected exactly 1"), "{err}");
}

#[test]
fn bundle_with_an_empty_tlog_entries_list_still_verifies() {
    // Readers must accept what other writers emit: some spell out `"tlogEntries": []`.
    let mut v: Value = serde_json::from_str(&message_signature_bundle(
        &fixture_signer(),
        &sha256(ARTEFACT),
    ))
    .unwrap();
    v["verificationMaterial"]["tlogEntries"] = json!([]);
    verify_message_bundle(
        v.to_string().as_bytes(),
        &sha256(ARTEFACT),
        &fixture_public(),
    )
    .unwrap();
}
