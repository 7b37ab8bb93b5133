//! Prometheus text exposition (`--metrics FILE`) with the metric names the README lists (codes: docs/ARCHITECTURE.md §4.1).

use std::collections::BTreeMap;
use std::fmt::Write;

/// Counters and timings gathered during a run, rendered once at the end in a stable order.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (source, tenant, result) → count; result is ok | noop | reject.
    pub writes: BTreeMap<(String, String, &'static str), u64>,
    /// (source, tenant, code) → count.
    pub violations: BTreeMap<(String, String, &'static str), u64>,
    /// phase → (seconds, observations).
    pub latency: BTreeMap<&'static str, (f64, u64)>,
    /// (source, tenant) → stored revisions.
    pub revisions: BTreeMap<(String, String), i64>,
    pub verify_runs: u64,
    pub verify_seconds: Option<f64>,
}

impl Metrics {
    pub fn write(&mut self, source: &str, tenant: &str, result: &'static str) {
        *self
            .writes
            .entry((source.to_owned(), tenant.to_owned(), result))
            .or_default() += 1;
    }

    pub fn violation(&mut self, source: &str, tenant: &str, code: &'static str) {
        *self
            .violations
            .entry((source.to_owned(), tenant.to_owned(), code))
            .or_default() += 1;
    }

    pub fn observe(&mut self, phase: &'static str, seconds: f64) {
        let e = self.latency.entry(phase).or_default();
        e.0 += seconds;
        e.1 += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        if !self.writes.is_empty() {
            out.push_str("# HELP ingestion_write_total Raw documents handled by ingestion, by result.\n# TYPE ingestion_write_total counter\n");
            for ((source, tenant, result), n) in &self.writes {
                let _ = writeln!(
                    out,
                    "ingestion_write_total{{source=\"{}\",tenant=\"{}\",result=\"{result}\"}} {n}",
                    esc(source),
                    esc(tenant)
                );
            }
        }
        out.push_str("# HELP aoc_violation_total AOC violations found, by code.\n# TYPE aoc_violation_total counter\n");
        for ((source, tenant, code), n) in &self.violations {
            let _ = writeln!(
                out,
                "aoc_violation_total{{source=\"{}\",tenant=\"{}\",code=\"{code}\"}} {n}",
                esc(source),
                esc(tenant)
            );
        }
        if !self.latency.is_empty() {
            out.push_str("# HELP ingestion_latency_seconds Time spent per ingestion phase.\n# TYPE ingestion_latency_seconds summary\n");
            for (phase, (secs, n)) in &self.latency {
                let _ = writeln!(
                    out,
                    "ingestion_latency_seconds_sum{{phase=\"{phase}\"}} {secs:.6}"
                );
                let _ = writeln!(
                    out,
                    "ingestion_latency_seconds_count{{phase=\"{phase}\"}} {n}"
                );
            }
        }
        if !self.revisions.is_empty() {
            out.push_str("# HELP advisory_revision_count Stored raw revisions.\n# TYPE advisory_revision_count gauge\n");
            for ((source, tenant), n) in &self.revisions {
                let _ = writeln!(
                    out,
                    "advisory_revision_count{{source=\"{}\",tenant=\"{}\"}} {n}",
                    esc(source),
                    esc(tenant)
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
