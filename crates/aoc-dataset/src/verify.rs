//! Verifying a dataset archive from its bytes alone: the defensive reader refuses hostile archives;
//! every data file is hashed, counted and every record checked (compact JSON, the AOC guard, its
//! place in the file order, its revision chain); the manifest inside, the sidecar manifest next to
//! the archive and the hash in the file name must all agree with what was recomputed.

use crate::layout::{manifest_name, parse_archive_name, parse_data_path, DataPath};
use crate::manifest::{Derived, FileEntry, Manifest, VendorCount};
use crate::records::{stream_count, stream_lines, LineBatch, Streamed};
use crate::{Compression, MANIFEST_MEMBER};
use aoc_archive::{ArchiveError, ArchiveReader, Format, Limits};
use aoc_contract::canonical::content_hash_tree;
use aoc_contract::chain::{ChainChecker, ChainEntry};
use aoc_contract::model::pointer;
use aoc_contract::tree::{members_unique, JsonTree, Node};
use aoc_contract::{DocHead, Guard, GuardOptions, ViolationCode};
use aoc_digest::Sha256Digest;
use aoc_store::StoreDoc;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What a load keeps in `TMPDIR` (the private copy `read` makes of the verified records), as
/// environment errors name it.
pub(crate) const COPY_PURPOSE: &str = "the private copy of a dataset's verified records";
/// Largest manifest accepted (inside the archive or next to it): real ones are kilobytes.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The archive's file name does not carry the recomputed hash, or names another compression.
    FileName,
    /// A member that is neither `manifest.json` nor a well-formed data file path.
    UnexpectedMember,
    /// `manifest.json` is missing, unreadable, or disagrees with the recomputed contents.
    Manifest,
    /// The manifest's `dataset_hash` is not the recomputed hash.
    Hash,
    /// The sidecar `aoc-dataset-<hash>.manifest.json` differs from the manifest inside.
    Sidecar,
    /// The caller's expected hash (a pinned `DATASET_HASH`) differs.
    ExpectedHash,
    /// A line that is empty, unterminated, not JSON, or not compact JSON as stored.
    Record,
    /// An AOC guard violation in a record.
    Guard(ViolationCode),
    /// A revision chain violation (ERR_AOC_003): duplicates, bad `supersedes` links.
    Chain,
    /// Records or files out of the dataset's order, or a record in the wrong file.
    Order,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::FileName => f.write_str("file-name"),
            Check::UnexpectedMember => f.write_str("unexpected-member"),
            Check::Manifest => f.write_str("manifest"),
            Check::Hash => f.write_str("dataset-hash"),
            Check::Sidecar => f.write_str("sidecar-manifest"),
            Check::ExpectedHash => f.write_str("expected-hash"),
            Check::Record => f.write_str("record"),
            Check::Guard(code) => write!(f, "guard {code}"),
            Check::Chain => f.write_str("chain ERR_AOC_003"),
            Check::Order => f.write_str("order"),
        }
    }
}

/// One failed check, naming the file (archive member, archive or sidecar) and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Failure {
    pub file: String,
    pub line: Option<u64>,
    pub check: Check,
    pub message: String,
}

/// The member name and the message (which may quote a record) come from the archive, as they
/// are: whoever prints a failure escapes the line once (`aoc_term::escape`: aoc-dataset's FAIL
/// lines, stella's error line, the kit verifier's report).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file, line, self.check, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.check, self.message),
        }
    }
}

impl Failure {
    /// The failure as said after the archive's path (`ARCHIVE: ...`): a check on the archive
    /// itself (its name, its hash) names no file again, so the archive is named once.
    pub fn in_archive(&self, archive: &Path) -> String {
        let is_archive = archive
            .file_name()
            .is_some_and(|name| name.to_string_lossy() == self.file);
        match (is_archive, self.line) {
            (false, _) => self.to_string(),
            (true, Some(line)) => format!("line {line}: {}: {}", self.check, self.message),
            (true, None) => format!("{}: {}", self.check, self.message),
        }
    }
}

/// How to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Bounds for the defensive reader.
    pub limits: Limits,
    /// A hash the dataset must have (e.g. a release's pinned `DATASET_HASH`).
    pub expected_hash: Option<String>,
    /// Failures kept in the report; all are counted.
    pub max_failures: usize,
    /// Parse and check every record: the AOC guard, revision chains, record order, per-vendor
    /// counts. Without it (an integrity check) each data file is still inflated, hashed and its
    /// lines counted, so the dataset hash, the manifest's file list (path, SHA-256, bytes,
    /// records) and the sidecar are checked; only what needs the records' contents is skipped.
    pub records: bool,
    /// Where the sidecar manifest comes from: read beside the archive (the default), or bytes
    /// the caller has already read and proven (a kit verifier checks the sidecar's signed digest
    /// first and must not read the file again).
    pub sidecar: Sidecar,
}

/// The sidecar `aoc-dataset-<hash>.manifest.json` to compare with the archive's `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sidecar {
    /// Read it from beside the archive, when it exists.
    #[default]
    Beside,
    /// These bytes, already read by the caller.
    Bytes(Vec<u8>),
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            limits: Limits {
                max_entry_bytes: 4 << 30,
                max_total_bytes: 64 << 30,
                max_entries: 100_000,
            },
            expected_hash: None,
            max_failures: 100,
            records: true,
            sidecar: Sidecar::Beside,
        }
    }
}

