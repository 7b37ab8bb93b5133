//! Append throughput of the raw store on both engines, against PostgreSQL's bare `COPY` of the
//! same documents into `(id text, doc jsonb)` (the upstream runbook's method, docs/ARCHITECTURE.md §11).
//!
//!   AOC_BENCH_DOCS=1000000 AOC_TEST_PG=postgres://postgres@127.0.0.1:55432/postgres \
//!       cargo bench -p aoc-store --bench append
//!
//! Documents are real RustSec OSV advisories (`../shared/corpora/osv-rustsec`, else the five in
//! `testdata/`), mapped as the runner maps them; upstream ids and `modified` are varied so that every
//! advisory gets 5 revisions spread across batches (heads are found in the store, not the batch).
//! Each engine runs in its own child process so that peak RSS (VmHWM) is its own.

use aoc_contract::{map_document, MapContext};
use aoc_store::Store;
use serde_json::Value;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BATCH: usize = 500;
const REVISIONS_PER_ADVISORY: usize = 5;

fn main() {
    if let Ok(role) = std::env::var("AOC_BENCH_CHILD") {
        let n = docs_wanted();
        let result = match role.as_str() {
            "sqlite" => {
                let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
                let url = format!("sqlite://{}/bench.db", dir.path().display());
                append_all(&url, n)
            }
            "postgres" => append_all(&std::env::var("AOC_BENCH_URL").unwrap(), n),
            "copy" => bare_copy(&std::env::var("AOC_BENCH_URL").unwrap(), n),
            other => panic!("unknown AOC_BENCH_CHILD {other}"),
        };
        println!("{}", result.to_line());
        return;
    }
    let n = docs_wanted();
    println!(
        "aoc-store append: {n} documents, batches of {BATCH}, {REVISIONS_PER_ADVISORY} revisions per advisory, corpus {}",
        corpus_dir().display()
    );
    let mut results = vec![("sqlite", child("sqlite", None))];
    match std::env::var("AOC_TEST_PG") {
        Err(_) => println!("PostgreSQL skipped: set AOC_TEST_PG (see scripts/pg-test-cluster.sh)"),
        Ok(admin_url) => {
            let db = format!("aoc_bench_{}", std::process::id());
            let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap();
            let url = with_database(&admin_url, &db);
            results.push(("postgres", child("postgres", Some(&url))));
            results.push(("pg bare COPY jsonb", child("copy", Some(&url))));
            admin
                .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .unwrap();
        }
    }
    println!(
        "{:<20} {:>8} {:>7} {:>8} {:>8} {:>11} {:>11} {:>12} {:>8}",
        "engine",
        "docs/s",
        "MB/s",
        "store s",
        "wall s",
        "client CPU",
        "server CPU",
        "docs/CPU-s",
        "RSS MiB"
    );
    for (name, r) in &results {
        let cpu = (r.client_cpu + r.server_cpu).as_secs_f64();
        println!(
            "{:<20} {:>8.0} {:>7.1} {:>8.2} {:>8.2} {:>11.2} {:>11.2} {:>12.0} {:>8.1}",
            name,
            r.docs as f64 / r.store.as_secs_f64(),
            r.bytes as f64 / 1e6 / r.store.as_secs_f64(),
            r.store.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.client_cpu.as_secs_f64(),
            r.server_cpu.as_secs_f64(),
            r.docs as f64 / cpu,
            r.rss_kib as f64 / 1024.0
        );
    }
    if let [_, (_, pg), (_, copy)] = &results[..] {
        println!(
            "postgres store time / bare COPY time = {:.2}, CPU time ratio = {:.2} (target <= 2.0)",
            pg.store.as_secs_f64() / copy.store.as_secs_f64(),
            (pg.client_cpu + pg.server_cpu).as_secs_f64()
                / (copy.client_cpu + copy.server_cpu).as_secs_f64()
        );
    }
    println!(
        "load average now: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn docs_wanted() -> usize {
    std::env::var("AOC_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

struct RunResult {
    docs: usize,
    bytes: usize,
    /// Time inside the store (or COPY) only, not generating documents.
    store: Duration,
    wall: Duration,
    rss_kib: u64,
    /// CPU time spent in the timed sections by this process and by the PostgreSQL backend
    /// serving it: throughput per CPU-second does not depend on what else the machine runs.
    client_cpu: Duration,
    server_cpu: Duration,
}

impl RunResult {
    fn to_line(&self) -> String {
        format!(
            "RESULT {} {} {} {} {} {} {}",
            self.docs,
            self.bytes,
            self.store.as_nanos(),
            self.wall.as_nanos(),
            self.rss_kib,
            self.client_cpu.as_nanos(),
            self.server_cpu.as_nanos()
        )
    }

    fn parse(line: &str) -> RunResult {
        let f: Vec<u128> = line
            .trim_start_matches("RESULT ")
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        RunResult {
            docs: f[0] as usize,
            bytes: f[1] as usize,
            store: Duration::from_nanos(f[2] as u64),
            wall: Duration::from_nanos(f[3] as u64),
            rss_kib: f[4] as u64,
            client_cpu: Duration::from_nanos(f[5] as u64),
            server_cpu: Duration::from_nanos(f[6] as u64),
        }
    }
}

fn child(role: &str, url: Option<&str>) -> RunResult {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("AOC_BENCH_CHILD", role);
    if let Some(url) = url {
        cmd.env("AOC_BENCH_URL", url);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{role} child failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.starts_with("RESULT ")).unwrap();
    RunResult::parse(line)
}

fn corpus_dir() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    std::env::var_os("AOC_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shared = root.join("../shared/corpora/osv-rustsec");
            if shared.is_dir() {
                shared
            } else {
                root.join("testdata/osv-rustsec")
            }
        })
}

fn load_corpus() -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Generates documents `range` of the run: document i is corpus entry i % C as advisory
/// `{id}-G{g}`, revision r (its `modified` moved on by r days).
struct Generator {
    corpus: Vec<Value>,
    buf: Vec<u8>,
    ctx: MapContext,
}

impl Generator {
    fn new() -> Generator {
        Generator {
            corpus: load_corpus(),
            buf: Vec::with_capacity(64 * 1024),
            ctx: MapContext {
                tenant: "bench".into(),
                vendor: None,
                connector_version: "0.1.0".into(),
                retrieved_at: "2026-11-26T16:00:00Z".into(),
                ingested_at: "2026-11-26T16:00:00Z".into(),
            },
        }
    }

    fn doc(&mut self, i: usize) -> Value {
        let c = self.corpus.len();
        let cycle = i / c;
        let (group, rev) = (
            cycle / REVISIONS_PER_ADVISORY,
            cycle % REVISIONS_PER_ADVISORY,
        );
        let mut raw = self.corpus[i % c].clone();
        let id = format!("{}-G{group}", raw["id"].as_str().unwrap());
        raw["id"] = Value::String(id);
        raw["modified"] = Value::String(format!("2030-01-01T00:00:{rev:02}Z"));
        map_document(raw, &self.ctx, &mut self.buf)
            .unwrap()
            .into_value()
    }

    fn batch(&mut self, start: usize, end: usize) -> Vec<Value> {
        (start..end).map(|i| self.doc(i)).collect()
    }
}

fn append_all(url: &str, n: usize) -> RunResult {
    let wall = Instant::now();
    let mut store = Store::open(url).unwrap();
    let backend = match &mut store {
        Store::Postgres(pg) => Some(backend_pid(pg.client())),
        Store::Sqlite(_) => None,
    };
    let server_start = backend.map_or(Duration::ZERO, cpu_time);
    let mut generator = Generator::new();
    let (mut in_store, mut bytes, mut written) = (Duration::ZERO, 0, 0);
    let mut client_cpu = Duration::ZERO;
    for start in (0..n).step_by(BATCH) {
        let docs = generator.batch(start, (start + BATCH).min(n));
        let (t, c) = (Instant::now(), cpu_time(std::process::id()));
        let out = store.append_batch(&docs, None).unwrap();
        in_store += t.elapsed();
        client_cpu += cpu_time(std::process::id()) - c;
        written += out.written();
        bytes += out
            .docs
            .iter()
            .map(|d| match d {
                aoc_store::DocOutcome::Written(w) => w.json.len(),
                aoc_store::DocOutcome::Noop { .. } => 0,
            })
            .sum::<usize>();
    }
    let server_cpu = backend.map_or(Duration::ZERO, |pid| cpu_time(pid) - server_start);
    assert_eq!(written, n, "every generated document is a new revision");
    assert_eq!(store.counts().unwrap().documents, n as i64);
    RunResult {
        docs: n,
        bytes,
        store: in_store,
        wall: wall.elapsed(),
        rss_kib: peak_rss_kib(),
        client_cpu,
        server_cpu,
    }
}

/// The baseline: the same documents as NDJSON, written to a file first (not timed), then one
/// `COPY ... FROM STDIN` (text format) into a bare `(id text, doc jsonb)` table.
fn bare_copy(url: &str, n: usize) -> RunResult {
    let wall = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.copy");
    let mut generator = Generator::new();
    let mut bytes = 0;
    {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        for i in 0..n {
            let doc = generator.doc(i);
            let json = serde_json::to_string(&doc).unwrap();
            bytes += json.len();
            copy_text_field(&mut out, doc["_id"].as_str().unwrap());
            out.write_all(b"\t").unwrap();
            copy_text_field(&mut out, &json);
            out.write_all(b"\n").unwrap();
        }
        out.flush().unwrap();
    }
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE bare_copy (id text, doc jsonb)")
        .unwrap();
    let backend = backend_pid(&mut client);
    let (t, c, sc) = (
        Instant::now(),
        cpu_time(std::process::id()),
        cpu_time(backend),
    );
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    let mut writer = client
        .copy_in("COPY bare_copy (id, doc) FROM STDIN")
        .unwrap();
    loop {
        let chunk = reader.fill_buf().unwrap();
        if chunk.is_empty() {
            break;
        }
        writer.write_all(chunk).unwrap();
        let len = chunk.len();
        reader.consume(len);
    }
    let copied = writer.finish().unwrap();
    let store = t.elapsed();
    let (client_cpu, server_cpu) = (cpu_time(std::process::id()) - c, cpu_time(backend) - sc);
    assert_eq!(copied, n as u64);
    RunResult {
        docs: n,
        bytes,
        store,
        wall: wall.elapsed(),
        rss_kib: peak_rss_kib(),
        client_cpu,
        server_cpu,
    }
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_text_field(out: &mut impl Write, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.write_all(&s.as_bytes()[start..i]).unwrap();
        out.write_all(esc).unwrap();
        start = i + 1;
    }
    out.write_all(&s.as_bytes()[start..]).unwrap();
}

fn backend_pid(client: &mut postgres::Client) -> u32 {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    pid as u32
}

/// utime + stime of a process (the PostgreSQL server is local, so its backend's /proc is ours
/// to read), in clock ticks of 1/100 s (USER_HZ is 100 on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Duration::from_millis(10 * f.iter().sum::<u64>())
}

fn peak_rss_kib() -> u64 {
    let mut status = String::new();
    std::fs::File::open("/proc/self/status")
        .and_then(|mut f| f.read_to_string(&mut status))
        .unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").unwrap() + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{head}{authority}/{database}{query}")
}
