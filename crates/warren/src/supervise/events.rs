//! What goes into the supervisor's machine and what comes out: events, actions, and the states
//! a program passes through.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::SpawnError;
use crate::exit::Exit;

/// Where a program is in its life.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    Backoff {
        /// How long until the restart.
        delay: Duration,
    },
    /// Ended and, by its restart policy, left so.
    Exited {
        /// How it ended.
        exit: Exit,
    },
    /// Given up on: a crash loop, a failed start without restart, a failed dependency.
    Failed {
        /// Why, in words.
        reason: String,
    },
    /// Stopped on request.
    Stopped,
}

impl State {
    /// Whether a process may be running for it.
    pub fn is_active(&self) -> bool {
        matches!(self, State::Starting | State::Running | State::Ready | State::Stopping)
    }

    /// Whether it ended and stays so unless asked to start again: no process, no restart due.
    pub fn has_ended(&self) -> bool {
        matches!(self, State::Exited { .. } | State::Failed { .. } | State::Stopped)
    }

    /// The state's one-word name, as `status` shows it.
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

impl State {
    /// How entering this state reads when the change has a reason: a program waiting to start
    /// again because something asked for it (a reload, a lost socket) is restarting.
    pub fn as_change(&self, has_reason: bool) -> String {
        match self {
            State::Waiting if has_reason => "restarting".to_owned(),
            other => other.to_string(),
        }
    }
}

/// A delay as a person reads it: `250 ms`, `1.5 s`.
pub(super) fn humanize(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Why a started instance of a program never got going.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// The host could not spawn it or see it ready.
    #[error(transparent)]
    Spawn(Arc<SpawnError>),
    /// Its readiness probe did not pass within the program's ready timeout.
    #[error("not ready within {0:?}")]
    NotReady(Duration),
    /// A socket of its `listen` could not be bound (the address is in use, not allowed, …).
    #[error("cannot listen: {0}")]
    Listen(String),
    /// The same, with why its last try failed.
    #[error("not ready within {0:?}; last check: {1}")]
    NotReadyBecause(Duration, String),
}

impl StartError {
    /// The error with its causes, each once, for a one-line reason.
    pub fn describe(&self) -> String {
        warren_rpc::ErrorChain(self).to_string()
    }

    /// Whether starting again cannot help: the program does not exist. Retrying would only be
    /// a silent crash loop; supervisord likewise gives up at once on a missing command.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StartError::Spawn(err) if matches!(**err, SpawnError::NotFound { .. }))
    }
}

/// Something that happened, reported to the machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// The process was spawned.
    Started {
        /// The program.
        name: String,
    },
    /// The process could not be started or made ready.
    StartFailed {
        /// The program.
        name: String,
        /// Why.
        error: StartError,
    },
    /// The program's readiness condition held.
    Ready {
        /// The program.
        name: String,
    },
    /// The process ended, for whatever reason.
    Exited {
        /// The program.
        name: String,
        /// How it ended.
        exit: Exit,
    },
    /// A health check passed.
    HealthPassed {
        /// The program.
        name: String,
    },
    /// A health check failed or timed out.
    HealthFailed {
        /// The program.
        name: String,
        /// Why, in words: "exit code 1: …", "HTTP 503", "no answer in 2s".
        reason: String,
    },
    /// It has a [`watchdog`](super::plan::Program::watchdog) and missed its keep-alive (or
    /// sent `WATCHDOG=trigger`).
    WatchdogExpired {
        /// The program.
        name: String,
        /// Why, in words: "no WATCHDOG=1 within 2 s".
        reason: String,
    },
    /// Its socket file was deleted or replaced while it ran, and its program's
    /// [`on_socket_lost`](super::plan::Program::on_socket_lost) says to restart it.
    SocketLost {
        /// The program.
        name: String,
    },
    /// A timer set by [`Action::SetTimer`] fired.
    Timer {
        /// The program.
        name: String,
        /// The generation the timer was set with.
        generation: u64,
    },
    /// Control request: start a program that is stopped, exited or failed.
    Start {
        /// The program.
        name: String,
    },
    /// Control request: stop a program (it stays stopped).
    Stop {
        /// The program.
        name: String,
    },
    /// Control request: stop a program and start it again.
    Restart {
        /// The program.
        name: String,
    },
    /// A rolling restart's new instance is ready and now the program's; its old one is being
    /// stopped.
    Rolled {
        /// The program.
        name: String,
    },
    /// A rolling restart's old instance has ended.
    Retired {
        /// The program.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        exit: Exit,
    },
    /// Stop everything, dependents before their dependencies.
    Shutdown,
    /// Control request: run this plan from now on (see `supervise/reload.rs`): new programs start,
    /// removed ones stop, changed ones restart with their new settings, the others go on.
    Reload {
        /// The new plan.
        plan: super::plan::Plan,
        /// Changed programs the caller rolls itself (`restart_mode = "rolling"`): one that is
        /// ready takes its new settings at once and is not restarted here; its next instance,
        /// started beside the running one, runs with them.
        rolled: Vec<String>,
    },
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start an instance of the program.
    Spawn {
        /// The program.
        name: String,
    },
    /// Stop the program's running instance.
    Stop {
        /// The program.
        name: String,
    },
    /// Send `Event::Timer { name, generation }` after `after`. Timers with an old generation are
    /// ignored, so there is no need to cancel them.
    SetTimer {
        /// The program.
        name: String,
        /// The delay.
        after: Duration,
        /// What the event is to carry back.
        generation: u64,
    },
    /// A program changed state (one log line each).
    Changed {
        /// The program.
        name: String,
        /// Its new state.
        state: State,
        /// Why, where the state does not say it: "health check failed 3 times: …".
        reason: Option<String>,
    },
    /// Everything has stopped after a shutdown.
    AllStopped,
    /// Every program is ready (or finished successfully): time to tell systemd.
    AllReady,
}

/// What `status` shows of one program.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The program.
    pub name: String,
    /// Where it is in its life.
    pub state: State,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How its last process ended.
    pub last_exit: Option<Exit>,
    /// How its last instance ended, in words: its exit, or why it never got going (which
    /// `last_exit` does not tell: a start that failed may have no exit).
    pub last_end: Option<String>,
    /// When it entered its current state.
    pub since: Instant,
    /// Its health check's verdict; `None` without a check, or before the first while it is
    /// not ready.
    pub health: Option<HealthStatus>,
    /// Health checks failed since it was started.
    pub checks_failed: u64,
    /// Why it was last restarted: "health check failed 3 times: no answer in 2s", an exit.
    pub last_restart: Option<String>,
    /// Its last state changes, oldest first (at most [`HISTORY`]).
    pub history: Vec<Change>,
}

/// How many state changes of each program are kept for `status NAME`.
pub const HISTORY: usize = 5;

/// What a program's health check last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// Ready, not yet checked.
    Pending,
    /// The last check passed.
    Healthy,
    /// The last `failures` checks failed; the last one for `reason`.
    Unhealthy {
        /// Consecutive failures.
        failures: u32,
        /// Why the last one failed.
        reason: String,
    },
}

/// One state change of a program.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The state it entered.
    pub state: State,
    /// Why, where the state does not say it.
    pub reason: Option<String>,
    /// When.
    pub at: Instant,
}
