//! `manifest.json`: what a dataset contains (files with sha256, bytes and record counts; counts
//! per tenant and vendor), its content address, and who built it from what, when.
//!
//! Rendered as pretty JSON with fields in declaration order and a final newline, so the bytes are
//! a function of the values. Reading is strict: unknown fields and other schema versions are
//! refused rather than ignored.

use serde::{Deserialize, Serialize};

/// The manifest of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`crate::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `stellaops.aoc-dataset`.
    pub kind: String,
    /// The content address (64 lowercase hex), see [`crate::dataset_hash`].
    pub dataset_hash: String,
    /// The rule the hash follows, by name.
    pub hash_rule: String,
    /// Order of records across and within data files.
    pub record_order: String,
    pub tool: ToolInfo,
    /// RFC 3339 UTC from `SOURCE_DATE_EPOCH`.
    pub created_at: String,
    pub source: SourceInfo,
    /// The tenant the export was restricted to, if any.
    pub tenant: Option<String>,
    /// Data files larger than this were split into parts.
    pub split_bytes: u64,
    pub totals: Totals,
    /// Ordered by tenant.
    pub tenants: Vec<TenantCount>,
    /// Ordered by (tenant, vendor).
    pub vendors: Vec<VendorCount>,
    /// Ordered by path bytes (the archive's member order).
    pub files: Vec<FileEntry>,
}

pub const KIND: &str = "stellaops.aoc-dataset";
#[cfg(feature = "store")]
pub const HASH_RULE: &str =
    "sha256 of the sha256sum listing (`<sha256>  <path>\\n`, sorted by path bytes) of the data files";
#[cfg(feature = "store")]
pub const RECORD_ORDER: &str =
    "files by path; within a file by upstream_id (bytes), then revision; one file or part sequence per (tenant, vendor)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// Where the documents came from. Paths are reduced to file names so that the manifest does not
/// depend on where the build ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceInfo {
    /// Exported from an existing store.
    Store { engine: String },
    /// Backfilled from inputs into a temporary SQLite store, then exported.
    Inputs { inputs: Vec<InputRef> },
}

/// One input of a build from inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRef {
    /// The file or directory name (no directories above it).
    pub name: String,
    /// SHA-256 of a file input; `None` for directories.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub files: u64,
    pub records: u64,
    pub bytes: u64,
    pub upstream_documents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCount {
    pub tenant: String,
    pub records: u64,
    pub upstream_documents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorCount {
    pub tenant: String,
    pub vendor: String,
    pub records: u64,
    pub upstream_documents: u64,
}

/// One data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    /// 64 lowercase hex.
    pub sha256: String,
    pub bytes: u64,
    pub records: u64,
    pub tenant: String,
    pub vendor: String,
}

/// The parts of a manifest that are recomputed from the data files alone (by the build, the
/// verifier and the reader: the `store` feature).
#[cfg(feature = "store")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub dataset_hash: aoc_digest::Sha256Digest,
    pub totals: Totals,
    pub tenants: Vec<TenantCount>,
    pub vendors: Vec<VendorCount>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("plain structs always serialise");
        out.push(b'\n');
        out
    }

    /// Parses a manifest strictly.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.schema_version != crate::SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (this build reads {})",
                m.schema_version,
                crate::SCHEMA_VERSION
            ));
        }
        if m.kind != KIND {
            return Err(format!("kind {:?} is not {KIND:?}", m.kind));
        }
        Ok(m)
    }
}

#[cfg(feature = "store")]
impl Derived {
    /// Totals and per-tenant counts from per-vendor counts and files.
    pub(crate) fn new(mut files: Vec<FileEntry>, mut vendors: Vec<VendorCount>) -> Derived {
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        vendors.sort_by(|a, b| (&a.tenant, &a.vendor).cmp(&(&b.tenant, &b.vendor)));
        let mut by_tenant: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        for v in &vendors {
            let t = by_tenant.entry(&v.tenant).or_default();
            t.0 += v.records;
            t.1 += v.upstream_documents;
        }
        let tenants = by_tenant
            .into_iter()
            .map(|(tenant, (records, upstream_documents))| TenantCount {
                tenant: tenant.to_owned(),
                records,
                upstream_documents,
            })
            .collect();
        let digests: Vec<(String, aoc_digest::Sha256Digest)> = files
            .iter()
            .map(|f| {
                // Files built here always carry valid hex; a bad one hashes as zeros and fails
                // the comparison that follows.
                let d = aoc_digest::Sha256Digest::parse_hex(&f.sha256).unwrap_or_default();
                (f.path.clone(), d)
            })
            .collect();
        let dataset_hash = crate::dataset_hash(digests.iter().map(|(p, d)| (p.as_str(), d)));
        Derived {
            dataset_hash,
            totals: Totals {
                files: files.len() as u64,
                records: files.iter().map(|f| f.records).sum(),
                bytes: files.iter().map(|f| f.bytes).sum(),
                upstream_documents: vendors.iter().map(|v| v.upstream_documents).sum(),
            },
            tenants,
            vendors,
            files,
        }
    }
}
