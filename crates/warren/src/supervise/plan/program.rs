//! One program of a [`Plan`](super::Plan) and how to treat it: its command, readiness, restart
//! policy, dependencies and health check, each default resolved.

use std::path::PathBuf;
use std::time::Duration;

use warren_rpc::{Protocol, Transport};

use crate::signal::Signal;

/// One program and how to treat it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// Its name: unique in the plan, used in logs, notices and control requests.
    pub name: String,
    /// How to start it.
    pub command: Invocation,
    /// Variables set for it (and its probes), over warren's environment unless `clear_env`.
    pub env: Vec<(String, String)>,
    /// Start it with only `env` and warren's own variables (`WARREN_*`, `NOTIFY_SOCKET`) rather
    /// than warren's environment plus `env`, so that nothing of warren's reaches it unasked.
    pub clear_env: bool,
    /// The directory it (and its probes) start in; warren's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Serves warren RPC on the endpoint the supervisor passes in `WARREN_ENDPOINT`.
    pub rpc: bool,
    /// The protocol it serves RPC in: warren's binary protocol, or JSON-RPC lines.
    pub protocol: Protocol,
    /// Whether warren's connection to it may move to shared memory (binary protocol only;
    /// passed to it as `WARREN_RPC_TRANSPORT`).
    #[serde(default)]
    pub transport: Transport,
    /// A socket it binds itself (relative to `cwd`), used instead of `WARREN_ENDPOINT`.
    pub socket: Option<PathBuf>,
    /// When it counts as ready.
    pub readiness: ReadyCheck,
    /// How long it may take to become ready before the start counts as failed.
    pub ready_timeout: Duration,
    /// Whether it is started again when it ends.
    pub restart: Restart,
    /// Started with the others (`true`), or only when asked (`warren start`): a tool, a
    /// one-off job, a program kept ready to run.
    pub autostart: bool,
    /// The delays between restarts.
    pub backoff: Backoff,
    /// How many starts in how long mean it is given up on.
    pub crash_loop: CrashLoop,
    /// The signal that asks it to stop.
    pub stop_signal: Signal,
    /// How long it has after `stop_signal` before it is killed.
    pub grace: Duration,
    /// What must have happened to other programs before it starts.
    pub depends_on: Vec<Dependency>,
    /// Its health check, if it has one.
    pub health: Option<Health>,
    /// The longest it may go without `WATCHDOG=1` on its notify socket once ready (systemd's
    /// `WatchdogSec`, passed to it as `WATCHDOG_USEC`); then it counts as hung and is restarted.
    pub watchdog: Option<Duration>,
    /// What to do when its socket file is deleted or replaced while it runs (RPC programs).
    pub on_socket_lost: OnSocketLost,
    /// Once ready (and healthy, if checked) for this long, the backoff and the crash-loop count
    /// start over.
    pub reset_after: Duration,
    /// Which replica of a replicated program it is; `None` for a program that is not.
    pub replica: Option<super::Replica>,
    /// Resource limits for it and everything it starts (through its cgroup).
    pub limits: crate::Limits,
    /// The user it runs as, when not warren's.
    pub identity: Option<crate::Identity>,
    /// The env files its variables were read from (for `status`), in order.
    pub env_files: Vec<PathBuf>,
    /// Sockets warren binds, holds across its restarts, and passes to it (socket activation).
    pub listen: Vec<crate::listen::Listen>,
    /// How `restart` replaces it: stop then start, or the new instance first.
    pub restart_mode: RestartMode,
}

/// How a restart asked for replaces a running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum RestartMode {
    /// Stop the old instance, then start the new one.
    #[default]
    Stop,
    /// Start the new instance beside the old one (on the same `listen` sockets), wait until it
    /// is ready, then stop the old one gracefully.
    Rolling,
}

/// How to start it: an executable and its arguments, or a shell command line when asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Invocation {
    /// An executable (a bare name is looked up in `PATH`) and its arguments.
    Exec {
        /// The executable.
        program: PathBuf,
        /// Its arguments, without the program name.
        args: Vec<String>,
    },
    /// A command line for `/bin/sh -c`.
    Shell(String),
}