/// What verification recomputed, and what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub archive: PathBuf,
    /// The recomputed content address.
    pub hash: Sha256Digest,
    pub format: Compression,
    /// The manifest inside the archive, when it parsed.
    pub manifest: Option<Manifest>,
    /// Recomputed data files, by path.
    pub files: Vec<FileEntry>,
    pub records: u64,
    pub upstream_documents: u64,
    /// The first [`VerifyOptions::max_failures`] failures, in the order found.
    pub failures: Vec<Failure>,
    pub failure_count: u64,
    /// Informational: checks that could not run (no sidecar, a name without a hash).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Every check passed (no failure recorded).
    pub fn passed(&self) -> bool {
        self.failure_count == 0
    }
}

/// Why a dataset did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The archive could not be read, or the defensive reader refused it (exit code 2).
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// It was read completely and some check failed (exit code 1).
    #[error("{}: {} check(s) failed; first: {}", .0.archive.display(), .0.failure_count,
            .0.failures.first().map(|f| f.in_archive(&.0.archive)).unwrap_or_default())]
    Failed(Box<VerifyReport>),
    /// `TMPDIR` cannot hold the private copy a load reads from: no verdict (exit code 3).
    #[error(transparent)]
    Environment(aoc_term::EnvironmentError),
}

impl VerifyError {
    /// 1 for a failed check, 2 for unreadable or hostile input.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Unreadable { .. } => 2,
            VerifyError::Failed(_) => 1,
            VerifyError::Environment(_) => aoc_term::EXIT_ENVIRONMENT,
        }
    }
}

/// Verifies the dataset archive at `path` with default options.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    verify_with(path, &VerifyOptions::default())
}

/// Verifies the dataset archive at `path`: `Ok` only when every check passed.
pub fn verify_with(path: &Path, options: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let file = open_archive(path)?;
    let report = verify_reader(path, file, options)?;
    if report.passed() {
        Ok(report)
    } else {
        Err(VerifyError::Failed(Box::new(report)))
    }
}

/// Opens a dataset archive through the one opener of untrusted files
/// ([`aoc_archive::fs::open_regular`]): a link, FIFO or device is refused at once, unread.
pub(crate) fn open_archive(path: &Path) -> Result<std::fs::File, VerifyError> {
    let expect = aoc_archive::fs::Expect::at_most(u64::MAX);
    match aoc_archive::fs::open_regular(path, expect) {
        Ok((file, _)) => Ok(file),
        Err(e) => Err(VerifyError::Unreadable {
            path: path.to_owned(),
            message: format!("cannot open: {e}"),
        }),
    }
}

/// Verification of an archive's bytes from `reader`; `path` names it (its file name carries the
/// hash) and nothing is read from it, unless the sidecar is [`Sidecar::Beside`].
pub fn verify_reader<R: Read>(
    path: &Path,
    reader: R,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_with_private_copy(path, reader, options, None).map(|(report, _)| report)
}

/// The private copy a load reads records from: every data member's bytes, exactly as
/// [`verify_with_private_copy`] hashed them, in one unlinked temporary file, the members one
/// after another, and where each one is.
pub(crate) struct PrivateCopy {
    pub file: std::fs::File,
    pub written: u64,
    /// The error writing `file` failed with: the copy's, not the archive's.
    pub failed: Option<io::Error>,
    /// (member, offset in `file`, bytes), in archive order.
    pub members: Vec<(String, u64, u64)>,
}

/// [`verify_reader`], also writing each data member's decompressed bytes, exactly as they are
/// hashed and counted, into the private copy `copy` (given for integrity-only verification).
pub(crate) fn verify_with_private_copy<R: Read>(
    path: &Path,
    reader: R,
    options: &VerifyOptions,
    copy: Option<PrivateCopy>,
) -> Result<(VerifyReport, Option<PrivateCopy>), VerifyError> {
    let mut state = State::new(options.max_failures);
    state.records = options.records;
    state.private_copy = copy;
    let (format, manifest_bytes) = read_members(path, reader, options, &mut state)?;
    state.finish_pair();

    let vendors = state.vendor_counts();
    let derived = Derived::new(std::mem::take(&mut state.files), vendors);
    let archive_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = parse_manifest(&mut state, manifest_bytes.as_deref());
    if let Some(m) = &manifest {
        compare_manifest(&mut state, m, &derived, options.records);
    }
    let mut notes = Vec::new();
    let named_hash = check_archive_name(&mut state, &archive_name, format, &derived, &mut notes);
    let sidecar = path.with_file_name(manifest_name(&named_hash));
    check_sidecar(
        &mut state,
        &sidecar,
        &options.sidecar,
        manifest_bytes.as_deref(),
        &mut notes,
    );
    if let Some(expected) = &options.expected_hash {
        if *expected != derived.dataset_hash.to_string() {
            state.fail(
                &archive_name,
                None,
                Check::ExpectedHash,
                format!(
                    "expected dataset hash {expected}, the contents hash to {}",
                    derived.dataset_hash
                ),
            );
        }
    }
    let report = VerifyReport {
        archive: path.to_owned(),
        hash: derived.dataset_hash,
        format,
        manifest,
        records: derived.totals.records,
        upstream_documents: derived.totals.upstream_documents,
        files: derived.files,
        failures: state.failures,
        failure_count: state.failure_count,
        notes,
    };
    Ok((report, state.private_copy))
}

