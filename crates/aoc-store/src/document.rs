//! Reading the columns out of a raw document, and writing the exact JSON that is stored.

use crate::{Result, StoreError};
use aoc_contract::clock::parse_rfc3339;
use aoc_contract::DocHead;
use serde_json::Value;

/// A document with the fields the store keys and orders by.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub doc: &'a Value,
    pub head: DocHead,
    pub ingested_at: &'a str,
    pub ingested_unix: i64,
}

/// Reads every document's head; a batch with an unusable document is refused as a whole, before
/// anything is written.
pub(crate) fn prepare(docs: &[Value]) -> Result<Vec<Prepared<'_>>> {
    docs.iter()
        .enumerate()
        .map(|(index, doc)| {
            let bad = |message: String| StoreError::InvalidDocument { index, message };
            let head = DocHead::from_value(doc).ok_or_else(|| {
                bad(
                    "missing one of _id, tenant, source.vendor, upstream.upstream_id, \
                     upstream.content_hash (map and guard documents before appending)"
                        .into(),
                )
            })?;
            if !matches!(
                doc.get("supersedes"),
                None | Some(Value::Null | Value::String(_))
            ) {
                return Err(bad("supersedes must be null or a string".into()));
            }
            let ingested_at = doc
                .get("ingested_at")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing ingested_at".into()))?;
            let ingested_unix = parse_rfc3339(ingested_at)
                .ok_or_else(|| bad(format!("ingested_at {ingested_at:?} is not RFC 3339")))?;
            Ok(Prepared {
                doc,
                head,
                ingested_at,
                ingested_unix,
            })
        })
        .collect()
}

/// Compact JSON of `doc` with its `supersedes` member replaced (kept in place, so key order is
/// the document's own; appended last when absent).
pub(crate) fn render_with_supersedes(doc: &Value, supersedes: Option<&str>) -> String {
    let supersedes = supersedes.map_or(Value::Null, |s| Value::String(s.to_owned()));
    let mut out = Vec::with_capacity(4096);
    let Some(map) = doc.as_object() else {
        unreachable!("prepare() only accepts objects with a head")
    };
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &Value| {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
        out.push(b':');
        serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
    };
    let mut seen = false;
    for (key, value) in map {
        if key == "supersedes" {
            seen = true;
            member(&mut out, key, &supersedes);
        } else {
            member(&mut out, key, value);
        }
    }
    if !seen {
        member(&mut out, "supersedes", &supersedes);
    }
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn supersedes_is_replaced_in_place_and_other_bytes_match_serde() {
        let doc = json!({"_id": "a", "supersedes": null, "ingested_at": "2026-01-01T00:00:00Z"});
        assert_eq!(
            render_with_supersedes(&doc, Some("prev")),
            r#"{"_id":"a","supersedes":"prev","ingested_at":"2026-01-01T00:00:00Z"}"#
        );
        assert_eq!(
            render_with_supersedes(&doc, None),
            serde_json::to_string(&doc).unwrap()
        );
    }
}
