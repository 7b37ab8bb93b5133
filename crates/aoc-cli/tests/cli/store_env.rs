//! `STELLA_STORE`: the store of `stella aoc backfill` and `stella aoc verify` when the command
//! line names none. A store or input given on the command line always wins (and never conflicts
//! with the variable), and the URL's password is never printed, not even by `--help`.

use crate::{ingested_documents, run, stella, testdata, write_raw_documents};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECRET: &str = "hunter2-not-printed";

/// Raw documents of the real samples, as `sources ingest --format ndjson` writes them.
fn raw_documents(dir: &Path) -> PathBuf {
    write_raw_documents(dir, &ingested_documents(None, &[testdata("osv-rustsec")]))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn backfill_and_verify_use_stella_store_unless_the_command_line_chooses() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.db").display());
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());

    // backfill: the store from the environment.
    let report = dir.path().join("backfill.json");
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &url)
        .args(["aoc", "backfill", "--no-progress", "--from"])
        .arg(testdata("osv-rustsec"))
        .arg("--report")
        .arg(&report));
    assert_eq!(code, 0, "{err}");
    let report = json(&report);
    assert_eq!(report["store"], url.as_str());
    assert!(report["written"].as_u64().unwrap() > 0, "{report}");
    assert!(dir.path().join("env.db").is_file());

    // verify: the same store, from the environment alone.
    let out = dir.path().join("verify.json");
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &url)
        .args(["aoc", "verify", "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let checked = json(&out);
    assert_eq!(checked["source"], format!("store:{url}").as_str());
    assert_eq!(checked["documents_checked"], report["written"]);

    // --store on the command line wins over the environment.
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &missing)
        .args(["aoc", "verify", "--store", &url, "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["source"], format!("store:{url}").as_str());

    // --input with STELLA_STORE set: the inputs are checked, the variable neither used nor in
    // conflict with them.
    let raw = raw_documents(dir.path());
    let (code, _, err) = run(stella()
        .env("STELLA_STORE", &missing)
        .args(["aoc", "verify", "--output"])
        .arg(&out)
        .arg("--input")
        .arg(&raw));
    assert_eq!(code, 0, "{err}");
    let checked = json(&out);
    assert_eq!(
        checked["source"],
        format!("input:{}", raw.display()).as_str()
    );
    assert_eq!(checked["documents_checked"], report["written"]);
    assert!(!dir.path().join("missing.db").exists());

    // Nothing at all is still a usage error.
    let (code, _, err) = run(stella().args(["aoc", "verify"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--input"), "{err}");
}

#[test]
fn a_password_in_stella_store_is_never_printed() {
    // Nothing listens on port 1 of the loopback address: the connection is refused at once.
    let url = format!("postgres://aoc:{SECRET}@127.0.0.1:1/aoc?sslmode=disable");
    for args in [
        &["aoc", "verify"][..],
        &["aoc", "backfill", "--no-progress", "--from", "-"][..],
    ] {
        let (code, out, err) = run(stella().env("STELLA_STORE", &url).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("postgres://aoc:***@127.0.0.1:1/aoc?sslmode=disable"),
            "{args:?}: {err}"
        );
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{args:?}: {err}"
        );
    }
    for sub in ["verify", "backfill"] {
        let (code, out, err) = run(stella()
            .env("STELLA_STORE", &url)
            .args(["aoc", sub, "--help"]));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("STELLA_STORE"),
            "{sub} --help names the variable:\n{out}"
        );
        assert!(
            !out.contains(SECRET),
            "{sub} --help shows the password:\n{out}"
        );
    }
}

// ---- PostgreSQL store arguments against a real server -----------------------------------------

/// A password holding every character a URL reserves in its user info.
const RESERVED_PASSWORD: &str = "p/a?s@s#w%o:rd";
/// The same, percent-encoded for a URL.
const RESERVED_ENCODED: &str = "p%2Fa%3Fs%40s%23w%25o%3Ard";
const PW_USER: &str = "aoc_reserved_pw";

/// Whether `text` shows any piece of the password: raw, encoded, or six characters of either.
fn leaks(text: &str) -> Option<String> {
    [
        RESERVED_PASSWORD,
        RESERVED_ENCODED,
        "wrong/?@#%:pw",
        "wrong%2F%3F%40%23%25%3Apw",
    ]
    .iter()
    .flat_map(|pw| {
        let chars: Vec<char> = pw.chars().collect();
        chars
            .windows(6)
            .map(|w| w.iter().collect::<String>())
            .collect::<Vec<_>>()
    })
    .find(|piece| text.contains(piece.as_str()))
}

fn assert_no_leak(what: &str, text: &str) {
    if let Some(piece) = leaks(text) {
        panic!("{what} shows the password ({piece:?}):\n{text}");
    }
}

/// A PostgreSQL cluster of this test's own (`scripts/pg-test-cluster.sh` in a directory of its
/// own), where [`PW_USER`] must give its password (SCRAM): the shared test server trusts every
/// connection, so a wrong password would go unnoticed there. Stopped and removed on drop.
struct PasswordCluster {
    dir: PathBuf,
    port: u16,
    /// One cluster at a time: two starting at once could pick the same free port.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl PasswordCluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster.sh")
    }

    /// `None` (after a loud skip; a failure under CI) without the PostgreSQL server binaries.
    fn start(name: &str) -> Option<PasswordCluster> {
        let has_server = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
            .unwrap_or(false)
            || std::env::var_os("PG_BIN").is_some();
        if !has_server {
            let msg = "no PostgreSQL server binaries (initdb): the password tests did NOT run. \
                       Install the Debian package `postgresql`, or set PG_BIN.";
            aoc_testkit::skip(msg);
            return None;
        }
        // In /tmp as the script's own default, not under TMPDIR, which may be private: as root
        // the server runs as `postgres`, which must reach it.
        let guard = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Path::new("/tmp").join(format!("aoc-pg-{name}-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .env("AOC_PG_DIR", &dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port: u16 = std::fs::read_to_string(dir.join("aoc-port"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cluster = PasswordCluster {
            dir,
            port,
            _one_at_a_time: guard,
        };
        // Password authentication for the test's user over TCP; everyone else stays trusted.
        let hba = cluster.dir.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("host all {PW_USER} 127.0.0.1/32 scram-sha-256\n{rest}"),
        )
        .unwrap();
        let mut admin = cluster.admin();
        for sql in [
            format!("CREATE ROLE {PW_USER} LOGIN PASSWORD '{RESERVED_PASSWORD}'"),
            format!("CREATE DATABASE {PW_USER} OWNER {PW_USER}"),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            admin.batch_execute(&sql).unwrap();
        }
        // The reload is asynchronous: wait until a connection without a password is refused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={PW_USER} dbname={PW_USER}",
                cluster.port
            ),
            postgres::NoTls,
        )
        .is_ok()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "pg_hba.conf not reloaded"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(cluster)
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// The test user's URL with `password` (already percent-encoded).
    fn url(&self, password: &str) -> String {
        format!(
            "postgres://{PW_USER}:{password}@127.0.0.1:{}/{PW_USER}?sslmode=disable",
            self.port
        )
    }

    /// What every message and report must call the store.
    fn shown(&self) -> String {
        format!(
            "postgres://{PW_USER}:***@127.0.0.1:{}/{PW_USER}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PasswordCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .env("AOC_PG_DIR", &self.dir)
            .output();
    }
}

/// Every output of one run: exit code, stdout, stderr, and the files it wrote.
fn run_all(cmd: &mut Command, files: &[&Path]) -> (i32, String) {
    let (code, out, err) = run(cmd);
    let mut all = format!("--- stdout\n{out}\n--- stderr\n{err}\n");
    for f in files {
        if let Ok(text) = std::fs::read_to_string(f) {
            all.push_str(&format!("--- {}\n{text}\n", f.display()));
        }
    }
    (code, all)
}

#[test]
fn a_password_with_reserved_characters_connects_and_is_never_printed() {
    let Some(cluster) = PasswordCluster::start("reserved-pw") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url(RESERVED_ENCODED);
    let shown = cluster.shown();
    let keywords = format!(
        "host=127.0.0.1 port={} user={PW_USER} dbname={PW_USER} sslmode=disable \
         password='{RESERVED_PASSWORD}'",
        cluster.port
    );

    // Success: backfill with --store (report file and JSON on stdout), then verify from
    // STELLA_STORE, as a URL and as a keyword/value string.
    let report = dir.path().join("backfill.json");
    let (code, all) = run_all(
        stella()
            .args([
                "aoc",
                "backfill",
                "--no-progress",
                "--format",
                "json",
                "--store",
                &url,
            ])
            .arg("--from")
            .arg(testdata("osv-rustsec"))
            .arg("--report")
            .arg(&report),
        &[&report],
    );
    assert_eq!(code, 0, "{all}");
    assert_no_leak("backfill --store", &all);
    let written = json(&report);
    assert_eq!(written["store"], shown.as_str());
    assert!(written["written"].as_u64().unwrap() > 0, "{written}");

    for store in [&url, &keywords] {
        let out = dir.path().join("verify.json");
        let (code, all) = run_all(
            stella()
                .env("STELLA_STORE", store)
                .args(["aoc", "verify", "--format", "json", "--output"])
                .arg(&out),
            &[&out],
        );
        assert_eq!(code, 0, "{all}");
        assert_no_leak("verify from STELLA_STORE", &all);
        let checked = json(&out);
        assert_eq!(checked["source"], format!("store:{shown}").as_str());
        assert_eq!(checked["documents_checked"], written["written"]);
    }

    // Failures: a wrong password (with reserved characters of its own) and a port where nothing
    // listens, from --store and from STELLA_STORE, in text and JSON.
    let wrong = cluster.url("wrong%2F%3F%40%23%25%3Apw");
    let unreachable = url.replace(&format!(":{}/", cluster.port), ":1/");
    for (bad, why) in [
        (&wrong, "password authentication failed"),
        (&unreachable, "cannot connect to PostgreSQL at 127.0.0.1:1"),
    ] {
        for from_env in [false, true] {
            for args in [
                &["aoc", "verify", "--format", "json"][..],
                &["aoc", "backfill", "--no-progress", "--format", "json"][..],
                &["aoc", "backfill", "--no-progress"][..],
            ] {
                let report = dir.path().join("failed.json");
                let _ = std::fs::remove_file(&report);
                let mut cmd = stella();
                cmd.args(args);
                if args[1] == "backfill" {
                    cmd.arg("--from").arg(testdata("osv-rustsec"));
                    cmd.arg("--report").arg(&report);
                }
                if from_env {
                    cmd.env("STELLA_STORE", bad);
                } else {
                    cmd.args(["--store", bad]);
                }
                let (code, all) = run_all(&mut cmd, &[&report]);
                let case = format!("{args:?} (STELLA_STORE: {from_env})");
                assert_eq!(code, 2, "{case}: {all}");
                assert!(all.contains(why), "{case}: {all}");
                assert_no_leak(&case, &all);
            }
        }
    }
}

#[test]
fn an_ambiguous_url_is_refused_before_connecting_and_never_downgraded() {
    // The '?' of the password would end the user info for URL syntax, the '@' ends it for the
    // PostgreSQL client: a split at the first '?' once lost `sslmode=require` this way.
    for store in [
        "postgres://aoc:pa?ss/w0rd@127.0.0.1:1/db?sslmode=require",
        "postgres://aoc:pa/ss@w0rd@127.0.0.1:1/db?sslmode=require",
    ] {
        for from_env in [false, true] {
            let mut cmd = stella();
            cmd.args(["aoc", "verify"]);
            if from_env {
                cmd.env("STELLA_STORE", store);
            } else {
                cmd.args(["--store", store]);
            }
            let (code, out, err) = run(&mut cmd);
            assert_eq!(code, 2, "{store}: {err}");
            assert!(err.contains("percent-encode"), "{store}: {err}");
            assert!(
                err.contains("'?' as %3F") && err.contains("'@' as %40"),
                "{err}"
            );
            // Refused as settings, before any connection attempt.
            assert!(err.contains("connection settings"), "{store}: {err}");
            assert!(!err.contains("cannot connect"), "{store}: {err}");
            for piece in ["pa?ss", "ss/w0rd", "pa/ss", "ss@w0rd", "w0rd"] {
                assert!(
                    !out.contains(piece) && !err.contains(piece),
                    "{piece}: {err}"
                );
            }
        }
    }
}

#[test]
fn libpq_variables_fill_a_bare_postgres_url_against_the_real_server() {
    let Some(cluster) = PasswordCluster::start("pg-env") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = cluster.port.to_string();
    // A database named unlike the user: libpq's default database is the user's name.
    const DB: &str = "aoc_env_store";
    cluster
        .admin()
        .batch_execute(&format!("CREATE DATABASE {DB} OWNER {PW_USER}"))
        .unwrap();
    let pg_env = |cmd: &mut Command| {
        cmd.env("PGPORT", &port)
            .env("PGUSER", PW_USER)
            .env("PGDATABASE", DB)
            .env("PGPASSWORD", RESERVED_PASSWORD)
            .env("PGSSLMODE", "disable")
            .env("PGAPPNAME", "aoc-pg-env-test");
    };
    // Host from the URL, everything else from the environment; then not even the host.
    for (store, host_env) in [("postgres://127.0.0.1", false), ("postgres://", true)] {
        let report = dir.path().join("backfill.json");
        let mut cmd = stella();
        pg_env(&mut cmd);
        if host_env {
            cmd.env("PGHOST", "127.0.0.1");
        }
        let (code, all) = run_all(
            cmd.args(["aoc", "backfill", "--no-progress", "--store", store])
                .arg("--from")
                .arg(testdata("osv-rustsec"))
                .arg("--report")
                .arg(&report),
            &[&report],
        );
        assert_eq!(code, 0, "{store}: {all}");
        assert_no_leak(store, &all);
        assert_eq!(
            json(&report)["store"],
            format!(
                "postgres://{PW_USER}@127.0.0.1:{port}/{DB}\
                 ?application_name=aoc-pg-env-test&sslmode=disable"
            )
            .as_str(),
            "{store}"
        );
    }
    // The variables really are what connects: without PGPORT the default port has no server.
    let mut cmd = stella();
    pg_env(&mut cmd);
    cmd.env_remove("PGPORT");
    let (code, _, err) = run(cmd.args(["aoc", "verify", "--store", "postgres://127.0.0.1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("127.0.0.1:5432"), "{err}");
}