/// Reads every member of the archive once, in order, through the defensive reader: the data
/// files are checked (and copied) as they stream by, `manifest.json` is kept (bounded) for the
/// checks after the read, anything else is a failure. Returns the compression and the manifest's
/// bytes, if there is one.
fn read_members<R: Read>(
    path: &Path,
    reader: R,
    options: &VerifyOptions,
    state: &mut State,
) -> Result<(Compression, Option<Vec<u8>>), VerifyError> {
    let unreadable = |e: ArchiveError| VerifyError::Unreadable {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let archive = ArchiveReader::new(reader, options.limits).map_err(unreadable)?;
    let format = match archive.format() {
        Format::Tar => Compression::None,
        Format::Gzip => Compression::Gzip,
        Format::Zstd => Compression::Zstd,
    };
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let read = archive.for_each_entry(|member, entry| {
        if member == MANIFEST_MEMBER {
            if entry.size() > MAX_MANIFEST_BYTES {
                state.fail(
                    member,
                    None,
                    Check::Manifest,
                    format!(
                        "{} bytes is over the {MAX_MANIFEST_BYTES}-byte limit",
                        entry.size()
                    ),
                );
                return Ok(());
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            manifest_bytes = Some(data);
            return Ok(());
        }
        let Some(data_path) = parse_data_path(member) else {
            state.fail(
                member,
                None,
                Check::UnexpectedMember,
                "not manifest.json or a data/<tenant>/<vendor>.ndjson file".into(),
            );
            return Ok(());
        };
        state.check_member(member, data_path, entry)
    });
    if let Err(e) = read {
        // Writing the private copy failed (TMPDIR full or gone): the environment's fault, not
        // the archive's.
        let env = state
            .private_copy
            .as_ref()
            .and_then(|c| c.failed.as_ref())
            .and_then(|e| {
                aoc_term::environment::classify(
                    "TMPDIR",
                    &aoc_term::environment::temp_dir(),
                    COPY_PURPOSE,
                    None,
                    e,
                )
            });
        return Err(env.map_or_else(|| unreadable(e), VerifyError::Environment));
    }
    Ok((format, manifest_bytes))
}

/// The archive's `manifest.json`, parsed; a missing or unreadable one is a failure.
fn parse_manifest(state: &mut State, bytes: Option<&[u8]>) -> Option<Manifest> {
    let Some(bytes) = bytes else {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Manifest,
            "missing from the archive".into(),
        );
        return None;
    };
    match Manifest::from_slice(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            state.fail(
                MANIFEST_MEMBER,
                None,
                Check::Manifest,
                format!("unreadable: {e}"),
            );
            None
        }
    }
}

/// The archive's name against its contents (hash and compression). Returns the hash the name
/// gives (the recomputed one for a name without a hash, with a note that the check was skipped).
fn check_archive_name(
    state: &mut State,
    archive_name: &str,
    format: Compression,
    derived: &Derived,
    notes: &mut Vec<String>,
) -> String {
    let Some((named, compression)) = parse_archive_name(archive_name) else {
        notes.push(format!("{archive_name}: the name does not follow aoc-dataset-<hash>.tar.gz|.tar.zst; name check skipped"));
        return derived.dataset_hash.to_string();
    };
    if named != derived.dataset_hash.to_string() {
        state.fail(
            archive_name,
            None,
            Check::FileName,
            format!(
                "the name says hash {named}, the contents hash to {}",
                derived.dataset_hash
            ),
        );
    }
    if compression != format {
        state.fail(
            archive_name,
            None,
            Check::FileName,
            format!(
                "the name says .{}, the data is {format:?}",
                compression.extension()
            ),
        );
    }
    named
}

/// The sidecar manifest (next to the archive, or given as bytes) must be byte-identical to the
/// archive's `manifest.json`; a missing one is a note, an unreadable one a failure.
fn check_sidecar(
    state: &mut State,
    sidecar: &Path,
    given: &Sidecar,
    manifest_bytes: Option<&[u8]>,
    notes: &mut Vec<String>,
) {
    let sidecar_bytes = match given {
        Sidecar::Beside => read_limited(sidecar),
        Sidecar::Bytes(bytes) => Ok(Some(bytes.clone())),
    };
    match sidecar_bytes {
        Ok(None) => notes.push(format!(
            "no sidecar manifest {} next to the archive",
            sidecar.display()
        )),
        Ok(Some(bytes)) => {
            if manifest_bytes != Some(bytes.as_slice()) {
                state.fail(
                    &sidecar.display().to_string(),
                    None,
                    Check::Sidecar,
                    "differs from the archive's manifest.json".into(),
                );
            }
        }
        Err(e) => state.fail(
            &sidecar.display().to_string(),
            None,
            Check::Sidecar,
            format!("unreadable: {e}"),
        ),
    }
}

