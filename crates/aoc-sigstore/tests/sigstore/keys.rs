//! Cosign key format: generation, encryption round trips, the error for each kind of bad key, and
//! the committed dev key pair.

use aoc_sigstore::key::{COSIGN_PRIVATE_KEY_LABEL, SIGSTORE_PRIVATE_KEY_LABEL};
use aoc_sigstore::{generate_key_pair, KeyError, PublicKey, Signer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::repo_root;

/// The JSON inside an encrypted key PEM.
fn key_json(pem: &str) -> Value {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    serde_json::from_slice(&STANDARD.decode(body).unwrap()).unwrap()
}

fn wrap_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Encrypts arbitrary plaintext the way cosign does, independently of the crate's writer, with a
/// cheap scrypt cost (N=1024) so the test stays fast.
fn cosign_envelope(plaintext: &[u8], password: &[u8], kdf: &str, cipher: &str) -> String {
    let salt = [7u8; 32];
    let nonce = [9u8; 24];
    let mut key = [0u8; 32];
    scrypt::scrypt(
        password,
        &salt,
        &scrypt::Params::new(10, 8, 1, 32).unwrap(),
        &mut key,
    )
    .unwrap();
    let ciphertext = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), plaintext)
        .unwrap();
    let json = json!({
        "kdf": {"name": kdf, "params": {"N": 1024, "r": 8, "p": 1}, "salt": STANDARD.encode(salt)},
        "cipher": {"name": cipher, "nonce": STANDARD.encode(nonce)},
        "ciphertext": STANDARD.encode(ciphertext),
    });
    wrap_pem(
        SIGSTORE_PRIVATE_KEY_LABEL,
        &serde_json::to_vec(&json).unwrap(),
    )
}

