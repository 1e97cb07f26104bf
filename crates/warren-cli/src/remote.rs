//! The subcommands that drive a running `warren up` through its control socket.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use warren_rpc::{CallError, CallOptions, Client, ConnectError};

use crate::control::{CallRequest, Outcome, OutcomeKind, ProgramDetail, ProgramsRequest, StatusRow};
use crate::{detail, exit};

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
    connect_within(instance_dir, None).await
}

/// [`connect`], with the connection and hello bounded by `timeout` (the client's own default
/// otherwise): a command's `--timeout` covers an instance that accepts but never answers.
pub async fn connect_within(instance_dir: &Path, timeout: Option<Duration>) -> Result<Client, RemoteError> {
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
    let mut builder =
        Client::builder().codecs(&[warren_rpc::Codec::Json]).server_users(warren_rpc::PeerPolicy::Users(vec![me]));
    if let Some(timeout) = timeout {
        builder = builder.connect_timeout(timeout);
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        match builder.clone().connect(&socket).await {
            Ok(client) => return Ok(client),
            Err(ConnectError::Io { source, .. })
                if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
            {
                return Err(not_running());
            }
            // Accepted by an image that was just replaced by an upgrade: nothing was asked
            // yet, so the next image (which accepts on the same socket) is asked instead.
            Err(err) if attempts < CONNECT_ATTEMPTS && cut_by_an_upgrade(&err) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => {
                return Err(RemoteError::Other(anyhow::Error::new(err).context("cannot reach the control socket")));
            }
        }
    }
}

/// Connections tried when one is cut during its handshake.
const CONNECT_ATTEMPTS: u32 = 3;

/// Whether a failed handshake is the connection's end from the other side.
fn cut_by_an_upgrade(err: &ConnectError) -> bool {
    if let ConnectError::Handshake { source: warren_rpc::FrameError::Truncated { .. }, .. } = err {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = err.source();
    }
    false
}

pub fn refused(err: CallError) -> RemoteError {
    match err {
        CallError::Application { message, .. } => RemoteError::Refused(message),
        CallError::ConnectionLost { method, .. } => RemoteError::Refused(format!(
            "{method}: the instance closed the connection before answering (it was upgraded or stopped); \
             the request may or may not have been carried out: retry it if that is safe"
        )),
        other => RemoteError::Refused(other.to_string()),
    }
}

/// Writes to stdout; a closed pipe (`warren status | head`) is not an error.
pub fn emit(text: &str) -> Result<(), RemoteError> {
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

pub async fn status(client: &Client, name: Option<&str>, json: bool) -> Result<(), RemoteError> {
    if let Some(name) = name {
        let detail: ProgramDetail = client.call("Control.Program", name).await.map_err(refused)?;
        let text = if json {
            serde_json::to_string_pretty(&detail).context("encoding JSON")?
        } else {
            detail::render(&detail)
        };
        return emit(&text);
    }
    let rows: Vec<StatusRow> = client.call("Control.Status", &()).await.map_err(refused)?;
    if json {
        return emit(&serde_json::to_string_pretty(&rows).context("encoding JSON")?);
    }
    let width = rows.iter().map(crate::grouping::shown_len).max().unwrap_or(4).max(4);
    let headers = crate::grouping::headers(&rows);
    let ends = rows.iter().map(|r| endpoint_cell(r).len()).max().unwrap_or(8).max(8);
    emit(&format!(
        "{:<width$}  {:<9}  {:>7}  {:>11}  {:>8}  {:<15}  {:>6}  {:>6}  {:<ends$}  LAST EXIT / DETAIL",
        "NAME", "STATE", "PID", "FOR", "RESTARTS", "HEALTH", "CPU", "RSS", "ENDPOINT"
    ))?;
    for (row, header) in rows.into_iter().zip(headers) {
        if let Some((group, summary)) = header {
            emit(&format!("{group:<width$}  {summary}"))?;
        }
        let pid = row.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let mut detail = if row.detail == row.state { String::new() } else { row.detail.clone() };
        // A restart's reason names the exit it caused: no need to say it twice.
        let restart = row.last_restart.as_deref().unwrap_or_default();
        if let Some(exit) =
            row.last_exit.as_ref().filter(|exit| !detail.contains(exit.as_str()) && !restart.contains(exit.as_str()))
        {
            detail = if detail.is_empty() { format!("last: {exit}") } else { format!("{detail} (last: {exit})") };
        }
        if let Some(lost) = &row.socket_lost {
            detail = if detail.is_empty() { lost.clone() } else { format!("{detail}; {lost}") };
        }
        if let Some(said) = &row.notify_status {
            // Quoted and escaped: the program chose these bytes, not the terminal's owner.
            let said = format!("{said:?}");
            detail = if detail.is_empty() { said } else { format!("{detail}; {said}") };
        }
        if row.limits_not_applied.is_some() {
            let note = "limits NOT applied (see status NAME)";
            detail = if detail.is_empty() { note.to_owned() } else { format!("{detail}; {note}") };
        }
        if row.log_lost > 0 {
            let lost = format!("{} log lines lost", row.log_lost);
            detail = if detail.is_empty() { lost } else { format!("{detail}; {lost}") };
        }
        if let Some(why) = row.last_restart.as_ref().filter(|why| !detail.contains(why.as_str())) {
            detail =
                if detail.is_empty() { format!("restarted: {why}") } else { format!("{detail}; restarted: {why}") };
        }
        let cpu = row.cpu_percent.map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.1}%"));
        let rss = row.rss_bytes.map_or_else(|| "-".to_owned(), crate::usage::bytes);
        emit(&format!(
            "{:<width$}  {:<9}  {:>7}  {:>11}  {:>8}  {:<15}  {:>6}  {:>6}  {:<ends$}  {}",
            crate::grouping::shown(&row),
            row.state,
            pid,
            short_duration(Duration::from_millis(row.for_ms)),
            row.restarts,
            detail::health(&row),
            cpu,
            rss,
            endpoint_cell(&row),
            detail
        ))?;
    }
    Ok(())
}

/// The endpoint column: where it serves RPC, and "(shm)" when warren's connection to it moved
/// to shared memory.
fn endpoint_cell(row: &StatusRow) -> String {
    match (&row.endpoint, row.transport.as_deref()) {
        (Some(endpoint), Some("shm")) => format!("{endpoint} (shm)"),
        (Some(endpoint), _) => endpoint.clone(),
        (None, _) => "-".to_owned(),
    }
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
    print_outcomes(&outcomes)
}

/// One line per program: what was done on stdout, warnings and failures on stderr; exit 1 if a
/// program did not do what was asked.
pub(crate) fn print_outcomes(outcomes: &[Outcome]) -> Result<u8, RemoteError> {
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

/// Stops the instance; returns how many processes had escaped their program's process group
/// (and were killed): a stop that was not clean.
pub async fn down(client: &Client) -> Result<usize, RemoteError> {
    emit("stopping all programs")?;
    let escaped: usize = client.call("Control.Down", &()).await.map_err(refused)?;
    // The instance closes its control socket once everything has stopped.
    client.closed().await;
    if escaped > 0 {
        emit(&format!(
            "stopped; {escaped} process(es) had left their program's process group (setsid, a daemon's double fork) and were killed"
        ))?;
    } else {
        emit("stopped")?;
    }
    Ok(escaped)
}