/// Without `records` (nothing parsed) the upstream-document counts are unknown, so the per-tenant,
/// per-vendor and total counts, all derived from the files and those, are not compared.
pub(crate) fn compare_manifest(state: &mut State, m: &Manifest, derived: &Derived, records: bool) {
    let listed: BTreeMap<&str, &FileEntry> = m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for f in &derived.files {
        match listed.get(f.path.as_str()) {
            None => state.fail(
                &f.path,
                None,
                Check::Manifest,
                "in the archive but not listed in manifest.json".into(),
            ),
            Some(l) if *l != f => {
                let mut diffs = Vec::new();
                if l.sha256 != f.sha256 {
                    diffs.push(format!("sha256 {} listed, {} actual", l.sha256, f.sha256));
                }
                if l.bytes != f.bytes {
                    diffs.push(format!("bytes {} listed, {} actual", l.bytes, f.bytes));
                }
                if l.records != f.records {
                    diffs.push(format!(
                        "records {} listed, {} actual",
                        l.records, f.records
                    ));
                }
                if l.tenant != f.tenant || l.vendor != f.vendor {
                    diffs.push(format!(
                        "tenant/vendor {}/{} listed, {}/{} actual",
                        l.tenant, l.vendor, f.tenant, f.vendor
                    ));
                }
                state.fail(&f.path, None, Check::Manifest, diffs.join("; "));
            }
            Some(_) => {}
        }
    }
    let actual: HashSet<&str> = derived.files.iter().map(|f| f.path.as_str()).collect();
    for f in &m.files {
        if !actual.contains(f.path.as_str()) {
            state.fail(
                &f.path,
                None,
                Check::Manifest,
                "listed in manifest.json but not in the archive".into(),
            );
        }
    }
    if m.files != derived.files && state.failure_count == 0 {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Manifest,
            "files are not listed in path order".into(),
        );
    }
    if m.dataset_hash != derived.dataset_hash.to_string() {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Hash,
            format!(
                "dataset_hash {} listed, contents hash to {}",
                m.dataset_hash, derived.dataset_hash
            ),
        );
    }
    if !records {
        return;
    }
    if m.totals != derived.totals {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Manifest,
            format!("totals {:?} listed, {:?} actual", m.totals, derived.totals),
        );
    }
    if m.tenants != derived.tenants {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Manifest,
            format!(
                "per-tenant counts {:?} listed, {:?} actual",
                m.tenants, derived.tenants
            ),
        );
    }
    if m.vendors != derived.vendors {
        state.fail(
            MANIFEST_MEMBER,
            None,
            Check::Manifest,
            format!(
                "per-vendor counts {:?} listed, {:?} actual",
                m.vendors, derived.vendors
            ),
        );
    }
}

/// The sidecar manifest beside the archive, when there is one: through the one bounded read of
/// untrusted files (a FIFO planted there is refused at once instead of blocking the read).
fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use aoc_archive::fs::{read_regular, OpenError};
    match read_regular(path, MAX_MANIFEST_BYTES) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(OpenError::Missing) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// What the per-line checks (run in parallel) found.
pub(crate) struct LineResult {
    pub no: u64,
    pub head: Option<DocHead>,
    pub problems: Vec<(Check, String)>,
    /// The record as a store writes it, when it has the fields a store needs and the caller
    /// keeps records (rendered once, to check the line is exactly that, and kept for the loader).
    pub stored: Option<StoreDoc>,
}

/// [`check_line`], fast: a record that passes every check is proven from a [`Node`] parsed
/// from its bytes, which costs about 60% of a `Value`, and kept (`keep`) as those very bytes;
/// anything else (a failure, a repeated key, anything unusual) is [`check_line`]'s to explain,
/// so the problems reported are exactly its.
///
/// What passes here passes there: with no key repeated, the node and the `Value` are the same
/// document, and the guard, the store's field checks and the rendering check read either tree
/// through the same code; only `content.raw`'s hash is computed here, from the node, where the
/// full check has the guard compute it from the `Value`.
pub(crate) fn check_line_verified(
    guard: &mut Guard,
    buf: &mut Vec<u8>,
    bytes: &[u8],
    terminated: bool,
    no: u64,
    place: &DataPath,
    keep: bool,
) -> LineResult {
    if terminated {
        if let Some((head, stored)) = proven(guard, buf, bytes, place, keep) {
            return LineResult {
                no,
                head: Some(head),
                problems: Vec::new(),
                stored,
            };
        }
    }
    check_line(guard, bytes, terminated, no, place, keep)
}

/// The record's head, and the record as stored when `keep`, when it passes every per-line
/// check; `None` when [`check_line`] must look.
fn proven(
    guard: &mut Guard,
    buf: &mut Vec<u8>,
    bytes: &[u8],
    place: &DataPath,
    keep: bool,
) -> Option<(DocHead, Option<StoreDoc>)> {
    // Node::parse refuses a key serde_json's Value may read with a meaning of its own.
    let node = Node::parse(bytes).ok()?;
    // A repeated key is the full check's to judge (a Value keeps one of them). In content.raw
    // the canonical writer refuses one below.
    if !envelope_keys_unique(&node) || !guard.check_fresh(&node).is_empty() {
        return None;
    }
    let claimed = pointer(&node, "/upstream/content_hash")?.as_str()?;
    let raw = pointer(&node, "/content/raw")?;
    if content_hash_tree(raw, buf)? != claimed {
        return None;
    }
    // The line must be exactly the store's rendering: kept as it is, or only compared.
    let (head, stored) = if keep {
        let stored = StoreDoc::from_rendered(&node, bytes)?;
        (stored.head().clone(), Some(stored))
    } else {
        let head = StoreDoc::check_fields(&node).ok()?;
        StoreDoc::renders_as(&node, bytes).then_some((head, None))?
    };
    let in_place = head.key.tenant == place.tenant && head.key.vendor == place.vendor;
    in_place.then_some((head, stored))
}

