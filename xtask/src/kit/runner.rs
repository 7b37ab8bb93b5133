//! The runner: a reproducible release build of `stella` and its deterministic tarball.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::{glibc, BINARY_MEMBER, RUNNER_DIR};

/// The release build gets its own target directory, under the workspace's (or under
/// `CARGO_TARGET_DIR`): its remapped RUSTFLAGS would otherwise invalidate (and keep rebuilding)
/// the ordinary `target/release` that everyone else uses. Its RUSTFLAGS name no clone, so
/// clones that share `CARGO_TARGET_DIR` share its compiled dependencies too.
pub const TARGET_SUBDIR: &str = "target/aoc-release";

/// The wrapper cargo runs for the workspace's own crates (`RUSTC_WORKSPACE_WRAPPER`): rustc with
/// the workspace's path remapped. Given to cargo by this bare name and found on `PATH` (in the
/// target directory's `bin/`): cargo lets the wrapper's name change the crates' code, so an
/// absolute path would give each clone other bytes, while a bare name is the same everywhere.
const WORKSPACE_WRAPPER: &str = "aoc-remap-workspace";

/// Where the workspace, cargo's home and the release target directory appear in the binary
/// (panic locations, C assertion strings): fixed names, so two clones at different paths produce
/// the same bytes.
const REMAPPED_WORKSPACE: &str = "/aoc-backfill";
const REMAPPED_CARGO_HOME: &str = "/cargo";
const REMAPPED_TARGET: &str = "/aoc-release-target";

const README: &str = include_str!("../../templates/runner/README.md");
const LOAD_SCRIPT: &str = include_str!("../../templates/runner/scripts/load-dataset.sh");
const VERIFY_STORE_SCRIPT: &str = include_str!("../../templates/runner/scripts/verify-store.sh");

/// The SOURCE_DATE_EPOCH the runner is compiled with (the kit's own clock dates the tarball,
/// the SBOMs and the provenance, not the compiler's output).
pub const BUILD_EPOCH: i64 = 0;

/// The runner's dependency list (`.dep-v0` section bytes), beside the release build.
const DEP_V0_FILE: &str = "stella.dep-v0";

/// The build command as the provenance records it (the paths and environment are fixed by
/// [`build`]; the toolchain versions are in `scripts/zigbuild-requirements.txt`).
pub fn recorded_build_command() -> String {
    format!(
        "cargo zigbuild --release --locked -p aoc-cli --bin stella --target {}",
        zig_target()
    )
}

/// The cross toolchain's pinned versions, as `scripts/zigbuild-requirements.txt` states them
/// (`cargo-zigbuild==0.24.1`, `ziglang==0.17.1`).
pub fn recorded_toolchain() -> Vec<String> {
    ZIGBUILD_REQUIREMENTS
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains("=="))
        .map(String::from)
        .collect()
}

const ZIGBUILD_REQUIREMENTS: &str = include_str!("../../../scripts/zigbuild-requirements.txt");

/// cargo-zigbuild's target: the Rust target with the glibc version to link against.
fn zig_target() -> String {
    format!("{}.{}", glibc::TARGET, glibc::FLOOR)
}

/// The release build's target directory (see [`TARGET_SUBDIR`]): `aoc-release` in
/// `CARGO_TARGET_DIR` when that is set, else in the workspace's `target/`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir).join("aoc-release"),
        None => root.join(TARGET_SUBDIR),
    }
}

/// Where cargo leaves the newest release build of `stella` (benchmarks take it from there).
pub fn built_binary(root: &Path) -> PathBuf {
    target_dir(root).join(glibc::TARGET).join("release/stella")
}

