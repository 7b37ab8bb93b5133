//! Names inside and of a dataset: `data/<tenant>/<vendor>.ndjson` (or `.part-NNNNN.ndjson` parts)
//! and `aoc-dataset-<hash>.tar.gz|.tar.zst`.
//!
//! Tenant and vendor become path components by percent-encoding every byte outside `[A-Za-z0-9_-]`
//! (`.` included), so the encoding is injective, a component can never be `.`/`..` or contain `/`,
//! and the only `.` in a file name are the ones this module puts there.

use crate::DATA_DIR;
use aoc_archive::Compression;
use std::fmt::Write as _;

/// A data member's identity, decoded from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    pub tenant: String,
    pub vendor: String,
    /// `None` for an unsplit `<vendor>.ndjson`, `Some(n)` for `<vendor>.part-n.ndjson`.
    pub part: Option<u32>,
}

/// The archive path of the data file holding `(tenant, vendor)` (part `part` when split).
pub fn data_path(tenant: &str, vendor: &str, part: Option<u32>) -> String {
    let mut out = format!("{DATA_DIR}/{}/{}", encode(tenant), encode(vendor));
    if let Some(n) = part {
        let _ = write!(out, ".part-{n:05}");
    }
    out.push_str(".ndjson");
    out
}

/// Decodes a path written by [`data_path`]; `None` for anything else (including non-canonical
/// encodings, so that exactly one path names each file).
pub fn parse_data_path(path: &str) -> Option<DataPath> {
    let rest = path.strip_prefix(DATA_DIR)?.strip_prefix('/')?;
    let (tenant, file) = rest.split_once('/')?;
    let stem = file.strip_suffix(".ndjson")?;
    let (vendor, part) = match stem.split_once('.') {
        None => (stem, None),
        Some((vendor, part)) => {
            let digits = part.strip_prefix("part-")?;
            if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (vendor, Some(digits.parse().ok()?))
        }
    };
    let decoded = DataPath {
        tenant: decode(tenant)?,
        vendor: decode(vendor)?,
        part,
    };
    (data_path(&decoded.tenant, &decoded.vendor, decoded.part) == path).then_some(decoded)
}

/// `aoc-dataset-<hash>.tar.gz` / `.tar.zst`.
pub fn archive_name(hash: &str, compression: Compression) -> String {
    format!("aoc-dataset-{hash}.{}", compression.extension())
}

/// The sidecar manifest's name for an archive named with `hash`.
pub fn manifest_name(hash: &str) -> String {
    format!("aoc-dataset-{hash}.manifest.json")
}

/// The hash and compression an archive's file name claims; `None` when the name does not follow
/// the `aoc-dataset-<hash>.tar.gz|.tar.zst|.tar` pattern. The hash part is returned as written,
/// not checked to be one: the verifier compares it with the hash of the contents, so a name
/// whose hash part is anything else fails that check instead of being skipped as a name
/// without a hash.
pub fn parse_archive_name(name: &str) -> Option<(String, Compression)> {
    let rest = name.strip_prefix("aoc-dataset-")?;
    let (hash, compression) = if let Some(h) = rest.strip_suffix(".tar.gz") {
        (h, Compression::Gzip)
    } else if let Some(h) = rest.strip_suffix(".tar.zst") {
        (h, Compression::Zstd)
    } else if let Some(h) = rest.strip_suffix(".tar") {
        (h, Compression::None)
    } else {
        return None;
    };
    Some((hash.to_owned(), compression))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.is_empty() {
        // An empty tenant or vendor (refused by the guard anyway) still gets a valid component.
        out.push('%');
    }
    out
}

fn decode(s: &str) -> Option<String> {
    if s == "%" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_readable_and_odd_ones_are_escaped_reversibly() {
        assert_eq!(
            data_path("default", "rustsec", None),
            "data/default/rustsec.ndjson"
        );
        assert_eq!(
            data_path("acme", "Red Hat/PSIRT", Some(3)),
            "data/acme/Red%20Hat%2FPSIRT.part-00003.ndjson"
        );
        for (t, v, p) in [
            ("default", "rustsec", None),
            ("a.b", "..", Some(0)),
            ("", "x", None),
            ("ü", "%", Some(12)),
        ] {
            let path = data_path(t, v, p);
            assert_eq!(
                parse_data_path(&path),
                Some(DataPath {
                    tenant: t.into(),
                    vendor: v.into(),
                    part: p
                }),
                "{path}"
            );
        }
    }

    #[test]
    fn non_canonical_paths_are_not_data_paths() {
        for bad in [
            "data/default/rustsec.json",
            "data/default/rust%73ec.ndjson",
            "data/default/rustsec.part-1.ndjson",
            "data/default/x/rustsec.ndjson",
            "manifest.json",
            "data/default/rustsec.ndjson.ndjson",
        ] {
            assert_eq!(parse_data_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn archive_names_round_trip() {
        let name = archive_name("ab12", Compression::Zstd);
        assert_eq!(name, "aoc-dataset-ab12.tar.zst");
        assert_eq!(
            parse_archive_name(&name),
            Some(("ab12".into(), Compression::Zstd))
        );
        assert_eq!(parse_archive_name("dataset.tar.gz"), None);
    }
}
