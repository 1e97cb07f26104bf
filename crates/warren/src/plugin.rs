//! The child side: what a program started by a warren host does to be a good child.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warren::PluginError> {
//! #[derive(serde::Serialize)]
//! struct Todo { id: String }
//! let server = warren_rpc::Server::new()
//!     .service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }));
//! warren::plugin::serve(server).await
//! # }
//! ```
//!
//! A plugin that has no other use for tokio can leave its runtime to warren with [`main`] (or
//! [`serve_blocking`]), which serves on a current-thread runtime: the child then starts faster
//! and uses less memory than under `#[tokio::main]`, which starts a worker thread per CPU.
//!
//! ```no_run
//! # #[derive(serde::Serialize)]
//! # struct Todo { id: String }
//! fn main() -> std::process::ExitCode {
//!     warren::plugin::main(|| {
//!         warren_rpc::Server::new()
//!             .service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }))
//!     })
//! }
//! ```

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_rpc::{Endpoint, Server, Transport};

use crate::error::PluginError;
use crate::notify;
use crate::signals::Signals;
use crate::sys;

/// How long in-flight calls may run once a stop is requested (the host's grace period is
/// usually longer, so a plugin normally finishes on its own terms).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(3);

/// The variable that tells a child its server may move the host's connection to shared
/// memory: `auto` or `shm` (the program's `transport`, [`Spec::transport`](crate::Spec::transport));
/// unset for the socket.
pub const TRANSPORT_VAR: &str = "WARREN_RPC_TRANSPORT";

/// What [`TRANSPORT_VAR`] asks for, if it is set (a value it does not know is ignored, said).
fn transport_from_env() -> Option<Transport> {
    let value = std::env::var_os(TRANSPORT_VAR)?;
    let found = value.to_str().and_then(Transport::from_name);
    if found.is_none() {
        warn!(target: "warren::plugin", "{TRANSPORT_VAR}={value:?} is not socket, auto or shm: ignored");
    }
    found
}

/// Binds the endpoint the host chose (`WARREN_ENDPOINT`) and accepts on the sockets passed to
/// it, if any (`LISTEN_FDS` with its own `LISTEN_PID`, as warren's `listen` and systemd's
/// socket activation pass them; either alone is enough), tells the host it is ready
/// (`READY=1` on `NOTIFY_SOCKET`), and serves until SIGTERM, SIGINT, a `warren.Shutdown` call
/// or the host's death; then stops accepting, finishes in-flight calls (for at most
/// [`DEFAULT_DRAIN`]), deletes its socket file and returns, so `main` can exit 0. With
/// [`TRANSPORT_VAR`] set, the server is given that [`Transport`] (`Server::transport`), so that
/// the host's connection may move to shared memory.
pub async fn serve(server: Server) -> Result<(), PluginError> {
    serve_with_drain(server, DEFAULT_DRAIN).await
}

/// The whole `main` of a plugin: builds the server with `build` and serves it as
/// [`serve_blocking`] does. On an error it prints `NAME: error` on stderr (NAME is the one the
/// host gave the child, `WARREN_NAME`, else the program's file name) and returns exit code 2;
/// otherwise 0.
pub fn main(build: impl FnOnce() -> Server) -> ExitCode {
    match serve_blocking_with(build, DEFAULT_DRAIN) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}: {}", program_name(), warren_rpc::ErrorChain(&err));
            ExitCode::from(2)
        }
    }
}

/// [`serve`] on a current-thread runtime made for it, for a `main` without `#[tokio::main]`.
///
/// One thread serves every connection and runs every handler, which is plenty for a plugin
/// and spares the worker threads a multi-thread runtime starts. A handler that needs another
/// CPU can still use `tokio::task::spawn_blocking`; `tokio::task::block_in_place` panics on
/// this runtime, so a plugin that uses it should keep its own multi-thread runtime and call
/// [`serve`].
pub fn serve_blocking(server: Server) -> Result<(), PluginError> {
    serve_blocking_with(|| server, DEFAULT_DRAIN)
}

/// [`serve_blocking`] with the drain of [`serve_with_drain`].
pub fn serve_blocking_with_drain(server: Server, drain: Duration) -> Result<(), PluginError> {
    serve_blocking_with(|| server, drain)
}