/// When a program counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadyCheck {
    /// Ready once started.
    None,
    /// `READY=1` on `NOTIFY_SOCKET` (warren plugins, systemd `Type=notify` programs).
    Notify,
    /// A line of its output matches this regular expression.
    LogLine(String),
    /// This command exits 0 (tried every `interval`).
    Exec {
        /// The probe to run.
        command: Invocation,
        /// How long to wait between tries.
        interval: Duration,
    },
    /// A connection to this endpoint (`tcp:host:port` or `unix:/path`) succeeds.
    Connect {
        /// `tcp:HOST:PORT` or `unix:PATH`.
        endpoint: String,
        /// How long to wait between tries.
        interval: Duration,
    },
    /// An HTTP GET of this URL answers as expected.
    Http {
        /// The request and the answer it expects.
        probe: HttpProbe,
        /// How long one try may take.
        timeout: Duration,
        /// How long to wait between tries.
        interval: Duration,
    },
}

/// An HTTP GET (plain HTTP: probes are local) and the answer that passes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpProbe {
    /// `http://HOST[:PORT]/PATH`.
    pub url: String,
    /// The status that passes; any 2xx when `None`.
    pub status: Option<u16>,
}

/// A program whose socket file is gone keeps serving the connections it has, the
/// supervisor's among them, but nothing new can connect to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum OnSocketLost {
    /// Log a warning and leave it running.
    Report,
    /// Log a warning and restart it at once, so that it binds its socket again.
    #[default]
    Restart,
}

/// Whether a program that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Restart {
    /// Never: it stays ended.
    Never,
    /// When it ended with a failure (an exit code other than 0, or a signal).
    OnFailure,
    /// Whatever way it ended.
    Always,
}

/// Exponential backoff between restarts: `initial`, then × `factor` up to `max`, each delay
/// spread by ± `jitter` (a fraction, 0 to 1) so that programs that failed together do not
/// restart in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// What each delay is multiplied by for the next one (at least 1).
    pub factor: f64,
    /// The longest delay.
    pub max: Duration,
    /// The spread of each delay, as a fraction of it (0 to 1).
    pub jitter: f64,
}

/// `max_starts` starts within `window` mean a crash loop: the program is marked failed and
/// left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrashLoop {
    /// Starts allowed within `window`.
    pub max_starts: u32,
    /// The sliding window starts are counted in.
    pub window: Duration,
}

/// One entry of `depends_on`: another program of the plan, and what it must have reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dependency {
    /// The program depended on.
    pub name: String,
    /// What it must have reached.
    pub condition: Condition,
}

/// What a dependency must have reached before the dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Its process was spawned.
    Started,
    /// It is ready.
    Ready,
    /// It is ready and its health check passed (it must have one).
    Healthy,
    /// It ran to completion with exit code 0 (a setup step, a migration).
    ExitedOk,
}

/// A health check and its timing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// What is checked.
    pub check: HealthCheck,
    /// How long between checks.
    pub interval: Duration,
    /// How long one check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive failures before the program is restarted.
    pub failures: u32,
}

/// What a health check does; passing is a success within the timeout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HealthCheck {
    /// A PING over the program's RPC connection.
    RpcPing,
    /// This command exits 0 within the timeout.
    Exec(Invocation),
    /// A connection to this endpoint (`tcp:HOST:PORT` or `unix:PATH`) succeeds.
    Connect(String),
    /// An HTTP GET answers as expected within the timeout.
    Http(HttpProbe),
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(500), factor: 2.0, max: Duration::from_secs(30), jitter: 0.1 }
    }
}

impl Default for CrashLoop {
    fn default() -> Self {
        CrashLoop { max_starts: 5, window: Duration::from_secs(60) }
    }
}

impl Program {
    /// A program with every default: no restart, ready when started, SIGTERM and 10 s grace.
    pub fn new(name: impl Into<String>, command: Invocation) -> Program {
        Program {
            name: name.into(),
            command,
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            socket: None,
            rpc: false,
            protocol: Protocol::Binary,
            transport: Transport::Socket,
            readiness: ReadyCheck::None,
            ready_timeout: Duration::from_secs(30),
            restart: Restart::Never,
            autostart: true,
            backoff: Backoff::default(),
            crash_loop: CrashLoop::default(),
            stop_signal: Signal::TERM,
            grace: Duration::from_secs(10),
            depends_on: Vec::new(),
            health: None,
            watchdog: None,
            on_socket_lost: OnSocketLost::default(),
            reset_after: Duration::from_secs(60),
            replica: None,
            limits: crate::Limits::default(),
            identity: None,
            env_files: Vec::new(),
            listen: Vec::new(),
            restart_mode: RestartMode::Stop,
        }
    }
}
