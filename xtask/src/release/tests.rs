//! Repository invariants for the offline kit: a release reproduces byte for byte, its checksums
//! pass coreutils and perl, its verifier catches every changed byte with the right exit class, and
//! third-party verifiers accept its bundles, provenance and SBOMs.
//!
//! One kit is released per test binary (the release build of `stella` takes minutes here) and
//! shared; tests that tamper work on copies. `AOC_TEST_RUNNER_BINARY=PATH` reuses a prebuilt
//! release `stella` instead of building it (e.g. while a crate is mid-edit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aoc_kit::CheckId;
use xshell::{cmd, Shell};

use super::{release, Release, ReleaseOptions};
use crate::kit;
use crate::verify::{verify_kit, Class, VerifyOptions, VerifyReport};

pub(crate) const EPOCH: i64 = 1_700_000_000;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn shell() -> Shell {
    let sh = Shell::new().unwrap();
    sh.change_dir(root());
    sh
}

pub(crate) fn dev_env() -> BTreeMap<String, String> {
    BTreeMap::from([("COSIGN_ALLOW_DEV_KEY".to_string(), "1".to_string())])
}

pub(crate) fn options(out: PathBuf, env: BTreeMap<String, String>) -> ReleaseOptions {
    ReleaseOptions {
        out,
        dataset_from: Vec::new(),
        publish: None,
        runner_binary: std::env::var_os("AOC_TEST_RUNNER_BINARY").map(PathBuf::from),
        epoch: Some(EPOCH),
        env,
        print: false,
    }
}

/// A scratch directory for fixtures kept in statics for the whole test binary. Statics are never
/// dropped, so a plain temporary directory would be left behind by every run; these live under
/// `target/xtask-test-scratch/`, named by process id, and each run first removes those of runs
/// that are no longer alive.
pub(crate) fn static_scratch() -> tempfile::TempDir {
    let base = root().join("target/xtask-test-scratch");
    std::fs::create_dir_all(&base).unwrap();
    for entry in std::fs::read_dir(&base).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("run-{}-", std::process::id()))
        .tempdir_in(&base)
        .unwrap()
}

pub(crate) struct Kits {
    _scratch: tempfile::TempDir,
    pub a: Release,
    b: Release,
    /// The `stella` kit `a` shipped, for releases that should not rebuild it.
    pub binary: PathBuf,
}

/// Two releases with the dev key into different directories (the first builds `stella`).
pub(crate) fn kits() -> &'static Kits {
    static KITS: OnceLock<Kits> = OnceLock::new();
    KITS.get_or_init(|| {
        let scratch = static_scratch();
        let sh = shell();
        let a = release(&sh, &options(scratch.path().join("one/aoc"), dev_env())).unwrap();
        let b = release(&sh, &options(scratch.path().join("two/kit"), dev_env())).unwrap();
        let binary = scratch.path().join("stella");
        let tarball = a.dir.join(kit::RUNNER_TARBALL);
        let entries = aoc_archive::ArchiveReader::open(&tarball, aoc_archive::Limits::default())
            .unwrap()
            .read_all()
            .unwrap();
        let (_, bytes) = entries
            .iter()
            .find(|(p, _)| p == kit::BINARY_MEMBER)
            .unwrap();
        std::fs::write(&binary, bytes).unwrap();
        set_executable(&binary);
        Kits {
            _scratch: scratch,
            a,
            b,
            binary,
        }
    })
}

pub(crate) fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A private copy of kit `a` to tamper with.
pub(crate) fn copy_kit() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("aoc");
    std::fs::create_dir(&dir).unwrap();
    for name in names(&kits().a.dir) {
        std::fs::copy(kits().a.dir.join(&name), dir.join(&name)).unwrap();
    }
    (tmp, dir)
}

pub(crate) fn describe(report: &VerifyReport) -> String {
    report
        .failures()
        .map(|f| format!("{} {} [{:?}]: {}", f.check, f.file, f.class, f.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn release_twice_into_different_directories_gives_byte_identical_kits() {
    let k = kits();
    assert_eq!(names(&k.a.dir), names(&k.b.dir));
    for name in names(&k.a.dir) {
        let (x, y) = (
            std::fs::read(k.a.dir.join(&name)).unwrap(),
            std::fs::read(k.b.dir.join(&name)).unwrap(),
        );
        assert!(x == y, "{name} differs between the two releases");
    }
}

#[test]
fn kit_has_exactly_the_design_table_names_and_no_staging_left() {
    let k = kits();
    let h = &k.a.dataset_hash;
    // docs/ARCHITECTURE.md §4.3's table, written out in name order: not the writer's own list.
    let documented = [
        "SHA256SUMS".to_string(),
        "SHA256SUMS.sigstore.json".into(),
        "aoc-backfill-runner.cdx.json".into(),
        "aoc-backfill-runner.dsse.json".into(),
        "aoc-backfill-runner.sbom.json".into(),
        "aoc-backfill-runner.tar.gz".into(),
        format!("aoc-dataset-{h}.manifest.json"),
        format!("aoc-dataset-{h}.provenance.json"),
        format!("aoc-dataset-{h}.tar.gz"),
        "cosign.pub".into(),
        "verify-kit.sh".into(),
    ];
    assert_eq!(names(&k.a.dir), documented);
    let parent = k.a.dir.parent().unwrap();
    assert_eq!(
        names(parent),
        vec!["aoc".to_string()],
        "staging directory left behind"
    );
    let runner = aoc_archive::ArchiveReader::open(
        &k.a.dir.join(kit::RUNNER_TARBALL),
        aoc_archive::Limits::default(),
    )
    .unwrap()
    .digest_all()
    .unwrap();
    let members: Vec<&str> = runner.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        members,
        [
            "aoc-backfill-runner/LICENSE",
            "aoc-backfill-runner/README.md",
            "aoc-backfill-runner/bin/stella",
            "aoc-backfill-runner/scripts/load-dataset.sh",
            "aoc-backfill-runner/scripts/verify-store.sh",
        ]
    );
    let sums = std::fs::read_to_string(k.a.dir.join(kit::SUMS)).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    assert_eq!(listed, kit::summed_files(&k.a.dataset_hash));
    assert!(k.a.key.is_dev);
}

#[test]
fn sha256sum_and_shasum_accept_sha256sums_inside_the_kit() {
    let sh = shell();
    sh.change_dir(&kits().a.dir);
    cmd!(sh, "sha256sum --strict -c SHA256SUMS")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
    cmd!(sh, "shasum -a 256 -c SHA256SUMS")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
}

/// A fake cosign that appends its working directory and arguments to `calls` and exits
/// `$FAKE_COSIGN_STATUS` (0).
fn fake_cosign(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("calls");
    let fake = dir.join("cosign");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$(pwd -P) $*\" >> '{}'\nexit ${{FAKE_COSIGN_STATUS:-0}}\n",
            log.display()
        ),
    )
    .unwrap();
    set_executable(&fake);
    (fake, log)
}

