//! The verification report: one entry per check (class, file, message), the key the kit was
//! checked against, and the exit-code policy shared by `cargo xtask aoc-verify` and
//! `stella kit verify`. Every string that came from the kit is escaped before it is stored, so
//! neither the text nor the JSON form can carry a control character to a terminal.

use serde::{Deserialize, Serialize};

/// Exit code for bad usage (unknown flag, unreadable `--key`).
pub const EXIT_USAGE: u8 = 2;

/// What kind of trust a failed check breaks; the process exit code of the first failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// SHA256SUMS unparsable, a file missing, unlisted or with another digest.
    Checksum,
    /// A bundle malformed, by another key, over another digest, or not verifying.
    Signature,
    /// Provenance subjects, SBOM bindings or the rehearsal report disagree with the artefacts.
    Provenance,
    /// The dataset: manifest, content hash, AOC guard, or not the pinned dataset.
    Dataset,
    /// Unreadable or hostile input: not a kit, an archive the defensive reader refuses, a file
    /// larger than any kit file may be.
    Hostile,
    /// Every check passed, but against a key that proves nothing about who signed: the kit's
    /// own `cosign.pub`, or the public dev key without `--allow-dev-key`.
    Origin,
}

impl Class {
    /// The process exit code when this class fails first.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Checksum => 10,
            Class::Signature => 11,
            Class::Provenance => 12,
            Class::Dataset => 13,
            Class::Hostile => 14,
            Class::Origin => 15,
        }
    }
}

/// The exit codes, for `--help` texts and documentation.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   verified, origin proven by the trusted key
  2   usage: bad flags, --key unreadable or not a public key
  10  checksum: SHA256SUMS unparsable, a file missing, unlisted or with another digest
  11  signature: a bundle malformed, by another key, over another digest, or not verifying;
      a published index older than --expect-min-index-sequence
  12  provenance/SBOM: subjects, SBOM bindings or rehearsal report differ from the artefacts
  13  dataset/AOC: manifest or content hash differ from the data, an AOC violation, or not the
      dataset pinned by --expect-dataset-hash
  14  unreadable or hostile input: not a kit, an archive refused, a file over its size bound
  15  intact, origin NOT proven: no --key, or the public dev key without --allow-dev-key";

/// Declares [`CheckId`] from `Variant = "string form"` pairs, so the string form, the JSON form
/// and [`CheckId::ALL`] cannot miss a variant.
macro_rules! check_ids {
    ($($(#[doc = $doc:literal])* $id:ident = $name:literal,)*) => {
        /// Which check a [`CheckResult`] is: its string form (the report's `check` field, text
        /// and JSON) is stable, and code and tests compare the enum, so a renamed check fails to
        /// compile instead of turning a negative assertion ("check X did not run") silently true.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum CheckId {
            $($(#[doc = $doc])* #[serde(rename = $name)] $id,)*
        }

        impl CheckId {
            /// Every check id, in declaration order.
            pub const ALL: &'static [CheckId] = &[$(CheckId::$id),*];

            /// The stable string form, as in the report.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CheckId::$id => $name,)*
                }
            }
        }
    };
}

check_ids! {
    // A kit (`verify.rs`), in chain-of-trust order.
    /// The path given is a directory.
    Kit = "kit",
    /// The key checked against, when it is the kit's (or the published directory's) own.
    Key = "key",
    /// A bundle's signature: `SHA256SUMS`, the runner tarball, the provenance, the index.
    Signature = "signature",
    /// `SHA256SUMS` parses strictly.
    SumsParse = "sha256sums.parse",
    /// An entry that is not a regular file, or a listing without exactly one dataset.
    Layout = "layout",
    /// The kit holds exactly the listed files and the checksum pair.
    SumsComplete = "sha256sums.complete",
    /// The listed names are exactly a kit's.
    SumsLayout = "sha256sums.layout",
    /// The kit (or a listed kit) carries the pinned dataset.
    DatasetPinned = "dataset.pinned",
    /// A listed file has its listed digest.
    Sha256 = "sha256",
    /// The provenance's subjects and dataset are the kit's.
    ProvenanceSubjects = "provenance.subjects",
    /// The carried rehearsal report passed, for this dataset.
    RehearsalReport = "rehearsal.report",
    /// `stella` inside the runner tarball, hashed.
    RunnerBinary = "runner.binary",
    /// The SPDX SBOM names the tarball and the binary.
    SbomSpdx = "sbom.spdx",
    /// The CycloneDX SBOM names the tarball and the binary.
    SbomCycloneDx = "sbom.cyclonedx",
    /// The dataset's sidecar manifest parses and names this dataset.
    DatasetManifest = "dataset.manifest",
    /// The dataset's records: parsed, guarded, hashed.
    Dataset = "dataset",
    /// Who signed: a key the operator trusts, not the public dev key unless allowed.
    Origin = "origin",
    // A published directory (`published.rs`).
    /// The path given is a directory.
    Published = "published",
    /// The index parses strictly.
    ManifestParse = "manifest.parse",
    /// The index names the key that signs it.
    ManifestKey = "manifest.key",
    /// The index is at least the pinned sequence.
    ManifestSequence = "manifest.sequence",
    /// A listed kit that is not a directory, or a directory that cannot be listed.
    PublishedLayout = "published.layout",
    /// The directory holds exactly the listed kits, the index and its key.
    PublishedComplete = "published.complete",
    /// A listed kit's directory holds exactly its listed files, sizes and digests.
    ManifestFiles = "manifest.files",
    /// A listed kit's entry (dataset, commit, build time, key) is what its provenance signs.
    ManifestKit = "manifest.kit",
}

impl std::fmt::Display for CheckId {
    /// The string form, padded as asked (`{:<20}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for CheckId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        CheckId::ALL
            .iter()
            .copied()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| format!("{:?} is not a check id", escape(s)))
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check (its stable string form in the JSON, e.g. `sha256`, `signature`).
    pub check: CheckId,
    /// The kit file the check is about (escaped).
    pub file: String,
    pub ok: bool,
    /// The class this check belongs to (the exit code when it is the first failure).
    pub class: Class,
    /// What was found (escaped).
    pub detail: String,
}

