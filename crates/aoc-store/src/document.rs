//! Reading the columns out of a raw document, and rendering the exact JSON that is stored.

use crate::{Result, StoreError};
use aoc_contract::clock::parse_rfc3339;
use aoc_contract::tree::{Json, JsonTree};
use aoc_contract::{DocHead, RawDocument, UpstreamKey};
use aoc_digest::Sha256Digest;
use serde::Serialize;
use serde_json::Value;
use std::io;
use std::ops::Range;

/// A raw document ready to be stored: the fields the store keys and orders by, and its compact
/// JSON with the value of `supersedes` marked, so that writing it only splices in the head the
/// store finds. Building one is the per-document work of an append that needs no store, so a
/// pipelined caller (the backfill's mapping thread) does it off the writer's critical path.
#[derive(Debug, Clone)]
pub struct StoreDoc {
    pub(crate) head: DocHead,
    /// The 32 bytes behind `head.content_hash`: what the store keys on (half the text's size).
    pub(crate) digest: Sha256Digest,
    pub(crate) ingested_at: String,
    pub(crate) ingested_unix: i64,
    /// The document's compact JSON (serde_json's bytes, the document's own key order), with
    /// `supersedes` as given; appended last when the document had none.
    json: String,
    /// Where the value of `supersedes` is in `json`.
    supersedes_at: Range<usize>,
}

impl StoreDoc {
    /// Reads a mapped, guarded raw document; `Err` names what is missing or malformed.
    pub fn from_value(doc: &Value) -> std::result::Result<StoreDoc, String> {
        let fields = Fields::read(doc)?;
        let Some(map) = doc.as_object() else {
            unreachable!("a document with a head is an object")
        };
        let mut out = Vec::with_capacity(4096);
        let supersedes_at = render_value(map, &mut out);
        Ok(StoreDoc {
            head: fields.head,
            digest: fields.digest,
            ingested_at: fields.ingested_at.to_owned(),
            ingested_unix: fields.ingested_unix,
            json: String::from_utf8(out).expect("serde_json writes UTF-8"),
            supersedes_at,
        })
    }

    /// The checks of [`from_value`](Self::from_value), and whether `bytes` are exactly the JSON
    /// it renders for `doc`, compared while rendering, without building it: for a reader that
    /// verifies stored records and keeps none. The head is the document's.
    pub fn check_rendering(
        doc: &Value,
        bytes: &[u8],
    ) -> std::result::Result<(DocHead, bool), String> {
        Ok((
            StoreDoc::check_fields(doc)?,
            StoreDoc::renders_as(doc, bytes),
        ))
    }

    /// The checks of [`from_value`](Self::from_value) alone, on any JSON tree: the fields the
    /// store keys, orders and chains by.
    pub fn check_fields<T: JsonTree>(doc: &T) -> std::result::Result<DocHead, String> {
        Fields::read(doc).map(|f| f.head)
    }

    /// Whether `bytes` are exactly the JSON [`from_value`](Self::from_value) renders for `doc`
    /// (any JSON tree: a [`Value`], or a borrowed [`Node`](aoc_contract::tree::Node) of those
    /// very bytes), compared while walking it, without building it.
    pub fn renders_as<T: JsonTree>(doc: &T, bytes: &[u8]) -> bool {
        rendered_supersedes(doc, bytes).is_some()
    }

    /// [`from_value`](Self::from_value) of a document whose rendering is already at hand:
    /// `bytes`, when they are exactly what it renders for `doc` (`None` otherwise, or when a
    /// field the store needs is missing). The JSON kept is `bytes` themselves, not rendered
    /// again: a loader that proved a line from a borrowed tree of it keeps the line.
    pub fn from_rendered<T: JsonTree>(doc: &T, bytes: &[u8]) -> Option<StoreDoc> {
        let fields = Fields::read(doc).ok()?;
        let supersedes_at = rendered_supersedes(doc, bytes)?;
        Some(StoreDoc {
            head: fields.head,
            digest: fields.digest,
            ingested_at: fields.ingested_at.to_owned(),
            ingested_unix: fields.ingested_unix,
            json: std::str::from_utf8(bytes).ok()?.to_owned(),
            supersedes_at,
        })
    }

