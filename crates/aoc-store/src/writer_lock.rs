//! One writing run per store, tenant and source ([`crate::Store::claim_writer`]): what a claim
//! locks, and the SQLite engine's lock files.
//!
//! A run without a source writes whatever vendors its documents name, so it claims the whole
//! tenant (an exclusive lock on the tenant); a run of one source shares the tenant and holds its
//! source exclusively. Two runs of the same arguments therefore never share a checkpoint (whose
//! totals each would report as its own), and a second run is refused at once, naming the first.
//!
//! SQLite: `flock(2)` locks on empty-but-for-a-description files beside the database
//! (`<db>-writer-<tenant>.lock`, `<db>-writer-<tenant>-<source>.lock`, hashed names). The kernel
//! drops them when the process ends, however it ends, so a killed run never leaves the store
//! claimed. The files stay: a file is never unlinked while another process may be about to lock
//! it (which would let two processes hold "the" lock on two inodes), and only a held lock means
//! anything. PostgreSQL keeps the same two levels as session advisory locks (`postgres.rs`).

use crate::{Result, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

/// What a writing run claims: its tenant and its source (`None`: vendors derived from each
/// document, i.e. every source of the tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterScope<'a> {
    pub tenant: &'a str,
    pub source: Option<&'a str>,
}

impl WriterScope<'_> {
    /// For messages: `tenant "t", every source` or `tenant "t", source "osv"`, both escaped.
    pub fn describe(&self) -> String {
        match self.source {
            None => format!("tenant {:?}, every source", self.tenant),
            Some(s) => format!("tenant {:?}, source {s:?}", self.tenant),
        }
    }

    /// The locks a claim takes, the tenant's first (the order every claimant uses).
    pub(crate) fn locks(&self) -> Vec<Lock> {
        let tenant = digest(&[self.tenant]);
        match self.source {
            None => vec![Lock {
                tenant,
                source: None,
                exclusive: true,
            }],
            Some(s) => vec![
                Lock {
                    tenant,
                    source: None,
                    exclusive: false,
                },
                Lock {
                    tenant,
                    source: Some(digest(&[self.tenant, s])),
                    exclusive: true,
                },
            ],
        }
    }
}

/// One lock of a claim: the tenant's (shared or exclusive) or a source's (exclusive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lock {
    tenant: [u8; 32],
    source: Option<[u8; 32]>,
    pub exclusive: bool,
}

impl Lock {
    /// The PostgreSQL advisory lock key: the first 8 bytes of the digest.
    pub(crate) fn pg_key(&self) -> i64 {
        let d = self.source.unwrap_or(self.tenant);
        i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
    }

    fn file_name(&self, db: &str) -> String {
        let tenant = hex::encode(&self.tenant[..8]);
        match &self.source {
            None => format!("{db}-writer-{tenant}.lock"),
            Some(s) => format!("{db}-writer-{tenant}-{}.lock", hex::encode(&s[..8])),
        }
    }

    fn is_tenant(&self) -> bool {
        self.source.is_none()
    }
}

/// A domain-separated SHA-256 of the parts (NUL-joined; tenants and sources never hold NUL in
/// a store, which PostgreSQL text refuses).
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"aoc-store writer lock");
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// Who holds a SQLite writer lock, as the holder wrote it into the lock file.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since: String,
    tenant: String,
    source: Option<String>,
}

impl Holder {
    /// Who, where and since when; its scope too when it is not the one refused.
    fn describe(&self, refused: &WriterScope<'_>) -> String {
        let scope = WriterScope {
            tenant: &self.tenant,
            source: self.source.as_deref(),
        };
        let scope = if scope == *refused {
            String::new()
        } else {
            format!(" for {}", scope.describe())
        };
        format!(
            "process {} on host {}, writing since {}{scope}",
            self.pid,
            self.host.escape_debug(),
            self.since.escape_debug(),
        )
    }
}

