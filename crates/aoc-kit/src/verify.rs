//! The kit verifier: an ordered list of small checks, each consuming only what the checks before
//! it proved, failing closed.
//!
//! 1. `SHA256SUMS`' signature against the trusted key, before `SHA256SUMS` is parsed or any other
//!    file is read. A failure stops everything: nothing else can be trusted.
//! 2. Strict parse of `SHA256SUMS`; the directory holds exactly the listed files plus the checksum
//!    pair, and the listed names are exactly a kit's. The dataset hash is taken from the signed
//!    listing (and compared with `--expect-dataset-hash`), never from the directory.
//! 3. Every listed file's digest, each read once and bounded by its size cap: small files into
//!    memory, the tarballs into private unlinked copies. Later steps read only those bytes.
//! 4. Bundle signatures bound to those digests, provenance subjects, the rehearsal report, SBOM
//!    bindings (the `stella` inside the proven runner tarball, hashed, never written out or run),
//!    the dataset's sidecar manifest.
//! 5. Only then (full mode) the dataset's content: every record parsed, guarded and hashed, with
//!    reader limits from the proven sidecar manifest.
//!
//! A failed file is never read by a later step; a check that would need it is not run. Nothing
//! from the kit is executed, and nothing is written outside private unlinked temporary files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aoc_archive::{ArchiveReader, Limits, Sha256Sums};
use aoc_digest::Sha256Digest;
use aoc_sigstore::{verify_dsse_bundle, PublicKey, IN_TOTO_PAYLOAD_TYPE};

use crate::bindings;
use crate::files::{read_and_hash, Keep, Proven, ReadProblem};
use crate::layout;
use crate::report::{escape, CheckId, CheckResult, Class, KeyInfo, Recorder, VerifyReport};
use crate::trust;
pub use crate::trust::{TrustedKey, VerifyOptions};

/// What verification keeps in `TMPDIR` (the private copies of the kit's tarballs), as
/// environment errors name it.
pub const COPY_PURPOSE: &str = "the private copies of the kit's tarballs";
/// How many entries the listing does not name are reported by name; the rest are counted.
pub const UNLISTED_SHOWN: u64 = 20;

/// The entries of a directory that its listing does not name, as every verifier reports them:
/// the first [`UNLISTED_SHOWN`] by name, the rest counted, so any directory costs bounded memory
/// and output.
#[derive(Debug, Default)]
pub(crate) struct Unlisted {
    count: u64,
}

impl Unlisted {
    /// Counts one more unlisted entry; true while it is still to be named.
    pub(crate) fn name_next(&mut self) -> bool {
        self.count += 1;
        self.count <= UNLISTED_SHOWN
    }

    /// `N more entries WHERE (not named: only the first 20 are)`, when some were not named.
    pub(crate) fn not_named(&self, entries_where: &str) -> Option<String> {
        (self.count > UNLISTED_SHOWN).then(|| {
            format!(
                "{} more entries {entries_where} (not named: only the first {UNLISTED_SHOWN} are)",
                self.count - UNLISTED_SHOWN
            )
        })
    }
}

/// One kit file read privately: what it proves and its SHA-256, or why it could not be read.
type FileRead = Result<(Proven, Sha256Digest), ReadProblem>;

/// What `--integrity-only` does not check.
pub const SKIPPED_BY_INTEGRITY: &str = "dataset content: records inflated and parsed, AOC guard, \
     revision chains, content hash recomputed (the dataset tarball's bytes are bound by their \
     signed SHA-256)";

/// Verifies the kit in `dir`. Every finding is a check in the report; `observe` sees each check
/// as it completes (progress output).
pub fn verify_kit_with(
    dir: &Path,
    opts: &VerifyOptions,
    observe: &mut dyn FnMut(&CheckResult),
) -> VerifyReport {
    let mut unscoped = |_: Option<&str>, c: &CheckResult| observe(c);
    let mut v = Verifier {
        dir,
        rec: Recorder::new(&mut unscoped),
        failed_files: BTreeSet::new(),
        environment: false,
    };
    let mut report = VerifyReport {
        dir: escape(&dir.display().to_string()),
        skipped: if opts.integrity_only {
            vec![SKIPPED_BY_INTEGRITY.to_string()]
        } else {
            Vec::new()
        },
        dataset_hash: None,
        key: KeyInfo::default(),
        checks: Vec::new(),
        exit_code: 0,
    };
    v.run(opts, &mut report);
    report.checks = v.rec.checks;
    report.exit_code = report
        .first_failure()
        .map(|f| f.class.exit_code())
        .unwrap_or(0);
    if v.environment {
        // TMPDIR ran out of room for a private copy: the kit was not judged.
        report.exit_code = aoc_term::EXIT_ENVIRONMENT;
    }
    report
}

