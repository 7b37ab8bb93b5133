//! `stella aoc verify`: the AOC guard and chain checks over raw documents; read-only.

use crate::inputs::{self, AllowEmpty, DatasetPin};
use crate::{check_inputs, Outcome};
use anyhow::Context;
use aoc_contract::chain::{ChainChecker, ChainEntry};
use aoc_contract::{clock, DocHead, Guard, GuardOptions};
use aoc_ingest::report::{zero_by_code, Finding, InputError, MetricsRecorder, VerifyReport};
use aoc_ingest::Item;
use aoc_store::{
    verify_store, ScanFilter, Store, StoreDoc, StoreLocation, VerifyOptions as StoreVerifyOptions,
};
use aoc_term::Progress;
use aoc_term::{escape, is_stdout, one_stdout, paint, pretty_json, write_report, Format};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Raw documents to check: JSON or NDJSON files, directories of them, or dataset tarballs.
    #[arg(long, num_args = 1.., required_unless_present_any = ["store", "postgres", "store_env"], conflicts_with_all = ["store", "postgres"])]
    input: Vec<PathBuf>,
    /// A raw store to check: sqlite:PATH, postgres://USER@HOST:PORT/DB[?sslmode=...] or a libpq
    /// key=value string; without --input, --store and --postgres, the one in STELLA_STORE.
    #[arg(long, conflicts_with = "postgres")]
    store: Option<String>,
    /// STELLA_STORE: a default only, so it is its own argument without conflicts (clap counts an
    /// environment value as given, and `--input` would then conflict with it).
    #[arg(
        long = "store-from-env",
        env = "STELLA_STORE",
        hide = true,
        hide_env_values = true
    )]
    store_env: Option<String>,
    /// A PostgreSQL raw store (URL or key=value string), the same as `--store postgres://...`.
    #[arg(long)]
    postgres: Option<String>,
    /// Write Prometheus metrics (verify_runs_total, verify_duration_seconds, aoc_violation_total)
    /// here (`-`: stdout).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Only documents ingested since this time: a date (`2024-01-01`, midnight UTC), RFC 3339
    /// (`2024-01-01T12:00:00Z`), or this long ago (`24h`, `7d`, `90m`).
    #[arg(long)]
    since: Option<String>,
    /// Only documents of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Write the JSON report here (`-`: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write one violation a line (NDJSON) here (`-`: stdout).
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
    // With `--input`: the hash every dataset tarball among the inputs must have.
    #[command(flatten)]
    pin: DatasetPin,
    // With `--input`: whether inputs with no record at all may pass.
    #[command(flatten)]
    empty: AllowEmpty,
    /// Output: text (summary on stderr) or json (the report on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
}

/// The verify report (`--output`): the engine's type, so readers share it.
pub type Report = VerifyReport;

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

    /// Checks one raw document: the guard, then its revision chain.
    pub fn add(&mut self, location: String, doc: &Value) {
        let tenant = doc.get("tenant").and_then(Value::as_str);
        let at = doc
            .get("ingested_at")
            .and_then(Value::as_str)
            .and_then(clock::parse_rfc3339);
        if !self.selected(tenant, at) {
            return;
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
                revision: None,
                location,
            });
        }
    }

    /// A record of a dataset its reader has verified (guarded, and exactly as a store renders
    /// it): only its revision chain is followed here, from the fields it was read with.
    pub fn add_verified(&mut self, location: String, stored: &StoreDoc) {
        if !self.selected(Some(&stored.key().tenant), Some(stored.ingested_unix())) {
            return;
        }
        self.checked += 1;
        self.chains.push(ChainEntry {
            head: stored.head().clone(),
            revision: None,
            location,
        });
    }

    /// Whether a document of `tenant`, ingested at `ingested_at` (Unix seconds), is in the
    /// `--tenant` and `--since` selection; counts it as skipped when not.
    fn selected(&mut self, tenant: Option<&str>, ingested_at: Option<i64>) -> bool {
        let other_tenant = self.tenant.as_deref().is_some_and(|t| tenant != Some(t));
        let too_old = self
            .since
            .as_ref()
            .is_some_and(|(_, cutoff)| ingested_at.is_some_and(|at| at < *cutoff));
        let selected = !other_tenant && !too_old;
        self.skipped += u64::from(!selected);
        selected
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
        new_report(
            source,
            self.tenant,
            self.since.map(|(s, _)| s),
            (self.checked, self.skipped, upstream_documents as u64),
            findings,
            self.errors,
            self.started,
        )
    }
}

