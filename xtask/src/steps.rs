//! The steps of a long task (`aoc-release`, `aoc-rehearsal`), timed and named: each prints
//! `<task>: <step> done|FAILED in N s` when asked, and a failure carries the step's name, so a
//! user knows where a run stopped and a report can list every step's time. With
//! [`Steps::with_progress`] a spinner names the running step on a terminal (`aoc_term`).
//!
//! SIGINT or SIGTERM (with `aoc_term::interrupt::stop_at_step_boundaries` installed) lets the
//! step in hand end and stops the task before the next with `aoc_term::interrupt::Interrupted`
//! in the error's chain: the task's guards (a staging directory, a PostgreSQL cluster) are then
//! dropped as on any failure, and `main` exits 130 or 143.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct Steps {
    task: &'static str,
    print: bool,
    /// A spinner names the running step (drawn only on a terminal without NO_COLOR).
    progress: bool,
    /// Every step that finished, in order, with its wall time.
    pub done: Vec<(String, Duration)>,
    /// The step that failed, once one has.
    pub failed: Option<String>,
}

impl Steps {
    pub fn new(task: &'static str, print: bool) -> Steps {
        Steps {
            task,
            print,
            progress: false,
            done: Vec::new(),
            failed: None,
        }
    }

    /// Shows a spinner naming the running step, when steps are printed. A step's own lines must
    /// then go through `aoc_term::say`.
    pub fn with_progress(mut self) -> Steps {
        self.progress = self.print;
        self
    }

    /// Runs `f` as the step `name`; a failure gets the context ``TASK: step `NAME` failed``.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_interrupted(name)?;
        let spinner = self
            .progress
            .then(|| aoc_term::Progress::spinner(format!("{}: {name}", self.task)));
        let started = Instant::now();
        let out = f();
        drop(spinner);
        self.finish(name, started, out)
    }

    /// [`Steps::run`] without the spinner: for a step whose child process or inner task draws
    /// its own progress on the terminal.
    pub fn run_plain<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_interrupted(name)?;
        let started = Instant::now();
        let out = f();
        self.finish(name, started, out)
    }

    /// A signal came: the task stops before the step `name`.
    fn check_interrupted(&self, name: &str) -> Result<()> {
        aoc_term::interrupt::check()
            .with_context(|| format!("{}: stopped before step `{name}`", self.task))
    }

    fn finish<T>(&mut self, name: &str, started: Instant, out: Result<T>) -> Result<T> {
        // A step that failed because a signal came (its child process got the terminal's
        // SIGINT too) stopped on the signal, whatever its own error says.
        let out = match (out, aoc_term::interrupt::check()) {
            (Err(e), Err(interrupted)) => Err(e.context(interrupted)),
            (out, _) => out,
        };
        let took = started.elapsed();
        if self.print {
            let status = if out.is_ok() { "done" } else { "FAILED" };
            eprintln!(
                "{}: {name:<16} {status} in {:>7.2} s",
                self.task,
                took.as_secs_f64()
            );
        }
        match out {
            Ok(v) => {
                self.done.push((name.to_string(), took));
                Ok(v)
            }
            Err(e) => {
                self.failed = Some(name.to_string());
                Err(e.context(format!("{}: step `{name}` failed", self.task)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_timed_in_order_and_a_failure_names_its_step() {
        let mut steps = Steps::new("aoc-test", false);
        assert_eq!(steps.run("one", || Ok(1)).unwrap(), 1);
        let err = steps
            .run("two", || -> Result<()> { anyhow::bail!("disk full") })
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "aoc-test: step `two` failed: disk full");
        let names: Vec<&str> = steps.done.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["one"]);
        assert_eq!(steps.failed.as_deref(), Some("two"));
    }
}
