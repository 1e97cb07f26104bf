//! The control service that `warren up` serves on its control socket: what `status`, `start`,
//! `stop`, `restart`, `logs`, `call` and `down` ask of the running instance.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;
use warren::supervise::Supervisor;
use warren_rpc::{HandlerError, Server};

use crate::control::{CallRequest, LOG_NOTIFICATION, LogsRequest, ProgramsRequest, StatusRow, codes};
use crate::lifecycle;
use crate::output::Output;

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
        endpoint: status.endpoint,
    }
}

fn unknown(err: warren::supervise::UnknownProgram) -> HandlerError {
    HandlerError::new(codes::UNKNOWN_PROGRAM, err.to_string())
}

/// The control service. Requests that arrive before the supervisor exists (a few microseconds
/// at start) are answered as "starting".
pub fn control(slot: Arc<OnceLock<Supervisor>>, output: Arc<Output>) -> Server {
    let get = move || slot.get().cloned().ok_or_else(|| HandlerError::new(codes::NOT_RUNNING, "warren is starting"));
    let (status, start, stop, restart, call, down) =
        (get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get);
    let (logs, follow) = (Arc::clone(&output), output);
    Server::new().service("Control", move |s| {
        s.method("Status", move |_ctx, (): ()| {
            let supervisor = status();
            async move { Ok(supervisor?.status().into_iter().map(row).collect::<Vec<_>>()) }
        })
        .method("StartPrograms", move |_ctx, request: ProgramsRequest| {
            let supervisor = start();
            async move { lifecycle::start(supervisor?, request).await }
        })
        .method("StopPrograms", move |_ctx, request: ProgramsRequest| {
            let supervisor = stop();
            async move { lifecycle::stop(supervisor?, request).await }
        })
        .method("RestartPrograms", move |_ctx, request: ProgramsRequest| {
            let supervisor = restart();
            async move { lifecycle::restart(supervisor?, request).await }
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
