//! `warren upgrade` and SIGUSR2: the running `up` replaces itself with its binary as it is on
//! disk now and carries on in the new image — every program still running with the same pid,
//! its pipes, sockets and restart counts, the control socket and the HTTP endpoint answering
//! again (docs/HANDOFF.md). The supervisor and host carry their own state; this carries `up`'s:
//! its settings and its two listening sockets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use warren::Baggage;
use warren::supervise::Supervisor;

use crate::config::FileSettings;
use crate::control_socket::ControlSocket;
use crate::remote::{self, RemoteError};

/// The descriptors `up` carries across, by name.
pub const CONTROL_FD: &str = "control";
pub const CONTROL_LOCK_FD: &str = "control.lock";
pub const HTTP_FD: &str = "http";

/// How long `warren upgrade` waits for the new image to answer on the control socket.
const ANSWER_AGAIN: Duration = Duration::from_secs(30);

/// `up`'s own state across the exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Carried {
    pub settings: FileSettings,
    /// The programs of the plan, in order (for the terminal's columns and the log files,
    /// which are set up before the supervisor is taken over).
    pub programs: Vec<String>,
    /// The configuration file `up` was started with, for `reload`.
    pub file: Option<PathBuf>,
    /// How many upgrades this instance has been through, this one included.
    pub upgrades: u32,
    /// Each program's log file generation, which readers' positions name.
    #[serde(default)]
    pub log_generations: std::collections::BTreeMap<String, u64>,
}

impl Carried {
    /// What the image before this one carried, if this process was started by an upgrade.
    pub fn peek() -> Result<Carried, String> {
        let state = Supervisor::peek_baggage()?;
        serde_json::from_value(state).map_err(|err| format!("warren up's state does not parse: {err}"))
    }
}

/// What `Control.Upgrade` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeRequest {
    /// The binary to run; the one `up` runs, as it is on disk now, when `None`.
    pub to: Option<PathBuf>,
}

/// What `Control.Image` answers: which image of the instance runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub pid: u32,
    pub upgrades: u32,
    pub version: String,
}

impl Image {
    pub fn this(upgrades: u32) -> Image {
        Image { pid: std::process::id(), upgrades, version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// Upgrade requests from the control socket to `up`'s loop (to the binary given, if one
/// was); each is answered only if the upgrade did not happen, with why.
pub type Requests = mpsc::UnboundedSender<(Option<PathBuf>, oneshot::Sender<String>)>;

/// The format of `up`'s own part of the state ([`Carried`]).
const UP_FORMAT: u32 = 1;

/// How long the new binary has to say which formats it reads.
const PREFLIGHT: Duration = Duration::from_secs(10);

/// The formats of the state this binary writes and takes over.
pub fn formats() -> String {
    format!("{} up {UP_FORMAT}", Supervisor::handover_formats())
}

/// Whether `binary` can take this instance over: it runs, and reads the formats this one
/// writes. Asked before anything is held, so a refusal costs nothing.
async fn preflight(binary: &Path) -> Result<(), String> {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["upgrade", "--formats"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = match tokio::time::timeout(PREFLIGHT, warren::reaper::output(command)).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("cannot run {}: {err}", binary.display())),
        Err(_) => return Err(format!("{} upgrade --formats did not answer within {PREFLIGHT:?}", binary.display())),
    };
    let theirs = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        return Err(format!(
            "{} cannot take a running warren over (`upgrade --formats` failed: {}): stop and start it instead",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let ours = formats();
    if theirs != ours {
        return Err(format!(
            "{} reads state formats \"{theirs}\", this warren writes \"{ours}\": stop and start it instead",
            binary.display()
        ));
    }
    Ok(())
}

/// The binary to run: the file `/proc/self/exe` names, which is the one on disk now — a
/// replaced binary shows as "PATH (deleted)", and PATH is then the new one.
fn binary() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let text = exe.as_os_str().to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// Hands everything over to a new image of `up`'s binary, run with the same arguments.
/// Returns only if that did not happen, with why; everything runs on as before.
pub async fn hand_over(
    supervisor: &Supervisor,
    control: &ControlSocket,
    http: Option<&crate::http::Endpoint>,
    carried: Carried,
    to: Option<PathBuf>,
) -> String {
    // Counted from before the question to the new binary: a SIGTERM while it answers gives
    // the upgrade up (docs/HANDOFF.md §3, races).
    let stops_before = warren::handover_stops_taken();
    let program = match to.map_or_else(binary, Ok) {
        Ok(program) => program,
        Err(err) => return format!("cannot tell which binary runs (/proc/self/exe): {err}"),
    };
    if let Err(why) = preflight(&program).await {
        return why;
    }
    let mut fds = Vec::new();
    match control.carried() {
        Ok((listener, lock)) => fds.extend([(CONTROL_FD.to_owned(), listener), (CONTROL_LOCK_FD.to_owned(), lock)]),
        Err(err) => return format!("cannot keep the control socket across: {err}"),
    }
    if let Some(http) = http {
        match http.carried() {
            Ok(listener) => fds.push((HTTP_FD.to_owned(), listener)),
            Err(err) => return format!("cannot keep the HTTP endpoint's socket across: {err}"),
        }
    }
    let state = match serde_json::to_value(&carried) {
        Ok(state) => state,
        Err(err) => return format!("cannot write warren up's state: {err}"),
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    supervisor.hand_over_counting_from(stops_before, &program, &args, Baggage { state, fds }).await
}

/// `warren upgrade`: asks the instance to upgrade, then waits for its new image to answer.
pub async fn remote(instance_dir: &Path, to: Option<PathBuf>) -> Result<u8, RemoteError> {
    // The instance runs elsewhere: a relative path means one from here.
    let to = to.map(|path| std::path::absolute(&path).unwrap_or(path));
    let client = remote::connect(instance_dir).await?;
    let before: Image = client.call("Control.Image", &()).await.map_err(remote::refused)?;
    let asked = Instant::now();
    // Answered only when the upgrade did not happen; otherwise the exec closes the connection.
    if let Err(warren_rpc::CallError::Application { message, .. }) =
        client.call_with::<_, ()>("Control.Upgrade", &UpgradeRequest { to }, long_call()).await
    {
        return Err(RemoteError::Refused(message));
    }
    let deadline = asked + ANSWER_AGAIN;
    let after = loop {
        let answered = match remote::connect_within(instance_dir, Some(Duration::from_secs(5))).await {
            Ok(client) => client.call::<_, Image>("Control.Image", &()).await.ok(),
            Err(_) => None,
        };
        match answered {
            Some(image) if image.upgrades > before.upgrades => break image,
            _ if Instant::now() >= deadline => {
                return Err(RemoteError::Refused(format!(
                    "the instance did not answer as upgraded within {ANSWER_AGAIN:?}; see `warren status` and its output"
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let took = asked.elapsed();
    let pid = if after.pid == before.pid {
        format!("pid {} kept", after.pid)
    } else {
        format!("pid {} (was {})", after.pid, before.pid)
    };
    remote::emit(&format!(
        "upgraded: warren {} → {} ({pid}); the control socket answered again after {} ms",
        before.version,
        after.version,
        took.as_millis()
    ))?;
    Ok(crate::exit::OK)
}

fn long_call() -> warren_rpc::CallOptions {
    // The hold waits up to 5 s for every pump and reaper to settle.
    warren_rpc::CallOptions { timeout: Some(Duration::from_secs(30)) }
}
