//! The publish URL (a directory, `file://` or `s3://`) and the store it opens: the one module
//! that knows every backend, so store.rs (the trait) depends on neither dir.rs nor s3.rs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::dir::DirStore;
use super::s3::S3Store;
use super::store::Store;

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
            Destination::Dir(path) => Box::new(DirStore::new(path.clone())),
            Destination::S3 { bucket, prefix } => Box::new(S3Store::open(bucket, prefix, env)?),
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
