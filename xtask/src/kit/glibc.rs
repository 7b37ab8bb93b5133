//! The runner's glibc floor: which `GLIBC_x.y` symbol versions the shipped `stella` needs, read
//! in process from its ELF version needs (`.gnu.version_r`, and the dynamic symbols that use
//! them), held to the floor the release declares.
//!
//! A binary linked against a newer glibc than a site has stops before `main` ("version
//! `GLIBC_2.34' not found"), so the release refuses a runner that needs any version above the
//! floor, naming the symbols that do.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Context, Result};
use object::elf::{FileHeader64, SHT_DYNSYM};
use object::read::elf::{FileHeader, Sym};
use object::read::SymbolIndex;
use object::Endianness;

/// The target the runner is built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The oldest glibc the runner must start on: Rust's own minimum for [`TARGET`] (RHEL/CentOS 7,
/// Amazon Linux 2, Ubuntu 14.04 and everything since).
pub const FLOOR: GlibcVersion = GlibcVersion(2, 17, 0);

/// A glibc symbol version, `GLIBC_2.17` -> `2.17`, `GLIBC_2.3.4` -> `2.3.4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// The version a `GLIBC_x.y[.z]` version name stands for; `None` for any other name
    /// (`GLIBC_PRIVATE`, `GCC_3.0`, ...).
    pub fn from_version_name(name: &str) -> Option<GlibcVersion> {
        let mut parts = name.strip_prefix("GLIBC_")?.split('.');
        let mut next = || -> Option<Option<u32>> {
            match parts.next() {
                None => Some(None),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().ok().map(Some)
                }
                Some(_) => None,
            }
        };
        let major = next()??;
        let minor = next()??;
        let patch = next()?.unwrap_or(0);
        if next()?.is_some() {
            return None;
        }
        Some(GlibcVersion(major, minor, patch))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlibcVersion(major, minor, 0) => write!(f, "{major}.{minor}"),
            GlibcVersion(major, minor, patch) => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

/// What a binary needs from glibc.
#[derive(Debug, Default)]
pub struct Needs {
    /// Every `GLIBC_*` version name the binary needs, with the dynamic symbols that need it
    /// (empty for a version no symbol names, which the linker may still record).
    pub versions: BTreeMap<String, Vec<String>>,
}

impl Needs {
    /// The newest `GLIBC_x.y` needed, if any.
    pub fn newest(&self) -> Option<GlibcVersion> {
        self.versions
            .keys()
            .filter_map(|name| GlibcVersion::from_version_name(name))
            .max()
    }

    /// Version names that a glibc at `floor` does not provide: newer numbered versions, and
    /// any version that is not a number (`GLIBC_PRIVATE` is internal to one glibc build).
    pub fn above(&self, floor: GlibcVersion) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.versions.iter().filter(move |(name, _)| {
            GlibcVersion::from_version_name(name).is_none_or(|v| v > floor)
        })
    }
}

/// Reads the glibc version needs of a 64-bit ELF executable.
pub fn needs(elf: &[u8]) -> Result<Needs> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not a 64-bit ELF file")?;
    let endian = header.endian().context("ELF byte order")?;
    let sections = header
        .sections(endian, elf)
        .context("ELF section headers")?;
    let mut needs = Needs::default();

    // Every version the binary needs, from whichever library (`.gnu.version_r`).
    if let Some((mut verneeds, link)) = sections.gnu_verneed(endian, elf).context("ELF verneed")? {
        let strings = sections
            .strings(endian, elf, link)
            .context("ELF verneed strings")?;
        while let Some((_, mut auxes)) = verneeds.next().context("ELF verneed entry")? {
            while let Some(aux) = auxes.next().context("ELF vernaux entry")? {
                let name = aux.name(endian, strings).context("ELF version name")?;
                let name = String::from_utf8_lossy(name);
                if name.starts_with("GLIBC_") {
                    needs.versions.entry(name.into_owned()).or_default();
                }
            }
        }
    }

    // Which dynamic symbols need each of them, for a message that says what to change.
    if let Some(versions) = sections.versions(endian, elf).context("ELF versym")? {
        let symbols = sections
            .symbols(endian, elf, SHT_DYNSYM)
            .context("ELF dynamic symbols")?;
        for (index, symbol) in symbols.enumerate() {
            let version = versions.version_index(endian, SymbolIndex(index.0));
            let Some(version) = versions.version(version).context("ELF symbol version")? else {
                continue;
            };
            let name = String::from_utf8_lossy(version.name());
            if let Some(users) = needs.versions.get_mut(name.as_ref()) {
                let symbol = symbol
                    .name(endian, symbols.strings())
                    .context("ELF symbol name")?;
                users.push(String::from_utf8_lossy(symbol).into_owned());
            }
        }
    }
    Ok(needs)
}

/// Refuses `binary` if it needs any glibc version above `floor`; returns the newest it needs.
pub fn check_floor(binary: &std::path::Path, floor: GlibcVersion) -> Result<Option<GlibcVersion>> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let needs = needs(&bytes).with_context(|| format!("reading {}", binary.display()))?;
    let above: Vec<String> = needs
        .above(floor)
        .map(|(version, symbols)| {
            let symbols = if symbols.is_empty() {
                "no symbol named".to_string()
            } else {
                symbols.join(", ")
            };
            format!("{version} ({symbols})")
        })
        .collect();
    if !above.is_empty() {
        bail!(
            "{} needs glibc symbol versions above the declared floor {floor}, so it would not \
             start on an older Linux: {}",
            binary.display(),
            above.join("; ")
        );
    }
    Ok(needs.newest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_parse_and_order_numerically() {
        let v = |s| GlibcVersion::from_version_name(s);
        assert_eq!(v("GLIBC_2.17"), Some(GlibcVersion(2, 17, 0)));
        assert_eq!(v("GLIBC_2.3.4"), Some(GlibcVersion(2, 3, 4)));
        assert!(v("GLIBC_2.3.4") < v("GLIBC_2.17"));
        assert!(v("GLIBC_2.34") > v("GLIBC_2.17"));
        for bad in [
            "GLIBC_PRIVATE",
            "GLIBC_2",
            "GLIBC_2.",
            "GLIBC_2.x",
            "GCC_3.0",
            "GLIBC_1.2.3.4",
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
        assert_eq!(GlibcVersion(2, 3, 4).to_string(), "2.3.4");
        assert_eq!(FLOOR.to_string(), "2.17");
    }

    /// The test binary itself is a real ELF linked against the build machine's glibc: its
    /// needs are read, include `__libc_start_main`'s version, and a floor below its newest
    /// version is refused by name.
    #[test]
    fn the_needs_of_a_real_binary_are_read_and_held_to_a_floor() {
        let exe = std::env::current_exe().unwrap();
        let needs = needs(&std::fs::read(&exe).unwrap()).unwrap();
        let newest = needs
            .newest()
            .expect("a glibc-linked test binary needs GLIBC_* versions");
        assert!(newest >= GlibcVersion(2, 2, 5), "{newest}");
        assert!(
            needs
                .versions
                .values()
                .flatten()
                .any(|s| s == "__libc_start_main"),
            "{:?}",
            needs.versions
        );
        assert_eq!(check_floor(&exe, newest).unwrap(), Some(newest));
        let below = GlibcVersion(2, 2, 4);
        let err = format!("{:#}", check_floor(&exe, below).unwrap_err());
        assert!(err.contains("above the declared floor 2.2.4"), "{err}");
        assert!(err.contains(&format!("GLIBC_{newest}")), "{err}");
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error() {
        assert!(needs(b"#!/bin/sh\necho hi\n").is_err());
    }
}
