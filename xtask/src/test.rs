//! `cargo xtask test`: the whole test suite as CI runs it, on any fresh machine.
//!
//! Installs the third-party verifiers into `target/third-party` (npm, pip), starts a throwaway
//! PostgreSQL cluster on a free loopback port (`scripts/pg-test-cluster.sh`), runs
//! `cargo test --workspace --locked` against it, and stops the cluster whatever happened.
//!
//! Skips are counted, not passed: a test that cannot run what it is for calls
//! `aoc_testkit::skip(reason)`, which appends a line to the file this task names in
//! `AOC_SKIP_LOG` (and fails the test under `CI`). The totals subtract those tests from libtest's
//! passed count, add libtest's ignored tests (an `#[ignore = "helper entry point: ..."]` test is a
//! child process's entry, not a test: neither), list every skip with its reason, and under `CI`
//! any skip fails the run.

use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use xshell::{cmd, Shell};

#[derive(clap::Args)]
pub struct Cmd {
    /// Skip installing the third-party verifiers (their tests are then counted as skipped, or
    /// fail under CI).
    #[arg(long)]
    no_third_party: bool,
    /// Skip starting PostgreSQL (its tests are then counted as skipped, or fail under CI).
    #[arg(long)]
    no_postgres: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. `-- -p aoc-store` (then only that
    /// package, not the whole workspace).
    #[arg(last = true)]
    cargo_args: Vec<String>,
    /// Output: text (cargo's output and the totals) or json (cargo's output on stderr, a summary
    /// of what ran on stdout).
    #[command(flatten)]
    pub output: aoc_term::FormatArg,
}

/// Stops the throwaway cluster when the test run ends, however it ends.
struct Cluster<'a> {
    sh: &'a Shell,
    dir: String,
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let dir = &self.dir;
        let _env = self.sh.push_env("AOC_PG_DIR", dir);
        if let Err(e) = cmd!(self.sh, "bash scripts/pg-test-cluster.sh stop")
            .quiet()
            .run()
        {
            eprintln!("xtask test: stopping PostgreSQL in {dir} failed: {e}");
        }
    }
}

