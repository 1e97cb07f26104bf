//! The subcommands that drive a running `warren up` through its control socket.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use warren_rpc::{CallError, CallOptions, Client, ConnectError};

use crate::control::{
    CallRequest, LOG_NOTIFICATION, LogRow, LogsRequest, Outcome, OutcomeKind, ProgramsRequest, StatusRow,
};
use crate::exit;

/// Why a remote command did not succeed, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("no warren instance is running for {dir} (start one with `warren up`)")]
    NotRunning { dir: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RemoteError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RemoteError::NotRunning { .. } => exit::NOT_RUNNING,
            RemoteError::Refused(_) => exit::REQUEST_FAILED,
            RemoteError::Other(_) => exit::ERROR,
        }
    }
}

pub async fn connect(instance_dir: &Path) -> Result<Client, RemoteError> {
    let socket = crate::instance::control_socket(instance_dir);
    let not_running = || {
        // The directory as the user can find it again, whatever the current directory.
        let dir = instance_dir.canonicalize().or_else(|_| std::path::absolute(instance_dir));
        let dir = dir.unwrap_or_else(|_| instance_dir.to_path_buf());
        RemoteError::NotRunning { dir: dir.display().to_string() }
    };
    // Nothing is sent (a `warren call` argument may be a password) until both the directory
    // and the server's user are known to be this user's own.
    let socket_dir = socket.parent().unwrap_or(Path::new("/"));
    match crate::private_dir::check(socket_dir) {
        Ok(true) => {}
        Ok(false) => return Err(not_running()),
        Err(unsafe_dir) => return Err(RemoteError::Other(unsafe_dir.into())),
    }
    let me = rustix::process::geteuid().as_raw();
    let builder =
        Client::builder().codecs(&[warren_rpc::Codec::Json]).server_users(warren_rpc::PeerPolicy::Users(vec![me]));
    match builder.connect(&socket).await {
        Ok(client) => Ok(client),
        Err(ConnectError::Io { source, .. })
            if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            Err(not_running())
        }
        Err(err) => Err(RemoteError::Other(anyhow::Error::new(err).context("cannot reach the control socket"))),
    }
}

fn refused(err: CallError) -> RemoteError {
    match err {
        CallError::Application { message, .. } => RemoteError::Refused(message),
        other => RemoteError::Refused(other.to_string()),
    }
}

/// Writes to stdout; a closed pipe (`warren status | head`) is not an error.
fn emit(text: &str) -> Result<(), RemoteError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(RemoteError::Other(err.into())),
        _ => Ok(()),
    }
}

/// `warren endpoint NAME`: the endpoint alone, or why there is none.
pub async fn endpoint(client: &Client, program: &str) -> Result<(), RemoteError> {
    let rows: Vec<StatusRow> = client.call("Control.Status", &()).await.map_err(refused)?;
    let Some(row) = rows.iter().find(|row| row.name == program) else {
        let known: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        return Err(RemoteError::Refused(format!("no program named {program:?} (known: {})", known.join(", "))));
    };
    match &row.endpoint {
        Some(endpoint) => emit(endpoint),
        None => {
            Err(RemoteError::Refused(format!("{program} has no endpoint: it does not serve RPC, or is {}", row.state)))
        }
    }
}