/// [`verify_kit_with`] without progress output.
pub fn verify_kit(dir: &Path, opts: &VerifyOptions) -> VerifyReport {
    verify_kit_with(dir, opts, &mut |_| {})
}

struct Verifier<'a> {
    dir: &'a Path,
    rec: Recorder<'a>,
    /// Files whose bytes are not proven: no later step reads them.
    failed_files: BTreeSet<String>,
    /// A private copy could not be written (TMPDIR full or read-only): an environment problem,
    /// whatever else failed after it.
    environment: bool,
}

/// What steps 1–3 proved.
struct Proof {
    hash: String,
    sums: Sha256Sums,
    files: BTreeMap<String, Proven>,
    /// Optional files the signed listing names (the rehearsal report).
    carried: Vec<String>,
}

impl Proof {
    /// The proven in-memory bytes of `name` (a small file whose digest matched).
    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).and_then(Proven::bytes)
    }

    /// `name`'s digest in the signed listing.
    fn listed(&self, name: &str) -> Option<Sha256Digest> {
        self.sums.get(name).copied()
    }
}

/// An entry of the kit directory that is a link, FIFO, device or directory.
const NOT_REGULAR: &str = "is not a regular file (links, FIFOs, devices and directories have no \
                           place in a kit; refused unread)";

