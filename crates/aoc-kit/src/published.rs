//! The published offline kit: what `cargo xtask aoc-publish` keeps at a publish prefix (a
//! directory, or a bucket prefix copied to one), and its verifier.
//!
//! ```text
//! <prefix>/offline-kit.json                  the manifest: every kit, every file with size and SHA-256
//! <prefix>/offline-kit.json.sigstore.json    Sigstore bundle v0.3 (message signature) over it
//! <prefix>/cosign.pub                        the key that signs the manifest and every kit in it
//! <prefix>/<version>/...                     each kit, as `aoc-release` wrote it
//! ```
//!
//! The writer (xtask's publish) and the verifier share these types. Verification fails closed:
//! the manifest's signature is checked against the trusted key over its raw bytes (read bounded,
//! never through a link) before it is parsed; its `sequence` must be at least the one the
//! operator pins (`--expect-min-index-sequence`), so an older, validly signed index (a rollback)
//! is refused; then the directory must hold exactly the listed kits; then each kit's files must
//! have the listed sizes and digests, each kit must pass [`crate::verify_kit_with`] against the
//! same key, and the entry's `commit`, `built_at` and `dataset_hash` must be what the kit's own
//! signed provenance says. (`version` is a directory name the publisher chose: only the index's
//! signature vouches for it.)

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::Path;

use aoc_digest::Sha256Digest;
use aoc_sigstore::PublicKey;
use serde::{Deserialize, Serialize};

use crate::files::ReadProblem;
use crate::layout;
use crate::report::{
    escape, escape_os, render_check, CheckId, CheckResult, Class, KeyInfo, Recorder, VerifyReport,
};
use crate::trust;
use crate::verify::{verify_kit_with, TrustedKey, Unlisted, VerifyOptions};

/// The manifest at the publish prefix.
pub const MANIFEST: &str = "offline-kit.json";
/// Its Sigstore bundle (message signature over the manifest's SHA-256).
pub const MANIFEST_BUNDLE: &str = "offline-kit.json.sigstore.json";
/// The public key beside them (the same name a kit gives its own key).
pub const PUBLIC_KEY: &str = layout::PUBLIC_KEY;
/// `kind` of the manifest.
pub const KIND: &str = "stellaops.aoc-offline-kit";
/// The manifest schema this code writes: 2 added `sequence`. Schema 1 (no sequence: read as 0)
/// is still read, so a publisher can extend, and so upgrade, an index written before.
pub const SCHEMA_VERSION: u32 = 2;
/// The kit's name in the manifest.
pub const KIT_NAME: &str = "aoc-backfill";
/// Largest manifest read: ~1 KB per kit, so room for thousands of kits.
pub const MANIFEST_CAP: u64 = 16 << 20;
/// Largest bundle read.
const SMALL_CAP: u64 = 1 << 20;

/// `offline-kit.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineKitManifest {
    /// [`KIND`].
    pub kind: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// [`KIT_NAME`].
    pub name: String,
    /// base64(SHA-256(SPKI DER)) of the key that signs this manifest; every kit listed is signed
    /// by it too.
    pub key_id: String,
    /// Raised by one at every signed write (schema 2; 0 in schema 1): a verifier refuses an index
    /// older than the one it pins, a publisher one older than it last wrote.
    #[serde(default)]
    pub sequence: u64,
    /// In version order ([`version_order`]).
    pub kits: Vec<PublishedKit>,
}

/// One kit under `<prefix>/<version>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedKit {
    pub version: String,
    /// The git commit the kit's provenance names.
    pub commit: String,
    pub dataset_hash: String,
    /// The key id of the kit's signatures (the manifest's).
    pub key_id: String,
    /// The release's SOURCE_DATE_EPOCH, RFC 3339 UTC: re-publishing writes the same entry.
    pub built_at: String,
    /// SHA-256 hex of the kit's `SHA256SUMS`.
    pub sha256sums_sha256: String,
    /// Every file of the kit directory, sorted by name.
    pub files: Vec<PublishedFile>,
}

/// One file of a published kit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedFile {
    pub name: String,
    pub size: u64,
    /// SHA-256 hex.
    pub sha256: String,
}

impl OfflineKitManifest {
    /// An empty manifest for the key `key_id`.
    pub fn new(key_id: &str) -> Self {
        OfflineKitManifest {
            kind: KIND.into(),
            schema_version: SCHEMA_VERSION,
            name: KIT_NAME.into(),
            key_id: key_id.into(),
            sequence: 0,
            kits: Vec::new(),
        }
    }