impl CheckResult {
    /// A check's outcome with every text from the kit escaped: the one place both verifiers
    /// (a kit, a published directory) build their report entries.
    pub fn new(check: CheckId, file: &str, class: Class, outcome: Result<String, String>) -> Self {
        let ok = outcome.is_ok();
        let detail = match outcome {
            Ok(d) | Err(d) => escape(&d),
        };
        CheckResult {
            check,
            file: escape(file),
            ok,
            class,
            detail,
        }
    }
}

/// Where both verifiers (a kit, a published directory) record their checks: in order, each
/// shown to the observer as it completes, with the scope it belongs to (a published kit's
/// version; `None` for a kit verified on its own, or a published directory's index).
pub(crate) struct Recorder<'a> {
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) observe: &'a mut dyn FnMut(Option<&str>, &CheckResult),
    pub(crate) scope: Option<String>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(observe: &'a mut dyn FnMut(Option<&str>, &CheckResult)) -> Self {
        Recorder {
            checks: Vec::new(),
            observe,
            scope: None,
        }
    }

    /// Records one check's outcome; true when it passed.
    pub(crate) fn record(
        &mut self,
        check: CheckId,
        file: &str,
        class: Class,
        outcome: Result<String, String>,
    ) -> bool {
        let result = CheckResult::new(check, file, class, outcome);
        let ok = result.ok;
        (self.observe)(self.scope.as_deref(), &result);
        self.checks.push(result);
        ok
    }
}

/// The key the kit was checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Where it came from (escaped).
    pub path: String,
    pub key_id: Option<String>,
    /// The kit's own cosign.pub: proves integrity, not origin.
    pub self_contained: bool,
    /// The public dev key: anyone can sign with it.
    pub is_dev: bool,
}

/// Everything the verification of a kit found, in chain-of-trust order (a published directory's
/// is [`crate::published::PublishedReport`], which holds one of these per kit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The kit directory (escaped).
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

impl VerifyReport {
    /// Every check passed (origin included).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Every check but the origin check passed: the kit is intact.
    pub fn intact(&self) -> bool {
        self.checks.iter().all(|c| c.ok || c.class == Class::Origin)
    }

