//! `stella` end to end: real advisories through `sources ingest` and `aoc verify --input`; the
//! command-line contract (JSON failures, closed pipes, empty inputs, causes said once).

use crate::{ingested_documents, run, stella, testdata, write_raw_documents};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Raw documents for the real samples, as `sources ingest --format ndjson` writes them.
fn raw_documents(dir: &Path) -> PathBuf {
    let docs = ingested_documents(Some("t1"), &[testdata("osv-rustsec"), testdata("csaf")]);
    write_raw_documents(dir, &docs)
}

#[test]
fn ingest_dry_run_prints_raw_documents_and_writes_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, err) = run(stella()
        .current_dir(cwd.path())
        .args([
            "sources",
            "ingest",
            "--dry-run",
            "--format",
            "json",
            "--source",
            "osv",
            "--input",
        ])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let docs = report["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 5);
    for d in docs {
        assert_eq!(d["violations"], serde_json::json!([]));
        assert!(d["document"]["_id"]
            .as_str()
            .unwrap()
            .starts_with("advisory_raw:osv:RUSTSEC-"));
        assert_eq!(d["document"]["tenant"], "default");
        assert_eq!(
            d["document"]["ingested_at"], "2025-11-24T16:00:00Z",
            "SOURCE_DATE_EPOCH sets the clock"
        );
    }
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "a dry run writes nothing"
    );
}

#[test]
fn ingest_reads_standard_input_and_shows_rejections_in_a_table() {
    // `--format text` (the default) is the table, on stderr; `table` is its old name.
    let mut child = stella()
        .args([
            "sources",
            "ingest",
            "--dry-run",
            "--format",
            "table",
            "--input",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = std::fs::read_to_string(testdata("osv-other/GO-2021-0113.json")).unwrap();
    let compact: Value = serde_json::from_str(&doc).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}\n{{\"not\": \"an advisory\"}}\n{{broken", compact).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "text goes to stderr");
    let text = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert!(
        lines[0].starts_with("OK       -:1  advisory_raw:go:GO-2021-0113:"),
        "{text}"
    );
    assert!(lines[1].starts_with("ERROR    -:2"), "{text}");
    assert!(lines[2].starts_with("ERROR    -:3"), "{text}");
    assert!(text.contains("not an OSV or CSAF 2.0 document"));
    assert!(text.contains("invalid JSON"));
}

#[test]
fn ingest_never_writes_and_needs_no_dry_run_flag() {
    // `--dry-run` was once required; it is accepted and changes nothing.
    let cwd = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for flag in [&[][..], &["--dry-run"]] {
        let (code, out, err) = run(stella()
            .current_dir(cwd.path())
            .args(["sources", "ingest", "--format", "json"])
            .args(flag)
            .arg("--input")
            .arg(testdata("osv-rustsec")));
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            json_stdout("ingest", &out)["documents"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[test]
fn verify_clean_documents_exits_zero_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = raw_documents(dir.path());
    let report = dir.path().join("report.json");
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&report));
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["documents_checked"], 8);
    assert_eq!(r["violations_total"], 0);
    assert_eq!(
        r["by_code"].as_object().unwrap().len(),
        7,
        "every code is listed, zeros included"
    );
}

#[test]
fn verify_reports_violations_and_broken_lines_without_hiding_either() {
    let dir = tempfile::tempdir().unwrap();
    let input = raw_documents(dir.path());
    let mut docs: Vec<Value> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    docs[1]["severity"] = "HIGH".into();
    docs[2]["content"]["raw"]["summary"] = "tampered".into();
    let mut text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    text.insert(4, "{\"_id\": ".into());
    std::fs::write(&input, text.join("\n") + "\n").unwrap();
    let (report, ndjson) = (dir.path().join("r.json"), dir.path().join("v.ndjson"));
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&report)
        .arg("--ndjson")
        .arg(&ndjson));
    assert_eq!(code, 2, "an input error outranks violations: {err}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["by_code"]["ERR_AOC_001"], 1);
    assert_eq!(r["by_code"]["ERR_AOC_005"], 1);
    assert_eq!(
        r["input_errors"][0]["location"],
        format!("{}:5", input.display())
    );
    assert_eq!(
        r["documents_checked"], 8,
        "the records after the broken line are still checked"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&ndjson)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["code"], "ERR_AOC_001");
    assert_eq!(lines[0]["location"], format!("{}:2", input.display()));

    // Without the broken line: violations alone exit 1.
    std::fs::write(
        &input,
        docs.iter()
            .map(|d| d.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let (code, _, _) = run(stella().args(["aoc", "verify", "--input"]).arg(&input));
    assert_eq!(code, 1);
}

#[test]
fn verify_filters_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let input = raw_documents(dir.path());
    let report = dir.path().join("r.json");
    let (code, _, _) = run(stella()
        .args(["aoc", "verify", "--tenant", "other", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&report));
    assert_eq!(code, 0);
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (
            r["documents_checked"].as_u64(),
            r["documents_skipped"].as_u64()
        ),
        (Some(0), Some(8))
    );
}