/// The private directory the script handed cosign its files from (the same for every call, and
/// outside the kit) and the key it named.
fn copies_used(calls: &str, kit_dir: &Path) -> (PathBuf, PathBuf) {
    let mut work = None;
    let mut key = None;
    for line in calls.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let here = PathBuf::from(words[0]);
        assert!(!here.starts_with(kit_dir), "cosign ran in the kit: {line}");
        assert_eq!(*work.get_or_insert(here.clone()), here, "{calls}");
        let at = words.iter().position(|w| *w == "--key").unwrap();
        let named = PathBuf::from(words[at + 1]);
        assert_eq!(*key.get_or_insert(named.clone()), named, "{calls}");
    }
    (work.expect("cosign was called"), key.unwrap())
}

#[test]
fn verify_kit_script_checks_sums_and_calls_cosign_for_every_bundle() {
    let (_tmp, dir) = copy_kit();
    let dir = dir.canonicalize().unwrap();
    let sh = shell();
    sh.change_dir(&dir);
    cmd!(sh, "sh -n verify-kit.sh").run().unwrap();
    let own = dir.join(kit::PUBLIC_KEY);
    let own = own.display().to_string();

    // No key: a usage error that says how to choose one.
    let out = cmd!(sh, "sh verify-kit.sh")
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kit-key"));

    // Without cosign: names and checksums pass, the exact commands are printed, exit 3.
    let out = cmd!(sh, "sh verify-kit.sh --kit-key")
        .env("COSIGN", "/nonexistent/cosign")
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&format!(
        "cosign verify-blob --key {own} --bundle aoc-backfill-runner.dsse.json --insecure-ignore-tlog aoc-backfill-runner.tar.gz"
    )), "{printed}");

    // With a fake cosign recording its arguments: SHA256SUMS' bundle first, then one call per
    // bundle/artefact pair, all over private copies (the kit's own key copied too); intact but
    // origin not proven: 15, as `stella kit verify` without --key.
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, log) = fake_cosign(fake_dir.path());
    let out = cmd!(sh, "sh verify-kit.sh --kit-key")
        .env("COSIGN", &fake)
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(15),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("origin NOT proven"));
    let hash = &kits().a.dataset_hash;
    let prov = kit::provenance(hash);
    let calls = std::fs::read_to_string(&log).unwrap();
    let (work, key) = copies_used(&calls, &dir);
    assert_eq!(key, work.join(kit::PUBLIC_KEY));
    let key = key.display();
    assert_eq!(
        calls,
        format!(
            "{work} verify-blob --key {key} --bundle SHA256SUMS.sigstore.json --insecure-ignore-tlog SHA256SUMS\n\
             {work} verify-blob --key {key} --bundle aoc-backfill-runner.dsse.json --insecure-ignore-tlog aoc-backfill-runner.tar.gz\n\
             {work} verify-blob-attestation --key {key} --bundle {prov} --insecure-ignore-tlog --type slsaprovenance1 {}\n\
             {work} verify-blob-attestation --key {key} --bundle {prov} --insecure-ignore-tlog --type slsaprovenance1 aoc-backfill-runner.tar.gz\n",
            kit::dataset_tarball(hash),
            work = work.display(),
        )
    );
    assert!(!work.exists(), "the private copies are removed on exit");
    // SHA256SUMS' signature failing stops the script before a checksum is computed.
    std::fs::remove_file(&log).unwrap();
    let out = cmd!(sh, "sh verify-kit.sh --kit-key")
        .env("COSIGN", &fake)
        .env("FAKE_COSIGN_STATUS", "1")
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // A changed byte, an unlisted file: each exits 1.
    std::fs::write(dir.join("extra.txt"), "x").unwrap();
    let out = cmd!(sh, "sh verify-kit.sh --kit-key")
        .env("COSIGN", &fake)
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("extra.txt is in the kit but not listed"));
    std::fs::remove_file(dir.join("extra.txt")).unwrap();
    flip_middle_byte(&dir.join(kit::RUNNER_TARBALL));
    let out = cmd!(sh, "sh verify-kit.sh --kit-key")
        .env("COSIGN", &fake)
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Attack 2: `sh /media/kit/verify-kit.sh ./cosign.pub` from the operator's directory must check
/// against the operator's `cosign.pub`, not the kit's; a key inside the kit is refused.
#[test]
fn verify_kit_script_takes_the_key_from_where_the_operator_stands() {
    let (_tmp, dir) = copy_kit();
    let dir = dir.canonicalize().unwrap();
    let operator = tempfile::tempdir().unwrap();
    let operator_dir = operator.path().canonicalize().unwrap();
    std::fs::copy(
        root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH),
        operator_dir.join("cosign.pub"),
    )
    .unwrap();
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, log) = fake_cosign(fake_dir.path());
    let sh = shell();
    sh.change_dir(&operator_dir);
    let script = dir.join(kit::VERIFY_SCRIPT);
    let out = cmd!(sh, "sh {script} ./cosign.pub")
        .env("COSIGN", &fake)
        .ignore_status()
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let theirs = format!("--key {}/cosign.pub ", operator_dir.display());
    assert!(calls.lines().all(|l| l.contains(&theirs)), "{calls}");
    // The kit's own key, named by path, through a link from outside, or any key under the kit
    // directory, is refused unless --kit-key says so.
    std::os::unix::fs::symlink(dir.join("cosign.pub"), operator_dir.join("linked.pub")).unwrap();
    std::fs::hard_link(dir.join("cosign.pub"), operator_dir.join("hard.pub")).unwrap();
    std::fs::create_dir(dir.join("keys")).unwrap();
    std::fs::copy(
        operator_dir.join("cosign.pub"),
        dir.join("keys/trusted.pub"),
    )
    .unwrap();
    for key in [
        dir.join("cosign.pub"),
        dir.join("./cosign.pub"),
        operator_dir.join("linked.pub"),
        PathBuf::from("hard.pub"),
        dir.join("keys/trusted.pub"),
    ] {
        let out = cmd!(sh, "sh {script} {key}")
            .env("COSIGN", &fake)
            .ignore_status()
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("inside the kit"));
    }
}

