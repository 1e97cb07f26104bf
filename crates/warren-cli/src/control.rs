//! The control API that `warren up` serves on its control socket, with warren's own RPC, and
//! the types both sides share.

use serde::{Deserialize, Serialize};

/// Application error codes of the control service.
pub mod codes {
    pub const UNKNOWN_PROGRAM: u32 = 1001;
    pub const NOT_RUNNING: u32 = 1002;
    pub const NO_RPC: u32 = 1003;
    pub const CALL_FAILED: u32 = 1004;
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
    /// Where it serves RPC while it runs (`unix:PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// A line of a program's output, as `warren logs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogRow {
    pub program: String,
    pub stream: String,
    /// Counts the program's lines from 1, across both streams and across restarts.
    pub seq: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsRequest {
    pub program: String,
    /// How many of the most recent lines to return.
    pub lines: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    pub program: String,
    pub method: String,
    pub arg: serde_json::Value,
    pub timeout_ms: Option<u64>,
}

/// The notification name under which followed log lines are pushed.
pub const LOG_NOTIFICATION: &str = "Control.Log";

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
