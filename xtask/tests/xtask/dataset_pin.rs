//! `cargo xtask aoc-release` builds the same dataset whatever `SOURCE_DATE_EPOCH` it runs with:
//! the dataset's clock is its definition's (`seed/dataset.json`). Runs the real binary up to the
//! runner build (`--runner-binary` names a file that does not exist, so nothing is built): the
//! hash a placeholder run reports pins runs with other SOURCE_DATE_EPOCH values, and a dataset
//! clock given beside the definition is refused. The runs use `--format json`: each failure is
//! one JSON document on stdout naming the step, the progress lines stay on stderr.

use crate::aoc_release;
use std::path::Path;
use std::process::Output;

fn release(dir: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = aoc_release(&["--format", "json"]);
    cmd.arg("--out")
        .arg(dir.join("kit"))
        .arg("--runner-binary")
        .arg(dir.join("no-such-stella"))
        // No out/rehearsal/ there: the kit would carry no report.
        .current_dir(dir);
    cmd.env("COSIGN_ALLOW_DEV_KEY", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_pinned_dataset_holds_whatever_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = release(
        tmp.path(),
        &[
            ("DATASET_HASH", "dev-rehearsal-placeholder"),
            ("SOURCE_DATE_EPOCH", "1"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hash = stderr
        .split("accepting dataset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dataset hash reported: {stderr}"))
        .to_string();
    assert_eq!(hash.len(), 64, "{stderr}");
    for epoch in ["1", "1700000000", "2000000000"] {
        let out = release(
            tmp.path(),
            &[("DATASET_HASH", &hash), ("SOURCE_DATE_EPOCH", epoch)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        // Past the dataset step (the pin held) and the rehearsal report: stopped at the build.
        assert!(
            stderr.contains("step `build runner` failed") && stderr.contains("does not exist"),
            "SOURCE_DATE_EPOCH={epoch}: {stderr}"
        );
        let failure: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stderr}"));
        assert_eq!(failure["ok"], false);
        assert!(
            failure["error"]
                .as_str()
                .unwrap()
                .contains("step `build runner` failed"),
            "{failure}"
        );
        assert!(stderr.contains("aoc-release: dataset"), "{stderr}");
        assert!(!tmp.path().join("kit").exists());
    }
    // A second clock beside the committed definition is refused, naming both.
    let out = release(
        tmp.path(),
        &[("DATASET_HASH", &hash), ("AOC_DATASET_EPOCH", "1700000000")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("seed/dataset.json carries its own"),
        "{stderr}"
    );
}