impl Cmd {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        // One rule for "under CI" here and in the tests' skips.
        let ci = aoc_testkit::ci();
        let third_party = !self.no_third_party && self.install_third_party(sh, ci)?;
        aoc_term::interrupt::check().context("tests: stopped before starting PostgreSQL")?;
        let mut _cluster: Option<Cluster<'_>> = None;
        let mut pg_url = None;
        // The CA of the cluster's TLS certificate, when the script could make one (openssl).
        let mut pg_rootcert = None;
        if !self.no_postgres {
            // The system's temporary directory, not the workspace: the cluster runs as the `postgres`
            // user, who may not enter a workspace under root's home.
            let dir = std::env::temp_dir()
                .join(format!("aoc-pg-xtask-{}", std::process::id()))
                .display()
                .to_string();
            let started = {
                let _env = sh.push_env("AOC_PG_DIR", &dir);
                cmd!(sh, "bash scripts/pg-test-cluster.sh start").read()
            };
            match started {
                Ok(out) => {
                    _cluster = Some(Cluster { sh, dir });
                    let url = out
                        .lines()
                        .find_map(|l| l.strip_prefix("export AOC_TEST_PG="))
                        .context("pg-test-cluster.sh printed no AOC_TEST_PG")?;
                    pg_url = Some(url.trim().to_owned());
                    pg_rootcert = out
                        .lines()
                        .find_map(|l| l.strip_prefix("export AOC_TEST_PG_ROOTCERT="))
                        .map(|v| v.trim().to_owned());
                }
                Err(e) if ci => bail!("could not start PostgreSQL for the tests: {e}"),
                Err(e) => eprintln!(
                    "xtask test: WARNING: could not start PostgreSQL ({e}); its tests will skip. \
                     Install the `postgresql` package, or set AOC_TEST_PG to a server URL."
                ),
            }
        }
        let _pg = pg_url.as_deref().map(|url| sh.push_env("AOC_TEST_PG", url));
        let _pg_ca = pg_rootcert
            .as_deref()
            .map(|ca| sh.push_env("AOC_TEST_PG_ROOTCERT", ca));
        let _tp = third_party.then(|| sh.push_env("AOC_THIRD_PARTY", "1"));
        let skip_log = SkipLog::create()?;
        let _skips = sh.push_env(aoc_testkit::SKIP_LOG_ENV, &skip_log.path);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let extra = &self.cargo_args;
        // `--workspace` would override a package chosen with `-p` (cargo runs every package).
        let scope = (!selects_packages(extra)).then_some("--workspace");
        let mut command =
            // --no-fail-fast: one failing test binary must not hide the results of the others.
            std::process::Command::from(cmd!(
                sh,
                "{cargo} test {scope...} --locked --no-fail-fast {extra...}"
            ));
        let json = self.output.format.is_json();
        aoc_term::interrupt::check().context("tests: stopped before cargo test")?;
        let tally = run_counting(&mut command, json)?;
        let postgres = pg_url.is_some();
        drop(_pg);
        drop(_cluster);
        // A signal (the terminal's Ctrl-C reached cargo test too): the cluster is stopped above,
        // and the totals of a cut-short run would mislead.
        aoc_term::interrupt::check().context("tests: stopped during cargo test")?;
        let totals = Totals::new(&tally, &skip_log.read()?);
        // Under CI a skip fails the run.
        let skips_allowed = !ci || totals.skips.is_empty();
        let ok = tally.success && totals.failed == 0 && totals.passed > 0 && skips_allowed;
        // The last lines of the run: each skip with its reason, then the totals over every test
        // binary, in the plain "N passed, N failed, N skipped" form CI reads (cargo's own last
        // line is often a doc-test binary's "0 passed").
        let mut lines = totals.skip_lines();
        if ci && !totals.skips.is_empty() {
            lines.push(format!(
                "tests: CI is set, so {} skip(s) fail the run",
                totals.skips.len()
            ));
        }
        if !tally.failed_targets.is_empty() {
            // Beside the failed tests: a target can fail with none (a doc test that does not
            // compile, a test binary that crashes).
            lines.push(format!(
                "tests: {} test target(s) failed: {}",
                tally.failed_targets.len(),
                tally.failed_targets.join(", ")
            ));
        }
        lines.push(totals.line());
        if json {
            for line in &lines {
                eprintln!("{line}");
            }
            let skips: Vec<serde_json::Value> = totals
                .skips
                .iter()
                .map(|s| serde_json::json!({"test": s.test, "reason": s.reason}))
                .collect();
            aoc_term::print_json(&serde_json::json!({
                "ok": ok,
                "passed": totals.passed,
                "failed": totals.failed,
                "skipped": totals.skips.len(),
                "skips": skips,
                "failed_targets": tally.failed_targets,
                "third_party": third_party,
                "postgres": postgres,
                "cargo_args": self.cargo_args,
            }))?;
        } else {
            for line in &lines {
                crate::print_line(line)?;
            }
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    fn install_third_party(&self, sh: &Shell, ci: bool) -> Result<bool> {
        for script in [
            "crates/aoc-sigstore/tests/third_party/setup.sh",
            "xtask/third-party/setup.sh",
        ] {
            // Their output is human text: on stderr, so stdout stays the summary's.
            let mut install = std::process::Command::from(cmd!(sh, "sh {script}"));
            let status = install.stdout(std::io::stderr()).status();
            let failed = match status {
                Ok(s) if s.success() => None,
                Ok(s) => Some(s.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                if ci {
                    bail!("installing third-party verifiers with {script} failed: {e}");
                }
                eprintln!(
                    "xtask test: WARNING: {script} failed ({e}); third-party checks will skip"
                );
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// True when the extra cargo arguments choose packages (`-p NAME`, `-pNAME`, `--package`).
fn selects_packages(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a.starts_with("-p") || a.starts_with("--package"))
}

/// The file the tests append their skips to (`AOC_SKIP_LOG`), fresh for this run and removed
/// after it.
struct SkipLog {
    path: std::path::PathBuf,
}

impl SkipLog {
    fn create() -> Result<SkipLog> {
        let path =
            std::env::temp_dir().join(format!("aoc-xtask-test-skips-{}.log", std::process::id()));
        // Fresh: a left-over of an earlier run with this pid would add its skips to this one.
        std::fs::write(&path, b"")
            .with_context(|| format!("creating the skip log {}", path.display()))?;
        Ok(SkipLog { path })
    }

    /// Every recorded skip, in the order written: `(test, reason)`.
    fn read(&self) -> Result<Vec<(String, String)>> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading the skip log {}", self.path.display()))?;
        Ok(text
            .lines()
            .filter_map(aoc_testkit::parse_log_line)
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect())
    }
}

impl Drop for SkipLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One test that did not run what it is for.
#[derive(Debug, PartialEq, Eq)]
struct Skip {
    test: String,
    reason: String,
}

/// The run's honest totals: skipped tests are neither passed nor failed.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    /// Recorded skips (one per test, its reasons joined), then libtest's ignored tests.
    skips: Vec<Skip>,
}

impl Totals {
    /// `recorded`: the skip log's `(test, reason)` lines, where a test is `<binary> <path>`. A
    /// recorded test that libtest reported `ok` moves from passed to skipped; one that failed
    /// stays failed (and its skip is still listed).
    fn new(tally: &Tally, recorded: &[(String, String)]) -> Totals {
        let mut skips: Vec<Skip> = Vec::new();
        for (test, reason) in recorded {
            match skips.iter_mut().find(|s| s.test == *test) {
                Some(s) if !s.reason.split("; ").any(|r| r == reason) => {
                    s.reason = format!("{}; {reason}", s.reason)
                }
                Some(_) => {}
                None => skips.push(Skip {
                    test: test.clone(),
                    reason: reason.clone(),
                }),
            }
        }
        let moved = skips
            .iter()
            .filter(|s| {
                let path = s.test.split_once(' ').map_or(s.test.as_str(), |(_, p)| p);
                tally.ok.contains(path)
            })
            .count() as u64;
        for (test, reason) in &tally.ignored {
            if reason.starts_with(HELPER_ENTRY_POINT) {
                continue;
            }
            skips.push(Skip {
                test: test.clone(),
                reason: if reason.is_empty() {
                    "#[ignore]".into()
                } else {
                    format!("#[ignore]: {reason}")
                },
            });
        }
        Totals {
            passed: tally.passed.saturating_sub(moved),
            failed: tally.failed,
            skips,
        }
    }

    /// Each distinct reason once, with the tests it skipped under it.
    fn skip_lines(&self) -> Vec<String> {
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in &self.skips {
            match reasons.iter_mut().find(|(r, _)| *r == s.reason) {
                Some((_, tests)) => tests.push(&s.test),
                None => reasons.push((&s.reason, vec![&s.test])),
            }
        }
        let mut lines = Vec::new();
        for (reason, tests) in reasons {
            lines.push(format!("tests: SKIPPED {} test(s): {reason}", tests.len()));
            lines.extend(tests.iter().map(|t| format!("    {t}")));
        }
        lines
    }

    fn line(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed,
            self.failed,
            self.skips.len()
        )
    }
}

/// The reason that marks an `#[ignore]`d test as a child process's entry point, run explicitly
/// (`--ignored --exact`) by the test that needs it: not a test, so not a skip.
const HELPER_ENTRY_POINT: &str = "helper entry point";

/// Totals over every `test result:` line cargo prints, and the per-test lines that matter.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    /// `test NAME ... ignored[, REASON]` lines: (name, reason or empty).
    ignored: Vec<(String, String)>,
    /// The names of the tests reported `ok` (any binary).
    ok: std::collections::BTreeSet<String>,
    /// Test targets cargo reported failed (`error: ... failed, to rerun pass `-p X --doc``), in
    /// the order reported: a doc-test binary that does not compile fails without a failed test.
    failed_targets: Vec<String>,
    success: bool,
}

/// Runs `command`, passing its stdout through line by line (to stderr when `to_stderr`: stdout
/// is then the JSON summary's) while adding up the results.
fn run_counting(command: &mut std::process::Command, to_stderr: bool) -> Result<Tally> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().expect("piped above");
    // cargo reports a failed target on stderr: passed through as it comes, the targets kept.
    let stderr = child.stderr.take().expect("piped above");
    let failed_targets = std::thread::spawn(move || {
        let mut targets = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            targets.extend(failed_target(&line));
        }
        targets
    });
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    // A reader that closed stdout early (`| head`) ends the passing through, not the tests: the
    // tally, hence the exit code, still covers every test.
    let mut passing_through = true;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if passing_through {
            match writeln!(out, "{line}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => passing_through = false,
                written => written?,
            }
        }
        add_result_line(&mut tally, &line);
        add_test_line(&mut tally, &line);
    }
    tally.success = child.wait()?.success();
    tally.failed_targets = failed_targets
        .join()
        .map_err(|_| anyhow::anyhow!("reading cargo test's stderr failed"))?;
    Ok(tally)
}

