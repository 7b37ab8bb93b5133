//! Reading kit files the way an attacker who controls the kit directory cannot exploit: never
//! through a link, never more than the file's size bound, and each file read exactly once. Small
//! files are kept in memory; the tarballs are copied, while they are hashed, into private
//! unlinked temporary files, so every later step reads the very bytes whose digest was checked,
//! whatever happens to the kit directory meanwhile.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use aoc_archive::fs::{read_hashed, Expect, OpenError};
use aoc_digest::Sha256Digest;

use crate::report::escape;

/// The bytes of a kit file as they were hashed.
#[derive(Debug)]
pub enum Proven {
    /// Small files: the bytes themselves.
    Bytes(Vec<u8>),
    /// Tarballs: a private, unlinked copy, rewound before each use.
    Copy(File),
}

impl Proven {
    /// The in-memory bytes, for files read whole.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Proven::Bytes(b) => Some(b),
            Proven::Copy(_) => None,
        }
    }

    /// A reader over the private copy (or the bytes) from the start.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Proven::Bytes(b) => Ok(Box::new(b.as_slice())),
            Proven::Copy(file) => {
                let mut f = file;
                f.seek(SeekFrom::Start(0))?;
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
            }
        }
    }
}

/// How a file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Into memory.
    Bytes,
    /// Into a private unlinked temporary file.
    Copy,
}

/// Why a file could not be read; every message names the cause, never the path (the caller
/// names the file).
#[derive(Debug)]
pub enum ReadProblem {
    Missing,
    /// A link, directory, device or other non-regular file.
    NotRegular,
    /// Larger than `cap`, before a byte was read.
    TooLarge {
        size: u64,
        cap: u64,
    },
    /// The file changed size while it was read.
    Changed,
    Io(io::Error),
}

impl std::fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadProblem::Missing => f.write_str("missing"),
            ReadProblem::NotRegular => f.write_str(
                "is not a regular file (links, FIFOs, devices and directories have no place \
                     in a kit; refused unread)",
            ),
            ReadProblem::TooLarge { size, cap } => write!(
                f,
                "is {size} bytes, more than this kit file may be ({cap}); not read"
            ),
            ReadProblem::Changed => f.write_str("changed size while it was read"),
            ReadProblem::Io(e) => write!(f, "unreadable: {}", escape(&e.to_string())),
        }
    }
}

/// Opens `path` only if it is a regular file reached without a link, and at most `cap` bytes
/// long: [`aoc_archive::fs::open_regular`], so a FIFO, device or link (also one swapped in while
/// opening) is refused without blocking.
pub fn open_bounded(path: &Path, cap: u64) -> Result<(File, u64), ReadProblem> {
    aoc_archive::fs::open_regular(path, Expect::at_most(cap)).map_err(ReadProblem::from)
}

impl From<OpenError> for ReadProblem {
    fn from(e: OpenError) -> ReadProblem {
        match e {
            OpenError::Missing => ReadProblem::Missing,
            OpenError::NotRegular(_) | OpenError::WrongSize { .. } => ReadProblem::NotRegular,
            OpenError::TooLarge { size, cap } => ReadProblem::TooLarge { size, cap },
            OpenError::Changed => ReadProblem::Changed,
            OpenError::Io(e) => ReadProblem::Io(e),
        }
    }
}

/// Reads `path` once (bounded by `cap`), hashing every byte, into memory or a private copy:
/// [`aoc_archive::fs::read_hashed`], the one hashing read.
pub fn read_and_hash(
    path: &Path,
    cap: u64,
    keep: Keep,
) -> Result<(Proven, Sha256Digest), ReadProblem> {
    let expect = Expect::at_most(cap);
    let (proven, digest) = match keep {
        Keep::Bytes => {
            let mut bytes = Vec::new();
            let (_, digest) = read_hashed(path, expect, &mut bytes)?;
            (Proven::Bytes(bytes), digest)
        }
        Keep::Copy => {
            let mut copy = tempfile::tempfile().map_err(ReadProblem::Io)?;
            let (_, digest) = read_hashed(path, expect, &mut copy)?;
            (Proven::Copy(copy), digest)
        }
    };
    Ok((proven, digest))
}

/// A public key file given by the operator (`--key`): bounded, parsed as PEM.
pub fn load_key(path: &Path) -> Result<aoc_sigstore::PublicKey, String> {
    const CAP: u64 = 64 << 10;
    let shown = escape(&path.display().to_string());
    let (bytes, _) = read_and_hash(path, CAP, Keep::Bytes)
        .map_err(|e| format!("cannot read --key {shown}: {e}"))?;
    let bytes = match bytes {
        Proven::Bytes(b) => b,
        Proven::Copy(_) => unreachable!("read into memory"),
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("--key {shown} is not text"))?;
    aoc_sigstore::PublicKey::from_pem(&text, &shown)
        .map_err(|e| format!("--key {shown}: {}", escape(&e.to_string())))
}

