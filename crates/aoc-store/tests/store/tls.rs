//! PostgreSQL as production runs it: a real server this test starts itself with `ssl=on`, a
//! certificate authority generated here, and a `pg_hba.conf` that accepts TCP connections over
//! TLS only (`hostssl`), one SCRAM user among them. Every case opens the store as stella does
//! (`Store::open`) and either checks that the session really is encrypted (`pg_stat_ssl`) or
//! that the refusal says why.
//!
//! Needs the PostgreSQL server binaries (Debian package `postgresql`; `PG_BIN` names another
//! directory); as root the cluster runs as the `postgres` user, as initdb requires. Without the
//! binaries the test says so loudly and passes, except under `CI`, where it fails.
//!
//! One test function on purpose, whose cases run in a child process of this test binary
//! ([`child_entry_point`]): they set libpq's environment variables (`PGSSLMODE`, `PGPASSWORD`,
//! `HOME`, ...), which are process-wide, so no other test of the binary may run beside them, and
//! they share one server.

use aoc_store::Store;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// The SCRAM user's password: a colon and a backslash, which the password file must escape.
const SCRAM_PASSWORD: &str = r"pa:ss\word";
const SCRAM_USER: &str = "aoc_scram";
/// A second SCRAM user, whose password holds every character a URL reserves in its user info.
const RESERVED_USER: &str = "aoc_reserved";
const RESERVED_PASSWORD: &str = "p/a?s@s#w%o:rd";
const RESERVED_ENCODED: &str = "p%2Fa%3Fs%40s%23w%25o%3Ard";

// ---------------------------------------------------------------------------------------------
// The throwaway cluster

/// Where the server binaries are: `PG_BIN`, else the newest Debian `postgresql` package, else
/// `pg_config --bindir`.
fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && bin.join("initdb").is_file()).then_some(bin)
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// A cluster in a temporary directory, stopped (`pg_ctl -m immediate`) and removed on drop,
/// panics included.
struct Cluster {
    bin: PathBuf,
    /// `Some((uid, gid))` of `postgres` when we are root: server commands run as that user.
    owner: Option<(u32, u32)>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server binary as the cluster's owner; panics with its output on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            let log = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut cmd = match self.owner {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The owner may not be allowed into the test's working directory.
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Writes a file the server reads, owned by the server's user, with `mode`.
    fn write_owned(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        path
    }

