//! `cargo xtask aoc-verify`: verifies an offline kit fully and offline (docs/ARCHITECTURE.md §3.3, §8), and the same
//! code is `aoc-release`'s self-check before a kit gets its final name.
//!
//! Checks run in the order of the chain of trust, each printed with pass/fail and the file it is
//! about: SHA256SUMS' signature → SHA256SUMS parses strictly → it lists exactly the kit's files → every
//! digest → every other bundle against the key and the artefact's real digest → provenance subjects
//! equal the artefacts → the rehearsal report, when the kit carries one, is a successful rehearsal
//! of the kit's dataset → the SBOMs describe the tarball and the `stella` inside it → the dataset's
//! manifest, hash and AOC guard (aoc-dataset) → the bundled `stella aoc verify --dry-run`.
//!
//! Exit codes (by the class of the first check that failed, in the order above):
//!
//! | code | meaning |
//! | ---: | --- |
//! | 0 | verified |
//! | 10 | checksum: SHA256SUMS unparsable, a file missing, unlisted or with another digest |
//! | 11 | signature: a bundle malformed, by another key, over another digest, or not verifying |
//! | 12 | provenance/SBOM mismatch: subjects differ from the artefacts, SBOM differs from the binary, the rehearsal report is not a passed rehearsal of the kit's dataset |
//! | 13 | dataset/AOC: manifest or content hash differ from the data, an AOC guard violation |
//! | 14 | unreadable or hostile input: kit missing, archive refused by the defensive reader |
//! | 2 | usage: bad flags, `--key` unreadable |
//!
//! Nothing is written outside one temporary directory, removed on return.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use xshell::{cmd, Shell};

use aoc_archive::{ArchiveReader, Limits, Sha256Sums};
use aoc_sigstore::{
    parse_statement, verify_dsse_bundle, verify_message_bundle, PublicKey, IN_TOTO_PAYLOAD_TYPE,
};

use crate::kit::{self, provenance::BUILD_TYPE};

#[cfg(test)]
mod hostile_tests;

/// What kind of trust a failed check breaks; the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Checksum,
    Signature,
    Provenance,
    Dataset,
    Hostile,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Checksum => 10,
            Class::Signature => 11,
            Class::Provenance => 12,
            Class::Dataset => 13,
            Class::Hostile => 14,
        }
    }
}

/// Exit code for bad usage (unknown flag, unreadable `--key`).
pub const USAGE: u8 = 2;

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Stable check name, e.g. `sha256`, `signature`, `sbom.binary`.
    pub check: String,
    /// The kit file the check is about.
    pub file: String,
    pub ok: bool,
    /// The class this check belongs to (the exit code when it is the first failure).
    pub class: Class,
    pub detail: String,
}

/// The key the kit was checked against.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub path: String,
    pub key_id: Option<String>,
    /// The kit's own cosign.pub: proves integrity, not origin.
    pub self_contained: bool,
    /// The public dev key: anyone can sign with it.
    pub is_dev: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct KitReport {
    pub dir: String,
    /// Checks deliberately not run (`--integrity-only`), so that a pass is never read as more
    /// than it is.
    pub skipped: Vec<String>,
    pub dataset_hash: Option<String>,
    pub key: KeyInfo,
    pub checks: Vec<CheckResult>,
    /// 0 when every check passed, else the first failure's class code.
    pub exit_code: u8,
}

impl KitReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The first failed check in chain-of-trust order.
    pub fn first_failure(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Run the bundled `stella aoc verify --dry-run` over the extracted dataset.
    pub run_bundled_stella: bool,
    /// Parse every dataset record (AOC guard, chains, order, per-vendor counts). Off for
    /// `--integrity-only`, which also skips the bundled stella.
    pub records: bool,
    /// Print each check on stderr as it completes.
    pub print: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            run_bundled_stella: true,
            records: true,
            print: true,
        }
    }
}

