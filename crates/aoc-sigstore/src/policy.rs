//! Which key signs a release: the production key from the environment, or (only when explicitly
//! allowed) the public dev key in `tools/cosign/`. The environment is passed in as a lookup
//! function so callers and tests never mutate the process environment.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::key::{KeyError, PublicKey, Signer};

/// The dev private key, relative to the project root.
pub const DEV_KEY_PATH: &str = "tools/cosign/cosign.dev.key";
/// The dev public key, relative to the project root.
pub const DEV_PUBLIC_KEY_PATH: &str = "tools/cosign/cosign.dev.pub";
/// The dev key's password; public, like the key.
pub const DEV_KEY_PASSWORD: &str = "stellaops-dev";
/// The dev public key, compiled in so a production key that is really the dev key is recognised
/// even where `tools/cosign/` is absent.
pub const DEV_PUBLIC_KEY_PEM: &str = include_str!("../../../tools/cosign/cosign.dev.pub");

/// Where the signing key came from, for logs and for the kit's record of who signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    /// `COSIGN_KEY=<path>`, `COSIGN_KEY_B64`, or the dev key's path.
    pub source: String,
    /// base64(SHA-256(SPKI DER)), as in the bundles' `publicKey.hint`.
    pub key_id: String,
    /// True for the public dev key: kits signed with it prove nothing and must say so.
    pub is_dev: bool,
}

#[derive(Debug)]
pub struct SelectedKey {
    pub signer: Signer,
    pub description: KeyDescription,
}

/// One line each: the cause, then the fix.
#[derive(Debug, thiserror::Error)]
pub enum KeySelectionError {
    #[error(
        "no signing key: set COSIGN_KEY (a path) or COSIGN_KEY_B64 (base64 of the PEM) with \
         COSIGN_PASSWORD, or set COSIGN_ALLOW_DEV_KEY=1 to use the dev key"
    )]
    NoKey,
    #[error(
        "no production signing key and AOC_REQUIRE_PROD_KEY=1 refuses the dev key: set COSIGN_KEY \
         (a path) or COSIGN_KEY_B64 with COSIGN_PASSWORD"
    )]
    ProdKeyRequired,
    #[error(
        "{source_name} is the public dev key and AOC_REQUIRE_PROD_KEY=1 refuses it: point COSIGN_KEY \
         or COSIGN_KEY_B64 at the production key"
    )]
    DevKeyRefused { source_name: String },
    #[error("both COSIGN_KEY and COSIGN_KEY_B64 are set: unset one of them")]
    AmbiguousKey,
    #[error(
        "COSIGN_PASSWORD is not set: export it (the password of {source_name}), or set \
         COSIGN_ALLOW_DEV_KEY=1 to use the dev key"
    )]
    PasswordNotSet { source_name: String },
    #[error("cannot read signing key {path}: {error}: check COSIGN_KEY")]
    KeyUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("COSIGN_KEY_B64 is not valid base64 of a PEM key ({0}): encode it with `base64 -w0 cosign.key`")]
    KeyB64Invalid(String),
    #[error(
        "the dev key {path} is missing ({error}): run from the project root, or regenerate it with \
         `cargo xtask keygen`"
    )]
    DevKeyMissing {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Picks the release signing key:
/// 1. `COSIGN_KEY` (a path) or `COSIGN_KEY_B64` (base64 of the PEM), decrypted with
///    `COSIGN_PASSWORD` (required; may be empty for a key created without a password);
/// 2. otherwise the dev key at `<project_root>/tools/cosign/cosign.dev.key` (password
///    `stellaops-dev`), only when `COSIGN_ALLOW_DEV_KEY=1`;
/// 3. `AOC_REQUIRE_PROD_KEY=1` refuses the dev key, also when a production variable points at it.
///
/// Empty variables count as unset (CI expands a missing secret to ""). `env` is usually
/// `|k| std::env::var(k).ok()`.
pub fn select_signing_key(
    env: impl Fn(&str) -> Option<String>,
    project_root: &Path,
) -> Result<SelectedKey, KeySelectionError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    // Fail safe: any value except an explicit "0"/"false" turns the requirement on, while the dev
    // key needs an explicit "1"/"true".
    let require_prod = var("AOC_REQUIRE_PROD_KEY").is_some_and(|v| !is_false(&v));
    let allow_dev = var("COSIGN_ALLOW_DEV_KEY").is_some_and(|v| is_true(&v));

    let production = match (var("COSIGN_KEY"), var("COSIGN_KEY_B64")) {
        (Some(_), Some(_)) => return Err(KeySelectionError::AmbiguousKey),
        (Some(path), None) => {
            let path = PathBuf::from(path);
            let source = format!("COSIGN_KEY={}", path.display());
            let pem = std::fs::read_to_string(&path)
                .map_err(|error| KeySelectionError::KeyUnreadable { path, error })?;
            Some((source, pem))
        }
        (None, Some(b64)) => {
            let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = STANDARD
                .decode(compact)
                .map_err(|e| KeySelectionError::KeyB64Invalid(e.to_string()))?;
            let pem = String::from_utf8(bytes).map_err(|_| {
                KeySelectionError::KeyB64Invalid("decoded bytes are not text".into())
            })?;
            Some(("COSIGN_KEY_B64".to_string(), pem))
        }
        (None, None) => None,
    };

    if let Some((source, pem)) = production {
        // An empty COSIGN_PASSWORD is a real (empty) password, so read it unfiltered.
        let password = env("COSIGN_PASSWORD").ok_or_else(|| KeySelectionError::PasswordNotSet {
            source_name: source.clone(),
        })?;
        let signer = Signer::from_cosign_pem(&pem, password.as_bytes(), &source)?;
        let is_dev = is_dev_key(signer.public_key());
        if is_dev && require_prod {
            return Err(KeySelectionError::DevKeyRefused {
                source_name: source,
            });
        }
        return Ok(selected(signer, source, is_dev));
    }

    if require_prod {
        return Err(KeySelectionError::ProdKeyRequired);
    }
    if !allow_dev {
        return Err(KeySelectionError::NoKey);
    }
    let path = project_root.join(DEV_KEY_PATH);
    let pem = std::fs::read_to_string(&path).map_err(|error| KeySelectionError::DevKeyMissing {
        path: path.clone(),
        error,
    })?;
    let source = path.display().to_string();
    let signer = Signer::from_cosign_pem(&pem, DEV_KEY_PASSWORD.as_bytes(), &source)?;
    Ok(selected(signer, source, true))
}

/// The compiled-in dev public key.
pub fn dev_public_key() -> PublicKey {
    PublicKey::from_pem(DEV_PUBLIC_KEY_PEM, DEV_PUBLIC_KEY_PATH)
        .expect("tools/cosign/cosign.dev.pub is a valid P-256 public key")
}

/// True when `key` is the public dev key.
pub fn is_dev_key(key: &PublicKey) -> bool {
    key.key_id() == dev_public_key().key_id()
}

fn selected(signer: Signer, source: String, is_dev: bool) -> SelectedKey {
    let description = KeyDescription {
        source,
        key_id: signer.key_id(),
        is_dev,
    };
    SelectedKey {
        signer,
        description,
    }
}

fn is_true(value: &str) -> bool {
    value == "1" || value.eq_ignore_ascii_case("true")
}

fn is_false(value: &str) -> bool {
    value == "0" || value.eq_ignore_ascii_case("false")
}