#[test]
fn generated_key_pair_decrypts_to_the_same_public_key() {
    let (private_pem, public_pem) = generate_key_pair(b"hunter2").unwrap();
    assert!(private_pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(public_pem.ends_with("-----END PUBLIC KEY-----\n"));
    assert!(!private_pem.contains('\r') && !public_pem.contains('\r'));

    let signer = Signer::from_cosign_pem(&private_pem, b"hunter2", "test.key").unwrap();
    assert_eq!(signer.public_key().to_pem(), public_pem);
    let public = PublicKey::from_pem(&public_pem, "test.pub").unwrap();
    assert_eq!(&public, signer.public_key());
}

#[test]
fn written_key_uses_cosign_kdf_and_cipher_parameters() {
    let (private_pem, _) = generate_key_pair(b"pw").unwrap();
    let json = key_json(&private_pem);
    assert_eq!(json["kdf"]["name"], "scrypt");
    assert_eq!(json["kdf"]["params"], json!({"N": 65536, "r": 8, "p": 1}));
    assert_eq!(
        STANDARD
            .decode(json["kdf"]["salt"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    assert_eq!(
        STANDARD
            .decode(json["cipher"]["nonce"].as_str().unwrap())
            .unwrap()
            .len(),
        24
    );
    // Key order as cosign's Go struct marshals it.
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["kdf", "cipher", "ciphertext"]);
}

#[test]
fn key_id_is_base64_sha256_of_spki_der() {
    let signer = Signer::generate();
    let der = signer.public_key().spki_der().to_vec();
    assert_eq!(der.len(), 91, "P-256 SPKI DER is 91 bytes");
    assert_eq!(signer.key_id(), STANDARD.encode(Sha256::digest(&der)));
}

#[test]
fn wrong_password_names_the_key_and_the_cause() {
    let (private_pem, _) = generate_key_pair(b"right").unwrap();
    let err = Signer::from_cosign_pem(&private_pem, b"wrong", "/keys/release.key").unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("wrong password for cosign key /keys/release.key"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn key_with_scrypt_n_32768_loads() {
    let signer = Signer::generate();
    let pem = signer
        .to_cosign_pem_with(b"pw", 32768, &[1; 32], &[2; 24])
        .unwrap();
    assert_eq!(key_json(&pem)["kdf"]["params"]["N"], 32768);
    let loaded = Signer::from_cosign_pem(&pem, b"pw", "n32768.key").unwrap();
    assert_eq!(loaded.key_id(), signer.key_id());
}

#[test]
fn legacy_encrypted_cosign_private_key_label_loads() {
    let signer = Signer::generate();
    let pem = signer
        .to_cosign_pem(b"pw")
        .unwrap()
        .replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
    assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"));
    let loaded = Signer::from_cosign_pem(&pem, b"pw", "legacy.key").unwrap();
    assert_eq!(loaded.key_id(), signer.key_id());
}

#[test]
fn crlf_key_file_loads() {
    let signer = Signer::generate();
    let pem = signer.to_cosign_pem(b"pw").unwrap().replace('\n', "\r\n");
    assert_eq!(
        Signer::from_cosign_pem(&pem, b"pw", "crlf.key")
            .unwrap()
            .key_id(),
        signer.key_id()
    );
}

#[test]
fn envelope_written_independently_loads() {
    // PKCS#8 of a P-256 key, encrypted by this test's own scrypt + secretbox code: the reader
    // does not depend on the writer's quirks.
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let pem = cosign_envelope(der.as_bytes(), b"pw", "scrypt", "nacl/secretbox");
    let signer = Signer::from_cosign_pem(&pem, b"pw", "independent.key").unwrap();
    use p256::pkcs8::EncodePublicKey;
    assert_eq!(
        signer.public_key().spki_der(),
        key.verifying_key().to_public_key_der().unwrap().as_bytes()
    );
}

#[test]
fn public_key_pem_is_not_a_cosign_private_key() {
    let (_, public_pem) = generate_key_pair(b"pw").unwrap();
    let err = Signer::from_cosign_pem(&public_pem, b"pw", "cosign.pub").unwrap_err();
    assert!(matches!(err, KeyError::NotCosignKey { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cosign.pub is not a cosign private key: PEM label is \"PUBLIC KEY\""),
        "{err}"
    );

    let err = Signer::from_cosign_pem("hello", b"pw", "notes.txt").unwrap_err();
    assert!(matches!(err, KeyError::NotCosignKey { .. }), "{err:?}");

    let garbage = wrap_pem(SIGSTORE_PRIVATE_KEY_LABEL, b"not json");
    let err = Signer::from_cosign_pem(&garbage, b"pw", "garbage.key").unwrap_err();
    assert!(err.to_string().contains("not cosign's key JSON"), "{err}");
}

#[test]
fn unsupported_kdf_and_cipher_are_named() {
    let pem = cosign_envelope(b"x", b"pw", "argon2id", "nacl/secretbox");
    let err = Signer::from_cosign_pem(&pem, b"pw", "k").unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedKdf { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cosign key k uses an unsupported KDF: argon2id (only scrypt is supported)"
    );

    let pem = cosign_envelope(b"x", b"pw", "scrypt", "aes-256-gcm");
    let err = Signer::from_cosign_pem(&pem, b"pw", "k").unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedCipher { .. }), "{err:?}");
    assert!(err.to_string().contains("aes-256-gcm"), "{err}");
}

#[test]
fn ed25519_key_is_an_unsupported_key_type() {
    // RFC 8410 PKCS#8 wrapping of a 32-byte Ed25519 seed (cosign import-key-pair accepts these).
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&[5u8; 32]);
    let pem = cosign_envelope(&der, b"pw", "scrypt", "nacl/secretbox");
    let err = Signer::from_cosign_pem(&pem, b"pw", "ed.key").unwrap_err();
    assert!(
        matches!(err, KeyError::UnsupportedKeyType { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cosign key ed.key holds an unsupported key type: Ed25519 (only ECDSA P-256 is supported)"
    );
}

#[test]
fn non_pkcs8_plaintext_is_an_unsupported_key_type() {
    let pem = cosign_envelope(b"definitely not DER", b"pw", "scrypt", "nacl/secretbox");
    let err = Signer::from_cosign_pem(&pem, b"pw", "odd.key").unwrap_err();
    assert!(
        matches!(err, KeyError::UnsupportedKeyType { .. }),
        "{err:?}"
    );
}

#[test]
fn committed_dev_key_pair_matches_and_uses_the_documented_password() {
    let root = repo_root();
    let private_pem = std::fs::read_to_string(root.join("tools/cosign/cosign.dev.key")).unwrap();
    let public_pem = std::fs::read_to_string(root.join("tools/cosign/cosign.dev.pub")).unwrap();
    let signer = Signer::from_cosign_pem(&private_pem, b"stellaops-dev", "dev").unwrap();
    assert_eq!(signer.public_key().to_pem(), public_pem);
    assert_eq!(key_json(&private_pem)["kdf"]["params"]["N"], 65536);
    assert!(aoc_sigstore::policy::is_dev_key(signer.public_key()));
    assert!(std::fs::read_to_string(root.join("tools/cosign/README.md"))
        .unwrap()
        .contains("never for production"));
}

#[test]
fn public_key_reader_rejects_other_labels() {
    let err = PublicKey::from_pem(&wrap_pem("CERTIFICATE", b"\x30\x00"), "cert.pem").unwrap_err();
    assert!(matches!(err, KeyError::BadPublicKey { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("cert.pem is not a usable public key"));
}
