//! Publishing into a directory (a mounted share, or a local mirror of the bucket).
//!
//! Writes go to a temporary name in the same directory, are fsynced, then renamed: a reader sees
//! a whole file or none. A create that must not clobber links the temporary file to its name
//! (`link(2)` fails when the name exists); an update takes `<name>.lock` with `O_EXCL`, re-reads
//! the file and compares its SHA-256 with the tag the caller read, so it is the same
//! compare-and-swap as S3's `If-Match`.
//!
//! Whoever can write the directory can plant a link: `<version>/` pointing elsewhere would make
//! a publish write (or delete) outside the prefix, and a link or FIFO at a key would make a read
//! follow it or block. So every directory below the root is checked with `symlink_metadata` (a
//! link or anything but a directory is refused, naming it), and files are read through the
//! opener of untrusted files (`aoc_archive::fs::open_regular`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aoc_digest::Sha256Digest;

use super::store::{Conflict, Object, Store, Tag};

/// How long an update waits for another publisher's lock before naming the lock file.
const LOCK_WAIT: Duration = Duration::from_secs(30);

pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: PathBuf) -> Self {
        DirStore { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// `key`'s directory, every component below the root a real directory, never a link
    /// (created when `create`); `None` when one is missing and not created.
    fn parent_of(&self, key: &str, create: bool) -> Result<Option<PathBuf>> {
        let mut dir = self.root.clone();
        if create {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut parts: Vec<&str> = key.split('/').collect();
        parts.pop();
        for part in parts {
            if part.is_empty() || part == "." || part == ".." {
                bail!("{key}: not a plain key");
            }
            dir.push(part);
            loop {
                match std::fs::symlink_metadata(&dir) {
                    Ok(m) if m.file_type().is_dir() => break,
                    Ok(m) => bail!(
                        "{} is {}, not a directory: refusing to write or read through it (planted \
                         by someone who can write the publish directory?); remove it",
                        aoc_term::escape_path(&dir),
                        if m.file_type().is_symlink() {
                            "a symbolic link"
                        } else {
                            "a file"
                        }
                    ),
                    Err(e) if e.kind() == ErrorKind::NotFound && create => {
                        match std::fs::create_dir(&dir) {
                            // Created, or by another publisher meanwhile: examine it again.
                            Ok(()) => {}
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                            Err(e) => {
                                return Err(e)
                                    .with_context(|| format!("creating {}", dir.display()))
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => {
                        return Err(e).with_context(|| format!("examining {}", dir.display()))
                    }
                }
            }
        }
        Ok(Some(dir))
    }

    /// Writes `bytes` to a fresh temporary file beside `path`, synced to disk.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = path.parent().context("a key has a parent directory")?;
        let name = path.file_name().context("a key names a file")?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        Ok(tmp)
    }

    fn rename_into_place(&self, tmp: &Path, path: &Path) -> Result<()> {
        std::fs::rename(tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_parent(path);
        Ok(())
    }
}

impl Store for DirStore {
    fn url(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        use aoc_archive::fs::{read_regular, OpenError};
        if self.parent_of(key, false)?.is_none() {
            return Ok(None);
        }
        let path = self.path(key);
        let bytes = match read_regular(&path, super::store::size_cap(key)) {
            Ok(bytes) => bytes,
            Err(OpenError::Missing) => return Ok(None),
            Err(e) => bail!("{} {e}", aoc_term::escape_path(&path)),
        };
        Ok(Some(Object {
            tag: tag_of(&bytes),
            bytes,
        }))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.parent_of(key, true)?;
        let path = self.path(key);
        let tmp = self.write_temp(&path, bytes)?;
        self.rename_into_place(&tmp, &path)
    }

    fn put_create(&self, key: &str, bytes: &[u8]) -> Result<std::result::Result<(), Conflict>> {
        self.parent_of(key, true)?;
        let path = self.path(key);
        let tmp = self.write_temp(&path, bytes)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_parent(&path);
                Ok(Ok(()))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Err(Conflict::Exists)),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    fn put_update(
        &self,
        key: &str,
        bytes: &[u8],
        tag: &Tag,
    ) -> Result<std::result::Result<(), Conflict>> {
        self.parent_of(key, true)?;
        let path = self.path(key);
        let _lock = Lock::acquire(&path)?;
        let current = self.get(key)?;
        if current.map(|o| o.tag).as_ref() != Some(tag) {
            return Ok(Err(Conflict::Changed));
        }
        let tmp = self.write_temp(&path, bytes)?;
        self.rename_into_place(&tmp, &path)?;
        Ok(Ok(()))
    }

    fn delete(&self, key: &str) -> Result<()> {
        if self.parent_of(key, false)?.is_none() {
            return Ok(());
        }
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
}

/// A directory object's tag: the SHA-256 of its bytes.
fn tag_of(bytes: &[u8]) -> Tag {
    Tag(Sha256Digest::of(bytes).to_hex())
}

/// The rename is durable only once the directory entry is: fsync the parent (best effort; some
/// file systems refuse to open directories for sync).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// `<file>.lock`, created with `O_EXCL` and removed on drop.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn acquire(target: &Path) -> Result<Lock> {
        let mut name = target.file_name().context("a key names a file")?.to_owned();
        name.push(".lock");
        // The caller checked the directory (DirStore::parent_of).
        let path = target.with_file_name(name);
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "pid {}", std::process::id());
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if start.elapsed() > LOCK_WAIT {
                        bail!(
                            "{} has been locked for {} s: another publish is running, or one \
                             was killed; remove the lock file if no publish is running",
                            path.display(),
                            LOCK_WAIT.as_secs()
                        );
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
