//! The raw advisory document (docs/ARCHITECTURE.md §4.1): one per upstream revision, raw facts plus provenance.

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
    /// The document as JSON, keys in the order of docs/ARCHITECTURE.md §4.1; moves `raw` instead of copying it.
    pub fn into_value(self) -> Value {
        let mut content = Map::with_capacity(3);
        content.insert("format".into(), Value::String(self.format));
        content.insert(
            "spec_version".into(),
            self.spec_version.map_or(Value::Null, Value::String),
        );
        content.insert("raw".into(), self.raw);
        let mut doc = Map::with_capacity(ALLOWED_TOP_LEVEL.len());
        doc.insert("_id".into(), Value::String(self.id));
        doc.insert("tenant".into(), Value::String(self.tenant));
        doc.insert("source".into(), to_value(&self.source));
        doc.insert("upstream".into(), to_value(&self.upstream));
        doc.insert("content".into(), Value::Object(content));
        doc.insert("identifiers".into(), to_value(&self.identifiers));
        doc.insert("linkset".into(), to_value(&self.linkset));
        doc.insert(
            "supersedes".into(),
            self.supersedes.map_or(Value::Null, Value::String),
        );
        doc.insert("ingested_at".into(), Value::String(self.ingested_at));
        Value::Object(doc)
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain structs always serialise")
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
    pub fn from_value(doc: &Value) -> Option<DocHead> {
        let s = |ptr: &str| doc.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
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