    /// Strict parse: exactly this schema, and every field well formed ([`Self::check`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(format!("kind is not {KIND:?}"));
        }
        let schema = value.get("schema_version").and_then(|s| s.as_u64());
        let has_sequence = value.get("sequence").is_some();
        match schema {
            Some(1) if has_sequence => return Err("schema 1 has no sequence".into()),
            Some(1) => {}
            Some(2) if !has_sequence => return Err("schema 2 needs a sequence".into()),
            Some(2) => {}
            _ => {
                return Err(format!(
                    "schema_version is {schema:?}; this tool reads schemas 1 and \
                     {SCHEMA_VERSION} (update it)"
                ))
            }
        }
        let manifest: OfflineKitManifest = serde_json::from_value(value)
            .map_err(|e| format!("does not match schema {SCHEMA_VERSION}: {e}"))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Every version a safe directory name and unique; every file name plain and unique; digests
    /// and the dataset hash 64 hex; `SHA256SUMS` listed with the kit's recorded digest; every
    /// kit signed by the manifest's key.
    pub fn check(&self) -> Result<(), String> {
        if self.name != KIT_NAME {
            return Err(format!("names kit {:?}, expected {KIT_NAME:?}", self.name));
        }
        let mut versions = BTreeSet::new();
        for kit in &self.kits {
            let v = escape(&kit.version);
            check_version(&kit.version)?;
            if !versions.insert(kit.version.as_str()) {
                return Err(format!("lists version {v} twice"));
            }
            if kit.key_id != self.key_id {
                return Err(format!(
                    "kit {v} is signed by key {}, the manifest by {}",
                    escape(&kit.key_id),
                    escape(&self.key_id)
                ));
            }
            let digest = |field: &str, value: &str| {
                Sha256Digest::parse_hex(value).map(drop).map_err(|e| {
                    format!(
                        "kit {v}: {field} {} is not 64 lowercase hex digits: it {e}",
                        escape(value)
                    )
                })
            };
            digest("dataset_hash", &kit.dataset_hash)?;
            digest("sha256sums_sha256", &kit.sha256sums_sha256)?;
            let mut names = BTreeSet::new();
            for f in &kit.files {
                let n = escape(&f.name);
                if !is_plain_name(&f.name) || !names.insert(f.name.as_str()) {
                    return Err(format!(
                        "kit {v}: file name {n} is not a plain, unique name"
                    ));
                }
                digest(&format!("{n} sha256"), &f.sha256)?;
            }
            let sums = kit.files.iter().find(|f| f.name == layout::SUMS);
            if sums.map(|f| f.sha256.as_str()) != Some(kit.sha256sums_sha256.as_str()) {
                return Err(format!(
                    "kit {v}: {} is not listed with sha256sums_sha256",
                    layout::SUMS
                ));
            }
        }
        Ok(())
    }

    /// Pretty JSON with a final newline: the bytes that are signed.
    pub fn render(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("the manifest serialises");
        out.push(b'\n');
        out
    }

    pub fn get(&self, version: &str) -> Option<&PublishedKit> {
        self.kits.iter().find(|k| k.version == version)
    }

    /// Adds or replaces the entry for `kit.version`, keeping the kits in version order.
    pub fn upsert(&mut self, kit: PublishedKit) {
        self.kits.retain(|k| k.version != kit.version);
        self.kits.push(kit);
        self.kits
            .sort_by(|a, b| version_order(&a.version, &b.version));
    }
}

/// A version names a directory of objects: letters, digits and `. _ - +`, not starting with `.`
/// or `-`, at most 128 bytes (e.g. `0.1.0-1a2b3c4d5e6f`).
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && !version.starts_with(['.', '-'])
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {:?}: use letters, digits and . _ - + only, not starting with . or - \
             (e.g. 0.1.0-1a2b3c4d5e6f)",
            escape(version)
        ))
    }
}

/// A kit file name: one path component of safe characters.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Version order: runs of digits compare as numbers (`0.10.0` after `0.9.0`), everything else
/// byte-wise; ties broken byte-wise so the order is total.
pub fn version_order(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// True when `dir` is a published directory rather than a kit: it holds the manifest (whatever
/// its type: a link there is refused by the verifier, not mistaken for a kit).
pub fn is_published_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(MANIFEST)).is_ok()
}

