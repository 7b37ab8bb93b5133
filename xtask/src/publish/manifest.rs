//! `<prefix>/offline-kit.json`, its signature `offline-kit.json.sigstore.json` and `cosign.pub`:
//! the signed list of published kits (types and verifier in `aoc_kit::published`), so a mirror
//! can tell what exists, and prove it, without listing the bucket.
//!
//! One key per prefix: `cosign.pub` is written by the first publish and every later publish must
//! sign with the same key.
//!
//! Updates are compare-and-swap on the manifest, then on its signature, and a publisher extends
//! only a manifest whose signature it verified with its own key:
//! 1. read the manifest and its bundle (with their tags); no manifest: start an empty one;
//! 2. the bundle does not verify over the manifest: another publisher is between its two writes
//!    (manifest, then bundle), so wait and re-read. Still so after [`SETTLE`] (a publish died
//!    between the writes): sign it again only if every kit it lists is in the store as listed,
//!    under a `SHA256SUMS` signed by this key; otherwise refuse, naming the repair;
//! 3. add the entry and sign; write the manifest only if its tag is unchanged (`If-Match` /
//!    `If-None-Match` on S3, a lock and re-read in a directory), then the bundle only if its tag
//!    is unchanged; lost either race: back to 1.
//!
//! A publisher that lost the bundle race finds, on re-reading, the winner's signed manifest,
//! which holds its entry when the winner extended its manifest; so the last bundle written is
//! the one over the last manifest, and no entry is lost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aoc_kit::published::{OfflineKitManifest, PublishedKit, MANIFEST, MANIFEST_BUNDLE, PUBLIC_KEY};
use aoc_sigstore::{message_signature_bundle, verify_message_bundle, Signer};
use sha2::{Digest, Sha256};

use super::store::{Conflict, Store};

/// Conditional writes tried before giving up; each conflict means another publisher succeeded.
const ATTEMPTS: u32 = 20;
/// How long a manifest without a matching signature is waited for before it is refused.
const SETTLE: Duration = Duration::from_secs(30);

/// What a manifest update did.
#[derive(Debug, PartialEq, Eq)]
pub struct Updated {
    /// The entry was already there, byte for byte: nothing was written.
    pub unchanged: bool,
    /// Conditional writes lost to another publisher before this one won.
    pub conflicts: u32,
}

/// Makes sure `<prefix>/cosign.pub` is the signer's public key (writing it when the prefix has
/// none): refuses, before anything is uploaded, a prefix that belongs to another key.
pub fn claim_prefix(store: &dyn Store, signer: &Signer) -> Result<()> {
    let ours = signer.public_key().to_pem();
    for _ in 0..2 {
        match store.get(PUBLIC_KEY)? {
            Some(obj) if obj.bytes == ours.as_bytes() => return Ok(()),
            Some(obj) => {
                let theirs = String::from_utf8_lossy(&obj.bytes);
                let id = aoc_sigstore::PublicKey::from_pem(&theirs, PUBLIC_KEY)
                    .map(|k| k.key_id())
                    .unwrap_or_else(|_| "unreadable".into());
                bail!(
                    "{} is key {id}, but this publish signs with key {}: a publish prefix has one \
                     key (its {MANIFEST} and every kit in it are signed by it); publish under \
                     another prefix",
                    store.url(PUBLIC_KEY),
                    signer.key_id()
                );
            }
            None => match store.put_create(PUBLIC_KEY, ours.as_bytes())? {
                Ok(()) => return Ok(()),
                // Another publisher wrote it first: compare with theirs.
                Err(Conflict::Exists | Conflict::Changed) => continue,
            },
        }
    }
    bail!("{} keeps changing: re-run", store.url(PUBLIC_KEY))
}

/// Adds `entry` to the store's manifest (see the module docs). An entry for the same version
/// with other content is replaced only with `replace` (`--force`).
pub fn update(
    store: &dyn Store,
    entry: &PublishedKit,
    replace: bool,
    signer: &Signer,
) -> Result<Updated> {
    update_settling(store, entry, replace, signer, SETTLE)
}

