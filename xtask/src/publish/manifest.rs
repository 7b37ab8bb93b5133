//! `<prefix>/offline-kit.json`, its signature `offline-kit.json.sigstore.json` and `cosign.pub`:
//! the signed list of published kits (types and verifier in `aoc_kit::published`), so a mirror
//! can tell what exists, and prove it, without listing the bucket.
//!
//! One key per prefix: `cosign.pub` is written by the first publish and every later publish must
//! sign with the same key.
//!
//! Updates are compare-and-swap on the manifest, then on its signature, and a publisher extends
//! only a manifest whose signature it verified with its own key, and signs only bytes it made:
//! 1. read the manifest and its bundle (with their tags); no manifest: start an empty one, its
//!    sequence above any the publisher's state records for the prefix (a deleted index is said
//!    on stderr; the kits it listed are then listed again only when published again);
//! 2. the bundle verifies: the index's `sequence` must not be older than the one the publisher's
//!    state (state.rs) records for the prefix (a rollback to an index the key signed before is
//!    refused), and is recorded there;
//! 3. the bundle does not verify over the manifest: if the manifest is byte for byte the one
//!    this publisher recorded as pending before writing it (a publish interrupted between its
//!    two writes), it is finished and signed; otherwise another publisher may be between its two
//!    writes, so wait and re-read, and after [`SETTLE`] refuse: an index someone else changed is
//!    never signed (whoever can write the bucket could have relabelled its entries);
//! 4. add the entry, raise the sequence by one, record the new bytes as pending in the state,
//!    and sign; write the manifest only if its tag is unchanged (`If-Match` / `If-None-Match` on
//!    S3, a lock and re-read in a directory), then the bundle only if its tag is unchanged; lost
//!    either race: back to 1. Written: the state records the sequence.
//!
//! A publisher that lost the bundle race finds, on re-reading, the winner's signed manifest,
//! which holds its entry when the winner extended its manifest; so the last bundle written is
//! the one over the last manifest, and no entry is lost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aoc_digest::Sha256Digest;
use aoc_kit::published::{
    OfflineKitManifest, PublishedKit, MANIFEST, MANIFEST_BUNDLE, PUBLIC_KEY, SCHEMA_VERSION,
};
use aoc_sigstore::{message_signature_bundle, verify_message_bundle, Signer};

use super::state::{Locked, Prefix, State};
use super::store::{Conflict, Object, Store};

/// Conditional writes tried before giving up; each conflict means another publisher succeeded.
const ATTEMPTS: u32 = 20;
/// How long a manifest without a matching signature is waited for before it is refused
/// (another publisher between its two writes); `AOC_PUBLISH_SETTLE_SECS` changes it.
pub const SETTLE: Duration = Duration::from_secs(30);
/// The environment variable that sets [`SETTLE`] in seconds.
pub const SETTLE_ENV: &str = "AOC_PUBLISH_SETTLE_SECS";

/// What an update compares against and how long it waits.
pub struct Policy<'a> {
    /// The publisher's own record of the indexes it signed.
    pub state: &'a State,
    /// How long an unsigned manifest is waited for ([`SETTLE`]).
    pub settle: Duration,
}

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
    policy: &Policy<'_>,
) -> Result<Updated> {
    run(store, entry, replace, signer, policy, true)
}

/// Everything [`update`] checks before it writes (the manifest's signature or that it is this
/// publisher's own, its sequence against the state, its key, the entry's version), writing
/// nothing to the store: a publish runs it before uploading a byte, so a prefix whose manifest
/// it would refuse to sign gets no kit either.
pub fn check(
    store: &dyn Store,
    entry: &PublishedKit,
    replace: bool,
    signer: &Signer,
    policy: &Policy<'_>,
) -> Result<()> {
    run(store, entry, replace, signer, policy, false).map(|_| ())
}

