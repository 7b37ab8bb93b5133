//! `cargo xtask sbom`: SPDX 2.3 and CycloneDX 1.5 SBOMs of exactly what is linked into `stella`,
//! generated in process from `cargo metadata` and `Cargo.lock`.

pub(crate) mod auditable;
mod cyclonedx;
mod features;
pub(crate) mod graph;
mod lock;
pub(crate) mod metadata;
pub(crate) mod platform;
mod spdx;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aoc_digest::Sha256Digest;
use sha2::{Digest, Sha256};
use xshell::Shell;

pub use graph::{RUNNER_BINARY, RUNNER_PACKAGE};

/// Kit file names (docs/ARCHITECTURE.md §4.3).
pub const SPDX_FILE: &str = "aoc-backfill-runner.sbom.json";
pub const CDX_FILE: &str = "aoc-backfill-runner.cdx.json";
pub const RUNNER_NAME: &str = "aoc-backfill-runner";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the runner binary runs, as the SPDX SBOM states it (CycloneDX: `aoc:target` and
/// `aoc:glibc-floor` properties).
pub fn runs_on() -> String {
    format!(
        "Built for {}; starts on glibc {} or later (the release refuses a binary that needs a \
         newer GLIBC_ symbol version).",
        crate::kit::glibc::TARGET,
        crate::kit::glibc::FLOOR
    )
}

/// A file the SBOM describes by name and digest (the runner tarball, the binary inside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub sha256: Sha256Digest,
}

impl Artifact {
    /// Hashes `path` in process; the artefact is named by its file name.
    pub fn from_file(path: &Path) -> Result<Artifact> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?;
        Ok(Artifact {
            name: name.to_string_lossy().into_owned(),
            sha256: Sha256Digest::of(&bytes),
        })
    }
}

pub struct SbomOptions {
    /// SOURCE_DATE_EPOCH: the only clock either document reads.
    pub epoch: i64,
    pub runner_tarball: Option<Artifact>,
    pub binary: Option<Artifact>,
}

/// One crate linked into the binary, as both documents name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRef {
    pub name: String,
    pub version: String,
    /// `registry+...`, `git+...`; `None` for workspace (path) crates.
    pub source: Option<String>,
    /// `pkg:cargo/<name>@<version>`, percent-encoded.
    pub purl: String,
    /// SHA-256 of the `.crate` file from Cargo.lock; `None` for path and git crates.
    pub checksum: Option<String>,
    /// Normalised SPDX expression, `None` when the crate declares none we can parse.
    pub license: Option<String>,
    /// `license` exactly as the manifest gives it, kept when it could not be normalised.
    pub license_raw: Option<String>,
    /// SPDX element id, unique in the document.
    pub spdx_id: String,
    /// CycloneDX bom-ref, unique in the document.
    pub bom_ref: String,
    /// Indices into the same `packages` vector: this crate's normal, linked dependencies.
    pub depends_on: Vec<usize>,
}

impl PackageRef {
    pub fn download_location(&self) -> Option<String> {
        let source = self.source.as_deref()?;
        if source == CRATES_IO || source == CRATES_IO_SPARSE {
            return Some(format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                self.name, self.version
            ));
        }
        // `git+https://host/repo?rev=x#<commit>` -> SPDX VCS form `git+https://host/repo@<commit>`.
        let git = source.strip_prefix("git+")?;
        let (url, commit) = git.split_once('#')?;
        let url = url.split('?').next().unwrap_or(url);
        Some(format!("git+{url}@{commit}"))
    }
}

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";
const CRATES_IO_SPARSE: &str = "sparse+https://index.crates.io/";

pub struct Sbom {
    pub spdx: Vec<u8>,
    pub cdx: Vec<u8>,
    /// Sorted by (name, version, source); the first-listed root is `packages[root]`.
    pub packages: Vec<PackageRef>,
    pub root: usize,
}

/// Everything both writers need, computed once.
pub(crate) struct Model<'a> {
    pub opts: &'a SbomOptions,
    pub packages: &'a [PackageRef],
    pub root: usize,
    pub version: String,
    /// SHA-256 over a canonical listing of the content (see `content_digest`).
    pub digest: Sha256Digest,
    /// RFC 3339 UTC, seconds precision.
    pub created: String,
}

/// Generates both SBOMs for the runner of the workspace `sh` is in.
pub fn generate(sh: &Shell, opts: &SbomOptions) -> Result<Sbom> {
    let platform = platform::Platform::host(sh)?;
    let meta = metadata::metadata(sh, &platform.triple)?;
    let lock_text = sh.read_file("Cargo.lock").context("reading Cargo.lock")?;
    let sums = lock::checksums(&lock_text)?;
    let linked = graph::linked(&meta, &platform)?;

    let position: std::collections::BTreeMap<usize, usize> = linked
        .packages
        .iter()
        .enumerate()
        .map(|(pos, &i)| (i, pos))
        .collect();
    let mut packages = Vec::with_capacity(linked.packages.len());
    let mut spdx_ids = std::collections::BTreeSet::new();
    let mut bom_refs = std::collections::BTreeSet::new();
    for &i in &linked.packages {
        let p = &meta.packages[i];
        let purl = cyclonedx_bom::prelude::Purl::new("cargo", &p.name, &p.version)
            .with_context(|| format!("making a purl for {} {}", p.name, p.version))?
            .to_string();
        let checksum = p.source.as_ref().and_then(|s| {
            sums.get(&(p.name.clone(), p.version.clone(), s.clone()))
                .cloned()
        });
        let license = p.license.as_deref().and_then(normalise_license);
        let license_raw = match (&license, &p.license, &p.license_file) {
            (None, Some(raw), _) => Some(raw.clone()),
            (None, None, Some(file)) => Some(format!("see {file}")),
            _ => None,
        };
        let mut depends_on: Vec<usize> = linked
            .edges
            .get(&i)
            .into_iter()
            .flatten()
            .map(|to| position[to])
            .collect();
        depends_on.sort_unstable();
        packages.push(PackageRef {
            spdx_id: unique(&mut spdx_ids, spdx_id(&p.name, &p.version)),
            bom_ref: unique(&mut bom_refs, purl.clone()),
            name: p.name.clone(),
            version: p.version.clone(),
            source: p.source.clone(),
            purl,
            checksum,
            license,
            license_raw,
            depends_on,
        });
    }
    let root = position[&linked.root];
    let version = packages[root].version.clone();
    let model = Model {
        opts,
        digest: content_digest(opts, &packages),
        created: rfc3339(opts.epoch)?,
        packages: &packages,
        root,
        version,
    };
    let spdx = spdx::write(&model)?;
    let cdx = cyclonedx::write(&model)?;
    Ok(Sbom {
        spdx,
        cdx,
        packages,
        root,
    })
}

