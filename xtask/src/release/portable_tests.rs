//! The kit's `stella` where the sites are: held to the glibc floor, free of test-only code, and
//! started through Debian 11's own glibc 2.31 loader (`scripts/fetch-old-glibc.sh` unpacks the
//! package into `target/third-party/glibc-2.31`; nothing is installed) to print its version,
//! verify its own kit, load its dataset into SQLite and connect to PostgreSQL with
//! `sslmode=verify-full`.
//!
//! Without the unpacked glibc (or without PostgreSQL) the test says so loudly and passes, except
//! with `CI` or `AOC_THIRD_PARTY=1` set, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::kit::glibc;
use crate::release::tests::{kits, root};

/// The unpacked glibc 2.31: its loader and library directory.
struct OldGlibc {
    loader: PathBuf,
    lib: PathBuf,
}

fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    set("CI") || set("AOC_THIRD_PARTY")
}

fn old_glibc() -> Option<OldGlibc> {
    let lib = root().join("target/third-party/glibc-2.31/lib/x86_64-linux-gnu");
    let loader = lib.join("ld-2.31.so");
    if loader.is_file() {
        return Some(OldGlibc { loader, lib });
    }
    assert!(
        !required(),
        "{} is missing: run sh scripts/fetch-old-glibc.sh (xtask/third-party/setup.sh runs it)",
        loader.display()
    );
    aoc_testkit::skip(
        "the old-glibc run needs Debian 11's glibc unpacked: run sh \
         scripts/fetch-old-glibc.sh (CI or AOC_THIRD_PARTY=1 makes this a failure)",
    );
    None
}

impl OldGlibc {
    /// `ld-2.31.so --library-path LIB stella ARGS...`, in an environment of PATH and TMPDIR.
    fn stella(&self, stella: &Path, args: &[&str]) -> Output {
        Command::new(&self.loader)
            .arg("--library-path")
            .arg(&self.lib)
            .arg(stella)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TMPDIR", std::env::temp_dir())
            .output()
            .unwrap()
    }

    /// `stella aoc backfill` of the pinned dataset into `store`, its report as JSON on stdout.
    fn load(&self, stella: &Path, dataset: &Path, hash: &str, store: &str) -> Output {
        let from = dataset.to_str().unwrap();
        self.stella(
            stella,
            &[
                "aoc",
                "backfill",
                "--from",
                from,
                "--store",
                store,
                "--expect-dataset-hash",
                hash,
                "--format",
                "json",
            ],
        )
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shipped binary needs nothing above the floor, and carries no test-only hook (whose
/// variables' names would be in it): the release's own check, and `strings`' view of it.
#[test]
fn the_kit_runner_needs_glibc_2_17_at_most_and_carries_no_test_hooks() {
    let stella = &kits().binary;
    let needs = glibc::needs(&std::fs::read(stella).unwrap()).unwrap();
    let newest = needs.newest().expect("a glibc-linked runner");
    assert!(
        newest <= glibc::FLOOR,
        "the kit's stella needs GLIBC_{newest} (floor {}): {:?}",
        glibc::FLOOR,
        needs.above(glibc::FLOOR).collect::<Vec<_>>()
    );
    crate::kit::runner::check_shippable(stella).unwrap();
    let help = Command::new(stella)
        .args(["aoc", "backfill", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", text(&help));
    assert!(!String::from_utf8_lossy(&help.stdout).contains("STELLA_FAULT"));
}

#[test]
fn the_kit_runner_starts_verifies_and_loads_under_debian_11_glibc_2_31() {
    let Some(glibc) = old_glibc() else { return };
    let kit = &kits().a;
    let stella = &kits().binary;

    // The loader really resolves libc from the unpacked 2.31, not from this machine.
    let list = Command::new(&glibc.loader)
        .arg("--list")
        .arg("--library-path")
        .arg(&glibc.lib)
        .arg(stella)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    let libc = listed
        .lines()
        .find(|l| l.trim_start().starts_with("libc.so.6"))
        .unwrap_or_else(|| panic!("{}", text(&list)));
    assert!(
        libc.contains(glibc.lib.to_str().unwrap()),
        "libc.so.6 must come from {}: {libc}",
        glibc.lib.display()
    );

    let version = glibc.stella(stella, &["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("stella "));

    // Its own kit, with the dev key as the trusted key (the kit is dev-signed).
    let dev_pub = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let verify = glibc.stella(
        stella,
        &[
            "kit",
            "verify",
            kit.dir.to_str().unwrap(),
            "--key",
            dev_pub.to_str().unwrap(),
            "--allow-dev-key",
        ],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    // Its dataset into a fresh SQLite store, every record written.
    let scratch = tempfile::tempdir().unwrap();
    let dataset = kit.dir.join(crate::kit::dataset_tarball(&kit.dataset_hash));
    let store = format!("sqlite://{}", scratch.path().join("site.db").display());
    let load = glibc.load(stella, &dataset, &kit.dataset_hash, &store);
    assert_eq!(load.status.code(), Some(0), "{}", text(&load));
    let report: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert!(
        report["written"].as_u64().is_some_and(|n| n > 0),
        "the load wrote nothing: {}",
        text(&load)
    );
    let check = glibc.stella(stella, &["aoc", "verify", "--store", &store]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    postgres_over_verified_tls(&glibc, stella, &dataset, &kit.dataset_hash);
}

/// `sslmode=verify-full` against the test cluster's certificate (`scripts/pg-test-cluster.sh`
/// makes a CA and sets AOC_TEST_PG_ROOTCERT): the session is TLS, and another CA is refused.
fn postgres_over_verified_tls(glibc: &OldGlibc, stella: &Path, dataset: &Path, hash: &str) {
    let (Ok(url), Ok(ca)) = (
        std::env::var("AOC_TEST_PG"),
        std::env::var("AOC_TEST_PG_ROOTCERT"),
    ) else {
        assert!(
            !required(),
            "AOC_TEST_PG and AOC_TEST_PG_ROOTCERT must be set (cargo xtask test sets them)"
        );
        aoc_testkit::skip(
            "the old-glibc PostgreSQL case needs AOC_TEST_PG and AOC_TEST_PG_ROOTCERT \
             (scripts/pg-test-cluster.sh with openssl)",
        );
        return;
    };
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let db = format!("aoc_old_glibc_{}", std::process::id());
    // One statement each: DROP/CREATE DATABASE refuse a multi-statement (transaction) block.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let base = url.rsplit_once('/').unwrap().0;
    let store = format!("{base}/{db}?sslmode=verify-full&sslrootcert={ca}");
    // A writing command (it creates the schema), then the read-only verification.
    let load = glibc.load(stella, dataset, hash, &store);
    let ok = glibc.stella(stella, &["aoc", "verify", "--store", &store]);
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        other_ca.path(),
        rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap()
            .cert
            .pem(),
    )
    .unwrap();
    let wrong = format!(
        "{base}/{db}?sslmode=verify-full&sslrootcert={}",
        other_ca.path().display()
    );
    let refused = glibc.stella(stella, &["aoc", "verify", "--store", &wrong]);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    assert_eq!(load.status.code(), Some(0), "{}", text(&load));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not trusted"),
        "{}",
        text(&refused)
    );
}
