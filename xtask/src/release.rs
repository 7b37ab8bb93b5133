//! `cargo xtask aoc-release`: builds, signs and self-verifies the offline kit (docs/ARCHITECTURE.md §3.3).
//!
//! Plan: check the signing key and `DATASET_HASH` (before anything expensive) → dataset (seconds;
//! a wrong pin fails here, before the minutes of the runner build) → the rehearsal report for that
//! dataset, when there is one → build `stella` reproducibly → pack the runner tarball → SBOMs →
//! sign the runner → `verify-kit.sh` and `cosign.pub` → provenance → SHA256SUMS and its signature
//! → self-verify with the code of `aoc-verify` → rename the staging directory to the kit's name →
//! publish when asked.
//!
//! Everything is written into `<out>.tmp-XXXX` next to the kit; it gets the kit's name only after
//! self-verification passed, so a failed run never leaves a kit that looks complete.

#[cfg(test)]
mod auditable_tests;
#[cfg(test)]
mod portable_tests;
#[cfg(test)]
mod production_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aoc_digest::Sha256Digest;
use xshell::{cmd, Shell};

use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, select_signing_key, statement_json, SelectedKey,
    Subject, IN_TOTO_PAYLOAD_TYPE,
};

use crate::dataset_definition::{display_rel, explicit_epoch, DatasetSpec, EPOCH_VAR};
use crate::kit::{self, provenance};
use crate::rehearsal::report::{stage_for_kit, Lookup as RehearsalLookup};
use crate::sbom::{self, Artifact, SbomOptions};
use crate::steps::Steps;
use crate::verify::{self, VerifyOptions};

/// `DATASET_HASH` value that accepts whatever dataset the build produces (rehearsals only).
pub const DATASET_PLACEHOLDER: &str = "dev-rehearsal-placeholder";

/// Environment variables the release reads; everything else comes from flags.
const ENV_KEYS: &[&str] = &[
    "COSIGN_KEY",
    "COSIGN_KEY_B64",
    "COSIGN_PASSWORD",
    "COSIGN_ALLOW_DEV_KEY",
    "AOC_REQUIRE_PROD_KEY",
    "DATASET_HASH",
    EPOCH_VAR,
];

/// The production public key, committed: with `AOC_REQUIRE_PROD_KEY=1` the signing key must be
/// the one it names (the workflow verifies the kit against it after the build).
pub const PROD_PUBLIC_KEY: &str = "tools/cosign/cosign.pub";

/// `cargo xtask aoc-release`
#[derive(clap::Args)]
pub struct Cmd {
    /// The kit directory to produce (replaced only once the new kit has verified).
    #[arg(long, default_value = "out/aoc")]
    out: PathBuf,
    /// A dataset definition (JSON naming inputs and clock), or dataset inputs (OSV/CSAF files or
    /// directories, NDJSON feeds, dataset tarballs), which then need --dataset-epoch
    /// [default: the repository's seed/dataset.json].
    #[arg(long = "dataset-from", num_args = 1..)]
    dataset_from: Vec<PathBuf>,
    /// The clock of --dataset-from inputs given without a definition: seconds since 1970 or
    /// RFC 3339. Refused with a definition, which carries its own.
    #[arg(long, env = EPOCH_VAR)]
    dataset_epoch: Option<String>,
    /// Publish the verified kit: a directory path or file:// URL.
    #[arg(long)]
    publish: Option<String>,
    /// Use this `stella` instead of building it (benchmarks; the binary must be a release build).
    #[arg(long, hide = true)]
    runner_binary: Option<PathBuf>,
    /// The dev rehearsal's report to carry in the kit; it must rehearse the kit's dataset
    /// [default: out/rehearsal/rehearsal-<hash>.json when it exists].
    #[arg(long)]
    rehearsal_report: Option<PathBuf>,
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let cwd = std::env::current_dir()?;
        let mut env = ReleaseOptions::process_env();
        if let Some(e) = self.dataset_epoch {
            env.insert(EPOCH_VAR.to_string(), e);
        }
        let opts = ReleaseOptions {
            out: cwd.join(self.out),
            dataset_from: self.dataset_from.iter().map(|p| cwd.join(p)).collect(),
            publish: self.publish,
            runner_binary: self.runner_binary.map(|p| cwd.join(p)),
            epoch: None,
            env,
            print: true,
        };
        let lookup = match self.rehearsal_report {
            Some(p) => RehearsalLookup::File(cwd.join(p)),
            None => RehearsalLookup::InDir(cwd.join(crate::rehearsal::DEFAULT_OUT)),
        };
        let done = release_carrying(sh, &opts, &lookup)?;
        print_summary(&done);
        if self.output.format.is_json() {
            aoc_term::print_json(&summary_json(&done))?;
        }
        Ok(())
    }
}