/// Attack 7 for the script: a pinned dataset refuses an older, validly signed kit.
#[test]
fn verify_kit_script_refuses_a_kit_without_the_pinned_dataset() {
    let (_tmp, dir) = copy_kit();
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, _) = fake_cosign(fake_dir.path());
    let sh = shell();
    sh.change_dir(&dir);
    let hash = kits().a.dataset_hash.clone();
    let other = "ab".repeat(32);
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = cmd!(sh, "sh verify-kit.sh {args...} --kit-key").env("COSIGN", &fake);
        c = match env {
            Some(v) => c.env("DATASET_HASH", v),
            None => c.env_remove("DATASET_HASH"),
        };
        let out = c.ignore_status().output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // --kit-key: intact, origin not proven (15, as stella).
    assert_eq!(run(&["--expect-dataset-hash", &hash], None).0, Some(15));
    let (code, err) = run(&["--expect-dataset-hash", &other], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("does not carry the pinned dataset {other}")),
        "{err}"
    );
    assert_eq!(run(&[], Some(&other)).0, Some(1));
    assert_eq!(run(&[], Some(&hash)).0, Some(15));
    assert_eq!(run(&[], Some("dev-rehearsal-placeholder")).0, Some(15));
    assert_eq!(
        run(&["--expect-dataset-hash", "not-a-hash"], None).0,
        Some(2)
    );
    // An empty pin never lifts the pin: not from the flag, not over DATASET_HASH, not from an
    // empty DATASET_HASH.
    for (args, env) in [
        (&["--expect-dataset-hash", ""][..], None),
        (&["--expect-dataset-hash", ""][..], Some(other.as_str())),
        (&[][..], Some("")),
    ] {
        let (code, err) = run(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains("is empty"), "{err}");
    }
}

/// Attack 3: names and lines crafted against the script's shell plumbing.
#[test]
fn verify_kit_script_refuses_crafted_names_and_lines_quickly_and_prints_no_controls() {
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, _) = fake_cosign(fake_dir.path());
    let run = |dir: &Path| {
        let t = std::time::Instant::now();
        let mut child = std::process::Command::new("sh")
            .arg(dir.join(kit::VERIFY_SCRIPT))
            .arg("--kit-key")
            .env("COSIGN", &fake)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > std::time::Duration::from_secs(10) {
                child.kill().unwrap();
                panic!("verify-kit.sh ran over 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all).into_owned();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached the terminal: {text:?}"
        );
        (out.status.code(), text)
    };
    // A newline in a name must not turn into several patterns that match listed names.
    for name in [
        "notes\ncosign.pub",
        "x\r\u{1b}[2Kkit verified\u{1b}[0m",
        "a\\033b\\c",
        "x\u{9b}y",
    ] {
        let (_tmp, dir) = copy_kit();
        std::fs::write(dir.join(name), "x").unwrap();
        let (code, text) = run(&dir);
        assert_eq!(code, Some(1), "{name:?}: {text}");
        assert!(text.contains("outside [A-Za-z0-9._-]"), "{name:?}: {text}");
    }
    // `<64 zeros>  /dev/zero` would make sha256sum -c read forever: the strict line check refuses
    // it before sha256sum runs (and, with cosign, SHA256SUMS' signature would already have failed).
    let (_tmp, dir) = copy_kit();
    let mut sums = std::fs::read_to_string(dir.join(kit::SUMS)).unwrap();
    sums.push_str(&format!("{}  /dev/zero\n", "0".repeat(64)));
    std::fs::write(dir.join(kit::SUMS), sums).unwrap();
    let (code, text) = run(&dir);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not '<64 hex>  <plain file name>'"), "{text}");
    // A listed name that is a link to a device is not hashed either.
    let (_tmp, dir) = copy_kit();
    std::fs::remove_file(dir.join(kit::SPDX_FILE)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join(kit::SPDX_FILE)).unwrap();
    let (code, text) = run(&dir);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not a regular file"), "{text}");
}

/// The shells the script is run in by these tests: POSIX sh as dash, and bash (those installed).
fn shells() -> Vec<&'static str> {
    let found: Vec<&str> = ["dash", "bash"]
        .into_iter()
        .filter(|s| {
            std::process::Command::new(s)
                .args(["-c", "true"])
                .status()
                .is_ok_and(|st| st.success())
        })
        .collect();
    assert!(!found.is_empty(), "neither dash nor bash is installed");
    found
}

struct ScriptRun {
    code: Option<i32>,
    stderr: String,
    took: std::time::Duration,
}