/// A report over `findings` (sorted, deduplicated, counted by code).
fn new_report(
    source: String,
    tenant: Option<String>,
    since: Option<String>,
    (checked, skipped, upstream_documents): (u64, u64, u64),
    mut findings: Vec<Finding>,
    input_errors: Vec<InputError>,
    started: Instant,
) -> Report {
    findings.sort();
    findings.dedup();
    let mut by_code = zero_by_code();
    for f in &findings {
        *by_code
            .entry(f.violation.code.as_str().to_owned())
            .or_default() += 1;
    }
    let mut docs: Vec<&str> = findings.iter().map(|f| f.location.as_str()).collect();
    docs.dedup();
    Report {
        tool: "stella".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        source,
        tenant,
        since,
        documents_checked: checked,
        documents_skipped: skipped,
        files_skipped: 0,
        upstream_documents,
        documents_with_violations: docs.len() as u64,
        violations_total: findings.len() as u64,
        by_code,
        violations: findings,
        input_errors,
        store_guards_missing: Vec::new(),
        duration_seconds: started.elapsed().as_secs_f64(),
    }
}

/// `--since`: a date (midnight UTC), RFC 3339, or a duration back from now (`90s`, `15m`,
/// `24h`, `7d`, `2w`).
pub fn parse_since(s: &str) -> anyhow::Result<(String, i64)> {
    if let Some(epoch) = clock::parse_rfc3339(s) {
        return Ok((s.to_owned(), epoch));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(s, date) {
        Ok(day) => {
            let epoch = day.midnight().assume_utc().unix_timestamp();
            return Ok((clock::rfc3339(epoch), epoch));
        }
        // Shaped like a date (`2024-13-01`): say what is wrong with it, not "unknown unit".
        Err(e) if s.len() == 10 && s.as_bytes()[4] == b'-' => anyhow::bail!(
            "--since {s:?}: not a date ({e}); expected a date (2024-01-01), RFC 3339 or a \
             duration such as 24h"
        ),
        Err(_) => {}
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        anyhow::anyhow!(
            "--since {s:?}: expected a date (2024-01-01), RFC 3339 (2024-01-01T00:00:00Z) or a \
             duration such as 24h"
        )
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => anyhow::bail!(
            "--since {s:?}: unknown unit {unit:?} (use s, m, h, d or w, or give a date such as \
             2024-01-01)"
        ),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cutoff = now - n * secs;
    Ok((clock::rfc3339(cutoff), cutoff))
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    check_inputs(&args.input)?;
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let to_stdout = |p: &Option<PathBuf>| p.as_deref().is_some_and(is_stdout);
    one_stdout(&[
        ("--format json", args.format.is_json()),
        ("--output -", to_stdout(&args.output)),
        ("--ndjson -", to_stdout(&args.ndjson)),
        ("--metrics -", to_stdout(&args.metrics)),
    ])?;
    // Every output file can be written, checked before any document is read (exit 3 if not).
    crate::outputs::check(&[
        ("--output", args.output.as_deref(), "the verify report"),
        ("--ndjson", args.ndjson.as_deref(), "the violations"),
        ("--metrics", args.metrics.as_deref(), "the metrics"),
    ])?;
    let url = args
        .store
        .clone()
        .or_else(|| args.postgres.clone())
        .or_else(|| {
            // STELLA_STORE only when nothing was chosen on the command line.
            args.input
                .is_empty()
                .then(|| args.store_env.clone())
                .flatten()
        });
    if let Some(url) = url {
        return run_store(&args, &url, since, started);
    }
    let mut source = inputs::open(&args.input, &args.pin)?;
    args.empty.check_files(&source, &args.input)?;
    if args.dry_run {
        eprintln!(
            "stella: configuration ok: {} input path(s) readable; no document read (--dry-run)",
            args.input.len()
        );
        dry_run_json(args.format, json!({ "inputs": args.input.len() }))?;
        return Ok(Outcome::Clean);
    }
    let options = GuardOptions {
        require_signature: args.require_signature,
        ..GuardOptions::default()
    };
    let mut verifier = Verifier::new(options, args.tenant.clone(), since);
    let progress = Progress::counter("stella aoc verify", "documents");
    let mut records = 0;
    while let Some(record) = source.next_record()? {
        records += 1;
        progress.inc(1);
        match record.item.parse() {
            Item::Raw(doc) => verifier.add(record.location, &doc),
            Item::Verified(stored) => verifier.add_verified(record.location, &stored),
            Item::Broken(message) => verifier.add_error(record.location, message),
            Item::Json(_) => unreachable!("parse() classifies unparsed values"),
            Item::Upstream { .. } | Item::Deleted { .. } => verifier.add_error(
                record.location,
                "not a raw document (no `_id` and `content`): map it first with `stella sources ingest`".into(),
            ),
        }
    }
    let skipped_files = source.skipped_files().len() as u64;
    let source = args
        .input
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    drop(progress);
    args.empty.check_records(records, &args.input)?;
    let mut report = verifier.finish(format!("input:{source}"));
    report.files_skipped = skipped_files;
    emit(report, &args, started)
}

/// `--store` / `--postgres`: every stored row re-checked (guard, columns against the document,
/// content hash recomputed, revision chains), plus the store's append-only triggers. Read-only.
fn run_store(
    args: &VerifyArgs,
    url: &str,
    since: Option<(String, i64)>,
    started: Instant,
) -> anyhow::Result<Outcome> {
    let location =
        StoreLocation::parse(url).context("the store (--store, --postgres or STELLA_STORE)")?;
    // Every message, the JSON and the report's `source` name the store without its password.
    let shown = location.redacted();
    if args.postgres.is_some() && location.engine() != aoc_store::Engine::Postgres {
        anyhow::bail!(
            "--postgres {shown}: expected a PostgreSQL URL (postgres://...) or key=value string"
        );
    }
    if let StoreLocation::Sqlite(path) = &location {
        // Opening would create an empty store: a verifier must not write, so refuse early.
        anyhow::ensure!(
            path == ":memory:" || std::path::Path::new(path).is_file(),
            "no SQLite store at {path} (check --store)"
        );
    }
    // Read-only: no migration, no DDL, no write (a SELECT-only role, a standby, a file this user
    // cannot write); a store at another schema version is refused, never upgraded.
    let mut store = Store::open_location(&location, aoc_store::OpenMode::ReadOnly)
        .with_context(|| format!("cannot open store {shown}"))?;
    if args.dry_run {
        let counts = store.counts()?;
        eprintln!(
            "stella: configuration ok: connected to {shown} ({} documents stored); nothing checked (--dry-run)",
            counts.documents
        );
        dry_run_json(
            args.format,
            json!({ "store": shown, "documents": counts.documents }),
        )?;
        return Ok(Outcome::Clean);
    }
    let filter = ScanFilter {
        tenant: args.tenant.clone(),
        since: since.as_ref().map(|(s, _)| s.clone()),
    };
    let options = StoreVerifyOptions {
        guard: Some(GuardOptions {
            require_signature: args.require_signature,
            verify_hash: false,
            ..GuardOptions::default()
        }),
        partial: since.is_some(),
    };
    let progress = Progress::spinner(format!("stella aoc verify: checking {shown}"));
    let result = verify_store(&mut store, &filter, options)
        .with_context(|| format!("reading store {shown}"))?;
    drop(progress);
    let findings = result
        .violations
        .into_iter()
        .map(|c| Finding {
            location: c.location,
            id: Some(c.id),
            violation: c.violation,
        })
        .collect();
    let mut report = new_report(
        format!("store:{shown}"),
        args.tenant.clone(),
        since.map(|(s, _)| s),
        (result.rows, 0, result.upstream_documents),
        findings,
        Vec::new(),
        started,
    );
    report.store_guards_missing = result.missing_guards;
    emit(report, args, started)
}

/// `--dry-run --format json`: what was checked, as one JSON document.
fn dry_run_json(format: Format, checked: Value) -> anyhow::Result<()> {
    if format.is_json() {
        aoc_term::print_json(
            &json!({ "dry_run": true, "configuration": "ok", "checked": checked }),
        )?;
    }
    Ok(())
}

fn write_metrics(
    path: Option<&std::path::Path>,
    report: &Report,
    started: Instant,
) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut m = MetricsRecorder::default();
    m.verify_run(started.elapsed().as_secs_f64());
    let tenant = report.tenant.as_deref().unwrap_or("*");
    for f in &report.violations {
        let source =
            f.id.as_deref()
                .and_then(|id| id.split(':').nth(1))
                .unwrap_or("unknown");
        m.violation(source, tenant, f.violation.code.as_str());
    }
    write_report(path, m.finish().render().as_bytes())
}

/// Writes the report, NDJSON and metrics files and the summary; returns the exit class.
fn emit(report: Report, args: &VerifyArgs, started: Instant) -> anyhow::Result<Outcome> {
    write_metrics(args.metrics.as_deref(), &report, started)?;
    let (output, ndjson, verbose) = (args.output.as_deref(), args.ndjson.as_deref(), args.verbose);
    if let Some(path) = output {
        write_report(path, &pretty_json(&report))?;
    }
    if args.format.is_json() {
        write_report(
            std::path::Path::new(aoc_term::STDOUT),
            &pretty_json(&report),
        )?;
    }
    if let Some(path) = ndjson {
        let mut buf = Vec::new();
        for f in &report.violations {
            // Ids and messages are the documents': C1, bidi, zero-width as \uXXXX.
            aoc_term::escape::to_writer_compact(&mut buf, f)?;
            buf.push(b'\n');
        }
        write_report(path, &buf)?;
    }
    let colour = aoc_term::interactive();
    let mut err = std::io::stderr().lock();
    // Locations, ids, paths and messages come from the documents: escaped for the terminal.
    if verbose {
        for f in &report.violations {
            writeln!(
                err,
                "{} {} {} {}: {}",
                paint(f.violation.code.as_str(), "31", colour),
                escape(&f.location),
                escape(f.id.as_deref().unwrap_or("-")),
                escape(&f.violation.path),
                escape(&f.violation.message)
            )?;
        }
    }
    for t in &report.store_guards_missing {
        writeln!(
            err,
            "{} append-only trigger {t} is missing or disabled",
            paint("STORE", "31", colour)
        )?;
    }
    for e in &report.input_errors {
        writeln!(
            err,
            "{} {}: {}",
            paint("INPUT", "33", colour),
            escape(&e.location),
            escape(&e.message)
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
        "stella aoc verify: {} documents checked, {} with violations, {} violations{}{}, {} input errors{}, {:.2}s",
        report.documents_checked,
        report.documents_with_violations,
        report.violations_total,
        if counts.is_empty() { "" } else { " " },
        counts.join(" "),
        report.input_errors.len(),
        match report.files_skipped {
            0 => String::new(),
            n => format!(", {n} file(s) skipped by name"),
        },
        report.duration_seconds,
    )?;
    Ok(if !report.input_errors.is_empty() {
        Outcome::Error
    } else if report.violations_total > 0 || !report.store_guards_missing.is_empty() {
        Outcome::Violations
    } else {
        Outcome::Clean
    })
}
