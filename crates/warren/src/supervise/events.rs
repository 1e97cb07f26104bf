//! What goes into the supervisor's machine and what comes out: events, actions, and the states
//! a program passes through.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::exit::Exit;

/// Where a program is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not started: waiting for its dependencies.
    Waiting,
    /// Being started.
    Starting,
    /// Started, not yet ready.
    Running,
    /// Ready (its readiness condition held).
    Ready,
    /// Being stopped.
    Stopping,
    /// Waiting to be restarted.
    Backoff { delay: Duration },
    /// Ended and, by its restart policy, left so.
    Exited { exit: Exit },
    /// Given up on: a crash loop, a failed start without restart, a failed dependency.
    Failed { reason: String },
    /// Stopped on request.
    Stopped,
}

impl State {
    /// Whether a process may be running for it.
    pub fn is_active(&self) -> bool {
        matches!(self, State::Starting | State::Running | State::Ready | State::Stopping)
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running => "running",
            State::Ready => "ready",
            State::Stopping => "stopping",
            State::Backoff { .. } => "backoff",
            State::Exited { .. } => "exited",
            State::Failed { .. } => "failed",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Backoff { delay } => write!(f, "restarting in {}", humanize(*delay)),
            State::Exited { exit } => write!(f, "{exit}"),
            State::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

pub(super) fn humanize(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Something that happened, reported to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The process was spawned.
    Started {
        name: String,
    },
    /// The process could not be started or made ready.
    StartFailed {
        name: String,
        error: String,
    },
    Ready {
        name: String,
    },
    /// The process ended, for whatever reason.
    Exited {
        name: String,
        exit: Exit,
    },
    HealthPassed {
        name: String,
    },
    HealthFailed {
        name: String,
    },
    /// Its socket file was deleted or replaced while it ran, and its program's
    /// [`on_socket_lost`](super::plan::Program::on_socket_lost) says to restart it.
    SocketLost {
        name: String,
    },
    /// A timer set by [`Action::SetTimer`] fired.
    Timer {
        name: String,
        generation: u64,
    },
    /// Control requests.
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    /// Stop everything, dependents before their dependencies.
    Shutdown,
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Spawn {
        name: String,
    },
    Stop {
        name: String,
    },
    /// Send `Event::Timer { name, generation }` after `after`. Timers with an old generation are
    /// ignored, so there is no need to cancel them.
    SetTimer {
        name: String,
        after: Duration,
        generation: u64,
    },
    /// A program changed state (one log line each).
    Changed {
        name: String,
        state: State,
    },
    /// Everything has stopped after a shutdown.
    AllStopped,
    /// Every program is ready (or finished successfully): time to tell systemd.
    AllReady,
}

/// What `status` shows of one program.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    pub since: Instant,
}