/// `--format json`: what the release produced, as one document.
pub fn summary_json(r: &Release) -> serde_json::Value {
    serde_json::json!({
        "ok": true,
        "dir": r.dir,
        "dataset_hash": r.dataset_hash,
        "dataset_pin": r.dataset_pin,
        "key_id": r.key.key_id,
        "dev_key": r.key.is_dev,
        "rehearsal_report": r.rehearsal_report,
        "published": r.published,
        "dirty": r.dirty,
        "files": r.files.iter().map(|(name, bytes, sha256)| {
            serde_json::json!({ "name": name, "bytes": bytes, "sha256": sha256 })
        }).collect::<Vec<_>>(),
        "steps": r.steps.iter().map(|(name, took)| {
            serde_json::json!({ "name": name, "seconds": took.as_secs_f64() })
        }).collect::<Vec<_>>(),
    })
}

pub struct ReleaseOptions {
    /// Absolute kit directory.
    pub out: PathBuf,
    /// Absolute dataset inputs, or one dataset definition; empty for `seed/dataset.json`.
    pub dataset_from: Vec<PathBuf>,
    pub publish: Option<String>,
    /// Skip the cargo build and pack this binary.
    pub runner_binary: Option<PathBuf>,
    /// SOURCE_DATE_EPOCH; `None` reads it (or the last commit's time). Also the clock of
    /// `dataset_from` inputs given without a definition when `env` has no `AOC_DATASET_EPOCH`
    /// (callers that pin every clock); never a definition's clock.
    pub epoch: Option<i64>,
    /// The environment the release sees (keys, DATASET_HASH, AOC_DATASET_EPOCH), passed in so
    /// tests never mutate the process environment.
    pub env: BTreeMap<String, String>,
    /// Progress lines and the self-check's per-check lines on stderr.
    pub print: bool,
}

impl ReleaseOptions {
    pub fn process_env() -> BTreeMap<String, String> {
        ENV_KEYS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect()
    }
}

/// What a release produced.
pub struct Release {
    pub dir: PathBuf,
    pub steps: Vec<(String, Duration)>,
    /// (name, bytes, sha256) of every kit file, by name.
    pub files: Vec<(String, u64, Sha256Digest)>,
    pub key: aoc_sigstore::KeyDescription,
    pub dataset_hash: String,
    pub dataset_pin: Option<String>,
    pub published: Option<PathBuf>,
    pub dirty: bool,
    /// The rehearsal report the kit carries (`rehearsal-<hash>.json`), if any.
    pub rehearsal_report: Option<String>,
}

/// Runs the whole plan (see the module documentation) for a kit without a rehearsal report.
pub fn release(sh: &Shell, opts: &ReleaseOptions) -> Result<Release> {
    release_carrying(sh, opts, &RehearsalLookup::Off)
}

