//! `<prefix>/index.json`: the list of published kits, so an offline mirror can tell what exists
//! without listing the bucket.
//!
//! ```json
//! {"schema": 1, "kits": [{"version", "commit", "dataset_hash", "key_id", "published_at",
//!   "files": {"<name>": "<sha256 hex>"}, "sha256sums_sha256"}]}
//! ```
//!
//! Kits are sorted by version (numeric runs compared as numbers). Publishers update it by
//! compare-and-swap: read it with its tag, add the entry, write it only if the tag is unchanged
//! (`If-Match` on S3, a lock and re-read in a directory), and on a conflict read again and retry,
//! so two publishers at once never lose each other's entry.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::store::{Conflict, Store};

pub const INDEX: &str = "index.json";
pub const SCHEMA: u32 = 1;

/// Conditional writes tried before giving up; each conflict means another publisher succeeded.
const ATTEMPTS: u32 = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub schema: u32,
    pub kits: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: String,
    pub commit: String,
    pub dataset_hash: String,
    pub key_id: String,
    /// SOURCE_DATE_EPOCH of the kit as RFC 3339 UTC: re-publishing writes the same entry.
    pub published_at: String,
    pub files: BTreeMap<String, String>,
    pub sha256sums_sha256: String,
}

impl Index {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Index> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).with_context(|| format!("{what} is not JSON"))?;
        let schema = value.get("schema").and_then(serde_json::Value::as_u64);
        if schema != Some(u64::from(SCHEMA)) {
            bail!(
                "{what} has schema {schema:?}; this xtask writes schema {SCHEMA} and will not \
                 rewrite an index it does not understand (update xtask)"
            );
        }
        serde_json::from_value(value).with_context(|| format!("{what} does not match schema 1"))
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("the index serialises");
        out.push(b'\n');
        out
    }

    pub fn get(&self, version: &str) -> Option<&Entry> {
        self.kits.iter().find(|k| k.version == version)
    }

    /// Adds or replaces the entry for `entry.version`, keeping the kits in version order.
    pub fn upsert(&mut self, entry: Entry) {
        self.kits.retain(|k| k.version != entry.version);
        self.kits.push(entry);
        self.kits
            .sort_by(|a, b| version_order(&a.version, &b.version));
    }
}

/// Version order: runs of digits compare as numbers (`0.10.0` after `0.9.0`), everything else
/// byte-wise; ties broken byte-wise so the order is total.
pub fn version_order(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// What an index update did.
#[derive(Debug, PartialEq, Eq)]
pub struct Updated {
    /// The entry was already there, byte for byte: nothing was written.
    pub unchanged: bool,
    /// Conditional writes lost to another publisher before this one won.
    pub conflicts: u32,
}

/// Adds `entry` to the store's index with compare-and-swap (see the module docs). An entry for
/// the same version with other content is replaced only with `replace` (`--force`).
pub fn update(store: &dyn Store, entry: &Entry, replace: bool) -> Result<Updated> {
    let mut conflicts = 0;
    for attempt in 0..ATTEMPTS {
        let current = store.get(INDEX)?;
        let mut index = match &current {
            Some(obj) => Index::parse(&obj.bytes, &store.url(INDEX))?,
            None => Index {
                schema: SCHEMA,
                kits: Vec::new(),
            },
        };
        match index.get(&entry.version) {
            Some(e) if e == entry => {
                return Ok(Updated {
                    unchanged: true,
                    conflicts,
                })
            }
            Some(_) if !replace => bail!(
                "{} already lists version {} with other content: pass --force to replace it",
                store.url(INDEX),
                entry.version
            ),
            _ => {}
        }
        index.upsert(entry.clone());
        let bytes = index.render();
        let written = match &current {
            None => store.put_create(INDEX, &bytes)?,
            Some(obj) => store.put_update(INDEX, &bytes, &obj.tag)?,
        };
        match written {
            Ok(()) => {
                return Ok(Updated {
                    unchanged: false,
                    conflicts,
                })
            }
            Err(Conflict::Exists | Conflict::Changed) => {
                conflicts += 1;
                // Jitter from the process id and attempt keeps two losers from colliding again.
                let ms = 10 * u64::from(attempt + 1) + u64::from(std::process::id() % 7);
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
    }
    bail!(
        "{} changed under us {ATTEMPTS} times in a row: too many concurrent publishers; re-run",
        store.url(INDEX)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_with_numbers_compared_as_numbers() {
        let mut v = vec!["0.10.0-aa", "0.9.1-bb", "0.9.0-cc", "1.0.0", "0.9.0"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, ["0.9.0", "0.9.0-cc", "0.9.1-bb", "0.10.0-aa", "1.0.0"]);
    }

    #[test]
    fn an_index_of_another_schema_is_never_rewritten() {
        let err = Index::parse(br#"{"schema": 2, "kits": []}"#, "index.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema Some(2)"), "{err}");
        assert!(Index::parse(br#"{"kits": []}"#, "index.json").is_err());
    }
}
