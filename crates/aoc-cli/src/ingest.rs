//! `stella sources ingest`: what would be written for an input, and why it would not; it never
//! writes (`--dry-run` is accepted, and changes nothing, for the scripts that used to need it).
//! `--format text` (default) is a table on stderr, `json` one document and `ndjson` one entry a
//! line on stdout; a reader that closes stdout early (`| head`) ends the command quietly.

use crate::{check_inputs, MapArgs, Outcome};
use aoc_contract::{clock, GuardOptions, MapContext};
use aoc_ingest::{Prepared, Preparer, Source};
use aoc_term::{paint, pretty_json, StreamFormat as Format};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Accepted for compatibility and changes nothing: this command never writes (to write, use
    /// `stella aoc backfill`).
    #[arg(long = "dry-run")]
    _dry_run: bool,
    /// Source vendor (default: derived from each document, e.g. `rustsec` from `RUSTSEC-…`).
    #[arg(long)]
    source: Option<String>,
    /// Upstream file, directory or `-` for standard input.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    #[command(flatten)]
    map: MapArgs,
    /// Output: text (a table on stderr), json (one document on stdout) or ndjson (one entry a
    /// line on stdout, as it is read).
    #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
}

pub fn run(args: IngestArgs) -> anyhow::Result<Outcome> {
    check_inputs(&args.input)?;
    let epoch = clock::run_epoch().map_err(anyhow::Error::msg)?;
    let now = clock::rfc3339(epoch);
    let ctx = MapContext {
        tenant: args.map.tenant.clone(),
        vendor: args.source.clone(),
        connector_version: env!("CARGO_PKG_VERSION").into(),
        retrieved_at: now.clone(),
        ingested_at: now,
    };
    let options = GuardOptions {
        require_signature: args.map.require_signature,
        ..GuardOptions::default()
    };
    let mut preparer = Preparer::new(ctx, options);
    let mut source = Source::open(&args.input, &[])?;
    crate::inputs::say_skipped(&source);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = std::io::BufWriter::new(std::io::stderr().lock());
    let mut results = Vec::new();
    let mut outcome = Outcome::Clean;
    while let Some(record) = source.next_record()? {
        let entry = match preparer.prepare(record) {
            Prepared::Doc { location, doc } => {
                json!({ "location": location, "document": doc.into_value(), "violations": [] })
            }
            Prepared::Deleted {
                location,
                key,
                recorded_at,
            } => json!({
                "location": location,
                "deleted": { "tenant": key.tenant, "vendor": key.vendor, "upstream_id": key.upstream_id, "recorded_at": recorded_at },
                "violations": [],
            }),
            Prepared::Rejected {
                location,
                error,
                violations,
                doc,
            } => {
                outcome = Outcome::Violations;
                json!({ "location": location, "document": doc, "error": error, "violations": violations })
            }
        };
        let written = match args.format {
            Format::Json => {
                results.push(entry);
                Ok(())
            }
            // Document text is the input's: C1, bidi and zero-width characters as \uXXXX.
            Format::Ndjson => aoc_term::escape::to_writer_compact(&mut out, &entry)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Format::Text => write_table_row(&mut table, &entry),
        };
        if closed(written)? {
            return Ok(outcome);
        }
    }
    let mut written = Ok(());
    if args.format == Format::Json {
        written = out.write_all(&pretty_json(
            &json!({ "dry_run": true, "documents": results }),
        ));
    }
    closed(written.and_then(|()| out.flush()))?;
    table.flush()?;
    Ok(outcome)
}

/// `Ok(true)` when the reader of stdout has gone (EPIPE): nothing more is wanted, the command
/// ends with what it found so far.
fn closed(written: std::io::Result<()>) -> std::io::Result<bool> {
    match written {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e),
    }
}

/// One document's row: ids, locations and messages come from the input, so they are escaped.
fn write_table_row(out: &mut impl Write, entry: &Value) -> std::io::Result<()> {
    use aoc_term::escape;
    let colour = aoc_term::interactive();
    let id = entry
        .pointer("/document/_id")
        .and_then(Value::as_str)
        .unwrap_or("-");
    let violations = entry["violations"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let status = match (
        entry.get("error").and_then(Value::as_str),
        violations.is_empty(),
    ) {
        (Some(_), _) => paint("ERROR", "31", colour),
        (None, false) => paint("REJECT", "31", colour),
        (None, true) => paint("OK", "32", colour),
    };
    writeln!(
        out,
        "{status:<8} {}  {}",
        escape(entry["location"].as_str().unwrap_or_default()),
        escape(id)
    )?;
    if let Some(e) = entry.get("error").and_then(Value::as_str) {
        writeln!(out, "         {}", escape(e))?;
    }
    for v in violations {
        writeln!(
            out,
            "         {} {} {}",
            v["code"].as_str().unwrap_or_default(),
            escape(v["path"].as_str().unwrap_or_default()),
            escape(v["message"].as_str().unwrap_or_default())
        )?;
    }
    Ok(())
}
