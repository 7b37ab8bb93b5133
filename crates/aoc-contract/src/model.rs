//! The raw advisory document (docs/ARCHITECTURE.md §4.1): one per upstream revision, raw facts plus provenance.

use crate::tree::{Json, JsonTree};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Top-level keys a raw document may carry (the allowlist behind ERR_AOC_007).
pub const ALLOWED_TOP_LEVEL: [&str; 9] = [
    "_id",
    "tenant",
    "source",
    "upstream",
    "content",
    "identifiers",
    "linkset",
    "supersedes",
    "ingested_at",
];

/// Who collected the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub vendor: String,
    pub connector: String,
    pub version: String,
}

/// Upstream signature metadata; `present: false` for unsigned feeds such as OSV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sig: Option<String>,
}

/// Where the document came from and what exactly it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub upstream_id: String,
    pub document_version: Option<String>,
    pub retrieved_at: String,
    pub content_hash: String,
    pub signature: Signature,
}

/// Join hints with the JSON Pointers into `content.raw` they were read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linkset {
    pub purls: Vec<String>,
    pub cpes: Vec<String>,
    pub aliases: Vec<String>,
    pub references: Vec<String>,
    pub reconciled_from: Vec<String>,
}

/// Identifiers as the upstream gave them: trimmed, order and duplicates kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifiers {
    pub cve: Vec<String>,
    pub ghsa: Vec<String>,
    pub aliases: Vec<String>,
}

/// A raw advisory document. `content.raw` is the upstream document, untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    pub id: String,
    pub tenant: String,
    pub source: Source,
    pub upstream: Upstream,
    pub format: String,
    pub spec_version: Option<String>,
    pub raw: Value,
    pub identifiers: Identifiers,
    pub linkset: Linkset,
    pub supersedes: Option<String>,
    pub ingested_at: String,
}

/// `advisory_raw:{vendor}:{upstream_id}:{revision}` where the revision part is the first 16 hex
/// digits of the content hash: stable for the same content whatever order revisions arrive in.
pub fn raw_id(vendor: &str, upstream_id: &str, content_hash: &str) -> String {
    let hex = content_hash
        .strip_prefix(crate::canonical::HASH_PREFIX)
        .unwrap_or(content_hash);
    format!(
        "advisory_raw:{vendor}:{upstream_id}:{}",
        &hex[..hex.len().min(16)]
    )
}

impl RawDocument {
    /// The document as JSON, keys in the order of docs/ARCHITECTURE.md §4.1 (and of each struct's
    /// fields, as serde would write them); moves every string and `raw` instead of copying them.
    pub fn into_value(self) -> Value {
        let RawDocument {
            id,
            tenant,
            source,
            upstream,
            format,
            spec_version,
            raw,
            identifiers,
            linkset,
            supersedes,
            ingested_at,
        } = self;
        let mut content = Map::with_capacity(3);
        content.insert("format".into(), Value::String(format));
        content.insert("spec_version".into(), opt(spec_version));
        content.insert("raw".into(), raw);
        let mut doc = Map::with_capacity(ALLOWED_TOP_LEVEL.len());
        doc.insert("_id".into(), Value::String(id));
        doc.insert("tenant".into(), Value::String(tenant));
        doc.insert("source".into(), source.into_value());
        doc.insert("upstream".into(), upstream.into_value());
        doc.insert("content".into(), Value::Object(content));
        doc.insert("identifiers".into(), identifiers.into_value());
        doc.insert("linkset".into(), linkset.into_value());
        doc.insert("supersedes".into(), opt(supersedes));
        doc.insert("ingested_at".into(), Value::String(ingested_at));
        Value::Object(doc)
    }
}

/// What `serde_json::to_value` makes of each part, built by moving its strings.
impl Source {
    fn into_value(self) -> Value {
        object([
            ("vendor", Value::String(self.vendor)),
            ("connector", Value::String(self.connector)),
            ("version", Value::String(self.version)),
        ])
    }
}

impl Upstream {
    fn into_value(self) -> Value {
        let Signature {
            present,
            format,
            key_id,
            sig,
        } = self.signature;
        let mut signature = Map::with_capacity(4);
        signature.insert("present".into(), Value::Bool(present));
        // `skip_serializing_if = "Option::is_none"`, as the derive says.
        for (key, v) in [("format", format), ("key_id", key_id), ("sig", sig)] {
            if let Some(v) = v {
                signature.insert(key.into(), Value::String(v));
            }
        }
        object([
            ("upstream_id", Value::String(self.upstream_id)),
            ("document_version", opt(self.document_version)),
            ("retrieved_at", Value::String(self.retrieved_at)),
            ("content_hash", Value::String(self.content_hash)),
            ("signature", Value::Object(signature)),
        ])
    }
}

impl Identifiers {
    fn into_value(self) -> Value {
        object([
            ("cve", strings(self.cve)),
            ("ghsa", strings(self.ghsa)),
            ("aliases", strings(self.aliases)),
        ])
    }
}

impl Linkset {
    fn into_value(self) -> Value {
        object([
            ("purls", strings(self.purls)),
            ("cpes", strings(self.cpes)),
            ("aliases", strings(self.aliases)),
            ("references", strings(self.references)),
            ("reconciled_from", strings(self.reconciled_from)),
        ])
    }
}

fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in members {
        map.insert(key.into(), value);
    }
    Value::Object(map)
}

