//! The verify command as both binaries expose it (`stella kit verify DIR`, `cargo xtask
//! aoc-verify --dir DIR`): one set of flags, one text and JSON output, one exit-code policy, so
//! the two cannot drift. Checks and summary go to stderr; `--format json` puts the report on
//! stdout; a spinner names the last check on a terminal (`aoc_term::Progress`).

use std::io::Write;
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
        "--expect-dataset-hash (dev-rehearsal-placeholder or empty: no pin)",
    ),
    (
        "TMPDIR",
        "where the kit's tarballs are copied (unlinked) as they are hashed",
    ),
    aoc_term::ENV_NO_COLOR,
];

/// The verify command's `--help` sections: its exit codes and environment.
pub fn after_help() -> String {
    format!("{}\n{}", crate::EXIT_CODES, aoc_term::env_section(ENV))
}

/// Flags shared by the two verify commands (the kit directory is each binary's own).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct VerifyArgs {
    /// The public key you trust (PEM). Without it the kit's own cosign.pub is used, which proves
    /// the kit intact but not who made it: exit 15.
    #[arg(long, env = "AOC_VERIFY_KEY", value_name = "KEY.pub")]
    pub key: Option<std::path::PathBuf>,
    /// Accept the public dev key (tools/cosign/cosign.dev.pub) as an origin: dev kits only.
    #[arg(long)]
    pub allow_dev_key: bool,
    /// The dataset hash the kit must carry (refuses an older, validly signed kit).
    /// `dev-rehearsal-placeholder` or empty: no pin.
    #[arg(long, env = "DATASET_HASH", value_name = "HASH")]
    pub expect_dataset_hash: Option<String>,
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
    /// Library options from the flags; `Err` is a usage error (an unreadable `--key`, a
    /// malformed pin).
    pub fn options(&self) -> Result<VerifyOptions, String> {
        let key = match &self.key {
            Some(path) => Some(TrustedKey::load(path)?),
            None => None,
        };
        let expect_dataset_hash = match self.expect_dataset_hash.as_deref().map(str::trim) {
            None | Some("") | Some(DATASET_PLACEHOLDER) => None,
            Some(h) if crate::layout::is_hex64(h) => Some(h.to_string()),
            Some(h) => {
                return Err(format!(
                    "--expect-dataset-hash / DATASET_HASH {:?} is not a 64-digit lowercase hex \
                     dataset hash",
                    crate::escape(h)
                ))
            }
        };
        Ok(VerifyOptions {
            key,
            allow_dev_key: self.allow_dev_key,
            expect_dataset_hash,
            integrity_only: self.integrity_only,
        })
    }
}

/// Verifies `dir`, printing as `tool`; returns the process exit code.
pub fn run(dir: &Path, args: &VerifyArgs, tool: &str) -> u8 {
    let json = args.format == Format::Json || args.json;
    let opts = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{tool}: {e}");
            if json {
                // `--format json` keeps its promise on a usage error too.
                let error = serde_json::json!({ "error": e, "exit_code": EXIT_USAGE });
                aoc_term::print_json(&error).ok();
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
    let progress = aoc_term::Progress::spinner(format!("{tool}: verifying"));
    let mut checks = 0;
    let report = verify_kit_with(dir, &opts, &mut |c| {
        checks += 1;
        aoc_term::say(render_check(c));
        progress.set_message(format!("{tool}: {checks} checks done, last {}", c.check));
    });
    drop(progress);
    if json {
        let mut out = std::io::stdout().lock();
        let json = serde_json::to_string_pretty(&report).expect("a report serialises");
        if writeln!(out, "{json}").is_err() {
            return EXIT_USAGE;
        }
    }
    for line in report.summary(tool) {
        eprintln!("{line}");
    }
    report.exit_code
}