/// `cargo xtask aoc-verify`
#[derive(clap::Args)]
pub struct Cmd {
    /// The kit directory.
    #[arg(long, default_value = "out/aoc")]
    dir: PathBuf,
    /// The public key to trust [default: the kit's own cosign.pub, which proves nothing about
    /// who signed it].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print a JSON report of every check on stdout.
    #[arg(long)]
    json: bool,
    /// A fast transfer check: signatures, SHA256SUMS and every digest, provenance, SBOMs, and the
    /// dataset archive inflated with every data file's SHA-256, size and line count, its hash and
    /// manifest file list recomputed; the records themselves are not parsed (no AOC guard, no
    /// chains, no bundled stella). Run the full check at least once per kit.
    #[arg(long)]
    integrity_only: bool,
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        // Paths the user typed are relative to where cargo was run (STYLE: the shell moved).
        let cwd = std::env::current_dir()?;
        let dir = cwd.join(&self.dir);
        let key = self.key.map(|k| cwd.join(k));
        let _ = sh;
        let opts = VerifyOptions {
            records: !self.integrity_only,
            run_bundled_stella: !self.integrity_only,
            ..VerifyOptions::default()
        };
        let report = match verify_kit(&dir, key.as_deref(), &opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("aoc-verify: {e:#}");
                return Ok(ExitCode::from(USAGE));
            }
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        print_summary(&report);
        Ok(ExitCode::from(report.exit_code))
    }
}

pub fn print_summary(report: &KitReport) {
    let passed = report.checks.iter().filter(|c| c.ok).count();
    match report.first_failure() {
        None => eprintln!(
            "aoc-verify: {} verified: {passed} checks passed",
            report.dir
        ),
        Some(first) => eprintln!(
            "aoc-verify: {} FAILED ({} of {} checks; exit {}): first: {} {}: {}",
            report.dir,
            report.checks.len() - passed,
            report.checks.len(),
            report.exit_code,
            first.check,
            first.file,
            first.detail
        ),
    }
    for skipped in &report.skipped {
        eprintln!("aoc-verify: NOT CHECKED (--integrity-only): {skipped}");
    }
    if report.key.self_contained {
        eprintln!(
            "aoc-verify: WARNING: verified against the kit's OWN cosign.pub. A self-contained key \
             proves only that the kit is intact, not who made it: pass --key with the public key \
             you trust."
        );
    }
    if report.key.is_dev {
        eprintln!(
            "aoc-verify: WARNING: the kit is signed with the PUBLIC DEV KEY: anyone can produce \
             this signature; never deploy it as a release."
        );
    }
}

/// Collects check results in order.
struct Checks {
    results: Vec<CheckResult>,
    print: bool,
}

impl Checks {
    fn record(
        &mut self,
        check: &str,
        file: &str,
        class: Class,
        outcome: Result<String, String>,
    ) -> bool {
        let ok = outcome.is_ok();
        let detail = outcome.unwrap_or_else(|e| e);
        if self.print {
            let mark = if ok { "pass" } else { "FAIL" };
            eprintln!("  [{mark}] {check:<20} {file}: {detail}");
        }
        self.results.push(CheckResult {
            check: check.into(),
            file: file.into(),
            ok,
            class,
            detail,
        });
        ok
    }
}

/// Verifies the kit in `dir` against `key` (default: the kit's own `cosign.pub`). `Err` only for
/// usage errors (an unreadable `--key`); every finding about the kit is a check in the report.
pub fn verify_kit(dir: &Path, key: Option<&Path>, opts: &VerifyOptions) -> Result<KitReport> {
    let explicit_key = match key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --key {}", path.display()))?;
            Some(
                PublicKey::from_pem(&pem, &path.display().to_string())
                    .with_context(|| format!("--key {}", path.display()))?,
            )
        }
        None => None,
    };
    let mut c = Checks {
        results: Vec::new(),
        print: opts.print,
    };
    let mut report = KitReport {
        dir: dir.display().to_string(),
        skipped: if opts.records {
            Vec::new()
        } else {
            vec![
                "dataset records: AOC guard, revision chains, order, per-vendor counts".into(),
                "the bundled stella aoc verify --dry-run".into(),
            ]
        },
        dataset_hash: None,
        key: KeyInfo {
            path: key
                .map(|k| k.display().to_string())
                .unwrap_or_else(|| dir.join(kit::PUBLIC_KEY).display().to_string()),
            key_id: explicit_key.as_ref().map(PublicKey::key_id),
            self_contained: key.is_none(),
            is_dev: false,
        },
        checks: Vec::new(),
        exit_code: 0,
    };
    run_checks(dir, explicit_key, opts, &mut c, &mut report);
    report.checks = c.results;
    report.exit_code = report
        .first_failure()
        .map(|f| f.class.exit_code())
        .unwrap_or(0);
    Ok(report)
}

