//! `stella` end to end: real advisories through `sources ingest --dry-run` and `aoc verify --input`.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn stella() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stella"));
    c.env("SOURCE_DATE_EPOCH", "1764000000")
        .env_remove("STELLA_TENANT")
        .env("NO_COLOR", "1");
    c
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// Raw documents for the real samples, as `sources ingest --format ndjson` writes them.
fn raw_documents(dir: &Path) -> PathBuf {
    let (code, out, err) = run(stella()
        .args([
            "sources",
            "ingest",
            "--dry-run",
            "--format",
            "ndjson",
            "--tenant",
            "t1",
            "--input",
        ])
        .arg(testdata("osv-rustsec"))
        .arg(testdata("csaf")));
    assert_eq!(code, 0, "{err}");
    let mut docs = String::new();
    for line in out.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        docs.push_str(&serde_json::to_string(&entry["document"]).unwrap());
        docs.push('\n');
    }
    let path = dir.join("raw.ndjson");
    std::fs::write(&path, docs).unwrap();
    path
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
fn ingest_without_dry_run_refuses_to_write() {
    let (code, _, err) = run(stella()
        .args(["sources", "ingest", "--input"])
        .arg(testdata("osv-rustsec")));
    assert_eq!(code, 2);
    assert!(err.contains("add --dry-run"), "{err}");
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
        eprintln!("SKIPPED: `script` (util-linux) is not installed; no pseudo-terminal to draw on");
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