/// One listed kit's verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKitReport {
    pub version: String,
    /// The manifest's checks of this kit (files, sizes, digests, identity).
    pub checks: Vec<CheckResult>,
    /// `verify_kit_with` on `<dir>/<version>`.
    pub kit: VerifyReport,
}

/// Everything the verification of a published directory found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedReport {
    /// The published directory (escaped).
    pub dir: String,
    pub key: KeyInfo,
    /// The signed index's `sequence`, once its signature verified: the number to pin with
    /// `--expect-min-index-sequence`.
    pub sequence: Option<u64>,
    /// The manifest's own checks (signature, parse, sequence, layout, pin, origin), in order.
    pub checks: Vec<CheckResult>,
    /// Each listed kit, in manifest order.
    pub kits: Vec<PublishedKitReport>,
    /// Checks deliberately not run (`--integrity-only`).
    pub skipped: Vec<String>,
    /// 0 when everything passed; else the first failure's class code, origin (15) only when
    /// nothing else failed.
    pub exit_code: u8,
}

impl PublishedReport {
    fn all_checks(&self) -> impl Iterator<Item = (Option<&str>, &CheckResult)> {
        let origin_last = |c: &&CheckResult| c.class == Class::Origin;
        let top = self
            .checks
            .iter()
            .filter(move |c| !origin_last(c))
            .map(|c| (None, c));
        let kits = self.kits.iter().flat_map(|k| {
            k.checks
                .iter()
                .chain(&k.kit.checks)
                .map(move |c| (Some(k.version.as_str()), c))
        });
        let origin = self.checks.iter().filter(origin_last).map(|c| (None, c));
        top.chain(kits).chain(origin)
    }

    /// The first failure in chain-of-trust order, an origin failure only when nothing else failed.
    pub fn first_failure(&self) -> Option<(Option<&str>, &CheckResult)> {
        self.all_checks()
            .filter(|(_, c)| !c.ok)
            .min_by_key(|(_, c)| c.class == Class::Origin)
    }

    pub fn passed(&self) -> bool {
        self.all_checks().all(|(_, c)| c.ok)
    }

    /// The summary lines printed after the checks: the directory, then one line per kit.
    pub fn summary(&self, tool: &str) -> Vec<String> {
        let total = self.all_checks().count();
        let passed = self.all_checks().filter(|(_, c)| c.ok).count();
        let versions: Vec<&str> = self.kits.iter().map(|k| k.version.as_str()).collect();
        let what = match self.sequence {
            Some(n) => format!(
                "{} (published: {} kit(s), index sequence {n})",
                self.dir,
                versions.len()
            ),
            None => format!("{} (published: {} kit(s))", self.dir, versions.len()),
        };
        let mut lines = vec![match self.first_failure() {
            None => format!("{tool}: {what} verified: {passed} checks passed"),
            Some((_, c)) if c.class == Class::Origin => format!(
                "{tool}: {what} is INTACT, but its ORIGIN IS NOT PROVEN (exit {}): {}",
                self.exit_code, c.detail
            ),
            Some((scope, c)) => format!(
                "{tool}: {what} FAILED ({} of {total} checks; exit {}): first: {}{} {}: {}",
                total - passed,
                self.exit_code,
                scope.map(|v| format!("[{v}] ")).unwrap_or_default(),
                c.check,
                c.file,
                c.detail
            ),
        }];
        for k in &self.kits {
            let failed = k
                .checks
                .iter()
                .chain(&k.kit.checks)
                .filter(|c| !c.ok)
                .count();
            let status = match (failed, k.kit.exit_code) {
                (0, _) => "verified".to_string(),
                (_, 15) if k.checks.iter().all(|c| c.ok) && k.kit.intact() => {
                    "intact, origin not proven".to_string()
                }
                (n, code) => format!("FAILED ({n} check(s); kit exit {code})"),
            };
            lines.push(format!(
                "{tool}:   kit {} (dataset {}): {status}",
                k.version,
                k.kit.dataset_hash.as_deref().unwrap_or("unknown")
            ));
        }
        for skipped in &self.skipped {
            lines.push(format!("{tool}: NOT CHECKED (--integrity-only): {skipped}"));
        }
        if self.key.is_dev {
            lines.push(format!(
                "{tool}: WARNING: signed with the PUBLIC DEV KEY: anyone can produce this \
                 signature; never deploy it as a release."
            ));
        }
        lines
    }
}

