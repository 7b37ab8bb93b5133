//! `cargo xtask aoc-verify`: argument parsing and printing over the kit verifier in `aoc-kit`
//! (the same library, flags, report and exit codes as `stella kit verify`). The release's
//! self-verify and publish's checks call [`verify_kit`] here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

pub use aoc_kit::{render_check, Class, TrustedKey, VerifyOptions, VerifyReport};

#[cfg(test)]
mod hostile_tests;

/// `cargo xtask aoc-verify` (its `--help` sections: `aoc_kit::cli::after_help`, set in main.rs)
#[derive(clap::Args)]
pub struct Cmd {
    /// The kit directory, or a published directory (a copy of the bucket: `offline-kit.json`,
    /// its signature, `cosign.pub` and one directory per kit version).
    #[arg(long, default_value = "out/aoc")]
    dir: PathBuf,
    #[command(flatten)]
    args: aoc_kit::cli::VerifyArgs,
}

impl Cmd {
    /// `--format json` (or the hidden `--json`) was asked for.
    pub fn json(&self) -> bool {
        self.args.format.is_json() || self.args.json
    }

    pub fn run(self, _sh: &Shell) -> Result<ExitCode> {
        // Relative paths are the user's, from where cargo was run (the shell moved to the root).
        let cwd = std::env::current_dir()?;
        let mut args = self.args;
        args.key = args.key.map(|k| cwd.join(k));
        let code = aoc_kit::cli::run(&cwd.join(&self.dir), &args, "aoc-verify");
        Ok(ExitCode::from(code))
    }
}

/// Verifies the kit in `dir` with `opts` against the key file `key` (default: the kit's own
/// `cosign.pub`, which proves no origin), printing nothing. `Err` only for an unreadable key;
/// every finding about the kit is a check in the report.
pub fn verify_kit(dir: &Path, key: Option<&Path>, opts: &VerifyOptions) -> Result<VerifyReport> {
    let key = match key {
        Some(path) => Some(TrustedKey::load(path).map_err(anyhow::Error::msg)?),
        None => None,
    };
    Ok(verify_with_key(dir, key, opts, false))
}

/// [`verify_kit`] with a key already in hand (the release's own signer); `print`: each check on
/// stderr as it completes.
pub fn verify_with_key(
    dir: &Path,
    key: Option<TrustedKey>,
    opts: &VerifyOptions,
    print: bool,
) -> VerifyReport {
    let options = VerifyOptions {
        key,
        ..opts.clone()
    };
    aoc_kit::verify_kit_with(dir, &options, &mut |c| {
        if print {
            aoc_term::say(render_check(c));
        }
    })
}
