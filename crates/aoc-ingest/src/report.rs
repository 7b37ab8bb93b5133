//! The reports `stella` writes, as types: the backfill run report (`--report`), the verify report
//! (`--output`, filled by [`crate::verify`]) and the metrics (`--metrics`, rendered as Prometheus
//! text). Whoever reads them (the rehearsal) deserializes these same types, so a renamed field
//! fails to compile, not at run time.

use aoc_contract::{Violation, ViolationCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Counts per AOC code, every code present (zeros included) in code order.
pub fn zero_by_code() -> BTreeMap<String, u64> {
    ViolationCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), 0))
        .collect()
}

/// `stella aoc backfill --report`. The dry-run report has no timings, so its SHA-256 is
/// reproducible. Accounting: `records = written + noop + rejected + deletions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillReport {
    pub tool: String,
    pub version: String,
    pub dry_run: bool,
    /// The store URL, password redacted.
    pub store: String,
    pub tenant: String,
    pub inputs: Vec<String>,
    /// Released datasets among the inputs, verified before loading: (path, hash).
    pub datasets: Vec<(String, String)>,
    /// Files in the input directories left out by their name (not `.json`, `.ndjson`, `.jsonl`).
    #[serde(default)]
    pub files_skipped: u64,
    /// Input records consumed, by this run and the interrupted runs it resumed.
    pub records: u64,
    /// Input records this run read itself: a resumed run does not read again what was committed.
    pub read: u64,
    pub written: u64,
    pub noop: u64,
    pub rejected: u64,
    pub deletions: u64,
    pub conflicts: u64,
    pub resumed_after_records: u64,
    pub stopped: Option<String>,
    pub by_code: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Peak resident memory of the runner (Linux `VmHWM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// One violation with the document it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub location: String,
    pub id: Option<String>,
    #[serde(flatten)]
    pub violation: Violation,
}

/// An input that could not be read as a document: reported, never hiding other results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    pub location: String,
    pub message: String,
}

/// `stella aoc verify --output`: stable field and entry order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyReport {
    pub tool: String,
    pub version: String,
    pub source: String,
    pub tenant: Option<String>,
    pub since: Option<String>,
    pub documents_checked: u64,
    pub documents_skipped: u64,
    /// Files in the input directories left out by their name (not `.json`, `.ndjson`, `.jsonl`).
    #[serde(default)]
    pub files_skipped: u64,
    pub upstream_documents: u64,
    pub documents_with_violations: u64,
    pub violations_total: u64,
    pub by_code: BTreeMap<String, u64>,
    pub violations: Vec<Finding>,
    pub input_errors: Vec<InputError>,
    /// Append-only triggers missing or disabled in a checked store: it no longer enforces the
    /// contract even if every row is intact (counts as a violation for the exit code).
    pub store_guards_missing: Vec<String>,
    pub duration_seconds: f64,
}

impl VerifyReport {
    /// Every document read and intact: no violation, no input error, every append-only trigger
    /// of a checked store in place.
    pub fn passed(&self) -> bool {
        self.violations_total == 0
            && self.input_errors.is_empty()
            && self.store_guards_missing.is_empty()
    }
}

/// One counter of `ingestion_write_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteCount {
    pub source: String,
    pub tenant: String,
    /// `ok`, `noop` or `reject`.
    pub result: String,
    pub count: u64,
}

/// One counter of `aoc_violation_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ViolationCount {
    pub source: String,
    pub tenant: String,
    pub code: String,
    pub count: u64,
}

/// One phase of `ingestion_latency_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub phase: String,
    pub seconds: f64,
    pub count: u64,
}

/// One gauge of `advisory_revision_count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionCount {
    pub source: String,
    pub tenant: String,
    pub revisions: i64,
}

/// `--metrics`: what a run counted, rendered as Prometheus text by [`Metrics::render`] with the
/// metric names the README lists, entries in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub writes: Vec<WriteCount>,
    pub violations: Vec<ViolationCount>,
    pub latency: Vec<Latency>,
    pub revisions: Vec<RevisionCount>,
    pub verify_runs: u64,
    pub verify_seconds: Option<f64>,
}

/// Gathers [`Metrics`] cheaply while a run goes (keys built once, not per document).
#[derive(Debug, Default)]
pub struct MetricsRecorder {
    writes: Counters,
    violations: Counters,
    latency: BTreeMap<&'static str, (f64, u64)>,
    revisions: BTreeMap<(String, String), i64>,
    verify_runs: u64,
    verify_seconds: Option<f64>,
}

impl MetricsRecorder {
    pub fn write(&mut self, source: &str, tenant: &str, result: &'static str) {
        bump(&mut self.writes, source, tenant, result);
    }

    pub fn violation(&mut self, source: &str, tenant: &str, code: &'static str) {
        bump(&mut self.violations, source, tenant, code);
    }