/// Whether no object of a record repeats a key, `content.raw` aside.
fn envelope_keys_unique(node: &Node<'_>) -> bool {
    let Node::Object(members) = node else {
        return true;
    };
    members_unique(members)
        && members
            .iter()
            .all(|(key, value)| match (key.as_ref(), value) {
                ("content", Node::Object(content)) => {
                    members_unique(content)
                        && content.iter().all(|(k, v)| k == "raw" || v.keys_unique())
                }
                _ => value.keys_unique(),
            })
}

pub(crate) fn check_line(
    guard: &mut Guard,
    bytes: &[u8],
    terminated: bool,
    no: u64,
    place: &DataPath,
    keep: bool,
) -> LineResult {
    let mut problems = Vec::new();
    if !terminated {
        problems.push((
            Check::Record,
            "last line does not end with a newline".into(),
        ));
    }
    if bytes.is_empty() {
        problems.push((Check::Record, "empty line".into()));
        return LineResult {
            no,
            head: None,
            problems,
            stored: None,
        };
    }
    let doc: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push((Check::Record, format!("not JSON: {e}")));
            return LineResult {
                no,
                head: None,
                problems,
                stored: None,
            };
        }
    };
    // Reloading renders documents with serde_json: only its compact form survives a round trip.
    // The store's rendering is that form whenever the record has its `supersedes` (every record
    // a store exported does), so the line must be exactly it: rendered once and kept for a
    // loader (`keep`), or compared while rendering for a verifier that keeps nothing.
    let rendered = if keep {
        StoreDoc::from_value(&doc).map(|s| {
            let same = s.json().as_bytes() == bytes;
            (s.head().clone(), same, Some(s))
        })
    } else {
        StoreDoc::check_rendering(&doc, bytes).map(|(head, same)| (head, same, None))
    };
    let (head, compact, stored) = match rendered {
        Ok((head, same, stored)) => (Some(head), same, stored),
        Err(why) => {
            problems.push((
                Check::Record,
                format!("not a document a store holds: {why}"),
            ));
            let same = serde_json::to_vec(&doc).is_ok_and(|v| v == bytes);
            (DocHead::from_value(&doc), same, None)
        }
    };
    if !compact {
        problems.push((
            Check::Record,
            "not compact JSON as a store writes it (re-serialising changes the bytes)".into(),
        ));
    }
    for v in guard.check(&doc) {
        problems.push((
            Check::Guard(v.code),
            format!(
                "{}: {}",
                if v.path.is_empty() { "/" } else { &v.path },
                v.message
            ),
        ));
    }
    if let Some(h) = &head {
        if h.key.tenant != place.tenant || h.key.vendor != place.vendor {
            problems.push((
                Check::Order,
                format!(
                    "record of {}/{} in the file of {}/{}",
                    h.key.tenant, h.key.vendor, place.tenant, place.vendor
                ),
            ));
        }
    }
    // Dropped here, on the thread that parsed it: freeing a document on another thread costs
    // more than parsing it did.
    drop(doc);
    LineResult {
        no,
        head,
        problems,
        stored,
    }
}

/// Sequential state across members: order, chains and counts.
pub(crate) struct State {
    pub failures: Vec<Failure>,
    pub failure_count: u64,
    max_failures: usize,
    files: Vec<FileEntry>,
    /// (tenant, vendor) → (records, upstream documents).
    vendors: BTreeMap<(String, String), (u64, u64)>,
    finished_pairs: HashSet<(String, String)>,
    pair: Option<(String, String)>,
    /// Parts seen for the current pair: (last part, count).
    parts: Option<(Option<u32>, u32)>,
    upstream: Option<String>,
    group: Vec<ChainEntry>,
    /// [`VerifyOptions::records`].
    records: bool,
    /// The current upstream group may have begun before the first record seen (a read resumed
    /// in the middle of the data): links into revisions not seen are expected.
    pub partial_group: bool,
    /// The private copy data members are written to as they are hashed, if any.
    private_copy: Option<PrivateCopy>,
}

impl State {
    pub(crate) fn new(max_failures: usize) -> State {
        State {
            failures: Vec::new(),
            failure_count: 0,
            max_failures,
            files: Vec::new(),
            vendors: BTreeMap::new(),
            finished_pairs: HashSet::new(),
            pair: None,
            parts: None,
            upstream: None,
            group: Vec::new(),
            records: true,
            partial_group: false,
            private_copy: None,
        }
    }

    pub(crate) fn fail(&mut self, file: &str, line: Option<u64>, check: Check, message: String) {
        self.failure_count += 1;
        if self.failures.len() < self.max_failures {
            self.failures.push(Failure {
                file: file.to_owned(),
                line,
                check,
                message,
            });
        }
    }