fn run_checks(
    dir: &Path,
    explicit_key: Option<PublicKey>,
    opts: &VerifyOptions,
    c: &mut Checks,
    report: &mut KitReport,
) {
    if !dir.is_dir() {
        c.record(
            "kit",
            &dir.display().to_string(),
            Class::Hostile,
            Err("not a directory (no kit here: run cargo xtask aoc-release)".into()),
        );
        return;
    }

    let sums_bytes = read_kit_file(dir, kit::SUMS);
    // 1. The key, then SHA256SUMS' own signature over its raw bytes: the root everything else
    // hangs from, checked first so that a changed or swapped SHA256SUMS is a signature failure.
    let key = match explicit_key {
        Some(k) => Some(k),
        None => match read_kit_file(dir, kit::PUBLIC_KEY).and_then(|b| {
            let text = String::from_utf8(b).map_err(|_| "not text".to_string())?;
            PublicKey::from_pem(&text, kit::PUBLIC_KEY).map_err(|e| e.to_string())
        }) {
            Ok(k) => Some(k),
            Err(e) => {
                c.record("key", kit::PUBLIC_KEY, Class::Signature, Err(e));
                None
            }
        },
    };
    if let Some(k) = &key {
        report.key.key_id = Some(k.key_id());
        report.key.is_dev = aoc_sigstore::policy::is_dev_key(k);
    }
    if let (Ok(bytes), Some(k)) = (&sums_bytes, &key) {
        let digest = sha256(bytes);
        message_check(c, dir, kit::SUMS_BUNDLE, kit::SUMS, &digest, k);
    }

    // 2. SHA256SUMS parses strictly.
    let sums = match &sums_bytes {
        Ok(bytes) => match Sha256Sums::parse(bytes) {
            Ok(s) => {
                c.record(
                    "sha256sums.parse",
                    kit::SUMS,
                    Class::Checksum,
                    Ok(format!("{} entries", s.len())),
                );
                Some(s)
            }
            Err(e) => {
                c.record(
                    "sha256sums.parse",
                    kit::SUMS,
                    Class::Checksum,
                    Err(e.to_string()),
                );
                None
            }
        },
        Err(e) => {
            c.record(
                "sha256sums.parse",
                kit::SUMS,
                Class::Checksum,
                Err(e.clone()),
            );
            None
        }
    };

    // 3. Layout and completeness.
    let hash = match kit::find_dataset_hash(dir) {
        Ok(h) => {
            report.dataset_hash = Some(h.clone());
            Some(h)
        }
        Err(e) => {
            c.record(
                "layout",
                &dir.display().to_string(),
                Class::Checksum,
                Err(format!("{e:#}")),
            );
            None
        }
    };
    let present = match list_kit(dir) {
        Ok(p) => p,
        Err((name, why)) => {
            c.record("layout", &name, Class::Hostile, Err(why));
            return;
        }
    };
    // The optional files this kit carries: present, or listed in SHA256SUMS (and then missing).
    let carried: Vec<String> = match &hash {
        Some(h) => [kit::rehearsal_report(h)]
            .into_iter()
            .filter(|n| present.contains(n) || sums.as_ref().is_some_and(|s| s.get(n).is_some()))
            .collect(),
        None => Vec::new(),
    };
    let mut digests: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    if let Some(sums) = &sums {
        let listed: Vec<&str> = sums.iter().map(|(n, _)| n).collect();
        for name in &listed {
            if !present.contains(*name) {
                c.record(
                    "sha256sums.complete",
                    name,
                    Class::Checksum,
                    Err("listed in SHA256SUMS but missing from the kit".into()),
                );
            }
        }
        for name in &present {
            if name != kit::SUMS && name != kit::SUMS_BUNDLE && sums.get(name).is_none() {
                c.record(
                    "sha256sums.complete",
                    name,
                    Class::Checksum,
                    Err("in the kit but not listed in SHA256SUMS".into()),
                );
            }
        }
        if let Some(h) = &hash {
            let expected = kit::with_optional(kit::summed_files(h), &carried);
            let mut got: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            got.sort();
            let outcome = if got == expected {
                Ok(format!("lists the {} kit files", expected.len()))
            } else {
                Err(format!(
                    "lists [{}], a kit has [{}]",
                    got.join(", "),
                    expected.join(", ")
                ))
            };
            c.record("sha256sums.complete", kit::SUMS, Class::Checksum, outcome);
        }

        // 4. Every digest, hashed in process.
        for (name, listed_digest) in sums.iter() {
            if !present.contains(name) {
                continue;
            }
            match kit::sha256_file(&dir.join(name)) {
                Ok(actual) => {
                    digests.insert(name.to_string(), actual);
                    let outcome = if &actual == listed_digest {
                        Ok(hex::encode(actual))
                    } else {
                        Err(format!(
                            "sha256 is {}, SHA256SUMS lists {}",
                            hex::encode(actual),
                            hex::encode(listed_digest)
                        ))
                    };
                    c.record("sha256", name, Class::Checksum, outcome);
                }
                Err(e) => {
                    c.record(
                        "sha256",
                        name,
                        Class::Hostile,
                        Err(format!("unreadable: {e:#}")),
                    );
                }
            }
        }
    }
    let Some(hash) = hash else { return };
    // Files SHA256SUMS did not cover (it failed to parse) are still hashed for the checks below.
    for name in kit::with_optional(kit::summed_files(&hash), &carried) {
        if !digests.contains_key(&name) && present.contains(&name) {
            if let Ok(d) = kit::sha256_file(&dir.join(&name)) {
                digests.insert(name, d);
            }
        }
    }

    // 5. Every other bundle against the key and the artefact's real digest.
    let provenance_name = kit::provenance(&hash);
    let mut statement = None;
    if let Some(k) = &key {
        if let Some(d) = digests.get(kit::RUNNER_TARBALL) {
            message_check(c, dir, kit::RUNNER_BUNDLE, kit::RUNNER_TARBALL, d, k);
        } else {
            c.record(
                "signature",
                kit::RUNNER_BUNDLE,
                Class::Signature,
                Err(format!("{} is missing", kit::RUNNER_TARBALL)),
            );
        }
        let outcome = read_kit_file(dir, &provenance_name).and_then(|bytes| {
            let payload = verify_dsse_bundle(&bytes, k).map_err(|e| e.to_string())?;
            if payload.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(format!(
                    "payloadType is {}, expected {IN_TOTO_PAYLOAD_TYPE}",
                    payload.payload_type
                ));
            }
            statement = Some(payload.payload);
            Ok(format!("DSSE in-toto statement signed by {}", k.key_id()))
        });
        c.record("signature", &provenance_name, Class::Signature, outcome);
    }

    // 6. Provenance subjects equal the artefacts.
    if let Some(payload) = statement {
        let subjects = kit::with_optional(kit::subject_files(&hash), &carried);
        let outcome = check_provenance(&payload, &hash, &subjects, &digests);
        c.record(
            "provenance.subjects",
            &provenance_name,
            Class::Provenance,
            outcome,
        );
    }
    for name in &carried {
        let outcome = read_kit_file(dir, name)
            .and_then(|bytes| crate::rehearsal::report::check(&bytes, &hash));
        c.record("rehearsal.report", name, Class::Provenance, outcome);
    }

    // 7. The SBOMs describe the tarball and the binary actually inside it.
    let scratch = match tempfile::Builder::new().prefix("aoc-verify-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            c.record(
                "scratch",
                "(temp dir)",
                Class::Hostile,
                Err(format!("cannot create a temporary directory: {e}")),
            );
            return;
        }
    };
    let stella = scratch.path().join("stella");
    let binary_digest =
        match extract_member(&dir.join(kit::RUNNER_TARBALL), kit::BINARY_MEMBER, &stella) {
            Ok(Some(d)) => {
                c.record(
                    "runner.binary",
                    kit::RUNNER_TARBALL,
                    Class::Hostile,
                    Ok(format!("{} sha256 {}", kit::BINARY_MEMBER, hex::encode(d))),
                );
                Some(d)
            }
            Ok(None) => {
                c.record(
                    "runner.binary",
                    kit::RUNNER_TARBALL,
                    Class::Provenance,
                    Err(format!("has no {}", kit::BINARY_MEMBER)),
                );
                None
            }
            Err(e) => {
                c.record("runner.binary", kit::RUNNER_TARBALL, Class::Hostile, Err(e));
                None
            }
        };
    if let (Some(bin), Some(tarball)) = (binary_digest, digests.get(kit::RUNNER_TARBALL)) {
        let spdx = read_json(dir, kit::SPDX_FILE).and_then(|doc| check_spdx(&doc, tarball, &bin));
        c.record("sbom.spdx", kit::SPDX_FILE, Class::Provenance, spdx);
        let cdx = read_json(dir, kit::CDX_FILE).and_then(|doc| check_cdx(&doc, tarball, &bin));
        c.record("sbom.cyclonedx", kit::CDX_FILE, Class::Provenance, cdx);
    }

    // 8. The dataset: manifest, content hash and the AOC guard over every record.
    let dataset = dir.join(kit::dataset_tarball(&hash));
    let data_dir = scratch.path().join("dataset");
    let sidecar = kit::dataset_manifest(&hash);
    let limits = dataset_limits(dir, &sidecar);
    match kit::dataset::verify(&dataset, &hash, limits, opts.records) {
        Ok(summary) => {
            c.record(
                "dataset",
                &kit::dataset_tarball(&hash),
                Class::Dataset,
                Ok(summary),
            );
        }
        Err(kit::dataset::Problem::Hostile(why)) => {
            c.record(
                "dataset",
                &kit::dataset_tarball(&hash),
                Class::Hostile,
                Err(why),
            );
            return;
        }
        Err(kit::dataset::Problem::Invalid(why)) => {
            c.record(
                "dataset",
                &kit::dataset_tarball(&hash),
                Class::Dataset,
                Err(why),
            );
        }
    }
    let outcome = kit::dataset::check_sidecar(&dataset, &dir.join(&sidecar));
    c.record("dataset.manifest", &sidecar, Class::Dataset, outcome);

    // 9. The bundled stella over the extracted records.
    if opts.run_bundled_stella && binary_digest.is_some() {
        let outcome = kit::dataset::extract_data(&dataset, &data_dir, limits).and_then(|n| {
            run_bundled_stella(&stella, &data_dir).map(|out| format!("{n} data file(s): {out}"))
        });
        c.record(
            "stella.verify",
            kit::RUNNER_TARBALL,
            Class::Dataset,
            outcome,
        );
    }
}

