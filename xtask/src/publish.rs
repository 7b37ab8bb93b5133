//! `cargo xtask aoc-publish` (and `aoc-release --publish`): copies a verified kit to a directory
//! or an S3-compatible bucket, so that a reader never sees part of a kit.
//!
//! Layout under the URL's prefix: `<version>/<kit files>`, and the signed offline-kit manifest
//! `offline-kit.json` + `offline-kit.json.sigstore.json` with the key `cosign.pub` (manifest.rs;
//! types and verifier in `aoc_kit::published`). `stella kit verify` and `cargo xtask aoc-verify`
//! verify a copy of the prefix end to end.
//!
//! Publishing signs the manifest, so it needs the signing key (`COSIGN_KEY` / `COSIGN_KEY_B64`
//! with `COSIGN_PASSWORD`, or the dev key with `COSIGN_ALLOW_DEV_KEY=1`, as the release selects
//! it), and that key must be the one that signed the kit and the prefix's `cosign.pub`.
//!
//! 0. The prefix's `cosign.pub` is the signing key's (written when absent), or nothing happens.
//! 1. The local kit is copied, each file read once through the opener of untrusted files (a
//!    link, FIFO or device is refused), into a private temporary directory; the copy must pass
//!    `aoc-verify`'s checks ([`verify::verify_kit`]) against the signing key (or `--key`, which
//!    must be the same key), and everything after reads only the copy.
//! 2. `<version>/SHA256SUMS` already there: identical → nothing to upload (only the index is made
//!    sure of); different → refused, unless `--force`, which first deletes the old SHA256SUMS so
//!    the old kit stops "existing" before any of its files change. Before that, and before any
//!    upload, the index must be one this publisher would extend ([`manifest::check`]).
//! 3. Upload: the artefacts, then `SHA256SUMS.sigstore.json`, then `SHA256SUMS` last. A kit
//!    exists only once its SHA256SUMS does, so an interrupted upload leaves nothing that looks
//!    complete, and re-running overwrites the orphans.
//! 4. Read every object back, check its SHA-256 against SHA256SUMS, and run the verifier on the
//!    downloaded copy; on failure SHA256SUMS is deleted again (the kit is withdrawn).
//! 5. Add the kit to the manifest and sign it, by compare-and-swap (manifest.rs): only an index
//!    whose signature verifies and whose sequence is not older than the publisher's state
//!    (state.rs) records is extended; an index someone else changed is never signed.

mod destination;
mod dir;
mod kit_info;
mod manifest;
mod s3;
mod state;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aoc_digest::Sha256Digest;

use aoc_kit::published::{PublishedFile, PublishedKit, MANIFEST};
use aoc_sigstore::SelectedKey;

use crate::kit;
use crate::verify::{self, VerifyOptions};
use destination::Destination;
use kit_info::KitInfo;
use state::State;
use store::Store;

/// Test hook: stop with an error after this many objects were uploaded (an interrupted upload).
pub const FAIL_AFTER_ENV: &str = "AOC_PUBLISH_FAIL_AFTER";