/// Takes the locks of `scope` on the lock files beside the SQLite database `db`, or fails with
/// [`StoreError::WriterBusy`] (nothing held then). The returned files hold the locks.
pub(crate) fn claim_files(db: &Path, scope: &WriterScope<'_>) -> Result<Vec<File>> {
    let name = db
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| StoreError::BadUrl(db.display().to_string()))?;
    let dir = db.parent().unwrap_or(Path::new(""));
    let mut held = Vec::new();
    for lock in scope.locks() {
        let path = dir.join(lock.file_name(name));
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        // A lock file another user created (0644): flock needs no write access, only the
        // holder's description does.
        let (file, writable) = match opened {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && path.is_file() => {
                (File::open(&path)?, false)
            }
            Err(e) => return Err(e.into()),
        };
        let taken = if lock.exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match taken {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::WriterBusy {
                    store: format!("sqlite://{}", db.display()),
                    scope: scope.describe(),
                    holder: file_holders(&file, &path, dir, name, &lock, scope),
                })
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        if lock.exclusive && writable {
            let me = Holder {
                pid: std::process::id(),
                host: whoami::hostname().unwrap_or_else(|_| "unknown".into()),
                since: aoc_contract::clock::rfc3339(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64),
                ),
                tenant: scope.tenant.to_owned(),
                source: scope.source.map(str::to_owned),
            };
            let mut body = serde_json::to_vec(&me).expect("plain fields serialize");
            body.push(b'\n');
            file.set_len(0)?;
            (&file).write_all(&body)?;
        }
        held.push(file);
    }
    Ok(held)
}

/// Who holds `lock` (which we failed to take through `file`): the description an exclusive
/// holder wrote, or, for a tenant lock held shared, the holders of that tenant's source locks.
fn file_holders(
    file: &File,
    path: &Path,
    dir: &Path,
    db: &str,
    lock: &Lock,
    refused: &WriterScope<'_>,
) -> String {
    let held_shared = lock.exclusive && lock.is_tenant() && file.try_lock_shared().is_ok();
    if !held_shared {
        return read_holder(path, refused);
    }
    let _ = file.unlock();
    // Runs of single sources share the tenant: find them by their lock files' common prefix.
    let prefix = lock.file_name(db).trim_end_matches(".lock").to_owned() + "-";
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".lock"))
        })
        .filter(|p| {
            File::open(p)
                .is_ok_and(|f| matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock)))
        })
        .take(8)
        .map(|p| read_holder(&p, refused))
        .collect();
    found.sort();
    if found.is_empty() {
        "a run of a single source of this tenant".into()
    } else {
        found.join("; ")
    }
}

/// The holder description in a lock file, read bounded (the file is only ever a small JSON
/// line, but anyone able to write the directory could have put anything there).
fn read_holder(path: &Path, refused: &WriterScope<'_>) -> String {
    let mut buf = Vec::new();
    let read = File::open(path).and_then(|f| f.take(4096).read_to_end(&mut buf));
    match read
        .ok()
        .and_then(|_| serde_json::from_slice::<Holder>(&buf).ok())
    {
        Some(h) => format!("{} (lock file {})", h.describe(refused), path.display()),
        None => format!("a process holding {}", path.display()),
    }
}

/// The scopes a store holds, each with what keeps its locks (the SQLite engine's lock files).
pub(crate) struct Claims<T> {
    held: Vec<(String, Option<String>, T)>,
}

impl<T> Default for Claims<T> {
    fn default() -> Self {
        Claims { held: Vec::new() }
    }
}

impl<T> Claims<T> {
    /// Already held: the same scope, or every source of its tenant.
    pub(crate) fn covers(&self, scope: &WriterScope<'_>) -> bool {
        self.held.iter().any(|(tenant, source, _)| {
            tenant == scope.tenant && (source.is_none() || source.as_deref() == scope.source)
        })
    }

    /// Gives up what this store holds of `tenant`: before it claims the whole tenant, which its
    /// own shared hold of the tenant would otherwise refuse (flock locks of two open files
    /// conflict even within one process).
    pub(crate) fn release_tenant(&mut self, tenant: &str) {
        self.held.retain(|(t, _, _)| t != tenant);
    }

    pub(crate) fn add(&mut self, scope: &WriterScope<'_>, keep: T) {
        self.held.push((
            scope.tenant.to_owned(),
            scope.source.map(str::to_owned),
            keep,
        ));
    }
}
