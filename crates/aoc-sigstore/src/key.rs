//! Cosign key pairs: the encrypted private-key PEM (scrypt + nacl/secretbox over PKCS#8), the SPKI
//! public key, the key id, and deterministic (RFC 6979) ECDSA P-256 signing.

use aoc_digest::Sha256Digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pem;

/// PEM label cosign writes since v2.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of keys written by cosign before v2; still read.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of the SPKI public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// scrypt cost cosign uses for new keys (go-securesystemslib `encrypted.Encrypt`).
const SCRYPT_N: u64 = 65536;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// Largest scrypt memory (128 * N * r bytes) we agree to spend on reading a key: cosign's own keys
/// need 64 MiB (N=65536) or 32 MiB (N=32768); 1 GiB stops a hostile key file from exhausting RAM.
const SCRYPT_MAX_MEMORY: u64 = 1 << 30;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";

/// Why a key could not be read or written. `key` names where it came from (a path, an env var).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "wrong password for cosign key {key}: the password does not decrypt it \
         (check COSIGN_PASSWORD)"
    )]
    WrongPassword { key: String },
    #[error("{key} is not a cosign private key: {reason}")]
    NotCosignKey { key: String, reason: String },
    #[error("cosign key {key} uses an unsupported KDF: {kdf} (only scrypt is supported)")]
    UnsupportedKdf { key: String, kdf: String },
    #[error(
        "cosign key {key} uses an unsupported cipher: {cipher} (only nacl/secretbox is supported)"
    )]
    UnsupportedCipher { key: String, cipher: String },
    #[error(
        "cosign key {key} holds an unsupported key type: {detail} (only ECDSA P-256 is supported)"
    )]
    UnsupportedKeyType { key: String, detail: String },
    #[error("{key} is not a usable public key: {reason}")]
    BadPublicKey { key: String, reason: String },
    #[error("could not encrypt the private key: {0}")]
    Encrypt(String),
}

/// The JSON inside an encrypted cosign key (go-securesystemslib `encrypted` package).
#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// An ECDSA P-256 public key, as cosign's `cosign.pub` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` (SPKI) PEM; `origin` names it in errors.
    pub fn from_pem(text: &str, origin: &str) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::BadPublicKey {
            key: origin.to_string(),
            reason,
        };
        let block = pem::decode(text).map_err(bad)?;
        if block.label != PUBLIC_KEY_LABEL {
            return Err(bad(format!(
                "PEM label is \"{}\", expected \"{PUBLIC_KEY_LABEL}\"",
                block.label
            )));
        }
        Self::from_spki_der(&block.der)
            .map_err(|e| bad(format!("not an ECDSA P-256 SPKI key ({e})")))
    }

    /// Reads an SPKI DER public key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, p256::pkcs8::spki::Error> {
        let key = VerifyingKey::from_public_key_der(der)?;
        Ok(Self::from_verifying_key(key))
    }

    fn from_verifying_key(key: VerifyingKey) -> Self {
        let spki_der = key
            .to_public_key_der()
            .expect("a valid P-256 point always encodes as SPKI")
            .as_bytes()
            .to_vec();
        Self { key, spki_der }
    }

    /// The SPKI PEM (`PUBLIC KEY`, LF line endings), byte-identical to what cosign writes.
    pub fn to_pem(&self) -> String {
        pem::encode(PUBLIC_KEY_LABEL, &self.spki_der)
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// base64(SHA-256(SPKI DER)): the bundle's `verificationMaterial.publicKey.hint` and DSSE keyid.
    pub fn key_id(&self) -> String {
        STANDARD.encode(Sha256::digest(&self.spki_der))
    }

    /// Checks a DER ECDSA signature over a SHA-256 digest (what `messageSignature` carries).
    pub fn verify_sha256_prehash(&self, digest: &Sha256Digest, der_signature: &[u8]) -> bool {
        Signature::from_der(der_signature)
            .map(|sig| self.key.verify_prehash(digest.as_bytes(), &sig).is_ok())
            .unwrap_or(false)
    }

    /// Checks a DER ECDSA-SHA256 signature over `message` (what a DSSE signature covers: the PAE).
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        Signature::from_der(der_signature)
            .map(|sig| self.key.verify(message, &sig).is_ok())
            .unwrap_or(false)
    }
}

