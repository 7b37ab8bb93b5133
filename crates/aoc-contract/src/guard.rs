//! The AOC guard: checks one raw document and returns every violation, in a stable order.

use crate::canonical::{content_hash_tree, is_content_hash};
use crate::model::{pointer, RawDocument, ALLOWED_TOP_LEVEL};
use crate::tree::{Json, JsonTree};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The violation codes shared by CLI output, reports and metrics (docs/ARCHITECTURE.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ViolationCode {
    /// Forbidden or derived top-level field.
    #[serde(rename = "ERR_AOC_001")]
    Forbidden,
    /// Merge attempt: one document carrying several upstream sources.
    #[serde(rename = "ERR_AOC_002")]
    Merge,
    /// Idempotency violation, or a revision without a correct `supersedes` link.
    #[serde(rename = "ERR_AOC_003")]
    Idempotency,
    /// Missing provenance.
    #[serde(rename = "ERR_AOC_004")]
    MissingProvenance,
    /// Content hash or signature does not verify.
    #[serde(rename = "ERR_AOC_005")]
    HashMismatch,
    /// Derived finding written by ingestion (`effective_finding_*`).
    #[serde(rename = "ERR_AOC_006")]
    DerivedFinding,
    /// Unknown top-level field.
    #[serde(rename = "ERR_AOC_007")]
    UnknownField,
}

impl ViolationCode {
    pub const ALL: [ViolationCode; 7] = [
        Self::Forbidden,
        Self::Merge,
        Self::Idempotency,
        Self::MissingProvenance,
        Self::HashMismatch,
        Self::DerivedFinding,
        Self::UnknownField,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "ERR_AOC_001",
            Self::Merge => "ERR_AOC_002",
            Self::Idempotency => "ERR_AOC_003",
            Self::MissingProvenance => "ERR_AOC_004",
            Self::HashMismatch => "ERR_AOC_005",
            Self::DerivedFinding => "ERR_AOC_006",
            Self::UnknownField => "ERR_AOC_007",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violation: the code, where (a JSON Pointer into the document) and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Violation {
    pub code: ViolationCode,
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(code: ViolationCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Derived top-level fields that ingestion must never write (ERR_AOC_001).
pub const FORBIDDEN_TOP_LEVEL: [&str; 10] = [
    "severity",
    "cvss",
    "cvss_vector",
    "effective_status",
    "effective_range",
    "merged_from",
    "consensus_provider",
    "reachability",
    "asset_criticality",
    "risk_score",
];

/// What the guard insists on beyond the always-on rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardOptions {
    /// A non-empty `tenant` is required (ERR_AOC_004).
    pub require_tenant: bool,
    /// `upstream.signature` must say `present: true` with `format` and `sig` (ERR_AOC_004).
    pub require_signature: bool,
    /// Recompute the content hash of `content.raw` (ERR_AOC_005). Callers that just computed it
    /// while mapping may skip the second pass.
    pub verify_hash: bool,
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions {
            require_tenant: true,
            require_signature: false,
            verify_hash: true,
        }
    }
}

/// Checks raw documents against the contract. Holds a scratch buffer, so keep one per thread.
#[derive(Debug, Default)]
pub struct Guard {
    pub options: GuardOptions,
    buf: Vec<u8>,
}

impl Guard {
    pub fn new(options: GuardOptions) -> Self {
        Guard {
            options,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Every violation of `doc`, sorted by (code, path, message).
    pub fn check(&mut self, doc: &Value) -> Vec<Violation> {
        self.check_inner(doc, self.options.verify_hash)
    }

    /// [`check`](Self::check) for a document whose content hash the caller has just computed
    /// (the mapper, or a verifier that hashes `content.raw` itself): everything but recomputing
    /// that hash, whatever `options.verify_hash` says. Any [`JsonTree`]: a verifier checks a
    /// borrowed [`Node`](crate::tree::Node) without building a `Value`.
    pub fn check_fresh<T: JsonTree>(&mut self, doc: &T) -> Vec<Violation> {
        self.check_inner(doc, false)
    }

    /// [`check_fresh`](Self::check_fresh) of `doc.into_value()`, without building the value: the
    /// same rules, on the fields a mapped document has (its shape is the contract's by
    /// construction, so only the values can break a rule).
    pub fn check_mapped(&self, doc: &RawDocument) -> Vec<Violation> {
        use ViolationCode::MissingProvenance as P;
        let mut out = Vec::new();
        let blank = |s: &str| s.trim().is_empty();
        if self.options.require_tenant && blank(&doc.tenant) {
            out.push(Violation::new(P, "/tenant", "tenant is missing or empty"));
        }
        if blank(&doc.id) {
            out.push(Violation::new(P, "/_id", "_id is missing or empty"));
        }
        for (field, v) in [
            ("vendor", &doc.source.vendor),
            ("connector", &doc.source.connector),
            ("version", &doc.source.version),
        ] {
            if blank(v) {
                out.push(Violation::new(
                    P,
                    format!("/source/{field}"),
                    format!("source.{field} is missing or empty"),
                ));
            }
        }
        let up = &doc.upstream;
        for (field, v) in [
            ("upstream_id", &up.upstream_id),
            ("content_hash", &up.content_hash),
            ("retrieved_at", &up.retrieved_at),
        ] {
            if blank(v) {
                out.push(Violation::new(
                    P,
                    format!("/upstream/{field}"),
                    format!("upstream.{field} is missing or empty"),
                ));
            }
        }
        let at = &up.retrieved_at;
        if !at.is_empty() && !is_rfc3339_utc(at) {
            out.push(Violation::new(
                P,
                "/upstream/retrieved_at",
                format!("retrieved_at `{at}` is not RFC 3339 UTC"),
            ));
        }
        let hash = &up.content_hash;
        if !hash.is_empty() && !is_content_hash(hash) {
            out.push(Violation::new(
                P,
                "/upstream/content_hash",
                format!("content_hash `{hash}` is not sha256:<64 lowercase hex>"),
            ));
        }
        let sig = &up.signature;
        if sig.present || self.options.require_signature {
            for (field, v) in [("format", &sig.format), ("sig", &sig.sig)] {
                if v.as_deref().is_none_or(blank) {
                    out.push(missing_signature_field(sig.present, field));
                }
            }
        }
        if blank(&doc.format) {
            out.push(Violation::new(
                P,
                "/content/format",
                "content.format is missing",
            ));
        }
        if let Some(prev) = &doc.supersedes {
            let prefix = format!("advisory_raw:{}:{}:", doc.source.vendor, up.upstream_id);
            if *prev == doc.id {
                out.push(Violation::new(
                    ViolationCode::Idempotency,
                    "/supersedes",
                    "document supersedes itself",
                ));
            } else if !prev.starts_with(&prefix) {
                out.push(Violation::new(
                    ViolationCode::Idempotency,
                    "/supersedes",
                    format!(
                        "supersedes `{prev}` is not a revision of {}:{}",
                        doc.source.vendor, up.upstream_id
                    ),
                ));
            }
        }
        out.sort();
        out
    }

    fn check_inner<T: JsonTree>(&mut self, doc: &T, verify_hash: bool) -> Vec<Violation> {
        let mut out = Vec::new();
        let Json::Object(members) = doc.json() else {
            out.push(Violation::new(
                ViolationCode::MissingProvenance,
                "",
                "raw document is not a JSON object",
            ));
            return out;
        };
        for (key, _) in members {
            if ALLOWED_TOP_LEVEL.contains(&key) {
                continue;
            }
            let path = format!("/{}", crate::mapping::escape_pointer_token(key));
            if key.starts_with("effective_finding_") {
                out.push(Violation::new(
                    ViolationCode::DerivedFinding,
                    path,
                    format!("derived finding `{key}` written by ingestion"),
                ));
            } else if FORBIDDEN_TOP_LEVEL.contains(&key) || key.starts_with("effective_") {
                out.push(Violation::new(
                    ViolationCode::Forbidden,
                    path,
                    format!("forbidden derived field `{key}`"),
                ));
            } else {
                out.push(Violation::new(
                    ViolationCode::UnknownField,
                    path,
                    format!("unknown top-level field `{key}`"),
                ));
            }
        }
        self.check_provenance(doc, &mut out);
        self.check_content(doc, verify_hash, &mut out);
        check_supersedes(doc, &mut out);
        out.sort();
        out
    }

    /// Tenant and `_id`, then the source, the upstream record's fields, and its signature.
    fn check_provenance<T: JsonTree>(&self, doc: &T, out: &mut Vec<Violation>) {
        use ViolationCode::MissingProvenance as P;
        if self.options.require_tenant && !non_empty_str(doc.member("tenant")) {
            out.push(Violation::new(P, "/tenant", "tenant is missing or empty"));
        }
        if !non_empty_str(doc.member("_id")) {
            out.push(Violation::new(P, "/_id", "_id is missing or empty"));
        }
        check_source(doc.member("source"), out);
        let Some(upstream) = single_upstream(doc.member("upstream"), out) else {
            return;
        };
        check_upstream_fields(upstream, out);
        self.check_signature(upstream, out);
    }

    /// The upstream signature metadata: `present` always; `format` and `sig` when present, or
    /// when the options require a signature.
    fn check_signature<T: JsonTree>(&self, upstream: &T, out: &mut Vec<Violation>) {
        use ViolationCode::MissingProvenance as P;
        match upstream.member("signature").filter(|s| s.is_object()) {
            Some(sig) => match sig.member("present").and_then(T::as_bool) {
                None => out.push(Violation::new(
                    P,
                    "/upstream/signature/present",
                    "signature.present is missing",
                )),
                Some(present) => {
                    if present || self.options.require_signature {
                        for field in ["format", "sig"] {
                            if !non_empty_str(sig.member(field)) {
                                out.push(missing_signature_field(present, field));
                            }
                        }
                    }
                }
            },
            None => out.push(Violation::new(
                P,
                "/upstream/signature",
                "signature metadata is missing",
            )),
        }
    }

    fn check_content<T: JsonTree>(&mut self, doc: &T, verify_hash: bool, out: &mut Vec<Violation>) {
        let content = doc.member("content");
        let content = match (content, content.and_then(T::array_len)) {
            (_, Some(n)) if n > 1 => {
                out.push(Violation::new(
                    ViolationCode::Merge,
                    "/content",
                    format!("document carries {n} upstream contents"),
                ));
                return;
            }
            (Some(c), _) if c.is_object() => c,
            _ => {
                out.push(Violation::new(
                    ViolationCode::MissingProvenance,
                    "/content",
                    "content is missing or not an object",
                ));
                return;
            }
        };
        if !non_empty_str(content.member("format")) {
            out.push(Violation::new(
                ViolationCode::MissingProvenance,
                "/content/format",
                "content.format is missing",
            ));
        }
        let Some(raw) = content.member("raw") else {
            out.push(Violation::new(
                ViolationCode::MissingProvenance,
                "/content/raw",
                "content.raw is missing",
            ));
            return;
        };
        if !verify_hash {
            return;
        }
        let Some(claimed) = pointer(doc, "/upstream/content_hash")
            .and_then(T::as_str)
            .filter(|h| is_content_hash(h))
        else {
            return; // already reported as missing provenance
        };
        // Only a tree that keeps repeated keys (not a `Value`) can lack a canonical form.
        let actual = content_hash_tree(raw, &mut self.buf)
            .unwrap_or_else(|| "none (content.raw repeats a key)".into());
        if actual != claimed {
            out.push(Violation::new(
                ViolationCode::HashMismatch,
                "/upstream/content_hash",
                format!("content_hash {claimed} does not match content.raw ({actual})"),
            ));
        }
    }
}

/// `source`: one object with a non-empty vendor, connector and version.
fn check_source<T: JsonTree>(source: Option<&T>, out: &mut Vec<Violation>) {
    use ViolationCode::{Merge, MissingProvenance as P};
    match (source, source.and_then(T::array_len)) {
        (_, Some(n)) if n > 1 => {
            out.push(Violation::new(
                Merge,
                "/source",
                format!("document carries {n} sources"),
            ));
        }
        (Some(source), _) if source.is_object() => {
            for field in ["vendor", "connector", "version"] {
                let value = source.member(field);
                match value.and_then(T::array_len) {
                    Some(n) if n > 1 => {
                        out.push(Violation::new(
                            Merge,
                            format!("/source/{field}"),
                            format!("document carries {n} values for source.{field}"),
                        ));
                    }
                    _ if !non_empty_str(value) => out.push(Violation::new(
                        P,
                        format!("/source/{field}"),
                        format!("source.{field} is missing or empty"),
                    )),
                    _ => {}
                }
            }
        }
        _ => out.push(Violation::new(
            P,
            "/source",
            "source is missing or not an object",
        )),
    }
}

/// `upstream`: one object, else a violation and `None`.
fn single_upstream<'t, T: JsonTree>(
    upstream: Option<&'t T>,
    out: &mut Vec<Violation>,
) -> Option<&'t T> {
    use ViolationCode::{Merge, MissingProvenance as P};
    match (upstream, upstream.and_then(T::array_len)) {
        (_, Some(n)) if n > 1 => {
            out.push(Violation::new(
                Merge,
                "/upstream",
                format!("document carries {n} upstream records"),
            ));
            None
        }
        (Some(u), _) if u.is_object() => Some(u),
        _ => {
            out.push(Violation::new(
                P,
                "/upstream",
                "upstream is missing or not an object",
            ));
            None
        }
    }
}

/// The upstream record's id, content hash, retrieval time and document version, and the form
/// of the hash and the time.
fn check_upstream_fields<T: JsonTree>(upstream: &T, out: &mut Vec<Violation>) {
    use ViolationCode::MissingProvenance as P;
    for field in ["upstream_id", "content_hash", "retrieved_at"] {
        if !non_empty_str(upstream.member(field)) {
            out.push(Violation::new(
                P,
                format!("/upstream/{field}"),
                format!("upstream.{field} is missing or empty"),
            ));
        }
    }
    if !upstream
        .member("document_version")
        .is_some_and(|v| v.is_null() || v.as_str().is_some())
    {
        out.push(Violation::new(
            P,
            "/upstream/document_version",
            "upstream.document_version is missing",
        ));
    }
    if let Some(at) = upstream
        .member("retrieved_at")
        .and_then(T::as_str)
        .filter(|s| !s.is_empty())
    {
        if !is_rfc3339_utc(at) {
            out.push(Violation::new(
                P,
                "/upstream/retrieved_at",
                format!("retrieved_at `{at}` is not RFC 3339 UTC"),
            ));
        }
    }
    if let Some(hash) = upstream
        .member("content_hash")
        .and_then(T::as_str)
        .filter(|s| !s.is_empty())
    {
        if !is_content_hash(hash) {
            out.push(Violation::new(
                P,
                "/upstream/content_hash",
                format!("content_hash `{hash}` is not sha256:<64 lowercase hex>"),
            ));
        }
    }
}

/// A signature field missing where the signature is present, or required: one rule, whether
/// the document is typed or a value.
fn missing_signature_field(present: bool, field: &str) -> Violation {
    let why = if present {
        "signature is present but"
    } else {
        "signatures are required and"
    };
    Violation::new(
        ViolationCode::MissingProvenance,
        format!("/upstream/signature/{field}"),
        format!("{why} signature.{field} is missing"),
    )
}

/// `supersedes` must be null or the `_id` of another revision of the same upstream document.
fn check_supersedes<T: JsonTree>(doc: &T, out: &mut Vec<Violation>) {
    let Some(prev) = doc.member("supersedes") else {
        out.push(Violation::new(
            ViolationCode::Idempotency,
            "/supersedes",
            "supersedes is missing (null for a first revision)",
        ));
        return;
    };
    let prev = match prev.json() {
        Json::Null => return,
        Json::String(s) | Json::PlainString(s) => s,
        _ => {
            out.push(Violation::new(
                ViolationCode::Idempotency,
                "/supersedes",
                "supersedes is neither null nor an _id",
            ));
            return;
        }
    };
    if doc.member("_id").and_then(T::as_str) == Some(prev) {
        out.push(Violation::new(
            ViolationCode::Idempotency,
            "/supersedes",
            "document supersedes itself",
        ));
        return;
    }
    let vendor = pointer(doc, "/source/vendor").and_then(T::as_str);
    let upstream_id = pointer(doc, "/upstream/upstream_id").and_then(T::as_str);
    if let (Some(vendor), Some(upstream_id)) = (vendor, upstream_id) {
        let prefix = format!("advisory_raw:{vendor}:{upstream_id}:");
        if !prev.starts_with(&prefix) {
            out.push(Violation::new(
                ViolationCode::Idempotency,
                "/supersedes",
                format!("supersedes `{prev}` is not a revision of {vendor}:{upstream_id}"),
            ));
        }
    }
}

fn non_empty_str<T: JsonTree>(v: Option<&T>) -> bool {
    v.and_then(T::as_str).is_some_and(|s| !s.trim().is_empty())
}

/// RFC 3339 with a UTC offset (`Z` or `+00:00`).
pub fn is_rfc3339_utc(s: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339).is_ok_and(|t| t.offset().is_utc())
}

#[cfg(test)]
mod mapped_tests {
    use super::*;
    use crate::model::{Identifiers, Linkset, Signature, Source, Upstream};

    fn mapped() -> RawDocument {
        let s = |x: &str| x.to_owned();
        RawDocument {
            id: s("advisory_raw:rustsec:RUSTSEC-2024-0001:0123456789abcdef"),
            tenant: s("t"),
            source: Source {
                vendor: s("rustsec"),
                connector: s("stella-osv"),
                version: s("1"),
            },
            upstream: Upstream {
                upstream_id: s("RUSTSEC-2024-0001"),
                document_version: Some(s("2024-01-01T00:00:00Z")),
                retrieved_at: s("2024-01-02T00:00:00Z"),
                content_hash: crate::canonical::content_hash(&serde_json::json!({"id": 1})),
                signature: Signature::default(),
            },
            format: s("OSV"),
            spec_version: None,
            raw: serde_json::json!({"id": 1}),
            identifiers: Identifiers::default(),
            linkset: Linkset::default(),
            supersedes: None,
            ingested_at: s("2024-01-03T00:00:00Z"),
        }
    }

    /// Every rule that a mapped document's values can break, alone and together, with and
    /// without the signature requirement: the typed check says exactly what the guard says of
    /// the document's JSON.
    #[test]
    fn the_typed_check_of_a_mapped_document_agrees_with_the_guard_on_its_json() {
        type Edit = fn(&mut RawDocument);
        let edits: Vec<Edit> = vec![
            |_| {},
            |d| d.tenant = " ".into(),
            |d| d.id.clear(),
            |d| d.source.vendor.clear(),
            |d| d.source.connector = "\t".into(),
            |d| d.source.version.clear(),
            |d| d.upstream.upstream_id.clear(),
            |d| d.upstream.content_hash.clear(),
            |d| d.upstream.content_hash = "sha256:XYZ".into(),
            |d| d.upstream.retrieved_at.clear(),
            |d| d.upstream.retrieved_at = " ".into(),
            |d| d.upstream.retrieved_at = "yesterday".into(),
            |d| d.upstream.retrieved_at = "2024-01-02T00:00:00+02:00".into(),
            |d| d.upstream.document_version = None,
            |d| d.upstream.signature.present = true,
            |d| {
                d.upstream.signature = Signature {
                    present: true,
                    format: Some("cms".into()),
                    key_id: None,
                    sig: Some(" ".into()),
                }
            },
            |d| {
                d.upstream.signature = Signature {
                    present: false,
                    format: Some("cms".into()),
                    key_id: Some("k".into()),
                    sig: Some("AAA=".into()),
                }
            },
            |d| d.format.clear(),
            |d| d.supersedes = Some(d.id.clone()),
            |d| d.supersedes = Some("advisory_raw:rustsec:RUSTSEC-2024-0001:ffff".into()),
            |d| d.supersedes = Some("advisory_raw:other:X:ffff".into()),
            |d| {
                d.tenant.clear();
                d.format.clear();
                d.upstream.retrieved_at = "nope".into();
                d.supersedes = Some("elsewhere".into());
            },
        ];
        for require_signature in [false, true] {
            for require_tenant in [true, false] {
                let options = GuardOptions {
                    require_tenant,
                    require_signature,
                    verify_hash: true,
                };
                let mut guard = Guard::new(options);
                for (i, edit) in edits.iter().enumerate() {
                    let mut doc = mapped();
                    edit(&mut doc);
                    assert_eq!(
                        guard.check_mapped(&doc),
                        guard.check_fresh(&doc.clone().into_value()),
                        "edit {i}, {options:?}"
                    );
                }
            }
        }
    }
}