#[test]
fn verify_dry_run_and_configuration_errors() {
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--dry-run", "--input"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(stella().args(["aoc", "verify", "--input", "/nonexistent/raw.ndjson"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/raw.ndjson does not exist"),
        "{err}"
    );
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--since", "yesterday", "--input"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
}

// ---- the command-line convention: `--format json` on stdout, human text on stderr ----------

/// Parses stdout as one JSON document, naming the command when it is not.
fn json_stdout(what: &str, out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
}

#[test]
fn format_json_puts_one_document_on_stdout_and_the_text_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_documents(dir.path());

    // sources ingest --format json: `ingest_dry_run_prints_raw_documents_and_writes_nothing`.
    // aoc verify: the report on stdout, the summary on stderr.
    let (code, out, err) = run(stella()
        .args(["aoc", "verify", "--format", "json", "--input"])
        .arg(&raw));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_stdout("verify", &out)["documents_checked"], 8);
    assert!(
        err.contains("stella aoc verify: 8 documents checked"),
        "{err}"
    );
    // --dry-run too.
    let (code, out, err) = run(stella()
        .args(["aoc", "verify", "--dry-run", "--format", "json", "--input"])
        .arg(&raw));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_stdout("verify --dry-run", &out)["dry_run"], true);
    assert!(err.contains("configuration ok"), "{err}");

    // aoc backfill: the run report on stdout, the summary on stderr.
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let (code, out, err) = run(stella()
        .args([
            "aoc", "backfill", "--format", "json", "--store", &store, "--from",
        ])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    let report = json_stdout("backfill", &out);
    assert_eq!(
        (report["records"].as_u64(), report["written"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(
        err.contains("stella aoc backfill: 5 records: 5 written"),
        "{err}"
    );

    // kit verify: the kit report on stdout (here: not a kit, exit 14), checks on stderr.
    let (code, out, err) = run(stella()
        .args(["kit", "verify", "--format", "json"])
        .arg(dir.path().join("no-kit")));
    assert_eq!(code, 14, "{err}");
    assert_eq!(json_stdout("kit verify", &out)["exit_code"], 14);
    assert!(!err.is_empty());
    // A usage error (an unreadable --key) is a JSON document too.
    let (code, out, err) = run(stella()
        .args(["kit", "verify", "--format", "json", "--key"])
        .arg(dir.path().join("no.pub"))
        .arg(dir.path()));
    assert_eq!(code, 2, "{err}");
    assert_eq!(json_stdout("kit verify usage", &out)["exit_code"], 2);
}

#[test]
fn a_report_file_may_be_stdout_but_only_one_thing_goes_there() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_documents(dir.path());
    // `--output -`: the report on stdout; `--ndjson -` is the violations stream.
    let (code, out, err) = run(stella()
        .args(["aoc", "verify", "--output", "-", "--input"])
        .arg(&raw));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json_stdout("verify --output -", &out)["violations_total"],
        0
    );
    let (code, out, _) = run(stella()
        .args(["aoc", "verify", "--ndjson", "-", "--input"])
        .arg(&raw));
    assert_eq!((code, out.as_str()), (0, ""), "no violations: no lines");

    // Backfill: `--metrics -` on stdout, the report in a file.
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let report = dir.path().join("r.json");
    let (code, out, err) = run(stella()
        .args([
            "aoc",
            "backfill",
            "--metrics",
            "-",
            "--store",
            &store,
            "--report",
        ])
        .arg(&report)
        .arg("--from")
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ingestion_write_total"), "{out}");
    assert!(report.is_file());

    // Two things on stdout are refused before any work, and the refusal is JSON too.
    let (code, out, err) = run(stella()
        .args([
            "aoc", "verify", "--format", "json", "--output", "-", "--input",
        ])
        .arg(&raw));
    assert_eq!(code, 2);
    assert!(
        err.contains("--format json and --output - all write to stdout"),
        "{err}"
    );
    assert_eq!(json_stdout("refusal", &out)["exit_code"], 2);
    let (code, _, err) = run(stella()
        .args([
            "aoc",
            "backfill",
            "--rejects",
            "-",
            "--store",
            &store,
            "--from",
        ])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 2);
    assert!(err.contains("--rejects -"), "{err}");
}

#[test]
fn every_help_names_its_exit_codes_and_environment() {
    for path in [
        &["aoc", "backfill"][..],
        &["aoc", "verify"],
        &["sources", "ingest"],
        &["kit", "verify"],
    ] {
        let (code, out, _) = run(stella().args(path).arg("--help"));
        assert_eq!(code, 0);
        for needle in [
            "Exit codes:",
            "Environment:",
            "--format <FORMAT>",
            "NO_COLOR",
        ] {
            assert!(
                out.contains(needle),
                "stella {path:?} --help lacks {needle}: {out}"
            );
        }
    }
}

/// `stella` on a pseudo-terminal (util-linux `script`), or None after a loud skip.
fn on_a_terminal(args: &str, no_color: bool) -> Option<String> {
    let probe = Command::new("script").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        aoc_testkit::skip("`script` (util-linux) is not installed; no pseudo-terminal to draw on");
        return None;
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec"])
        .arg(format!("{} {args}", env!("CARGO_BIN_EXE_stella")))
        .arg("/dev/null")
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_progress_bar_draws_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let args = |db: &str| {
        format!(
            "aoc backfill --from {} --store sqlite://{}",
            testdata("osv-rustsec").display(),
            dir.path().join(db).display()
        )
    };
    let Some(drawn) = on_a_terminal(&args("a.db"), false) else {
        return;
    };
    assert!(drawn.contains("stella aoc backfill: 5 records"), "{drawn}");
    assert!(
        drawn.contains("\x1b[2K"),
        "a terminal gets the progress bar (cleared at the end): {drawn:?}"
    );
    let plain = on_a_terminal(&args("b.db"), true).unwrap();
    assert!(plain.contains("stella aoc backfill: 5 records"), "{plain}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR: no bar, no colour: {plain:?}"
    );
}

// ---- nothing to do is an error; skipped files are counted ---------------------------------

/// A temporary directory holding `files` (name, content).
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[test]
fn an_empty_directory_or_one_without_json_files_is_nothing_to_do() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("s.db");
    let store = format!("sqlite://{}", db.display());
    let empty = dir_with(&[]);
    let no_json = dir_with(&[("notes.txt", "hello\n"), ("table.csv", "a,b\n")]);
    for input in [empty.path(), no_json.path()] {
        let (code, out, err) = run(stella()
            .args(["aoc", "backfill", "--store", &store, "--from"])
            .arg(input));
        assert_eq!(code, 2, "backfill of {input:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("nothing to read") && err.contains("--allow-empty"),
            "{err}"
        );
        assert!(!db.exists(), "refused before the store is opened");
        let (code, _, err) = run(stella().args(["aoc", "verify", "--input"]).arg(input));
        assert_eq!(code, 2, "verify of {input:?}: {err}");
        assert!(err.contains("nothing to read"), "{err}");
        // Also under --dry-run: the configuration names nothing to check.
        let (code, _, err) = run(stella()
            .args(["aoc", "verify", "--dry-run", "--input"])
            .arg(input));
        assert_eq!(code, 2, "verify --dry-run of {input:?}: {err}");
    }
    // The files left out are named, with their number.
    let (_, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &store, "--from"])
        .arg(no_json.path()));
    assert!(err.contains("skipped 2 file(s)"), "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("table.csv"),
        "{err}"
    );
    assert!(err.contains("(2 other file(s) skipped)"), "{err}");

    // A file with no record in it is nothing to do too, found after reading.
    let blank = dir_with(&[("feed.ndjson", "\n\n")]);
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &store, "--from"])
        .arg(blank.path().join("feed.ndjson")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no record"), "{err}");
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--input"])
        .arg(blank.path().join("feed.ndjson")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no record"), "{err}");
}

#[test]
fn allow_empty_accepts_inputs_with_no_record_and_reports_the_skipped_files() {
    let work = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", work.path().join("s.db").display());
    let no_json = dir_with(&[("notes.txt", "hello\n"), ("table.csv", "a,b\n")]);
    let (code, out, err) = run(stella()
        .args([
            "aoc",
            "backfill",
            "--allow-empty",
            "--format",
            "json",
            "--store",
            &store,
            "--from",
        ])
        .arg(no_json.path()));
    assert_eq!(code, 0, "{err}");
    let report = json_stdout("backfill --allow-empty", &out);
    assert_eq!(
        (report["records"].as_u64(), report["files_skipped"].as_u64()),
        (Some(0), Some(2))
    );
    assert!(err.contains("2 file(s) skipped by name"), "{err}");
    let (code, out, err) = run(stella()
        .args([
            "aoc",
            "verify",
            "--allow-empty",
            "--format",
            "json",
            "--input",
        ])
        .arg(no_json.path()));
    assert_eq!(code, 0, "{err}");
    let report = json_stdout("verify --allow-empty", &out);
    assert_eq!(
        (
            report["documents_checked"].as_u64(),
            report["files_skipped"].as_u64()
        ),
        (Some(0), Some(2))
    );
}

#[test]
fn files_skipped_by_name_are_counted_beside_the_records_loaded() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("advisories");
    std::fs::create_dir(&input).unwrap();
    for entry in std::fs::read_dir(testdata("osv-rustsec")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, input.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(input.join("README.txt"), "not an advisory\n").unwrap();
    let report = work.path().join("r.json");
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store"])
        .arg(format!("sqlite://{}", work.path().join("s.db").display()))
        .arg("--report")
        .arg(&report)
        .arg("--from")
        .arg(&input));
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (r["written"].as_u64(), r["files_skipped"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(
        err.contains("skipped 1 file(s)") && err.contains("README.txt"),
        "{err}"
    );
    let (code, out, err) = run(stella()
        .args(["aoc", "verify", "--format", "json", "--input"])
        .arg(&input));
    assert_eq!(
        code, 2,
        "upstream documents are input errors for verify: {err}"
    );
    assert_eq!(json_stdout("verify", &out)["files_skipped"], 1);
    assert!(err.contains("1 file(s) skipped by name"), "{err}");
    // The preview names them too.
    let (code, out, err) = run(stella()
        .args(["sources", "ingest", "--format", "ndjson", "--input"])
        .arg(&input));
    assert_eq!((code, out.lines().count()), (0, 5), "{err}");
    assert!(
        err.contains("skipped 1 file(s)") && err.contains("README.txt"),
        "{err}"
    );
}

// ---- the JSON contract: every failure, usage errors included ------------------------------

/// A failure document: `ok` false, an error, the exit code the process exits with.
fn assert_failure_json(what: &str, code: i32, out: &str) -> Value {
    let doc = json_stdout(what, out);
    assert_eq!(doc["ok"], false, "{what}: {doc}");
    assert_eq!(doc["exit_code"], code, "{what}: {doc}");
    assert!(
        doc["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {doc}"
    );
    doc
}

#[test]
fn every_failure_under_format_json_is_one_not_ok_document() {
    let dir = tempfile::tempdir().unwrap();
    // A usage error: clap fails before any command runs.
    let (code, out, err) = run(stella().args([
        "aoc",
        "verify",
        "--format",
        "json",
        "--no-such-flag",
        "--input",
        "x",
    ]));
    assert_eq!(code, 2, "{err}");
    let doc = assert_failure_json("usage error", 2, &out);
    assert!(
        doc["error"].as_str().unwrap().contains("--no-such-flag"),
        "{doc}"
    );
    assert!(
        err.contains("Usage:"),
        "clap's usage stays on stderr: {err}"
    );
    // `--format=ndjson` and a missing required argument.
    let (code, out, _) = run(stella().args(["sources", "ingest", "--format=ndjson"]));
    assert_eq!(code, 2);
    assert_failure_json("missing --input", 2, &out);
    // Without --format json a usage error prints nothing on stdout.
    let (code, out, _) = run(stella().args(["aoc", "verify", "--no-such-flag"]));
    assert_eq!((code, out.as_str()), (2, ""));

    // A command's own failure.
    let (code, out, _) = run(stella().args([
        "aoc",
        "verify",
        "--format",
        "json",
        "--input",
        "/nonexistent/raw.ndjson",
    ]));
    assert_eq!(code, 2);
    let doc = assert_failure_json("missing input", 2, &out);
    assert!(doc["error"].as_str().unwrap().contains("does not exist"));
    // A kit that fails: its report, with `ok` and `error` beside its exit code.
    let (code, out, _) = run(stella()
        .args(["kit", "verify", "--format", "json"])
        .arg(dir.path().join("no-kit")));
    assert_eq!(code, 14);
    assert_failure_json("kit verify", 14, &out);
    let (code, out, _) = run(stella()
        .args(["kit", "verify", "--json", "--key"])
        .arg(dir.path().join("no.pub"))
        .arg(dir.path()));
    assert_eq!(code, 2);
    assert_failure_json("kit verify usage", 2, &out);
}

#[test]
fn a_reader_that_closes_stdout_early_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_documents(dir.path());
    // The read end is closed before the command writes a byte: every write to stdout is EPIPE.
    let closed = |cmd: &mut Command| {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, err) = closed(
        stella()
            .args(["sources", "ingest", "--format", "ndjson", "--input"])
            .arg(testdata("osv-rustsec"))
            .arg(testdata("csaf")),
    );
    assert_eq!((code, err.as_str()), (Some(0), ""), "ingest | head");
    let (code, err) = closed(
        stella()
            .args(["aoc", "verify", "--format", "json", "--input"])
            .arg(&raw),
    );
    assert_eq!(code, Some(0), "the verdict stands: {err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with("stella aoc verify: 8 documents checked")),
        "only the summary on stderr: {err}"
    );
    let (code, err) = closed(
        stella()
            .args(["aoc", "backfill", "--dry-run", "--from"])
            .arg(testdata("osv-rustsec")),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !err.to_lowercase().contains("pipe") && !err.contains("error"),
        "{err}"
    );
    // kit verify: the verdict stands (it used to exit 2, a usage error, when stdout was closed).
    let (code, err) = closed(
        stella()
            .args(["kit", "verify", "--format", "json"])
            .arg(dir.path().join("no-kit")),
    );
    assert_eq!(code, Some(14), "{err}");
    assert!(!err.to_lowercase().contains("pipe"), "{err}");
}

/// No cause is said twice: the `: `-separated parts of the error line are all different.
fn assert_each_cause_once(err: &str) {
    let line = err
        .lines()
        .find(|l| l.starts_with("stella: error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is said twice in: {line}"
        );
    }
}

#[test]
fn each_cause_of_an_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    // A "dataset" that is no archive at all.
    let tarball = dir
        .path()
        .join(format!("aoc-dataset-{}.tar.gz", "a".repeat(64)));
    std::fs::write(&tarball, b"not a tarball").unwrap();
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &store, "--from"])
        .arg(&tarball));
    assert_eq!(code, 2, "{err}");
    assert_each_cause_once(&err);
    assert_eq!(
        err.matches(&*tarball.display().to_string()).count(),
        1,
        "the tarball is named once: {err}"
    );

    // A server that refuses: the PostgreSQL client prints its cause in its own message.
    let Some(base) = std::env::var("AOC_TEST_PG").ok() else {
        let msg = "AOC_TEST_PG is not set: the PostgreSQL half of this test did NOT run.";
        aoc_testkit::skip(msg);
        return;
    };
    // A role that may log in but not create anything in `public` (PostgreSQL 15's default): the
    // store's first migration fails with a server error, which the client's error prints inside
    // its own message too ("db error: ERROR: ...").
    let role = format!("cli_t21_nocreate_{}", std::process::id());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("AOC_TEST_PG");
    // One statement at a time: DROP/CREATE DATABASE refuse a transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS {role}"),
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("CREATE DATABASE {role}"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let db_url = |user: &str| {
        let (server, _db) = base
            .rsplit_once('/')
            .expect("AOC_TEST_PG ends in /DATABASE");
        format!(
            "{}/{role}",
            server.replacen("postgres://postgres@", &format!("postgres://{user}@"), 1)
        )
    };
    let mut owner = postgres::Client::connect(&db_url("postgres"), postgres::NoTls).unwrap();
    owner
        .batch_execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .unwrap();
    drop(owner);
    let url = db_url(&role);
    assert!(
        url.contains(&role),
        "AOC_TEST_PG names the postgres user: {base}"
    );
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &url, "--from"])
        .arg(testdata("osv-rustsec")));
    admin
        .batch_execute(&format!("DROP DATABASE {role}"))
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {role}")).unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("permission denied for schema public"), "{err}");
    assert_each_cause_once(&err);
    assert_eq!(err.matches("permission denied").count(), 1, "{err}");
    assert_eq!(err.matches("db error").count(), 1, "{err}");
}

