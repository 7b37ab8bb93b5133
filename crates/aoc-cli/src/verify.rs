//! `stella aoc verify`: the AOC guard and chain checks over raw documents; read-only.

use crate::output::{paint, pretty_json, write_atomic};
use crate::source::Source;
use crate::{check_inputs, Outcome};
use aoc_contract::chain::{ChainChecker, ChainEntry};
use aoc_contract::{clock, DocHead, Guard, GuardOptions, Violation, ViolationCode};
use aoc_ingest::Item;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Raw documents to check: JSON or NDJSON files, or directories of them.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Only documents ingested since this time (RFC 3339) or this long ago (`24h`, `7d`, `90m`).
    #[arg(long)]
    since: Option<String>,
    /// Only documents of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write one violation a line (NDJSON) here.
    #[arg(long)]
    ndjson: Option<PathBuf>,
    /// Check the configuration and inputs only; read no document.
    #[arg(long)]
    dry_run: bool,
    /// Print every violation to stderr.
    #[arg(long, short)]
    verbose: bool,
    /// Require upstream signature metadata.
    #[arg(long)]
    require_signature: bool,
}

/// One violation with the document it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub location: String,
    pub id: Option<String>,
    #[serde(flatten)]
    pub violation: Violation,
}

/// An input that could not be read as a document: reported, never hiding other results.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    pub location: String,
    pub message: String,
}

/// The verify report (`--output`): stable field and entry order.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub source: String,
    pub tenant: Option<String>,
    pub since: Option<String>,
    pub documents_checked: u64,
    pub documents_skipped: u64,
    pub upstream_documents: usize,
    pub documents_with_violations: usize,
    pub violations_total: usize,
    pub by_code: BTreeMap<&'static str, usize>,
    pub violations: Vec<Finding>,
    pub input_errors: Vec<InputError>,
    pub duration_seconds: f64,
}

/// Collects documents from any source and produces the report.
pub struct Verifier {
    guard: Guard,
    chains: ChainChecker,
    findings: Vec<Finding>,
    errors: Vec<InputError>,
    tenant: Option<String>,
    since: Option<(String, i64)>,
    checked: u64,
    skipped: u64,
    started: Instant,
}

impl Verifier {
    pub fn new(
        options: GuardOptions,
        tenant: Option<String>,
        since: Option<(String, i64)>,
    ) -> Self {
        // A time window sees only part of each chain: links into older revisions are expected.
        let partial = since.is_some();
        Verifier {
            guard: Guard::new(options),
            chains: ChainChecker::new(partial),
            findings: Vec::new(),
            errors: Vec::new(),
            tenant,
            since,
            checked: 0,
            skipped: 0,
            started: Instant::now(),
        }
    }

    /// Checks one document; `revision` when the source numbers revisions (a store).
    pub fn add(&mut self, location: String, doc: &Value, revision: Option<i64>) {
        if let Some(t) = &self.tenant {
            if doc.get("tenant").and_then(Value::as_str) != Some(t) {
                self.skipped += 1;
                return;
            }
        }
        if let Some((_, cutoff)) = &self.since {
            let at = doc
                .get("ingested_at")
                .and_then(Value::as_str)
                .and_then(clock::parse_rfc3339);
            if at.is_some_and(|at| at < *cutoff) {
                self.skipped += 1;
                return;
            }
        }
        self.checked += 1;
        let id = doc.get("_id").and_then(Value::as_str).map(str::to_owned);
        for violation in self.guard.check(doc) {
            self.findings.push(Finding {
                location: location.clone(),
                id: id.clone(),
                violation,
            });
        }
        if let Some(head) = DocHead::from_value(doc) {
            self.chains.push(ChainEntry {
                head,
                revision,
                location,
            });
        }
    }

