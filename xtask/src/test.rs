//! `cargo xtask test`: the whole test suite as CI runs it, on any fresh machine.
//!
//! Installs the third-party verifiers into `target/third-party` (npm, pip), starts a throwaway
//! PostgreSQL cluster on a free loopback port (`scripts/pg-test-cluster.sh`), runs
//! `cargo test --workspace --locked` against it, and stops the cluster whatever happened.
//! Outside CI a missing tool or server is a loud skip; with `CI` set it is a failure.

use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use xshell::{cmd, Shell};

#[derive(clap::Args)]
pub struct Cmd {
    /// Skip installing the third-party verifiers (their tests then skip loudly).
    #[arg(long)]
    no_third_party: bool,
    /// Skip starting PostgreSQL (its tests then skip loudly, or fail under CI).
    #[arg(long)]
    no_postgres: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. `-- -p aoc-store`.
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
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let third_party = !self.no_third_party && self.install_third_party(sh, ci)?;
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
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let extra = &self.cargo_args;
        let mut command =
            std::process::Command::from(cmd!(sh, "{cargo} test --workspace --locked {extra...}"));
        let json = self.output.format.is_json();
        let tally = run_counting(&mut command, json)?;
        let postgres = pg_url.is_some();
        drop(_pg);
        drop(_cluster);
        // The last line of the run: the totals over every test binary, in the plain
        // "N passed, N failed" form CI reads (cargo's own last line is often a doc-test
        // binary's "0 passed").
        let totals = format!(
            "tests: {} passed, {} failed, {} skipped",
            tally.passed, tally.failed, tally.ignored
        );
        let ok = tally.success && tally.failed == 0 && tally.passed > 0;
        if json {
            eprintln!("{totals}");
            aoc_term::print_json(&serde_json::json!({
                "ok": ok,
                "passed": tally.passed,
                "failed": tally.failed,
                "skipped": tally.ignored,
                "third_party": third_party,
                "postgres": postgres,
                "cargo_args": self.cargo_args,
            }))?;
        } else {
            println!("{totals}");
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

/// Totals over every `test result:` line cargo prints.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
    success: bool,
}

/// Runs `command`, passing its stdout through line by line (to stderr when `to_stderr`: stdout
/// is then the JSON summary's) while adding up the results.
fn run_counting(command: &mut std::process::Command, to_stderr: bool) -> Result<Tally> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().expect("piped above");
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        add_result_line(&mut tally, &line);
    }
    tally.success = child.wait()?.success();
    Ok(tally)
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
            "ignored" => tally.ignored += n,
            _ => {}
        }
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
        assert_eq!((t.passed, t.failed, t.ignored), (11, 2, 1));
    }
}