/// Builds `stella` for [`glibc::TARGET`] against glibc [`glibc::FLOOR`]'s symbol set
/// (`cargo zigbuild`, installed on first use by `scripts/install-zigbuild.sh`), reproducibly,
/// with the SBOM's crate set embedded as the binary's `.dep-v0` section (`sbom/auditable.rs`);
/// checks the result against the floor and for test-only code.
///
/// Returns a content-addressed copy (`runners/stella-<sha256 prefix>` in the target directory),
/// made while holding the directory's lock: another clone's build into a shared target
/// directory replaces cargo's own output, never a file this returned.
pub fn build(sh: &Shell, root: &Path) -> Result<PathBuf> {
    let target_dir = target_dir(root);
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("creating {}", target_dir.display()))?;
    // The real path: the one the compilers see and the remap must name, however it was reached
    // (a `target` that is a symbolic link into a cache).
    let target_dir = target_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", target_dir.display()))?;
    let lock_path = target_dir.join("aoc-release.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    // The cross toolchain beside the build it serves: clones that share the target directory
    // share it too, hence the path of the linker cargo-zigbuild hands to rustc, which cargo's
    // fingerprints include (a toolchain per clone rebuilt every dependency).
    let zigbuild = install_zigbuild(sh, root, &target_dir.join("zigbuild"))?;
    forget_other_clones_crates(sh, root, &target_dir)?;
    let cargo_home = cargo_home()?;
    let dep_v0 = target_dir.join(DEP_V0_FILE);
    write_if_changed(&dep_v0, &crate::sbom::auditable::runner_section(sh)?)?;
    let target = zig_target();
    let wrapper_bin = target_dir.join("bin");
    write_if_changed(
        &wrapper_bin.join(WORKSPACE_WRAPPER),
        workspace_wrapper_script().as_bytes(),
    )?;
    aoc_archive::fs::set_mode(
        &wrapper_bin.join(WORKSPACE_WRAPPER),
        aoc_archive::fs::EXEC_MODE,
    )?;
    // cargo-zigbuild finds zig through `python3 -m ziglang`: the venv's python first; the
    // workspace wrapper before anything else of its name.
    let venv_bin = zigbuild.parent().context("cargo-zigbuild's directory")?;
    let path = std::env::join_paths(
        [wrapper_bin.clone(), venv_bin.to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .context("PATH")?;
    cmd!(
        sh,
        "{zigbuild} zigbuild --release --locked -p aoc-cli --bin stella --target {target}"
    )
    .env("CARGO_TARGET_DIR", &target_dir)
    .env("PATH", path)
    // Read by crates/aoc-cli/build.rs; its content is what the binary embeds, its path is not.
    .env(crate::sbom::auditable::DEP_V0_ENV, &dep_v0)
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        encoded_rustflags(&cargo_home, &target_dir),
    )
    // CARGO_ENCODED_RUSTFLAGS wins over RUSTFLAGS; the old value is folded into it above.
    .env_remove("RUSTFLAGS")
    // The workspace's path only in the workspace's crates (the only ones compiled from it), so
    // the dependencies' flags, hence their artefacts, are the same for every clone.
    .env("RUSTC_WORKSPACE_WRAPPER", WORKSPACE_WRAPPER)
    .env("AOC_REMAP_WORKSPACE", root)
    // The C the runner links (SQLite, zstd, aws-lc, mimalloc) names its sources too (`__FILE__`
    // in assertions, generated files in the target directory): the same remaps for its compiler.
    .env("CFLAGS", c_flags(&cargo_home, &target_dir))
    // One fixed clock for every build (C's `__DATE__`/`__TIME__`): the binary is a function of
    // the source and the toolchain alone, whatever the kit's SOURCE_DATE_EPOCH, and the C
    // dependencies (whose build scripts track the variable) are not rebuilt when it changes.
    .env("SOURCE_DATE_EPOCH", BUILD_EPOCH.to_string())
    // Incremental artefacts are not reproducible and are pointless for a one-off release build.
    .env("CARGO_INCREMENTAL", "0")
    .run()
    .with_context(|| format!("building the runner ({})", recorded_build_command()))?;
    let binary = built_binary(root);
    anyhow::ensure!(
        binary.is_file(),
        "cargo zigbuild succeeded but {} is missing",
        binary.display()
    );
    check_shippable(&binary)?;
    let kept = keep_copy(&binary, &target_dir.join("runners"))?;
    drop(lock);
    Ok(kept)
}

/// In a release target directory that several clones share, the workspace's own crates have
/// the same artefact names for every clone (that is what makes their bytes the same), and cargo
/// judges them fresh by modification times alone: a clone whose files are older than another
/// clone's build would link that clone's code. So when the last build was another workspace's,
/// its crates' artefacts are removed first (`cargo clean -p`, the dependencies stay).
fn forget_other_clones_crates(sh: &Shell, root: &Path, target_dir: &Path) -> Result<()> {
    let marker = target_dir.join("last-workspace");
    let ours = root.display().to_string();
    if std::fs::read_to_string(&marker).is_ok_and(|last| last == ours) {
        return Ok(());
    }
    let metadata = cmd!(sh, "cargo metadata --no-deps --format-version 1 --locked")
        .quiet()
        .read()
        .context("listing the workspace's crates (cargo metadata)")?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("parsing cargo metadata")?;
    let packages: Vec<String> = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .flat_map(|name| ["-p".to_owned(), name.to_owned()])
        .collect();
    let target = glibc::TARGET;
    if target_dir.join(target).is_dir() {
        cmd!(
            sh,
            "cargo clean --release --target {target} --target-dir {target_dir} {packages...}"
        )
        .quiet()
        .run()
        .context("removing another clone's build of the workspace's crates")?;
    }
    write_if_changed(&marker, ours.as_bytes())
}

/// Copies `binary` to `dir/stella-<first 16 hex of its SHA-256>` (through a temporary name),
/// unless that file is already there.
fn keep_copy(binary: &Path, dir: &Path) -> Result<PathBuf> {
    let digest = super::sha256_file(binary)?;
    let kept = dir.join(format!("stella-{}", &digest.to_string()[..16]));
    if kept.is_file() && super::sha256_file(&kept)? == digest {
        return Ok(kept);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::fs::copy(binary, tmp.path())
        .with_context(|| format!("copying {} to {}", binary.display(), dir.display()))?;
    aoc_archive::fs::set_mode(tmp.path(), aoc_archive::fs::EXEC_MODE)?;
    tmp.persist(&kept)
        .with_context(|| format!("renaming to {}", kept.display()))?;
    Ok(kept)
}

/// Runs `scripts/install-zigbuild.sh DIR` (a no-op once installed there) and returns
/// cargo-zigbuild's path.
fn install_zigbuild(sh: &Shell, root: &Path, dir: &Path) -> Result<PathBuf> {
    let script = root.join("scripts/install-zigbuild.sh");
    let path = cmd!(sh, "sh {script} {dir}")
        .read()
        .context("installing the runner's cross toolchain (scripts/install-zigbuild.sh)")?;
    Ok(PathBuf::from(path.trim()))
}

/// What a shipped runner must be: startable on glibc [`glibc::FLOOR`], and free of the
/// test-only fault hooks (their variables' names are in any binary that has them).
pub fn check_shippable(binary: &Path) -> Result<()> {
    glibc::check_floor(binary, glibc::FLOOR)?;
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    anyhow::ensure!(
        !bytes
            .windows(TEST_HOOK_MARK.len())
            .any(|w| w == TEST_HOOK_MARK),
        "{} contains the test-only fault hooks ({}): it was built with the `fault-hooks` \
         feature, which a release never enables",
        binary.display(),
        String::from_utf8_lossy(TEST_HOOK_MARK)
    );
    Ok(())
}

/// The prefix of every test-only fault hook's variable (crates/aoc-ingest, crates/aoc-dataset).
const TEST_HOOK_MARK: &[u8] = b"STELLA_FAULT";

/// The [`WORKSPACE_WRAPPER`] script: rustc with the workspace's path (`AOC_REMAP_WORKSPACE`)
/// remapped, that remap first, so the target directory's (in RUSTFLAGS, which cargo passes
/// later) wins for the target directory inside the workspace: rustc applies the last match.
fn workspace_wrapper_script() -> String {
    format!(
        "#!/bin/sh\n\
         # Written by cargo xtask aoc-release (xtask/src/kit/runner.rs): rustc for the workspace's\n\
         # own crates, the workspace's path remapped.\n\
         rustc=\"$1\"\n\
         shift\n\
         exec \"$rustc\" \"--remap-path-prefix=$AOC_REMAP_WORKSPACE={REMAPPED_WORKSPACE}\" \"$@\"\n"
    )
}

/// The C compiler's path remaps: the caller's CFLAGS, then the same prefixes as the Rust ones.
fn c_flags(cargo_home: &Path, target_dir: &Path) -> String {
    let mut flags = std::env::var("CFLAGS").unwrap_or_default();
    for (from, to) in [
        (cargo_home, REMAPPED_CARGO_HOME),
        (target_dir, REMAPPED_TARGET),
    ] {
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(&format!("-ffile-prefix-map={}={to}", from.display()));
    }
    flags
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
/// RUSTFLAGS) followed by the path remaps of cargo's home and the target directory (the
/// workspace's is the wrapper's, [`WORKSPACE_WRAPPER`]); `\x1f`-separated as cargo expects.
pub fn encoded_rustflags(cargo_home: &Path, target_dir: &Path) -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(v) if !v.is_empty() => v.split('\x1f').map(String::from).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
    };
    // rustc applies the last matching remap: the target directory's (often inside the
    // workspace) comes after the workspace wrapper's, which that script places first.
    flags.push(format!(
        "--remap-path-prefix={}={REMAPPED_CARGO_HOME}",
        cargo_home.display()
    ));
    flags.push(format!(
        "--remap-path-prefix={}={REMAPPED_TARGET}",
        target_dir.display()
    ));
    flags.join("\x1f")
}

/// The flags recorded in the provenance: only the remap targets, never the build machine's paths.
pub fn recorded_build_flags() -> Vec<String> {
    vec![
        format!("--remap-path-prefix=$CARGO_HOME={REMAPPED_CARGO_HOME}"),
        format!("--remap-path-prefix=$WORKSPACE={REMAPPED_WORKSPACE} (the workspace's crates)"),
        format!("--remap-path-prefix=$RELEASE_TARGET_DIR={REMAPPED_TARGET}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's README states the floor the release holds the binary to.
    #[test]
    fn the_runner_readme_states_the_target_and_the_glibc_floor() {
        assert!(
            README.contains(&format!("glibc {} or later", glibc::FLOOR)),
            "xtask/templates/runner/README.md must state glibc {}",
            glibc::FLOOR
        );
        assert!(README.contains(glibc::TARGET));
    }

    #[test]
    fn the_recorded_toolchain_is_the_pinned_one() {
        assert_eq!(
            recorded_toolchain(),
            ["cargo-zigbuild==0.24.1", "ziglang==0.17.1"]
        );
    }
}