/// The target of cargo's `error: test failed, to rerun pass `-p xtask --bin xtask`` or
/// `error: doctest failed, to rerun pass `-p aoc-kit --doc``.
fn failed_target(line: &str) -> Option<String> {
    let rest = line.strip_prefix("error: ")?;
    let (_, target) = rest.split_once(" failed, to rerun pass `")?;
    Some(target.strip_suffix('`')?.to_owned())
}

/// `test result: ok. 8 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`
fn add_result_line(tally: &mut Tally, line: &str) {
    let Some(rest) = line.strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(kind), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match kind {
            "passed" => tally.passed += n,
            "failed" => tally.failed += n,
            _ => {}
        }
    }
}

/// `test NAME ... ok`, `test NAME ... ignored` or `test NAME ... ignored, REASON`.
fn add_test_line(tally: &mut Tally, line: &str) {
    let Some((name, outcome)) = line
        .strip_prefix("test ")
        .and_then(|rest| rest.split_once(" ... "))
    else {
        return;
    };
    if outcome == "ok" {
        tally.ok.insert(name.to_owned());
    } else if let Some(rest) = outcome.strip_prefix("ignored") {
        let reason = rest.strip_prefix(", ").unwrap_or("").trim();
        tally.ignored.push((name.to_owned(), reason.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_up_cargo_result_lines() {
        let mut t = Tally::default();
        add_result_line(&mut t, "test result: ok. 8 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        add_result_line(&mut t, "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.2s");
        add_result_line(&mut t, "running 5 tests");
        assert_eq!((t.passed, t.failed), (11, 2));
    }

    fn tally(lines: &[&str]) -> Tally {
        let mut t = Tally::default();
        for line in lines {
            add_result_line(&mut t, line);
            add_test_line(&mut t, line);
        }
        t
    }

    #[test]
    fn recorded_skips_move_from_passed_and_ignored_tests_count_unless_helpers() {
        let t = tally(&[
            "test pg_appends ... ok",
            "test pg_reads ... ok",
            "test sqlite_appends ... ok",
            "test broken ... FAILED",
            "test slow ... ignored, needs a GPU",
            "test bare ... ignored",
            "test verify::child_process_entry_point ... ignored, helper entry point: run as a child",
            "test result: FAILED. 3 passed; 1 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.1s",
        ]);
        assert_eq!(t.ignored.len(), 3);
        let recorded = [
            ("store pg_appends", "AOC_TEST_PG is not set"),
            ("store pg_reads", "AOC_TEST_PG is not set"),
            ("store pg_reads", "AOC_TEST_PG is not set"),
            ("store pg_reads", "no initdb"),
            ("store broken", "no server"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let totals = Totals::new(&t, &recorded);
        // Two of the three passes were skips; the failed test stays failed.
        assert_eq!((totals.passed, totals.failed), (1, 1));
        let listed: Vec<(&str, &str)> = totals
            .skips
            .iter()
            .map(|s| (s.test.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("store pg_appends", "AOC_TEST_PG is not set"),
                ("store pg_reads", "AOC_TEST_PG is not set; no initdb"),
                ("store broken", "no server"),
                ("slow", "#[ignore]: needs a GPU"),
                ("bare", "#[ignore]"),
            ]
        );
        assert_eq!(totals.line(), "tests: 1 passed, 1 failed, 5 skipped");
        assert_eq!(
            totals.skip_lines()[..4],
            [
                "tests: SKIPPED 1 test(s): AOC_TEST_PG is not set",
                "    store pg_appends",
                "tests: SKIPPED 1 test(s): AOC_TEST_PG is not set; no initdb",
                "    store pg_reads",
            ]
        );
    }

    #[test]
    fn failed_targets_are_read_from_cargo_errors() {
        assert_eq!(
            failed_target("error: doctest failed, to rerun pass `-p aoc-kit --doc`").as_deref(),
            Some("-p aoc-kit --doc")
        );
        assert_eq!(
            failed_target("error: test failed, to rerun pass `-p xtask --bin xtask`").as_deref(),
            Some("-p xtask --bin xtask")
        );
        assert_eq!(failed_target("error: 3 targets failed:"), None);
        assert_eq!(failed_target("test a ... FAILED"), None);
    }

    #[test]
    fn a_package_choice_replaces_the_whole_workspace() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects_packages(&args(&["-p", "aoc-store"])));
        assert!(selects_packages(&args(&["-paoc-store"])));
        assert!(selects_packages(&args(&["--package=aoc-kit"])));
        assert!(!selects_packages(&args(&["--test", "store"])));
        assert!(!selects_packages(&args(&["--", "-p"])));
        assert!(!selects_packages(&[]));
    }

    #[test]
    fn the_skip_log_is_fresh_and_read_back_line_by_line() {
        let log = SkipLog::create().unwrap();
        assert!(log.read().unwrap().is_empty());
        std::fs::write(&log.path, "store a\tno server\nxtask b::c\tno syft\n").unwrap();
        assert_eq!(
            log.read().unwrap(),
            [
                ("store a".to_owned(), "no server".to_owned()),
                ("xtask b::c".to_owned(), "no syft".to_owned())
            ]
        );
        let path = log.path.clone();
        drop(log);
        assert!(!path.exists());
    }
}
