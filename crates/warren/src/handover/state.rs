//! What crosses `exec` in the memfd: the host's places and every child's descriptors by
//! number, where its pumps stood, what its notify socket said. JSON: small, and readable
//! with `cat /proc/PID/fd/N` when a hand-over goes wrong.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The state's format; a new image refuses another. 2 carries the RPC connections to the
/// children, which an image reading 1 would leave open and unused.
pub(super) const VERSION: u32 = 2;

/// Whether this build reads a state of `version`: 1 is 2 with no RPC connection carried (the
/// new image makes them anew).
pub(super) fn readable(version: u32) -> bool {
    version == 1 || version == VERSION
}

/// The most a state may be (a child's carried partial line is bounded by its line length).
pub(super) const MAX_BYTES: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HostState {
    pub version: u32,
    pub runtime_dir: PathBuf,
    pub watchdog: Option<WatchdogState>,
    /// The host's cgroup and its next child's number.
    pub cgroup: Option<(PathBuf, u64)>,
    pub remove_on_death: Vec<PathBuf>,
    pub escaped: usize,
    pub children: Vec<ChildState>,
    /// What the program using the host carries across (see [`crate::Baggage`]).
    #[serde(default)]
    pub baggage: serde_json::Value,
    /// Its descriptors, by name.
    #[serde(default)]
    pub baggage_fds: Vec<(String, i32)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WatchdogState {
    /// The write end of its pipe: its end-of-file is the host's death.
    pub fd: i32,
    pub pid: u32,
    pub groups: Vec<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ChildState {
    pub name: String,
    pub slot: String,
    pub program: PathBuf,
    /// Also its process group's id.
    pub pid: u32,
    pub stop_signal: i32,
    /// Its cgroup2 cgroup, and the memory limit written to it.
    pub cgroup: Option<PathBuf>,
    pub memory_max: Option<u64>,
    pub socket_path: Option<PathBuf>,
    pub protocol: Protocol,
    /// The transport its RPC connection asks for (a shared-memory connection is not carried:
    /// the next image connects anew, asking for it again).
    #[serde(default)]
    pub transport: warren_rpc::Transport,
    /// The host's RPC connection to it, carried as it stood.
    #[serde(default)]
    pub rpc: Option<RpcState>,
    pub notify: Option<NotifyState>,
    pub notices: Notices,
    pub stdin: Option<i32>,
    pub pipes: Vec<PipeState>,
    pub max_line: usize,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) enum Protocol {
    Binary,
    JsonRpc,
    GoGob { http_connect: bool },
}

impl From<warren_rpc::Protocol> for Protocol {
    fn from(protocol: warren_rpc::Protocol) -> Protocol {
        match protocol {
            warren_rpc::Protocol::JsonRpc => Protocol::JsonRpc,
            warren_rpc::Protocol::GoGob { http_connect } => Protocol::GoGob { http_connect },
            _ => Protocol::Binary,
        }
    }
}

impl From<Protocol> for warren_rpc::Protocol {
    fn from(protocol: Protocol) -> warren_rpc::Protocol {
        match protocol {
            Protocol::Binary => warren_rpc::Protocol::Binary,
            Protocol::JsonRpc => warren_rpc::Protocol::JsonRpc,
            Protocol::GoGob { http_connect } => warren_rpc::Protocol::GoGob { http_connect },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RpcState {
    pub fd: i32,
    pub session: warren_rpc::CarriedSession,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct NotifyState {
    pub fd: i32,
    pub path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Notices {
    pub status: Option<String>,
    pub watchdog_pings: u64,
    pub watchdog_triggered: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PipeState {
    pub stderr: bool,
    pub fd: i32,
    /// The last sequence number the pump gave.
    pub seq: u64,
    /// The start of a line read but not yet ended.
    pub rest: Vec<u8>,
}
