//! What can go wrong when starting or stopping a child.

use std::path::PathBuf;
use std::time::Duration;

/// How a child ended, for errors about children that ended too early.
pub use crate::exit::Exit;

/// Why a child could not be started and made ready.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {name}: program {program} not found")]
    NotFound { name: String, program: PathBuf },
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare {name}: {what}: {source}")]
    Setup {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({exit}){}", tail_text(.stderr_tail))]
    ExitedBeforeReady { name: String, exit: Exit, stderr_tail: Vec<String> },
    #[error("{name} was not ready within {timeout:?}; it was stopped{}", tail_text(.stderr_tail))]
    ReadyTimeout { name: String, timeout: Duration, stderr_tail: Vec<String> },
    #[error("{name} said it was ready but its RPC endpoint {endpoint} does not answer: {source}{}", protocol_hint(.source))]
    Connect {
        name: String,
        endpoint: String,
        #[source]
        source: warren_rpc::ConnectError,
    },
    #[error("{name}: invalid readiness pattern {pattern:?}: {reason}")]
    BadPattern { name: String, pattern: String, reason: String },
    #[error("a child named {name} is already running")]
    DuplicateName { name: String },
}

/// A binary handshake that times out or gets a foreign answer is most often a child that speaks
/// JSON-RPC (waiting for a line that never comes, or answering in JSON).
fn protocol_hint(error: &warren_rpc::ConnectError) -> &'static str {
    match error {
        warren_rpc::ConnectError::Timeout { .. } | warren_rpc::ConnectError::Handshake { .. } => {
            " (if it serves JSON-RPC rather than warren's binary protocol, say so: \
             Spec::protocol(Protocol::JsonRpc), or rpc = \"json\" in warren.toml)"
        }
        _ => "",
    }
}

fn tail_text(lines: &[String]) -> String {
    if lines.is_empty() {
        return "; it printed nothing on stderr".to_owned();
    }
    let mut text = String::from("; last lines of its stderr:");
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

/// Why the host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create the runtime directory: {0}")]
    RuntimeDir(#[source] std::io::Error),
    #[error("cannot start the watchdog process: {0}")]
    Watchdog(#[source] std::io::Error),
    #[error("cannot become the reaper of orphaned grandchildren: {0}")]
    Subreaper(#[source] std::io::Error),
    #[error("cannot start the spawner thread: {0}")]
    Spawner(#[source] std::io::Error),
    #[error("cannot install handlers for SIGINT and SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
    #[error("warren::Host must be created inside a tokio runtime")]
    NoRuntime,
}

/// Why a plugin (a child program) could not serve.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(
        "this program is a warren plugin and must be started by a warren host, which sets \
         WARREN_ENDPOINT; it is not meant to be run by hand"
    )]
    NotUnderHost,
    #[error("WARREN_ENDPOINT is invalid: {0}")]
    Endpoint(#[from] warren_rpc::EndpointError),
    #[error(transparent)]
    Bind(#[from] warren_rpc::BindError),
    #[error("cannot tell the host we are ready via NOTIFY_SOCKET {path}: {source}")]
    Notify {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
