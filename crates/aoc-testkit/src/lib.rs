//! A skipped test, recorded: the one way a test of this workspace says it did not run.
//!
//! A test that needs something the machine may lack (a PostgreSQL server, `script`, a
//! third-party verifier) calls [`skip`] with the reason and returns. libtest has no "skipped"
//! outcome, so such a test would otherwise count as passed. [`skip`]:
//!
//! - panics when `CI` is set to a true value (anything but empty, `0` or `false`): under CI a
//!   skip is a failure, never a pass;
//! - otherwise prints `SKIPPED: <reason>` to stderr and, when `AOC_SKIP_LOG` names a file,
//!   appends one line `<test>\t<reason>` to it. `cargo xtask test` sets `AOC_SKIP_LOG` to a fresh
//!   file, subtracts the recorded skips from libtest's passed count and lists each reason
//!   (`docs/ARCHITECTURE.md` §10).
//!
//! Why a crate of its own: every crate's tests need it, including the lowest ones (aoc-store),
//! and no library should carry test support in its public API. Its one dependency, tempfile, is
//! in every test build already, and it is a dev-dependency of every crate but xtask (whose `test`
//! task names and reads the log), so it never reaches `stella`, a release build or an SBOM.
//!
//! It also runs a program as a user whom permission bits bind ([`Unprivileged`]), for the tests
//! of read-only access that root would otherwise pass without the bits being honoured.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG_ENV: &str = "AOC_SKIP_LOG";

/// True when `CI` is set to a true value: anything but unset, empty, `0` or `false`.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| is_true(&v))
}

fn is_true(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
}

/// Records that the calling test did not run what it is for, and why; the caller then returns.
/// Under CI ([`ci`]) this panics instead: a skip fails the run.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) {
    let reason = reason.to_string();
    let log = std::env::var_os(SKIP_LOG_ENV).filter(|v| !v.is_empty());
    if let Err(e) = record(&test_name(), &reason, ci(), log.as_deref().map(Path::new)) {
        panic!("{e}");
    }
}

/// [`skip`] with its inputs given: `Err` (the panic message) under CI or when the log cannot be
/// written (an unrecorded skip would be counted as a pass).
fn record(test: &str, reason: &str, ci: bool, log: Option<&Path>) -> Result<(), String> {
    if ci {
        return Err(format!(
            "SKIPPED under CI, which makes a skip a failure: {reason}"
        ));
    }
    eprintln!("\n!!! SKIPPED: {reason}\n");
    let Some(log) = log else {
        return Ok(());
    };
    // One write of one line with O_APPEND: lines from parallel tests and test binaries do not
    // interleave.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(log_line(test, reason).as_bytes()))
        .map_err(|e| {
            format!(
                "cannot record the skip in {SKIP_LOG_ENV}={}: {e} (reason: {reason})",
                log.display()
            )
        })
}

/// `<test binary> <test path>`: libtest runs each test on a thread named after it; the binary
/// (`store`, `aoc_kit`, `xtask`) says which crate or test file it is in.
fn test_name() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed thread>");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .map(|name| binary_name(&name).to_owned())
        .unwrap_or_else(|| "<unknown binary>".into());
    format!("{binary} {test}")
}

/// `store-0123456789abcdef` → `store` (cargo's hash suffix removed).
fn binary_name(file: &str) -> &str {
    match file.rsplit_once('-') {
        Some((name, hash)) if !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => file,
    }
}

/// One line of the log: tabs and line breaks in either field become spaces.
fn log_line(test: &str, reason: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ").trim().to_string();
    format!("{}\t{}\n", clean(test), clean(reason))
}

/// A line of the log read back: `(test, reason)`.
pub fn parse_log_line(line: &str) -> Option<(&str, &str)> {
    line.split_once('\t')
}

