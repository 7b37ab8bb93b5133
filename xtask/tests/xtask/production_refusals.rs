//! `cargo xtask aoc-release` with `AOC_REQUIRE_PROD_KEY=1` exits non-zero within seconds, before
//! any build, when DATASET_HASH is unset, empty or the rehearsal placeholder, or when the signing
//! key is not the committed production public key `tools/cosign/cosign.pub`; the message names the
//! problem. (The release function's own tests cover each case in detail; this runs the binary.)

use crate::aoc_release;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn release(key: &Path, pin: Option<&str>, out: &Path) -> (Output, Duration) {
    let mut cmd = aoc_release(&["--out"]);
    cmd.arg(out);
    cmd.env("AOC_REQUIRE_PROD_KEY", "1")
        .env("COSIGN_KEY", key)
        .env("COSIGN_PASSWORD", "prod");
    if let Some(p) = pin {
        cmd.env("DATASET_HASH", p);
    }
    let t = Instant::now();
    let output = cmd.output().unwrap();
    (output, t.elapsed())
}

#[test]
fn production_releases_without_a_real_pin_or_the_committed_key_exit_non_zero_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, _) = aoc_sigstore::generate_key_pair(b"prod").unwrap();
    let key: PathBuf = tmp.path().join("prod.key");
    std::fs::write(&key, private).unwrap();
    let out = tmp.path().join("kit");
    let real_pin = "a".repeat(64);
    let cases: [(Option<&str>, &str); 4] = [
        (None, "needs DATASET_HASH"),
        (Some(""), "needs DATASET_HASH"),
        (
            Some("dev-rehearsal-placeholder"),
            "DATASET_HASH=dev-rehearsal-placeholder accepts any dataset",
        ),
        // Pinned, but signed by a key that is not the committed production public key (there is
        // none in the repository yet, or it is another key): refused too.
        (Some(&real_pin), "tools/cosign/cosign.pub"),
    ];
    for (pin, expected) in cases {
        let (output, took) = release(&key, pin, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{pin:?}: {stderr}");
        assert!(stderr.contains(expected), "{pin:?}: {stderr}");
        assert!(!stderr.contains("build runner"), "{pin:?}: {stderr}");
        assert!(took < Duration::from_secs(20), "{pin:?}: took {took:?}");
        assert!(!out.exists(), "{pin:?}: the kit directory was created");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "{pin:?}: something besides the key was written"
        );
    }
}