/// [`update`], waiting `settle` for a missing signature (tests use zero).
pub(super) fn update_settling(
    store: &dyn Store,
    entry: &PublishedKit,
    replace: bool,
    signer: &Signer,
    settle: Duration,
) -> Result<Updated> {
    let key = signer.public_key();
    let mut conflicts = 0;
    let mut unsettled_since: Option<Instant> = None;
    while conflicts < ATTEMPTS {
        let current = store.get(MANIFEST)?;
        let bundle = store.get(MANIFEST_BUNDLE)?;
        let (mut manifest, signed) = match &current {
            None => (OfflineKitManifest::new(&signer.key_id()), false),
            Some(obj) => {
                let digest: [u8; 32] = Sha256::digest(&obj.bytes).into();
                let verified = match &bundle {
                    Some(b) => {
                        verify_message_bundle(&b.bytes, &digest, key).map_err(|e| e.to_string())
                    }
                    None => Err("it has no signature".into()),
                };
                match verified {
                    Ok(()) => (parse(store, &obj.bytes)?, true),
                    Err(why) => {
                        let since = *unsettled_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < settle {
                            // Another publisher between its two writes: wait for its signature.
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                        // Nobody finished it: sign it again only if every kit it lists is one
                        // this key signed, as it is in the store.
                        let manifest = parse(store, &obj.bytes)?;
                        vouch(store, &manifest, signer).with_context(|| {
                            format!(
                                "{} has not matched {MANIFEST_BUNDLE} for {} s ({why}), and it \
                                 cannot be signed again as it is. Check the kits under the \
                                 prefix, then delete {MANIFEST} and re-publish each kit (a \
                                 re-publish of a kit already there only adds its entry)",
                                store.url(MANIFEST),
                                settle.as_secs()
                            )
                        })?;
                        eprintln!(
                            "aoc-publish: {} had no matching signature for {} s (an interrupted \
                             publish); every kit it lists is signed by this key as listed: \
                             signing it again",
                            store.url(MANIFEST),
                            settle.as_secs()
                        );
                        (manifest, false)
                    }
                }
            }
        };
        if manifest.key_id != signer.key_id() {
            bail!(
                "{} lists key {}, this publish signs with {}",
                store.url(MANIFEST),
                manifest.key_id,
                signer.key_id()
            );
        }
        match manifest.get(&entry.version) {
            Some(e) if e == entry && signed => {
                return Ok(Updated {
                    unchanged: true,
                    conflicts,
                })
            }
            Some(e) if e != entry && !replace => bail!(
                "{} already lists version {} with other content: pass --force to replace it",
                store.url(MANIFEST),
                entry.version
            ),
            _ => {}
        }
        manifest.upsert(entry.clone());
        let bytes = manifest.render();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let signature = message_signature_bundle(signer, &digest);
        // The manifest, unless only its signature was missing; then the signature, each only
        // over the version that was read.
        let written = match &current {
            Some(obj) if obj.bytes == bytes => Ok(()),
            Some(obj) => store.put_update(MANIFEST, &bytes, &obj.tag)?,
            None => store.put_create(MANIFEST, &bytes)?,
        };
        let written = match written {
            Ok(()) => match &bundle {
                Some(b) => store.put_update(MANIFEST_BUNDLE, signature.as_bytes(), &b.tag),
                None => store.put_create(MANIFEST_BUNDLE, signature.as_bytes()),
            }
            .with_context(|| {
                format!(
                    "{} was written but not its signature: re-run the publish",
                    store.url(MANIFEST)
                )
            })?,
            Err(c) => Err(c),
        };
        match written {
            Ok(()) => {
                return Ok(Updated {
                    unchanged: false,
                    conflicts,
                })
            }
            Err(Conflict::Exists | Conflict::Changed) => {
                // Another publisher won this round; the next read sees its manifest (with our
                // entry when it extended ours).
                conflicts += 1;
                // Jitter from the process id and attempt keeps two losers from colliding again.
                let ms = 10 * u64::from(conflicts) + u64::from(std::process::id() % 7);
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
    }
    bail!(
        "{} changed under us {ATTEMPTS} times in a row: too many concurrent publishers; re-run",
        store.url(MANIFEST)
    )
}

fn parse(store: &dyn Store, bytes: &[u8]) -> Result<OfflineKitManifest> {
    OfflineKitManifest::parse(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} {e}: not rewriting a manifest this xtask does not understand",
            store.url(MANIFEST)
        )
    })
}

/// Every kit `manifest` lists is in the store as listed and signed by `signer`'s key: its
/// SHA256SUMS has the listed digest and a signature by the key, and every other listed file the
/// digest SHA256SUMS gives it.
fn vouch(store: &dyn Store, manifest: &OfflineKitManifest, signer: &Signer) -> Result<()> {
    for kit in &manifest.kits {
        let get = |name: &str| -> Result<Vec<u8>> {
            let key = format!("{}/{name}", kit.version);
            Ok(store
                .get(&key)?
                .with_context(|| format!("{} is missing", store.url(&key)))?
                .bytes)
        };
        let sums = get(aoc_kit::layout::SUMS)?;
        let digest: [u8; 32] = Sha256::digest(&sums).into();
        if hex::encode(digest) != kit.sha256sums_sha256 {
            bail!("kit {}: its SHA256SUMS is not the listed one", kit.version);
        }
        let bundle = get(aoc_kit::layout::SUMS_BUNDLE)?;
        verify_message_bundle(&bundle, &digest, signer.public_key())
            .map_err(|e| anyhow::anyhow!("kit {}: SHA256SUMS: {e}", kit.version))?;
        let listed = aoc_archive::Sha256Sums::parse(&sums)
            .map_err(|e| anyhow::anyhow!("kit {}: SHA256SUMS: {e}", kit.version))?;
        let bundle_sha = hex::encode(Sha256::digest(&bundle));
        for f in &kit.files {
            let expected = match f.name.as_str() {
                aoc_kit::layout::SUMS => kit.sha256sums_sha256.clone(),
                aoc_kit::layout::SUMS_BUNDLE => bundle_sha.clone(),
                name => listed.get(name).map(hex::encode).with_context(|| {
                    format!("kit {}: {name} is not in its SHA256SUMS", kit.version)
                })?,
            };
            if f.sha256 != expected {
                bail!(
                    "kit {}: {} is listed with another digest",
                    kit.version,
                    f.name
                );
            }
        }
        if kit.files.len() != listed.len() + 2 {
            bail!("kit {}: the manifest does not list every file", kit.version);
        }
    }
    Ok(())
}