/// True when this process runs as root, whom permission bits do not bind.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A program run as a user whom permission bits bind: this user, or `nobody` (through
/// `runuser`) when this is root.
///
/// For `nobody` the program is copied into a fresh directory anyone may enter: the build's
/// target directory may sit where only root may (`.ci/run` keeps it in a cache under root's
/// 0700 home), and `runuser` would then fail with "Permission denied" before the program ran.
/// The copy is removed on drop. Every path given to the program must be reachable by `nobody`
/// too: a temporary directory made 0755 or 0777, or the repository's test data.
pub struct Unprivileged {
    program: PathBuf,
    /// The directory of the copy, when run as `nobody`.
    copy_dir: Option<tempfile::TempDir>,
}

impl Unprivileged {
    /// Panics when the copy cannot be made: the test could not run what it is for.
    pub fn new(program: &Path) -> Unprivileged {
        if !running_as_root() {
            return Unprivileged {
                program: program.to_owned(),
                copy_dir: None,
            };
        }
        // 0755 set after the fact: a mode given at creation would pass through the umask.
        let dir = tempfile::Builder::new()
            .prefix("aoc-testkit-unprivileged-")
            .tempdir()
            .and_then(|d| set_mode(d.path(), 0o755).map(|()| d))
            .unwrap_or_else(|e| panic!("cannot make a directory for a copy of the program: {e}"));
        let name = program.file_name().expect("a program path names a file");
        let copy = dir.path().join(name);
        std::fs::copy(program, &copy)
            .and_then(|_| set_mode(&copy, 0o755))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot copy {} to {}: {e}",
                    program.display(),
                    copy.display()
                )
            });
        Unprivileged {
            program: copy,
            copy_dir: Some(dir),
        }
    }

    /// A command that runs the program, as `nobody` when this is root.
    pub fn command(&self) -> Command {
        match self.copy_dir {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "nobody", "--"]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_true_unless_empty_zero_or_false() {
        for v in ["true", "1", "yes", "TRUE"] {
            assert!(is_true(v), "{v}");
        }
        for v in ["", " ", "0", "false", "False"] {
            assert!(!is_true(v), "{v:?}");
        }
    }

    #[test]
    fn cargo_hash_suffixes_are_removed_from_binary_names() {
        assert_eq!(binary_name("store-0123456789abcdef"), "store");
        assert_eq!(binary_name("store_env-89ab"), "store_env");
        assert_eq!(binary_name("aoc-kit"), "aoc-kit");
        assert_eq!(binary_name("xtask"), "xtask");
    }

    #[test]
    fn a_skip_is_appended_to_the_log_and_fails_under_ci() {
        let log = std::env::temp_dir().join(format!("aoc-testkit-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        record("t a", "first", false, Some(&log)).unwrap();
        record("t b", "second\treason", false, Some(&log)).unwrap();
        record("t c", "not logged", false, None).unwrap();
        let err = record("t d", "under CI", true, Some(&log)).unwrap_err();
        assert!(err.contains("under CI"), "{err}");
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        assert_eq!(text, "t a\tfirst\nt b\tsecond reason\n");
        let missing = Path::new("/nonexistent-dir/skips.log");
        assert!(record("t e", "x", false, Some(missing)).is_err());
    }

    /// The program runs from a copy `nobody` can reach (as root) or from where it is, and the
    /// copy is gone after the drop.
    #[test]
    fn an_unprivileged_program_runs_and_its_copy_is_removed() {
        let id = Path::new("/usr/bin/id");
        if !id.exists() {
            return skip("no /usr/bin/id to run");
        }
        let unprivileged = Unprivileged::new(id);
        let copy = unprivileged.copy_dir.as_ref().map(|d| d.path().to_owned());
        let out = unprivileged.command().arg("-u").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let uid: u32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_ne!(uid, 0, "root runs it as nobody");
        drop(unprivileged);
        if let Some(dir) = copy {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }

    #[test]
    fn a_log_line_is_one_line_with_one_tab() {
        let line = log_line("store a::b", "no\tserver\nat all\n");
        assert_eq!(line, "store a::b\tno server at all\n");
        assert_eq!(
            parse_log_line(line.trim_end()),
            Some(("store a::b", "no server at all"))
        );
    }
}