/// `cargo xtask sbom`
#[derive(clap::Args)]
pub struct Cmd {
    /// Directory to write both SBOMs into [default: <workspace>/out/aoc].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The runner tarball to describe (hashed in process).
    #[arg(long)]
    tarball: Option<PathBuf>,
    /// The `stella` binary to describe (hashed in process).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Output: text (the two paths on stdout) or json (paths and package counts on stdout).
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<()> {
        // Paths the user typed are relative to where cargo was run, not to the workspace root the
        // shell moved to (xshell's directory is its own; the process's is unchanged).
        let cwd = std::env::current_dir()?;
        let hash = |p: Option<PathBuf>| p.map(|p| Artifact::from_file(&cwd.join(p))).transpose();
        let opts = SbomOptions {
            epoch: crate::epoch::source_date_epoch(sh)?,
            runner_tarball: hash(self.tarball)?,
            binary: hash(self.binary)?,
        };
        let sbom = generate(sh, &opts)?;
        let out = match self.out {
            Some(dir) => cwd.join(dir),
            None => sh.current_dir().join("out/aoc"),
        };
        sh.create_dir(&out)?;
        let mut written = Vec::new();
        for (name, bytes) in [(SPDX_FILE, &sbom.spdx), (CDX_FILE, &sbom.cdx)] {
            let path = out.join(name);
            sh.write_file(&path, bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            if !self.output.format.is_json() {
                crate::print_line(path.display())?;
            }
            written.push(path);
        }
        let root = &sbom.packages[sbom.root];
        eprintln!(
            "sbom: {} crates linked into `{RUNNER_BINARY}` of {} {}",
            sbom.packages.len(),
            root.name,
            root.version
        );
        if self.output.format.is_json() {
            aoc_term::print_json(&serde_json::json!({
                "spdx": written[0],
                "cyclonedx": written[1],
                "packages": sbom.packages.len(),
                "root": { "name": root.name, "version": root.version },
            }))?;
        }
        Ok(())
    }
}

/// Cargo's `license` field is an SPDX expression, except that older crates write `MIT/Apache-2.0`
/// for `MIT OR Apache-2.0` (cargo's docs still accept it); anything else that does not parse as
/// SPDX is reported as NOASSERTION with the raw text kept beside it.
fn normalise_license(raw: &str) -> Option<String> {
    let lax = cyclonedx_bom::prelude::SpdxExpression::parse_lax(raw.to_string()).ok()?;
    let expr = lax
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Some(expr)
}

/// SPDX ids allow only `[A-Za-z0-9.-]`.
fn spdx_id(name: &str, version: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("SPDXRef-Package-crate-{}-{}", clean(name), clean(version))
}

/// Two crates can share a name and version (different sources) or differ only in `_`/`-`:
/// numbered suffixes keep ids unique, in the stable package order.
fn unique(seen: &mut std::collections::BTreeSet<String>, id: String) -> String {
    let mut candidate = id.clone();
    let mut n = 2;
    while !seen.insert(candidate.clone()) {
        candidate = format!("{id}-{n}");
        n += 1;
    }
    candidate
}

/// SHA-256 over one line per fact the documents state (crates, edges, artefacts, time), so the
/// SPDX namespace and the CycloneDX serial change exactly when the content does.
fn content_digest(opts: &SbomOptions, packages: &[PackageRef]) -> Sha256Digest {
    let mut h = Sha256::new();
    h.update(format!("epoch {}\n", opts.epoch));
    for (role, art) in [("tarball", &opts.runner_tarball), ("binary", &opts.binary)] {
        if let Some(a) = art {
            h.update(format!("{role} {} {}\n", a.name, a.sha256));
        }
    }
    for p in packages {
        h.update(format!(
            "crate {} {} {} {} {}\n",
            p.purl,
            p.source.as_deref().unwrap_or("-"),
            p.checksum.as_deref().unwrap_or("-"),
            p.license.as_deref().unwrap_or("-"),
            p.license_raw.as_deref().unwrap_or("-"),
        ));
        for &d in &p.depends_on {
            h.update(format!("edge {} {}\n", p.bom_ref, packages[d].bom_ref));
        }
    }
    Sha256Digest(h.finalize().into())
}

fn rfc3339(epoch: i64) -> Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch)
        .with_context(|| format!("SOURCE_DATE_EPOCH {epoch} is out of range"))?;
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    Ok(t.format(&f)?)
}