/// Whether `path`, a file the operator names (`--key`), comes from the kit directory `kit`, which
/// whoever controls the kit can write: under it by its physical path (links resolved), also
/// through a bind mount of it (compared by device and inode, ancestor by ancestor), or the very
/// file of one of the kit's entries (a hard link to it placed outside). A path that cannot be
/// resolved is left to the key loader, which names the problem.
pub fn comes_from_kit(kit: &Path, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let Ok(kit_id) = std::fs::metadata(kit).map(|m| id(&m)) else {
        return false;
    };
    if let Ok(real) = std::fs::canonicalize(path) {
        if real
            .ancestors()
            .skip(1)
            .any(|a| std::fs::metadata(a).is_ok_and(|m| id(&m) == kit_id))
        {
            return true;
        }
    }
    let Ok(file_id) = std::fs::metadata(path).map(|m| id(&m)) else {
        return false;
    };
    // The entries' own inodes (a link in the kit pointing out is not the kit's file); names only
    // are listed, nothing is opened.
    std::fs::read_dir(kit).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| std::fs::symlink_metadata(e.path()).is_ok_and(|m| id(&m) == file_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_its_cap_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // Sparse: 4 GiB that cost nothing on disk, and nothing to refuse.
        File::create(&path).unwrap().set_len(4 << 30).unwrap();
        match read_and_hash(&path, 1 << 20, Keep::Bytes) {
            Err(ReadProblem::TooLarge { size, cap }) => {
                assert_eq!((size, cap), (4 << 30, 1 << 20))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn links_are_refused_and_copies_hash_like_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"hello kit").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            read_and_hash(&link, 1 << 20, Keep::Bytes),
            Err(ReadProblem::NotRegular)
        ));
        let (bytes, d1) = read_and_hash(&real, 1 << 20, Keep::Bytes).unwrap();
        let (copy, d2) = read_and_hash(&real, 1 << 20, Keep::Copy).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(aoc_archive::Sha256Digest::of(b"hello kit"), d1);
        // The private copy does not follow the original.
        std::fs::write(&real, b"changed!!").unwrap();
        let mut read_back = Vec::new();
        copy.reader().unwrap().read_to_end(&mut read_back).unwrap();
        assert_eq!(read_back, b"hello kit");
        assert_eq!(bytes.bytes().unwrap(), b"hello kit");
    }

    #[test]
    fn a_key_from_the_kit_is_recognised_by_path_link_hard_link_and_subdirectory() {
        let root = tempfile::tempdir().unwrap();
        let kit = root.path().join("kit");
        let outside = root.path().join("operator");
        std::fs::create_dir_all(kit.join("keys")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(kit.join("cosign.pub"), "kit key").unwrap();
        std::fs::write(kit.join("keys/trusted.pub"), "planted").unwrap();
        std::fs::write(outside.join("trusted.pub"), "operator key").unwrap();
        std::os::unix::fs::symlink(kit.join("cosign.pub"), outside.join("link.pub")).unwrap();
        std::fs::hard_link(kit.join("cosign.pub"), outside.join("hard.pub")).unwrap();
        // A link to the kit directory itself, and a path through it.
        std::os::unix::fs::symlink(&kit, outside.join("kit-link")).unwrap();
        for from_kit in [
            kit.join("cosign.pub"),
            kit.join("./cosign.pub"),
            kit.join("keys/../cosign.pub"),
            kit.join("keys/trusted.pub"),
            outside.join("link.pub"),
            outside.join("hard.pub"),
            outside.join("kit-link/cosign.pub"),
        ] {
            assert!(comes_from_kit(&kit, &from_kit), "{}", from_kit.display());
        }
        // The operator's own key, also a copy of the kit's bytes placed outside, and a missing
        // path (the loader names it).
        std::fs::copy(kit.join("cosign.pub"), outside.join("copy.pub")).unwrap();
        for not_from_kit in [
            outside.join("trusted.pub"),
            outside.join("copy.pub"),
            outside.join("missing.pub"),
        ] {
            assert!(
                !comes_from_kit(&kit, &not_from_kit),
                "{}",
                not_from_kit.display()
            );
        }
        // A link in the kit pointing at the operator's key does not make that key the kit's.
        std::os::unix::fs::symlink(outside.join("trusted.pub"), kit.join("pointer")).unwrap();
        assert!(!comes_from_kit(&kit, &outside.join("trusted.pub")));
    }
}