/// An ECDSA P-256 private key that signs deterministically (RFC 6979): the same key and input always
/// give the same signature bytes, which keeps release kits reproducible.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh random key (OS randomness); only key generation is random.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::random(&mut OsRng))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let public = PublicKey::from_verifying_key(*key.verifying_key());
        Self { key, public }
    }

    /// Reads an encrypted cosign private key (`ENCRYPTED SIGSTORE PRIVATE KEY` or the older
    /// `ENCRYPTED COSIGN PRIVATE KEY`). `origin` names the key in errors (a path, `COSIGN_KEY_B64`).
    pub fn from_cosign_pem(text: &str, password: &[u8], origin: &str) -> Result<Self, KeyError> {
        let not_cosign = |reason: String| KeyError::NotCosignKey {
            key: origin.to_string(),
            reason,
        };
        let block = pem::decode(text).map_err(not_cosign)?;
        if block.label != SIGSTORE_PRIVATE_KEY_LABEL && block.label != COSIGN_PRIVATE_KEY_LABEL {
            return Err(not_cosign(format!(
                "PEM label is \"{}\", expected \"{SIGSTORE_PRIVATE_KEY_LABEL}\" or \
                 \"{COSIGN_PRIVATE_KEY_LABEL}\"",
                block.label
            )));
        }
        let envelope: EncryptedKey = serde_json::from_slice(&block.der)
            .map_err(|e| not_cosign(format!("the PEM body is not cosign's key JSON ({e})")))?;
        let plaintext = decrypt(&envelope, password, origin)?;
        Self::from_pkcs8_der(&plaintext, origin)
    }

    fn from_pkcs8_der(der: &[u8], origin: &str) -> Result<Self, KeyError> {
        let unsupported = |detail: String| KeyError::UnsupportedKeyType {
            key: origin.to_string(),
            detail,
        };
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| unsupported(format!("the decrypted key is not PKCS#8 ({e})")))?;
        let algorithm = info.algorithm.oid;
        if algorithm != p256::pkcs8::ObjectIdentifier::new_unwrap(OID_EC_PUBLIC_KEY) {
            return Err(unsupported(describe_algorithm(&algorithm.to_string())));
        }
        let curve = info
            .algorithm
            .parameters_oid()
            .map(|oid| oid.to_string())
            .unwrap_or_default();
        if curve != OID_P256 {
            return Err(unsupported(format!(
                "ECDSA on curve {}",
                describe_curve(&curve)
            )));
        }
        let key = SigningKey::from_pkcs8_der(der)
            .map_err(|e| unsupported(format!("invalid P-256 private key ({e})")))?;
        Ok(Self::from_signing_key(key))
    }

    /// Writes the key in cosign's format (`ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt N=65536 r=8
    /// p=1, random salt and nonce).
    pub fn to_cosign_pem(&self, password: &[u8]) -> Result<String, KeyError> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        self.to_cosign_pem_with(password, SCRYPT_N, &salt, &nonce)
    }

    /// [`Self::to_cosign_pem`] with explicit KDF cost, salt and nonce (tests, other cosign versions).
    pub fn to_cosign_pem_with(
        &self,
        password: &[u8],
        scrypt_n: u64,
        salt: &[u8; SALT_LEN],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, KeyError> {
        let pkcs8 = self
            .key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encrypt(format!("PKCS#8 encoding failed: {e}")))?;
        let params = ScryptParams {
            n: scrypt_n,
            r: SCRYPT_R,
            p: SCRYPT_P,
        };
        let key = derive_key(password, salt, &params).map_err(KeyError::Encrypt)?;
        let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key[..]));
        let ciphertext = cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(nonce), pkcs8.as_bytes())
            .map_err(|_| KeyError::Encrypt("secretbox encryption failed".into()))?;
        let envelope = EncryptedKey {
            kdf: Kdf {
                name: KDF_NAME.into(),
                params,
                salt: STANDARD.encode(salt),
            },
            cipher: Cipher {
                name: CIPHER_NAME.into(),
                nonce: STANDARD.encode(nonce),
            },
            ciphertext: STANDARD.encode(ciphertext),
        };
        let json = serde_json::to_vec(&envelope).expect("key JSON serializes");
        Ok(pem::encode(SIGSTORE_PRIVATE_KEY_LABEL, &json))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// base64(SHA-256(SPKI DER)) of the public half.
    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    /// DER ECDSA signature over a SHA-256 digest: `cosign sign-blob` signs the artefact's digest,
    /// so a streamed hash of a large file is enough.
    pub fn sign_sha256_prehash(&self, digest: &Sha256Digest) -> Vec<u8> {
        let sig: Signature = self
            .key
            .sign_prehash(digest.as_bytes())
            .expect("a 32-byte prehash is always accepted for P-256");
        sig.to_der().as_bytes().to_vec()
    }

    /// DER ECDSA-SHA256 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// Generates a new key pair: (`ENCRYPTED SIGSTORE PRIVATE KEY` PEM, `PUBLIC KEY` PEM), both LF.
