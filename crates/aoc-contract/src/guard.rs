//! The AOC guard: checks one raw document and returns every violation, in a stable order.

use crate::canonical::{content_hash_with, is_content_hash};
use crate::model::{pointer, ALLOWED_TOP_LEVEL};
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
    /// (the mapper): everything but recomputing that hash, whatever `options.verify_hash` says.
    pub fn check_fresh(&mut self, doc: &Value) -> Vec<Violation> {
        self.check_inner(doc, false)
    }

    fn check_inner(&mut self, doc: &Value, verify_hash: bool) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(map) = doc.as_object() else {
            out.push(Violation::new(
                ViolationCode::MissingProvenance,
                "",
                "raw document is not a JSON object",
            ));
            return out;
        };
        for key in map.keys() {
            if ALLOWED_TOP_LEVEL.contains(&key.as_str()) {
                continue;
            }
            let path = format!("/{}", crate::mapping::escape_pointer_token(key));
            if key.starts_with("effective_finding_") {
                out.push(Violation::new(
                    ViolationCode::DerivedFinding,
                    path,
                    format!("derived finding `{key}` written by ingestion"),
                ));
            } else if FORBIDDEN_TOP_LEVEL.contains(&key.as_str()) || key.starts_with("effective_") {
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

    fn check_provenance(&self, doc: &Value, out: &mut Vec<Violation>) {
        use ViolationCode::{Merge, MissingProvenance as P};
        if self.options.require_tenant && !non_empty_str(doc.get("tenant")) {
            out.push(Violation::new(P, "/tenant", "tenant is missing or empty"));
        }
        if !non_empty_str(doc.get("_id")) {
            out.push(Violation::new(P, "/_id", "_id is missing or empty"));
        }
        match doc.get("source") {
            Some(Value::Array(sources)) if sources.len() > 1 => {
                out.push(Violation::new(
                    Merge,
                    "/source",
                    format!("document carries {} sources", sources.len()),
                ));
            }
            Some(Value::Object(source)) => {
                for field in ["vendor", "connector", "version"] {
                    match source.get(field) {
                        Some(Value::Array(v)) if v.len() > 1 => {
                            out.push(Violation::new(
                                Merge,
                                format!("/source/{field}"),
                                format!("document carries {} values for source.{field}", v.len()),
                            ));
                        }
                        v if !non_empty_str(v) => out.push(Violation::new(
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
        let upstream = match doc.get("upstream") {
            Some(Value::Array(ups)) if ups.len() > 1 => {
                out.push(Violation::new(
                    Merge,
                    "/upstream",
                    format!("document carries {} upstream records", ups.len()),
                ));
                return;
            }
            Some(u @ Value::Object(_)) => u,
            _ => {
                out.push(Violation::new(
                    P,
                    "/upstream",
                    "upstream is missing or not an object",
                ));
                return;
            }
        };
        for field in ["upstream_id", "content_hash", "retrieved_at"] {
            if !non_empty_str(upstream.get(field)) {
                out.push(Violation::new(
                    P,
                    format!("/upstream/{field}"),
                    format!("upstream.{field} is missing or empty"),
                ));
            }
        }
        if !upstream
            .get("document_version")
            .is_some_and(|v| v.is_null() || v.is_string())
        {
            out.push(Violation::new(
                P,
                "/upstream/document_version",
                "upstream.document_version is missing",
            ));
        }
        if let Some(at) = upstream
            .get("retrieved_at")
            .and_then(Value::as_str)
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
            .get("content_hash")
            .and_then(Value::as_str)
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
        match upstream.get("signature") {
            Some(Value::Object(sig)) => match sig.get("present").and_then(Value::as_bool) {
                None => out.push(Violation::new(
                    P,
                    "/upstream/signature/present",
                    "signature.present is missing",
                )),
                Some(present) => {
                    if present || self.options.require_signature {
                        for field in ["format", "sig"] {
                            if !non_empty_str(sig.get(field)) {
                                let why = if present {
                                    "signature is present but"
                                } else {
                                    "signatures are required and"
                                };
                                out.push(Violation::new(
                                    P,
                                    format!("/upstream/signature/{field}"),
                                    format!("{why} signature.{field} is missing"),
                                ));
                            }
                        }
                    }
                }
            },
            _ => out.push(Violation::new(
                P,
                "/upstream/signature",
                "signature metadata is missing",
            )),
        }
    }

    fn check_content(&mut self, doc: &Value, verify_hash: bool, out: &mut Vec<Violation>) {
        let content = match doc.get("content") {
            Some(Value::Array(items)) if items.len() > 1 => {
                out.push(Violation::new(
                    ViolationCode::Merge,
                    "/content",
                    format!("document carries {} upstream contents", items.len()),
                ));
                return;
            }
            Some(c @ Value::Object(_)) => c,
            _ => {
                out.push(Violation::new(
                    ViolationCode::MissingProvenance,
                    "/content",
                    "content is missing or not an object",
                ));
                return;
            }
        };
        if !non_empty_str(content.get("format")) {
            out.push(Violation::new(
                ViolationCode::MissingProvenance,
                "/content/format",
                "content.format is missing",
            ));
        }
        let Some(raw) = content.get("raw") else {
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
            .and_then(Value::as_str)
            .filter(|h| is_content_hash(h))
        else {
            return; // already reported as missing provenance
        };
        let actual = content_hash_with(raw, &mut self.buf);
        if actual != claimed {
            out.push(Violation::new(
                ViolationCode::HashMismatch,
                "/upstream/content_hash",
                format!("content_hash {claimed} does not match content.raw ({actual})"),
            ));
        }
    }
}

/// `supersedes` must be null or the `_id` of another revision of the same upstream document.
fn check_supersedes(doc: &Value, out: &mut Vec<Violation>) {
    let Some(prev) = doc.get("supersedes") else {
        out.push(Violation::new(
            ViolationCode::Idempotency,
            "/supersedes",
            "supersedes is missing (null for a first revision)",
        ));
        return;
    };
    let prev = match prev {
        Value::Null => return,
        Value::String(s) => s,
        _ => {
            out.push(Violation::new(
                ViolationCode::Idempotency,
                "/supersedes",
                "supersedes is neither null nor an _id",
            ));
            return;
        }
    };
    if doc.get("_id").and_then(Value::as_str) == Some(prev.as_str()) {
        out.push(Violation::new(
            ViolationCode::Idempotency,
            "/supersedes",
            "document supersedes itself",
        ));
        return;
    }
    let vendor = pointer(doc, "/source/vendor").and_then(Value::as_str);
    let upstream_id = pointer(doc, "/upstream/upstream_id").and_then(Value::as_str);
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

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// RFC 3339 with a UTC offset (`Z` or `+00:00`).
pub fn is_rfc3339_utc(s: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339).is_ok_and(|t| t.offset().is_utc())
}
