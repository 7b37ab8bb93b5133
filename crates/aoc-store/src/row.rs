//! What reads return: stored rows, scan filters and counts.

use crate::{Result, StoreError};
use aoc_contract::clock::parse_rfc3339;

/// One stored revision: its columns and the exact JSON bytes written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub tenant: String,
    pub vendor: String,
    pub upstream_id: String,
    /// 1-based, consecutive per (tenant, vendor, upstream_id).
    pub revision: i64,
    pub id: String,
    pub content_hash: String,
    pub supersedes: Option<String>,
    pub ingested_at: String,
    pub json: String,
}

impl StoredRow {
    /// Where the row lives, for reports: `advisory_raw/TENANT/VENDOR/UPSTREAM_ID#REVISION`.
    pub fn location(&self) -> String {
        format!(
            "{}/{}/{}/{}#{}",
            crate::RAW_TABLE,
            self.tenant,
            self.vendor,
            self.upstream_id,
            self.revision
        )
    }
}

/// Which rows a scan returns.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    pub tenant: Option<String>,
    /// RFC 3339: only rows whose `ingested_at` is at or after this instant.
    pub since: Option<String>,
}

impl ScanFilter {
    pub(crate) fn since_unix(&self) -> Result<Option<i64>> {
        self.since
            .as_deref()
            .map(|s| {
                parse_rfc3339(s).ok_or_else(|| {
                    StoreError::BadFilter(format!("since {s:?} is not an RFC 3339 timestamp"))
                })
            })
            .transpose()
    }
}

/// Documents per (tenant, vendor): `documents` is the `advisory_revision_count{source,tenant}`
/// metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCount {
    pub tenant: String,
    pub vendor: String,
    /// Stored revisions.
    pub documents: i64,
    /// Distinct upstream ids.
    pub upstream_documents: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub documents: i64,
    pub upstream_documents: i64,
    pub deletions: i64,
    /// Ordered by (tenant, vendor).
    pub by_source: Vec<SourceCount>,
}

impl StoreCounts {
    pub(crate) fn from_sources(by_source: Vec<SourceCount>, deletions: i64) -> StoreCounts {
        StoreCounts {
            documents: by_source.iter().map(|s| s.documents).sum(),
            upstream_documents: by_source.iter().map(|s| s.upstream_documents).sum(),
            deletions,
            by_source,
        }
    }
}

/// A raw row whose upstream key names no `upstreams` row: the upstream was deleted behind the
/// store's back, so scans (which join the two) can no longer see the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub upstream: i64,
    pub revision: i64,
    pub id: String,
}

impl Orphan {
    pub fn location(&self) -> String {
        format!(
            "{}/upstream-key-{}#{}",
            crate::RAW_TABLE,
            self.upstream,
            self.revision
        )
    }
}