    /// [`from_value`](Self::from_value) of `doc.into_value()`, rendered straight from the typed
    /// document a mapper made (no intermediate value): the same fields and the same bytes.
    pub fn from_mapped(doc: &RawDocument) -> std::result::Result<StoreDoc, String> {
        let head = DocHead {
            id: doc.id.clone(),
            key: UpstreamKey {
                tenant: doc.tenant.clone(),
                vendor: doc.source.vendor.clone(),
                upstream_id: doc.upstream.upstream_id.clone(),
            },
            content_hash: doc.upstream.content_hash.clone(),
            supersedes: doc.supersedes.clone(),
        };
        let digest = parse_digest(&head.content_hash).ok_or_else(|| {
            format!(
                "content_hash {:?} is not sha256: followed by 64 lowercase hex digits",
                head.content_hash
            )
        })?;
        let ingested_unix = parse_rfc3339(&doc.ingested_at)
            .ok_or_else(|| format!("ingested_at {:?} is not RFC 3339", doc.ingested_at))?;
        let mut out = Vec::with_capacity(4096);
        let mut first = true;
        field(&mut out, &mut first, "_id", &doc.id);
        field(&mut out, &mut first, "tenant", &doc.tenant);
        field(&mut out, &mut first, "source", &doc.source);
        field(&mut out, &mut first, "upstream", &doc.upstream);
        open_field(&mut out, &mut first, "content");
        let mut inner = true;
        field(&mut out, &mut inner, "format", &doc.format);
        field(&mut out, &mut inner, "spec_version", &doc.spec_version);
        field(&mut out, &mut inner, "raw", &doc.raw);
        out.push(b'}');
        field(&mut out, &mut first, "identifiers", &doc.identifiers);
        field(&mut out, &mut first, "linkset", &doc.linkset);
        let supersedes_at = field(&mut out, &mut first, "supersedes", &doc.supersedes);
        field(&mut out, &mut first, "ingested_at", &doc.ingested_at);
        out.push(b'}');
        Ok(StoreDoc {
            head,
            digest,
            ingested_at: doc.ingested_at.clone(),
            ingested_unix,
            json: String::from_utf8(out).expect("serde_json writes UTF-8"),
            supersedes_at,
        })
    }

    /// The fields the store keys and chains by.
    pub fn head(&self) -> &DocHead {
        &self.head
    }

    pub fn key(&self) -> &UpstreamKey {
        &self.head.key
    }

    pub fn id(&self) -> &str {
        &self.head.id
    }

    /// `ingested_at`, in Unix seconds.
    pub fn ingested_unix(&self) -> i64 {
        self.ingested_unix
    }

    pub fn content_hash(&self) -> &str {
        &self.head.content_hash
    }

    /// The compact JSON as rendered for the store, with `supersedes` as given (`null` appended
    /// when the document had none): a reader can check that bytes it read are exactly these.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The document as given (its own `supersedes`), for reports of a refused document.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).expect("rendered from a Value")
    }

    /// The JSON stored for this document when the store's head is `supersedes`.
    pub(crate) fn render(&self, supersedes: Option<&str>) -> String {
        if supersedes == self.head.supersedes.as_deref() {
            return self.json.clone();
        }
        let value = serde_json::to_string(&supersedes).expect("a string serializes");
        let mut out = String::with_capacity(self.json.len() + value.len());
        out.push_str(&self.json[..self.supersedes_at.start]);
        out.push_str(&value);
        out.push_str(&self.json[self.supersedes_at.end..]);
        out
    }
}