    /// Adds a violation found outside the guard (e.g. a store row disagreeing with its document).
    pub fn add_finding(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn add_error(&mut self, location: String, message: String) {
        self.errors.push(InputError { location, message });
    }

    pub fn finish(self, source: String) -> Report {
        let upstream_documents = self.chains.upstream_documents();
        let mut findings = self.findings;
        findings.extend(self.chains.finish().into_iter().map(|c| Finding {
            location: c.location,
            id: Some(c.id),
            violation: c.violation,
        }));
        findings.sort();
        findings.dedup();
        let mut by_code: BTreeMap<&'static str, usize> =
            ViolationCode::ALL.iter().map(|c| (c.as_str(), 0)).collect();
        for f in &findings {
            *by_code.entry(f.violation.code.as_str()).or_default() += 1;
        }
        let mut docs: Vec<&str> = findings.iter().map(|f| f.location.as_str()).collect();
        docs.dedup();
        Report {
            tool: "stella",
            version: env!("CARGO_PKG_VERSION"),
            source,
            tenant: self.tenant,
            since: self.since.map(|(s, _)| s),
            documents_checked: self.checked,
            documents_skipped: self.skipped,
            upstream_documents,
            documents_with_violations: docs.len(),
            violations_total: findings.len(),
            by_code,
            violations: findings,
            input_errors: self.errors,
            duration_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// `--since`: RFC 3339, or a duration back from now (`90s`, `15m`, `24h`, `7d`, `2w`).
pub fn parse_since(s: &str) -> anyhow::Result<(String, i64)> {
    if let Some(epoch) = clock::parse_rfc3339(s) {
        return Ok((s.to_owned(), epoch));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        anyhow::anyhow!("--since {s:?}: expected RFC 3339 or a duration such as 24h")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => anyhow::bail!("--since {s:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cutoff = now - n * secs;
    Ok((clock::rfc3339(cutoff), cutoff))
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    check_inputs(&args.input)?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    for out in args.output.iter().chain(args.ndjson.iter()) {
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        anyhow::ensure!(
            dir.is_dir(),
            "output directory {} does not exist",
            dir.display()
        );
    }
    let mut reader = Source::open(&args.input)?;
    if args.dry_run {
        eprintln!(
            "stella: configuration ok: {} input path(s) readable; no document read (--dry-run)",
            args.input.len()
        );
        return Ok(Outcome::Clean);
    }
    let options = GuardOptions {
        require_signature: args.require_signature,
        ..GuardOptions::default()
    };
    let mut verifier = Verifier::new(options, args.tenant.clone(), since);
    while let Some(record) = reader.next_record()? {
        match record.item {
            Item::Raw(doc) => verifier.add(record.location, &doc, None),
            Item::Broken(message) => verifier.add_error(record.location, message),
            Item::Upstream { .. } | Item::Deleted { .. } => verifier.add_error(
                record.location,
                "not a raw document (no `_id` and `content`): map it first with `stella sources ingest --dry-run`".into(),
            ),
        }
    }
    let source = args
        .input
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    emit(
        verifier.finish(format!("input:{source}")),
        args.output.as_deref(),
        args.ndjson.as_deref(),
        args.verbose,
    )
}

/// Writes the report files and the summary; returns the exit class.
pub fn emit(
    report: Report,
    output: Option<&std::path::Path>,
    ndjson: Option<&std::path::Path>,
    verbose: bool,
) -> anyhow::Result<Outcome> {
    if let Some(path) = output {
        write_atomic(path, &pretty_json(&report))?;
    }
    if let Some(path) = ndjson {
        let mut buf = Vec::new();
        for f in &report.violations {
            serde_json::to_writer(&mut buf, f)?;
            buf.push(b'\n');
        }
        write_atomic(path, &buf)?;
    }
    let colour = crate::output::colour();
    let mut err = std::io::stderr().lock();
    if verbose {
        for f in &report.violations {
            writeln!(
                err,
                "{} {} {} {}: {}",
                paint(f.violation.code.as_str(), "31", colour),
                f.location,
                f.id.as_deref().unwrap_or("-"),
                f.violation.path,
                f.violation.message
            )?;
        }
    }
    for e in &report.input_errors {
        writeln!(
            err,
            "{} {}: {}",
            paint("INPUT", "33", colour),
            e.location,
            e.message
        )?;
    }
    let counts: Vec<String> = report
        .by_code
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{c}={n}"))
        .collect();
    writeln!(
        err,
        "stella aoc verify: {} documents checked, {} with violations, {} violations{}{}, {} input errors, {:.2}s",
        report.documents_checked,
        report.documents_with_violations,
        report.violations_total,
        if counts.is_empty() { "" } else { " " },
        counts.join(" "),
        report.input_errors.len(),
        report.duration_seconds,
    )?;
    Ok(if !report.input_errors.is_empty() {
        Outcome::Error
    } else if report.violations_total > 0 {
        Outcome::Violations
    } else {
        Outcome::Clean
    })
}
