//! Turns input records into raw documents checked by the guard, or into rejections with reasons.

use crate::input::{InputRecord, Item};
use aoc_contract::mapping::{source_vendor, vendor_from_id};
use aoc_contract::{
    map_document, Guard, GuardOptions, MapContext, RawDocument, UpstreamKey, Violation,
};
use aoc_store::StoreDoc;
use serde_json::Value;

/// A raw document that passed the guard.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// Mapped here from an upstream document: typed, never built as a JSON value on the way to
    /// the store.
    Mapped(Box<RawDocument>),
    /// Read as a raw document (an export, a dataset).
    Raw(Value),
}

impl Document {
    /// The document as JSON.
    pub fn into_value(self) -> Value {
        match self {
            Document::Mapped(doc) => doc.into_value(),
            Document::Raw(doc) => doc,
        }
    }

    /// The document as the store writes it.
    pub fn to_store(&self) -> Result<StoreDoc, String> {
        match self {
            Document::Mapped(doc) => StoreDoc::from_mapped(doc),
            Document::Raw(doc) => StoreDoc::from_value(doc),
        }
    }
}

/// The result of preparing one input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// A raw document that passed the guard, ready to append.
    Doc { location: String, doc: Document },
    /// An upstream deletion, to be recorded (never applied as a delete). `recorded_at` is the
    /// feed's own time (so re-running is a no-op), or the run clock when the feed has none.
    Deleted {
        location: String,
        key: UpstreamKey,
        recorded_at: String,
    },
    /// Refused: the input could not be read or mapped (`error`), or the guard found violations.
    Rejected {
        location: String,
        error: Option<String>,
        violations: Vec<Violation>,
        doc: Option<Value>,
    },
}

/// Maps and guards records with one context; keep one per thread (it owns scratch buffers), and
/// [`Clone`] it for another.
pub struct Preparer {
    ctx: MapContext,
    /// `ctx` with the retrieval time of the feed line mapped last (feeds give one time to many
    /// lines in a row: the time is normalised and the context copied once per change).
    feed_ctx: Option<(String, MapContext)>,
    guard: Guard,
    buf: Vec<u8>,
}

impl Clone for Preparer {
    fn clone(&self) -> Self {
        Preparer::new(self.ctx.clone(), self.guard.options)
    }
}

