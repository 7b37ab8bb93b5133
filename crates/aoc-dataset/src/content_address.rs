//! The dataset's content address: SHA-256 over the `sha256sum`-format listing of its data files.
//!
//! Rule (also in the README): take every data file (`data/**.ndjson`, not the manifest), write one
//! line `<64 lowercase hex sha256>  <archive path>\n` per file, sorted by the path's bytes, and
//! hash that text with SHA-256; the hash is the 64 lowercase hex digits. This is exactly what
//! `find data -type f | LC_ALL=C sort | xargs sha256sum | sha256sum` prints in an extracted
//! dataset. Tar headers, compression, the manifest (creation time, tool version) do not enter it.

use aoc_digest::Sha256Digest;

/// The listing the hash is taken over, from `(path, sha256)` pairs in any order.
pub fn hash_listing<'a>(files: impl IntoIterator<Item = (&'a str, &'a Sha256Digest)>) -> String {
    let mut lines: Vec<(&str, &Sha256Digest)> = files.into_iter().collect();
    lines.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(lines.len() * 110);
    for (path, digest) in lines {
        out.push_str(&digest.to_hex());
        out.push_str("  ");
        out.push_str(path);
        out.push('\n');
    }
    out
}

/// The dataset hash of data files given as `(path, sha256)` pairs in any order.
pub fn dataset_hash<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a Sha256Digest)>,
) -> Sha256Digest {
    Sha256Digest::of(hash_listing(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_of_the_sorted_sha256sum_listing() {
        let a = Sha256Digest([0x11; 32]);
        let b = Sha256Digest([0x22; 32]);
        let listing = hash_listing([("data/t/b.ndjson", &b), ("data/t/a.ndjson", &a)]);
        assert_eq!(
            listing,
            format!(
                "{}  data/t/a.ndjson\n{}  data/t/b.ndjson\n",
                "11".repeat(32),
                "22".repeat(32)
            )
        );
        let expected = Sha256Digest::of(listing.as_bytes());
        assert_eq!(
            dataset_hash([("data/t/a.ndjson", &a), ("data/t/b.ndjson", &b)]),
            expected
        );
        // The empty dataset hashes the empty listing.
        assert_eq!(
            dataset_hash(std::iter::empty()).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