/// Verifies the published directory `dir` (see the module documentation). `opts.key` is the key
/// the operator trusts; without it `<dir>/cosign.pub` is used, which proves nothing about origin
/// (exit 15 when all else passes). `opts.expect_dataset_hash` requires a listed kit to carry that
/// dataset. `observe` sees every check as it completes, with the kit version it belongs to.
pub fn verify_published_with(
    dir: &Path,
    opts: &VerifyOptions,
    observe: &mut dyn FnMut(Option<&str>, &CheckResult),
) -> PublishedReport {
    let mut report = PublishedReport {
        dir: escape(&dir.display().to_string()),
        key: KeyInfo::default(),
        sequence: None,
        checks: Vec::new(),
        kits: Vec::new(),
        skipped: if opts.integrity_only {
            vec![crate::verify::SKIPPED_BY_INTEGRITY.to_string()]
        } else {
            Vec::new()
        },
        exit_code: 0,
    };
    let mut rec = Recorder::new(observe);
    if let Some((key, manifest)) = manifest(dir, opts, &mut report, &mut rec) {
        let mut kit_opts = opts.clone();
        kit_opts.key = Some(TrustedKey {
            key: key.clone(),
            path: report.key.path.clone(),
        });
        // The pin was checked over the whole manifest: each kit is verified unpinned.
        kit_opts.expect_dataset_hash = None;
        for entry in &manifest.kits {
            let kit = listed_kit(dir, entry, &key, &kit_opts, &mut rec);
            report.kits.push(kit);
        }
        rec.scope = None;
        trust::origin(
            opts,
            &report.key,
            "the published directory",
            MANIFEST_BUNDLE,
            &mut rec,
        );
    }
    report.checks = rec.checks;
    report.exit_code = report
        .first_failure()
        .map(|(_, c)| c.class.exit_code())
        .unwrap_or(0);
    report
}

/// One listed kit: its files as the manifest lists them, the kit verified on its own against
/// the manifest's key, and the entry's identity against the kit's signed provenance. Its checks
/// are recorded in the kit's scope and returned with it.
fn listed_kit(
    dir: &Path,
    entry: &PublishedKit,
    key: &PublicKey,
    kit_opts: &VerifyOptions,
    rec: &mut Recorder<'_>,
) -> PublishedKitReport {
    let kit_dir = dir.join(&entry.version);
    rec.scope = Some(entry.version.clone());
    let before = rec.checks.len();
    listed_files(&kit_dir, entry, rec);
    let observe = &mut *rec.observe;
    let version = entry.version.clone();
    let kit = verify_kit_with(&kit_dir, kit_opts, &mut |c| observe(Some(&version), c));
    let provenance = provenance_of(&kit_dir, entry, key);
    let identity = if kit.dataset_hash.as_deref() != Some(entry.dataset_hash.as_str()) {
        Err(format!(
            "the kit carries dataset {}, the manifest lists {}",
            kit.dataset_hash.as_deref().unwrap_or("none"),
            entry.dataset_hash
        ))
    } else if kit.key.key_id.as_deref() != Some(entry.key_id.as_str()) {
        Err(format!(
            "the kit was checked against key {:?}, the manifest lists {}",
            kit.key.key_id, entry.key_id
        ))
    } else {
        provenance.and_then(|p| p.matches(entry)).map(|()| {
            format!(
                "dataset {}, commit {}, built at {} and key {} as the kit's signed provenance \
                 says",
                entry.dataset_hash, entry.commit, entry.built_at, entry.key_id
            )
        })
    };
    rec.record(
        CheckId::ManifestKit,
        &format!("{}/", entry.version),
        Class::Provenance,
        identity,
    );
    PublishedKitReport {
        version: entry.version.clone(),
        checks: rec.checks.split_off(before),
        kit,
    }
}

/// The key, the manifest's signature, its parse, the directory's layout and the pin; `None`
/// stops the verification (nothing after can be trusted).
fn manifest(
    dir: &Path,
    opts: &VerifyOptions,
    report: &mut PublishedReport,
    rec: &mut Recorder<'_>,
) -> Option<(PublicKey, OfflineKitManifest)> {
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        rec.record(
            CheckId::Published,
            &dir.display().to_string(),
            Class::Hostile,
            Err("not a directory".into()),
        );
        return None;
    }
    let key = trust::key(dir, opts, &mut report.key, rec)?;
    let bytes = signed_manifest(dir, &key, rec)?;
    let manifest = parsed_manifest(&bytes, rec)?;
    report.sequence = Some(manifest.sequence);
    names_its_key(&manifest, &key, rec)?;
    not_rolled_back(&manifest, opts, rec)?;
    layout_of(dir, &manifest, rec)?;
    if let Some(pin) = &opts.expect_dataset_hash {
        let outcome = match manifest.kits.iter().find(|k| k.dataset_hash == *pin) {
            Some(k) => Ok(format!(
                "kit {} carries the pinned dataset {pin}",
                k.version
            )),
            None => Err(format!(
                "no listed kit carries dataset {pin} (--expect-dataset-hash / DATASET_HASH)"
            )),
        };
        rec.record(CheckId::DatasetPinned, MANIFEST, Class::Dataset, outcome);
    }
    Some((key, manifest))
}