impl Verifier<'_> {
    /// The kit directory cannot be listed: a hostile layout, nothing else is checked.
    fn cannot_list(&mut self, e: &std::io::Error) {
        let dir = self.dir.display().to_string();
        self.rec.record(
            CheckId::Layout,
            &dir,
            Class::Hostile,
            Err(format!("cannot list: {e}")),
        );
    }

    fn fail_file(&mut self, check: CheckId, file: &str, class: Class, why: String) {
        self.failed_files.insert(file.to_string());
        self.rec.record(check, file, class, Err(why));
    }

    fn run(&mut self, opts: &VerifyOptions, report: &mut VerifyReport) {
        if !self.is_dir() {
            return;
        }
        let Some(key) = trust::key(self.dir, opts, &mut report.key, &mut self.rec) else {
            return;
        };
        let Some(sums) = self.root_signature(&key, report.key.self_contained) else {
            return;
        };
        let Some((sums, hash, carried)) = self.listing(&sums, opts) else {
            return;
        };
        report.dataset_hash = Some(hash.clone());
        let files = self.digests(&sums, &hash, &carried);
        let proof = Proof {
            hash,
            sums,
            files,
            carried,
        };
        let manifest = self.bindings(&key, &proof);
        if !opts.integrity_only {
            self.dataset_content(&proof, manifest.as_ref());
        }
        trust::origin(
            opts,
            &report.key,
            "the kit",
            layout::SUMS_BUNDLE,
            &mut self.rec,
        );
    }

    /// The path is a directory (a kit is one).
    fn is_dir(&mut self) -> bool {
        if std::fs::metadata(self.dir).is_ok_and(|m| m.is_dir()) {
            return true;
        }
        let dir = self.dir.display().to_string();
        self.rec.record(
            CheckId::Kit,
            &dir,
            Class::Hostile,
            Err("not a directory: give the kit directory (the one holding SHA256SUMS)".into()),
        );
        false
    }

    /// Step 1: SHA256SUMS' signature over its raw bytes, before they are parsed.
    fn root_signature(&mut self, key: &PublicKey, self_contained: bool) -> Option<Vec<u8>> {
        let sums = match self.read_small(layout::SUMS) {
            Ok((bytes, digest)) => (bytes, digest),
            Err(e) => {
                let class = trust::unreadable_root_class(&e);
                self.fail_file(CheckId::Signature, layout::SUMS, class, e.to_string());
                return None;
            }
        };
        let bundle = match self.read_small(layout::SUMS_BUNDLE) {
            Ok((bytes, _)) => bytes,
            Err(e) => {
                self.fail_file(
                    CheckId::Signature,
                    layout::SUMS_BUNDLE,
                    Class::Signature,
                    e.to_string(),
                );
                return None;
            }
        };
        let outcome = trust::signed(&bundle, &sums.1, key, layout::SUMS).map_err(|e| {
            if self_contained {
                format!("{e} (checked against the kit's own {})", layout::PUBLIC_KEY)
            } else {
                e
            }
        });
        if self.rec.record(
            CheckId::Signature,
            layout::SUMS_BUNDLE,
            Class::Signature,
            outcome,
        ) {
            Some(sums.0)
        } else {
            None
        }
    }

    /// Step 2: strict parse, exactly the listed files present, exactly a kit's names.
    fn listing(
        &mut self,
        bytes: &[u8],
        opts: &VerifyOptions,
    ) -> Option<(Sha256Sums, String, Vec<String>)> {
        let sums = self.parse_sums(bytes)?;
        let listed: BTreeSet<String> = sums.iter().map(|(n, _)| n.to_string()).collect();
        let complete = self.directory(&listed)?;
        let hash = self.listed_dataset(&listed)?;
        let carried = self.kit_names(&listed, &hash)?;
        if complete {
            self.rec.record(
                CheckId::SumsComplete,
                layout::SUMS,
                Class::Checksum,
                Ok(format!(
                    "the kit holds exactly the {} listed files and the checksum pair",
                    listed.len()
                )),
            );
        }
        self.pinned(opts, &hash)?;
        Some((sums, hash, carried))
    }

    /// Step 2a: the strict parse of the signed listing.
    fn parse_sums(&mut self, bytes: &[u8]) -> Option<Sha256Sums> {
        let parsed = Sha256Sums::parse(bytes);
        let outcome = match &parsed {
            Ok(s) => Ok(format!("{} entries", s.len())),
            Err(e) => Err(e.to_string()),
        };
        self.rec
            .record(CheckId::SumsParse, layout::SUMS, Class::Checksum, outcome);
        parsed.ok()
    }

    /// Step 2b: the directory: names only, nothing opened. What the listing does not name is
    /// counted, and only the first UNLISTED_SHOWN of those entries are reported by name, so any
    /// directory costs bounded memory and output (the first failure, hence the exit code, is
    /// always among those named). Returns whether the directory holds exactly the listed files
    /// and the checksum pair; `None` when it cannot be listed.
    fn directory(&mut self, listed: &BTreeSet<String>) -> Option<bool> {
        let entries = match std::fs::read_dir(self.dir) {
            Ok(e) => e,
            Err(e) => {
                self.cannot_list(&e);
                return None;
            }
        };
        let mut present = BTreeSet::new();
        let mut complete = true;
        let mut unlisted = Unlisted::default();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.cannot_list(&e);
                    return None;
                }
            };
            let raw = entry.file_name();
            let kit_name = raw
                .to_str()
                .filter(|n| listed.contains(*n) || *n == layout::SUMS || *n == layout::SUMS_BUNDLE);
            // The entry's own type: no link is followed.
            let regular = entry.file_type().is_ok_and(|t| t.is_file());
            match (kit_name, regular) {
                (Some(name), true) => {
                    present.insert(name.to_string());
                }
                // A listed name that is a link, directory or device: never read (bounded by the
                // listing).
                (Some(name), false) => {
                    complete = false;
                    present.insert(name.to_string());
                    self.fail_file(CheckId::Layout, name, Class::Hostile, NOT_REGULAR.into());
                }
                (None, _) => {
                    complete = false;
                    if !unlisted.name_next() {
                        continue;
                    }
                    // Escaped by `record`, like every name; bytes that are not UTF-8 show as
                    // U+FFFD.
                    let shown = raw.to_string_lossy();
                    let (check, class, why) = if regular {
                        (
                            CheckId::SumsComplete,
                            Class::Checksum,
                            "in the kit but not listed in SHA256SUMS",
                        )
                    } else {
                        (CheckId::Layout, Class::Hostile, NOT_REGULAR)
                    };
                    self.rec.record(check, &shown, class, Err(why.into()));
                }
            }
        }
        if let Some(rest) = unlisted.not_named("in the kit are not listed in SHA256SUMS") {
            let dir = self.dir.display().to_string();
            self.rec
                .record(CheckId::SumsComplete, &dir, Class::Checksum, Err(rest));
        }
        for name in listed {
            if !present.contains(name) {
                complete = false;
                self.fail_file(
                    CheckId::SumsComplete,
                    name,
                    Class::Checksum,
                    "listed in SHA256SUMS but missing from the kit".into(),
                );
            }
        }
        Some(complete)
    }

    /// Step 2c: the dataset's hash. The signed listing names the dataset, so a second dataset
    /// dropped into the directory is only an unlisted file.
    fn listed_dataset(&mut self, listed: &BTreeSet<String>) -> Option<String> {
        let hashes: Vec<&str> = listed
            .iter()
            .filter_map(|n| layout::parse_dataset_tarball(n))
            .collect();
        match hashes.as_slice() {
            [one] => Some(one.to_string()),
            _ => {
                self.rec.record(
                    CheckId::Layout,
                    layout::SUMS,
                    Class::Checksum,
                    Err(format!(
                        "lists {} aoc-dataset-<64 hex>.tar.gz files; a kit carries exactly one",
                        hashes.len()
                    )),
                );
                None
            }
        }
    }

    /// Step 2d: the listed names are exactly a kit's, with the optional files it carries
    /// (returned).
    fn kit_names(&mut self, listed: &BTreeSet<String>, hash: &str) -> Option<Vec<String>> {
        let optional = layout::rehearsal_report(hash);
        let carried: Vec<String> = listed.iter().filter(|n| **n == optional).cloned().collect();
        let expected = layout::with_optional(layout::summed_files(hash), &carried);
        let got: Vec<String> = listed.iter().cloned().collect();
        let outcome = if got == expected {
            Ok(format!("lists the {} kit files", expected.len()))
        } else {
            Err(format!(
                "lists [{}], a kit has [{}]",
                got.join(", "),
                expected.join(", ")
            ))
        };
        self.rec
            .record(CheckId::SumsLayout, layout::SUMS, Class::Checksum, outcome)
            .then_some(carried)
    }

    /// Step 2e: the dataset is the pinned one (`--expect-dataset-hash`), if one is pinned.
    fn pinned(&mut self, opts: &VerifyOptions, hash: &str) -> Option<()> {
        let Some(expected) = &opts.expect_dataset_hash else {
            return Some(());
        };
        let outcome = if expected == hash {
            Ok(format!("dataset {hash} is the pinned one"))
        } else {
            Err(format!(
                "the kit carries dataset {hash}, but {expected} is expected \
                 (--expect-dataset-hash / DATASET_HASH): an older or another kit"
            ))
        };
        self.rec
            .record(
                CheckId::DatasetPinned,
                &layout::dataset_tarball(hash),
                Class::Dataset,
                outcome,
            )
            .then_some(())
    }

    /// Step 3: every listed file read once, bounded, hashed; the tarballs in parallel.
    fn digests(
        &mut self,
        sums: &Sha256Sums,
        hash: &str,
        carried: &[String],
    ) -> BTreeMap<String, Proven> {
        let names = layout::with_optional(layout::summed_files(hash), carried);
        let large = [
            layout::RUNNER_TARBALL.to_string(),
            layout::dataset_tarball(hash),
        ];
        let dir = self.dir;
        let todo: Vec<&String> = names
            .iter()
            .filter(|n| !self.failed_files.contains(*n))
            .collect();
        let results: Vec<(String, FileRead)> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .iter()
                .filter(|n| large.contains(n))
                .map(|name| {
                    let name = (*name).clone();
                    s.spawn(move || {
                        let r =
                            read_and_hash(&dir.join(&name), layout::size_cap(&name), Keep::Copy);
                        (name, r)
                    })
                })
                .collect();
            let mut out: Vec<_> = todo
                .iter()
                .filter(|n| !large.contains(n))
                .map(|name| {
                    let r = read_and_hash(
                        &dir.join(name.as_str()),
                        layout::size_cap(name),
                        Keep::Bytes,
                    );
                    ((*name).clone(), r)
                })
                .collect();
            for h in handles {
                out.push(h.join().expect("hashing thread"));
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        });
        let mut proven = BTreeMap::new();
        for (name, result) in results {
            let listed = sums.get(&name).copied().unwrap_or_default();
            match result {
                Ok((bytes, actual)) if actual == listed => {
                    self.rec.record(
                        CheckId::Sha256,
                        &name,
                        Class::Checksum,
                        Ok(actual.to_string()),
                    );
                    proven.insert(name, bytes);
                }
                Ok((_, actual)) => self.fail_file(
                    CheckId::Sha256,
                    &name,
                    Class::Checksum,
                    format!("sha256 is {actual}, SHA256SUMS lists {listed}"),
                ),
                Err(e @ (ReadProblem::TooLarge { .. } | ReadProblem::NotRegular)) => {
                    self.fail_file(CheckId::Sha256, &name, Class::Hostile, e.to_string())
                }
                Err(ReadProblem::Missing) => {} // already reported by the listing
                // Reading a kit file never runs out of room: writing its private copy did.
                Err(ReadProblem::Io(e)) if large.contains(&name) && tmpdir_full(&e) => {
                    self.environment = true;
                    let env = aoc_term::environment::classify(
                        "TMPDIR",
                        &aoc_term::environment::temp_dir(),
                        COPY_PURPOSE,
                        None,
                        &e,
                    );
                    let why = env.map_or_else(|| e.to_string(), |env| env.to_string());
                    self.fail_file(CheckId::Sha256, &name, Class::Checksum, why)
                }
                Err(e) => self.fail_file(CheckId::Sha256, &name, Class::Checksum, e.to_string()),
            }
        }
        proven
    }

    /// Step 4: signatures over the proven digests, provenance, rehearsal report, SBOMs, sidecar.
    /// Returns the proven, parsed sidecar manifest.
    fn bindings(&mut self, key: &PublicKey, p: &Proof) -> Option<aoc_dataset::Manifest> {
        self.runner_signature(key, p);
        self.provenance(key, p);
        self.rehearsal_reports(p);
        self.sboms(p);
        self.sidecar(p)
    }

    /// Step 4a: the runner's bundle over the runner tarball's signed digest.
    fn runner_signature(&mut self, key: &PublicKey, p: &Proof) {
        if let (Some(bundle), Some(digest)) = (
            p.bytes(layout::RUNNER_BUNDLE),
            p.files
                .get(layout::RUNNER_TARBALL)
                .and(p.listed(layout::RUNNER_TARBALL)),
        ) {
            let outcome = trust::signed(bundle, &digest, key, layout::RUNNER_TARBALL);
            self.rec.record(
                CheckId::Signature,
                layout::RUNNER_BUNDLE,
                Class::Signature,
                outcome,
            );
        }
    }

    /// Step 4b: the provenance, a DSSE in-toto statement whose subjects are the artefacts.
    fn provenance(&mut self, key: &PublicKey, p: &Proof) {
        let hash = &p.hash;
        let provenance = layout::provenance(hash);
        let Some(bytes) = p.bytes(&provenance) else {
            return;
        };
        let verified = verify_dsse_bundle(bytes, key)
            .map_err(|e| e.to_string())
            .and_then(|payload| {
                if payload.payload_type != IN_TOTO_PAYLOAD_TYPE {
                    return Err(format!(
                        "payloadType is {}, expected {IN_TOTO_PAYLOAD_TYPE}",
                        payload.payload_type
                    ));
                }
                Ok(payload.payload)
            });
        let payload = match verified {
            Ok(s) => {
                self.rec.record(
                    CheckId::Signature,
                    &provenance,
                    Class::Signature,
                    Ok(format!("DSSE in-toto statement signed by {}", key.key_id())),
                );
                s
            }
            Err(e) => {
                self.fail_file(
                    CheckId::Signature,
                    &provenance,
                    Class::Signature,
                    format!("over {provenance}: {e}"),
                );
                return;
            }
        };
        let subjects = layout::with_optional(layout::subject_files(hash), &p.carried);
        // The subjects are compared with the signed listing: every subject's bytes were checked
        // against it in step 3.
        let digests: BTreeMap<String, Sha256Digest> = subjects
            .iter()
            .filter_map(|n| Some((n.clone(), p.listed(n)?)))
            .collect();
        let outcome = bindings::check_provenance(&payload, hash, &subjects, &digests);
        self.rec.record(
            CheckId::ProvenanceSubjects,
            &provenance,
            Class::Provenance,
            outcome,
        );
    }

    /// Step 4c: the rehearsal report the kit carries, if any.
    fn rehearsal_reports(&mut self, p: &Proof) {
        for name in &p.carried {
            if let Some(bytes) = p.bytes(name) {
                let outcome = crate::rehearsal::check(bytes, &p.hash);
                self.rec
                    .record(CheckId::RehearsalReport, name, Class::Provenance, outcome);
            }
        }
    }

    /// Step 4d: the SBOMs describe the proven tarball and the stella inside it (hashed, not
    /// written).
    fn sboms(&mut self, p: &Proof) {
        let (Some(tarball), Some(tarball_digest)) = (
            p.files.get(layout::RUNNER_TARBALL),
            p.listed(layout::RUNNER_TARBALL),
        ) else {
            return;
        };
        let bin = match runner_binary_digest(tarball) {
            Ok(Some(bin)) => bin,
            Ok(None) => {
                let why = format!("has no {}", layout::BINARY_MEMBER);
                let name = layout::RUNNER_TARBALL;
                self.fail_file(CheckId::RunnerBinary, name, Class::Provenance, why);
                return;
            }
            Err(e) => {
                let name = layout::RUNNER_TARBALL;
                self.fail_file(CheckId::RunnerBinary, name, Class::Hostile, e);
                return;
            }
        };
        self.rec.record(
            CheckId::RunnerBinary,
            layout::RUNNER_TARBALL,
            Class::Hostile,
            Ok(format!("{} sha256 {bin}", layout::BINARY_MEMBER)),
        );
        for (check, name, parse) in [
            (
                CheckId::SbomSpdx,
                layout::SPDX_FILE,
                bindings::check_spdx as bindings::SbomCheck,
            ),
            (
                CheckId::SbomCycloneDx,
                layout::CDX_FILE,
                bindings::check_cdx,
            ),
        ] {
            if let Some(bytes) = p.bytes(name) {
                let outcome = parse(bytes, &tarball_digest, &bin);
                self.rec.record(check, name, Class::Provenance, outcome);
            }
        }
    }

    /// Step 4e: the dataset's sidecar manifest: strict, and naming this dataset.
    fn sidecar(&mut self, p: &Proof) -> Option<aoc_dataset::Manifest> {
        let hash = &p.hash;
        let sidecar = layout::dataset_manifest(hash);
        let bytes = p.bytes(&sidecar)?;
        let parsed = aoc_dataset::Manifest::from_slice(bytes).and_then(|m| {
            if m.dataset_hash == *hash {
                Ok(m)
            } else {
                Err(format!(
                    "names dataset {}, the kit ships {}",
                    m.dataset_hash,
                    layout::dataset_tarball(hash)
                ))
            }
        });
        match parsed {
            Ok(m) => {
                self.rec.record(
                    CheckId::DatasetManifest,
                    &sidecar,
                    Class::Dataset,
                    Ok(format!(
                        "{} record(s) in {} file(s)",
                        m.totals.records, m.totals.files
                    )),
                );
                Some(m)
            }
            Err(e) => {
                self.fail_file(CheckId::DatasetManifest, &sidecar, Class::Dataset, e);
                None
            }
        }
    }

    /// Step 5: the dataset's records, from the private copy, bounded by the proven manifest.
    fn dataset_content(&mut self, p: &Proof, manifest: Option<&aoc_dataset::Manifest>) {
        let name = layout::dataset_tarball(&p.hash);
        let sidecar = layout::dataset_manifest(&p.hash);
        let (Some(archive), Some(manifest), Some(sidecar_bytes)) = (
            p.files.get(&name),
            manifest,
            p.files.get(&sidecar).and_then(Proven::bytes),
        ) else {
            return;
        };
        let opts = aoc_dataset::VerifyOptions {
            expected_hash: Some(p.hash.clone()),
            limits: dataset_limits(manifest, sidecar_bytes.len() as u64),
            records: true,
            sidecar: aoc_dataset::Sidecar::Bytes(sidecar_bytes.to_vec()),
            ..aoc_dataset::VerifyOptions::default()
        };
        let reader = match archive.reader() {
            Ok(r) => r,
            Err(e) => {
                self.fail_file(
                    CheckId::Dataset,
                    &name,
                    Class::Hostile,
                    format!("private copy unreadable: {e}"),
                );
                return;
            }
        };
        // Named as in the kit: the archive's name carries the hash it must have.
        let named = PathBuf::from(&name);
        match aoc_dataset::verify_reader(&named, reader, &opts) {
            Ok(r) if r.passed() => {
                self.rec.record(
                    CheckId::Dataset,
                    &name,
                    Class::Dataset,
                    Ok(format!(
                        "hash {} recomputed from {} data file(s); {} record(s), {} upstream \
                         document(s) pass the AOC guard",
                        r.hash,
                        r.files.len(),
                        r.records,
                        r.upstream_documents
                    )),
                );
            }
            Ok(r) => {
                let shown: Vec<String> = r.failures.iter().take(5).map(|f| f.to_string()).collect();
                self.fail_file(
                    CheckId::Dataset,
                    &name,
                    Class::Dataset,
                    format!("{} check(s) failed: {}", r.failure_count, shown.join("; ")),
                );
            }
            Err(aoc_dataset::VerifyError::Unreadable { message, .. }) => {
                self.fail_file(CheckId::Dataset, &name, Class::Hostile, message)
            }
            Err(aoc_dataset::VerifyError::Environment(e)) => {
                self.environment = true;
                self.fail_file(CheckId::Dataset, &name, Class::Dataset, e.to_string())
            }
            Err(aoc_dataset::VerifyError::Failed(r)) => {
                let shown: Vec<String> = r.failures.iter().take(5).map(|f| f.to_string()).collect();
                self.fail_file(
                    CheckId::Dataset,
                    &name,
                    Class::Dataset,
                    format!("{} check(s) failed: {}", r.failure_count, shown.join("; ")),
                );
            }
        }
    }

    fn read_small(&mut self, name: &str) -> Result<(Vec<u8>, Sha256Digest), ReadProblem> {
        let (proven, digest) =
            read_and_hash(&self.dir.join(name), layout::size_cap(name), Keep::Bytes)?;
        match proven {
            Proven::Bytes(b) => Ok((b, digest)),
            Proven::Copy(_) => unreachable!("read into memory"),
        }
    }
}