/// `cargo xtask aoc-publish`
#[derive(clap::Args)]
pub struct Cmd {
    /// The kit directory.
    #[arg(long, default_value = "out/aoc")]
    dir: PathBuf,
    /// Where to publish: a directory, file:///abs/path, or s3://bucket/prefix (endpoint, region
    /// and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    url: String,
    /// The version directory [default: <runner version>-<12 hex of the commit>, from the kit].
    #[arg(long)]
    version: Option<String>,
    /// Replace a different kit already published under the same version.
    #[arg(long)]
    force: bool,
    /// The public key the kit must verify against [default: the signing key's]; it must be the
    /// signing key's.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The publisher's state file: the sequence of every index it signed, per prefix, so an
    /// older index put back in the bucket is refused [env: AOC_PUBLISH_STATE; default:
    /// $XDG_STATE_HOME/aoc-publish/state.json, else ~/.local/state/aoc-publish/state.json].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Output: text (progress and summary on stderr, the kit's location on stdout) or json.
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

impl Cmd {
    pub fn run(self) -> Result<()> {
        // Paths the user typed are relative to where cargo was run, not the shell's root.
        let cwd = std::env::current_dir()?;
        let mut opts = PublishOptions::from_process_env(&crate::project_root())?;
        opts.version = self.version;
        opts.force = self.force;
        opts.key = self.key.map(|k| cwd.join(k));
        if let Some(state) = self.state {
            opts.state = State::at(cwd.join(state));
        }
        let done = publish_with(&cwd.join(&self.dir), &self.url, &opts)?;
        if done.unchanged {
            eprintln!(
                "aoc-publish: version {} was already published: no-op",
                done.version
            );
        } else {
            eprintln!(
                "aoc-publish: published version {} ({} objects)",
                done.version, done.uploaded
            );
        }
        if self.output.format.is_json() {
            aoc_term::print_json(&done.to_json())?;
        } else {
            // The one line of data: where the kit now is.
            crate::print_line(&done.location)?;
        }
        Ok(())
    }
}

pub struct PublishOptions {
    /// `None`: [`KitInfo::default_version`].
    pub version: Option<String>,
    pub force: bool,
    /// `None`: the signing key's public key.
    pub key: Option<PathBuf>,
    /// The key that signs the offline-kit manifest: the kit's own.
    pub signing: SelectedKey,
    /// Progress on stderr.
    pub print: bool,
    /// The `AWS_*` variables for an s3:// URL, passed in so tests never mutate the process env.
    pub env: BTreeMap<String, String>,
    /// See [`FAIL_AFTER_ENV`].
    pub fail_after: Option<usize>,
    /// `AOC_REQUIRE_PROD_KEY=1` (the release workflow): refuse a kit signed with the dev key.
    pub env_require_prod_key: bool,
    /// The publisher's own record of the indexes it signed (`--state`).
    pub state: State,
    /// How long an index without a matching signature is waited for (`AOC_PUBLISH_SETTLE_SECS`).
    pub settle: std::time::Duration,
}

impl PublishOptions {
    /// Options from the process environment; the signing key is selected as the release selects
    /// it (`root` holds the dev key).
    pub fn from_process_env(root: &Path) -> Result<Self> {
        let fail_after = match std::env::var(FAIL_AFTER_ENV) {
            Ok(v) if !v.is_empty() => Some(
                v.parse()
                    .with_context(|| format!("{FAIL_AFTER_ENV}={v:?} is not a count"))?,
            ),
            _ => None,
        };
        let signing = aoc_sigstore::select_signing_key(|k| std::env::var(k).ok(), root)
            .map_err(|e| anyhow::anyhow!("{e} (publishing signs the offline-kit manifest)"))?;
        Ok(PublishOptions {
            version: None,
            force: false,
            key: None,
            signing,
            print: true,
            env: destination::aws_env(),
            fail_after,
            env_require_prod_key: std::env::var("AOC_REQUIRE_PROD_KEY").is_ok_and(|v| v == "1"),
            state: State::at(State::default_path(|k| std::env::var(k).ok())?),
            settle: settle_from_env()?,
        })
    }
}

/// [`manifest::SETTLE`], or `AOC_PUBLISH_SETTLE_SECS`.
fn settle_from_env() -> Result<std::time::Duration> {
    match std::env::var(manifest::SETTLE_ENV) {
        Ok(v) if !v.is_empty() => Ok(std::time::Duration::from_secs(v.parse().with_context(
            || format!("{}={v:?} is not a number of seconds", manifest::SETTLE_ENV),
        )?)),
        _ => Ok(manifest::SETTLE),
    }
}

/// What a publish did.
#[derive(Debug)]
pub struct Published {
    /// Where the kit is: `<url>/<version>`.
    pub location: String,
    pub version: String,
    /// Objects written (0 for an identical re-publish).
    pub uploaded: usize,
    /// The identical kit was already there.
    pub unchanged: bool,
}

impl Published {
    /// `--format json`: what the publish did, as one document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": true,
            "location": self.location,
            "version": self.version,
            "uploaded": self.uploaded,
            "unchanged": self.unchanged,
        })
    }
}

/// `aoc-release --publish URL`: [`publish_with`] with the defaults, the process environment and
/// the release's own signing key. Returns where the kit went (for an s3:// URL, the URL as a
/// path, for display).
pub fn publish(dir: &Path, url: &str, signing: &SelectedKey) -> Result<PathBuf> {
    let opts = PublishOptions {
        version: None,
        force: false,
        key: None,
        signing: SelectedKey {
            signer: signing.signer.clone(),
            description: signing.description.clone(),
        },
        print: true,
        env: destination::aws_env(),
        fail_after: None,
        env_require_prod_key: std::env::var("AOC_REQUIRE_PROD_KEY").is_ok_and(|v| v == "1"),
        state: State::at(State::default_path(|k| std::env::var(k).ok())?),
        settle: settle_from_env()?,
    };
    let done = publish_with(dir, url, &opts)?;
    Ok(PathBuf::from(done.location))
}