/// The signature over the manifest's raw bytes, before a byte of it is parsed; the bytes when
/// it verifies.
fn signed_manifest(dir: &Path, key: &PublicKey, rec: &mut Recorder<'_>) -> Option<Vec<u8>> {
    let bytes = match read_small(&dir.join(MANIFEST), MANIFEST_CAP) {
        Ok(b) => b,
        Err(e) => {
            let class = trust::unreadable_root_class(&e);
            rec.record(CheckId::Signature, MANIFEST, class, Err(e.to_string()));
            return None;
        }
    };
    let digest = Sha256Digest::of(&bytes);
    let signed = read_small(&dir.join(MANIFEST_BUNDLE), SMALL_CAP)
        .map_err(|e| e.to_string())
        .and_then(|bundle| trust::signed(&bundle, &digest, key, MANIFEST));
    rec.record(
        CheckId::Signature,
        MANIFEST_BUNDLE,
        Class::Signature,
        signed,
    )
    .then_some(bytes)
}

/// The signed manifest's strict parse.
fn parsed_manifest(bytes: &[u8], rec: &mut Recorder<'_>) -> Option<OfflineKitManifest> {
    let manifest = match OfflineKitManifest::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            rec.record(CheckId::ManifestParse, MANIFEST, Class::Checksum, Err(e));
            return None;
        }
    };
    let versions: Vec<&str> = manifest.kits.iter().map(|k| k.version.as_str()).collect();
    rec.record(
        CheckId::ManifestParse,
        MANIFEST,
        Class::Checksum,
        Ok(format!(
            "schema {}, sequence {}, {} kit(s): {}",
            manifest.schema_version,
            manifest.sequence,
            versions.len(),
            versions.join(", ")
        )),
    );
    Some(manifest)
}

/// The manifest names the key that signed it.
fn names_its_key(
    manifest: &OfflineKitManifest,
    key: &PublicKey,
    rec: &mut Recorder<'_>,
) -> Option<()> {
    let key_ok = if manifest.key_id == key.key_id() {
        Ok(format!("names the signing key {}", key.key_id()))
    } else {
        Err(format!(
            "names key {}, but is signed by {}",
            manifest.key_id,
            key.key_id()
        ))
    };
    rec.record(CheckId::ManifestKey, MANIFEST, Class::Signature, key_ok)
        .then_some(())
}

/// The manifest's sequence is at least the pinned one (`--expect-min-index-sequence`), if one
/// is pinned.
fn not_rolled_back(
    manifest: &OfflineKitManifest,
    opts: &VerifyOptions,
    rec: &mut Recorder<'_>,
) -> Option<()> {
    // A validly signed index that is older than one the operator has seen: an attacker who can
    // write the directory can put back any index this key ever signed.
    let Some(min) = opts.min_index_sequence else {
        return Some(());
    };
    let outcome = if manifest.sequence >= min {
        Ok(format!(
            "sequence {} is at least {min} (--expect-min-index-sequence)",
            manifest.sequence
        ))
    } else {
        Err(format!(
            "sequence {} is older than {min} (--expect-min-index-sequence / \
                 AOC_MIN_INDEX_SEQUENCE): an index signed before, put back (a rollback)",
            manifest.sequence
        ))
    };
    rec.record(
        CheckId::ManifestSequence,
        MANIFEST,
        Class::Signature,
        outcome,
    )
    .then_some(())
}

