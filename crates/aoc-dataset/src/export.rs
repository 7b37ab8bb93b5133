//! Writing records into the dataset's data files: one NDJSON file per (tenant, vendor), split into
//! parts past a size, each file hashed and counted while it is written (no second read).

use crate::layout::data_path;
use crate::manifest::VendorCount;
use aoc_digest::Sha256Digest;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Write buffer per data file: large sequential writes, one reused allocation.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// One finished data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// Path inside the archive (`data/<tenant>/<vendor>.ndjson`).
    pub path: String,
    /// Where it is on disk.
    pub disk_path: PathBuf,
    pub sha256: Sha256Digest,
    pub bytes: u64,
    pub records: u64,
    pub tenant: String,
    pub vendor: String,
}

#[cfg(feature = "store")]
impl ExportedFile {
    pub(crate) fn entry(&self) -> crate::manifest::FileEntry {
        crate::manifest::FileEntry {
            path: self.path.clone(),
            sha256: self.sha256.to_string(),
            bytes: self.bytes,
            records: self.records,
            tenant: self.tenant.clone(),
            vendor: self.vendor.clone(),
        }
    }
}

/// Everything an export wrote.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// The directory the `data/` tree was written under.
    pub root: PathBuf,
    /// Ordered by path bytes.
    pub files: Vec<ExportedFile>,
    /// Ordered by (tenant, vendor).
    pub vendors: Vec<VendorCount>,
}

impl Export {
    pub fn records(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

struct Part {
    tmp: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
    records: u64,
}

struct FinishedPart {
    tmp: PathBuf,
    sha256: Sha256Digest,
    bytes: u64,
    records: u64,
}

struct Group {
    tenant: String,
    vendor: String,
    parts: Vec<FinishedPart>,
    current: Option<Part>,
    records: u64,
    upstream_documents: u64,
    last_upstream: Option<String>,
}

/// Streams records, which must arrive in (tenant, vendor, upstream_id, revision) order, into data
/// files under `root`.
pub struct Exporter {
    root: PathBuf,
    split_bytes: u64,
    group: Option<Group>,
    files: Vec<ExportedFile>,
    vendors: Vec<VendorCount>,
    next_tmp: u64,
}

impl Exporter {
    /// An exporter writing under `root` (created if missing); files over `split_bytes` are split.
    pub fn new(root: &Path, split_bytes: u64) -> io::Result<Exporter> {
        fs::create_dir_all(root)?;
        Ok(Exporter {
            root: root.to_path_buf(),
            split_bytes: split_bytes.max(1),
            group: None,
            files: Vec::new(),
            vendors: Vec::new(),
            next_tmp: 0,
        })
    }

    /// Appends one record: `json` is the document's exact bytes (one line, no newline).
    pub fn push(
        &mut self,
        tenant: &str,
        vendor: &str,
        upstream_id: &str,
        json: &[u8],
    ) -> io::Result<()> {
        if json.contains(&b'\n') {
            return Err(invalid(format!(
                "record {vendor}:{upstream_id} of tenant {tenant} contains a newline: not compact JSON"
            )));
        }
        let same_group = self
            .group
            .as_ref()
            .is_some_and(|g| g.tenant == tenant && g.vendor == vendor);
        if !same_group {
            if let Some(g) = &self.group {
                if (g.tenant.as_str(), g.vendor.as_str()) > (tenant, vendor) {
                    return Err(invalid(format!(
                        "records out of order: {tenant}/{vendor} after {}/{}",
                        g.tenant, g.vendor
                    )));
                }
            }
            self.finish_group()?;
            self.group = Some(Group {
                tenant: tenant.to_owned(),
                vendor: vendor.to_owned(),
                parts: Vec::new(),
                current: None,
                records: 0,
                upstream_documents: 0,
                last_upstream: None,
            });
        }
        let group = self.group.as_mut().expect("set above");
        match &group.last_upstream {
            Some(last) if last.as_str() == upstream_id => {}
            Some(last) if last.as_str() > upstream_id => {
                return Err(invalid(format!(
                    "records out of order in {tenant}/{vendor}: {upstream_id} after {last}"
                )));
            }
            _ => {
                group.upstream_documents += 1;
                group.last_upstream = Some(upstream_id.to_owned());
            }
        }
        let line_len = json.len() as u64 + 1;
        if group
            .current
            .as_ref()
            .is_some_and(|p| p.bytes > 0 && p.bytes + line_len > self.split_bytes)
        {
            let part = group.current.take().expect("checked");
            group.parts.push(finish_part(part)?);
        }
        if group.current.is_none() {
            let tmp = self.root.join(format!(".part-{}.tmp", self.next_tmp));
            self.next_tmp += 1;
            group.current = Some(Part {
                out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, File::create(&tmp)?),
                tmp,
                hasher: Sha256::new(),
                bytes: 0,
                records: 0,
            });
        }
        let part = group.current.as_mut().expect("set above");
        part.out.write_all(json)?;
        part.out.write_all(b"\n")?;
        part.hasher.update(json);
        part.hasher.update(b"\n");
        part.bytes += line_len;
        part.records += 1;
        group.records += 1;
        Ok(())
    }

    /// Closes the last file and returns what was written.
    pub fn finish(mut self) -> io::Result<Export> {
        self.finish_group()?;
        self.files
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Ok(Export {
            root: self.root,
            files: self.files,
            vendors: self.vendors,
        })
    }

    fn finish_group(&mut self) -> io::Result<()> {
        let Some(mut group) = self.group.take() else {
            return Ok(());
        };
        if let Some(part) = group.current.take() {
            group.parts.push(finish_part(part)?);
        }
        let split = group.parts.len() > 1;
        for (i, part) in group.parts.into_iter().enumerate() {
            let path = data_path(&group.tenant, &group.vendor, split.then_some(i as u32));
            let disk_path = self.root.join(&path);
            if let Some(parent) = disk_path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&part.tmp, &disk_path)?;
            self.files.push(ExportedFile {
                path,
                disk_path,
                sha256: part.sha256,
                bytes: part.bytes,
                records: part.records,
                tenant: group.tenant.clone(),
                vendor: group.vendor.clone(),
            });
        }
        self.vendors.push(VendorCount {
            tenant: group.tenant,
            vendor: group.vendor,
            records: group.records,
            upstream_documents: group.upstream_documents,
        });
        Ok(())
    }
}

fn finish_part(mut part: Part) -> io::Result<FinishedPart> {
    part.out.flush()?;
    Ok(FinishedPart {
        tmp: part.tmp,
        sha256: Sha256Digest(part.hasher.finalize().into()),
        bytes: part.bytes,
        records: part.records,
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