    fn check_member(
        &mut self,
        member: &str,
        place: DataPath,
        entry: &mut aoc_archive::EntryReader<'_>,
    ) -> Result<(), ArchiveError> {
        let pair = (place.tenant.clone(), place.vendor.clone());
        if self.pair.as_ref() == Some(&pair) {
            let (last, count) = self.parts.unwrap_or((None, 0));
            let expected = last.map(|n| n + 1);
            if last.is_none() || place.part != expected {
                self.fail(
                    member,
                    None,
                    Check::Order,
                    format!(
                        "part {:?} of {}/{} follows part {:?}",
                        place.part, pair.0, pair.1, last
                    ),
                );
            }
            self.parts = Some((place.part, count + 1));
        } else {
            self.finish_pair();
            if self.finished_pairs.contains(&pair) {
                self.fail(
                    member,
                    None,
                    Check::Order,
                    format!(
                        "{}/{} appears in files that are not consecutive",
                        pair.0, pair.1
                    ),
                );
            }
            if !matches!(place.part, None | Some(0)) {
                self.fail(
                    member,
                    None,
                    Check::Order,
                    format!("{}/{} starts at part {:?}", pair.0, pair.1, place.part),
                );
            }
            self.pair = Some(pair.clone());
            self.parts = Some((place.part, 1));
        }
        let streamed = if self.records {
            self.check_lines(member, &pair, &place, entry)
        } else if let Some(copy) = &mut self.private_copy {
            // Hashed, counted and copied in one go: the copy is exactly what was hashed.
            let offset = copy.written;
            let streamed = stream_count(CopyingReader {
                inner: entry,
                copy: &mut copy.file,
                failed: &mut copy.failed,
            });
            if let Ok(s) = &streamed {
                copy.written += s.bytes;
                copy.members.push((member.to_owned(), offset, s.bytes));
            }
            streamed
        } else {
            stream_count(entry) // integrity only: hashed and its lines counted, nothing parsed
        }
        .map_err(|e| {
            ArchiveError::Io(io::Error::new(e.kind(), format!("entry {member:?}: {e}")))
        })?;
        if !self.records {
            // check_lines counts records as it books them.
            self.vendors.entry(pair).or_default().0 += streamed.lines;
        }
        self.files.push(FileEntry {
            path: member.to_owned(),
            sha256: streamed.sha256.to_string(),
            bytes: streamed.bytes,
            records: streamed.lines,
            tenant: place.tenant,
            vendor: place.vendor,
        });
        Ok(())
    }

    /// Streams a data member's lines through the parallel per-record checks, booked in order;
    /// the next batch is read while one is checked.
    fn check_lines(
        &mut self,
        member: &str,
        pair: &(String, String),
        place: &DataPath,
        entry: impl Read,
    ) -> io::Result<Streamed> {
        let mut records = 0u64;
        let streamed = stream_lines(
            entry,
            |batch: &LineBatch| -> Vec<LineResult> {
                batch
                    .lines
                    .par_iter()
                    .map_init(
                        || {
                            (
                                Guard::new(GuardOptions::default()),
                                Vec::with_capacity(64 << 10),
                            )
                        },
                        // The parsed record is freed on this worker (verification keeps none),
                        // not one by one on the thread that books the results.
                        |(guard, buf), line| {
                            let bytes = batch.bytes(line);
                            check_line_verified(
                                guard,
                                buf,
                                bytes,
                                line.terminated,
                                line.no,
                                place,
                                false,
                            )
                        },
                    )
                    .collect()
            },
            |results| {
                for r in results {
                    records += 1;
                    self.record(member, pair, r);
                }
                Ok::<_, io::Error>(())
            },
        )?;
        debug_assert_eq!(streamed.lines, records);
        Ok(streamed)
    }

    pub(crate) fn record(&mut self, member: &str, pair: &(String, String), r: LineResult) {
        for (check, message) in r.problems {
            self.fail(member, Some(r.no), check, message);
        }
        self.counts(pair).0 += 1;
        let Some(head) = r.head else { return };
        let id = head.key.upstream_id.clone();
        match self.upstream.as_deref() {
            Some(current) if current == id => {}
            Some(current) if current > id.as_str() => {
                let message = format!(
                    "upstream id {id} after {current}: not in (upstream_id, revision) order"
                );
                self.fail(member, Some(r.no), Check::Order, message);
                return;
            }
            _ => {
                self.finish_group();
                self.counts(pair).1 += 1;
                self.upstream = Some(id);
            }
        }
        let revision = self.group.len() as i64 + 1;
        self.group.push(ChainEntry {
            head,
            revision: Some(revision),
            location: format!("{member}:{}", r.no),
        });
    }

    /// (records, upstream documents) of `pair`, without cloning it per record.
    fn counts(&mut self, pair: &(String, String)) -> &mut (u64, u64) {
        if !self.vendors.contains_key(pair) {
            self.vendors.insert(pair.clone(), (0, 0));
        }
        self.vendors.get_mut(pair).expect("inserted above")
    }

    fn finish_group(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let mut checker = ChainChecker::new(std::mem::take(&mut self.partial_group));
        for e in self.group.drain(..) {
            checker.push(e);
        }
        for v in checker.finish() {
            let (file, line) = match v.location.rsplit_once(':') {
                Some((f, l)) => (f.to_owned(), l.parse().ok()),
                None => (v.location.clone(), None),
            };
            self.fail(
                &file,
                line,
                Check::Chain,
                format!("{} {}: {}", v.id, v.violation.path, v.violation.message),
            );
        }
    }

