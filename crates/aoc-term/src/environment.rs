//! Environment problems as their own class, never read as a verdict on the data: a temporary or
//! output directory that is missing, not writable or short of space. Commands check the
//! directories they will write before work starts ([`check_dir`], [`check_temp_dir`]), and turn
//! an I/O error met while working into the same error when it is one ([`classify`]); either way
//! the message names the setting (`TMPDIR`, `--out`), the path and the bytes needed, and the
//! process exits [`EXIT_ENVIRONMENT`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The exit code of an environment problem, the same in `stella`, `aoc-dataset` and `cargo xtask`.
pub const EXIT_ENVIRONMENT: u8 = 3;

/// Its line in every "Exit codes:" section.
pub const EXIT_ENVIRONMENT_HELP: (&str, &str) = (
    "3",
    "environment: TMPDIR or an output directory missing, not writable or short of space \
     (no verdict on the data; fix it and run again)",
);

/// What is wrong with the directory.
#[derive(Debug)]
pub enum Problem {
    Missing,
    NotADirectory,
    /// A file cannot be created in it (permissions, a read-only filesystem).
    NotWritable(io::Error),
    /// Fewer bytes free than the work needs.
    Short {
        needed: u64,
        free: u64,
    },
    /// Writing failed while working for want of space (ENOSPC, EDQUOT).
    Full(io::Error),
}

/// A directory a command needs cannot serve: which setting named it, where, and what for.
#[derive(Debug, thiserror::Error)]
pub struct EnvironmentError {
    /// `TMPDIR`, or the flag that named the directory (`--out`, `--report`).
    pub setting: String,
    pub path: PathBuf,
    /// What the command writes there ("the private copy of the dataset's verified records").
    pub purpose: String,
    /// Bytes the work needs there, when known.
    pub needed: Option<u64>,
    pub problem: Problem,
}

impl fmt::Display for EnvironmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.setting == "TMPDIR" {
            format!("TMPDIR={}", self.path.display())
        } else {
            format!("{} {}", self.setting, self.path.display())
        };
        let needs = match self.needed {
            Some(n) => format!("{} needed there for {}", bytes(n), self.purpose),
            None => format!("for {}", self.purpose),
        };
        match &self.problem {
            Problem::Missing => write!(f, "{at}: no such directory ({needs})")?,
            Problem::NotADirectory => write!(f, "{at}: not a directory ({needs})")?,
            Problem::NotWritable(e) => {
                write!(f, "{at}: cannot create a file there: {e} ({needs})")?
            }
            Problem::Short { needed, free } => write!(
                f,
                "{at}: {} free, {} needed for {}",
                bytes(*free),
                bytes(*needed),
                self.purpose
            )?,
            Problem::Full(e) => write!(f, "{at}: ran out of space: {e} ({needs})")?,
        }
        let fix = if self.setting == "TMPDIR" {
            "set TMPDIR to a writable directory with room"
        } else {
            "choose a writable directory with room"
        };
        write!(
            f,
            "; an environment problem, no verdict on the data: {fix} and run again"
        )
    }
}

/// `n` bytes, with MiB or GiB alongside when large.
fn bytes(n: u64) -> String {
    match n {
        0..=0xFFFFF => format!("{n} bytes"),
        0x100000..=0x3FFFFFFF => format!("{n} bytes ({:.1} MiB)", n as f64 / (1u64 << 20) as f64),
        _ => format!("{n} bytes ({:.2} GiB)", n as f64 / (1u64 << 30) as f64),
    }
}

/// The temporary directory (`TMPDIR`, else `/tmp`), as every temporary file is created in it.
pub fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Checks that `TMPDIR` can hold `needed` bytes of `purpose` (see [`check_dir`]).
pub fn check_temp_dir(purpose: &str, needed: Option<u64>) -> Result<(), EnvironmentError> {
    check_dir("TMPDIR", &temp_dir(), purpose, needed)
}

