//! The verify command as both binaries expose it (`stella kit verify DIR`, `cargo xtask
//! aoc-verify --dir DIR`): one set of flags, one text and JSON output, one exit-code policy, so
//! the two cannot drift. Checks and summary go to stderr; `--format json` puts the report on
//! stdout; a spinner names the last check on a terminal (`aoc_term::Progress`).

use std::path::Path;

use crate::report::{render_check, EXIT_USAGE};
use crate::verify::{verify_kit_with, TrustedKey, VerifyOptions};

/// The value of `DATASET_HASH` that means "no pin" in dev rehearsals.
pub const DATASET_PLACEHOLDER: &str = "dev-rehearsal-placeholder";

/// Output format: the convention's (checks and summary always on stderr).
pub use aoc_term::Format;

/// The environment variables the verify command reads, for its `--help`.
pub const ENV: &[(&str, &str)] = &[
    ("AOC_VERIFY_KEY", "--key"),
    (
        "DATASET_HASH",
        "--expect-dataset-hash (dev-rehearsal-placeholder: no pin; empty: a usage error)",
    ),
    (
        "TMPDIR",
        "where the kit's tarballs are copied (unlinked) as they are hashed",
    ),
    (MIN_INDEX_SEQUENCE_ENV, "--expect-min-index-sequence"),
    aoc_term::ENV_NO_COLOR,
];

/// The environment variable of `--expect-min-index-sequence`.
pub const MIN_INDEX_SEQUENCE_ENV: &str = "AOC_MIN_INDEX_SEQUENCE";

/// The verify command's `--help` sections: its exit codes (the kit's, with the two every command
/// shares in their place) and environment.
pub fn after_help() -> String {
    let mut codes = String::new();
    for line in crate::EXIT_CODES.lines() {
        if line.starts_with("  10 ") {
            codes.push_str(
                "  3   environment: TMPDIR missing, not writable or without room for the private\n      \
                 copies of the tarballs (no verdict on the kit)\n",
            );
        }
        codes.push_str(line);
        codes.push('\n');
    }
    codes.push_str(
        "  130/143 interrupted by SIGINT (Ctrl-C) / SIGTERM: nothing was written but unlinked\n      \
         temporary files",
    );
    format!("{codes}\n{}", aoc_term::env_section(ENV))
}

pub use crate::verify::COPY_PURPOSE;

/// The room the private copies need: the sizes of the kit's tarballs as the directory shows them
/// (regular files only, each at most its size cap; nothing is opened). The verifier copies the
/// runner tarball and the one dataset tarball the signed listing names; extra dataset-named
/// files count only as the largest of them, so files planted in the directory cannot turn the
/// verdict on them into an environment error by their number.
pub fn copy_bytes_needed(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let (mut runner, mut dataset) = (0, 0);
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_runner = name == crate::layout::RUNNER_TARBALL;
        if !is_runner && crate::layout::parse_dataset_tarball(name).is_none() {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !m.file_type().is_file() {
            continue;
        }
        let size = m.len().min(crate::layout::size_cap(name));
        if is_runner {
            runner = size;
        } else {
            dataset = dataset.max(size);
        }
    }
    runner + dataset
}

