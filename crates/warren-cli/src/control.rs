//! The control API that `warren up` serves on its control socket, with warren's own RPC, and
//! the types both sides share.

use serde::{Deserialize, Serialize};

/// Application error codes of the control service.
pub mod codes {
    pub const UNKNOWN_PROGRAM: u32 = 1001;
    pub const NOT_RUNNING: u32 = 1002;
    pub const NO_RPC: u32 = 1003;
    pub const CALL_FAILED: u32 = 1004;
    pub const BAD_REQUEST: u32 = 1005;
    pub const REQUEST_REFUSED: u32 = 1006;
}

/// A row of `warren status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusRow {
    pub name: String,
    /// `waiting`, `starting`, `running`, `ready`, `stopping`, `backoff`, `exited`, `failed`,
    /// `stopped`.
    pub state: String,
    /// The state with its detail: "restarting in 2.0 s", "exited with code 1", "failed: …".
    pub detail: String,
    pub pid: Option<u32>,
    /// Milliseconds in the current state (uptime when running or ready).
    pub for_ms: u64,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// "socket file … was deleted" while it runs: new clients cannot reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_lost: Option<String>,
    /// Lines that could not be written to the program's log file (a full disk).
    #[serde(default)]
    pub log_lost: u64,
    /// `healthy`, `unhealthy` or `pending` (ready, not checked yet); null without a health
    /// check.
    #[serde(default)]
    pub health: Option<String>,
    /// Consecutive failed health checks (the n of "unhealthy (n)").
    #[serde(default)]
    pub health_failures: u32,
    /// Why the last health check failed, while unhealthy.
    #[serde(default)]
    pub health_reason: Option<String>,
    /// Health checks failed since its current instance started.
    #[serde(default)]
    pub checks_failed: u64,
    /// CPU use of its whole tree (cgroup, else process group), in percent of one CPU, over
    /// the time since the previous look (at least 0.2 s); null while nothing runs.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Resident memory of its whole tree's live processes, summed; null while nothing runs.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// Where it serves RPC (`unix:/path`), while it runs.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How warren's RPC connection to it travels, while connected: `socket`, or `shm` once it
    /// moved to shared memory (`transport` in warren.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Why it was last restarted: "health check failed 3 times: no answer in 2s (…)", an exit.
    #[serde(default)]
    pub last_restart: Option<String>,
    /// The replicated program it is a member of (`web` for `web.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<String>,
    /// Why its resource limits are not applied here, when it has some that are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_not_applied: Option<String>,
    /// The last `STATUS=` it sent on its notify socket ("processing 3 jobs"), while it runs.
    #[serde(default)]
    pub notify_status: Option<String>,
}

/// `warren status NAME`: one program in detail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgramDetail {
    pub status: StatusRow,
    /// The command line, as run.
    pub command: String,
    pub cwd: Option<String>,
    /// The names of the variables set for it (values are not shown: they may be secrets).
    pub env: Vec<String>,
    /// The env files its variables were read from, in order.
    #[serde(default)]
    pub env_files: Vec<String>,
    /// The user (and group) it runs as, when not warren's.
    #[serde(default)]
    pub user: Option<String>,
    /// Its resource limits in words, with a warning when they cannot be applied here.
    #[serde(default)]
    pub limits: Option<String>,
    /// Its readiness and health checks, in words.
    pub ready: String,
    pub health_check: Option<String>,
    /// How its last instance ended, in words (also a start that failed).
    pub last_end: Option<String>,
    /// Its last state changes, oldest first.
    pub changes: Vec<ChangeRow>,
}

/// One state change of a program.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeRow {
    pub state: String,
    /// The state with its detail ("restarting in 2.0 s").
    pub detail: String,
    /// Why, where the state does not say it.
    pub reason: Option<String>,
    /// How long ago, in milliseconds.
    pub ago_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    pub program: String,
    pub method: String,
    pub arg: serde_json::Value,
    pub timeout_ms: Option<u64>,
}

/// What `start`, `stop` and `restart` ask of the instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramsRequest {
    /// The programs named on the command line (empty with `all`).
    pub names: Vec<String>,
    /// Every program of the plan.
    pub all: bool,
    /// `start`/`restart`: answer once the programs are up, not at once.
    pub wait: bool,
    /// `stop`: leave the programs that depend on these running.
    pub only: bool,
    /// How long the instance may take; None for the bound it derives from the programs'
    /// settings.
    pub timeout_ms: Option<u64>,
    /// `restart`: the rolling way (new instance ready before the old one stops), whatever
    /// the programs' `restart_mode`.
    #[serde(default)]
    pub rolling: bool,
}

/// One line of the answer to `start`, `stop` or `restart`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    pub program: String,
    pub text: String,
    pub kind: OutcomeKind,
}

/// Whether an [`Outcome`] is what was asked, worth a warning, or a failure (exit 1).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum OutcomeKind {
    Done,
    Warning,
    Failed,
}

impl Outcome {
    pub fn new(program: &str, kind: OutcomeKind, text: impl Into<String>) -> Outcome {
        Outcome { program: program.to_owned(), text: text.into(), kind }
    }
}