/// `shell script args...` in `cwd` with `env` (COSIGN and DATASET_HASH only as given), its output
/// in files (never a full pipe), killed after 60 s: a hang fails the test.
fn run_script(
    shell: &str,
    script: &Path,
    args: &[&str],
    cwd: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> ScriptRun {
    let out = tempfile::tempdir().unwrap();
    let stderr_path = out.path().join("stderr");
    let mut cmd = std::process::Command::new(shell);
    cmd.arg(script)
        .args(args)
        .current_dir(cwd)
        .env_remove("COSIGN")
        .env_remove("DATASET_HASH")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(out.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = std::time::Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "{shell} verify-kit.sh {args:?} hung: {}",
                std::fs::read_to_string(&stderr_path).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    ScriptRun {
        code: status.code(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
        took: t.elapsed(),
    }
}

/// Variables a case sets for the script.
type ScriptEnv = Vec<(&'static str, String)>;

/// Writes an executable at `path` that would create `sentinel` and claim success.
fn plant(path: &Path, sentinel: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\ntouch '{}'\necho 'verify-kit: kit verified'\nexit 0\n",
            sentinel.display()
        ),
    )
    .unwrap();
    set_executable(path);
}

/// Attack: the kit plants a `cosign` (and the tools the script calls) and hopes the script finds
/// it through COSIGN=tools/cosign, a `.` or empty PATH entry, or the kit's directory on PATH.
/// None of them ever runs; the trusted cosign further along PATH is the one used.
#[test]
fn verify_kit_script_never_runs_a_program_planted_in_the_kit() {
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, log) = fake_cosign(fake_dir.path());
    let fake_bin = fake_dir.path().canonicalize().unwrap();
    let sentinel_dir = tempfile::tempdir().unwrap();
    let sentinel = sentinel_dir.path().join("planted-program-ran");
    let system_path = std::env::var("PATH").unwrap();
    for shell in shells() {
        let (_tmp, dir) = copy_kit();
        let dir = dir.canonicalize().unwrap();
        for tool in [
            "cosign",
            "tools/cosign",
            "sha256sum",
            "shasum",
            "grep",
            "cut",
            "dd",
            "wc",
            "tr",
            "rm",
            "mktemp",
            "dirname",
        ] {
            plant(&dir.join(tool), &sentinel);
        }
        let operator = tempfile::tempdir().unwrap();
        let operator_dir = operator.path().canonicalize().unwrap();
        // A directory outside the kit that is a link to the kit's tools/.
        std::os::unix::fs::symlink(dir.join("tools"), operator_dir.join("bin")).unwrap();
        let script = dir.join(kit::VERIFY_SCRIPT);
        let path = |first: &str| format!("{first}:{}:{system_path}", fake_bin.display());
        let cases: Vec<(&str, ScriptEnv, Option<i32>)> = vec![
            // A path is taken from where the operator stands: here, the kit.
            (
                "COSIGN=tools/cosign",
                vec![("COSIGN", "tools/cosign".into())],
                Some(2),
            ),
            (
                "COSIGN=<kit>/cosign",
                vec![("COSIGN", dir.join("cosign").display().to_string())],
                Some(2),
            ),
            ("PATH=.:...", vec![("PATH", path("."))], Some(1)),
            ("PATH=:...", vec![("PATH", path(""))], Some(1)),
            (
                "PATH=<kit>:...",
                vec![("PATH", path(&dir.display().to_string()))],
                Some(1),
            ),
            ("PATH=tools:...", vec![("PATH", path("tools"))], Some(1)),
            (
                "PATH=<link to kit/tools>:...",
                vec![(
                    "PATH",
                    path(&operator_dir.join("bin").display().to_string()),
                )],
                Some(1),
            ),
        ];
        for (case, env, expected) in cases {
            let _ = std::fs::remove_file(&log);
            let env: Vec<(&str, &std::ffi::OsStr)> =
                env.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            let run = run_script(shell, &script, &["--kit-key"], &dir, &env);
            assert!(!sentinel.exists(), "{shell} {case}: a planted program ran");
            assert_eq!(run.code, expected, "{shell} {case}: {}", run.stderr);
            if expected == Some(1) {
                // The trusted cosign further along PATH was used; the planted files then fail
                // the listing.
                assert!(log.exists(), "{shell} {case}: {}", run.stderr);
                assert!(
                    run.stderr.contains("is in the kit but not listed"),
                    "{shell} {case}: {}",
                    run.stderr
                );
            } else {
                assert!(
                    run.stderr.contains("inside the kit being checked"),
                    "{shell} {case}: {}",
                    run.stderr
                );
            }
        }
        // The control: COSIGN=tools/cosign from an operator directory whose tools/cosign is the
        // trusted one, on a clean kit: it runs, from the operator's directory.
        let (_tmp, clean) = copy_kit();
        std::fs::create_dir(operator_dir.join("tools")).unwrap();
        std::fs::copy(&fake, operator_dir.join("tools/cosign")).unwrap();
        set_executable(&operator_dir.join("tools/cosign"));
        let _ = std::fs::remove_file(&log);
        let run = run_script(
            shell,
            &clean.join(kit::VERIFY_SCRIPT),
            &["--kit-key"],
            &operator_dir,
            &[("COSIGN", "tools/cosign".as_ref())],
        );
        assert_eq!(run.code, Some(15), "{shell}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 4);
    }
}

/// Attack: a FIFO (or a link to a device) in place of SHA256SUMS, its bundle, the kit's key or a
/// data file would make a reader wait forever, and a sparse giant would fill TMPDIR. Each is
/// refused quickly, before any tool opens it; cosign is never handed the root pair.
#[test]
fn verify_kit_script_refuses_fifos_links_and_giants_quickly_without_opening_them() {
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, log) = fake_cosign(fake_dir.path());
    let hash = &kits().a.dataset_hash;
    for shell in shells() {
        for name in [
            kit::SUMS.to_string(),
            kit::SUMS_BUNDLE.to_string(),
            kit::PUBLIC_KEY.to_string(),
            kit::SPDX_FILE.to_string(),
            kit::dataset_tarball(hash),
        ] {
            for kind in ["fifo", "link"] {
                let (_tmp, dir) = copy_kit();
                std::fs::remove_file(dir.join(&name)).unwrap();
                if kind == "fifo" {
                    let made = std::process::Command::new("mkfifo")
                        .arg(dir.join(&name))
                        .status()
                        .unwrap();
                    assert!(made.success());
                } else {
                    std::os::unix::fs::symlink("/dev/zero", dir.join(&name)).unwrap();
                }
                let _ = std::fs::remove_file(&log);
                let run = run_script(
                    shell,
                    &dir.join(kit::VERIFY_SCRIPT),
                    &["--kit-key"],
                    &dir,
                    &[("COSIGN", fake.as_os_str())],
                );
                let case = format!("{shell}: {name} as a {kind}");
                assert_eq!(run.code, Some(1), "{case}: {}", run.stderr);
                assert!(
                    run.stderr
                        .contains(&format!("FAIL: {name} is not a regular file in the kit")),
                    "{case}: {}",
                    run.stderr
                );
                assert!(
                    run.took < std::time::Duration::from_secs(10),
                    "{case}: {:?}",
                    run.took
                );
                if [kit::SUMS, kit::SUMS_BUNDLE, kit::PUBLIC_KEY].contains(&name.as_str()) {
                    assert!(!log.exists(), "{case}: cosign was called");
                }
            }
        }
        // A sparse 4 GiB file where a kit file is bounded far lower: refused by its size, unread
        // (nothing copied: the script is done in well under a second's worth of reading).
        for name in [kit::SUMS, kit::SPDX_FILE] {
            let (_tmp, dir) = copy_kit();
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_len(4 << 30)
                .unwrap();
            let run = run_script(
                shell,
                &dir.join(kit::VERIFY_SCRIPT),
                &["--kit-key"],
                &dir,
                &[("COSIGN", fake.as_os_str())],
            );
            assert_eq!(run.code, Some(1), "{shell} sparse {name}: {}", run.stderr);
            assert!(
                run.stderr.contains(&format!(
                    "FAIL: {name} is 4294967296 bytes, more than a kit file may be ({});",
                    kit::size_cap(name)
                )),
                "{shell} sparse {name}: {}",
                run.stderr
            );
            assert!(
                run.took < std::time::Duration::from_secs(10),
                "{:?}",
                run.took
            );
        }
    }
}

/// Attack: SHA256SUMS (and its bundle) replaced in the kit right after cosign checked them. The
/// script checked and uses its private copies, so the swap changes nothing.
#[test]
fn verify_kit_script_uses_only_the_copies_it_checked() {
    let fake_dir = tempfile::tempdir().unwrap();
    let (_, log) = fake_cosign(fake_dir.path());
    for shell in shells() {
        let (_tmp, dir) = copy_kit();
        let swapper = fake_dir.path().join("swapping-cosign");
        std::fs::write(
            &swapper,
            format!(
                "#!/bin/sh\necho \"$(pwd -P) $*\" >> '{log}'\n\
                 printf 'not a checksum line\\n' > '{sums}'\n\
                 printf 'garbage' > '{bundle}'\nexit 0\n",
                log = log.display(),
                sums = dir.join(kit::SUMS).display(),
                bundle = dir.join(kit::SUMS_BUNDLE).display(),
            ),
        )
        .unwrap();
        set_executable(&swapper);
        let _ = std::fs::remove_file(&log);
        let run = run_script(
            shell,
            &dir.join(kit::VERIFY_SCRIPT),
            &["--kit-key"],
            &dir,
            &[("COSIGN", swapper.as_os_str())],
        );
        assert_eq!(run.code, Some(15), "{shell}: {}", run.stderr);
        assert_eq!(
            std::fs::read_to_string(dir.join(kit::SUMS)).unwrap(),
            "not a checksum line\n"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 4);
        // The same swap without the copies would have failed the strict line check.
        let run = run_script(
            shell,
            &dir.join(kit::VERIFY_SCRIPT),
            &["--kit-key"],
            &dir,
            &[("COSIGN", swapper.as_os_str())],
        );
        assert_eq!(run.code, Some(1), "{shell}: {}", run.stderr);
    }
}

/// Memory and output stay bounded for any directory: 50,000 unlisted empty files name 20 and
/// count the rest; the exit code is the checksum failure's.
#[test]
fn verify_kit_script_names_at_most_20_unlisted_files() {
    let fake_dir = tempfile::tempdir().unwrap();
    let (fake, _) = fake_cosign(fake_dir.path());
    let (_tmp, dir) = copy_kit();
    for i in 0..50_000 {
        std::fs::File::create(dir.join(format!("junk{i}"))).unwrap();
    }
    for shell in shells() {
        let run = run_script(
            shell,
            &dir.join(kit::VERIFY_SCRIPT),
            &["--kit-key"],
            &dir,
            &[("COSIGN", fake.as_os_str())],
        );
        eprintln!(
            "{shell}: 50,000 unlisted files: exit {:?}, {} stderr lines, {:?}",
            run.code,
            run.stderr.lines().count(),
            run.took
        );
        assert_eq!(run.code, Some(1), "{shell}");
        assert_eq!(
            run.stderr.matches("is in the kit but not listed").count(),
            20,
            "{shell}"
        );
        assert!(
            run.stderr
                .contains("FAIL: 49980 more unlisted file(s) in the kit, not named"),
            "{shell}"
        );
        assert!(run.stderr.lines().count() < 60, "{shell}: {}", run.stderr);
    }
}

#[test]
fn aoc_verify_passes_the_good_kit_and_reports_every_check_as_json() {
    // The kit's own key proves it intact, not who made it: exit 15, and the origin check says so.
    let report = verify_kit(&kits().a.dir, None, &VerifyOptions::default()).unwrap();
    assert!(report.intact(), "{}", describe(&report));
    assert_eq!(report.exit_code, 15, "{}", describe(&report));
    assert!(report.key.self_contained && report.key.is_dev);
    let origin = report.first_failure().unwrap();
    assert_eq!(
        (origin.check, origin.class),
        (CheckId::Origin, Class::Origin)
    );
    assert!(
        origin.detail.contains("OWN cosign.pub"),
        "{}",
        origin.detail
    );
    // The dev key given explicitly is still only the dev key, unless the caller accepts it.
    let dev = root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH);
    let report = verify_kit(&kits().a.dir, Some(&dev), &VerifyOptions::default()).unwrap();
    assert_eq!(report.exit_code, 15, "{}", describe(&report));
    assert!(report
        .first_failure()
        .unwrap()
        .detail
        .contains("PUBLIC DEV KEY"));
    let allowed = VerifyOptions {
        allow_dev_key: true,
        ..VerifyOptions::default()
    };
    let report = verify_kit(&kits().a.dir, Some(&dev), &allowed).unwrap();
    assert!(report.passed(), "{}", describe(&report));
    assert_eq!(report.exit_code, 0);
    let json = serde_json::to_value(&report).unwrap();
    let checks: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for expected in [
        CheckId::Signature,
        CheckId::SumsParse,
        CheckId::SumsComplete,
        CheckId::Sha256,
        CheckId::ProvenanceSubjects,
        CheckId::RunnerBinary,
        CheckId::SbomSpdx,
        CheckId::SbomCycloneDx,
        CheckId::Dataset,
        CheckId::DatasetManifest,
        CheckId::Origin,
    ] {
        assert!(
            checks.contains(&expected.as_str()),
            "no {expected} check in {checks:?}"
        );
    }
}