impl Preparer {
    pub fn new(ctx: MapContext, options: GuardOptions) -> Self {
        Preparer {
            ctx,
            feed_ctx: None,
            guard: Guard::new(options),
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    pub fn context(&self) -> &MapContext {
        &self.ctx
    }

    /// Parses (an unparsed line), maps (an upstream document) and guards one record; a record its
    /// reader verified ([`Item::Verified`]) is not guarded again.
    pub fn prepare(&mut self, record: InputRecord) -> Prepared {
        let InputRecord { location, item } = record;
        match item.parse() {
            Item::Json(_) => unreachable!("parse() classifies unparsed values"),
            Item::Verified(stored) => Prepared::Doc {
                location,
                doc: Document::Raw(stored.to_value()),
            },
            Item::Upstream { doc, retrieved_at } => {
                let mapped = match retrieved_at {
                    Some(at) => {
                        if self.feed_ctx.as_ref().is_none_or(|(last, _)| *last != at) {
                            let ctx = MapContext {
                                retrieved_at: normalise_utc(&at),
                                ..self.ctx.clone()
                            };
                            self.feed_ctx = Some((at, ctx));
                        }
                        let (_, ctx) = self.feed_ctx.as_ref().expect("set above");
                        map_document(doc, ctx, &mut self.buf)
                    }
                    None => map_document(doc, &self.ctx, &mut self.buf),
                };
                match mapped {
                    // The hash was computed while mapping; the guard checks everything else, on
                    // the typed document.
                    Ok(raw) => match self.guard.check_mapped(&raw) {
                        violations if violations.is_empty() => Prepared::Doc {
                            location,
                            doc: Document::Mapped(Box::new(raw)),
                        },
                        violations => Prepared::Rejected {
                            location,
                            error: None,
                            violations,
                            doc: Some(raw.into_value()),
                        },
                    },
                    Err(e) => Prepared::Rejected {
                        location,
                        error: Some(e.to_string()),
                        violations: Vec::new(),
                        doc: None,
                    },
                }
            }
            Item::Raw(doc) => {
                let violations = self.guard.check(&doc);
                self.finish(location, doc, violations)
            }
            Item::Deleted {
                upstream_id: Some(upstream_id),
                at,
                ..
            } => {
                let derived = || vendor_from_id(&upstream_id);
                match source_vendor(self.ctx.vendor.as_ref(), derived, &upstream_id) {
                    Ok(vendor) => Prepared::Deleted {
                        location,
                        key: UpstreamKey {
                            tenant: self.ctx.tenant.clone(),
                            vendor,
                            upstream_id,
                        },
                        recorded_at: at
                            .map_or_else(|| self.ctx.ingested_at.clone(), |a| normalise_utc(&a)),
                    },
                    Err(e) => Prepared::Rejected {
                        location,
                        error: Some(e.to_string()),
                        violations: Vec::new(),
                        doc: None,
                    },
                }
            }
            Item::Deleted {
                upstream_id: None, ..
            } => Prepared::Rejected {
                location,
                error: Some("deletion record without an upstream id".into()),
                violations: Vec::new(),
                doc: None,
            },
            Item::Broken(error) => Prepared::Rejected {
                location,
                error: Some(error),
                violations: Vec::new(),
                doc: None,
            },
        }
    }

    fn finish(&self, location: String, doc: Value, violations: Vec<Violation>) -> Prepared {
        if violations.is_empty() {
            Prepared::Doc {
                location,
                doc: Document::Raw(doc),
            }
        } else {
            Prepared::Rejected {
                location,
                error: None,
                violations,
                doc: Some(doc),
            }
        }
    }
}

/// Feeds give offsets such as `+02:00`; the contract stores RFC 3339 UTC.
fn normalise_utc(at: &str) -> String {
    match aoc_contract::clock::parse_rfc3339(at) {
        Some(epoch) => aoc_contract::clock::rfc3339(epoch),
        None => at.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn preparer(vendor: Option<&str>) -> Preparer {
        let ctx = MapContext {
            tenant: "t".into(),
            vendor: vendor.map(str::to_owned),
            connector_version: "1".into(),
            retrieved_at: "2026-01-01T00:00:00Z".into(),
            ingested_at: "2026-01-02T00:00:00Z".into(),
        };
        Preparer::new(ctx, GuardOptions::default())
    }

    fn deleted(upstream_id: &str) -> InputRecord {
        InputRecord {
            location: "feed:1".into(),
            item: Item::Deleted {
                path: format!("{upstream_id}.json"),
                at: None,
                upstream_id: Some(upstream_id.into()),
            },
        }
    }

    fn upstream(id: &str) -> InputRecord {
        InputRecord {
            location: "feed:2".into(),
            item: Item::Upstream {
                doc: json!({"id": id, "modified": "2026-01-01T00:00:00Z"}),
                retrieved_at: None,
            },
        }
    }

    /// A document and a deletion take their vendor by one rule: the one given, else the one the
    /// upstream id names; neither is accepted without one.
    #[test]
    fn documents_and_deletions_without_a_vendor_are_rejected_with_the_reason() {
        let mut derived = preparer(None);
        assert!(matches!(
            derived.prepare(deleted("GO-2022-0113")),
            Prepared::Deleted { key, .. } if key.vendor == "go"
        ));
        assert!(matches!(
            derived.prepare(upstream("GO-2022-0113")),
            Prepared::Doc { .. }
        ));
        for record in [deleted("-2O0G21-0113"), upstream("-2O0G21-0113")] {
            match derived.prepare(record) {
                Prepared::Rejected { error: Some(e), .. } => {
                    assert!(e.contains("names no source vendor"), "{e}")
                }
                _ => panic!("accepted without a vendor"),
            }
        }
        let mut given = preparer(Some("osv"));
        assert!(matches!(
            given.prepare(deleted("-2O0G21-0113")),
            Prepared::Deleted { key, .. } if key.vendor == "osv"
        ));
        assert!(matches!(
            given.prepare(upstream("-2O0G21-0113")),
            Prepared::Doc { .. }
        ));
    }
}
