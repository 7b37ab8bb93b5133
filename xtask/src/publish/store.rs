//! Where kits are published: the operations `aoc-publish` needs from a directory or a bucket,
//! and the URL that picks one.
//!
//! Both backends offer the same compare-and-swap, so the index update (index.rs) is one loop:
//! an object's [`Tag`] is its ETag on S3 and the SHA-256 of its bytes in a directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

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

/// A parsed publish destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A directory: `file:///abs/path` or a plain path (relative to the working directory).
    Dir(PathBuf),
    /// `s3://bucket/prefix`: the prefix may be empty.
    S3 { bucket: String, prefix: String },
}

impl Destination {
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                bail!("{url}: a file:// URL needs an absolute path (file:///srv/kits/aoc)");
            }
            return Ok(Destination::Dir(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{url}: no bucket name (s3://bucket/prefix)");
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                bail!("{url}: the prefix must not hold empty, `.` or `..` segments");
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!("{url}: {scheme}:// is not supported; use a directory, file:///path or s3://bucket/prefix");
        }
        if url.is_empty() {
            bail!("the publish URL is empty");
        }
        Ok(Destination::Dir(std::env::current_dir()?.join(url)))
    }

    /// Opens the backend. `env` holds the `AWS_*` variables an S3 destination reads.
    pub fn open(&self, env: &BTreeMap<String, String>) -> Result<Box<dyn Store>> {
        Ok(match self {
            Destination::Dir(path) => Box::new(super::dir::DirStore::new(path.clone())),
            Destination::S3 { bucket, prefix } => {
                Box::new(super::s3::S3Store::open(bucket, prefix, env)?)
            }
        })
    }
}

/// The environment variables an S3 destination reads: the AWS SDKs' standard names.
pub fn aws_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_directory_or_a_bucket_prefix() {
        assert_eq!(
            Destination::parse("file:///srv/kits").unwrap(),
            Destination::Dir("/srv/kits".into())
        );
        assert_eq!(
            Destination::parse("s3://releases/aoc/kits/").unwrap(),
            Destination::S3 {
                bucket: "releases".into(),
                prefix: "aoc/kits".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://releases").unwrap(),
            Destination::S3 {
                bucket: "releases".into(),
                prefix: "".into()
            }
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            Destination::parse("out/published").unwrap(),
            Destination::Dir(cwd.join("out/published"))
        );
        for bad in [
            "file://relative",
            "gs://b/p",
            "s3:///p",
            "s3://b/a/../c",
            "",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
