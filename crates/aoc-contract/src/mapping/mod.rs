//! Mapping upstream documents (OSV, CSAF 2.0) into raw documents.
//!
//! Mapping never alters the upstream document: it reads identifiers and join hints out of it and
//! records, for each hint, the JSON Pointer it came from (`linkset.reconciled_from`).

mod csaf;
mod osv;

use crate::canonical::content_hash_with;
use crate::model::{
    pointer, raw_id, Identifiers, Linkset, RawDocument, Signature, Source, Upstream,
};
use serde_json::Value;

/// Upstream formats the runner understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Osv,
    Csaf,
}

impl Format {
    /// The `content.format` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Osv => "OSV",
            Format::Csaf => "CSAF",
        }
    }

    /// Recognises a document by its shape: CSAF carries `document.csaf_version`, OSV an `id` and
    /// a `modified` timestamp at the top level (OSV schema 1.x requires both).
    pub fn detect(doc: &Value) -> Option<Format> {
        if pointer(doc, "/document/csaf_version").is_some() {
            Some(Format::Csaf)
        } else if doc.get("id").is_some_and(Value::is_string) && doc.get("modified").is_some() {
            Some(Format::Osv)
        } else {
            None
        }
    }
}

/// Why an upstream document cannot be turned into a raw document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("not an OSV or CSAF 2.0 document (no `id`+`modified`, no `document.csaf_version`)")]
    UnknownFormat,
    #[error("upstream document has no usable identifier at {0}")]
    MissingUpstreamId(&'static str),
    #[error("upstream document is not a JSON object")]
    NotAnObject,
    /// No vendor was given and the document names none (an OSV id without a prefix, a CSAF
    /// publisher without a name): a raw document must say whose it is.
    #[error("upstream document {0:?} names no source vendor: give one (--source)")]
    MissingVendor(String),
}

/// Who is writing, for whom, and when: the parts of a raw document not read from upstream.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub tenant: String,
    /// Source vendor; `None` derives it from the document (see [`default_vendor`]).
    pub vendor: Option<String>,
    pub connector_version: String,
    pub retrieved_at: String,
    pub ingested_at: String,
}

/// What a format-specific mapper reads out of an upstream document.
struct Extracted {
    upstream_id: String,
    document_version: Option<String>,
    spec_version: Option<String>,
    default_vendor: String,
    identifiers: Identifiers,
    linkset: Linkset,
}

/// Maps one upstream document; `buf` is a reusable scratch buffer for hashing.
pub fn map_document(
    raw: Value,
    ctx: &MapContext,
    buf: &mut Vec<u8>,
) -> Result<RawDocument, MapError> {
    if !raw.is_object() {
        return Err(MapError::NotAnObject);
    }
    let format = Format::detect(&raw).ok_or(MapError::UnknownFormat)?;
    let ex = match format {
        Format::Osv => osv::extract(&raw)?,
        Format::Csaf => csaf::extract(&raw)?,
    };
    let vendor = source_vendor(ctx.vendor.as_ref(), || ex.default_vendor, &ex.upstream_id)?;
    let content_hash = content_hash_with(&raw, buf);
    Ok(RawDocument {
        id: raw_id(&vendor, &ex.upstream_id, &content_hash),
        tenant: ctx.tenant.clone(),
        source: Source {
            vendor,
            connector: format!("stella-{}", format.as_str().to_ascii_lowercase()),
            version: ctx.connector_version.clone(),
        },
        upstream: Upstream {
            upstream_id: ex.upstream_id,
            document_version: ex.document_version,
            retrieved_at: ctx.retrieved_at.clone(),
            content_hash,
            signature: Signature::default(),
        },
        format: format.as_str().to_owned(),
        spec_version: ex.spec_version,
        raw,
        identifiers: ex.identifiers,
        linkset: ex.linkset,
        supersedes: None,
        ingested_at: ctx.ingested_at.clone(),
    })
}

/// The source vendor of a document or a deletion of `upstream_id`: the one the caller `given`,
/// else the one the upstream names (`derived`). A blank one is refused: a raw document, and a
/// deletion, must say whose it is.
pub fn source_vendor(
    given: Option<&String>,
    derived: impl FnOnce() -> String,
    upstream_id: &str,
) -> Result<String, MapError> {
    let vendor = given.cloned().unwrap_or_else(derived);
    if vendor.trim().is_empty() {
        return Err(MapError::MissingVendor(upstream_id.to_owned()));
    }
    Ok(vendor)
}

/// The vendor used when none is given: the lowercased prefix of an OSV id (`RUSTSEC-…` →
/// `rustsec`, `GHSA-…` → `ghsa`), or for CSAF the publisher namespace's host.
pub fn default_vendor(doc: &Value) -> Option<String> {
    match Format::detect(doc)? {
        Format::Osv => osv::extract(doc).ok().map(|e| e.default_vendor),
        Format::Csaf => csaf::extract(doc).ok().map(|e| e.default_vendor),
    }
}

/// The vendor an OSV-style id names: its lowercased prefix (`RUSTSEC-2021-0001` → `rustsec`,
/// `GHSA-…` → `ghsa`, `GO-…` → `go`). Also used for feed deletions, which carry only an id.
pub fn vendor_from_id(id: &str) -> String {
    id.split('-').next().unwrap_or(id).to_ascii_lowercase()
}

/// Escapes one reference token per RFC 6901 (`~` → `~0`, `/` → `~1`).
pub fn escape_pointer_token(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1").into()
    } else {
        token.into()
    }
}

/// Trimmed string at `v`, if it is a non-empty string.
fn trimmed(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Adds a hint and the pointer it came from.
fn hint(list: &mut Vec<String>, from: &mut Vec<String>, value: &Value, pointer: String) {
    if let Some(s) = trimmed(value) {
        list.push(s);
        from.push(pointer);
    }
}

/// Records each alias at `base/<i>`: as an identifier (classified) and as a linkset hint with its
/// pointer.
fn push_aliases(ids: &mut Identifiers, linkset: &mut Linkset, aliases: &[Value], base: &str) {
    for (i, alias) in aliases.iter().enumerate() {
        if let Some(a) = trimmed(alias) {
            push_identifier(ids, &a);
            ids.aliases.push(a);
        }
        hint(
            &mut linkset.aliases,
            &mut linkset.reconciled_from,
            alias,
            format!("{base}/{i}"),
        );
    }
}

/// Classifies an identifier the way upstreams spell them.
fn push_identifier(ids: &mut Identifiers, id: &str) {
    if id.starts_with("CVE-") {
        ids.cve.push(id.to_owned());
    } else if id.starts_with("GHSA-") {
        ids.ghsa.push(id.to_owned());
    }
}

#[cfg(test)]
mod tests;
