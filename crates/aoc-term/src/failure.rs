//! How a command fails, the same in every binary: the error on stderr with each cause said once;
//! under `--format json` (or `ndjson`) also one `{"ok": false, "error": ..., "exit_code": ...}`
//! document on stdout, usage errors included ([`parse`]); and a reader that closed stdout early
//! (`... | head`) ends the writing quietly, without "Broken pipe" ([`is_closed_pipe`]).

use std::error::Error;
use std::ffi::OsString;
use std::io::{self, Write};

/// The exit code of a usage error (clap's).
pub const EXIT_USAGE: u8 = 2;

/// `e` and its causes as one line, `outer: inner: root`, each cause once. A cause whose text the
/// line already carries is left out: libraries print their source in their own message (the
/// PostgreSQL client's "db error: ERROR: ..."; a `#[error("x: {0}")]` variant that is also the
/// `source`), and `{:#}` would repeat it after them.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let message = err.to_string();
        if !line.contains(message.as_str()) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&message);
        }
        next = err.source();
    }
    line
}

/// True when `e` (or a cause) is a write to a pipe whose reader has gone (EPIPE): the reader
/// wanted no more, which is no failure to report.
pub fn is_closed_pipe(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// The failure document of `--format json`: `{"ok": false, "error": ..., "exit_code": ...}`.
pub fn failure_json(error: &str, exit_code: u8) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": error, "exit_code": exit_code })
}

/// A command's report as its JSON document, led by the convention's `ok` (exit code 0) and,
/// when it failed, `error` (one line saying why) before the report's own fields.
pub fn report_json(
    report: &impl serde::Serialize,
    exit_code: u8,
    error: &str,
) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("ok".into(), (exit_code == 0).into());
    if exit_code != 0 {
        doc.insert("error".into(), error.into());
    }
    if let serde_json::Value::Object(fields) =
        serde_json::to_value(report).expect("a report serialises")
    {
        doc.extend(fields);
    }
    serde_json::Value::Object(doc)
}

/// Prints [`report_json`] on stdout. A reader that closed stdout early is no failure, and neither
/// is any other write error here: the exit code stays the command's verdict, and its summary is
/// on stderr.
pub fn print_report(report: &impl serde::Serialize, exit_code: u8, error: &str) {
    crate::print_json(&report_json(report, exit_code, error)).ok();
}

/// Reports a failed command: `TOOL: error: CAUSES` on stderr and, when `json`, the failure
/// document on stdout; nothing at all when stdout was closed by its reader. Returns `exit_code`.
pub fn report_failure(tool: &str, e: &(dyn Error + 'static), exit_code: u8, json: bool) -> u8 {
    if is_closed_pipe(e) {
        return exit_code;
    }
    // Error messages carry names, ids and text from untrusted input: escaped for the terminal.
    let message = crate::escape(&error_chain(e)).into_owned();
    eprintln!("{tool}: error: {message}");
    if json {
        crate::print_json(&failure_json(&message, exit_code)).ok();
    }
    exit_code
}

/// Whether a command line asks for a machine format (`--format json|ndjson`, `--format=json`,
/// or the older `--json`), read from the raw arguments: a usage error comes before clap has
/// parsed anything.
pub fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    let mut previous_was_format = false;
    for arg in args {
        let Some(arg) = arg.to_str() else {
            previous_was_format = false;
            continue;
        };
        if arg == "--" {
            break;
        }
        let value = if previous_was_format {
            Some(arg)
        } else {
            arg.strip_prefix("--format=")
        };
        if matches!(value, Some("json" | "ndjson")) || arg == "--json" {
            return true;
        }
        previous_was_format = arg == "--format";
    }
    false
}

/// Parses the command line as `C::parse()` does (clap prints the error and its usage on stderr,
/// exit 2; `--help` and `--version` print and exit 0), except that a usage error under
/// `--format json` is also the failure document on stdout.
pub fn parse<C: clap::Parser>() -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let usage_error =
                !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            if usage_error && json_requested(std::env::args_os().skip(1)) {
                let rendered = e.render().to_string();
                // clap's first paragraph, without its "error: " prefix; usage and hints stay on stderr.
                let first = rendered.split("\n\n").next().unwrap_or_default().trim();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                crate::print_json(&failure_json(message, EXIT_USAGE)).ok();
            }
            e.exit()
        }
    }
}

/// Writes `bytes` to stdout; a reader that has gone (EPIPE) is not an error: the rest is dropped.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source, like a thiserror variant.
    #[derive(Debug)]
    struct Layer(String, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    /// `#[error("PostgreSQL store: {0}")]` over the PostgreSQL client's error, whose message
    /// carries its source's, over the server's.
    fn store_error() -> Layer {
        let server = Layer("ERROR: permission denied for schema public".into(), None);
        let client = Layer(format!("db error: {server}"), Some(Box::new(server)));
        Layer(
            format!("PostgreSQL store: {client}"),
            Some(Box::new(client)),
        )
    }

    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::from(store_error()).context("cannot open store postgres://x");
        assert_eq!(format!("{e:#}").matches("db error").count(), 2, "{e:#}");
        assert_eq!(
            error_chain(e.as_ref()),
            "cannot open store postgres://x: PostgreSQL store: db error: ERROR: permission \
             denied for schema public"
        );
    }

    #[test]
    fn a_closed_pipe_is_found_under_contexts() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing to stdout");
        assert!(is_closed_pipe(e.as_ref()));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::NotFound));
        assert!(!is_closed_pipe(other.as_ref()));
    }

    #[test]
    fn json_is_recognised_in_every_spelling_before_parsing() {
        let asks = |args: &[&str]| json_requested(args.iter().map(OsString::from));
        assert!(asks(&["aoc", "verify", "--format", "json", "--bogus"]));
        assert!(asks(&["aoc", "verify", "--format=ndjson"]));
        assert!(asks(&["kit", "verify", "--json", "dir"]));
        assert!(!asks(&["aoc", "verify", "--format", "text"]));
        assert!(!asks(&["aoc", "verify", "--input", "json"]));
        assert!(!asks(&["sources", "ingest", "--", "--format", "json"]));
    }

    #[test]
    fn a_report_is_led_by_ok_and_why_it_failed() {
        let report = serde_json::json!({ "checks": [], "exit_code": 14 });
        assert_eq!(
            report_json(&report, 14, "not a kit").to_string(),
            r#"{"ok":false,"error":"not a kit","checks":[],"exit_code":14}"#
        );
        assert_eq!(
            report_json(&serde_json::json!({ "exit_code": 0 }), 0, "").to_string(),
            r#"{"ok":true,"exit_code":0}"#
        );
    }

    #[test]
    fn the_failure_document_says_not_ok() {
        assert_eq!(
            failure_json("no store", 2).to_string(),
            r#"{"ok":false,"error":"no store","exit_code":2}"#
        );
    }
}