/// Flags shared by the two verify commands (the kit directory is each binary's own).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct VerifyArgs {
    /// The public key you trust (PEM). Without it the kit's own cosign.pub is used, which proves
    /// the kit intact but not who made it: exit 15. A key inside the kit directory (or a link to
    /// one of its files) is refused: use --kit-key for that.
    #[arg(long, env = "AOC_VERIFY_KEY", value_name = "KEY.pub")]
    pub key: Option<std::path::PathBuf>,
    /// Check against the kit's own cosign.pub, saying so: the kit intact, origin NOT proven
    /// (exit 15), as without --key. Not with --key.
    #[arg(long)]
    pub kit_key: bool,
    /// Accept the project's public dev key (known to this binary) as an origin: dev kits only,
    /// never a release.
    #[arg(long)]
    pub allow_dev_key: bool,
    /// The dataset hash the kit must carry (refuses an older, validly signed kit).
    /// `dev-rehearsal-placeholder`: no pin; empty: a usage error (an empty flag never lifts
    /// DATASET_HASH's pin).
    #[arg(long, env = "DATASET_HASH", value_name = "HASH")]
    pub expect_dataset_hash: Option<String>,
    /// A published directory's offline-kit.json must have at least this sequence (refuses an
    /// older, validly signed index: a rollback). Only for a published directory.
    #[arg(long, env = MIN_INDEX_SEQUENCE_ENV, value_name = "N")]
    pub expect_min_index_sequence: Option<u64>,
    /// Fast transfer check: signatures, every digest, provenance, SBOMs, the dataset's manifest;
    /// the dataset's records are not inflated or parsed. Run the full check once per kit.
    #[arg(long)]
    pub integrity_only: bool,
    /// Output format: text (stderr) or json (the report on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Same as --format json.
    #[arg(long, hide = true)]
    pub json: bool,
}

impl VerifyArgs {
    /// Library options from the flags for verifying `dir`; `Err` is a usage error (an
    /// unreadable `--key`, a key from the kit itself, an empty or malformed pin).
    pub fn options(&self, dir: &Path) -> Result<VerifyOptions, String> {
        let key = match (&self.key, self.kit_key) {
            (Some(_), true) => {
                return Err("give --key (or AOC_VERIFY_KEY) or --kit-key, not both".into());
            }
            (Some(path), false) => {
                if crate::files::comes_from_kit(dir, path) {
                    return Err(format!(
                        "--key {} is inside the kit being checked (or a link to a kit file),                          which proves nothing: pass the key you trust, or --kit-key to check                          integrity only",
                        crate::escape(&path.display().to_string())
                    ));
                }
                Some(TrustedKey::load(path)?)
            }
            (None, _) => None,
        };
        let expect_dataset_hash = match self.expect_dataset_hash.as_deref().map(str::trim) {
            None | Some(DATASET_PLACEHOLDER) => None,
            // An unset variable expanded into the flag must not lift DATASET_HASH's pin.
            Some("") => {
                return Err(
                    "--expect-dataset-hash / DATASET_HASH is empty: give the dataset hash, or                      unset DATASET_HASH"
                        .into(),
                )
            }
            Some(h) => match aoc_digest::Sha256Digest::parse_hex(h) {
                Ok(_) => Some(h.to_string()),
                Err(e) => {
                    return Err(format!(
                        "--expect-dataset-hash / DATASET_HASH {:?} is not a 64-digit lowercase hex \
                         dataset hash: it {e}",
                        crate::escape(h)
                    ))
                }
            },
        };
        Ok(VerifyOptions {
            key,
            allow_dev_key: self.allow_dev_key,
            expect_dataset_hash,
            integrity_only: self.integrity_only,
            min_index_sequence: self.expect_min_index_sequence,
        })
    }
}