/// Publishes the kit in `dir` to `url`; see the module documentation for the protocol.
pub fn publish_with(dir: &Path, url: &str, opts: &PublishOptions) -> Result<Published> {
    let say = |msg: String| {
        if opts.print {
            aoc_term::say(format!("aoc-publish: {msg}"));
        }
    };
    let dest = Destination::parse(url)?;
    let spinner = opts
        .print
        .then(|| aoc_term::Progress::spinner("aoc-publish: verifying the kit"));
    let local = LocalKit::read(dir, opts)?;
    drop(spinner);
    let version = match &opts.version {
        Some(v) => v.clone(),
        None => local.info.default_version()?,
    };
    aoc_kit::published::check_version(&version).map_err(anyhow::Error::msg)?;
    let store = dest.open(&opts.env)?;
    let store = store.as_ref();
    manifest::claim_prefix(store, &opts.signing.signer)?;
    let key = |name: &str| format!("{version}/{name}");
    let location = store.url(&version);
    say(format!(
        "kit {} (dataset {}, commit {}) → {location}",
        dir.display(),
        local.info.dataset_hash,
        local.info.commit
    ));

    let (mut unchanged, mut replace) = (false, false);
    match store.get(&key(kit::SUMS))? {
        Some(remote) if remote.bytes == local.sums_text => unchanged = true,
        Some(_) if !opts.force => bail!(
            "{location} already holds a different kit (its SHA256SUMS differs): publish under \
             another --version, or pass --force to replace it"
        ),
        Some(_) => replace = true,
        None => {}
    }

    // The manifest this kit will be added to must be one this publisher may sign (its signature
    // verifies, or it is this publisher's own interrupted write; not older than the state
    // records): refused here, before anything is withdrawn or uploaded.
    let entry = local.manifest_entry(&version);
    let policy = manifest::Policy {
        state: &opts.state,
        settle: opts.settle,
    };
    manifest::check(store, &entry, opts.force, &opts.signing.signer, &policy)?;
    if replace {
        say(format!(
            "--force: withdrawing the kit at {location} before replacing it"
        ));
        store.delete(&key(kit::SUMS))?;
    }

    let mut uploaded = 0;
    if unchanged {
        say(format!(
            "{location} already holds this kit: nothing to upload"
        ));
    } else {
        let order = local.upload_order();
        let progress = if opts.print {
            aoc_term::Progress::bar(order.len() as u64, "aoc-publish: uploading")
        } else {
            aoc_term::Progress::hidden()
        };
        for name in order {
            if opts.fail_after == Some(uploaded) {
                bail!(
                    "{FAIL_AFTER_ENV}={uploaded}: simulated interruption after {uploaded} objects"
                );
            }
            let bytes = local.read_checked(&name)?;
            store.put(&key(&name), &bytes)?;
            uploaded += 1;
            progress.inc(1);
            say(format!("uploaded {name} ({} bytes)", bytes.len()));
        }
        drop(progress);
        let spinner = opts
            .print
            .then(|| aoc_term::Progress::spinner("aoc-publish: reading back and verifying"));
        let read = read_back(store, &version, &local, opts);
        drop(spinner);
        if let Err(e) = read {
            // The kit became visible with its SHA256SUMS; it does not verify, so withdraw it.
            store.delete(&key(kit::SUMS))?;
            return Err(e.context(format!(
                "the kit read back from {location} does not verify; its SHA256SUMS was deleted \
                 again, so it is not published"
            )));
        }
        say(format!("read back {} objects: verified", local.files.len()));
    }

    let updated = manifest::update(store, &entry, opts.force, &opts.signing.signer, &policy)?;
    say(format!(
        "{} {} ({} concurrent update(s) retried)",
        store.url(MANIFEST),
        if updated.unchanged {
            "already lists it"
        } else {
            "updated and signed"
        },
        updated.conflicts
    ));
    Ok(Published {
        location,
        version,
        uploaded,
        unchanged,
    })
}