    /// Records of `pair` follow: the previous pair, if another, is finished.
    pub(crate) fn enter_pair(&mut self, pair: &(String, String)) {
        if self.pair.as_ref() != Some(pair) {
            self.finish_pair();
            self.pair = Some(pair.clone());
        }
    }

    /// Records and upstream documents counted per (tenant, vendor), in that order.
    pub(crate) fn vendor_counts(&self) -> Vec<VendorCount> {
        self.vendors
            .iter()
            .map(|((tenant, vendor), c)| VendorCount {
                tenant: tenant.clone(),
                vendor: vendor.clone(),
                records: c.0,
                upstream_documents: c.1,
            })
            .collect()
    }

    pub(crate) fn finish_pair(&mut self) {
        self.finish_group();
        self.upstream = None;
        if let Some(pair) = self.pair.take() {
            if let Some((Some(_), 1)) = self.parts {
                self.fail(
                    &crate::layout::data_path(&pair.0, &pair.1, Some(0)),
                    None,
                    Check::Order,
                    "a single part must be named without .part-NNNNN".into(),
                );
            }
            self.finished_pairs.insert(pair);
        }
        self.parts = None;
    }
}

/// Writes everything read from `inner` to the private copy `copy` before handing it on.
struct CopyingReader<'a, R> {
    inner: R,
    copy: &'a mut std::fs::File,
    failed: &'a mut Option<io::Error>,
}

