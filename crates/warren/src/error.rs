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
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare {name}: {what}")]
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
    #[error("{name} said it was ready but its RPC endpoint {endpoint} does not answer{}", protocol_hint(.source))]
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

/// `err` and every cause under it, joined with ": " — how an error is shown where only a line
/// of text fits (each error displays only itself; its cause is its `source()`).
pub(crate) fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Why the host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create the runtime directory")]
    RuntimeDir(#[source] std::io::Error),
    #[error("cannot start the watchdog process")]
    Watchdog(#[source] std::io::Error),
    #[error("cannot become the reaper of orphaned grandchildren")]
    Subreaper(#[source] std::io::Error),
    #[error("cannot start the spawner thread")]
    Spawner(#[source] std::io::Error),
    #[error("cannot install the handlers of the stop signals")]
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
    #[error("WARREN_ENDPOINT is invalid")]
    Endpoint(#[from] warren_rpc::EndpointError),
    #[error(transparent)]
    Bind(#[from] warren_rpc::BindError),
    #[error("cannot tell the host we are ready via NOTIFY_SOCKET {path}")]
    Notify {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layer displays only itself, so a renderer walking `source()` shows a cause once.
    #[test]
    fn a_cause_is_shown_once() {
        let err = SpawnError::Spawn {
            name: "api".into(),
            program: "/bin/api".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(err.to_string(), "cannot start api (/bin/api)");
        assert_eq!(with_causes(&err), "cannot start api (/bin/api): permission denied");
        let err = HostError::Watchdog(std::io::Error::other("no fork"));
        assert_eq!(with_causes(&err), "cannot start the watchdog process: no fork");
    }
}