/// The local kit, copied privately and verified, with its SHA256SUMS.
struct LocalKit {
    /// The private copy: the only place a publish reads the kit from after copying it.
    copy: tempfile::TempDir,
    info: KitInfo,
    sums_text: Vec<u8>,
    /// Every kit file → SHA-256: SHA256SUMS' entries, plus SHA256SUMS and its signature.
    files: BTreeMap<String, Sha256Digest>,
    /// Every kit file → its size in bytes.
    sizes: BTreeMap<String, u64>,
}

impl LocalKit {
    fn read(dir: &Path, opts: &PublishOptions) -> Result<LocalKit> {
        let copy = private_copy(dir)?;
        let signing = opts.signing.signer.public_key();
        let trusted = match &opts.key {
            Some(path) => verify::TrustedKey::load(path).map_err(anyhow::Error::msg)?,
            None => verify::TrustedKey {
                key: signing.clone(),
                path: format!("the signing key {}", signing.key_id()),
            },
        };
        if trusted.key.key_id() != signing.key_id() {
            bail!(
                "--key {} is key {}, but this publish signs with key {}: the manifest is signed \
                 with the kit's key",
                trusted.path,
                trusted.key.key_id(),
                signing.key_id()
            );
        }
        let report = verify::verify_with_key(
            copy.path(),
            Some(trusted),
            &VerifyOptions {
                // Publishing applies its own key policy below; origin is the site's to prove.
                allow_dev_key: true,
                ..VerifyOptions::default()
            },
            false,
        );
        if !report.intact() {
            let lines: Vec<String> = report
                .failures()
                .map(|f| format!("{} {}: {}", f.check, f.file, f.detail))
                .collect();
            bail!(
                "{} does not verify (aoc-verify exit {}), so it is not published: {}",
                dir.display(),
                report.exit_code,
                lines.join("; ")
            );
        }
        if report.key.is_dev {
            if opts.env_require_prod_key {
                bail!(
                    "{} is signed with the public dev key and AOC_REQUIRE_PROD_KEY=1: a dev-key \
                     kit is never published as a release",
                    dir.display()
                );
            }
            if opts.print {
                aoc_term::say(
                    "aoc-publish: WARNING: this kit is signed with the PUBLIC DEV KEY: publish it \
                     for rehearsals only",
                );
            }
        }
        // The copy is private: the SHA256SUMS read here is the one just verified.
        let sums_text = std::fs::read(copy.path().join(kit::SUMS))?;
        let sums = aoc_archive::Sha256Sums::parse(&sums_text)
            .with_context(|| format!("parsing {}", kit::SUMS))?;
        let mut files: BTreeMap<String, Sha256Digest> = sums
            .iter()
            .map(|(name, digest)| (name.to_string(), *digest))
            .collect();
        files.insert(kit::SUMS.into(), Sha256Digest::of(&sums_text));
        let bundle = std::fs::read(copy.path().join(kit::SUMS_BUNDLE))?;
        files.insert(kit::SUMS_BUNDLE.into(), Sha256Digest::of(&bundle));
        let mut sizes = BTreeMap::new();
        for name in files.keys() {
            let len = std::fs::metadata(copy.path().join(name))
                .with_context(|| format!("reading {name}"))?
                .len();
            sizes.insert(name.clone(), len);
        }
        let info = KitInfo::read(copy.path())?;
        if info.key_id != signing.key_id() {
            bail!(
                "{} is signed by key {}, this publish signs with key {}",
                dir.display(),
                info.key_id,
                signing.key_id()
            );
        }
        Ok(LocalKit {
            copy,
            info,
            sums_text,
            files,
            sizes,
        })
    }

    /// The artefacts by name, then SHA256SUMS' signature, then SHA256SUMS: the kit "exists"
    /// only once its last object does.
    fn upload_order(&self) -> Vec<String> {
        let mut order: Vec<String> = self
            .files
            .keys()
            .filter(|n| *n != kit::SUMS && *n != kit::SUMS_BUNDLE)
            .cloned()
            .collect();
        order.push(kit::SUMS_BUNDLE.into());
        order.push(kit::SUMS.into());
        order
    }

    /// A kit file's bytes from the private copy, re-checked against the digest verified earlier.
    fn read_checked(&self, name: &str) -> Result<Vec<u8>> {
        let bytes = std::fs::read(self.copy.path().join(name))
            .with_context(|| format!("reading {name}"))?;
        let actual = Sha256Digest::of(&bytes);
        if self.files.get(name) != Some(&actual) {
            bail!("{name} changed after the kit was verified (sha256 now {actual}): not uploading");
        }
        Ok(bytes)
    }

