//! Publishing a verified kit: to a directory (`file://` URL or a path) for now; an S3-compatible
//! bucket is a separate backend to add here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Copies every file of the kit in `dir` to the destination `url` names. Never overwrites a
/// published file with different bytes (a re-run with the same kit is a no-op); each file appears
/// under its final name only complete (temporary name, fsync, rename).
pub fn publish(dir: &Path, url: &str) -> Result<PathBuf> {
    let dest = destination(url)?;
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let from = dir.join(&name);
        let to = dest.join(&name);
        if to.exists() {
            if std::fs::read(&to)? == std::fs::read(&from)? {
                continue;
            }
            bail!(
                "{} already exists with other content: a published kit is never overwritten",
                to.display()
            );
        }
        let tmp = dest.join(format!(".{}.publish-tmp", name.to_string_lossy()));
        std::fs::copy(&from, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &to).with_context(|| format!("renaming to {}", to.display()))?;
    }
    Ok(dest)
}

fn destination(url: &str) -> Result<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            bail!("--publish {url}: a file:// URL needs an absolute path (file:///srv/kits/aoc)");
        }
        return Ok(PathBuf::from(path));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        bail!("--publish {url}: {scheme}:// is not supported yet; use a directory or file:// URL");
    }
    Ok(std::env::current_dir()?.join(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_to_a_directory_idempotently_and_never_overwrites() {
        let kit = tempfile::tempdir().unwrap();
        std::fs::write(kit.path().join("SHA256SUMS"), "x").unwrap();
        std::fs::write(kit.path().join("a.tar.gz"), "a").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dest.path().join("aoc").display());
        let out = publish(kit.path(), &url).unwrap();
        assert_eq!(std::fs::read(out.join("a.tar.gz")).unwrap(), b"a");
        publish(kit.path(), &url).unwrap();
        std::fs::write(kit.path().join("a.tar.gz"), "changed").unwrap();
        let err = publish(kit.path(), &url).unwrap_err().to_string();
        assert!(err.contains("never overwritten"), "{err}");
        let err = publish(kit.path(), "s3://bucket/aoc")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported yet"), "{err}");
    }
}
