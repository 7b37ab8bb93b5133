//! Where kits are published: the operations `aoc-publish` needs from a directory or a bucket
//! (implemented by dir.rs and s3.rs; destination.rs picks one from the URL).
//!
//! Both backends offer the same compare-and-swap, so the signed manifest's update (manifest.rs) is one loop:
//! an object's [`Tag`] is its ETag on S3 and the SHA-256 of its bytes in a directory.

use anyhow::Result;

/// The most bytes a read of `key` takes: whoever can write the prefix could leave a huge object
/// where a small one belongs. The index and its pair by their own caps, a kit file by its kind's
/// (`aoc_kit::layout::size_cap`).
pub fn size_cap(key: &str) -> u64 {
    use aoc_kit::published::{MANIFEST, MANIFEST_BUNDLE, MANIFEST_CAP, PUBLIC_KEY};
    match key {
        MANIFEST => MANIFEST_CAP,
        MANIFEST_BUNDLE | PUBLIC_KEY => 1 << 20,
        _ => aoc_kit::layout::size_cap(key.rsplit('/').next().unwrap_or(key)),
    }
}

/// An object's version, as the backend compares it in a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(pub String);

/// An object read back with the version it had when read.
pub struct Object {
    pub bytes: Vec<u8>,
    pub tag: Tag,
}

/// Why a conditional write did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum Conflict {
    /// `put_create`: the object already exists.
    Exists,
    /// `put_update`: the object changed (or vanished) since it was read.
    Changed,
}

/// The operations a publish needs. Keys are `/`-separated and relative to the URL's prefix.
/// Every write is atomic: a reader sees the old object or the new one, never part of one.
pub trait Store: Send + Sync {
    /// The URL of `key`, for messages.
    fn url(&self, key: &str) -> String;
    fn get(&self, key: &str) -> Result<Option<Object>>;
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes only when `key` does not exist yet.
    fn put_create(&self, key: &str, bytes: &[u8]) -> Result<std::result::Result<(), Conflict>>;
    /// Writes only when `key` still has `tag`.
    fn put_update(
        &self,
        key: &str,
        bytes: &[u8],
        tag: &Tag,
    ) -> Result<std::result::Result<(), Conflict>>;
    /// Removes `key`; removing an absent key is not an error.
    fn delete(&self, key: &str) -> Result<()>;
}
