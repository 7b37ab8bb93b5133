//! The command-line convention of every command of `stella`, `aoc-dataset` and `cargo xtask`
//! (docs/ARCHITECTURE.md §5), in one place so the three binaries cannot drift:
//!
//! - `--format text|json` ([`Format`], or [`StreamFormat`] with `ndjson` where a stream fits): the
//!   machine form on stdout when asked; human text and progress always on stderr.
//! - Report files may be `-`, meaning stdout ([`write_report`]); at most one thing goes to stdout
//!   ([`one_stdout`]).
//! - A progress bar on a terminal only, never with `NO_COLOR` ([`Progress`]), and human lines
//!   printed above it ([`say`]).
//! - A failure is one line on stderr, each cause said once, and under `--format json` also one
//!   `{"ok": false, "error", "exit_code"}` document on stdout, usage errors included; a reader
//!   that closes stdout early ends the output quietly ([`failure`]).
//! - Every `--help` ends with "Exit codes:" and "Environment:" sections ([`after_help`]), which
//!   list the codes every command shares: 3 for an environment problem ([`environment`]), 130/143
//!   for SIGINT/SIGTERM ([`interrupt`]).

pub mod environment;
pub mod escape;
pub mod interrupt;

pub use escape::{escape, escape_os, escape_path};

pub use environment::{EnvironmentError, EXIT_ENVIRONMENT, EXIT_ENVIRONMENT_HELP};
pub use interrupt::EXIT_INTERRUPTED_HELP;

pub mod failure;