/// [`release`], carrying the rehearsal report that `rehearsal` finds for the kit's dataset.
pub fn release_carrying(
    sh: &Shell,
    opts: &ReleaseOptions,
    rehearsal: &RehearsalLookup,
) -> Result<Release> {
    let root = sh.current_dir();
    let env = |k: &str| opts.env.get(k).cloned();
    let (key, pin) = preconditions(&root, opts)?;
    let epoch = match opts.epoch {
        Some(e) => e,
        None => crate::epoch::source_date_epoch(sh)?,
    };
    let spec = DatasetSpec::resolve(
        &root,
        &opts.dataset_from,
        explicit_epoch(env(EPOCH_VAR).as_deref())?,
        opts.epoch,
    )?;
    let out = &opts.out;
    // Removed on every early return; kept (renamed) only after self-verification.
    let staging = staging_dir(out)?;
    let stage = staging.path().to_path_buf();
    // A second SIGINT/SIGTERM ends the process at once, without the drop: removed then too.
    let on_signal = aoc_term::interrupt::remove_on_exit(stage.clone());

    let mut steps = Steps::new("aoc-release", opts.print).with_progress();
    if opts.print {
        print_plan(&key, epoch, &spec, &root, &stage);
    }

    let dataset = steps.run("dataset", || build_dataset(&spec, &stage, pin.as_deref()))?;
    let mut kit = KitWriter {
        sh,
        opts,
        root: &root,
        key: &key,
        pin: pin.as_deref(),
        epoch,
        hash: dataset.hash,
        carried: Vec::new(),
        digests: Digests::new(&stage),
        stage,
    };
    kit.digests.file(&kit::dataset_tarball(&kit.hash))?;
    kit.digests.file(&kit::dataset_manifest(&kit.hash))?;
    kit.carried = steps.run("rehearsal report", || {
        stage_for_kit(rehearsal, &kit.hash, &kit.stage)
    })?;
    for name in &kit.carried {
        kit.digests.file(name)?;
    }

    // Cargo draws its own progress: no spinner over it.
    let binary = steps.run_plain("build runner", || runner_binary(sh, &root, opts))?;
    let tarball = kit.stage.join(kit::RUNNER_TARBALL);
    let packed = steps.run("pack runner", || {
        kit::runner::pack(&root, &binary, &tarball, epoch)
    })?;
    kit.digests
        .record(kit::RUNNER_TARBALL, packed.archive_sha256);
    let binary_sha = packed
        .members
        .iter()
        .find(|m| m.path == kit::BINARY_MEMBER)
        .map(|m| m.sha256)
        .context("the runner tarball has no stella")?;
    steps.run("sboms", || kit.write_sboms(&packed, &binary, binary_sha))?;
    steps.run("sign runner", || kit.sign_runner(&packed))?;
    let source = steps.run("provenance", || kit.write_provenance())?;
    steps.run("checksums", || kit.write_checksums())?;
    steps.run("self-verify", || kit.self_verify())?;
    let files = kit.files()?;
    // From here the staging directory is the verified kit: a signal must not remove it.
    drop(on_signal);
    steps.run("finalise", || finalise(staging, out))?;

    let published = match &opts.publish {
        // Publishing draws its own progress bar.
        Some(url) => Some(steps.run_plain("publish", || crate::publish::publish(out, url, &key))?),
        None => None,
    };

    let KitWriter { hash, carried, .. } = kit;
    Ok(Release {
        dir: out.clone(),
        steps: steps.done,
        files,
        key: key.description,
        dataset_hash: hash,
        dataset_pin: pin,
        published,
        dirty: source.dirty,
        rehearsal_report: carried.into_iter().next(),
    })
}

/// Preconditions first: a missing key or a malformed pin must not cost a release build. The
/// signing key and the dataset pin (`DATASET_HASH`).
fn preconditions(root: &Path, opts: &ReleaseOptions) -> Result<(SelectedKey, Option<String>)> {
    let env = |k: &str| opts.env.get(k).cloned();
    let key = select_signing_key(env, root).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pin = env("DATASET_HASH").filter(|v| !v.is_empty());
    if require_prod_key(env("AOC_REQUIRE_PROD_KEY").as_deref()) {
        check_production(root, &key, pin.as_deref())?;
    }
    if let Some(p) = pin.as_deref().filter(|p| *p != DATASET_PLACEHOLDER) {
        if let Err(e) = Sha256Digest::parse_hex(p) {
            bail!(
                "DATASET_HASH={p:?} is neither a dataset hash (64 lowercase hex) nor \
                 {DATASET_PLACEHOLDER:?}: it {e}; copy the hash from the dataset's file name"
            );
        }
    }
    Ok((key, pin))
}