fn run(
    store: &dyn Store,
    entry: &PublishedKit,
    replace: bool,
    signer: &Signer,
    policy: &Policy<'_>,
    write: bool,
) -> Result<Updated> {
    let prefix = store.url(MANIFEST);
    // Held until the update is done: publishes on this machine sharing the state take turns.
    let state = policy.state.lock()?;
    let update = Update {
        store,
        signer,
        state: &state,
        prefix: &prefix,
    };
    let mut conflicts = 0;
    let mut unsettled_since: Option<Instant> = None;
    while conflicts < ATTEMPTS {
        let known = state.get(&prefix)?;
        let current = store.get(MANIFEST)?;
        let bundle = store.get(MANIFEST_BUNDLE)?;
        // The manifest to extend, whether its signature is in place, and whether it is one this
        // publisher wrote whose signature is still missing.
        let Base {
            mut manifest,
            signed,
            resumed,
        } = match &current {
            None => update.new_index(&known),
            Some(obj) => match update.verified(obj, bundle.as_ref(), &known)? {
                Ok(base) => base,
                Err(why) => {
                    let since = *unsettled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < policy.settle {
                        // Another publisher between its two writes: wait for its signature.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    return Err(update.unsettled(&why, policy.settle));
                }
            },
        };
        if manifest.key_id != signer.key_id() {
            bail!(
                "{prefix} lists key {}, this publish signs with {}",
                manifest.key_id,
                signer.key_id()
            );
        }
        let listed = manifest.get(&entry.version);
        match listed {
            Some(e) if e == entry && signed => {
                return Ok(Updated {
                    unchanged: true,
                    conflicts,
                })
            }
            Some(e) if e != entry && !replace => bail!(
                "{prefix} already lists version {} with other content: pass --force to replace it",
                entry.version
            ),
            _ => {}
        }
        if !write {
            return Ok(Updated {
                unchanged: false,
                conflicts,
            });
        }
        // An interrupted write of ours that already lists the entry is signed as it is; anything
        // else is a new index, one sequence on.
        if !(resumed && listed == Some(entry)) {
            manifest.upsert(entry.clone());
            manifest.schema_version = SCHEMA_VERSION;
            manifest.sequence += 1;
        }
        match update.sign_and_write(&manifest, current.as_ref(), bundle.as_ref())? {
            Ok(()) => {
                return Ok(Updated {
                    unchanged: false,
                    conflicts,
                });
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
    bail!("{prefix} changed under us {ATTEMPTS} times in a row: too many concurrent publishers; re-run")
}

/// One publisher's update of the index at `prefix`, holding its state.
struct Update<'a> {
    store: &'a dyn Store,
    signer: &'a Signer,
    state: &'a Locked<'a>,
    prefix: &'a str,
}

/// The manifest an update extends: whether its signature is in place, and whether it is one
/// this publisher wrote whose signature is still missing.
struct Base {
    manifest: OfflineKitManifest,
    signed: bool,
    resumed: bool,
}

impl Update<'_> {
    /// No manifest: an empty one, its sequence that of the state (a deleted index is said).
    fn new_index(&self, known: &Prefix) -> Base {
        if known.sequence > 0 {
            // Deleting the index hides the kits it listed, but cannot make anyone sign
            // something older: the new index continues the sequence.
            aoc_term::say(format!(
                "aoc-publish: WARNING: {} is missing, though this publisher signed \
                 sequence {} there (its state {}): starting a new index at sequence {}; \
                 kits it listed are listed again when they are published again",
                self.prefix,
                known.sequence,
                self.state.path().display(),
                known.sequence + 1
            ));
        }
        let mut fresh = OfflineKitManifest::new(&self.signer.key_id());
        fresh.sequence = known.sequence;
        Base {
            manifest: fresh,
            signed: false,
            resumed: false,
        }
    }

    /// The manifest read, if its bundle verifies (not older than the state's sequence, which
    /// it raises) or it is the one this publisher recorded as pending; else why it does not
    /// verify.
    fn verified(
        &self,
        obj: &Object,
        bundle: Option<&Object>,
        known: &Prefix,
    ) -> Result<std::result::Result<Base, String>> {
        let prefix = self.prefix;
        let digest = Sha256Digest::of(&obj.bytes);
        let verified = match bundle {
            Some(b) => verify_message_bundle(&b.bytes, &digest, self.signer.public_key())
                .map_err(|e| e.to_string()),
            None => Err("it has no signature".into()),
        };
        let ours = known.pending.as_ref().is_some_and(|p| p.sha256 == digest);
        match verified {
            Ok(()) => {
                let manifest = parse(self.store, &obj.bytes)?;
                if manifest.sequence < known.sequence {
                    bail!(
                        "{prefix} is a validly signed index of sequence {}, older than \
                         sequence {} which this publisher signed or verified there (its \
                         state {}): an older index was put back (a rollback). Not \
                         extending it: put the newest signed index and its signature \
                         back",
                        manifest.sequence,
                        known.sequence,
                        self.state.path().display()
                    );
                }
                self.state.signed(prefix, manifest.sequence)?;
                Ok(Ok(Base {
                    manifest,
                    signed: true,
                    resumed: false,
                }))
            }
            // The bytes this publisher recorded before writing them: finish signing.
            Err(_) if ours => Ok(Ok(Base {
                manifest: parse(self.store, &obj.bytes)?,
                signed: false,
                resumed: true,
            })),
            Err(why) => Ok(Err(why)),
        }
    }

    /// A manifest that has not matched its signature for `settle`: refused.
    fn unsettled(&self, why: &str, settle: Duration) -> anyhow::Error {
        anyhow::anyhow!(
            "{} has not matched {MANIFEST_BUNDLE} for {} s ({why}), and it \
             is not the index this publisher wrote (its state {}): someone \
             without the key may have changed it, so it is not signed. Put the \
             last signed index and its signature back; or re-run the publish \
             that was interrupted, with its state file; or, after checking the \
             kits under the prefix, delete {MANIFEST} and its signature and \
             publish each kit again",
            self.prefix,
            settle.as_secs(),
            self.state.path().display()
        )
    }

    /// Records `manifest` as pending, signs it, and writes it (unless only its signature was
    /// missing) and then its signature, each only over the version that was read; `Err` when
    /// another publisher changed either first. Written: the state records the sequence.
    fn sign_and_write(
        &self,
        manifest: &OfflineKitManifest,
        current: Option<&Object>,
        bundle: Option<&Object>,
    ) -> Result<std::result::Result<(), Conflict>> {
        let (store, prefix) = (self.store, self.prefix);
        let bytes = manifest.render();
        let digest = Sha256Digest::of(&bytes);
        self.state.begin(prefix, manifest.sequence, digest)?;
        let signature = message_signature_bundle(self.signer, &digest);
        let written = match current {
            Some(obj) if obj.bytes == bytes => Ok(()),
            Some(obj) => store.put_update(MANIFEST, &bytes, &obj.tag)?,
            None => store.put_create(MANIFEST, &bytes)?,
        };
        let written = match written {
            Ok(()) => match bundle {
                Some(b) => store.put_update(MANIFEST_BUNDLE, signature.as_bytes(), &b.tag),
                None => store.put_create(MANIFEST_BUNDLE, signature.as_bytes()),
            }
            .with_context(|| {
                format!("{prefix} was written but not its signature: re-run the publish")
            })?,
            Err(c) => Err(c),
        };
        if written.is_ok() {
            self.state.signed(prefix, manifest.sequence)?;
        }
        Ok(written)
    }
}

fn parse(store: &dyn Store, bytes: &[u8]) -> Result<OfflineKitManifest> {
    OfflineKitManifest::parse(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} {e}: not rewriting a manifest this xtask does not understand",
            store.url(MANIFEST)
        )
    })
}
