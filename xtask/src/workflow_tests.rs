//! The release workflow run as act_runner would run it, on this machine
//! (`scripts/run-workflow-locally.py`, in a depth-1 clone of HEAD: commit what you test).
//!
//! The release job's preflight refuses each missing piece within seconds, before any build, with
//! a message naming it; one full run goes from the rehearsal against the PostgreSQL service
//! stand-in through the release, its verification and the publish to the S3 stand-in, and the
//! bucket's copy is verified as a published directory.
//!
//! Needs PyYAML and moto in target/third-party/venv (`xtask/third-party/setup.sh`, or
//! `scripts/run-workflow-locally.sh` once) and, for the full run, the PostgreSQL server binaries:
//! without them the tests skip loudly, and with `AOC_THIRD_PARTY=1` (as `cargo xtask test` sets)
//! they fail instead. The full run builds `stella` in release mode in the clone, sharing the
//! workspace's `target/` (`CARGO_TARGET_DIR`): the release build's dependencies in
//! `target/aoc-release` and the debug build's, while the clone's own crates get their own names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::release::tests::root;

const PREFLIGHT_STEP: &str = "Refuse a release that is missing a piece";

/// The venv's python with PyYAML, or `None` after saying why (a failure under AOC_THIRD_PARTY=1).
fn python() -> Option<PathBuf> {
    let python = root().join("target/third-party/venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import yaml, moto.server"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    let required = std::env::var("AOC_THIRD_PARTY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "AOC_THIRD_PARTY=1 but PyYAML/moto are not in target/third-party/venv: run sh \
         xtask/third-party/setup.sh"
    );
    aoc_testkit::skip(
        "the local workflow runner needs PyYAML and moto: run sh \
         xtask/third-party/setup.sh (AOC_THIRD_PARTY=1 or CI makes this a failure)",
    );
    None
}

/// A stand-in production key pair as the runner reads it (`cosign.key`, `cosign.pub`,
/// `password`); with `other_public`, `cosign.pub` is another key's.
fn key_dir(dir: &Path, other_public: bool) -> PathBuf {
    let password = "stand-in-password";
    let (private, public) = aoc_sigstore::generate_key_pair(password.as_bytes()).unwrap();
    let public = if other_public {
        aoc_sigstore::generate_key_pair(b"other").unwrap().1
    } else {
        public
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cosign.key"), private).unwrap();
    std::fs::write(dir.join("cosign.pub"), public).unwrap();
    std::fs::write(dir.join("password"), password).unwrap();
    dir.to_path_buf()
}

struct Run {
    code: Option<i32>,
    output: String,
    report: Value,
    took: Duration,
}

impl Run {
    fn job(&self, job: &str) -> &Value {
        &self.report["jobs"][job]
    }

    fn step<'a>(&'a self, job: &str, name: &str) -> &'a Value {
        self.job(job)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name:?} in job {job}: {}", self.output))
    }

    fn step_log(&self, job: &str, name: &str) -> String {
        let log = self.step(job, name)["log"].as_str().unwrap();
        std::fs::read_to_string(log).unwrap()
    }
}