/// Verifies `dir`, printing as `tool`; returns the process exit code.
pub fn run(dir: &Path, args: &VerifyArgs, tool: &str) -> u8 {
    let json = args.format == Format::Json || args.json;
    let opts = match args.options(dir) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{tool}: {e}");
            if json {
                // `--format json` keeps its promise on a usage error too.
                aoc_term::print_json(&aoc_term::failure::failure_json(&e, EXIT_USAGE)).ok();
            }
            return EXIT_USAGE;
        }
    };
    if opts.expect_dataset_hash.is_none()
        && args.expect_dataset_hash.as_deref().map(str::trim) == Some(DATASET_PLACEHOLDER)
    {
        eprintln!("{tool}: DATASET_HASH is the placeholder: the dataset is not pinned");
    }
    // A published directory (a copy of a publish prefix): its signed manifest, then each kit.
    if crate::published::is_published_dir(dir) {
        return crate::published::run(dir, &opts, json, tool);
    }
    if opts.min_index_sequence.is_some() {
        let e = format!(
            "--expect-min-index-sequence / {MIN_INDEX_SEQUENCE_ENV} pins a published directory's \
             index, and {} is a kit (no offline-kit.json): verify the published directory, or \
             unset the pin",
            crate::escape(&dir.display().to_string())
        );
        eprintln!("{tool}: {e}");
        if json {
            aoc_term::print_json(&aoc_term::failure::failure_json(&e, EXIT_USAGE)).ok();
        }
        return EXIT_USAGE;
    }
    // The tarballs are copied into TMPDIR as they are hashed: a TMPDIR that cannot hold them is
    // said before anything is read, and is no verdict on the kit.
    if let Err(e) =
        aoc_term::environment::check_temp_dir(COPY_PURPOSE, Some(copy_bytes_needed(dir)))
    {
        eprintln!("{tool}: {e}");
        if json {
            let error = serde_json::json!({
                "ok": false,
                "error": e.to_string(),
                "exit_code": aoc_term::EXIT_ENVIRONMENT,
            });
            aoc_term::print_json(&error).ok();
        }
        return aoc_term::EXIT_ENVIRONMENT;
    }
    let progress = aoc_term::Progress::spinner(format!("{tool}: verifying"));
    let mut checks = 0;
    let report = verify_kit_with(dir, &opts, &mut |c| {
        checks += 1;
        aoc_term::say(render_check(c));
        progress.set_message(format!("{tool}: {checks} checks done, last {}", c.check));
    });
    drop(progress);
    let summary = report.summary(tool);
    if json {
        let why = summary.first().map_or("", String::as_str);
        aoc_term::failure::print_report(&report, report.exit_code, why);
    }
    for line in summary {
        eprintln!("{line}");
    }
    report.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key: Option<&Path>, kit_key: bool, pin: Option<&str>) -> VerifyArgs {
        VerifyArgs {
            key: key.map(Path::to_path_buf),
            kit_key,
            expect_dataset_hash: pin.map(str::to_string),
            ..VerifyArgs::default()
        }
    }

    #[test]
    fn an_empty_pin_is_a_usage_error_and_the_placeholder_pins_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for empty in ["", "  "] {
            let e = args(None, false, Some(empty))
                .options(dir.path())
                .unwrap_err();
            assert!(e.contains("DATASET_HASH is empty"), "{e}");
        }
        let none = args(None, false, Some(DATASET_PLACEHOLDER))
            .options(dir.path())
            .unwrap();
        assert_eq!(none.expect_dataset_hash, None);
        let hash = "0123456789abcdef".repeat(4);
        let pinned = args(None, false, Some(&hash)).options(dir.path()).unwrap();
        assert_eq!(pinned.expect_dataset_hash, Some(hash));
    }

    #[test]
    fn a_key_from_the_kit_is_refused_and_kit_key_takes_no_key() {
        let root = tempfile::tempdir().unwrap();
        let kit = root.path().join("kit");
        std::fs::create_dir(&kit).unwrap();
        let pem = aoc_sigstore::generate_key_pair(b"pw").unwrap().1;
        std::fs::write(kit.join(crate::layout::PUBLIC_KEY), &pem).unwrap();
        let trusted = root.path().join("trusted.pub");
        std::fs::write(&trusted, &pem).unwrap();

        let e = args(Some(&kit.join("cosign.pub")), false, None)
            .options(&kit)
            .unwrap_err();
        assert!(e.contains("is inside the kit being checked"), "{e}");
        assert!(e.contains("--kit-key"), "{e}");
        // The same bytes from outside the kit are the operator's key.
        let opts = args(Some(&trusted), false, None).options(&kit).unwrap();
        assert!(opts.key.is_some());
        // --kit-key: the kit's own key, self-contained (origin not proven); not with --key.
        let opts = args(None, true, None).options(&kit).unwrap();
        assert!(opts.key.is_none());
        let e = args(Some(&trusted), true, None).options(&kit).unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }
}