// ---- smaller contract points ---------------------------------------------------------------

#[test]
fn since_takes_a_date_as_well_as_rfc3339_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_documents(dir.path());
    // The documents were ingested at 2025-11-24T16:00:00Z (SOURCE_DATE_EPOCH).
    for (since, checked) in [
        ("2025-11-24", 8),
        ("2025-11-25", 0),
        ("2025-11-24T16:00:00Z", 8),
        ("2025-11-24T16:00:01Z", 0),
    ] {
        let (code, out, err) = run(stella()
            .args([
                "aoc", "verify", "--format", "json", "--since", since, "--input",
            ])
            .arg(&raw));
        assert_eq!(code, 0, "--since {since}: {err}");
        let r = json_stdout("verify --since", &out);
        assert_eq!(r["documents_checked"], checked, "--since {since}");
        assert_eq!(
            r["documents_checked"].as_u64().unwrap() + r["documents_skipped"].as_u64().unwrap(),
            8
        );
    }
    let (_, out, _) = run(stella()
        .args([
            "aoc",
            "verify",
            "--format",
            "json",
            "--since",
            "2025-11-24",
            "--input",
        ])
        .arg(&raw));
    assert_eq!(json_stdout("since", &out)["since"], "2025-11-24T00:00:00Z");
    let (code, _, err) = run(stella()
        .args(["aoc", "verify", "--since", "2025-13-01", "--input"])
        .arg(&raw));
    assert_eq!(code, 2);
    assert!(err.contains("a date (2024-01-01)"), "{err}");
}

