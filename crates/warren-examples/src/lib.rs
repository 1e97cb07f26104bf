//! Shared bits of warren's example programs.

use std::path::PathBuf;

/// The path of a sibling binary (built into the same directory as the running one).
pub fn sibling(name: &str) -> PathBuf {
    let dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)).unwrap_or_default();
    dir.join(name)
}

/// Logs to stderr, filtered by `RUST_LOG` (default info), coloured only on a terminal. Under a
/// warren host (`WARREN_NAME` is set) the timestamp is left out: the host's log adds its own.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    if std::env::var_os("WARREN_NAME").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// The longest `Task.Sleep` accepted, so that one call cannot hold a handler for ever.
pub const MAX_SLEEP_MS: i64 = 60_000;
/// The code of the `Task.Sleep` error for a sleep cut short because its call was abandoned.
pub const ERR_SLEEP_CANCELLED: u32 = 1002;

/// `Task.Sleep(ms)`: a slow method, to watch a deadline or a cancellation being honoured. It
/// sleeps `ms` milliseconds and returns `ms`, unless the call's deadline passes or its caller
/// cancels first: then it stops at once (the caller gets DEADLINE_EXCEEDED or CANCELLED from
/// the server). The argument is signed because a Go caller sends an `int`.
pub async fn sleep(ctx: warren_rpc::Context, ms: i64) -> Result<i64, warren_rpc::HandlerError> {
    if !(0..=MAX_SLEEP_MS).contains(&ms) {
        return Err(warren_rpc::HandlerError::bad_argument(format!(
            "Task.Sleep takes 0 to {MAX_SLEEP_MS} ms, not {ms}"
        )));
    }
    let started = std::time::Instant::now();
    tokio::select! {
        () = tokio::time::sleep(std::time::Duration::from_millis(ms.unsigned_abs())) => Ok(ms),
        () = ctx.cancelled() => Err(warren_rpc::HandlerError::new(
            ERR_SLEEP_CANCELLED,
            format!("Task.Sleep({ms}) stopped after {} ms: the call was abandoned", started.elapsed().as_millis()),
        )),
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Todo {
    #[serde(rename = "ID")]
    pub id: String,
}

/// The argument of the shim's `Shim.Run`: run the `runtime` program once, like containerd
/// asking a shim to run a container with runc.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RunRequest {
    /// Names the run; the runtime process is started as `runtime-<id>`.
    pub id: String,
    /// Arguments for the runtime after the id: `exit=N`, `hang`, `cat`, or anything to echo.
    pub args: Vec<String>,
    /// Lines written to the runtime's stdin before it is closed.
    #[serde(default)]
    pub stdin: Vec<String>,
}

/// The reply of `Shim.Run`: what the runtime printed and how it ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RunResult {
    pub id: String,
    /// The runtime's pid (gone by the time this is returned).
    pub pid: u32,
    /// The exit code, or 128 + the signal number if a signal ended it (as a shell reports).
    pub exit_code: i32,
    /// How it ended, in words: "exited with code 3", "killed by SIGKILL".
    pub exit: String,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// The code of the `Shim.Run` error for a run refused because the shim is stopping.
pub const ERR_SHIM_STOPPING: u32 = 1000;
/// The code of the `Shim.Run` error for a runtime that could not be started.
pub const ERR_RUNTIME_START: u32 = 1001;