pub(crate) fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn one_flipped_byte_in_any_kit_file_fails_with_its_class_and_name() {
    let hash = kits().a.dataset_hash.clone();
    for name in kit::expected_files(&hash) {
        let (_tmp, dir) = copy_kit();
        flip_middle_byte(&dir.join(&name));
        let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        // SHA256SUMS is checked against its signature first; cosign.pub (the default key) then
        // no longer verifies anything. Every other file is caught by its checksum.
        let expected = match name.as_str() {
            kit::SUMS | kit::SUMS_BUNDLE | kit::PUBLIC_KEY => Class::Signature,
            _ => Class::Checksum,
        };
        let first = report
            .first_failure()
            .unwrap_or_else(|| panic!("flipping {name} went unnoticed"));
        assert_eq!(first.class, expected, "{name}: {}", describe(&report));
        assert_eq!(report.exit_code, expected.exit_code());
        assert!(
            first.file == name || first.detail.contains(&name),
            "{name}: first failure does not name it: {}",
            describe(&report)
        );
    }
}

#[test]
fn integrity_only_passes_the_good_kit_says_what_it_skipped_and_catches_every_flip() {
    let integrity = VerifyOptions {
        integrity_only: true,
        ..VerifyOptions::default()
    };
    let report = verify_kit(&kits().a.dir, None, &integrity).unwrap();
    assert!(report.intact(), "{}", describe(&report));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(
        report.skipped[0].contains("records"),
        "{:?}",
        report.skipped
    );
    // The dataset's bytes are bound by their signed digest and its manifest is checked; its
    // records are not read.
    assert!(report
        .checks
        .iter()
        .any(|c| c.check == CheckId::DatasetManifest && c.ok));
    assert!(!report.checks.iter().any(|c| c.check == CheckId::Dataset));
    let hash = kits().a.dataset_hash.clone();
    for name in kit::expected_files(&hash) {
        let (_tmp, dir) = copy_kit();
        flip_middle_byte(&dir.join(&name));
        let full = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
        let quick = verify_kit(&dir, None, &integrity).unwrap();
        let (f, q) = (
            full.first_failure().unwrap(),
            quick.first_failure().unwrap(),
        );
        assert_eq!(
            (q.class, &q.file),
            (f.class, &f.file),
            "{name}: {}",
            describe(&quick)
        );
    }
}

