//! What flows between the runner, the tasks of its instances and the [`Supervisor`] handle:
//! apart from all three, so that each of them depends on these messages and none on another's
//! internals.
//!
//! [`Supervisor`]: super::Supervisor

use std::collections::HashMap;

use super::machine::{Event, State, Status};
use crate::child::Child;

/// What reaches the runner.
pub(super) enum Input {
    /// From the task working for one instance of a program; stale instances are ignored.
    Instance { name: String, instance: u64, report: Report },
    /// From a user or a timer.
    Control(Event),
    /// A rolling restart of a program, answered once it is over.
    Roll { name: String, reply: tokio::sync::oneshot::Sender<Result<Rolled, String>> },
    /// Replace this process with a new image that takes everything over.
    HandOver(super::runner::HandOver),
}

/// How a rolling restart went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolled {
    /// The new instance is ready and serves; the old one has ended as `old_exit`.
    Replaced {
        /// The new instance's pid.
        pid: u32,
        /// The old instance's pid.
        old_pid: u32,
        /// How the old instance ended.
        old_exit: crate::Exit,
    },
    /// Nothing was ready to keep serving (not started, starting, backing off): the program
    /// was restarted the plain way instead; its new instance is on its way.
    Restarted,
}

/// What an instance's task tells the runner.
pub(super) enum Report {
    /// The process runs: here is its child (the machine hears `Event::Started`).
    Spawned(Child),
    /// Anything else that happened to it.
    Event(Event),
}

/// What the supervisor reports as it goes, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A program changed state.
    Changed {
        /// The program.
        name: String,
        /// Its new state.
        state: State,
        /// The pid of its process, while one runs for it.
        pid: Option<u32>,
        /// Why, where the state does not say it: "health check failed 3 times: …".
        reason: Option<String>,
    },
    /// Every program is ready (or completed successfully).
    AllReady,
    /// Everything has stopped.
    AllStopped,
}

/// What the runner last published: only the runner writes it.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) status: Vec<Status>,
    /// The child of each program's current instance, while it has one.
    pub(super) children: HashMap<String, Child>,
}