    /// initdb, the TLS server files, hostssl-only access, start on a free loopback port.
    fn start(bin: PathBuf, server_cert_pem: &str, server_key_pem: &str) -> Cluster {
        let owner = if id(&["-u"]) == Some(0) {
            match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
                (Some(uid), Some(gid)) => Some((uid, gid)),
                _ => panic!("running as root needs a `postgres` user: initdb refuses root"),
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("aoc-pg-tls-")
            .tempdir()
            .unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin,
            owner,
            dir,
            port,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "-A",
                "trust",
            ],
        );
        let cert = cluster.write_owned("server.crt", server_cert_pem, 0o644);
        // The server refuses a key others can read.
        let key = cluster.write_owned("server.key", server_key_pem, 0o600);
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
             password_encryption = 'scram-sha-256'\nfsync = off\n",
            cluster.dir.path().display(),
            cert.display(),
            key.display()
        );
        let mut postgresql_conf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
        postgresql_conf.push_str(&conf);
        fs::write(data.join("postgresql.conf"), postgresql_conf).unwrap();
        // TCP only over TLS; the administrator comes in over the Unix socket.
        fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local   all all trust\n\
                 hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
                 hostssl all {SCRAM_USER} ::1/128 scram-sha-256\n\
                 hostssl all {RESERVED_USER} 127.0.0.1/32 scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostssl all all ::1/128 trust\n"
            ),
        )
        .unwrap();
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        cluster
    }

    /// The superuser over the Unix socket (no TLS there, as in libpq).
    fn admin(&self) -> postgres::Client {
        postgres::Config::new()
            .user("postgres")
            .dbname("postgres")
            .host_path(self.dir.path())
            .port(self.port)
            .connect(postgres::NoTls)
            .expect("the superuser connects over the Unix socket")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A CA on P-384, so the certificates it signs are `ecdsa-with-SHA384`: SCRAM's channel binding
/// then hashes with SHA-384, not the common SHA-256.
fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A server certificate for the DNS name `localhost` only (not for the address 127.0.0.1).
fn server_cert(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "aoc test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

// ---------------------------------------------------------------------------------------------
// Cases

/// Opens the store; on success, whether the session is encrypted.
fn open(url: &str) -> Result<bool, String> {
    match Store::open(url) {
        Ok(Store::Postgres(mut pg)) => Ok(pg
            .client()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map_err(|e| e.to_string())?
            .get(0)),
        Ok(Store::Sqlite(_)) => Err("a postgres:// URL opened a SQLite store".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn connects_over_tls(url: &str) -> Result<(), String> {
    match open(url)? {
        true => Ok(()),
        false => Err("connected, but without TLS".into()),
    }
}

/// Refused, with a message containing every one of `needles` and never the SCRAM password.
fn refused(url: &str, needles: &[&str]) -> Result<(), String> {
    match open(url) {
        Ok(tls) => Err(format!("connected (TLS: {tls}); expected a refusal")),
        Err(e)
            if [
                SCRAM_PASSWORD,
                RESERVED_PASSWORD,
                RESERVED_ENCODED,
                "s@s#w",
                "%40s%23",
            ]
            .iter()
            .any(|p| e.contains(p)) =>
        {
            Err(format!("the message shows the password: {e}"))
        }
        Err(e) => match needles.iter().find(|n| !e.contains(*n)) {
            Some(missing) => Err(format!("the message lacks {missing:?}: {e}")),
            None => {
                eprintln!("  refused as expected: {e}");
                Ok(())
            }
        },
    }
}

fn set_env(vars: &[(&str, Option<&str>)]) {
    for (name, value) in vars {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

/// Set in [`child_entry_point`]'s process by its parent test; the entry point does nothing
/// without it (a run with `--include-ignored` must not touch its own environment).
const CHILD: &str = "AOC_STORE_TLS_CHILD";
/// What the child prints once every case passed: the parent's proof that the cases ran (an
/// `--exact` name that matched nothing would exit 0 too).
const CASES_PASSED: &str = "AOC_TLS_CASES_PASSED";

#[test]
fn tls_sslmodes_and_passwords_against_a_real_server() {
    if pg_bin().is_none() {
        aoc_testkit::skip(
            "aoc-store TLS tests: no PostgreSQL server binaries (initdb). Install the Debian \
             package `postgresql`, or set PG_BIN to their directory.",
        );
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "tls::child_entry_point",
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The cases' progress, shown with the parent's own output.
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "the TLS cases failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(CASES_PASSED),
        "the child ran no TLS case:\n{stdout}\n{stderr}"
    );
}

/// Not a test of its own: `tls_sslmodes_and_passwords_against_a_real_server` runs it in a child
/// process, alone there, since its cases set the process's environment.
#[test]
#[ignore = "helper entry point: the TLS test runs it in a child process"]
fn child_entry_point() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let bin = pg_bin().expect("the parent test found the server binaries");

    let ca = new_ca("aoc test CA");
    let other = new_ca("aoc other CA");
    let (cert_pem, key_pem) = server_cert(&ca);
    let cluster = Cluster::start(bin, &cert_pem, &key_pem);
    let port = cluster.port;

    let mut admin = cluster.admin();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{}'",
            SCRAM_PASSWORD.replace('\'', "''")
        ))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {SCRAM_USER} OWNER {SCRAM_USER}"))
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {RESERVED_USER} LOGIN PASSWORD '{RESERVED_PASSWORD}'"
        ))
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {RESERVED_USER} OWNER {RESERVED_USER}"
        ))
        .unwrap();

    // The client side: its own HOME (no ~/.postgresql/root.crt, no ~/.pgpass of the machine).
    let client = tempfile::tempdir().unwrap();
    let home = client.path().join("home");
    fs::create_dir(&home).unwrap();
    let ca_pem = client.path().join("ca.pem");
    let other_pem = client.path().join("other-ca.pem");
    fs::write(&ca_pem, ca.cert.pem()).unwrap();
    fs::write(&other_pem, other.cert.pem()).unwrap();
    let (ca_path, other_path) = (ca_pem.to_str().unwrap(), other_pem.to_str().unwrap());
    // Every libpq variable the store reads is this test's to set, none the machine's.
    let clean_env = || {
        set_env(&[("HOME", home.to_str()), ("PGPASSWORD", None)]);
        for (_, var) in aoc_store::ENV_DEFAULTS {
            std::env::remove_var(var);
        }
    };
    clean_env();

    let pg =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");
    let scram = |host: &str, query: &str| {
        format!("postgres://{SCRAM_USER}@{host}:{port}/{SCRAM_USER}?{query}")
    };
    let not_trusted = format!("TLS: server certificate not trusted by sslrootcert {other_path}");
    let no_hba =
        r#"no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", "#
            .to_owned()
            + "no encryption";
    let bad_password = format!(r#"password authentication failed for user "{SCRAM_USER}""#);

    type Case<'a> = (&'a str, Box<dyn Fn() -> Result<(), String> + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "require: TLS, certificate not checked",
            Box::new(|| connects_over_tls(&pg("127.0.0.1", "sslmode=require"))),
        ),
        (
            "no sslmode: prefer, and the server offers TLS",
            Box::new(|| connects_over_tls(&pg("127.0.0.1", "application_name=aoc"))),
        ),
        (
            "verify-full with the right CA and host name",
            Box::new(|| {
                connects_over_tls(&pg(
                    "localhost",
                    &format!("sslmode=verify-full&sslrootcert={ca_path}"),
                ))
            }),
        ),
        (
            "verify-full with another CA is refused",
            Box::new(|| {
                refused(
                    &pg(
                        "127.0.0.1",
                        &format!("sslmode=verify-full&sslrootcert={other_path}"),
                    ),
                    &[&not_trusted, "sslmode=verify-full"],
                )
            }),
        ),
        (
            "verify-ca with another CA is refused",
            Box::new(|| {
                refused(
                    &pg(
                        "127.0.0.1",
                        &format!("sslmode=verify-ca&sslrootcert={other_path}"),
                    ),
                    &[&not_trusted],
                )
            }),
        ),
        (
            "verify-full to 127.0.0.1, a certificate for localhost: refused",
            Box::new(|| {
                refused(
                    &pg(
                        "127.0.0.1",
                        &format!("sslmode=verify-full&sslrootcert={ca_path}"),
                    ),
                    &[
                        "TLS: host name 127.0.0.1 does not match the server certificate \
                         (which names localhost)",
                    ],
                )
            }),
        ),
        (
            "verify-ca to 127.0.0.1: the chain is checked, the name is not",
            Box::new(|| {
                connects_over_tls(&pg(
                    "127.0.0.1",
                    &format!("sslmode=verify-ca&sslrootcert={ca_path}"),
                ))
            }),
        ),
        (
            "require with sslrootcert behaves as verify-ca",
            Box::new(|| {
                refused(
                    &pg(
                        "127.0.0.1",
                        &format!("sslmode=require&sslrootcert={other_path}"),
                    ),
                    &[&not_trusted],
                )?;
                connects_over_tls(&pg(
                    "127.0.0.1",
                    &format!("sslmode=require&sslrootcert={ca_path}"),
                ))
            }),
        ),
        (
            "~/.postgresql/root.crt makes require verify the chain",
            Box::new(|| {
                let dir = home.join(".postgresql");
                fs::create_dir_all(&dir).unwrap();
                fs::copy(&other_pem, dir.join("root.crt")).unwrap();
                let result = refused(
                    &pg("127.0.0.1", "sslmode=require"),
                    &["not trusted by sslrootcert", "root.crt"],
                );
                fs::remove_dir_all(&dir).unwrap();
                result
            }),
        ),
        (
            "verify-full without any root certificate is a settings error",
            Box::new(|| {
                refused(
                    &pg("localhost", "sslmode=verify-full"),
                    &["root certificate file", "does not exist"],
                )
            }),
        ),
        (
            "disable: the hostssl-only server refuses, and says so",
            Box::new(|| {
                refused(
                    &pg("127.0.0.1", "sslmode=disable"),
                    &["the server said: FATAL", &no_hba],
                )
            }),
        ),
        (
            "allow: plain refused by the server, then TLS",
            Box::new(|| connects_over_tls(&pg("127.0.0.1", "sslmode=allow"))),
        ),
        (
            "a Unix-domain socket never uses TLS, whatever sslmode says (as in libpq)",
            Box::new(|| {
                let url = format!(
                    "postgres://postgres@/postgres?host={}&port={port}&sslmode=verify-full",
                    cluster.dir.path().display()
                );
                match open(&url)? {
                    false => Ok(()),
                    true => Err("TLS over a Unix-domain socket".into()),
                }
            }),
        ),
        (
            "PGSSLMODE and PGSSLROOTCERT when the URL has neither",
            Box::new(|| {
                set_env(&[
                    ("PGSSLMODE", Some("verify-full")),
                    ("PGSSLROOTCERT", Some(ca_path)),
                ]);
                let result =
                    connects_over_tls(&format!("postgres://postgres@localhost:{port}/postgres"))
                        .and_then(|()| {
                            refused(
                                &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                                &["host name 127.0.0.1 does not match", "sslmode=verify-full"],
                            )
                        })
                        // The URL's sslmode wins over the environment's.
                        .and_then(|()| {
                            refused(
                                &format!(
                                    "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
                                ),
                                &[&no_hba],
                            )
                        });
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: PGPASSWORD, with channel binding over TLS required",
            Box::new(|| {
                set_env(&[("PGPASSWORD", Some(SCRAM_PASSWORD))]);
                let result = connects_over_tls(&scram(
                    "localhost",
                    &format!("sslmode=verify-full&sslrootcert={ca_path}&channel_binding=require"),
                ));
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: a wrong PGPASSWORD is refused, naming where the password came from",
            Box::new(|| {
                set_env(&[("PGPASSWORD", Some("wrong"))]);
                let result = refused(
                    &scram("127.0.0.1", "sslmode=require"),
                    &[&bad_password, "(password from PGPASSWORD)"],
                );
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: the URL's password comes before PGPASSWORD, and is never shown",
            Box::new(|| {
                set_env(&[("PGPASSWORD", Some("wrong"))]);
                let encoded = "pa%3Ass%5Cword";
                let url = format!(
                    "postgres://{SCRAM_USER}:{encoded}@127.0.0.1:{port}/{SCRAM_USER}\
                     ?sslmode=require"
                );
                let result = connects_over_tls(&url).and_then(|()| {
                    let wrong = url.replace(encoded, "not-it");
                    match Store::open(&wrong) {
                        Ok(_) => Err("a wrong password in the URL connected".into()),
                        Err(e) if e.to_string().contains("not-it") => {
                            Err(format!("the message shows the password: {e}"))
                        }
                        Err(e) if e.to_string().contains(&bad_password) => Ok(()),
                        Err(e) => Err(format!("unexpected error: {e}")),
                    }
                });
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: a password with / ? @ # % :, percent-encoded in a URL or quoted in a \
             keyword/value string; a wrong one refused without either being shown",
            Box::new(|| {
                let url = |password: &str| {
                    format!(
                        "postgres://{RESERVED_USER}:{password}@127.0.0.1:{port}/{RESERVED_USER}\
                         ?sslmode=require"
                    )
                };
                connects_over_tls(&url(RESERVED_ENCODED))?;
                connects_over_tls(&format!(
                    "host=127.0.0.1 port={port} user={RESERVED_USER} dbname={RESERVED_USER} \
                     sslmode=require password='{RESERVED_PASSWORD}'"
                ))?;
                let bad = format!(r#"password authentication failed for user "{RESERVED_USER}""#);
                refused(&url("p%2Fa%3Fs%40s%23w%25o"), &[&bad])?;
                // Unencoded, the URL is ambiguous: refused before any connection attempt.
                refused(
                    &url(RESERVED_PASSWORD),
                    &["connection settings", "percent-encode"],
                )
            }),
        ),
        (
            "PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGAPPNAME, PGOPTIONS fill a bare \
             postgres://",
            Box::new(|| {
                let port = port.to_string();
                set_env(&[
                    ("PGHOST", Some("127.0.0.1")),
                    ("PGPORT", Some(&port)),
                    ("PGUSER", Some(RESERVED_USER)),
                    ("PGDATABASE", Some(RESERVED_USER)),
                    ("PGSSLMODE", Some("require")),
                    ("PGPASSWORD", Some(RESERVED_PASSWORD)),
                ]);
                let result = connects_over_tls("postgres://")
                    .and_then(|()| {
                        // PGAPPNAME and PGOPTIONS reach the server's session.
                        set_env(&[
                            ("PGAPPNAME", Some("aoc-env-test")),
                            ("PGOPTIONS", Some("-c statement_timeout=12345")),
                        ]);
                        let Ok(Store::Postgres(mut pg)) = Store::open("postgres://") else {
                            return Err("no PostgreSQL store from the environment".into());
                        };
                        let row = pg
                            .client()
                            .query_one(
                                "SELECT current_setting('application_name'), \
                                 current_setting('statement_timeout'), current_database()",
                                &[],
                            )
                            .map_err(|e| e.to_string())?;
                        let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
                        let want = ("aoc-env-test", "12345ms", RESERVED_USER);
                        match (got.0.as_str(), got.1.as_str(), got.2.as_str()) == want {
                            true => Ok(()),
                            false => Err(format!("session settings {got:?}, expected {want:?}")),
                        }
                    })
                    .and_then(|()| {
                        // The URL's own parts win: this user has no such password.
                        refused(
                            &format!("postgres://{SCRAM_USER}@"),
                            &[&bad_password, "(password from PGPASSWORD)"],
                        )
                    });
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: no password anywhere",
            Box::new(|| {
                refused(
                    &scram("127.0.0.1", "sslmode=require"),
                    &["the server asks for a password, and there is none"],
                )
            }),
        ),
        (
            "SCRAM: PGPASSFILE, with escapes; ignored when group-readable",
            Box::new(|| {
                let file = client.path().join("pgpass");
                let escaped = SCRAM_PASSWORD.replace('\\', r"\\").replace(':', r"\:");
                fs::write(
                    &file,
                    format!(
                        "# first match wins\n\
                         127.0.0.1:{port}:postgres:{SCRAM_USER}:not-this-database\n\
                         127.0.0.1:{port}:*:{SCRAM_USER}:{escaped}\n\
                         *:*:*:*:too-late\n"
                    ),
                )
                .unwrap();
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
                set_env(&[("PGPASSFILE", file.to_str())]);
                let url = scram("127.0.0.1", "sslmode=require");
                let result = connects_over_tls(&url).and_then(|()| {
                    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
                    refused(&url, &["the server asks for a password, and there is none"])
                });
                clean_env();
                result
            }),
        ),
        (
            "SCRAM: ~/.pgpass by default, a wrong entry named in the refusal",
            Box::new(|| {
                let file = home.join(".pgpass");
                let escaped = SCRAM_PASSWORD.replace('\\', r"\\").replace(':', r"\:");
                let write = |password: &str| {
                    fs::write(&file, format!("*:*:{SCRAM_USER}:{SCRAM_USER}:{password}\n"))
                        .unwrap();
                    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
                };
                write(&escaped);
                let url = scram(
                    "127.0.0.1",
                    &format!("sslmode=verify-ca&sslrootcert={ca_path}"),
                );
                let result = connects_over_tls(&url).and_then(|()| {
                    write("stale");
                    refused(&url, &[&bad_password, "(password from the password file"])
                });
                fs::remove_file(&file).unwrap();
                result
            }),
        ),
    ];

    let mut failed = Vec::new();
    for (name, case) in &cases {
        eprintln!("case: {name}");
        if let Err(e) = case() {
            eprintln!("  FAILED: {e}");
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    println!("{CASES_PASSED} {}", cases.len());
}
