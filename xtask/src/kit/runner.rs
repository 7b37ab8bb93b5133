//! The runner: a reproducible release build of `stella` and its deterministic tarball.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::{BINARY_MEMBER, RUNNER_DIR};

/// The release build gets its own target directory: its remapped RUSTFLAGS would otherwise
/// invalidate (and keep rebuilding) the ordinary `target/release` that everyone else uses.
pub const TARGET_SUBDIR: &str = "target/aoc-release";

/// Where the workspace and cargo's home appear in the binary (panic locations, debug strings):
/// fixed names, so two clones at different paths produce the same bytes.
const REMAPPED_WORKSPACE: &str = "/aoc-backfill";
const REMAPPED_CARGO_HOME: &str = "/cargo";

const README: &str = include_str!("../../templates/runner/README.md");
const LOAD_SCRIPT: &str = include_str!("../../templates/runner/scripts/load-dataset.sh");
const VERIFY_STORE_SCRIPT: &str = include_str!("../../templates/runner/scripts/verify-store.sh");

/// The runner's dependency list (`.dep-v0` section bytes), beside the release build.
const DEP_V0_FILE: &str = "stella.dep-v0";

/// `cargo build --release --locked -p aoc-cli --bin stella`, reproducibly, with the SBOM's crate
/// set embedded as the binary's `.dep-v0` section (`sbom/auditable.rs`); returns the binary.
pub fn build(sh: &Shell, root: &Path, epoch: i64) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join(TARGET_SUBDIR);
    let flags = encoded_rustflags(root, &cargo_home()?);
    let dep_v0 = target_dir.join(DEP_V0_FILE);
    write_if_changed(&dep_v0, &crate::sbom::auditable::runner_section(sh)?)?;
    cmd!(
        sh,
        "{cargo} build --release --locked -p aoc-cli --bin stella"
    )
    .env("CARGO_TARGET_DIR", &target_dir)
    // Read by crates/aoc-cli/build.rs; its content is what the binary embeds, its path is not.
    .env(crate::sbom::auditable::DEP_V0_ENV, &dep_v0)
    .env("CARGO_ENCODED_RUSTFLAGS", flags)
    // CARGO_ENCODED_RUSTFLAGS wins over RUSTFLAGS; the old value is folded into it above.
    .env_remove("RUSTFLAGS")
    .env("SOURCE_DATE_EPOCH", epoch.to_string())
    // Incremental artefacts are not reproducible and are pointless for a one-off release build.
    .env("CARGO_INCREMENTAL", "0")
    .run()
    .context("building the runner (cargo build --release --locked -p aoc-cli --bin stella)")?;
    let binary = target_dir.join("release/stella");
    anyhow::ensure!(
        binary.is_file(),
        "cargo build succeeded but {} is missing",
        binary.display()
    );
    Ok(binary)
}

/// Writes `bytes` unless `path` already holds them: build.rs reruns (and `stella` relinks) when the
/// file's mtime moves, so an unchanged list must leave it alone.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The RUSTFLAGS of the release build: the caller's own flags (CARGO_ENCODED_RUSTFLAGS, else
/// RUSTFLAGS) followed by the path remaps; `\x1f`-separated as cargo expects.
pub fn encoded_rustflags(root: &Path, cargo_home: &Path) -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(v) if !v.is_empty() => v.split('\x1f').map(String::from).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
    };
    // rustc applies the last matching remap, so the more specific workspace goes last (cargo's
    // home could be inside it, never the other way round in practice).
    flags.push(format!(
        "--remap-path-prefix={}={REMAPPED_CARGO_HOME}",
        cargo_home.display()
    ));
    flags.push(format!(
        "--remap-path-prefix={}={REMAPPED_WORKSPACE}",
        root.display()
    ));
    flags.join("\x1f")
}

/// The flags recorded in the provenance: only the remap targets, never the build machine's paths.
pub fn recorded_build_flags() -> Vec<String> {
    vec![
        format!("--remap-path-prefix=$CARGO_HOME={REMAPPED_CARGO_HOME}"),
        format!("--remap-path-prefix=$WORKSPACE={REMAPPED_WORKSPACE}"),
    ]
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Packs `stella` (0755), the operator scripts (0755), README and LICENSE under
/// `aoc-backfill-runner/` into `out`, deterministically.
pub fn pack(root: &Path, binary: &Path, out: &Path, epoch: i64) -> Result<aoc_archive::PackReport> {
    use aoc_archive::Entry;
    let license = root.join("LICENSE");
    anyhow::ensure!(
        license.is_file(),
        "{} is missing: the runner ships its licence (Apache-2.0, as Cargo.toml says)",
        license.display()
    );
    let entries = vec![
        Entry::file(BINARY_MEMBER, binary).executable(true),
        Entry::file(format!("{RUNNER_DIR}/LICENSE"), license),
        Entry::bytes(
            format!("{RUNNER_DIR}/README.md"),
            README.as_bytes().to_vec(),
        ),
        Entry::bytes(
            format!("{RUNNER_DIR}/scripts/load-dataset.sh"),
            LOAD_SCRIPT.as_bytes().to_vec(),
        )
        .executable(true),
        Entry::bytes(
            format!("{RUNNER_DIR}/scripts/verify-store.sh"),
            VERIFY_STORE_SCRIPT.as_bytes().to_vec(),
        )
        .executable(true),
    ];
    let epoch = u64::try_from(epoch).context("SOURCE_DATE_EPOCH must not be negative")?;
    let opts = aoc_archive::PackOptions {
        compression: aoc_archive::Compression::Gzip,
        source_date_epoch: epoch,
        include_directories: true,
    };
    aoc_archive::pack_with(entries, out, &opts)
        .with_context(|| format!("packing {}", out.display()))
}