/// Bounds for reading the dataset tarball, from the kit's sidecar manifest (checksummed and signed
/// by the time it is used): no member larger than its largest data file (or the 64 MiB aoc-dataset
/// allows `manifest.json`), no more decompressed bytes than its files plus the manifest and tar
/// framing. aoc-dataset's generic limits (4 GiB per member, 64 GiB in total) would let a 3.6 MB
/// gzip bomb run for 38 s and, since a line without a newline is buffered whole, reach 3 GiB of
/// RSS (verify/hostile_tests.rs); with these it stops at the header. The bounds only ever tighten:
/// without a readable sidecar the generic limits apply and the sidecar check fails on its own.
fn dataset_limits(dir: &Path, sidecar: &str) -> Limits {
    /// aoc-dataset's own cap on `manifest.json` (verify.rs MAX_MANIFEST_BYTES).
    const MANIFEST_ALLOWANCE: u64 = 64 << 20;
    let generic = aoc_dataset::VerifyOptions::default().limits;
    let Some(manifest) = read_kit_file(dir, sidecar)
        .ok()
        .and_then(|bytes| aoc_dataset::Manifest::from_slice(&bytes).ok())
    else {
        return generic;
    };
    let largest = manifest.files.iter().map(|f| f.bytes).max().unwrap_or(0);
    // Members: the data files, manifest.json, and at most one directory per path component.
    let members = 2 * (manifest.files.len() as u64 + 1) + 8;
    // A header, padding and possibly a long-name or PAX header pair per member, the end marker
    // and record padding.
    let framing = members * 4 * 512 + (1 << 20);
    Limits {
        max_entry_bytes: largest.max(MANIFEST_ALLOWANCE).min(generic.max_entry_bytes),
        max_total_bytes: manifest
            .totals
            .bytes
            .saturating_add(MANIFEST_ALLOWANCE + framing)
            .min(generic.max_total_bytes),
        max_entries: members.min(generic.max_entries),
    }
}