/// The release's key, clocks, dataset and staging directory, on stderr.
fn print_plan(key: &SelectedKey, epoch: i64, spec: &DatasetSpec, root: &Path, stage: &Path) {
    eprintln!(
        "aoc-release: signing key {} ({}), SOURCE_DATE_EPOCH={epoch}, dataset {} (clock \
         {}), staging {}",
        key.description.key_id,
        key_source(key),
        spec.definition()
            .map_or_else(|| "from explicit inputs".into(), |d| display_rel(root, d)),
        spec.epoch,
        stage.display()
    );
}

/// A staging directory beside `out` (which must be replaceable), removed when dropped.
fn staging_dir(out: &Path) -> Result<tempfile::TempDir> {
    let out_name = out
        .file_name()
        .with_context(|| format!("--out {} has no directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = out.parent().context("--out has no parent directory")?;
    check_replaceable(out)?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(&format!("{out_name}.tmp-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))
}

/// The dataset, built into `stage` under the names the kit expects and checked against the pin.
fn build_dataset(
    spec: &DatasetSpec,
    stage: &Path,
    pin: Option<&str>,
) -> Result<kit::dataset::Built> {
    let built = spec.build(stage)?;
    check_pin(pin, &built.hash, &spec.inputs)?;
    let (archive, manifest) = (
        stage.join(kit::dataset_tarball(&built.hash)),
        stage.join(kit::dataset_manifest(&built.hash)),
    );
    anyhow::ensure!(
        built.archive == archive && built.manifest == manifest,
        "aoc-dataset wrote {} and {}, the kit expects {} and {}",
        built.archive.display(),
        built.manifest.display(),
        archive.display(),
        manifest.display()
    );
    Ok(built)
}

/// The `stella` binary: `--runner-binary`, or built from the workspace.
fn runner_binary(sh: &Shell, root: &Path, opts: &ReleaseOptions) -> Result<PathBuf> {
    match &opts.runner_binary {
        Some(b) => {
            anyhow::ensure!(
                b.is_file(),
                "--runner-binary {} does not exist",
                b.display()
            );
            Ok(b.clone())
        }
        None => kit::runner::build(sh, root),
    }
}

/// The verified staging directory renamed to `out`, replacing the previous kit: the previous
/// kit is renamed aside first and removed last, so that a process ended at any point leaves a
/// whole kit under `out`, its staging name or the aside name, never none.
fn finalise(staging: tempfile::TempDir, out: &Path) -> Result<()> {
    check_replaceable(out)?;
    let kept = staging.keep();
    let aside = out.exists().then(|| {
        let mut name = kept.clone().into_os_string();
        name.push(".previous");
        PathBuf::from(name)
    });
    if let Some(aside) = &aside {
        std::fs::rename(out, aside).with_context(|| {
            format!(
                "moving the previous kit {} aside to {}",
                out.display(),
                aside.display()
            )
        })?;
    }
    if let Err(e) = std::fs::rename(&kept, out) {
        // The previous kit goes back where it was.
        if let Some(aside) = &aside {
            let _ = std::fs::rename(aside, out);
        }
        return Err(e).with_context(|| format!("renaming {} to {}", kept.display(), out.display()));
    }
    if let Some(aside) = &aside {
        std::fs::remove_dir_all(aside)
            .with_context(|| format!("removing the previous kit {}", aside.display()))?;
    }
    Ok(())
}

/// The kit being written in `stage` once its dataset is built: what the steps after it share.
struct KitWriter<'a> {
    sh: &'a Shell,
    opts: &'a ReleaseOptions,
    root: &'a Path,
    key: &'a SelectedKey,
    pin: Option<&'a str>,
    epoch: i64,
    /// The dataset's hash, which names its files.
    hash: String,
    stage: PathBuf,
    /// The optional files the kit carries (the rehearsal report).
    carried: Vec<String>,
    /// Each kit file's SHA-256, computed once where the file is written (or read once when
    /// another library wrote it), and used for the provenance subjects, SHA256SUMS and the
    /// release summary. The self-verify hashes the staged files again on purpose: it is the
    /// verifier as a site runs it, and must not take the writer's word.
    digests: Digests,
}

impl KitWriter<'_> {
    /// The SPDX and CycloneDX SBOMs of the runner tarball and binary (`binary_sha`), checked
    /// against the crate set the binary embeds.
    fn write_sboms(
        &mut self,
        packed: &aoc_archive::PackReport,
        binary: &Path,
        binary_sha: Sha256Digest,
    ) -> Result<()> {
        let sbom = sbom::generate(
            self.sh,
            &SbomOptions {
                epoch: self.epoch,
                runner_tarball: Some(Artifact {
                    name: kit::RUNNER_TARBALL.into(),
                    sha256: packed.archive_sha256,
                }),
                binary: Some(Artifact {
                    name: sbom::RUNNER_BINARY.into(),
                    sha256: binary_sha,
                }),
            },
        )?;
        self.digests.write(kit::SPDX_FILE, &sbom.spdx)?;
        self.digests.write(kit::CDX_FILE, &sbom.cdx)?;
        // What scanners read from the binary (`.dep-v0`) is the SBOM's crate set.
        sbom::auditable::check_binary(binary, &sbom.packages, sbom.root)?;
        Ok(())
    }

    /// The runner tarball's signature, with the verify script and the public key beside it.
    fn sign_runner(&mut self, packed: &aoc_archive::PackReport) -> Result<()> {
        let key = self.key;
        let bundle = message_signature_bundle(&key.signer, &packed.archive_sha256);
        self.digests.write(kit::RUNNER_BUNDLE, bundle.as_bytes())?;
        self.digests.write(
            kit::VERIFY_SCRIPT,
            kit::script::render(&self.hash).as_bytes(),
        )?;
        aoc_archive::fs::set_mode(
            &self.stage.join(kit::VERIFY_SCRIPT),
            aoc_archive::fs::EXEC_MODE,
        )?;
        self.digests
            .write(kit::PUBLIC_KEY, key.signer.public_key().to_pem().as_bytes())?;
        Ok(())
    }

    /// The signed SLSA provenance of the kit's files; the source it records.
    fn write_provenance(&mut self) -> Result<provenance::Source> {
        let (key, hash) = (self.key, &self.hash);
        let source = source_info(self.sh, self.root)?;
        let subjects = kit::with_optional(kit::subject_files(hash), &self.carried)
            .into_iter()
            .map(|name| {
                let sha256 = self.digests.get(&name)?;
                Ok(Subject { name, sha256 })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = provenance::Parameters {
            dataset_from: self
                .opts
                .dataset_from
                .iter()
                .map(|p| display_input(self.root, p))
                .collect(),
            dataset_hash_pin: self.pin.map(str::to_owned),
            dataset_hash: hash.clone(),
        };
        let signing = provenance::Signing {
            key_id: key.description.key_id.clone(),
            source: key_source(key).to_string(),
            is_dev: key.description.is_dev,
        };
        let timestamp = provenance::rfc3339(self.epoch)?;
        let predicate = provenance::predicate(
            &subjects,
            &source,
            &params,
            &signing,
            &kit::runner::recorded_build_flags(),
            &timestamp,
        );
        let statement = statement_json(&subjects, kit::SLSA_PREDICATE_TYPE, &predicate);
        let bundle = dsse_bundle(&key.signer, IN_TOTO_PAYLOAD_TYPE, &statement);
        self.digests
            .write(&kit::provenance(hash), bundle.as_bytes())?;
        Ok(source)
    }

    /// SHA256SUMS of the kit's files, and its signature.
    fn write_checksums(&mut self) -> Result<()> {
        let mut sums = aoc_archive::Sha256Sums::new();
        for name in kit::with_optional(kit::summed_files(&self.hash), &self.carried) {
            let digest = self.digests.get(&name)?;
            sums.insert(name, digest)?;
        }
        let text = sums.render();
        self.digests.write(kit::SUMS, text.as_bytes())?;
        let bundle = message_signature_bundle(&self.key.signer, &self.digests.get(kit::SUMS)?);
        self.digests.write(kit::SUMS_BUNDLE, bundle.as_bytes())?;
        Ok(())
    }

    /// The staged kit, verified as a site verifies it.
    fn self_verify(&self) -> Result<()> {
        let key = self.key;
        // Against the signer's own public key: the dev key is accepted here exactly when the
        // key policy above let the release sign with it.
        let trusted = verify::TrustedKey {
            key: key.signer.public_key().clone(),
            path: format!("the signing key {}", key.description.key_id),
        };
        let report = verify::verify_with_key(
            &self.stage,
            Some(trusted),
            &VerifyOptions {
                allow_dev_key: key.description.is_dev,
                ..VerifyOptions::default()
            },
            self.opts.print,
        );
        if !report.passed() {
            let lines: Vec<String> = report
                .failures()
                .map(|f| format!("{} {}: {}", f.check, f.file, f.detail))
                .collect();
            bail!(
                "the new kit does not verify (exit class {}):\n  {}",
                report.exit_code,
                lines.join("\n  ")
            );
        }
        Ok(())
    }

    /// (name, bytes, sha256) of every kit file, by name.
    fn files(&self) -> Result<Vec<(String, u64, Sha256Digest)>> {
        kit::with_optional(kit::expected_files(&self.hash), &self.carried)
            .into_iter()
            .map(|name| {
                let bytes = std::fs::metadata(self.stage.join(&name))?.len();
                let digest = self.digests.get(&name)?;
                Ok((name, bytes, digest))
            })
            .collect()
    }
}

/// `out` may be replaced only when it is absent, empty, or a kit (has SHA256SUMS): never some
/// other directory a typo pointed at.
fn check_replaceable(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    anyhow::ensure!(
        out.is_dir(),
        "--out {} exists and is not a directory",
        out.display()
    );
    let empty = std::fs::read_dir(out)?.next().is_none();
    if !empty && !out.join(kit::SUMS).is_file() {
        bail!(
            "--out {} exists and is not a kit (no SHA256SUMS): refusing to replace it",
            out.display()
        );
    }
    Ok(())
}

/// `AOC_REQUIRE_PROD_KEY` as aoc-sigstore's key policy reads it: set and not `0`/`false`.
fn require_prod_key(value: Option<&str>) -> bool {
    value
        .filter(|v| !v.is_empty())
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// What a production release (`AOC_REQUIRE_PROD_KEY=1`) needs besides a production signing key,
/// checked before anything is built: a dataset pinned to a real hash, and the committed
/// production public key, which must be the signing key's.
fn check_production(root: &Path, key: &SelectedKey, pin: Option<&str>) -> Result<()> {
    match pin {
        None => bail!(
            "AOC_REQUIRE_PROD_KEY=1 needs DATASET_HASH: set it to the hash the dev rehearsal \
             printed (`cargo xtask aoc-rehearsal`)"
        ),
        Some(DATASET_PLACEHOLDER) => bail!(
            "DATASET_HASH={DATASET_PLACEHOLDER} accepts any dataset and AOC_REQUIRE_PROD_KEY=1 \
             refuses it: set DATASET_HASH to the hash the dev rehearsal printed"
        ),
        Some(_) => {}
    }
    let path = root.join(PROD_PUBLIC_KEY);
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "AOC_REQUIRE_PROD_KEY=1 needs the production public key {PROD_PUBLIC_KEY} ({e}): \
             commit the public half of the production key there (`cosign public-key --key ...`)"
        )
    })?;
    let public = aoc_sigstore::PublicKey::from_pem(&pem, PROD_PUBLIC_KEY)
        .map_err(|e| anyhow::anyhow!("{PROD_PUBLIC_KEY} is not a public key: {e}"))?;
    if aoc_sigstore::policy::is_dev_key(&public) {
        bail!(
            "{PROD_PUBLIC_KEY} is the public dev key and AOC_REQUIRE_PROD_KEY=1 refuses it: commit \
             the production public key there"
        );
    }
    let signing = key.signer.public_key().key_id();
    if signing != public.key_id() {
        bail!(
            "the signing key (key id {signing}) is not the production public key \
             {PROD_PUBLIC_KEY} (key id {}): the kit would not verify against it",
            public.key_id()
        );
    }
    Ok(())
}

fn check_pin(pin: Option<&str>, hash: &str, inputs: &[PathBuf]) -> Result<()> {
    match pin {
        None => Ok(()),
        Some(DATASET_PLACEHOLDER) => {
            aoc_term::say(format!(
                "aoc-release: WARNING: DATASET_HASH={DATASET_PLACEHOLDER}: accepting dataset {hash} \
                 UNPINNED (rehearsal only; pin DATASET_HASH={hash} for a real release)"
            ));
            Ok(())
        }
        Some(p) if p == hash => Ok(()),
        Some(p) => bail!(
            "DATASET_HASH pins dataset {p}, but the dataset built from {} has hash {hash}",
            inputs
                .iter()
                .map(|i| i.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Where the key came from, without local paths (they would differ between build machines).
fn key_source(key: &SelectedKey) -> &'static str {
    if key.description.source.starts_with("COSIGN_KEY=") {
        "COSIGN_KEY"
    } else if key.description.source == "COSIGN_KEY_B64" {
        "COSIGN_KEY_B64"
    } else {
        "dev-key tools/cosign/cosign.dev.key"
    }
}

/// An input as recorded in the provenance: relative to the workspace when inside it, else its
/// file name (local paths differ between machines).
fn display_input(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string()),
    }
}

fn source_info(sh: &Shell, root: &Path) -> Result<provenance::Source> {
    let commit = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .read()
        .context("git rev-parse HEAD: the release records the commit it was built from")?;
    let status = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .read()
        .context("git status")?;
    let remote = cmd!(sh, "git remote get-url origin")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .filter(|r| !r.trim().is_empty());
    // Without a remote, the workspace's `repository` names the source: a file:// path would make
    // the provenance (and so the kit) differ between clones.
    let repository = match remote {
        Some(r) => strip_userinfo(r.trim()),
        None => workspace_repository(root)?,
    };
    let lock = std::fs::read(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let rustc = cmd!(sh, "rustc -V").quiet().read().unwrap_or_default();
    Ok(provenance::Source {
        repository: format!("git+{repository}"),
        commit: commit.trim().to_string(),
        dirty: !status.trim().is_empty(),
        cargo_lock_sha256: Sha256Digest::of(&lock),
        rustc: rustc.trim().to_string(),
    })
}

/// `https://user:token@host/x` → `https://host/x`: credentials never go into a kit.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}/{path}")
        }
        None => url.to_string(),
    }
}

fn workspace_repository(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("repository"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .context("Cargo.toml has no `repository` and git has no origin remote")
}

pub fn print_summary(r: &Release) {
    eprintln!();
    eprintln!(
        "aoc-release: kit {} ({} files)",
        r.dir.display(),
        r.files.len()
    );
    for (name, bytes, sha) in &r.files {
        eprintln!("  {sha}  {bytes:>12}  {name}");
    }
    let total: Duration = r.steps.iter().map(|(_, d)| *d).sum();
    eprintln!("  dataset {}", r.dataset_hash);
    match r.dataset_pin.as_deref() {
        Some(DATASET_PLACEHOLDER) => eprintln!("  DATASET_HASH placeholder: dataset NOT pinned"),
        Some(_) => eprintln!("  dataset matches DATASET_HASH"),
        None => eprintln!("  DATASET_HASH unset: dataset not pinned"),
    }
    match &r.rehearsal_report {
        Some(name) => eprintln!("  carries the dev rehearsal report {name}"),
        None => eprintln!("  no rehearsal report for this dataset"),
    }
    eprintln!(
        "  signed by key {} ({})",
        r.key.key_id,
        if r.key.is_dev {
            "DEV KEY"
        } else {
            "production key"
        }
    );
    if let Some(p) = &r.published {
        eprintln!("  published to {}", p.display());
    }
    if r.dirty {
        eprintln!("  WARNING: built from a working tree with uncommitted changes (recorded in the provenance)");
    }
    eprintln!("  total {:.1} s", total.as_secs_f64());
    if r.key.is_dev {
        eprintln!();
        eprintln!("  ************************************************************************");
        eprintln!("  *  THIS KIT IS SIGNED WITH THE PUBLIC DEV KEY (tools/cosign/).         *");
        eprintln!("  *  Anyone can produce this signature: it proves NOTHING about origin.  *");
        eprintln!("  *  Rehearsal only. Never publish or deploy it as a release.            *");
        eprintln!("  ************************************************************************");
    }
}

/// The kit files' SHA-256 digests, each computed once: from the bytes being written, or by reading
/// once a file another library wrote.
struct Digests {
    dir: PathBuf,
    map: BTreeMap<String, Sha256Digest>,
}

impl Digests {
    fn new(dir: &Path) -> Digests {
        Digests {
            dir: dir.to_path_buf(),
            map: BTreeMap::new(),
        }
    }

    /// Writes `bytes` as kit file `name` and records their digest.
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::write(self.dir.join(name), bytes)
            .with_context(|| format!("writing {name} into the kit"))?;
        self.map.insert(name.to_string(), Sha256Digest::of(bytes));
        Ok(())
    }

    /// Records a digest known from the writer (the packed runner tarball).
    fn record(&mut self, name: &str, digest: Sha256Digest) {
        self.map.insert(name.to_string(), digest);
    }

    /// Reads and hashes a kit file that another library wrote.
    fn file(&mut self, name: &str) -> Result<()> {
        let digest = kit::sha256_file(&self.dir.join(name))?;
        self.record(name, digest);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Sha256Digest> {
        self.map
            .get(name)
            .copied()
            .with_context(|| format!("{name} was not written into the kit"))
    }
}

#[cfg(test)]
mod finalise_tests {
    use super::finalise;

    fn staged(parent: &std::path::Path, content: &str) -> tempfile::TempDir {
        let staging = tempfile::Builder::new()
            .prefix("kit.tmp-")
            .tempdir_in(parent)
            .unwrap();
        std::fs::write(staging.path().join("SHA256SUMS"), content).unwrap();
        staging
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The new kit takes the previous one's place; neither the staging nor the aside name is
    /// left; a first kit needs no aside.
    #[test]
    fn a_verified_kit_replaces_the_previous_one_and_leaves_no_other_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kit");
        finalise(staged(dir.path(), "first"), &out).unwrap();
        assert_eq!(names(dir.path()), ["kit"]);
        finalise(staged(dir.path(), "second"), &out).unwrap();
        assert_eq!(names(dir.path()), ["kit"]);
        assert_eq!(
            std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
            "second"
        );
    }

    /// A kit that cannot be renamed into place fails, and the previous kit is back under its
    /// name.
    #[test]
    fn a_kit_that_cannot_be_renamed_into_place_leaves_the_previous_kit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kit");
        finalise(staged(dir.path(), "first"), &out).unwrap();
        // Another filesystem would fail the rename; a staging directory removed under it does
        // the same here.
        let staging = staged(dir.path(), "second");
        std::fs::remove_dir_all(staging.path()).unwrap();
        assert!(finalise(staging, &out).is_err());
        assert_eq!(names(dir.path()), ["kit"]);
        assert_eq!(
            std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
            "first"
        );
    }
}