#[test]
fn a_dry_run_says_what_it_would_write_and_needs_no_store() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, err) = run(stella()
        .current_dir(cwd.path())
        .env_remove("STELLA_STORE")
        .args(["aoc", "backfill", "--dry-run", "--from"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("report sha256:"), "{out}");
    assert!(err.contains("5 records: would write 5"), "{err}");
    assert!(!err.contains("written,"), "{err}");
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "a dry run creates nothing"
    );
}

#[test]
fn a_backfill_without_a_store_is_refused_and_creates_none() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, err) = run(stella()
        .current_dir(cwd.path())
        .env_remove("STELLA_STORE")
        .args(["aoc", "backfill", "--format", "json", "--from"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--store") && err.contains("STELLA_STORE"),
        "{err}"
    );
    assert_failure_json("no store", 2, &out);
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "no ./stella-aoc.db or anything else"
    );
    // STELLA_STORE names it as well as --store does.
    let db = cwd.path().join("env.db");
    let (code, _, err) = run(stella()
        .current_dir(cwd.path())
        .env("STELLA_STORE", format!("sqlite://{}", db.display()))
        .args(["aoc", "backfill", "--from"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 0, "{err}");
    assert!(db.is_file());
}

#[test]
fn rejected_records_point_to_rejects_when_it_was_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.ndjson");
    let doc = std::fs::read_to_string(testdata("osv-other/GO-2021-0113.json")).unwrap();
    let compact: Value = serde_json::from_str(&doc).unwrap();
    std::fs::write(&input, format!("{compact}\n{{\"not\": \"an advisory\"}}\n")).unwrap();
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &store, "--from"])
        .arg(&input));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 rejected"), "{err}");
    assert!(err.contains("--rejects FILE"), "{err}");
    // Given --rejects, the records are there and no hint is needed.
    let rejects = dir.path().join("rejects.ndjson");
    let (code, _, err) = run(stella()
        .args(["aoc", "backfill", "--store", &store, "--rejects"])
        .arg(&rejects)
        .arg("--from")
        .arg(&input));
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("--rejects FILE"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap().lines().count(),
        1
    );
}