/// Checks, before any work, that `dir` (named by `setting`) exists, is a directory, takes a new
/// file (one is created and removed: permission bits say nothing about a read-only mount, and
/// root passes them all) and has `needed` bytes free.
pub fn check_dir(
    setting: &str,
    dir: &Path,
    purpose: &str,
    needed: Option<u64>,
) -> Result<(), EnvironmentError> {
    let fail = |problem| EnvironmentError {
        setting: setting.to_owned(),
        path: dir.to_owned(),
        purpose: purpose.to_owned(),
        needed,
        problem,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(fail(Problem::Missing)),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(fail(Problem::NotADirectory))
        }
        Err(e) => return Err(fail(Problem::NotWritable(e))),
        Ok(m) if !m.is_dir() => return Err(fail(Problem::NotADirectory)),
        Ok(_) => {}
    }
    tempfile::tempfile_in(dir).map_err(|e| fail(Problem::NotWritable(e)))?;
    if let Some(needed) = needed {
        // A filesystem that cannot say is given the benefit of the doubt; running out later is
        // still reported as this class ([`classify`]).
        if let Ok(free) = free_bytes(dir) {
            if free < needed {
                return Err(fail(Problem::Short { needed, free }));
            }
        }
    }
    Ok(())
}

/// Bytes an unprivileged process may still write in the filesystem holding `dir` (statvfs(2):
/// available blocks times the fragment size).
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The environment error behind `err`, met while writing into `dir` (named by `setting`), if it
/// is one: no space (ENOSPC, EDQUOT), a read-only filesystem, no permission, the directory gone.
/// Any other error is the caller's to report.
pub fn classify(
    setting: &str,
    dir: &Path,
    purpose: &str,
    needed: Option<u64>,
    err: &io::Error,
) -> Option<EnvironmentError> {
    let copy = || io::Error::new(err.kind(), err.to_string());
    let problem = match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Problem::Full(copy()),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
            Problem::NotWritable(copy())
        }
        io::ErrorKind::NotFound if !dir.is_dir() => Problem::Missing,
        _ => return None,
    };
    Some(EnvironmentError {
        setting: setting.to_owned(),
        path: dir.to_owned(),
        purpose: purpose.to_owned(),
        needed,
        problem,
    })
}

/// The first [`EnvironmentError`] in an error's chain.
pub fn find(err: &anyhow::Error) -> Option<&EnvironmentError> {
    err.chain()
        .find_map(|e| e.downcast_ref::<EnvironmentError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_with_its_setting_and_the_bytes_needed() {
        let err = check_dir(
            "TMPDIR",
            Path::new("/nonexistent/aoc-term"),
            "the private copy",
            Some(744 << 20),
        )
        .unwrap_err();
        assert!(matches!(err.problem, Problem::Missing));
        assert_eq!(
            err.to_string(),
            "TMPDIR=/nonexistent/aoc-term: no such directory (780140544 bytes (744.0 MiB) needed \
             there for the private copy); an environment problem, no verdict on the data: set \
             TMPDIR to a writable directory with room and run again"
        );
    }

    #[test]
    fn a_file_is_not_a_directory_and_more_than_the_disk_is_short() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = check_dir("--out", &file, "the archive", None).unwrap_err();
        assert!(matches!(err.problem, Problem::NotADirectory), "{err}");
        check_dir("--out", dir.path(), "the archive", Some(1)).unwrap();
        let err = check_dir("--out", dir.path(), "the archive", Some(u64::MAX)).unwrap_err();
        match err.problem {
            Problem::Short { needed, free } => {
                assert_eq!(needed, u64::MAX);
                assert_eq!(free, free_bytes(dir.path()).unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_space_permission_and_a_vanished_directory_are_environment_errors() {
        let dir = Path::new("/tmp");
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert!(classify("TMPDIR", dir, "x", None, &full).is_some());
        let other = io::Error::from(io::ErrorKind::InvalidData);
        assert!(classify("TMPDIR", dir, "x", None, &other).is_none());
        let gone = io::Error::from(io::ErrorKind::NotFound);
        assert!(classify("TMPDIR", dir, "x", None, &gone).is_none());
        assert!(classify("TMPDIR", Path::new("/nonexistent"), "x", None, &gone).is_some());
    }
}
