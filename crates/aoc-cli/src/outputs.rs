//! Ends that are not the data's fault: output files checked before work starts, and the exit
//! codes of an environment problem (3) and of SIGINT/SIGTERM (130/143), found in whatever error
//! chain carries them.

use aoc_ingest::{EngineError, SourceError};
use aoc_term::environment::{self, EnvironmentError};
use std::path::Path;

/// Proves, before any work, that each output file (`flag`, its path, what it holds) can be
/// written: its directory exists and takes a new file (the file is written there under a
/// temporary name and renamed). `-` (stdout) and absent outputs pass.
pub fn check(outputs: &[(&str, Option<&Path>, &str)]) -> anyhow::Result<()> {
    for (flag, path, what) in outputs {
        let Some(path) = path.filter(|p| !aoc_term::is_stdout(p)) else {
            continue;
        };
        anyhow::ensure!(
            !path.is_dir(),
            "{flag} {}: is a directory; name a file",
            path.display()
        );
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        environment::check_dir(flag, dir, what, None)?;
    }
    Ok(())
}

/// The exit code of a failure that is no verdict on the data: an environment problem (3), or a
/// run that SIGINT or SIGTERM stopped (130, 143).
pub fn exit_code(e: &anyhow::Error) -> Option<u8> {
    for cause in e.chain() {
        if cause.is::<EnvironmentError>() {
            return Some(aoc_term::EXIT_ENVIRONMENT);
        }
        if let Some(engine) = cause.downcast_ref::<EngineError>() {
            if let EngineError::Interrupted(_) = engine {
                let signal = aoc_term::interrupt::received();
                return Some(
                    signal
                        .unwrap_or(aoc_term::interrupt::Signal::INT)
                        .exit_code(),
                );
            }
            if environment_in_engine(engine) {
                return Some(aoc_term::EXIT_ENVIRONMENT);
            }
        }
        if let Some(source) = cause.downcast_ref::<SourceError>() {
            if environment_in_source(source) {
                return Some(aoc_term::EXIT_ENVIRONMENT);
            }
        }
        // An output file that met a full or read-only filesystem while being written.
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem) {
                return Some(aoc_term::EXIT_ENVIRONMENT);
            }
        }
    }
    None
}

/// An environment error the engine carries (transparently, so the chain does not show it).
fn environment_in_engine(e: &EngineError) -> bool {
    match e {
        EngineError::Source(s) => environment_in_source(s),
        EngineError::AfterCommit { error, .. } => environment_in_engine(error),
        _ => false,
    }
}

/// A dataset input `TMPDIR` cannot hold the private copy of.
fn environment_in_source(e: &SourceError) -> bool {
    matches!(e, SourceError::Input(inner) if inner.is::<EnvironmentError>())
}