/// No room or no write access where the private copies go (a kit file being read never fails
/// so).
fn tmpdir_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem)
}

/// SHA-256 of `stella` inside the runner tarball (read through the defensive reader from the
/// private copy; hashed, never written out, never run); `None` when it is not there.
fn runner_binary_digest(tarball: &Proven) -> Result<Option<Sha256Digest>, String> {
    // The runner holds one binary of tens of MB and a few scripts.
    let limits = Limits {
        max_entry_bytes: 1 << 30,
        max_total_bytes: 1 << 30,
        max_entries: 1_000,
    };
    let reader = tarball.reader().map_err(|e| e.to_string())?;
    let archive = ArchiveReader::new(reader, limits).map_err(|e| e.to_string())?;
    let mut found = None;
    archive
        .for_each_entry(|path, entry| -> Result<(), aoc_archive::ArchiveError> {
            if path != layout::BINARY_MEMBER {
                return Ok(());
            }
            found = Some(aoc_archive::sha256_reader(entry)?.1);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(found)
}

/// Bounds for reading the dataset tarball, from its proven manifest (whose bytes, `manifest_len`
/// long, the archive's own `manifest.json` must equal): no member larger than its largest data
/// file or that manifest, no more decompressed bytes than its files plus the manifest and tar
/// framing, no more members than it lists. aoc-dataset's generic limits (4 GiB per member, 64 GiB
/// in total) would let a 34 KB gzip of 32 MiB of tiny lines be parsed line by line.
pub fn dataset_limits(manifest: &aoc_dataset::Manifest, manifest_len: u64) -> Limits {
    let generic = aoc_dataset::VerifyOptions::default().limits;
    let largest = manifest.files.iter().map(|f| f.bytes).max().unwrap_or(0);
    // Members: the data files, manifest.json, and at most one directory per path component.
    let members = 2 * (manifest.files.len() as u64 + 1) + 8;
    // A header, padding and possibly a long-name or PAX header pair per member, the end marker
    // and record padding.
    let framing = members * 4 * 512 + (1 << 20);
    Limits {
        max_entry_bytes: largest.max(manifest_len).min(generic.max_entry_bytes),
        max_total_bytes: manifest
            .totals
            .bytes
            .saturating_add(manifest_len)
            .saturating_add(framing)
            .min(generic.max_total_bytes),
        max_entries: members.min(generic.max_entries),
    }
}
