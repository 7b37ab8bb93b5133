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
    let text = String::from_utf8(out.stdout).unwrap();
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
