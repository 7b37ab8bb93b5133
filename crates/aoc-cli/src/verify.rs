//! `stella aoc verify`: flags, inputs and outputs around the document verifier of
//! [`aoc_ingest::verify`] (the AOC guard and chain checks over raw documents); read-only.

use crate::inputs::{self, AllowEmpty, DatasetPin};
use crate::{check_inputs, Outcome};
use anyhow::Context;
use aoc_contract::{clock, GuardOptions};
use aoc_ingest::report::{MetricsRecorder, VerifyReport};
use aoc_ingest::verify::{verify_stored, DocumentVerifier, Selection};
use aoc_store::{Store, StoreLocation};
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
    // Whether inputs with no record, or a store check that selected no document, may pass.
    #[command(flatten)]
    empty: AllowEmpty,
    /// Output: text (summary on stderr) or json (the report on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
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
    let selection = Selection {
        tenant: args.tenant.clone(),
        since,
    };
    let mut verifier = DocumentVerifier::new(guard_options(&args), selection);
    let progress = Progress::counter("stella aoc verify", "documents");
    let mut records = 0;
    while let Some(record) = source.next_record()? {
        records += 1;
        progress.inc(1);
        verifier.add_record(record);
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
    let selection = Selection {
        tenant: args.tenant.clone(),
        since,
    };
    let progress = Progress::spinner(format!("stella aoc verify: checking {shown}"));
    let report = verify_stored(
        &mut store,
        format!("store:{shown}"),
        guard_options(args),
        selection,
    )
    .with_context(|| format!("reading store {shown}"))?;
    drop(progress);
    // A store with no document at all is nothing to check, like inputs with no record; a
    // `--tenant` or `--since` that selects none of its documents is a result, as with inputs.
    if report.documents_checked == 0 {
        let stored = store.counts()?.documents;
        args.empty
            .check_documents(stored, &format!("the store {shown}"))?;
    }
    emit(report, args, started)
}

/// The guard as the flags ask for it.
fn guard_options(args: &VerifyArgs) -> GuardOptions {
    GuardOptions {
        require_signature: args.require_signature,
        ..GuardOptions::default()
    }
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
    report: &VerifyReport,
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
fn emit(report: VerifyReport, args: &VerifyArgs, started: Instant) -> anyhow::Result<Outcome> {
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
    } else if !report.passed() {
        Outcome::Violations
    } else {
        Outcome::Clean
    })
}
