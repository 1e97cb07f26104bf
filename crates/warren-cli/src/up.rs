//! `warren up`: supervise the plan, serve the control socket, render what happens, and stop
//! everything in reverse dependency order on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT; what a second
//! and third signal, Ctrl-Z and `fg` do is `warren::Shutdown`'s policy.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::broadcast;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren::supervise::{Supervisor, Update};
use warren::{Host, Shutdown, ShutdownStep};
use warren_rpc::{Endpoint, HandlerError, Server};

use crate::control::{CallRequest, LOG_NOTIFICATION, LogsRequest, StatusRow, codes};
use crate::exit;
use crate::output::Output;

/// How long the control server lets calls finish when `up` ends.
const CONTROL_DRAIN: Duration = Duration::from_secs(2);

pub async fn run(plan: Plan, instance_dir: &Path) -> anyhow::Result<u8> {
    // First of all, so that a Ctrl-C while programs start is an orderly stop, not a crash.
    let mut shutdown = Shutdown::install().context("cannot install signal handlers")?;
    let output = Arc::new(Output::new(plan.programs().iter().map(|p| p.name.as_str())));
    let supervisor_slot: Arc<OnceLock<Supervisor>> = Arc::new(OnceLock::new());
    let control_path = crate::instance::control_socket(instance_dir);
    let control = match control_service(Arc::clone(&supervisor_slot), Arc::clone(&output))
        .bind(&Endpoint::unix(&control_path))
        .await
    {
        Ok(running) => running,
        Err(warren_rpc::BindError::InUse { path }) => {
            eprintln!(
                "warren: an instance is already running for {} (control socket {}); use `warren status` or `warren down`",
                instance_dir.display(),
                path.display()
            );
            return Ok(exit::ALREADY_RUNNING);
        }
        Err(err) => return Err(err).context("cannot serve the control socket"),
    };
    let host = Host::builder().log_sink(output.clone()).build().context("cannot set up the host")?;
    let (notices_tx, mut notices) = broadcast::channel(1024);
    let supervisor = Supervisor::start(plan, host, notices_tx);
    let _ = supervisor_slot.set(supervisor.clone());
    output.say(&format!("control socket {}", control_path.display()));

    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(Update::Changed { name, state, pid }) => {
                    // Waiting is worth a line only for a program that has something to wait for.
                    let waits = supervisor.has_dependencies(&name);
                    if state != State::Waiting || waits {
                        output.say(&describe(&supervisor, &name, &state, pid));
                    }
                }
                Ok(Update::AllReady) => {
                    output.say("all programs are up");
                    // Lets `warren up` run as a systemd Type=notify service.
                    if let Err((path, err)) = warren::sd_notify("READY=1") {
                        output.say(&format!("cannot notify systemd at {path}: {err}"));
                    }
                }
                Ok(Update::AllStopped) => break,
                Err(broadcast::error::RecvError::Lagged(missed)) => output.say(&format!("({missed} state changes not shown)")),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            step = shutdown.next(|signal| supervisor.signal_all(signal)) => match step {
                ShutdownStep::Stop(signal) => {
                    output.say(&format!("{signal}: stopping all programs, dependents first (again to kill them)"));
                    let _ = warren::sd_notify("STOPPING=1");
                    supervisor.shutdown();
                }
                ShutdownStep::Killed(signal) => {
                    output.say(&format!("{signal} again: killing every process group now (again to exit at once)"));
                }
                ShutdownStep::Resumed => output.say("resumed every program"),
            }
        }
    }
    let failed = supervisor.finished().await;
    control.shutdown(CONTROL_DRAIN).await;
    if failed {
        output.say("stopped; some programs failed");
        Ok(exit::PROGRAM_FAILED)
    } else {
        output.say("stopped");
        Ok(exit::OK)
    }
}