pub async fn status(client: &Client, json: bool) -> Result<(), RemoteError> {
    let rows: Vec<StatusRow> = client.call("Control.Status", &()).await.map_err(refused)?;
    if json {
        return emit(&serde_json::to_string_pretty(&rows).context("encoding JSON")?);
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    emit(&format!(
        "{:<width$}  {:<9}  {:>7}  {:>11}  {:>8}  LAST EXIT / DETAIL",
        "NAME", "STATE", "PID", "FOR", "RESTARTS"
    ))?;
    for row in rows {
        let pid = row.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let mut detail = if row.detail == row.state { String::new() } else { row.detail.clone() };
        if let Some(exit) = row.last_exit.as_ref().filter(|exit| !detail.contains(exit.as_str())) {
            detail = if detail.is_empty() { format!("last: {exit}") } else { format!("{detail} (last: {exit})") };
        }
        if let Some(lost) = &row.socket_lost {
            detail = if detail.is_empty() { lost.clone() } else { format!("{detail}; {lost}") };
        }
        emit(&format!(
            "{:<width$}  {:<9}  {:>7}  {:>11}  {:>8}  {}",
            row.name,
            row.state,
            pid,
            short_duration(Duration::from_millis(row.for_ms)),
            row.restarts,
            detail
        ))?;
    }
    Ok(())
}

/// Whole seconds (`1m 30s`): the table is read at a glance.
fn short_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// `start`, `stop`, `restart`: one line per program, on stdout, warnings and failures on
/// stderr; exit 1 if a program did not do what was asked.
pub async fn programs(client: &Client, method: &str, request: &ProgramsRequest) -> Result<u8, RemoteError> {
    // The instance bounds its own wait (by the programs' settings or the --timeout given); a
    // client deadline is set only with --timeout, a little later, so that its answer comes first.
    let timeout = request.timeout_ms.map(|ms| Duration::from_millis(ms) + Duration::from_secs(5));
    let outcomes: Vec<Outcome> = client.call_with(method, request, CallOptions { timeout }).await.map_err(refused)?;
    let mut code = exit::OK;
    for outcome in outcomes {
        let line = format!("{}: {}", outcome.program, outcome.text);
        match outcome.kind {
            OutcomeKind::Done => emit(&line)?,
            OutcomeKind::Warning => eprintln!("warren: warning: {line}"),
            OutcomeKind::Failed => {
                eprintln!("warren: {line}");
                code = exit::PROGRAM_FAILED;
            }
        }
    }
    Ok(code)
}

pub async fn logs(client: &Client, program: &str, lines: usize, follow: bool) -> Result<(), RemoteError> {
    // Subscribe before asking for the history so that no line falls between the two.
    let mut live = client.subscribe(LOG_NOTIFICATION);
    if follow {
        client.call::<_, ()>("Control.Follow", program).await.map_err(refused)?;
    }
    let recent: Vec<LogRow> =
        client.call("Control.Logs", &LogsRequest { program: program.to_owned(), lines }).await.map_err(refused)?;
    for row in &recent {
        emit(&row.text)?;
    }
    // A program's lines are numbered in order across streams and restarts.
    let shown = recent.last().map_or(0, |row| row.seq);
    if !follow {
        return Ok(());
    }
    while let Some(notification) = live.next().await {
        let Ok(row) = notification.decode::<LogRow>() else { continue };
        // Lines already shown from the history arrive again on the live feed: skip them.
        if row.seq <= shown {
            continue;
        }
        emit(&row.text)?;
    }
    Ok(())
}

pub async fn call(
    client: &Client,
    program: &str,
    method: &str,
    arg: Option<&str>,
    timeout: Duration,
) -> Result<(), RemoteError> {
    let arg: serde_json::Value = match arg {
        Some(text) => serde_json::from_str(text)
            .map_err(|err| RemoteError::Refused(format!("the argument is not valid JSON: {err}: {text}")))?,
        None => serde_json::Value::Null,
    };
    let timeout_ms = u64::try_from(timeout.as_millis()).ok();
    let request = CallRequest { program: program.to_owned(), method: method.to_owned(), arg, timeout_ms };
    let reply: serde_json::Value = client
        .call_with("Control.Call", &request, CallOptions { timeout: Some(timeout + Duration::from_secs(1)) })
        .await
        .map_err(refused)?;
    emit(&serde_json::to_string_pretty(&reply).context("encoding JSON")?)
}

pub async fn down(client: &Client) -> Result<(), RemoteError> {
    client.call::<_, ()>("Control.Down", &()).await.map_err(refused)?;
    emit("stopping all programs")?;
    // The instance closes its control socket once everything has stopped.
    client.closed().await;
    emit("stopped")
}
