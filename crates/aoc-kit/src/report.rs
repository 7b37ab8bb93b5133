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

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable check name, e.g. `sha256`, `signature`, `sbom.spdx`.
    pub check: String,
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
    pub fn new(check: &str, file: &str, class: Class, outcome: Result<String, String>) -> Self {
        let ok = outcome.is_ok();
        let detail = match outcome {
            Ok(d) | Err(d) => escape(&d),
        };
        CheckResult {
            check: check.into(),
            file: escape(file),
            ok,
            class,
            detail,
        }
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

/// Everything a verification found, in chain-of-trust order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitReport {
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

impl KitReport {
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
