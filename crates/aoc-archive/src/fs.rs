//! The file operations every writer and reader of kit files shares, in one place: atomic writes
//! (a temporary file in the target's directory, the mode set, fsync, rename, the directory
//! fsynced), reads bounded by a size cap, and file modes.
//!
//! Atomic: a reader sees the old file or the complete new one under the final name, never part
//! of one, and a crash leaves at most a `.<name>.*.tmp` file behind. The mode is set explicitly
//! (not through the umask), so what a kit ships does not depend on the shell that built it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The mode of data files (tarballs, manifests, reports, checksums).
pub const FILE_MODE: u32 = 0o644;
/// The mode of scripts and binaries.
pub const EXEC_MODE: u32 = 0o755;

/// A file being written under a temporary name beside `path`; [`AtomicFile::commit`] gives it
/// the final name, and dropping it without a commit removes it.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    dir: PathBuf,
}

impl AtomicFile {
    /// Creates `.<name>.XXXXXX.tmp` in `path`'s directory with `mode`.
    pub fn create(path: &Path, mode: u32) -> io::Result<AtomicFile> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .tempfile_in(&dir)?;
        set_file_mode(tmp.as_file(), mode)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
            dir,
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Syncs the file, renames it to its final name and syncs the directory (on Linux a rename
    /// is only durable once its directory is).
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }
}

/// Writes `bytes` to `path` atomically with `mode` (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.file().write_all(bytes)?;
    file.commit()
}

/// Reads `path` whole, refusing (`InvalidData`, naming the cap) a file larger than `max_bytes`
/// without reading past the cap: a hostile or corrupt file cannot make the reader allocate more.
pub fn read_bounded(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let declared = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(declared.min(max_bytes)).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {max_bytes} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Sets `path`'s permission bits to `mode` (Unix; elsewhere there are none to set).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    set_file_mode(&File::open(path)?, mode)
}

#[cfg(unix)]
fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_file_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_appears_whole_with_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"{\"new\": true}\n", EXEC_MODE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\": true}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, EXEC_MODE);
            set_mode(&path, FILE_MODE).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, FILE_MODE);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the final file is left");
    }

    #[test]
    fn an_uncommitted_atomic_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kit.tar.gz");
        let mut f = AtomicFile::create(&path, FILE_MODE).unwrap();
        f.file().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_bounded_read_refuses_a_file_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, vec![b'x'; 1025]).unwrap();
        assert_eq!(read_bounded(&path, 1025).unwrap().len(), 1025);
        let err = read_bounded(&path, 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
    }
}