pub use failure::{error_chain, is_closed_pipe, report_failure};

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--format` of a command with one result: a human summary, or one JSON document on stdout.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Human text on stderr (and at most the one line of data the command documents on stdout).
    #[default]
    Text,
    /// One JSON document on stdout; human text still on stderr.
    Json,
}

impl Format {
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// `--format` of a command whose result is a stream of entries (`stella sources ingest`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamFormat {
    /// A human table on stderr (`table` is accepted for it).
    #[default]
    #[value(alias = "table")]
    Text,
    /// One JSON document on stdout.
    Json,
    /// One JSON document a line on stdout, each as soon as it is known.
    Ndjson,
}

/// The `--format text|json` flag, to flatten into a command's arguments.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct FormatArg {
    /// Output: text (human, on stderr) or json (one JSON document on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub format: Format,
}

/// The value of a report-file flag that means standard output.
pub const STDOUT: &str = "-";

/// True when a report-file argument is `-` (standard output).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

/// Refuses a command line that sends two things to stdout (`--format json` with `--report -`,
/// or two reports to `-`): each `(flag, goes_to_stdout)`.
pub fn one_stdout(uses: &[(&str, bool)]) -> anyhow::Result<()> {
    let on: Vec<&str> = uses.iter().filter(|(_, b)| *b).map(|(f, _)| *f).collect();
    anyhow::ensure!(
        on.len() <= 1,
        "{} all write to stdout: send all but one to a file",
        on.join(" and ")
    );
    Ok(())
}

/// Writes a report, metrics or rejects file: `-` to stdout, any other path atomically
/// (`aoc_archive::fs`), so a reader never sees a half-written file under the final name.
pub fn write_report(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if is_stdout(path) {
        failure::write_stdout(bytes).context("writing to stdout")
    } else {
        aoc_archive::fs::write_atomic(path, bytes, aoc_archive::fs::FILE_MODE)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// `value` as pretty JSON with a trailing newline; characters that would act on a terminal are
/// `\uXXXX` escapes ([`escape::to_vec_pretty`]: the value is unchanged).
pub fn pretty_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = escape::to_vec_pretty(value).expect("report types always serialise");
    out.push(b'\n');
    out
}

/// Prints `value` as the command's one JSON document on stdout (`--format json`).
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    write_report(Path::new(STDOUT), &pretty_json(value))
}

/// True when stderr is a terminal and `NO_COLOR` is unset: colour and progress bars are drawn.
pub fn interactive() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Wraps `s` in an ANSI colour when `on`.
pub fn paint(s: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// The bars on screen, innermost last: [`say`] prints above the innermost.
static ACTIVE: Mutex<Vec<(u64, ProgressBar)>> = Mutex::new(Vec::new());
/// Identifies a bar in [`ACTIVE`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Prints one human line on stderr, above a progress bar when one is drawn (a plain `eprintln!`
/// would be overwritten by the bar's next frame).
pub fn say(line: impl Display) {
    let active = ACTIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last()
        .map(|(_, bar)| bar.clone());
    match active {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// A progress bar or spinner on stderr, drawn only when [`interactive`]; cleared when dropped.
pub struct Progress {
    bar: ProgressBar,
    /// Its key in [`ACTIVE`]; 0 when never drawn.
    id: u64,
}

impl Progress {
    /// A spinner with a message and the time so far.
    pub fn spinner(message: impl Into<String>) -> Progress {
        Progress::with(None, "{spinner} {msg}  {elapsed}", message.into())
    }

    /// A spinner counting `unit`s (`records`): the count, its rate and the time.
    pub fn counter(message: impl Into<String>, unit: &str) -> Progress {
        Progress::with(
            None,
            &format!("{{spinner}} {{msg}} {{human_pos}} {unit}  {{per_sec}}  {{elapsed}}"),
            message.into(),
        )
    }

    /// A bar over `len` steps.
    pub fn bar(len: u64, message: impl Into<String>) -> Progress {
        Progress::with(
            Some(len),
            "{msg} [{bar:30}] {pos}/{len} {elapsed}",
            message.into(),
        )
    }

    /// Never drawn (a caller that prints nothing).
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            id: 0,
        }
    }

    fn with(len: Option<u64>, template: &str, message: String) -> Progress {
        if !interactive() {
            return Progress::hidden();
        }
        let bar = match len {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(200));
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, bar.clone()));
        Progress { bar, id }
    }

    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Runs `f` with the bar cleared from the screen (a child process writing to the terminal).
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.bar.suspend(f)
    }

    /// True when the bar is drawn.
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        self.bar.finish_and_clear();
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

/// The heading of the exit-code section of every `--help`.
pub const EXIT_HEADING: &str = "Exit codes:";
/// The heading of the environment section of every `--help`.
pub const ENV_HEADING: &str = "Environment:";

/// `NO_COLOR`, read by every command that draws a bar or colour.
pub const ENV_NO_COLOR: (&str, &str) = ("NO_COLOR", "set: no colour and no progress bar");

/// The "Exit codes:" and "Environment:" sections of a command's `--help` (clap's `after_help`).
/// Variables that a flag reads are named by clap beside the flag (`[env: X]`) and may be listed
/// here too; every variable the command reads is named somewhere in its help.
pub fn after_help(exit_codes: &[(&str, &str)], env: &[(&str, &str)]) -> String {
    let mut out = String::from(EXIT_HEADING);
    out.push('\n');
    let width = exit_codes.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (code, meaning) in exit_codes {
        out.push_str(&format!("  {code:<width$}  {meaning}\n"));
    }
    out.push_str(&env_section(env));
    out
}

/// The "Environment:" section alone, for a command whose exit-code text exists already.
pub fn env_section(env: &[(&str, &str)]) -> String {
    let mut out = format!("\n{ENV_HEADING}\n");
    let width = env.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
    for (var, meaning) in env {
        out.push_str(&format!("  {var:<width$}  {meaning}\n"));
    }
    out.trim_end().to_owned()
}

/// The convention's help-text problems of every leaf command under `cmd` (empty: it keeps the
/// convention): its usage line starts with `program`, its `--help` has `--format`, the
/// "Exit codes:" and "Environment:" sections and names every variable `env` lists for it (by
/// its path of subcommand names, e.g. `aoc backfill`), and nothing sends the reader to a source
/// file for its exit codes. Every leaf must be listed in `env`. The binaries' tests call it on
/// their clap tree (`Cli::command()`).
pub fn convention_problems(
    cmd: clap::Command,
    program: &str,
    env: &[(&str, &[&str])],
) -> Vec<String> {
    let mut cmd = cmd;
    cmd.build();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    leaves(&mut cmd, &mut Vec::new(), &mut |path, leaf| {
        let name = path.join(" ");
        let help = leaf.render_long_help().to_string();
        let usage = leaf.render_usage().to_string();
        let mut problem = |what: String| problems.push(format!("`{program} {name}`: {what}"));
        if !usage.starts_with(&format!("Usage: {program} {name}")) {
            problem(format!(
                "usage line {usage:?} does not say `{program} {name}`"
            ));
        }
        for needle in ["--format <FORMAT>", EXIT_HEADING, ENV_HEADING] {
            if !help.contains(needle) {
                problem(format!("--help lacks {needle:?}"));
            }
        }
        if help.contains(".rs") && help.to_lowercase().contains("exit codes: see") {
            problem("--help sends the reader to a source file for its exit codes".into());
        }
        match env.iter().find(|(p, _)| *p == name) {
            None => problem("not in the list of commands and their variables".into()),
            Some((_, vars)) => {
                for var in *vars {
                    if !help.contains(var) {
                        problem(format!("--help does not name the variable {var}"));
                    }
                }
            }
        }
        seen.push(name);
    });
    for (path, _) in env {
        if !seen.iter().any(|s| s == path) {
            problems.push(format!("`{program} {path}` is listed but is no command"));
        }
    }
    problems
}

/// Calls `f` with every leaf command (no subcommands; `help` left out) and its path.
fn leaves(
    cmd: &mut clap::Command,
    path: &mut Vec<String>,
    f: &mut dyn FnMut(&[String], &mut clap::Command),
) {
    if cmd.get_subcommands().next().is_none() {
        f(path, cmd);
        return;
    }
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        path.push(sub.get_name().to_owned());
        leaves(sub, path, f);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_sections_name_every_code_and_variable() {
        let text = after_help(
            &[("0", "ok"), ("10", "checksum")],
            &[("SOURCE_DATE_EPOCH", "the clock"), ENV_NO_COLOR],
        );
        assert_eq!(
            text,
            "Exit codes:\n  0   ok\n  10  checksum\n\nEnvironment:\n  SOURCE_DATE_EPOCH  the \
             clock\n  NO_COLOR           set: no colour and no progress bar"
        );
    }

    #[test]
    fn two_outputs_on_stdout_are_refused() {
        one_stdout(&[("--format json", true), ("--report -", false)]).unwrap();
        let err = one_stdout(&[("--format json", true), ("--report -", true)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--format json and --report - all write to stdout: send all but one to a file"
        );
    }

    #[test]
    fn a_dash_is_stdout_and_a_path_is_written_atomically() {
        assert!(is_stdout(Path::new("-")));
        assert!(!is_stdout(Path::new("./-")));
        let dir = tempfile_dir();
        let path = dir.join("r.json");
        write_report(&path, b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("aoc-term-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[derive(clap::Parser)]
    #[command(name = "demo", bin_name = "demo")]
    enum Demo {
        /// Keeps the convention.
        #[command(after_help = after_help(&[("0", "ok")], &[("DEMO_VAR", "x")]))]
        Good(FormatArg),
        /// Has no sections and no --format.
        Bad,
    }

    #[test]
    fn the_checker_finds_a_command_without_the_convention() {
        use clap::CommandFactory;
        let problems = convention_problems(
            Demo::command(),
            "demo",
            &[("good", &["DEMO_VAR"]), ("bad", &["OTHER_VAR"])],
        );
        assert_eq!(
            problems,
            [
                "`demo bad`: --help lacks \"--format <FORMAT>\"",
                "`demo bad`: --help lacks \"Exit codes:\"",
                "`demo bad`: --help lacks \"Environment:\"",
                "`demo bad`: --help does not name the variable OTHER_VAR",
            ]
        );
    }

    #[test]
    fn a_bar_is_never_drawn_off_a_terminal() {
        // Tests run with stderr captured or redirected: not a terminal.
        if std::io::stderr().is_terminal() {
            return;
        }
        let p = Progress::bar(3, "x");
        assert!(!p.is_drawn());
        say("a line with no bar on screen");
    }
}