/// Where the value of `supersedes` is in `bytes`, when they are exactly the JSON
/// [`StoreDoc::from_value`] renders for `doc` (see [`StoreDoc::renders_as`]).
fn rendered_supersedes<T: JsonTree>(doc: &T, bytes: &[u8]) -> Option<Range<usize>> {
    let Json::Object(members) = doc.json() else {
        return None;
    };
    let mut c = Compare { rest: bytes, at: 0 };
    let mut supersedes_at = None;
    for (i, (key, value)) in members.enumerate() {
        if !(c.byte(if i == 0 { b'{' } else { b',' }) && c.string(key) && c.byte(b':')) {
            return None;
        }
        let start = c.at;
        if !c.value(value) {
            return None;
        }
        if key == "supersedes" {
            supersedes_at = Some(start..c.at);
        }
    }
    // An absent `supersedes` is rendered last, as null.
    let supersedes_at = match supersedes_at {
        Some(at) => at,
        None => {
            let ok = c.byte(if c.at == 0 { b'{' } else { b',' })
                && c.string("supersedes")
                && c.byte(b':');
            let start = c.at;
            (ok && c.token(b"null")).then_some(start..c.at)?
        }
    };
    (c.byte(b'}') && c.rest.is_empty()).then_some(supersedes_at)
}

/// Writes `"key":` as the next member of the object being written (opening it for the first).
fn open_field(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    out.push(if std::mem::take(first) { b'{' } else { b',' });
    serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
    out.push(b':');
}

/// Writes `"key":value` as the next member; returns where the value is.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    first: &mut bool,
    key: &str,
    value: &T,
) -> Range<usize> {
    open_field(out, first, key);
    let start = out.len();
    serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
    start..out.len()
}

/// What [`StoreDoc::from_value`] reads from a document before rendering it.
struct Fields<'a> {
    head: DocHead,
    digest: Sha256Digest,
    ingested_at: &'a str,
    ingested_unix: i64,
}

impl<'a> Fields<'a> {
    fn read<T: JsonTree>(doc: &'a T) -> std::result::Result<Fields<'a>, String> {
        let head = DocHead::from_value(doc).ok_or(
            "missing one of _id, tenant, source.vendor, upstream.upstream_id, \
             upstream.content_hash (map and guard documents before appending)",
        )?;
        let digest = parse_digest(&head.content_hash).ok_or_else(|| {
            format!(
                "content_hash {:?} is not sha256: followed by 64 lowercase hex digits",
                head.content_hash
            )
        })?;
        if !doc
            .member("supersedes")
            .is_none_or(|s| s.is_null() || s.as_str().is_some())
        {
            return Err("supersedes must be null or a string".into());
        }
        let ingested_at = doc
            .member("ingested_at")
            .and_then(T::as_str)
            .ok_or("missing ingested_at")?;
        let ingested_unix = parse_rfc3339(ingested_at)
            .ok_or_else(|| format!("ingested_at {ingested_at:?} is not RFC 3339"))?;
        Ok(Fields {
            head,
            digest,
            ingested_at,
            ingested_unix,
        })
    }
}

/// A writer that accepts exactly the bytes of `rest`, in order, and fails at the first other.
struct Compare<'a> {
    rest: &'a [u8],
    at: usize,
}