#[test]
fn swapped_bundles_fail_as_signature() {
    // SHA256SUMS' bundle replaced by the runner's (and back): valid bundles, wrong artefacts.
    let (_tmp, dir) = copy_kit();
    let (x, y) = (dir.join(kit::RUNNER_BUNDLE), dir.join(kit::SUMS_BUNDLE));
    let (bx, by) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    std::fs::write(&x, &by).unwrap();
    std::fs::write(&y, &bx).unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_eq!(report.exit_code, 11, "{}", describe(&report));
    assert_eq!(report.first_failure().unwrap().file, kit::SUMS_BUNDLE);

    // Runner bundle and provenance swapped, with SHA256SUMS re-sealed by the same key, so only
    // the bundles themselves are wrong.
    let (_tmp, dir) = copy_kit();
    let hash = &kits().a.dataset_hash;
    let (x, y) = (
        dir.join(kit::RUNNER_BUNDLE),
        dir.join(kit::provenance(hash)),
    );
    let (bx, by) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    std::fs::write(&x, &by).unwrap();
    std::fs::write(&y, &bx).unwrap();
    reseal(&dir, hash);
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_eq!(report.exit_code, 11, "{}", describe(&report));
    let failed: Vec<&str> = report.failures().map(|f| f.file.as_str()).collect();
    assert!(failed.contains(&kit::RUNNER_BUNDLE), "{failed:?}");
    assert!(
        failed.contains(&kit::provenance(hash).as_str()),
        "{failed:?}"
    );
}

/// Rewrites SHA256SUMS and its signature with the dev key, as a signer would.
pub(crate) fn reseal(dir: &Path, hash: &str) {
    let paths: Vec<PathBuf> = kit::summed_files(hash)
        .iter()
        .map(|n| dir.join(n))
        .collect();
    let text = aoc_archive::Sha256Sums::from_files(&paths)
        .unwrap()
        .render();
    std::fs::write(dir.join(kit::SUMS), &text).unwrap();
    let key = aoc_sigstore::select_signing_key(|k| dev_env().get(k).cloned(), &root()).unwrap();
    let digest = aoc_digest::Sha256Digest::of(text.as_bytes());
    std::fs::write(
        dir.join(kit::SUMS_BUNDLE),
        aoc_sigstore::message_signature_bundle(&key.signer, &digest),
    )
    .unwrap();
}

#[test]
fn another_key_fails_as_signature_and_an_unreadable_key_is_usage() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = crate::keygen::keygen(keys.path(), "other", Some("pw"), false).unwrap();
    let report = verify_kit(&kits().a.dir, Some(&public), &VerifyOptions::default()).unwrap();
    assert_eq!(report.exit_code, 11, "{}", describe(&report));
    assert!(report
        .first_failure()
        .unwrap()
        .detail
        .contains("another key"));
    assert!(verify_kit(
        &kits().a.dir,
        Some(&keys.path().join("missing.pub")),
        &VerifyOptions::default()
    )
    .is_err());
    // The right key, given explicitly, is not self-contained.
    let report = verify_kit(
        &kits().a.dir,
        Some(&root().join("tools/cosign/cosign.dev.pub")),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.intact() && !report.key.self_contained && report.key.is_dev);
}