    /// The first failed check in chain-of-trust order.
    pub fn first_failure(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// The summary lines printed after the checks (stderr in both verifiers).
    pub fn summary(&self, tool: &str) -> Vec<String> {
        let passed = self.checks.iter().filter(|c| c.ok).count();
        let mut lines = Vec::new();
        match self.first_failure() {
            None => lines.push(format!(
                "{tool}: {} verified: {passed} checks passed",
                self.dir
            )),
            Some(origin) if origin.class == Class::Origin && self.intact() => lines.push(format!(
                "{tool}: {} is INTACT, but its ORIGIN IS NOT PROVEN (exit {}): {}",
                self.dir, self.exit_code, origin.detail
            )),
            Some(first) => lines.push(format!(
                "{tool}: {} FAILED ({} of {} checks; exit {}): first: {} {}: {}",
                self.dir,
                self.checks.len() - passed,
                self.checks.len(),
                self.exit_code,
                first.check,
                first.file,
                first.detail
            )),
        }
        for skipped in &self.skipped {
            lines.push(format!("{tool}: NOT CHECKED (--integrity-only): {skipped}"));
        }
        if self.key.is_dev {
            lines.push(format!(
                "{tool}: WARNING: the kit is signed with the PUBLIC DEV KEY: anyone can produce \
                 this signature; never deploy it as a release."
            ));
        }
        lines
    }
}

/// One check as a line of text: `  [pass] name  file: detail`.
pub fn render_check(c: &CheckResult) -> String {
    let mark = if c.ok { "pass" } else { "FAIL" };
    format!("  [{mark}] {:<20} {}: {}", c.check, c.file, c.detail)
}

/// `s` escaped for a terminal by the one escape every binary shares ([`aoc_term::escape()`]: C0,
/// DEL, C1, bidi controls, zero-width characters, U+2028/U+2029; a backslash doubled), owned for
/// the report's fields.
pub fn escape(s: &str) -> String {
    aoc_term::escape(s).into_owned()
}

pub use aoc_term::escape_os;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_plain_names_and_makes_controls_visible() {
        assert_eq!(escape("aoc-dataset-ab.tar.gz"), "aoc-dataset-ab.tar.gz");
        assert_eq!(escape("a\u{1b}[2Kb\rc\n"), "a\\u{1b}[2Kb\\rc\\n");
        assert_eq!(escape("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(escape("rtl\u{202e}gpj.exe"), "rtl\\u{202e}gpj.exe");
        assert_eq!(escape("a\\u{1b}"), "a\\\\u{1b}");
        let escaped = escape("\u{1b}\u{7}\u{0}\u{8}");
        assert!(escaped.chars().all(|c| !c.is_control()), "{escaped}");
    }

    #[test]
    fn escape_covers_the_separators_and_arabic_letter_mark() {
        assert_eq!(
            escape("a\u{61c}b\u{2028}c\u{2029}"),
            "a\\u{61c}b\\u{2028}c\\u{2029}"
        );
    }

    #[test]
    fn check_ids_have_unique_string_forms_that_round_trip() {
        let names: std::collections::BTreeSet<&str> =
            CheckId::ALL.iter().map(|id| id.as_str()).collect();
        assert_eq!(names.len(), CheckId::ALL.len(), "{names:?}");
        for &id in CheckId::ALL {
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(id));
            assert_eq!(id.to_string(), id.as_str());
            let json = serde_json::to_value(id).unwrap();
            assert_eq!(json, serde_json::Value::from(id.as_str()));
            assert_eq!(serde_json::from_value::<CheckId>(json).unwrap(), id);
        }
        assert!("sha256sums".parse::<CheckId>().is_err());
        assert!(serde_json::from_str::<CheckId>("\"Sha256\"").is_err());
        assert_eq!(format!("[{:<8}]", CheckId::Kit), "[kit     ]");
    }

    /// The string forms are the report's stable interface (text and JSON): written out here, so
    /// renaming one is a deliberate change to this list.
    #[test]
    fn check_ids_keep_their_published_string_forms() {
        let forms: Vec<&str> = CheckId::ALL.iter().map(|id| id.as_str()).collect();
        assert_eq!(
            forms,
            [
                "kit",
                "key",
                "signature",
                "sha256sums.parse",
                "layout",
                "sha256sums.complete",
                "sha256sums.layout",
                "dataset.pinned",
                "sha256",
                "provenance.subjects",
                "rehearsal.report",
                "runner.binary",
                "sbom.spdx",
                "sbom.cyclonedx",
                "dataset.manifest",
                "dataset",
                "origin",
                "published",
                "manifest.parse",
                "manifest.key",
                "manifest.sequence",
                "published.layout",
                "published.complete",
                "manifest.files",
                "manifest.kit",
            ]
        );
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let classes = [
            Class::Checksum,
            Class::Signature,
            Class::Provenance,
            Class::Dataset,
            Class::Hostile,
            Class::Origin,
        ];
        let mut codes: Vec<u8> = classes.iter().map(|c| c.exit_code()).collect();
        codes.push(EXIT_USAGE);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), classes.len() + 1);
        for code in codes {
            assert!(
                EXIT_CODES.contains(&format!("  {code} ")),
                "{code} undocumented"
            );
        }
    }
}