impl io::Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.rest.strip_prefix(buf) {
            Some(rest) => {
                self.rest = rest;
                self.at += buf.len();
                Ok(buf.len())
            }
            None => Err(io::ErrorKind::InvalidData.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Comparing while walking the value, as serde_json's compact writer would write it: structure
/// and plain strings are compared directly (a plain string is written as it is); escaped
/// strings and numbers go through serde_json itself.
impl Compare<'_> {
    fn token(&mut self, t: &[u8]) -> bool {
        io::Write::write_all(self, t).is_ok()
    }

    /// One structural byte, compared inline (most of what the walk compares).
    fn byte(&mut self, b: u8) -> bool {
        match self.rest.split_first() {
            Some((&first, rest)) if first == b => {
                self.rest = rest;
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// Accepts the next `n` bytes as they are (the caller has proven them).
    fn skip(&mut self, n: usize) -> bool {
        self.rest = &self.rest[n..];
        self.at += n;
        true
    }

    fn string(&mut self, s: &str) -> bool {
        // A string borrowed from these very bytes, right after the quote: its own source text,
        // which has no escape (or it could not have been borrowed), so it renders as itself.
        if self
            .rest
            .get(1..)
            .is_some_and(|r| std::ptr::eq(r.as_ptr(), s.as_ptr()))
        {
            return self.rest[0] == b'"'
                && self.rest.get(1 + s.len()) == Some(&b'"')
                && self.skip(s.len() + 2);
        }
        if aoc_contract::canonical::is_plain_string(s) {
            self.byte(b'"') && self.token(s.as_bytes()) && self.byte(b'"')
        } else {
            serde_json::to_writer(&mut *self, s).is_ok()
        }
    }

    fn value<T: JsonTree>(&mut self, v: &T) -> bool {
        match v.json() {
            Json::Null => self.token(b"null"),
            Json::Bool(true) => self.token(b"true"),
            Json::Bool(false) => self.token(b"false"),
            Json::Number(n) => serde_json::to_writer(&mut *self, n).is_ok(),
            Json::String(s) | Json::PlainString(s) => self.string(s),
            Json::Array(items) => {
                self.byte(b'[')
                    && items
                        .iter()
                        .enumerate()
                        .all(|(i, v)| (i == 0 || self.byte(b',')) && self.value(v))
                    && self.byte(b']')
            }
            Json::Object(mut members) => {
                self.byte(b'{')
                    && members.by_ref().enumerate().all(|(i, (k, v))| {
                        (i == 0 || self.byte(b','))
                            && self.string(k)
                            && self.byte(b':')
                            && self.value(v)
                    })
                    && self.byte(b'}')
            }
        }
    }
}

/// The stored JSON of a document's members: compact, in their own order, `supersedes` appended
/// as `null` when absent; returns where the value of `supersedes` is.
fn render_value(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) -> Range<usize> {
    let mut supersedes_at = 0..0;
    let mut first = true;
    let absent = (!map.contains_key("supersedes")).then_some(("supersedes", &Value::Null));
    for (key, value) in map.iter().map(|(k, v)| (k.as_str(), v)).chain(absent) {
        let at = field(out, &mut first, key, value);
        if key == "supersedes" {
            supersedes_at = at;
        }
    }
    out.push(b'}');
    supersedes_at
}

/// Prepares every document of a batch; one unusable document refuses the batch as a whole,
/// before anything is written.
pub fn prepare_docs(docs: &[Value]) -> Result<Vec<StoreDoc>> {
    docs.iter()
        .enumerate()
        .map(|(index, doc)| {
            StoreDoc::from_value(doc)
                .map_err(|message| StoreError::InvalidDocument { index, message })
        })
        .collect()
}

/// The digest of a `sha256:<64 hex>` content hash.
pub(crate) fn parse_digest(content_hash: &str) -> Option<Sha256Digest> {
    Sha256Digest::parse_prefixed(content_hash).ok()
}

/// The `sha256:<hex>` text of a stored digest column. A column that is not 32 bytes (changed
/// behind the store's back) renders so that it can never equal a real hash, and the verifier
/// reports the row.
pub(crate) fn render_digest(digest: &[u8]) -> String {
    if let Ok(digest) = <[u8; 32]>::try_from(digest) {
        Sha256Digest(digest).prefixed()
    } else {
        format!("invalid-digest:{}", hex::encode(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn doc(supersedes: Option<Value>) -> Value {
        let mut d = json!({
            "_id": "a", "tenant": "t", "source": {"vendor": "v"},
            "upstream": {"upstream_id": "u", "content_hash": HASH},
            "ingested_at": "2026-01-01T00:00:00Z",
        });
        if let Some(s) = supersedes {
            d.as_object_mut().unwrap().insert("supersedes".into(), s);
            d.as_object_mut().unwrap().insert("z".into(), json!(1));
        }
        d
    }

    #[test]
    fn supersedes_is_replaced_in_place_and_other_bytes_match_serde() {
        let d = doc(Some(Value::Null));
        let s = StoreDoc::from_value(&d).unwrap();
        assert_eq!(s.render(None), serde_json::to_string(&d).unwrap());
        let mut expected = d.clone();
        expected["supersedes"] = json!("prev \"quoted\"");
        assert_eq!(
            s.render(Some("prev \"quoted\"")),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(s.to_value(), d);
    }

    #[test]
    fn a_rendering_is_checked_exactly_without_building_it() {
        for d in [
            doc(None),
            doc(Some(Value::Null)),
            doc(Some(json!("p \"q\""))),
        ] {
            let s = StoreDoc::from_value(&d).unwrap();
            let bytes = s.json().as_bytes();
            let (head, same) = StoreDoc::check_rendering(&d, bytes).unwrap();
            assert!(same);
            assert_eq!(&head, s.head());
            // Kept from its rendering, from the Value or a tree of the bytes, it is the same
            // document, supersedes where it was (a store splices its head in there).
            let node = aoc_contract::tree::Node::parse(bytes).unwrap();
            for kept in [
                StoreDoc::from_rendered(&d, bytes).unwrap(),
                StoreDoc::from_rendered(&node, bytes).unwrap(),
            ] {
                assert_eq!(format!("{kept:?}"), format!("{s:?}"));
                assert_eq!(
                    kept.render(Some("advisory_raw:x")),
                    s.render(Some("advisory_raw:x"))
                );
            }
            // One byte changed, one missing, one extra, anywhere: not the rendering.
            for i in 0..bytes.len() {
                let mut changed = bytes.to_vec();
                changed[i] ^= 0x20;
                assert!(!StoreDoc::check_rendering(&d, &changed).unwrap().1);
                assert!(!StoreDoc::check_rendering(&d, &bytes[..i]).unwrap().1);
                assert!(StoreDoc::from_rendered(&d, &changed).is_none());
            }
            let mut longer = bytes.to_vec();
            longer.push(b' ');
            assert!(!StoreDoc::check_rendering(&d, &longer).unwrap().1);
        }
        // Escapes, unicode, numbers of every kind, empty and nested containers, odd keys.
        let mut d = doc(Some(Value::Null));
        d["z"] = json!({
            "s": "quote \" backslash \\ tab \t nl \n nul \u{0} us \u{1f} del \u{7f} ls \u{2028} é😀",
            "plain": "more than eight plain bytes", "": [], "{}": {}, "a\"b": [[], {}, [null]],
            "n": [0, -1, 1.5, -0.0, 1e300, 2.5e-8, u64::MAX, i64::MIN, 9007199254740993u64],
            "b": [true, false]
        });
        let s = StoreDoc::from_value(&d).unwrap();
        assert!(
            StoreDoc::check_rendering(&d, s.json().as_bytes())
                .unwrap()
                .1
        );
        let bytes = s.json().as_bytes();
        for i in 0..bytes.len() {
            assert!(!StoreDoc::check_rendering(&d, &bytes[..i]).unwrap().1);
            let mut changed = bytes.to_vec();
            changed[i] ^= 0x01;
            assert!(!StoreDoc::check_rendering(&d, &changed).unwrap().1);
        }
        // A tree parsed from the bytes themselves (borrowed strings) answers as its Value does,
        // for the rendering and for texts that are not it.
        let text = s.json();
        let variants = [
            text.to_owned(),
            text.replacen(':', ": ", 1),
            text.replacen(",\"supersedes\":null", "", 1),
            text.replace("more than eight", "more\\u0020than eight"),
            text.replace("more than eight", "more\\/than eight"),
            text.replace("[true,false]", "[ true,false]"),
            text.replace("2.5e-8", "2.50e-8"),
            text.replace("1.5", "15e-1"),
        ];
        for (i, v) in variants.iter().enumerate() {
            let value: Value = serde_json::from_str(v).unwrap();
            let node = aoc_contract::tree::Node::parse(v.as_bytes()).unwrap();
            let expected = i == 0;
            assert_eq!(StoreDoc::renders_as(&value, v.as_bytes()), expected, "{v}");
            assert_eq!(StoreDoc::renders_as(&node, v.as_bytes()), expected, "{v}");
        }
        // The same refusals as from_value.
        let mut d = doc(None);
        d["supersedes"] = json!(5);
        assert!(StoreDoc::check_rendering(&d, b"{}")
            .unwrap_err()
            .contains("supersedes"));
    }

    #[test]
    fn absent_supersedes_is_appended_last() {
        let s = StoreDoc::from_value(&doc(None)).unwrap();
        let rendered: Value = serde_json::from_str(&s.render(Some("p"))).unwrap();
        let keys: Vec<&String> = rendered.as_object().unwrap().keys().collect();
        assert_eq!(keys.last().unwrap().as_str(), "supersedes");
        assert_eq!(rendered["supersedes"], "p");
    }

    #[test]
    fn a_mapped_document_renders_as_its_value_does() {
        let ctx = aoc_contract::MapContext {
            tenant: "t".into(),
            vendor: None,
            connector_version: "1".into(),
            retrieved_at: "2024-01-02T00:00:00Z".into(),
            ingested_at: "2024-01-03T00:00:00Z".into(),
        };
        let upstream = json!({
            "id": "RUSTSEC-2024-0001", "modified": "2024-01-01T00:00:00Z",
            "aliases": ["CVE-2024-1", "GHSA-aaaa-bbbb-cccc"], "details": "a \"quoted\"\nline",
            "affected": [{"package": {"name": "x", "purl": "pkg:cargo/x"}}],
            "references": [{"url": "https://example.org"}], "n": [1, 2.5, -3]
        });
        let mut buf = Vec::new();
        for supersedes in [None, Some("advisory_raw:rustsec:RUSTSEC-2024-0001:0123")] {
            let mut mapped = aoc_contract::map_document(upstream.clone(), &ctx, &mut buf).unwrap();
            mapped.supersedes = supersedes.map(str::to_owned);
            let typed = StoreDoc::from_mapped(&mapped).unwrap();
            let value = StoreDoc::from_value(&mapped.into_value()).unwrap();
            assert_eq!(typed.json, value.json);
            assert_eq!(typed.supersedes_at, value.supersedes_at);
            assert_eq!(typed.head, value.head);
            assert_eq!(typed.digest, value.digest);
            assert_eq!(typed.render(Some("p")), value.render(Some("p")));
            assert_eq!(
                (typed.ingested_at, typed.ingested_unix),
                (value.ingested_at, value.ingested_unix)
            );
        }
    }

    #[test]
    fn malformed_documents_are_named() {
        let mut d = doc(None);
        d["upstream"]["content_hash"] = json!("sha256:XYZ");
        assert!(StoreDoc::from_value(&d)
            .unwrap_err()
            .contains("content_hash"));
        let mut d = doc(None);
        d["supersedes"] = json!(5);
        assert!(StoreDoc::from_value(&d).unwrap_err().contains("supersedes"));
        let mut d = doc(None);
        d["ingested_at"] = json!("yesterday");
        assert!(StoreDoc::from_value(&d).unwrap_err().contains("RFC 3339"));
        let err = prepare_docs(&[doc(None), json!({"_id": "x"})]).unwrap_err();
        assert!(matches!(err, StoreError::InvalidDocument { index: 1, .. }));
    }
}