#[test]
fn hostile_or_missing_kits_are_class_14() {
    let report = verify_kit(
        Path::new("/nonexistent/aoc"),
        None,
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(report.exit_code, 14);
    let (_tmp, dir) = copy_kit();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    let report = verify_kit(&dir, None, &VerifyOptions::default()).unwrap();
    assert_eq!(report.exit_code, 14, "{}", describe(&report));
    assert_eq!(report.first_failure().unwrap().file, "passwd");
}

/// A `DATASET_HASH` that is not 64 lower-case hex digits (nor the placeholder) stops the release
/// before the build, naming the value and the cause; nothing is left.
#[test]
fn a_malformed_dataset_pin_fails_before_the_build_with_its_cause() {
    let upper = "A".repeat(64);
    let short = "a".repeat(63);
    for (pin, cause) in [
        (upper.as_str(), "it has an upper-case digit at position 0"),
        (short.as_str(), "it has 63 characters"),
        ("sha256:abc", "it has 10 characters"),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let vars = [("COSIGN_ALLOW_DEV_KEY", "1"), ("DATASET_HASH", pin)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut opts = options(scratch.path().join("aoc"), vars);
        // Would fail loudly if the build were reached: the pin check must come first.
        opts.runner_binary = Some(scratch.path().join("no-such-stella"));
        let err = format!(
            "{:#}",
            release(&shell(), &opts).err().expect("release must fail")
        );
        assert!(
            err.contains(&format!(
                "DATASET_HASH={pin:?} is neither a dataset hash (64 lowercase hex) nor"
            )) && err.contains(cause),
            "{pin}: {err}"
        );
        assert!(
            names(scratch.path()).is_empty(),
            "{pin}: left {:?}",
            names(scratch.path())
        );
    }
}

/// Each key problem: one-line error, and neither the kit nor a staging directory is left.
#[test]
fn key_problems_fail_before_the_build_and_leave_nothing() {
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = crate::keygen::keygen(keys.path(), "prod", Some("right"), false).unwrap();
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let key = key.display().to_string();
    let cases = [
        (env(&[]), "no signing key"),
        (
            env(&[("COSIGN_KEY", &key), ("COSIGN_PASSWORD", "wrong")]),
            "wrong password",
        ),
        (
            env(&[("COSIGN_ALLOW_DEV_KEY", "1"), ("AOC_REQUIRE_PROD_KEY", "1")]),
            "AOC_REQUIRE_PROD_KEY=1 refuses the dev key",
        ),
    ];
    for (vars, reason) in cases {
        let scratch = tempfile::tempdir().unwrap();
        let mut opts = options(scratch.path().join("aoc"), vars);
        // Would fail loudly if the build were reached: the key check must come first.
        opts.runner_binary = Some(scratch.path().join("no-such-stella"));
        let t = std::time::Instant::now();
        let err = format!(
            "{:#}",
            release(&shell(), &opts).err().expect("release must fail")
        );
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(!err.contains('\n'), "not one line: {err}");
        assert!(
            names(scratch.path()).is_empty(),
            "{reason}: left {:?}",
            names(scratch.path())
        );
        assert!(
            t.elapsed().as_secs() < 30,
            "{reason}: took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn a_dataset_other_than_the_pinned_one_fails_naming_both_hashes_and_leaves_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let mut vars = dev_env();
    let pin = "0".repeat(64);
    vars.insert("DATASET_HASH".into(), pin.clone());
    let mut opts = options(scratch.path().join("aoc"), vars);
    opts.runner_binary = Some(kits().binary.clone());
    let err = format!(
        "{:#}",
        release(&shell(), &opts).err().expect("release must fail")
    );
    assert!(
        err.contains(&pin) && err.contains(&kits().a.dataset_hash),
        "{err}"
    );
    assert!(
        names(scratch.path()).is_empty(),
        "left {:?}",
        names(scratch.path())
    );
}

#[test]
fn a_release_replaces_a_previous_kit_only_after_verifying_and_publishes_when_asked() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("aoc");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let mut opts = options(out.clone(), dev_env());
    opts.runner_binary = Some(kits().binary.clone());
    let err = format!("{:#}", release(&shell(), &opts).err().unwrap());
    assert!(err.contains("not a kit"), "{err}");
    assert_eq!(names(&out), ["notes.txt"]);

    std::fs::remove_file(out.join("notes.txt")).unwrap();
    std::fs::write(out.join(kit::SUMS), "old kit").unwrap();
    let mut vars = dev_env();
    vars.insert("DATASET_HASH".into(), kits().a.dataset_hash.clone());
    let mut opts = options(out.clone(), vars);
    opts.runner_binary = Some(kits().binary.clone());
    opts.publish = Some(format!(
        "file://{}",
        scratch.path().join("published").display()
    ));
    let done = release(&shell(), &opts).unwrap();
    assert_eq!(names(&out), kit::expected_files(&kits().a.dataset_hash));
    // `--format json`: the kit, its files and steps as one document.
    let json: serde_json::Value =
        serde_json::from_slice(&aoc_term::pretty_json(&super::summary_json(&done))).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["dataset_hash"], kits().a.dataset_hash);
    assert_eq!(json["dataset_pin"], kits().a.dataset_hash);
    assert_eq!(json["dev_key"], true);
    assert_eq!(
        json["files"].as_array().unwrap().len(),
        kit::expected_files(&kits().a.dataset_hash).len()
    );
    assert!(
        json["published"].as_str().unwrap().contains("published"),
        "{json}"
    );
    assert!(json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "publish"));
    // publish.rs lays a kit out as `<version>/<files>` beside the signed offline-kit manifest.
    let published = scratch.path().join("published");
    let versions: Vec<String> = names(&published)
        .into_iter()
        .filter(|n| published.join(n).is_dir())
        .collect();
    assert_eq!(versions.len(), 1, "{:?}", names(&published));
    assert_eq!(names(&published.join(&versions[0])), names(&out));
    // The pin is an external parameter, so only the provenance (and the checksum pair over it)
    // differ from the unpinned kit.
    let hash = &kits().a.dataset_hash;
    for name in kit::subject_files(hash) {
        assert!(
            std::fs::read(out.join(&name)).unwrap()
                == std::fs::read(kits().a.dir.join(&name)).unwrap(),
            "{name} differs from the unpinned release"
        );
    }
}

// ---- third-party verifiers -------------------------------------------------------------------

/// A third-party tool, or None after a loud skip (a failure when `AOC_THIRD_PARTY=1`).
fn third_party(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "{what} is not installed ({}): run `sh xtask/third-party/setup.sh`",
        path.display()
    );
    if std::env::var("AOC_THIRD_PARTY").as_deref() == Ok("1") {
        panic!("{msg} (AOC_THIRD_PARTY=1 requires it)");
    }
    aoc_testkit::skip(msg);
    None
}

#[test]
fn sigstore_js_verifies_all_three_bundles_with_cosign_pub() {
    let node_modules = root().join("target/third-party/node");
    if third_party(
        node_modules.join("node_modules/@sigstore/verify"),
        "@sigstore/verify",
    )
    .is_none()
    {
        return;
    }
    let sh = shell();
    let script = root().join("crates/aoc-sigstore/tests/third_party/verify_bundle.mjs");
    let k = &kits().a;
    let dir = &k.dir;
    let key = dir.join(kit::PUBLIC_KEY);
    for (bundle, artefact) in [
        (kit::RUNNER_BUNDLE, kit::RUNNER_TARBALL),
        (kit::SUMS_BUNDLE, kit::SUMS),
    ] {
        let (b, a) = (dir.join(bundle), dir.join(artefact));
        cmd!(sh, "node {script} message {b} {key} {a}")
            .env("AOC_NODE_MODULES", &node_modules)
            .quiet()
            .ignore_stdout()
            .run()
            .unwrap_or_else(|e| panic!("{bundle}: {e}"));
    }
    let prov = dir.join(kit::provenance(&k.dataset_hash));
    let out = cmd!(sh, "node {script} dsse {prov} {key}")
        .env("AOC_NODE_MODULES", &node_modules)
        .quiet()
        .read()
        .unwrap();
    assert!(out.contains("application/vnd.in-toto+json"), "{out}");
    // And it rejects a bundle over another artefact.
    let (b, a) = (dir.join(kit::RUNNER_BUNDLE), dir.join(kit::SUMS));
    assert!(cmd!(sh, "node {script} message {b} {key} {a}")
        .env("AOC_NODE_MODULES", &node_modules)
        .quiet()
        .ignore_stderr()
        .run()
        .is_err());
}

