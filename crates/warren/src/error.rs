//! What can go wrong when starting or stopping a child.

use std::path::PathBuf;
use std::time::Duration;

/// How a child ended, for errors about children that ended too early.
pub use crate::exit::Exit;

/// Why a child could not be started and made ready. Every variant names the child (`name`, as
/// given by `Spec::name`).
#[derive(Debug, thiserror::Error)]
#[expect(missing_docs, reason = "the fields are the ones the messages name: child, program, path")]
pub enum SpawnError {
    /// The program does not exist (or is not on `PATH`); `looked_in`: the directories tried.
    #[error("cannot start {name}: {}", not_found(.program, .looked_in))]
    NotFound { name: String, program: PathBuf, looked_in: Vec<PathBuf> },
    /// The program exists but could not be started (permissions, not executable, ...).
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The child's working directory (`Spec::cwd`) is missing or not usable.
    #[error("cannot start {name}: its working directory {} cannot be entered", .dir.display())]
    Cwd {
        name: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something the child needs could not be made ready in the runtime directory.
    #[error("cannot prepare {name}: {what}")]
    Setup {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The child exited before it said it was ready; with the last lines of its stderr.
    #[error("{name} exited before it was ready ({exit}){}", tail_text(.stderr_tail))]
    ExitedBeforeReady { name: String, exit: Exit, stderr_tail: Vec<String> },
    /// The child did not say it was ready within `Spec::ready_timeout`; it was killed.
    #[error("{name} was not ready within {timeout:?}; it was stopped{}", tail_text(.stderr_tail))]
    ReadyTimeout { name: String, timeout: Duration, stderr_tail: Vec<String> },
    /// The child said it was ready but its RPC endpoint did not accept the connection; it was
    /// stopped.
    #[error("{name} said it was ready but its RPC endpoint {endpoint} does not answer{}", protocol_hint(.source))]
    Connect {
        name: String,
        endpoint: String,
        #[source]
        source: warren_rpc::ConnectError,
    },
    /// `Readiness::LogLine` was given a pattern that is not a regular expression.
    #[error("{name}: invalid readiness pattern {pattern:?}: {reason}")]
    BadPattern { name: String, pattern: String, reason: String },
    /// A child of that name is running or starting on this host.
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
    /// The private runtime directory could not be created.
    #[error("cannot create the runtime directory")]
    RuntimeDir(#[source] std::io::Error),
    /// The watchdog process could not be forked.
    #[error("cannot start the watchdog process")]
    Watchdog(#[source] std::io::Error),
    /// `PR_SET_CHILD_SUBREAPER` failed.
    #[error("cannot become the reaper of orphaned grandchildren")]
    Subreaper(#[source] std::io::Error),
    /// The thread that starts every child could not be started.
    #[error("cannot start the spawner thread")]
    Spawner(#[source] std::io::Error),
    /// [`HostBuilder::pid_namespace`](crate::HostBuilder::pid_namespace) was asked for and the
    /// namespace or its init could not be made.
    #[error("cannot start the children's PID namespace")]
    PidNamespace(#[source] std::io::Error),
    /// [`HostBuilder::catch_signals`](crate::HostBuilder::catch_signals) could not install its
    /// handlers.
    #[error("cannot install the handlers of the stop signals")]
    Signals(#[source] std::io::Error),
    /// [`Host::new`](crate::Host::new) was called outside a tokio runtime.
    #[error("warren::Host must be created inside a tokio runtime")]
    NoRuntime,
    /// [`HostBuilder::resume`](crate::HostBuilder::resume) could not take over from the
    /// previous image of the process.
    #[error("cannot take over from the previous image of this process: {0}")]
    Resume(String),
}

/// Why a plugin (a child program) could not serve.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// `WARREN_ENDPOINT` is not set: the program was not started by a host.
    #[error(
        "this program is a warren plugin and must be started by a warren host, which sets \
         WARREN_ENDPOINT; it is not meant to be run by hand"
    )]
    NotUnderHost,
    /// `WARREN_ENDPOINT` does not parse.
    #[error("WARREN_ENDPOINT is invalid")]
    Endpoint(#[from] warren_rpc::EndpointError),
    /// The endpoint could not be bound.
    #[error(transparent)]
    Bind(#[from] warren_rpc::BindError),
    /// READY=1 could not be sent to the host.
    #[error("cannot tell the host we are ready via NOTIFY_SOCKET {path}")]
    Notify {
        /// The `NOTIFY_SOCKET` it was sent to.
        path: String,
        /// Why the send failed.
        #[source]
        source: std::io::Error,
    },
    /// SIGTERM and SIGINT handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// [`serve_blocking`](crate::plugin::serve_blocking) could not start its runtime.
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
}

/// "program not found: task-rpc; looked in /opt/app, /usr/bin".
fn not_found(program: &std::path::Path, looked_in: &[PathBuf]) -> String {
    let file = program.file_name().map_or_else(|| program.display().to_string(), |f| f.to_string_lossy().into_owned());
    let dirs: Vec<String> = looked_in.iter().map(|dir| dir.display().to_string()).collect();
    match dirs.is_empty() {
        true => format!("program not found: {file}"),
        false => format!("program not found: {file}; looked in {}", dirs.join(", ")),
    }
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
        assert_eq!(warren_rpc::ErrorChain(&err).to_string(), "cannot start api (/bin/api): permission denied");
        let err = HostError::Watchdog(std::io::Error::other("no fork"));
        assert_eq!(warren_rpc::ErrorChain(&err).to_string(), "cannot start the watchdog process: no fork");
    }
}