/// Regular files of the kit; a link, device or directory in a kit is refused by name.
fn list_kit(
    dir: &Path,
) -> std::result::Result<std::collections::BTreeSet<String>, (String, String)> {
    let mut names = std::collections::BTreeSet::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| (dir.display().to_string(), format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.display().to_string(), format!("cannot list: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry
            .file_type()
            .map_err(|e| (name.clone(), format!("cannot stat: {e}")))?;
        if !kind.is_file() {
            return Err((
                name,
                "is not a regular file (links and directories have no place in a kit)".into(),
            ));
        }
        names.insert(name);
    }
    Ok(names)
}

/// A kit file, read only when it is a regular file (never through a link) and under 1 GiB
/// (the bundles, SBOMs and SHA256SUMS are kilobytes).
fn read_kit_file(dir: &Path, name: &str) -> std::result::Result<Vec<u8>, String> {
    const MAX: u64 = 1 << 30;
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("missing ({e})"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX {
        return Err(format!(
            "is {} bytes, more than any kit file should be",
            meta.len()
        ));
    }
    std::fs::read(&path).map_err(|e| format!("unreadable: {e}"))
}

fn read_json(dir: &Path, name: &str) -> std::result::Result<Value, String> {
    let bytes = read_kit_file(dir, name)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

fn message_check(
    c: &mut Checks,
    dir: &Path,
    bundle: &str,
    artefact: &str,
    digest: &[u8; 32],
    key: &PublicKey,
) {
    let outcome = read_kit_file(dir, bundle).and_then(|bytes| {
        verify_message_bundle(&bytes, digest, key)
            .map(|()| {
                format!(
                    "signs {artefact} (sha256 {}) with key {}",
                    hex::encode(digest),
                    key.key_id()
                )
            })
            .map_err(|e| format!("over {artefact}: {e}"))
    });
    c.record("signature", bundle, Class::Signature, outcome);
}

fn check_provenance(
    payload: &[u8],
    hash: &str,
    subjects: &[String],
    digests: &BTreeMap<String, [u8; 32]>,
) -> std::result::Result<String, String> {
    let statement = parse_statement(payload)?;
    if statement.predicate_type != kit::SLSA_PREDICATE_TYPE {
        return Err(format!(
            "predicateType is {}, expected {}",
            statement.predicate_type,
            kit::SLSA_PREDICATE_TYPE
        ));
    }
    let build_type = statement
        .predicate
        .pointer("/buildDefinition/buildType")
        .and_then(Value::as_str);
    if build_type != Some(BUILD_TYPE) {
        return Err(format!(
            "buildType is {build_type:?}, expected {BUILD_TYPE}"
        ));
    }
    let claimed: BTreeMap<String, [u8; 32]> = statement
        .subjects
        .iter()
        .map(|s| (s.name.clone(), s.sha256))
        .collect();
    if claimed.len() != statement.subjects.len() {
        return Err("a subject is listed twice".into());
    }
    let mut problems = Vec::new();
    for name in subjects {
        match (claimed.get(name), digests.get(name)) {
            (Some(c), Some(a)) if c == a => {}
            (Some(c), Some(a)) => problems.push(format!(
                "{name}: subject sha256 {} but the file's is {}",
                hex::encode(c),
                hex::encode(a)
            )),
            (None, _) => problems.push(format!("{name} is not a subject")),
            (Some(_), None) => {
                problems.push(format!("{name} is a subject but missing from the kit"))
            }
        }
    }
    for name in claimed.keys() {
        if !subjects.contains(name) {
            problems.push(format!("subject {name} is not a kit artefact"));
        }
    }
    let recorded = statement
        .predicate
        .pointer("/buildDefinition/internalParameters/datasetHash")
        .and_then(Value::as_str);
    if recorded != Some(hash) {
        problems.push(format!(
            "records dataset hash {recorded:?}, the kit's is {hash}"
        ));
    }
    if problems.is_empty() {
        Ok(format!("{} subjects match the artefacts", claimed.len()))
    } else {
        Err(problems.join("; "))
    }
}

fn check_spdx(
    doc: &Value,
    tarball: &[u8; 32],
    binary: &[u8; 32],
) -> std::result::Result<String, String> {
    let packages = doc["packages"].as_array().ok_or("no packages array")?;
    let sum_of = |id: &str| -> std::result::Result<String, String> {
        let p = packages
            .iter()
            .find(|p| p["SPDXID"] == id)
            .ok_or_else(|| format!("no package {id}"))?;
        p["checksums"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["algorithm"] == "SHA256")
            .and_then(|c| c["checksumValue"].as_str())
            .map(String::from)
            .ok_or_else(|| format!("{id} has no SHA256 checksum"))
    };
    compare_sbom(
        &sum_of("SPDXRef-Package-runner-tarball")?,
        &sum_of("SPDXRef-Package-runner-binary")?,
        tarball,
        binary,
    )
}

fn check_cdx(
    doc: &Value,
    tarball: &[u8; 32],
    binary: &[u8; 32],
) -> std::result::Result<String, String> {
    let sha = |component: &Value| -> Option<String> {
        component["hashes"]
            .as_array()?
            .iter()
            .find(|h| h["alg"] == "SHA-256")?["content"]
            .as_str()
            .map(String::from)
    };
    let tar = sha(&doc["metadata"]["component"]).ok_or("metadata.component has no SHA-256 hash")?;
    let bin_component = doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["bom-ref"] == crate::sbom::RUNNER_BINARY)
        .ok_or("no component with bom-ref stella")?;
    let bin = sha(bin_component).ok_or("component stella has no SHA-256 hash")?;
    compare_sbom(&tar, &bin, tarball, binary)
}

fn compare_sbom(
    sbom_tarball: &str,
    sbom_binary: &str,
    tarball: &[u8; 32],
    binary: &[u8; 32],
) -> std::result::Result<String, String> {
    let (tarball, binary) = (hex::encode(tarball), hex::encode(binary));
    let mut problems = Vec::new();
    if sbom_binary != binary {
        problems.push(format!(
            "describes binary sha256 {sbom_binary}, the tarball's stella is {binary}"
        ));
    }
    if sbom_tarball != tarball {
        problems.push(format!(
            "describes tarball sha256 {sbom_tarball}, the tarball is {tarball}"
        ));
    }
    if problems.is_empty() {
        Ok(format!("describes stella {binary} in tarball {tarball}"))
    } else {
        Err(problems.join("; "))
    }
}

/// Streams the archive through the defensive reader and writes `member` to `out` (0755) while
/// hashing it; `Ok(None)` when the archive has no such member.
fn extract_member(
    archive: &Path,
    member: &str,
    out: &Path,
) -> std::result::Result<Option<[u8; 32]>, String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    // The runner holds one binary of tens of MB and a few scripts.
    let limits = Limits {
        max_entry_bytes: 1 << 30,
        max_total_bytes: 2 << 30,
        max_entries: 1_000,
    };
    let reader = ArchiveReader::open(archive, limits).map_err(|e| e.to_string())?;
    let mut found = None;
    reader
        .for_each_entry(|path, entry| -> anyhow::Result<()> {
            if path != member {
                return Ok(());
            }
            let mut file =
                create_executable(out).with_context(|| format!("writing {}", out.display()))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
            }
            found = Some(hasher.finalize().into());
            Ok(())
        })
        .map_err(|e| format!("{e:#}"))?;
    Ok(found)
}

fn create_executable(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o755);
    options.open(path)
}

/// `stella aoc verify --dry-run --input DIR` with the binary from the kit: proves it runs here and
/// accepts the dataset's files.
fn run_bundled_stella(stella: &Path, data: &Path) -> std::result::Result<String, String> {
    let sh = Shell::new().map_err(|e| e.to_string())?;
    let out = cmd!(sh, "{stella} aoc verify --dry-run --input {data}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| format!("cannot run the bundled stella: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    if out.status.success() {
        Ok(format!(
            "bundled `stella aoc verify --dry-run` exit 0: {last}"
        ))
    } else {
        Err(format!(
            "bundled `stella aoc verify --dry-run` exit {}: {last}",
            out.status.code().map_or("signal".into(), |c| c.to_string())
        ))
    }
}