fn run_workflow(python: &Path, workdir: &Path, args: &[String]) -> Run {
    let t = Instant::now();
    let out = Command::new(python)
        .arg(root().join("scripts/run-workflow-locally.py"))
        // Installed by xtask/third-party/setup.sh: the preflight checks the key without pip.
        .env(
            "AOC_KEYCHECK_LIBS",
            root().join("target/third-party/keycheck"),
        )
        .arg("--workdir")
        .arg(workdir)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let took = t.elapsed();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read(workdir.join("run.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|e| panic!("no run.json ({e}): {output}"));
    Run {
        code: out.status.code(),
        output,
        report,
        took,
    }
}

/// Runs only the release job (its needs counted as done) with a stand-in key; returns the run.
fn release_job(python: &Path, other_public: bool, extra: &[&str]) -> (tempfile::TempDir, Run) {
    let scratch = tempfile::tempdir().unwrap();
    let keys = key_dir(&scratch.path().join("key"), other_public);
    let mut args: Vec<String> = [
        "--job",
        "release",
        "--skip-job",
        "test",
        "--skip-job",
        "rehearsal",
        "--no-s3",
        "--stand-in-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(keys.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = run_workflow(python, &scratch.path().join("work"), &args);
    (scratch, run)
}

/// The release job stopped at its preflight, non-zero within 10 s, with `expected` in the step's
/// output, and nothing after it ran.
fn assert_refused(extra: &[&str], other_public: bool, expected: &str) {
    let Some(python) = python() else { return };
    let (_scratch, run) = release_job(&python, other_public, extra);
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert_eq!(run.job("release")["result"], "failure", "{}", run.output);
    let step = run.step("release", PREFLIGHT_STEP);
    assert_eq!(step["outcome"], "failure", "{}", run.output);
    let seconds = step["seconds"].as_f64().unwrap();
    assert!(seconds < 10.0, "the refusal took {seconds} s");
    assert!(
        run.took < Duration::from_secs(10),
        "the run took {:?}",
        run.took
    );
    let log = run.step_log("release", PREFLIGHT_STEP);
    assert!(log.contains("REFUSED"), "{log}");
    assert!(log.contains(expected), "expected {expected:?} in:\n{log}");
    let steps = run.job("release")["steps"].as_array().unwrap();
    let after: Vec<&Value> = steps
        .iter()
        .skip_while(|s| s["name"] != PREFLIGHT_STEP)
        .skip(1)
        .collect();
    assert!(!after.is_empty());
    for s in after {
        assert_eq!(s["outcome"], "skipped", "{s}: nothing runs after a refusal");
    }
}

fn a_real_looking_hash() -> String {
    format!("DATASET_HASH={}", "a".repeat(64))
}

#[test]
fn the_release_refuses_a_missing_production_public_key() {
    let pin = a_real_looking_hash();
    assert_refused(
        &["--public-key", "none", "--var", &pin],
        false,
        "the production public key tools/cosign/cosign.pub is missing",
    );
}

#[test]
fn the_release_refuses_a_public_key_that_is_not_the_signing_key() {
    let pin = a_real_looking_hash();
    assert_refused(
        &["--var", &pin],
        true,
        "does not match the production public key tools/cosign/cosign.pub",
    );
}

#[test]
fn the_release_refuses_a_missing_key_secret() {
    let pin = a_real_looking_hash();
    assert_refused(
        &["--secret", "COSIGN_KEY_B64=", "--var", &pin],
        false,
        "the signing key secret is missing: secrets.COSIGN_KEY_B64 is empty",
    );
}

#[test]
fn the_release_refuses_a_missing_dataset_hash() {
    assert_refused(&[], false, "DATASET_HASH is missing");
}

#[test]
fn the_release_refuses_the_placeholder_dataset_hash() {
    assert_refused(
        &["--var", "DATASET_HASH=dev-rehearsal-placeholder"],
        false,
        "DATASET_HASH is the placeholder dev-rehearsal-placeholder",
    );
}

/// The control for the refusals: with every piece in place the preflight passes, and the job
/// goes on to the rehearsal report, which is missing here (the rehearsal job did not run).
#[test]
fn a_complete_configuration_passes_the_preflight() {
    let Some(python) = python() else { return };
    let pin = a_real_looking_hash();
    let (_scratch, run) = release_job(&python, false, &["--var", &pin]);
    assert_eq!(
        run.step("release", PREFLIGHT_STEP)["outcome"],
        "success",
        "{}",
        run.output
    );
    let log = run.step_log("release", PREFLIGHT_STEP);
    assert!(log.contains("release-preflight: ok: signing key"), "{log}");
    let next = run.step("release", "Take the rehearsal report");
    assert_eq!(next["outcome"], "failure", "{}", run.output);
    assert_eq!(run.code, Some(1));
}

fn postgres_available() -> bool {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !found {
        aoc_testkit::skip("the full workflow run needs the PostgreSQL server binaries");
    }
    found
}

/// The whole release path as the workflow runs it: rehearsal (PostgreSQL service) → preflight →
/// release → verify against the committed key → publish to the bucket → upload; then the
/// bucket's copy verified as a published directory with the stand-in production key.
#[test]
fn the_release_workflow_runs_locally_to_a_published_verified_kit() {
    let Some(python) = python() else { return };
    if !postgres_available() {
        return;
    }
    let root = root();
    // The hash the rehearsal prints: the repository's dataset definition, built as it builds it.
    let scratch = tempfile::tempdir().unwrap();
    let spec = crate::dataset_definition::DatasetSpec::resolve(&root, &[], None, None).unwrap();
    let hash = spec.build(scratch.path()).unwrap().hash;
    let keys = key_dir(&scratch.path().join("key"), false);
    // A fixed work directory: the cache stand-in keeps the clone's release build there.
    let workdir = root.join("target/local-workflow-test");
    let args: Vec<String> = vec![
        "--skip-job".into(),
        "test".into(),
        "--var".into(),
        format!("DATASET_HASH={hash}"),
        "--stand-in-key".into(),
        keys.display().to_string(),
        "--cargo-target-dir".into(),
        root.join("target").display().to_string(),
    ];
    let run = run_workflow(&python, &workdir, &args);
    // The suite's budget for this run is 15 minutes on two cores; the time is printed, not
    // asserted (a loaded machine is slower, not wrong).
    eprintln!(
        "local workflow run: exit {:?} in {:.0} s (rehearsal {} s, release {} s)",
        run.code,
        run.took.as_secs_f64(),
        run.job("rehearsal")["seconds"],
        run.job("release")["seconds"]
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.report["ok"], true);
    for job in ["rehearsal", "release"] {
        assert_eq!(run.job(job)["result"], "success", "{job}: {}", run.output);
    }
    let publish = run.step(
        "release",
        "Publish the kit and the signed offline-kit manifest to the release bucket",
    );
    assert_eq!(publish["outcome"], "success");
    assert!(run
        .step_log("rehearsal", "Rehearse the dataset load into PostgreSQL")
        .contains(&hash));

    // The kit handed over as an artifact, and the bucket as a mirror would copy it.
    let artifacts = workdir.join("artifacts");
    assert!(artifacts
        .join("aoc-offline-kit-v0.0.0-local")
        .join(aoc_kit::layout::SUMS)
        .is_file());
    assert!(artifacts
        .join("aoc-rehearsal")
        .join(format!("rehearsal-{hash}.json"))
        .is_file());
    let bucket = workdir.join("bucket/aoc-releases/aoc-backfill");
    let opts = aoc_kit::VerifyOptions {
        key: Some(aoc_kit::TrustedKey::load(&keys.join("cosign.pub")).unwrap()),
        expect_dataset_hash: Some(hash.clone()),
        ..aoc_kit::VerifyOptions::default()
    };
    let report = aoc_kit::published::verify_published_with(&bucket, &opts, &mut |_, _| {});
    assert!(report.passed(), "{:#?}", report.first_failure());
    let [kit] = report.kits.as_slice() else {
        panic!("one kit: {report:#?}")
    };
    assert_eq!(kit.kit.dataset_hash.as_deref(), Some(hash.as_str()));
    assert!(
        kit.kit
            .checks
            .iter()
            .any(|c| c.check == aoc_kit::CheckId::RehearsalReport && c.ok),
        "the kit carries the rehearsal's report"
    );

    the_clone_releases_the_same_kit_as_the_workspace(&root, &workdir.join("checkout"));
}

/// The path of `clone`'s xtask binary, built (or found fresh) by `cargo build -p xtask` with `env`.
fn built_xtask(clone: &Path, env: &[(&str, std::ffi::OsString)]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "xtask",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(clone)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "building the clone's xtask: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    String::from_utf8_lossy(&build.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "xtask")
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build -p xtask names the xtask executable")
}

/// Reproducible across paths: the workflow's clone (another directory, same commit) releases,
/// with the dev key and the test clock, exactly the kit the workspace itself released
/// (`kits().a`): the same runner tarball and the same `SHA256SUMS`, so the same signatures and
/// every other file. It reuses the runner the workflow just built from the clone (in the shared
/// `target/aoc-release`, whose flags name no clone).
fn the_clone_releases_the_same_kit_as_the_workspace(root: &Path, clone: &Path) {
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?} in {}", dir.display());
        String::from_utf8(out.stdout).unwrap()
    };
    // The workspace's own kit records its commit and whether its tree was clean; at another
    // source the two kits differ by design.
    let dirty = git(root, &["status", "--porcelain", "--untracked-files=no"]);
    if !dirty.trim().is_empty() {
        aoc_testkit::skip(format!(
            "the two-path reproducibility check needs a workspace without uncommitted \
             changes (the clone is of HEAD):\n{dirty}"
        ));
        return;
    }
    let (ours, theirs) = (
        git(root, &["rev-parse", "HEAD"]),
        git(clone, &["rev-parse", "HEAD"]),
    );
    if ours != theirs {
        aoc_testkit::skip(format!(
            "the workspace moved to another commit during the run ({} -> {}): the two kits \
             are of different sources",
            theirs.trim(),
            ours.trim()
        ));
        return;
    }
    // The workflow wrote its stand-in production public key into the clone, and left its
    // rehearsal report in out/ (a release carries the report it finds there): back to the
    // commit's tree, keeping the clone's own runner build in target/.
    git(clone, &["reset", "-q", "--hard"]);
    git(clone, &["clean", "-q", "-f", "-d", "-x", "-e", "/target"]);
    let out = tempfile::tempdir().unwrap();
    let kit = out.path().join("kit");
    // As the workflow's steps built it (scripts/run-workflow-locally.py, SHARED_TARGET_ENV): the
    // clone's crates under other names than the workspace's, in the shared directory.
    let shared_target = [
        ("CARGO_TARGET_DIR", root.join("target").into_os_string()),
        ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only".into()),
    ];
    // The clone's xtask as the workflow built it, run directly: `cargo xtask` with the test clock
    // in SOURCE_DATE_EPOCH would rebuild the C dependencies, whose build scripts track it, in the
    // shared target directory (and the next run's clippy would rebuild them back).
    let xtask = built_xtask(clone, &shared_target);
    let release = Command::new(xtask)
        .args(["aoc-release", "--out"])
        .arg(&kit)
        .current_dir(clone)
        .env("COSIGN_ALLOW_DEV_KEY", "1")
        .env(
            "SOURCE_DATE_EPOCH",
            crate::release::tests::EPOCH.to_string(),
        )
        .envs(shared_target.iter().map(|(k, v)| (k, v)))
        .env_remove("DATASET_HASH")
        .output()
        .unwrap();
    assert!(
        release.status.success(),
        "aoc-release in the clone: {}",
        String::from_utf8_lossy(&release.stderr)
    );
    let ours = &crate::release::tests::kits().a.dir;
    for name in [aoc_kit::layout::RUNNER_TARBALL, aoc_kit::layout::SUMS] {
        let (a, b) = (
            std::fs::read(ours.join(name)).unwrap(),
            std::fs::read(kit.join(name)).unwrap(),
        );
        assert!(
            a == b,
            "{name} differs between {} and the clone at {}",
            root.display(),
            clone.display()
        );
    }
}