fn strings(v: Vec<String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

fn opt(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

/// [`Value::pointer`] (RFC 6901), for any [`JsonTree`], without its allocation per reference
/// token: a token is unescaped into a new string only when it holds a `~`. Reading a few fields
/// of every document this way saves two allocations per token.
pub fn pointer<'a, T: JsonTree>(value: &'a T, pointer: &str) -> Option<&'a T> {
    if pointer.is_empty() {
        return Some(value);
    }
    let mut target = value;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token: std::borrow::Cow<'_, str> = if token.contains('~') {
            token.replace("~1", "/").replace("~0", "~").into()
        } else {
            token.into()
        };
        target = match target.json() {
            Json::Object(_) => target.member(token.as_ref())?,
            Json::Array(list) => {
                let leading_zero = token.len() > 1 && token.starts_with('0');
                if token.starts_with('+') || leading_zero {
                    return None;
                }
                list.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(target)
}

/// The uniqueness key (tenant, vendor, upstream id, content hash), read from a stored or mapped document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamKey {
    pub tenant: String,
    pub vendor: String,
    pub upstream_id: String,
}

/// The fields of a document that identity, idempotency and chains are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocHead {
    pub id: String,
    pub key: UpstreamKey,
    pub content_hash: String,
    pub supersedes: Option<String>,
}

impl DocHead {
    /// Reads the head fields of a document; `None` when any is missing or not a string.
    pub fn from_value<T: JsonTree>(doc: &T) -> Option<DocHead> {
        let s = |ptr: &str| pointer(doc, ptr).and_then(T::as_str).map(str::to_owned);
        Some(DocHead {
            id: s("/_id")?,
            key: UpstreamKey {
                tenant: s("/tenant")?,
                vendor: s("/source/vendor")?,
                upstream_id: s("/upstream/upstream_id")?,
            },
            content_hash: s("/upstream/content_hash")?,
            supersedes: s("/supersedes"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document as serde derives would write its parts (what `into_value` used to do).
    fn through_serde(d: RawDocument) -> Value {
        let mut content = Map::new();
        content.insert("format".into(), Value::String(d.format));
        content.insert("spec_version".into(), opt(d.spec_version));
        content.insert("raw".into(), d.raw);
        let mut doc = Map::new();
        doc.insert("_id".into(), Value::String(d.id));
        doc.insert("tenant".into(), Value::String(d.tenant));
        doc.insert("source".into(), serde_json::to_value(&d.source).unwrap());
        doc.insert(
            "upstream".into(),
            serde_json::to_value(&d.upstream).unwrap(),
        );
        doc.insert("content".into(), Value::Object(content));
        doc.insert(
            "identifiers".into(),
            serde_json::to_value(&d.identifiers).unwrap(),
        );
        doc.insert("linkset".into(), serde_json::to_value(&d.linkset).unwrap());
        doc.insert("supersedes".into(), opt(d.supersedes));
        doc.insert("ingested_at".into(), Value::String(d.ingested_at));
        Value::Object(doc)
    }

    #[test]
    fn pointer_resolves_as_serde_json_does() {
        let v = serde_json::json!({
            "a": {"b/c": [10, {"d~e": true}], "": 1, "0": "zero"},
            "list": [1, 2, 3]
        });
        for p in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/",
            "/a/0",
            "/list/2",
            "/list/3",
            "/list/01",
            "/list/+1",
            "/list/-1",
            "/missing",
            "a",
            "/a/b~1c/x",
            "/list/0/x",
        ] {
            assert_eq!(pointer(&v, p), v.pointer(p), "{p:?}");
        }
    }

    #[test]
    fn into_value_writes_what_serde_writes_in_the_same_order() {
        let s = |x: &str| x.to_owned();
        for signature in [
            Signature::default(),
            Signature {
                present: true,
                format: Some(s("cms")),
                key_id: None,
                sig: Some(s("AAA=")),
            },
        ] {
            let doc = RawDocument {
                id: s("advisory_raw:v:U-1:0123456789abcdef"),
                tenant: s("t"),
                source: Source {
                    vendor: s("v"),
                    connector: s("stella-osv"),
                    version: s("1"),
                },
                upstream: Upstream {
                    upstream_id: s("U-1"),
                    document_version: Some(s("2024-01-01T00:00:00Z")),
                    retrieved_at: s("2024-01-02T00:00:00Z"),
                    content_hash: s("sha256:00"),
                    signature,
                },
                format: s("OSV"),
                spec_version: None,
                raw: serde_json::json!({"id": "U-1", "z": [1, {"b": 2, "a": 3}]}),
                identifiers: Identifiers {
                    cve: vec![s("CVE-1")],
                    ghsa: vec![],
                    aliases: vec![s("CVE-1"), s("GHSA-x")],
                },
                linkset: Linkset {
                    purls: vec![s("pkg:cargo/x")],
                    cpes: vec![],
                    aliases: vec![s("CVE-1")],
                    references: vec![s("https://example.org")],
                    reconciled_from: vec![s("/aliases/0"), s("/affected/0/package/purl")],
                },
                supersedes: Some(s("advisory_raw:v:U-1:fedcba9876543210")),
                ingested_at: s("2024-01-03T00:00:00Z"),
            };
            let ours = doc.clone().into_value();
            let theirs = through_serde(doc);
            assert_eq!(ours, theirs);
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&theirs).unwrap(),
                "same bytes: same key order"
            );
        }
    }
}
