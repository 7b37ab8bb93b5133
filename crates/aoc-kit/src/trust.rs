//! What the two verifiers (a kit, a published directory) decide the same way, written once: the
//! key their checks run against, what that key proves about origin, how an unreadable root file
//! is classed, and a message signature over a file's digest; and the options and trusted key
//! both take.

use std::path::Path;

use aoc_digest::Sha256Digest;
use aoc_sigstore::{verify_message_bundle, PublicKey};

use crate::files::ReadProblem;
use crate::layout;
use crate::report::{escape, CheckId, Class, KeyInfo, Recorder};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The key the operator trusts (`--key`). Without it the kit's own `cosign.pub` is used,
    /// which proves the kit intact but not who made it ([`Class::Origin`]).
    pub key: Option<TrustedKey>,
    /// Accept the public dev key as an origin (dev and CI rehearsals only).
    pub allow_dev_key: bool,
    /// The dataset hash the kit must carry (`--expect-dataset-hash`, `DATASET_HASH`): an older,
    /// validly signed kit is refused.
    pub expect_dataset_hash: Option<String>,
    /// Integrity only: steps 1–4; the dataset's records are not parsed.
    pub integrity_only: bool,
    /// A published directory's index must have at least this `sequence`
    /// (`--expect-min-index-sequence`): an older, validly signed index (a rollback) is refused.
    /// A kit directory has no index: the caller refuses the pin there.
    pub min_index_sequence: Option<u64>,
}

/// A key the operator supplied, and where from (shown in the report).
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub key: PublicKey,
    pub path: String,
}

impl TrustedKey {
    /// Reads and parses a public key file (bounded); the error is a usage error.
    pub fn load(path: &Path) -> Result<TrustedKey, String> {
        Ok(TrustedKey {
            key: crate::files::load_key(path)?,
            path: escape(&path.display().to_string()),
        })
    }
}

/// The key the checks run against: the one the operator trusts (`--key`), or else `dir`'s own
/// `cosign.pub` (read bounded, never through a link), which proves integrity but not origin.
/// `info` says which. An own key that cannot be read or parsed is a failed `key` check, and
/// `None`: nothing can be checked.
pub(crate) fn key(
    dir: &Path,
    opts: &VerifyOptions,
    info: &mut KeyInfo,
    rec: &mut Recorder<'_>,
) -> Option<PublicKey> {
    let key = match &opts.key {
        Some(trusted) => {
            info.path = trusted.path.clone();
            trusted.key.clone()
        }
        None => {
            let path = dir.join(layout::PUBLIC_KEY);
            info.path = escape(&path.display().to_string());
            info.self_contained = true;
            match own_key(&path) {
                Ok(k) => k,
                Err(e) => {
                    rec.record(CheckId::Key, layout::PUBLIC_KEY, Class::Signature, Err(e));
                    return None;
                }
            }
        }
    };
    info.key_id = Some(key.key_id());
    info.is_dev = aoc_sigstore::policy::is_dev_key(&key);
    Some(key)
}

/// The `cosign.pub` beside what is verified, bounded by its size cap.
fn own_key(path: &Path) -> Result<PublicKey, String> {
    let cap = layout::size_cap(layout::PUBLIC_KEY);
    let bytes =
        aoc_archive::fs::read_regular(path, cap).map_err(|e| ReadProblem::from(e).to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not text".to_string())?;
    PublicKey::from_pem(&text, layout::PUBLIC_KEY).map_err(|e| e.to_string())
}

/// Last: who signed. Only a key the operator passed, and not the public dev key (unless
/// allowed), proves origin. `owner` names what was verified ("the kit"); the check is recorded
/// on `root_bundle`, the signature everything else hangs from.
pub(crate) fn origin(
    opts: &VerifyOptions,
    key: &KeyInfo,
    owner: &str,
    root_bundle: &str,
    rec: &mut Recorder<'_>,
) {
    let id = key.key_id.clone().unwrap_or_default();
    let outcome = if key.self_contained {
        Err(format!(
            "checked against {owner}'s OWN {} (key {id}), which anyone who can write {owner} can \
             replace: pass --key with the public key you trust",
            layout::PUBLIC_KEY
        ))
    } else if key.is_dev && !opts.allow_dev_key {
        Err(format!(
            "signed with the PUBLIC DEV KEY (key {id}): anyone can produce this signature; pass \
             --allow-dev-key only for dev kits"
        ))
    } else if key.is_dev {
        Ok(format!(
            "the public dev key {id}, accepted by --allow-dev-key"
        ))
    } else {
        Ok(format!("signed by the trusted key {id} ({})", key.path))
    };
    rec.record(CheckId::Origin, root_bundle, Class::Origin, outcome);
}

/// The class of a root file (`SHA256SUMS`, `offline-kit.json`) that cannot be read: too large
/// or not a regular file is hostile; missing or unreadable is a checksum failure (there is
/// nothing to list).
pub(crate) fn unreadable_root_class(e: &ReadProblem) -> Class {
    match e {
        ReadProblem::TooLarge { .. } | ReadProblem::NotRegular => Class::Hostile,
        _ => Class::Checksum,
    }
}

/// A message-signature bundle over `digest` by `key`.
pub(crate) fn signed(
    bundle: &[u8],
    digest: &Sha256Digest,
    key: &PublicKey,
    artefact: &str,
) -> Result<String, String> {
    verify_message_bundle(bundle, digest, key)
        .map(|()| {
            format!(
                "signs {artefact} (sha256 {digest}) with key {}",
                key.key_id()
            )
        })
        .map_err(|e| format!("over {artefact}: {e}"))
}