impl<R: Read> Read for CopyingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(self.copy, &buf[..n]).map_err(|e| {
            *self.failed = Some(io::Error::new(e.kind(), e.to_string()));
            io::Error::new(
                e.kind(),
                format!("writing the private copy to load from: {e}"),
            )
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored records of the OSV and CSAF samples, as a store renders them.
    fn records() -> Vec<(String, DataPath)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
        let ctx = aoc_contract::MapContext {
            tenant: "t".into(),
            vendor: None,
            connector_version: "1".into(),
            retrieved_at: "2024-01-02T00:00:00Z".into(),
            ingested_at: "2024-01-03T00:00:00Z".into(),
        };
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for dir in ["osv-rustsec", "csaf"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for f in files {
                let raw: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                let doc = aoc_contract::map_document(raw, &ctx, &mut buf).unwrap();
                let stored = StoreDoc::from_mapped(&doc).unwrap();
                let place = DataPath {
                    tenant: doc.tenant.clone(),
                    vendor: doc.source.vendor.clone(),
                    part: None,
                };
                out.push((stored.json().to_owned(), place));
            }
        }
        assert!(out.len() > 5, "{}", out.len());
        out
    }

    fn summary(r: &LineResult) -> (u64, Option<DocHead>, Vec<(Check, String)>, bool) {
        (r.no, r.head.clone(), r.problems.clone(), r.stored.is_some())
    }

    /// The fast per-line check gives exactly the problems and head of the full one, for good
    /// records and for every kind of broken one, including those only a Value would hide.
    #[test]
    fn the_fast_line_check_agrees_with_the_full_one() {
        let mut guard = Guard::new(GuardOptions::default());
        let mut buf = Vec::new();
        let mut cases = 0;
        for (line, place) in records() {
            let raw_at = line.find("\"raw\":{").expect("content.raw") + 7;
            let variants: Vec<(String, bool)> = vec![
                (line.clone(), true),
                // A repeated key: at the top, inside content, inside raw.
                (
                    line.replacen("{\"_id\"", "{\"tenant\":\"x\",\"_id\"", 1),
                    false,
                ),
                (
                    line.replacen("\"raw\":", "\"format\":\"x\",\"raw\":", 1),
                    false,
                ),
                (
                    format!("{}\"id\":\"dup\",{}", &line[..raw_at], &line[raw_at..]),
                    false,
                ),
                // ... and deeper in the envelope, where a Value keeps the last.
                (
                    line.replacen("\"upstream\":{", "\"upstream\":{\"upstream_id\":\"x\",", 1),
                    false,
                ),
                (
                    line.replacen("\"signature\":{", "\"signature\":{\"present\":true,", 1),
                    false,
                ),
                (
                    line.replacen("\"identifiers\":{", "\"identifiers\":{\"cve\":[],", 1),
                    false,
                ),
                // A key serde_json reserves, inside raw; an escaped string in the envelope.
                (
                    format!(
                        "{}\"$serde_json::private::Number\":\"1\",{}",
                        &line[..raw_at],
                        &line[raw_at..]
                    ),
                    false,
                ),
                (
                    line.replacen("\"format\":\"", "\"format\":\"\\u0041", 1),
                    false,
                ),
                // Not the stored rendering.
                (line.replacen(':', ": ", 1), false),
                (line.replacen(",\"supersedes\":null", "", 1), false),
                // Guard failures: forbidden and unknown fields, the hash, content.
                (
                    line.replacen("{\"_id\"", "{\"severity\":\"high\",\"_id\"", 1),
                    false,
                ),
                (line.replacen("{\"_id\"", "{\"extra\":1,\"_id\"", 1), false),
                (
                    line.replacen(
                        "\"content_hash\":\"sha256:",
                        "\"content_hash\":\"sha256:0",
                        1,
                    ),
                    false,
                ),
                (line.replacen("\"raw\":", "\"rav\":", 1), false),
                (line.replacen("\"content\":{", "\"content\":[{", 1), false),
                (
                    line.replacen("\"tenant\":\"t\"", "\"tenant\":\"u\"", 1),
                    false,
                ),
                (
                    line.replacen(
                        "{\"_id\"",
                        "{\"$serde_json::private::RawValue\":1,\"_id\"",
                        1,
                    ),
                    false,
                ),
                (String::new(), false),
                ("{\"_id\":".into(), false),
                ("[1,2]".into(), false),
            ];
            // Not UTF-8, inside a key of raw: both paths refuse it the same way.
            let mut bytes = line.clone().into_bytes();
            bytes.insert(raw_at + 1, 0xff);
            for keep in [false, true] {
                assert!(proven(&mut guard, &mut buf, &bytes, &place, keep).is_none());
                assert_eq!(
                    summary(&check_line_verified(
                        &mut guard, &mut buf, &bytes, true, 7, &place, keep
                    )),
                    summary(&check_line(&mut guard, &bytes, true, 7, &place, keep))
                );
            }
            for (i, (text, good)) in variants.iter().enumerate() {
                assert!(*good || *text != line, "variant {i} changes nothing");
                // Good records are proven on the fast path, not handed to the full check.
                let fast_path = proven(&mut guard, &mut buf, text.as_bytes(), &place, false);
                assert_eq!(fast_path.is_some(), *good, "variant {i}: {text}");
                for (terminated, keep) in
                    [(true, false), (false, false), (true, true), (false, true)]
                {
                    let fast = check_line_verified(
                        &mut guard,
                        &mut buf,
                        text.as_bytes(),
                        terminated,
                        7,
                        &place,
                        keep,
                    );
                    let full = check_line(&mut guard, text.as_bytes(), terminated, 7, &place, keep);
                    assert_eq!(summary(&fast), summary(&full), "variant {i}: {text}");
                    assert_eq!(
                        fast.problems.is_empty(),
                        *good && terminated,
                        "variant {i}: {:?}",
                        fast.problems
                    );
                    // A loader keeps the same record either way: the line as the store renders it.
                    assert_eq!(
                        format!("{:?}", fast.stored),
                        format!("{:?}", full.stored),
                        "variant {i}"
                    );
                    assert_eq!(
                        fast.stored.is_some() && fast.problems.is_empty(),
                        *good && terminated && keep
                    );
                    cases += 1;
                }
            }
        }
        assert!(cases > 100);
    }

    /// The same agreement on lines mutated at random (a fixed seed): bytes replaced by JSON's
    /// own punctuation, escapes, digits or multi-byte text, spans deleted or copied elsewhere.
    /// Most mutations break the JSON; the rest change a value, a key or the layout, and the
    /// fast path must reach the full check's verdict on each of them, in both keep modes.
    #[test]
    fn the_fast_line_check_agrees_with_the_full_one_on_random_mutations() {
        let mut guard = Guard::new(GuardOptions::default());
        let mut buf = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            // xorshift64*: enough to spread mutations over a line, the same on every run.
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n.max(1)
        };
        const PIECES: &[&[u8]] = &[
            b"\"",
            b"\\",
            b",",
            b":",
            b"{",
            b"}",
            b"[",
            b"]",
            b"0",
            b"7",
            b"-",
            b".",
            b"e",
            b"a",
            b" ",
            b"\\u0041",
            b"\\n",
            b"null",
            b"\xc3\xa9",
            b"\xff",
            b"\x01",
        ];
        let (mut cases, mut accepted) = (0, 0);
        for (line, place) in records() {
            let line = line.into_bytes();
            for _ in 0..300 {
                let mut text = line.clone();
                let at = next(text.len());
                match next(3) {
                    0 => {
                        let piece = PIECES[next(PIECES.len())];
                        text.splice(at..(at + 1).min(text.len()), piece.iter().copied());
                    }
                    1 => {
                        let end = (at + 1 + next(6)).min(text.len());
                        text.drain(at..end);
                    }
                    _ => {
                        let from = next(text.len());
                        let span = text[from..(from + 1 + next(40)).min(text.len())].to_vec();
                        text.splice(at..at, span);
                    }
                }
                for keep in [false, true] {
                    let fast =
                        check_line_verified(&mut guard, &mut buf, &text, true, 7, &place, keep);
                    let full = check_line(&mut guard, &text, true, 7, &place, keep);
                    let shown = String::from_utf8_lossy(&text);
                    assert_eq!(summary(&fast), summary(&full), "{shown}");
                    assert_eq!(
                        format!("{:?}", fast.stored),
                        format!("{:?}", full.stored),
                        "{shown}"
                    );
                    accepted += usize::from(fast.problems.is_empty());
                    cases += 1;
                }
            }
        }
        assert!(cases >= 3000, "{cases}");
        // Some mutations keep a valid record (a changed letter in an identifier list, a
        // duplicated array item outside content.raw), so both verdicts are exercised.
        assert!(accepted > 0 && accepted < cases, "{accepted} of {cases}");
    }
}
