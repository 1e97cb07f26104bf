//! When `warren up` ends by itself, and with which code, so that it can run a test stack the way
//! `honcho start` or `docker compose up --abort-on-container-exit` do.
//!
//! - `--abort-on-exit`: the first program that exits on its own (ends, crashes, fails to start)
//!   stops everything; `up` exits with that program's code.
//! - `--exit-code-from NAME`: the same, triggered by NAME alone, and the code is NAME's.
//! - Neither: `up` ends once every program has ended by itself and nothing will start again
//!   by itself — 0 if every program ended cleanly, 1 otherwise. A program stopped with
//!   `warren stop` keeps `up` running: the person who stopped it is driving the instance and
//!   may `warren start` it again (after `warren stop --all` as much as after one stop);
//!   `warren down` ends it.

use warren::Exit;
use warren::supervise::Supervisor;
use warren::supervise::machine::State;

use crate::cli::UpOptions;
use crate::exit;

/// The run's end conditions and, once a program's exit stopped everything, which one and its code.
pub struct Harness {
    options: UpOptions,
    trigger: Option<(String, u8)>,
}

impl Harness {
    pub fn new(options: UpOptions) -> Harness {
        Harness { options, trigger: None }
    }

    fn is_named(&self, name: &str) -> bool {
        self.options.exit_code_from.as_deref() == Some(name)
    }

    /// Called for each state change while no stop was asked for: why a program's exit must stop
    /// everything now, if it must.
    pub fn on_change(&mut self, supervisor: &Supervisor, name: &str, state: &State) -> Option<String> {
        if !(self.options.abort_on_exit || self.is_named(name)) {
            return None;
        }
        let code = match state {
            State::Exited { exit } => code_of(*exit),
            // Exited and due for a restart: still an exit.
            State::Backoff { .. } => last_exit(supervisor, name).map_or(exit::PROGRAM_FAILED, code_of),
            // A start that failed has no code of its own; a crash loop's is its last exit's.
            State::Failed { .. } => {
                last_exit(supervisor, name).filter(|exit| !exit.success()).map_or(exit::PROGRAM_FAILED, code_of)
            }
            _ => return None,
        };
        let flag = if self.is_named(name) { "--exit-code-from" } else { "--abort-on-exit" };
        self.trigger = Some((name.to_owned(), code));
        Some(format!("{name} ended ({flag}): stopping every program"))
    }

    /// The exit code of `up` once everything stopped; `failed`: whether any program failed.
    pub fn exit_code(&self, supervisor: &Supervisor, failed: bool) -> u8 {
        match (&self.trigger, &self.options.exit_code_from) {
            (Some((name, code)), Some(named)) if name == named => *code,
            // Stopped by another program (with both flags), or everything ended: as
            // `docker compose`, the named program's own last exit, whatever ended it.
            (_, Some(named)) => last_exit(supervisor, named).map_or(exit::PROGRAM_FAILED, code_of),
            (Some((_, code)), None) => *code,
            (None, None) if failed => exit::PROGRAM_FAILED,
            (None, None) => exit::OK,
        }
    }
}

/// Why `up` must end although no program's exit asked for it, if it must.
pub fn all_ended(supervisor: &Supervisor) -> Option<&'static str> {
    supervisor.all_ended().then_some("nothing runs and nothing will restart: exiting")
}

fn last_exit(supervisor: &Supervisor, name: &str) -> Option<Exit> {
    supervisor.program_status(name).and_then(|s| s.last_exit)
}

/// An exit as a shell reports it: the code, or 128 + the signal's number.
fn code_of(exit: Exit) -> u8 {
    match exit {
        Exit::Code(code) => u8::try_from(code & 0xff).unwrap_or(exit::PROGRAM_FAILED),
        Exit::Signal(signal) => u8::try_from(signal.exit_code()).unwrap_or(exit::PROGRAM_FAILED),
        Exit::OutOfMemory { .. } => u8::try_from(warren::Signal::KILL.exit_code()).unwrap_or(exit::PROGRAM_FAILED),
        Exit::Unknown => exit::PROGRAM_FAILED,
    }
}