    fn manifest_entry(&self, version: &str) -> PublishedKit {
        PublishedKit {
            version: version.to_string(),
            commit: self.info.commit.clone(),
            dataset_hash: self.info.dataset_hash.clone(),
            key_id: self.info.key_id.clone(),
            built_at: self.info.built_at.clone(),
            sha256sums_sha256: self.files[kit::SUMS].to_string(),
            files: self
                .files
                .iter()
                .map(|(name, sha256)| PublishedFile {
                    name: name.clone(),
                    size: self.sizes[name],
                    sha256: sha256.to_string(),
                })
                .collect(),
        }
    }
}

/// Copies every file of the kit directory `dir` into a private temporary directory, each read
/// once through the opener of untrusted files (`aoc_archive::fs::open_regular`: bounded by its
/// kind's size cap, never through a link, never blocking on a FIFO); anything in `dir` that is
/// not a regular file is refused. The copy is what is verified and uploaded, so nothing done to
/// `dir` afterwards changes what is published.
fn private_copy(dir: &Path) -> Result<tempfile::TempDir> {
    use std::io::{Read, Write};
    let copy = tempfile::Builder::new()
        .prefix("aoc-publish-kit-")
        .tempdir()
        .context("creating a private directory for the kit's copy")?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let raw = entry?.file_name();
        let shown = aoc_term::escape_os(&raw);
        let name = raw
            .to_str()
            .with_context(|| format!("{}: {shown} is not a kit file name", dir.display()))?;
        let expect = aoc_archive::fs::Expect::at_most(aoc_kit::layout::size_cap(name));
        let (file, size) = aoc_archive::fs::open_regular(&dir.join(name), expect)
            .map_err(|e| anyhow::anyhow!("{}: {shown} {e}", dir.display()))?;
        let target = copy.path().join(name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let copied = std::io::copy(&mut file.take(size + 1), &mut out)
            .with_context(|| format!("copying {shown}"))?;
        if copied != size {
            bail!(
                "{}: {shown} changed size while it was copied",
                dir.display()
            );
        }
        out.flush()?;
        if name == kit::VERIFY_SCRIPT {
            aoc_archive::fs::set_mode(&target, aoc_archive::fs::EXEC_MODE)?;
        }
    }
    Ok(copy)
}

/// Downloads every object of the kit into a temporary directory, checking each digest, then
/// runs the verifier over the copy.
fn read_back(
    store: &dyn Store,
    version: &str,
    local: &LocalKit,
    opts: &PublishOptions,
) -> Result<()> {
    let copy = tempfile::Builder::new()
        .prefix("aoc-publish-readback-")
        .tempdir()
        .context("creating a temporary directory for the read-back")?;
    for (name, expected) in &local.files {
        let key = format!("{version}/{name}");
        let object = store
            .get(&key)?
            .with_context(|| format!("{} is missing right after its upload", store.url(&key)))?;
        let actual = Sha256Digest::of(&object.bytes);
        if &actual != expected {
            bail!(
                "{} reads back with sha256 {actual}, SHA256SUMS lists {expected}",
                store.url(&key)
            );
        }
        std::fs::write(copy.path().join(name), &object.bytes)?;
    }
    let script = copy.path().join(kit::VERIFY_SCRIPT);
    if script.exists() {
        // Object stores keep no file modes; the downloaded verify-kit.sh gets its 0755 back.
        aoc_archive::fs::set_mode(&script, aoc_archive::fs::EXEC_MODE)?;
    }
    let signing = opts.signing.signer.public_key();
    let trusted = verify::TrustedKey {
        key: signing.clone(),
        path: format!("the signing key {}", signing.key_id()),
    };
    let report = verify::verify_with_key(
        copy.path(),
        Some(trusted),
        &VerifyOptions {
            allow_dev_key: true,
            ..VerifyOptions::default()
        },
        false,
    );
    if let Some(f) = report.failures().find(|f| f.class != verify::Class::Origin) {
        bail!(
            "aoc-verify on the downloaded copy failed (exit {}): {} {}: {}",
            report.exit_code,
            f.check,
            f.file,
            f.detail
        );
    }
    Ok(())
}
