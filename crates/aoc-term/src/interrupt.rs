//! SIGINT (Ctrl-C) and SIGTERM, handled the same way by every command: never a silent death.
//!
//! - A command that writes in batches ([`stop_at_batch_boundaries`]): the first signal sets a
//!   flag that the work polls between batches; it stops there, having committed nothing half
//!   done, says what it committed and exits [`Signal::exit_code`]. A second signal ends the
//!   process at once (what is committed is still whole: each batch is one transaction).
//! - A task run in steps ([`stop_at_step_boundaries`], `cargo xtask aoc-release`): the same,
//!   the step in hand taking the batch's place; the task returns [`Interrupted`].
//! - A command that only reads ([`exit_on_signal`]): the first signal ends it at once, with a
//!   message; its temporary files are unlinked, so they go with it.
//!
//! Either way paths registered with [`remove_on_exit`] (a staging directory) are removed before
//! the process ends on a signal. Exit codes are the shell's: 128 + the signal number.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Their line in every "Exit codes:" section.
pub const EXIT_INTERRUPTED_HELP: (&str, &str) = (
    "130/143",
    "interrupted by SIGINT (Ctrl-C) / SIGTERM: stopped cleanly, nothing half written; the \
     same command resumes or starts again",
);

/// A signal that stops a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    pub const INT: Signal = Signal(SIGINT);
    pub const TERM: Signal = Signal(SIGTERM);

    pub fn name(self) -> &'static str {
        match self.0 {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }

    /// 128 + the signal number, as a shell reports a process the signal killed: 130, 143.
    pub fn exit_code(self) -> u8 {
        (128 + self.0) as u8
    }
}

struct State {
    stop: Arc<AtomicBool>,
    received: AtomicI32,
    /// Removed before the process ends on a signal.
    cleanup: Mutex<Vec<PathBuf>>,
    /// Set while a batch command has written nothing yet ([`nothing_written_yet`]): a signal
    /// then ends it at once, with this message.
    at_once: Mutex<Option<&'static str>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        stop: Arc::new(AtomicBool::new(false)),
        received: AtomicI32::new(0),
        cleanup: Mutex::new(Vec::new()),
        at_once: Mutex::new(None),
    })
}

/// The error of work that stopped at a boundary because a signal came: its exit code is the
/// signal's ([`Signal::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted(pub Signal);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0.name())
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted)` once a signal has come, else `Ok`: what work polls at its boundaries.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted(signal)),
        None => Ok(()),
    }
}

/// The signal received, if any.
pub fn received() -> Option<Signal> {
    match state().received.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal(n)),
    }
}

/// The flag [`stop_at_batch_boundaries`] returns, for work deep in a library (a build's export
/// and packing) to poll: never set unless that handler is installed and a signal came.
pub fn flag() -> &'static AtomicBool {
    &state().stop
}

/// Installs the handler of a command that writes in batches and returns the flag its work polls
/// at each batch boundary. `tool` prefixes the messages.
pub fn stop_at_batch_boundaries(tool: &'static str) -> &'static AtomicBool {
    install(
        tool,
        Mode::Stop {
            in_hand: "the batch in hand",
            at_once: "every committed batch is whole, and the same command resumes after the \
                      last one",
        },
    );
    &state().stop
}

/// Installs the handler of a task run in steps: the first signal lets the step in hand end and
/// the task stop before the next ([`check`]); a second ends it at once, `at_once` saying what
/// that leaves.
pub fn stop_at_step_boundaries(tool: &'static str, at_once: &'static str) {
    install(
        tool,
        Mode::Stop {
            in_hand: "the step in hand",
            at_once,
        },
    );
}

/// Installs the handler of a command that only reads: on a signal, `{tool}: interrupted by
/// SIGINT; {what}` and the exit code.
pub fn exit_on_signal(tool: &'static str, what: &'static str) {
    install(tool, Mode::Exit(what));
}

/// Until the guard is dropped, a signal ends a batch command at once with `{tool}: interrupted by
/// SIGINT; {what}`: for its preparation (a dataset's integrity pass, connecting), where there is
/// no batch boundary to wait for and nothing to keep.
pub fn nothing_written_yet(what: &'static str) -> AtOnce {
    *state().at_once.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
    AtOnce(())
}

/// The guard of [`nothing_written_yet`].
pub struct AtOnce(());

impl Drop for AtOnce {
    fn drop(&mut self) {
        *state().at_once.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Removes `path` (a directory and all in it, or a file) if the process ends on a signal, until
/// the guard is dropped.
pub fn remove_on_exit(path: PathBuf) -> Registered {
    let mut paths = state().cleanup.lock().unwrap_or_else(|e| e.into_inner());
    paths.push(path.clone());
    Registered(path)
}

/// A path [`remove_on_exit`] registered; dropping it unregisters the path (not removing it).
pub struct Registered(PathBuf);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut paths = state().cleanup.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = paths.iter().position(|p| *p == self.0) {
            paths.swap_remove(i);
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Stop after `in_hand`; on a second signal, exit saying `at_once`.
    Stop {
        in_hand: &'static str,
        at_once: &'static str,
    },
    Exit(&'static str),
}

fn install(tool: &'static str, mode: Mode) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // A handler that cannot be installed leaves the default action (the process dies on the
        // signal): still whole, never worse than before.
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for n in signals.forever() {
                    handle(tool, mode, Signal(n));
                }
            });
        drop(spawned);
    });
}

fn handle(tool: &str, mode: Mode, signal: Signal) {
    let s = state();
    let first = s.received.load(Ordering::SeqCst) == 0;
    if first {
        s.received.store(signal.0, Ordering::SeqCst);
    }
    let at_once = *s.at_once.lock().unwrap_or_else(|e| e.into_inner());
    let mode = match (mode, at_once) {
        (Mode::Stop { .. }, Some(what)) => Mode::Exit(what),
        (mode, _) => mode,
    };
    match mode {
        Mode::Stop { in_hand, .. } if first => {
            s.stop.store(true, Ordering::SeqCst);
            tell(format!(
                "{tool}: {} received: stopping after {in_hand} (again to stop at once)",
                signal.name()
            ));
        }
        Mode::Stop { at_once, .. } => {
            remove_registered();
            tell(format!(
                "{tool}: {} again: stopped at once; {at_once}",
                signal.name()
            ));
            std::process::exit(signal.exit_code().into());
        }
        Mode::Exit(what) => {
            remove_registered();
            tell(format!("{tool}: interrupted by {}; {what}", signal.name()));
            std::process::exit(signal.exit_code().into());
        }
    }
}

/// [`crate::say`], which never fails: a reader of stderr that is gone (a killed parent) must not
/// end the handler thread (`eprintln!` panics on EPIPE), or a second signal could no longer stop
/// the process.
fn tell(line: String) {
    let _ = std::panic::catch_unwind(|| crate::say(line));
}

fn remove_registered() {
    let paths = state().cleanup.lock().unwrap_or_else(|e| e.into_inner());
    for p in paths.iter() {
        let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_error_names_its_signal() {
        assert_eq!(
            Interrupted(Signal::INT).to_string(),
            "interrupted by SIGINT"
        );
    }

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(Signal::INT.exit_code(), 130);
        assert_eq!(Signal::TERM.exit_code(), 143);
        assert_eq!(Signal::TERM.name(), "SIGTERM");
    }
}
