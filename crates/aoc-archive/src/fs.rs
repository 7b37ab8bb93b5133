//! The file operations every writer and reader of kit files shares, in one place: atomic writes
//! (a temporary file in the target's directory, the mode set, fsync, rename, the directory
//! fsynced), the one opener of untrusted files ([`open_regular`]), the one bounded read of one
//! ([`read_regular`], and [`read_bounded`] naming the path) and the one hashing read
//! ([`read_hashed`]), and file modes.
//!
//! Atomic: a reader sees the old file or the complete new one under the final name, never part
//! of one, and a crash leaves at most a `.<name>.*.tmp` file behind. The mode is set explicitly
//! (not through the umask), so what a kit ships does not depend on the shell that built it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aoc_digest::Sha256Digest;

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

/// Why [`open_regular`] refused a file. The messages name the cause, never the path: the
/// caller names the file (escaped, when the name is untrusted).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("missing")]
    Missing,
    /// A symbolic link, FIFO, device, socket or directory: refused before a byte is read, and
    /// without blocking.
    #[error("is {0}, not a regular file (refused unread)")]
    NotRegular(&'static str),
    #[error("is {size} bytes, more than the {cap} it may be (refused unread)")]
    TooLarge { size: u64, cap: u64 },
    #[error("is {actual} bytes, {expected} were expected")]
    WrongSize { expected: u64, actual: u64 },
    /// Its size changed while it was read (it grew, or shrank, under the reader).
    #[error("changed size while it was read")]
    Changed,
    #[error("{0}")]
    Io(io::Error),
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        let kind = match &e {
            OpenError::Missing => io::ErrorKind::NotFound,
            OpenError::Io(e) => e.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        match e {
            OpenError::Io(e) => e,
            e => io::Error::new(kind, e.to_string()),
        }
    }
}

/// What an untrusted file must be besides regular: at most `cap` bytes, and exactly `size`
/// bytes when the caller knows it (a signed listing's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub cap: u64,
    pub size: Option<u64>,
}

impl Expect {
    /// At most `cap` bytes.
    pub fn at_most(cap: u64) -> Expect {
        Expect { cap, size: None }
    }
}

/// The one opener of files an attacker may control (a kit, a dataset and its sidecar, a
/// published directory, the local kit a publish uploads): a regular file reached without
/// following a link in its last component, opened without blocking, examined on the handle.
///
/// `symlink_metadata` first, so a FIFO or device is never even opened; then `open` with
/// `O_NOFOLLOW | O_NONBLOCK` (a link swapped in since fails with `ELOOP`, a FIFO swapped in
/// opens at once instead of waiting for a writer) and `fstat` on the handle, which must be the
/// very regular file examined (device and inode), within `expect`. Returns the file and its size.
pub fn open_regular(path: &Path, expect: Expect) -> Result<(File, u64), OpenError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let seen = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenError::Missing),
        Err(e) => return Err(OpenError::Io(e)),
    };
    check_regular(&seen, expect)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => OpenError::NotRegular("a symbolic link"),
            _ if e.kind() == io::ErrorKind::NotFound => OpenError::Missing,
            _ => OpenError::Io(e),
        })?;
    let opened = file.metadata().map_err(OpenError::Io)?;
    check_regular(&opened, expect)?;
    if opened.ino() != seen.ino() || opened.dev() != seen.dev() {
        return Err(OpenError::NotRegular(
            "another file than the one examined (replaced while opened)",
        ));
    }
    Ok((file, opened.len()))
}

fn check_regular(m: &std::fs::Metadata, expect: Expect) -> Result<(), OpenError> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if !t.is_file() {
        return Err(OpenError::NotRegular(if t.is_symlink() {
            "a symbolic link"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        }));
    }
    if m.len() > expect.cap {
        return Err(OpenError::TooLarge {
            size: m.len(),
            cap: expect.cap,
        });
    }
    match expect.size {
        Some(expected) if expected != m.len() => Err(OpenError::WrongSize {
            expected,
            actual: m.len(),
        }),
        _ => Ok(()),
    }
}

/// The one bounded read: the untrusted file `path` whole, opened by [`open_regular`] (a link,
/// FIFO or device is refused unread, a file over `cap` too), reading never more than the size
/// examined plus one byte, whatever the file does meanwhile: a hostile or corrupt file cannot make
/// the reader allocate more or wait, and one that changes size is refused ([`OpenError::Changed`]).
/// The error names the cause, not the path (the caller names the file, escaped when untrusted).
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, OpenError> {
    let (file, size) = open_regular(path, Expect::at_most(cap))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(OpenError::Io)?;
    if bytes.len() as u64 != size {
        return Err(OpenError::Changed);
    }
    Ok(bytes)
}

/// [`read_regular`] with the error as an [`io::Error`] that names `path` (for trusted paths, or
/// callers that print the path themselves).
pub fn read_bounded(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    read_regular(path, max_bytes).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    })
}

/// The one hashing read: the untrusted file `path`, opened by [`open_regular`] within `expect`,
/// copied into `sink` (a `Vec`, a private temporary file, or `io::sink()` to only hash) while
/// every byte is hashed, reading never more than the size examined plus one byte; a file that
/// changes size meanwhile is refused ([`OpenError::Changed`]). Returns the size and digest of
/// exactly the bytes written to `sink`.
pub fn read_hashed<W: Write + ?Sized>(
    path: &Path,
    expect: Expect,
    sink: &mut W,
) -> Result<(u64, Sha256Digest), OpenError> {
    let (file, size) = open_regular(path, expect)?;
    let (read, digest) = crate::hashing::with_hash_buffer(|buf| {
        aoc_digest::copy_hashing(file.take(size.saturating_add(1)), sink, buf)
    })
    .map_err(OpenError::Io)?;
    if read != size {
        return Err(OpenError::Changed);
    }
    Ok((size, digest))
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
        assert!(
            err.to_string()
                .contains("is 1025 bytes, more than the 1024"),
            "{err}"
        );
    }

    #[test]
    fn a_hashing_read_copies_and_hashes_exactly_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runner.tar.gz");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut copy = Vec::new();
        let (size, digest) = read_hashed(&path, Expect::at_most(3_000_000), &mut copy).unwrap();
        assert_eq!((size, digest), (3_000_000, Sha256Digest::of(&data)));
        assert_eq!(copy, data);
        assert!(matches!(
            read_hashed(&path, Expect::at_most(2_999_999), &mut io::sink()),
            Err(OpenError::TooLarge {
                size: 3_000_000,
                cap: 2_999_999
            })
        ));
        assert!(matches!(
            read_hashed(
                &dir.path().join("absent"),
                Expect::at_most(1),
                &mut io::sink()
            ),
            Err(OpenError::Missing)
        ));
    }

    #[test]
    fn a_file_that_grows_while_read_is_refused_by_both_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing");
        std::fs::write(&path, b"0123456789").unwrap();
        // A sink that appends to the very file being read: after the first chunk the file is
        // longer than the size examined, as if a writer were still at work.
        let mut appender = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        struct Grow<'a>(&'a mut File);
        impl Write for Grow<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write_all(b"more")?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = read_hashed(&path, Expect::at_most(1 << 20), &mut Grow(&mut appender));
        assert!(matches!(err, Err(OpenError::Changed)), "{err:?}");
        assert_eq!(
            OpenError::Changed.to_string(),
            "changed size while it was read"
        );
    }
}
