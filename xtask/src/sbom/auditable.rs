//! The runner's dependency list in `cargo auditable`'s format, embedded into `stella` so binary
//! scanners (syft, trivy, `cargo audit bin`) find exactly the crates its SPDX SBOM lists.
//!
//! Format (`auditable-serde`, format 0): zlib-compressed compact JSON
//! `{"packages":[{"name","version","source","kind","dependencies":[i...],"root":true}]}` in a
//! linker section named `.dep-v0`. `source` is `crates.io`, `git`, `local` (path crates) or
//! `registry`; `kind` is `runtime` for every entry, because the list holds only crates linked into
//! the binary (the SBOM's set: no build, dev or proc-macro crates); `dependencies` are indices into
//! the same array (omitted when empty) and only the runner's own package has `root`.
//!
//! `aoc-release` computes the bytes here, writes them next to the release build and hands their
//! path to `crates/aoc-cli/build.rs` in [`DEP_V0_ENV`]; the same graph, the same JSON and a fixed
//! zlib level give the same bytes, so the binary stays reproducible.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::{PackageRef, CRATES_IO, CRATES_IO_SPARSE};

/// The environment variable `crates/aoc-cli/build.rs` reads: the path of the compressed list.
pub const DEP_V0_ENV: &str = "AOC_DEP_V0";
/// The linker section scanners read.
pub const SECTION: &str = ".dep-v0";
/// zlib level: fixed, so the same list always compresses to the same bytes.
const LEVEL: u32 = 9;

/// One entry of the list, as `auditable-serde` (de)serialises it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPackage {
    pub name: String,
    pub version: String,
    pub source: String,
    #[serde(default = "runtime")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<usize>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub root: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionInfo {
    pub packages: Vec<AuditPackage>,
}

fn runtime() -> String {
    "runtime".into()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `cargo auditable`'s name for where a crate came from.
fn source_kind(source: Option<&str>) -> &'static str {
    match source {
        None => "local",
        Some(CRATES_IO | CRATES_IO_SPARSE) => "crates.io",
        Some(s) if s.starts_with("git+") => "git",
        Some(_) => "registry",
    }
}

/// The list for the SBOM's packages (sorted, `depends_on` indices into the same vector).
pub fn version_info(packages: &[PackageRef], root: usize) -> VersionInfo {
    VersionInfo {
        packages: packages
            .iter()
            .enumerate()
            .map(|(i, p)| AuditPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                source: source_kind(p.source.as_deref()).into(),
                kind: runtime(),
                dependencies: p.depends_on.clone(),
                root: i == root,
            })
            .collect(),
    }
}

/// The section's bytes: compact JSON, zlib at a fixed level.
pub fn encode(info: &VersionInfo) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(info)?;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(LEVEL));
    z.write_all(&json)?;
    Ok(z.finish()?)
}

/// The section's bytes for the runner of the workspace `sh` is in: the SBOM's crate set.
pub fn runner_section(sh: &Shell) -> Result<Vec<u8>> {
    let sbom = super::generate(
        sh,
        &super::SbomOptions {
            epoch: 0,
            runner_tarball: None,
            binary: None,
        },
    )
    .context("resolving the runner's crates for its .dep-v0 section")?;
    encode(&version_info(&sbom.packages, sbom.root))
}

/// Inflates and parses a `.dep-v0` section.
pub fn decode(section: &[u8]) -> Result<VersionInfo> {
    let mut json = Vec::new();
    // Bounded: a real list inflates to tens of KiB.
    flate2::read::ZlibDecoder::new(section)
        .take(16 << 20)
        .read_to_end(&mut json)
        .context("the .dep-v0 section is not zlib data")?;
    serde_json::from_slice(&json).context("the .dep-v0 section is not cargo auditable's JSON")
}

/// The `.dep-v0` section of a 64-bit little-endian ELF file (the release target), if it has one.
pub fn elf_section(binary: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    let u16_at = |at: usize| -> Result<u64> {
        let b = binary.get(at..at + 2).context("truncated ELF")?;
        Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| -> Result<u64> {
        let b = binary.get(at..at + 4).context("truncated ELF")?;
        Ok(u64::from(u32::from_le_bytes(b.try_into()?)))
    };
    let u64_at = |at: usize| -> Result<u64> {
        let b = binary.get(at..at + 8).context("truncated ELF")?;
        Ok(u64::from_le_bytes(b.try_into()?))
    };
    if binary.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let usize_of = |v: u64| usize::try_from(v).context("ELF offset out of range");
    let (shoff, shentsize, shnum, shstrndx) = (
        usize_of(u64_at(0x28)?)?,
        usize_of(u16_at(0x3a)?)?,
        usize_of(u16_at(0x3c)?)?,
        usize_of(u16_at(0x3e)?)?,
    );
    let header = |i: usize| shoff + i * shentsize;
    let strtab = usize_of(u64_at(header(shstrndx) + 0x18)?)?;
    for i in 0..shnum {
        let h = header(i);
        let name_at = strtab + usize_of(u32_at(h)?)?;
        let name_bytes = binary.get(name_at..).context("truncated ELF")?;
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .context("unterminated name")?;
        if &name_bytes[..end] == name.as_bytes() {
            let (offset, size) = (usize_of(u64_at(h + 0x18)?)?, usize_of(u64_at(h + 0x20)?)?);
            let data = binary
                .get(offset..offset + size)
                .context("section past the end of the file")?;
            return Ok(Some(data.to_vec()));
        }
    }
    Ok(None)
}

/// The dependency list embedded in the binary at `path`.
pub fn read_binary(path: &Path) -> Result<VersionInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let section = elf_section(&bytes, SECTION)?
        .with_context(|| format!("{} has no {SECTION} section", path.display()))?;
    decode(&section)
}

/// Fails unless the binary at `path` embeds exactly the list for `packages` (the SBOM's), naming
/// the crates that differ: the kit's SBOM and what scanners read from its `stella` must agree.
pub fn check_binary(path: &Path, packages: &[PackageRef], root: usize) -> Result<()> {
    let expected = version_info(packages, root);
    let found = read_binary(path)?;
    if found == expected {
        return Ok(());
    }
    let ids = |v: &VersionInfo| -> std::collections::BTreeSet<String> {
        v.packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect()
    };
    let (want, have) = (ids(&expected), ids(&found));
    let missing: Vec<&String> = want.difference(&have).collect();
    let extra: Vec<&String> = have.difference(&want).collect();
    bail!(
        "{} embeds another dependency list than its SBOM ({} crates embedded, {} in the SBOM; \
         missing {missing:?}, extra {extra:?}{}): build it with `cargo xtask aoc-release`",
        path.display(),
        found.packages.len(),
        expected.packages.len(),
        if missing.is_empty() && extra.is_empty() {
            ", same crates with other sources, edges or root"
        } else {
            ""
        }
    )
}