fn describe(supervisor: &Supervisor, name: &str, state: &State, pid: Option<u32>) -> String {
    let pid = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
    match state {
        State::Running => format!("{name}: started{pid}"),
        State::Ready => format!("{name}: ready{pid}"),
        State::Waiting => format!("{name}: waiting for its dependencies"),
        State::Starting => format!("{name}: starting"),
        State::Backoff { .. } => {
            let last = supervisor.status().into_iter().find(|s| s.name == name).and_then(|s| s.last_exit);
            match last {
                Some(exit) => format!("{name}: {exit}; {state}"),
                None => format!("{name}: {state}"),
            }
        }
        other => format!("{name}: {other}"),
    }
}

fn row(status: warren::supervise::ProgramStatus) -> StatusRow {
    StatusRow {
        name: status.name,
        state: status.state.name().to_owned(),
        detail: status.state.to_string(),
        pid: status.pid,
        for_ms: u64::try_from(status.for_.as_millis()).unwrap_or(u64::MAX),
        restarts: status.restarts,
        last_exit: status.last_exit.map(|e| e.to_string()),
        socket_lost: status.socket_lost.map(|lost| lost.to_string()),
    }
}

fn unknown(err: warren::supervise::UnknownProgram) -> HandlerError {
    HandlerError::new(codes::UNKNOWN_PROGRAM, err.to_string())
}

/// The control service. Requests that arrive before the supervisor exists (a few microseconds
/// at start) are answered as "starting".
fn control_service(slot: Arc<OnceLock<Supervisor>>, output: Arc<Output>) -> Server {
    let get = move || slot.get().cloned().ok_or_else(|| HandlerError::new(codes::NOT_RUNNING, "warren is starting"));
    let (status, start, stop, restart, call, down) =
        (get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get);
    let (logs, follow) = (Arc::clone(&output), output);
    Server::new().service("Control", move |s| {
        s.method("Status", move |_ctx, (): ()| {
            let supervisor = status();
            async move { Ok(supervisor?.status().into_iter().map(row).collect::<Vec<_>>()) }
        })
        .method("Start", move |_ctx, name: String| {
            let supervisor = start();
            async move { supervisor?.start_program(&name).map_err(unknown) }
        })
        .method("Stop", move |_ctx, name: String| {
            let supervisor = stop();
            async move { supervisor?.stop_program(&name).map_err(unknown) }
        })
        .method("Restart", move |_ctx, name: String| {
            let supervisor = restart();
            async move { supervisor?.restart_program(&name).map_err(unknown) }
        })
        .method("Logs", move |_ctx, request: LogsRequest| {
            let rows = logs.recent(&request.program, request.lines);
            async move { Ok(rows) }
        })
        .method("Follow", move |ctx, program: String| {
            let mut lines = follow.follow();
            let notifier = ctx.notifier();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        line = lines.recv() => match line {
                            Ok(row) if row.program == program => {
                                if notifier.notify(LOG_NOTIFICATION, &row).is_err() {
                                    return;
                                }
                            }
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        () = notifier.disconnected() => return,
                    }
                }
            });
            async move { Ok(()) }
        })
        .method("Call", move |_ctx, request: CallRequest| {
            let supervisor = call();
            async move { forward(supervisor?, request).await }
        })
        .method("Down", move |_ctx, (): ()| {
            let supervisor = down();
            async move {
                supervisor?.shutdown();
                Ok(())
            }
        })
    })
}

/// `warren call`: the program's own RPC client carries the call; JSON in and out.
async fn forward(supervisor: Supervisor, request: CallRequest) -> Result<serde_json::Value, HandlerError> {
    let client = supervisor.client(&request.program).map_err(unknown)?.ok_or_else(|| {
        HandlerError::new(codes::NO_RPC, format!("{} is not running, or does not serve RPC", request.program))
    })?;
    let options = warren_rpc::CallOptions { timeout: request.timeout_ms.map(Duration::from_millis) };
    client.call_with::<_, serde_json::Value>(&request.method, &request.arg, options).await.map_err(|err| {
        let code = match err.code() {
            warren_rpc::ErrorCode::Application(code) => code,
            _ => codes::CALL_FAILED,
        };
        HandlerError::new(code, err.to_string())
    })
}