fn serve_blocking_with(build: impl FnOnce() -> Server, drain: Duration) -> Result<(), PluginError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(PluginError::Runtime)?;
    // Inside the runtime's context, so that building the server may spawn tasks.
    let server = {
        let _context = runtime.enter();
        build()
    };
    runtime.block_on(serve_with_drain(server, drain))
}

fn program_name() -> String {
    std::env::var("WARREN_NAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| {
        std::env::args_os()
            .next()
            .map(std::path::PathBuf::from)
            .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "plugin".to_owned())
    })
}

/// [`serve`] with another drain period than [`DEFAULT_DRAIN`].
pub async fn serve_with_drain(server: Server, drain: Duration) -> Result<(), PluginError> {
    let endpoint = std::env::var("WARREN_ENDPOINT").ok().map(|e| Endpoint::parse(&e)).transpose()?;
    let passed = passed_sockets();
    if endpoint.is_none() && passed.is_empty() {
        return Err(PluginError::NotUnderHost);
    }
    let mut signals = Signals::install(&[crate::Signal::TERM, crate::Signal::INT]).map_err(PluginError::Signals)?;
    let host_gone = watch_host();
    let shutdown_requested = CancellationToken::new();
    let server = match transport_from_env() {
        Some(transport) => server.transport(transport),
        None => server,
    };
    let server = {
        let requested = shutdown_requested.clone();
        server.service("warren", move |s| {
            s.method("Shutdown", move |_ctx, (): ()| {
                let requested = requested.clone();
                async move {
                    requested.cancel();
                    Ok(())
                }
            })
        })
    };
    let running = server.bind_with(endpoint.as_ref(), passed).await?;
    let where_ = match running.endpoint() {
        Endpoint::Unix(path) => format!("unix {}", path.display()),
        other => other.to_string(),
    };
    info!(target: "warren::plugin", "Serving RPC server on {where_}");
    notify::send(&format!("READY=1\nMAINPID={}", sys::current_pid()))
        .map_err(|(path, source)| PluginError::Notify { path, source })?;
    let why = tokio::select! {
        signal = signals.next() => format!("received {signal}"),
        () = shutdown_requested.cancelled() => "Shutdown requested by the host".to_owned(),
        () = host_gone.cancelled() => "the host is gone".to_owned(),
    };
    info!(target: "warren::plugin", "stop the server ({why})");
    let _ = notify::send("STOPPING=1");
    let report = running.shutdown(drain).await;
    if report.drain_deadline_hit {
        warn!(target: "warren::plugin", "calls still running after {drain:?} were cancelled");
    }
    if let Some(Endpoint::Unix(path)) = &endpoint
        && !path.exists()
    {
        info!(target: "warren::plugin", "deleted socket file: {}", path.display());
    }
    Ok(())
}

/// The listening sockets passed to this process (socket activation: `LISTEN_FDS` with this
/// process's `LISTEN_PID`), served beside `WARREN_ENDPOINT`; one that is not a stream socket of
/// a known family is skipped with a warning.
fn passed_sockets() -> Vec<warren_rpc::Inherited> {
    sys::take_listen_fds()
        .into_iter()
        .filter_map(|(name, fd)| match rustix::net::getsockname(&fd).map(|addr| addr.address_family()) {
            Ok(rustix::net::AddressFamily::UNIX) => Some(warren_rpc::Inherited::Unix(fd.into())),
            Ok(rustix::net::AddressFamily::INET | rustix::net::AddressFamily::INET6) => {
                Some(warren_rpc::Inherited::Tcp(fd.into()))
            }
            _ => {
                warn!(target: "warren::plugin", "passed socket {name:?} is neither TCP nor Unix: not served");
                None
            }
        })
        .collect()
}

/// Fires if the host dies. The kernel's parent-death signal is re-armed as SIGTERM (the host
/// set SIGKILL before exec) so that a plugin whose host dies still shuts down cleanly and
/// removes its socket; the host's watchdog follows up with SIGKILL if it does not.
fn watch_host() -> CancellationToken {
    let gone = CancellationToken::new();
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let host = std::env::var("WARREN_HOST_PID").ok().and_then(|pid| pid.parse::<u32>().ok());
    // The host may have died before the signal was re-armed.
    if let Some(host) = host
        && sys::parent_pid() != Some(host)
        && !sys::process_exists(host)
    {
        gone.cancel();
    }
    gone
}