pub fn generate_key_pair(password: &[u8]) -> Result<(String, String), KeyError> {
    let signer = Signer::generate();
    Ok((
        signer.to_cosign_pem(password)?,
        signer.public_key().to_pem(),
    ))
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

fn describe_algorithm(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("algorithm OID {other}"),
    }
}

fn describe_curve(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "" => "(none given)".into(),
        other => format!("OID {other}"),
    }
}

fn derive_key(
    password: &[u8],
    salt: &[u8],
    params: &ScryptParams,
) -> Result<Zeroizing<[u8; 32]>, String> {
    let n = params.n;
    if !n.is_power_of_two() || n < 2 {
        return Err(format!("scrypt N={n} is not a power of two"));
    }
    let memory = 128u64
        .saturating_mul(n)
        .saturating_mul(u64::from(params.r))
        .saturating_mul(u64::from(params.p.max(1)));
    if memory > SCRYPT_MAX_MEMORY {
        return Err(format!(
            "scrypt N={n} r={} p={} needs more than 1 GiB",
            params.r, params.p
        ));
    }
    let log_n = u8::try_from(n.trailing_zeros()).expect("log2 of a u64 fits in u8");
    let scrypt_params = scrypt::Params::new(log_n, params.r, params.p, 32).map_err(|e| {
        format!(
            "invalid scrypt parameters N={n} r={} p={}: {e}",
            params.r, params.p
        )
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &scrypt_params, &mut key[..])
        .map_err(|e| format!("scrypt failed: {e}"))?;
    Ok(key)
}

fn decrypt(
    envelope: &EncryptedKey,
    password: &[u8],
    origin: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let not_cosign = |reason: String| KeyError::NotCosignKey {
        key: origin.to_string(),
        reason,
    };
    if envelope.kdf.name != KDF_NAME {
        return Err(KeyError::UnsupportedKdf {
            key: origin.to_string(),
            kdf: envelope.kdf.name.clone(),
        });
    }
    if envelope.cipher.name != CIPHER_NAME {
        return Err(KeyError::UnsupportedCipher {
            key: origin.to_string(),
            cipher: envelope.cipher.name.clone(),
        });
    }
    let salt = STANDARD
        .decode(&envelope.kdf.salt)
        .map_err(|e| not_cosign(format!("kdf.salt is not base64 ({e})")))?;
    let nonce = STANDARD
        .decode(&envelope.cipher.nonce)
        .map_err(|e| not_cosign(format!("cipher.nonce is not base64 ({e})")))?;
    if nonce.len() != NONCE_LEN {
        return Err(not_cosign(format!(
            "cipher.nonce is {} bytes, nacl/secretbox needs {NONCE_LEN}",
            nonce.len()
        )));
    }
    let ciphertext = STANDARD
        .decode(&envelope.ciphertext)
        .map_err(|e| not_cosign(format!("ciphertext is not base64 ({e})")))?;
    let key = derive_key(password, &salt, &envelope.kdf.params).map_err(|e| {
        KeyError::UnsupportedKdf {
            key: origin.to_string(),
            kdf: e,
        }
    })?;
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key[..]));
    // secretbox authenticates before decrypting: a failure here means the derived key is wrong,
    // i.e. the password (a corrupted ciphertext would fail the same way, but is far rarer).
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword {
            key: origin.to_string(),
        })
}