/// The directory holds the manifest, its signature, the key and exactly the listed kits. What
/// the manifest does not list is counted, and only the first few entries are named ([`Unlisted`])
/// (as in a kit), so any directory costs bounded memory and output. `None` when the directory
/// cannot be listed.
fn layout_of(dir: &Path, manifest: &OfflineKitManifest, rec: &mut Recorder<'_>) -> Option<()> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            rec.record(
                CheckId::PublishedLayout,
                &shown,
                Class::Hostile,
                Err(format!("cannot list: {e}")),
            );
            return None;
        }
    };
    let versions: Vec<&str> = manifest.kits.iter().map(|k| k.version.as_str()).collect();
    let mut complete = true;
    let mut present = BTreeSet::new();
    let mut unlisted = Unlisted::default();
    for entry in entries.flatten() {
        let raw = entry.file_name();
        let name = escape_os(&raw);
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        match raw.to_str() {
            Some(MANIFEST | MANIFEST_BUNDLE) if is_file => {}
            Some(PUBLIC_KEY) if is_file => {}
            Some(v) if versions.contains(&v) && is_dir => {
                present.insert(v.to_string());
            }
            Some(v) if versions.contains(&v) => {
                complete = false;
                rec.record(
                    CheckId::PublishedLayout,
                    &name,
                    Class::Hostile,
                    Err("a listed kit that is not a directory (links have no place here)".into()),
                );
            }
            _ => {
                complete = false;
                if !unlisted.name_next() {
                    continue;
                }
                rec.record(
                    CheckId::PublishedComplete,
                    &name,
                    Class::Checksum,
                    Err(format!(
                        "in the published directory but not listed in {MANIFEST}"
                    )),
                );
            }
        }
    }
    if let Some(rest) = unlisted.not_named(&format!(
        "in the published directory are not listed in {MANIFEST}"
    )) {
        rec.record(
            CheckId::PublishedComplete,
            &shown,
            Class::Checksum,
            Err(rest),
        );
    }
    for v in &versions {
        if !present.contains(*v) {
            complete = false;
            rec.record(
                CheckId::PublishedComplete,
                &format!("{v}/"),
                Class::Checksum,
                Err(format!("listed in {MANIFEST} but missing")),
            );
        }
    }
    if complete {
        rec.record(
            CheckId::PublishedComplete,
            &shown,
            Class::Checksum,
            Ok(format!(
                "holds exactly the {} listed kit(s), the manifest and its key",
                versions.len()
            )),
        );
    }
    Some(())
}

/// The kit directory holds exactly the manifest's files, each with its size and SHA-256.
fn listed_files(kit_dir: &Path, entry: &PublishedKit, rec: &mut Recorder<'_>) {
    let shown = format!("{}/", entry.version);
    let listed: BTreeSet<&str> = entry.files.iter().map(|f| f.name.as_str()).collect();
    let mut problems = Vec::new();
    match std::fs::read_dir(kit_dir) {
        Ok(entries) => {
            let mut unlisted = Unlisted::default();
            for e in entries.flatten() {
                let raw = e.file_name();
                if !raw.to_str().is_some_and(|n| listed.contains(n)) && unlisted.name_next() {
                    problems.push(format!("{} is not listed", escape_os(&raw)));
                }
            }
            problems.extend(unlisted.not_named("are not listed"));
        }
        Err(e) => problems.push(format!("cannot list: {e}")),
    }
    for f in &entry.files {
        match hash_file(&kit_dir.join(&f.name), layout::size_cap(&f.name)) {
            Ok((size, digest)) if size == f.size && digest == f.sha256 => {}
            Ok((size, digest)) => problems.push(format!(
                "{} is {size} bytes with sha256 {digest}, the manifest lists {} bytes with {}",
                f.name, f.size, f.sha256
            )),
            Err(e) => problems.push(format!("{} {e}", f.name)),
        }
    }
    let outcome = if problems.is_empty() {
        Ok(format!(
            "the {} listed files, with their sizes and SHA-256 (SHA256SUMS {})",
            entry.files.len(),
            entry.sha256sums_sha256
        ))
    } else {
        Err(problems.join("; "))
    };
    rec.record(CheckId::ManifestFiles, &shown, Class::Checksum, outcome);
}

/// What a kit's signed provenance says about it: the facts an index entry repeats, which only
/// the key's holder can choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceIdentity {
    /// The source commit (`buildDefinition.externalParameters.source.digest.gitCommit`, or the
    /// `source` resolved dependency's).
    pub commit: String,
    /// `runDetails.metadata.startedOn`: the release's SOURCE_DATE_EPOCH, RFC 3339 UTC.
    pub built_at: String,
    /// `buildDefinition.internalParameters.datasetHash`.
    pub dataset_hash: String,
}