#[test]
fn securesystemslib_and_in_toto_attestation_accept_the_provenance() {
    let python = root().join("target/third-party/venv/bin/python");
    let Some(python) = third_party(python, "the third-party venv") else {
        return;
    };
    let sh = shell();
    let k = &kits().a;
    let prov = k.dir.join(kit::provenance(&k.dataset_hash));
    let key = k.dir.join(kit::PUBLIC_KEY);
    if cmd!(
        sh,
        "{python} -c 'import securesystemslib, in_toto_attestation'"
    )
    .quiet()
    .ignore_stderr()
    .run()
    .is_err()
    {
        third_party(
            PathBuf::from("/nonexistent"),
            "securesystemslib / in-toto-attestation",
        );
        return;
    }
    let sslib = root().join("crates/aoc-sigstore/tests/third_party/sslib_check.py");
    cmd!(sh, "{python} {sslib} dsse {prov} {key}")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
    let check = root().join("xtask/third-party/intoto_check.py");
    let subjects = cmd!(sh, "{python} {check} {prov}").quiet().read().unwrap();
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        kit::subject_files(&k.dataset_hash)
    );
}

#[test]
fn spdx_and_cyclonedx_validators_accept_the_kit_sboms() {
    let venv = root().join("target/third-party/venv/bin");
    let Some(pyspdxtools) = third_party(venv.join("pyspdxtools"), "pyspdxtools") else {
        return;
    };
    let sh = shell();
    let dir = &kits().a.dir;
    let spdx = dir.join(kit::SPDX_FILE);
    cmd!(sh, "{pyspdxtools} -i {spdx}")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
    let python = venv.join("python");
    let cdx = dir.join(kit::CDX_FILE);
    let code = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nerr = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\nsys.exit(str(err) if err else 0)";
    cmd!(sh, "{python} -c {code} {cdx}").quiet().run().unwrap();
}

/// `scripts/release-preflight.sh` with a stand-in production key: (exit, stderr). Its key check
/// is `scripts/cosign_key_check.py` on the pinned `cryptography` and PyNaCl it installs.
fn preflight(public: &Path, key: (&str, String), password: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/release-preflight.sh"))
        .env_remove("COSIGN_KEY")
        .env_remove("COSIGN_KEY_B64")
        .env("AOC_RELEASE_PUBLIC_KEY", public)
        .env(key.0, key.1)
        .env("COSIGN_PASSWORD", password)
        .env("DATASET_HASH", "a".repeat(64))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The preflight's key check (no hand-written cryptography: the pinned libraries) accepts the
/// signing key with its password, as a file or base64, and refuses a wrong password and a
/// production public key that is another key's, naming each cause; the key id it prints is
/// aoc-sigstore's.
#[test]
fn preflight_key_check_takes_the_right_password_and_refuses_a_wrong_one_or_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let password = "stand-in: password/with?odd@chars";
    let (private, public) = aoc_sigstore::generate_key_pair(password.as_bytes()).unwrap();
    let (_, other) = aoc_sigstore::generate_key_pair(b"other").unwrap();
    let key_path = dir.path().join("cosign.key");
    std::fs::write(&key_path, &private).unwrap();
    std::fs::write(dir.path().join("cosign.pub"), &public).unwrap();
    std::fs::write(dir.path().join("other.pub"), &other).unwrap();
    let key_id = aoc_sigstore::PublicKey::from_pem(&public, "cosign.pub")
        .unwrap()
        .key_id();
    let as_file = || ("COSIGN_KEY", key_path.display().to_string());

    let (code, err) = preflight(&dir.path().join("cosign.pub"), as_file(), password);
    if err.contains("WARNING: python3 with the pinned cryptography and PyNaCl is not available") {
        third_party(
            dir.path().join("never"),
            "cryptography and PyNaCl from scripts/cosign_key_check.requirements.txt (PyPI)",
        );
        return;
    }
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("ok: signing key {key_id} is ")),
        "{err}"
    );
    let b64 = base64::engine::Engine::encode(&base64::engine::general_purpose::STANDARD, &private);
    let (code, err) = preflight(
        &dir.path().join("cosign.pub"),
        ("COSIGN_KEY_B64", b64),
        password,
    );
    assert_eq!(code, Some(0), "{err}");

    let (code, err) = preflight(&dir.path().join("cosign.pub"), as_file(), "wrong");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("COSIGN_PASSWORD does not decrypt COSIGN_KEY="),
        "{err}"
    );
    assert!(
        err.contains("REFUSED: the signing key does not match"),
        "{err}"
    );

    let (code, err) = preflight(&dir.path().join("other.pub"), as_file(), password);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "(key id {key_id}) does not match the production public key"
        )),
        "{err}"
    );

    // cosign's own key file format: the committed dev key, read by the same check.
    let libs = root().join("target/third-party/keycheck");
    let out = std::process::Command::new("python3")
        .args(["-S", "-s"])
        .arg(root().join("scripts/cosign_key_check.py"))
        .arg(root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH))
        .env("PYTHONPATH", &libs)
        .env_remove("COSIGN_KEY_B64")
        .env(
            "COSIGN_KEY",
            root().join(aoc_sigstore::policy::DEV_KEY_PATH),
        )
        .env("COSIGN_PASSWORD", aoc_sigstore::policy::DEV_KEY_PASSWORD)
        .output()
        .unwrap();
    let dev =
        std::fs::read_to_string(root().join(aoc_sigstore::policy::DEV_PUBLIC_KEY_PATH)).unwrap();
    let dev_id = aoc_sigstore::PublicKey::from_pem(&dev, "dev")
        .unwrap()
        .key_id();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dev_id,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
