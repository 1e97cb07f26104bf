//! What to supervise: the validated form of a configuration. Only a `Plan` reaches the
//! supervisor; parsing and validation (of a TOML file, say) happen before, so every value here
//! is already checked and every default resolved.

use std::path::PathBuf;
use std::time::Duration;

pub use warren_rpc::Protocol;

use crate::signal::Signal;

/// Every program to run, in the order the configuration lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub programs: Vec<Program>,
}

/// One program and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub name: String,
    pub command: Command,
    pub env: Vec<(String, String)>,
    /// Start it with only `env` and warren's own variables (`WARREN_*`, `NOTIFY_SOCKET`) rather
    /// than warren's environment plus `env`, so that nothing of warren's reaches it unasked.
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
    /// Serves warren RPC on the endpoint the supervisor passes in `WARREN_ENDPOINT`.
    pub rpc: bool,
    /// The protocol it serves RPC in: warren's binary protocol, or JSON-RPC lines.
    pub protocol: Protocol,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    pub restart: Restart,
    pub backoff: Backoff,
    pub crash_loop: CrashLoop,
    pub stop_signal: Signal,
    pub grace: Duration,
    pub depends_on: Vec<Dependency>,
    pub health: Option<Health>,
    /// What to do when its socket file is deleted or replaced while it runs (RPC programs).
    pub on_socket_lost: OnSocketLost,
    /// Once ready (and healthy, if checked) for this long, the backoff and the crash-loop count
    /// start over.
    pub reset_after: Duration,
}

/// How to start it: an executable and its arguments, or a shell command line when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec { program: PathBuf, args: Vec<String> },
    Shell(String),
}

/// When a program counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready once started.
    None,
    /// `READY=1` on `NOTIFY_SOCKET` (warren plugins, systemd `Type=notify` programs).
    Notify,
    /// A line of its output matches this regular expression.
    LogLine(String),
    /// This command exits 0 (tried every `interval`).
    Exec { command: Command, interval: Duration },
    /// A connection to this endpoint (`tcp:host:port` or `unix:/path`) succeeds.
    Connect { endpoint: String, interval: Duration },
}

/// A program whose socket file is gone keeps serving the connections it has, the
/// supervisor's among them, but nothing new can connect to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSocketLost {
    /// Log a warning and leave it running.
    Report,
    /// Log a warning and restart it at once, so that it binds its socket again.
    #[default]
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Never,
    OnFailure,
    Always,
}

/// Exponential backoff between restarts: `initial`, then × `factor` up to `max`, each delay
/// spread by ± `jitter` (a fraction, 0 to 1) so that programs that failed together do not
/// restart in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
    pub jitter: f64,
}

/// `max_starts` starts within `window` mean a crash loop: the program is marked failed and
/// left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoop {
    pub max_starts: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    pub condition: Condition,
}

/// What a dependency must have reached before the dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Ready,
    Healthy,
    /// It ran to completion with exit code 0 (a setup step, a migration).
    ExitedOk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub check: HealthCheck,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the program is restarted.
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// A PING over the program's RPC connection.
    RpcPing,
    Exec(Command),
    Connect(String),
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
    pub fn new(name: impl Into<String>, command: Command) -> Program {
        Program {
            name: name.into(),
            command,
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            rpc: false,
            protocol: Protocol::Binary,
            readiness: Readiness::None,
            ready_timeout: Duration::from_secs(30),
            restart: Restart::Never,
            backoff: Backoff::default(),
            crash_loop: CrashLoop::default(),
            stop_signal: Signal::TERM,
            grace: Duration::from_secs(10),
            depends_on: Vec::new(),
            health: None,
            on_socket_lost: OnSocketLost::default(),
            reset_after: Duration::from_secs(60),
        }
    }
}