impl ProvenanceIdentity {
    /// From an in-toto statement's bytes (the provenance's DSSE payload).
    pub fn from_statement(payload: &[u8]) -> Result<Self, String> {
        use serde_json::Value;
        let statement: Value =
            serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let predicate = &statement["predicate"];
        let text = |v: Option<&Value>, what: &str| {
            v.and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| format!("the provenance records no {what}"))
        };
        let commit = predicate
            .pointer("/buildDefinition/externalParameters/source/digest/gitCommit")
            .or_else(|| {
                predicate
                    .pointer("/buildDefinition/resolvedDependencies")?
                    .as_array()?
                    .iter()
                    .find(|d| d["name"] == "source")?
                    .pointer("/digest/gitCommit")
            });
        Ok(ProvenanceIdentity {
            commit: text(commit, "source gitCommit")?,
            built_at: text(
                predicate.pointer("/runDetails/metadata/startedOn"),
                "runDetails.metadata.startedOn",
            )?,
            dataset_hash: text(
                predicate.pointer(layout::PROVENANCE_DATASET_HASH),
                "datasetHash",
            )?,
        })
    }

    /// `entry`'s commit, build time and dataset are these, field by field.
    pub fn matches(&self, entry: &PublishedKit) -> Result<(), String> {
        let mut problems = Vec::new();
        for (field, listed, signed) in [
            ("commit", &entry.commit, &self.commit),
            ("built_at", &entry.built_at, &self.built_at),
            ("dataset_hash", &entry.dataset_hash, &self.dataset_hash),
        ] {
            if listed != signed {
                problems.push(format!(
                    "{field} is {} in the index, {} in the kit's signed provenance",
                    escape(listed),
                    escape(signed)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The identity in the kit's provenance, read once (bounded, never through a link), bound to the
/// digest the index lists for it and verified as a DSSE envelope by `key`.
fn provenance_of(
    kit_dir: &Path,
    entry: &PublishedKit,
    key: &PublicKey,
) -> Result<ProvenanceIdentity, String> {
    let name = layout::provenance(&entry.dataset_hash);
    let bytes = read_small(&kit_dir.join(&name), layout::size_cap(&name))
        .map_err(|e| format!("{name} {e}"))?;
    let listed = entry.files.iter().find(|f| f.name == name);
    let digest = Sha256Digest::of(&bytes).to_hex();
    if listed.map(|f| f.sha256.as_str()) != Some(digest.as_str()) {
        return Err(format!(
            "{name} (sha256 {digest}) is not the provenance the index lists"
        ));
    }
    let payload = aoc_sigstore::verify_dsse_bundle(&bytes, key)
        .map_err(|e| format!("{name}: {e}"))?
        .payload;
    ProvenanceIdentity::from_statement(&payload).map_err(|e| format!("{name}: {e}"))
}

/// Size and SHA-256 hex of a file read once, bounded, never through a link: the one hashing
/// read ([`aoc_archive::fs::read_hashed`]), keeping nothing.
fn hash_file(path: &Path, cap: u64) -> Result<(u64, String), ReadProblem> {
    let expect = aoc_archive::fs::Expect::at_most(cap);
    let (size, digest) = aoc_archive::fs::read_hashed(path, expect, &mut std::io::sink())?;
    Ok((size, digest.to_hex()))
}

/// A small file whole, bounded, never through a link: the one bounded read.
fn read_small(path: &Path, cap: u64) -> Result<Vec<u8>, ReadProblem> {
    aoc_archive::fs::read_regular(path, cap).map_err(ReadProblem::from)
}

/// `stella kit verify` / `cargo xtask aoc-verify` on a published directory: checks on stderr
/// (prefixed with the kit version they belong to), the report as JSON on stdout when asked, the
/// summary naming each kit; returns the exit code.
pub fn run(dir: &Path, opts: &VerifyOptions, json: bool, tool: &str) -> u8 {
    let progress = aoc_term::Progress::spinner(format!("{tool}: verifying"));
    let report = verify_published_with(dir, opts, &mut |scope, c| {
        match scope {
            Some(v) => aoc_term::say(format!("  [{v}]{}", render_check(c))),
            None => aoc_term::say(render_check(c)),
        }
        progress.set_message(format!(
            "{tool}: {} {}",
            scope.unwrap_or("manifest"),
            c.check
        ));
    });
    drop(progress);
    let summary = report.summary(tool);
    if json {
        let why = summary.first().map_or("", String::as_str);
        aoc_term::failure::print_report(&report, report.exit_code, why);
    }
    for line in summary {
        eprintln!("{line}");
    }
    report.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit(version: &str) -> PublishedKit {
        let sums = "a".repeat(64);
        PublishedKit {
            version: version.into(),
            commit: "c".repeat(40),
            dataset_hash: "d".repeat(64),
            key_id: "k".into(),
            built_at: "2023-11-14T22:13:20Z".into(),
            sha256sums_sha256: sums.clone(),
            files: vec![PublishedFile {
                name: layout::SUMS.into(),
                size: 10,
                sha256: sums,
            }],
        }
    }

    #[test]
    fn versions_sort_with_numbers_compared_as_numbers() {
        let mut v = vec!["0.10.0-aa", "0.9.1-bb", "0.9.0-cc", "1.0.0", "0.9.0"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, ["0.9.0", "0.9.0-cc", "0.9.1-bb", "0.10.0-aa", "1.0.0"]);
    }

    #[test]
    fn a_manifest_round_trips_and_keeps_version_order() {
        let mut m = OfflineKitManifest::new("k");
        m.upsert(kit("0.10.0"));
        m.upsert(kit("0.9.0"));
        m.upsert(kit("0.10.0"));
        let parsed = OfflineKitManifest::parse(&m.render()).unwrap();
        assert_eq!(parsed, m);
        let versions: Vec<&str> = parsed.kits.iter().map(|k| k.version.as_str()).collect();
        assert_eq!(versions, ["0.9.0", "0.10.0"]);
    }

    #[test]
    fn a_manifest_of_another_schema_or_with_unsafe_names_is_refused() {
        let good = OfflineKitManifest {
            kits: vec![kit("1.0.0")],
            ..OfflineKitManifest::new("k")
        };
        let mut value: serde_json::Value = serde_json::from_slice(&good.render()).unwrap();
        value["schema_version"] = 3.into();
        let err = OfflineKitManifest::parse(value.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("schema_version"), "{err}");
        // Schema 2 carries a sequence, schema 1 none (read as 0).
        let mut value: serde_json::Value = serde_json::from_slice(&good.render()).unwrap();
        value.as_object_mut().unwrap().remove("sequence");
        assert!(OfflineKitManifest::parse(value.to_string().as_bytes()).is_err());
        value["schema_version"] = 1.into();
        let legacy = OfflineKitManifest::parse(value.to_string().as_bytes()).unwrap();
        assert_eq!((legacy.schema_version, legacy.sequence), (1, 0));
        value["sequence"] = 4.into();
        assert!(OfflineKitManifest::parse(value.to_string().as_bytes()).is_err());

        let mut value: serde_json::Value = serde_json::from_slice(&good.render()).unwrap();
        value["extra"] = true.into();
        assert!(OfflineKitManifest::parse(value.to_string().as_bytes()).is_err());

        for (field, bad) in [
            ("version", "../escape"),
            ("version", ".hidden"),
            ("key_id", "another"),
        ] {
            let mut m = good.clone();
            match field {
                "version" => m.kits[0].version = bad.into(),
                _ => m.kits[0].key_id = bad.into(),
            }
            assert!(m.check().is_err(), "{field}={bad}");
        }
        let mut m = good.clone();
        m.kits[0].files[0].name = "../SHA256SUMS".into();
        assert!(m.check().is_err());
        // Every digest is 64 lowercase hex digits; the error names the field, the value
        // (escaped) and the cause.
        let cases = [
            ("dataset_hash", "D".repeat(64)),
            ("sha256sums_sha256", "a".repeat(63)),
            ("SHA256SUMS sha256", format!("{}\u{1b}[2J", "a".repeat(60))),
        ];
        for (field, bad) in cases {
            let mut m = good.clone();
            let kit = &mut m.kits[0];
            match field {
                "dataset_hash" => kit.dataset_hash = bad.clone(),
                "sha256sums_sha256" => kit.sha256sums_sha256 = bad.clone(),
                _ => kit.files[0].sha256 = bad.clone(),
            }
            let err = m.check().unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "kit 1.0.0: {field} {} is not 64 lowercase hex digits: it ",
                    escape(&bad)
                )),
                "{err}"
            );
            assert!(!err.contains('\u{1b}'), "not escaped: {err:?}");
        }
        let mut m = good;
        let again = m.kits[0].files[0].clone();
        m.kits[0].files.push(again);
        assert!(m.check().is_err(), "a file listed twice");
    }
}