    pub fn observe(&mut self, phase: &'static str, seconds: f64) {
        let e = self.latency.entry(phase).or_default();
        e.0 += seconds;
        e.1 += 1;
    }

    pub fn revisions(&mut self, source: String, tenant: String, revisions: i64) {
        self.revisions.insert((source, tenant), revisions);
    }

    pub fn verify_run(&mut self, seconds: f64) {
        self.verify_runs += 1;
        self.verify_seconds = Some(seconds);
    }

    pub fn finish(self) -> Metrics {
        Metrics {
            writes: flatten(self.writes)
                .map(|(source, tenant, result, count)| WriteCount {
                    source,
                    tenant,
                    result: result.to_owned(),
                    count,
                })
                .collect(),
            violations: flatten(self.violations)
                .map(|(source, tenant, code, count)| ViolationCount {
                    source,
                    tenant,
                    code: code.to_owned(),
                    count,
                })
                .collect(),
            latency: self
                .latency
                .into_iter()
                .map(|(phase, (seconds, count))| Latency {
                    phase: phase.to_owned(),
                    seconds,
                    count,
                })
                .collect(),
            revisions: self
                .revisions
                .into_iter()
                .map(|((source, tenant), revisions)| RevisionCount {
                    source,
                    tenant,
                    revisions,
                })
                .collect(),
            verify_runs: self.verify_runs,
            verify_seconds: self.verify_seconds,
        }
    }
}

/// source → tenant → label → count: looked up by `&str`, so a key is allocated once.
type Counters = BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, u64>>>;

/// Adds one to a (source, tenant, label) counter.
fn bump(map: &mut Counters, source: &str, tenant: &str, label: &'static str) {
    if !map.contains_key(source) {
        map.insert(source.to_owned(), BTreeMap::new());
    }
    let tenants = map.get_mut(source).expect("inserted above");
    if !tenants.contains_key(tenant) {
        tenants.insert(tenant.to_owned(), BTreeMap::new());
    }
    *tenants
        .get_mut(tenant)
        .expect("inserted above")
        .entry(label)
        .or_default() += 1;
}

/// The counters in (source, tenant, label) order.
fn flatten(map: Counters) -> impl Iterator<Item = (String, String, &'static str, u64)> {
    map.into_iter().flat_map(|(source, tenants)| {
        tenants.into_iter().flat_map(move |(tenant, labels)| {
            let source = source.clone();
            labels
                .into_iter()
                .map(move |(label, n)| (source.clone(), tenant.clone(), label, n))
        })
    })
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        if !self.writes.is_empty() {
            out.push_str("# HELP ingestion_write_total Raw documents handled by ingestion, by result.\n# TYPE ingestion_write_total counter\n");
            for w in &self.writes {
                let _ = writeln!(
                    out,
                    "ingestion_write_total{{source=\"{}\",tenant=\"{}\",result=\"{}\"}} {}",
                    esc(&w.source),
                    esc(&w.tenant),
                    w.result,
                    w.count
                );
            }
        }
        out.push_str("# HELP aoc_violation_total AOC violations found, by code.\n# TYPE aoc_violation_total counter\n");
        for v in &self.violations {
            let _ = writeln!(
                out,
                "aoc_violation_total{{source=\"{}\",tenant=\"{}\",code=\"{}\"}} {}",
                esc(&v.source),
                esc(&v.tenant),
                v.code,
                v.count
            );
        }
        if !self.latency.is_empty() {
            out.push_str("# HELP ingestion_latency_seconds Time spent per ingestion phase.\n# TYPE ingestion_latency_seconds summary\n");
            for l in &self.latency {
                let _ = writeln!(
                    out,
                    "ingestion_latency_seconds_sum{{phase=\"{}\"}} {:.6}",
                    l.phase, l.seconds
                );
                let _ = writeln!(
                    out,
                    "ingestion_latency_seconds_count{{phase=\"{}\"}} {}",
                    l.phase, l.count
                );
            }
        }
        if !self.revisions.is_empty() {
            out.push_str("# HELP advisory_revision_count Stored raw revisions.\n# TYPE advisory_revision_count gauge\n");
            for r in &self.revisions {
                let _ = writeln!(
                    out,
                    "advisory_revision_count{{source=\"{}\",tenant=\"{}\"}} {}",
                    esc(&r.source),
                    esc(&r.tenant),
                    r.revisions
                );
            }
        }
        if self.verify_runs > 0 {
            let _ = writeln!(out, "# HELP verify_runs_total AOC verify runs.\n# TYPE verify_runs_total counter\nverify_runs_total {}", self.verify_runs);
        }
        if let Some(s) = self.verify_seconds {
            let _ = writeln!(out, "# HELP verify_duration_seconds Duration of the AOC verify run.\n# TYPE verify_duration_seconds gauge\nverify_duration_seconds {s:.6}");
        }
        out
    }
}
