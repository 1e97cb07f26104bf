//! The control service that `warren up` serves on its control socket: what `status`, `start`,
//! `stop`, `restart`, `logs`, `call`, `reload` and `down` ask of the running instance.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use warren::supervise::Supervisor;
use warren::supervise::machine::{HealthStatus, State};
use warren_rpc::{HandlerError, Server};

use crate::call_counts::CallCounts;
use crate::control::{CallRequest, ProgramsRequest, StatusRow, codes};
use crate::detail;
use crate::lifecycle;
use crate::logs::api::{OpenRequest, ReadRequest};
use crate::logs::serve;
use crate::logs::store::Store;
use crate::usage::Sampler;

pub(crate) fn row(status: warren::supervise::ProgramStatus, logs: &Store) -> StatusRow {
    let (health, health_failures, health_reason) = match status.health {
        None => (None, 0, None),
        Some(HealthStatus::Pending) => (Some("pending"), 0, None),
        Some(HealthStatus::Healthy) => (Some("healthy"), 0, None),
        Some(HealthStatus::Unhealthy { failures, reason }) => (Some("unhealthy"), failures, Some(reason)),
    };
    // A program stopped for a reason of its own (`autostart = false`) says it where it is listed.
    let why_stopped = match (&status.state, status.history.last()) {
        (State::Stopped, Some(change)) if change.state == State::Stopped => change.reason.clone(),
        _ => None,
    };
    StatusRow {
        log_lost: logs.lost(&status.name),
        name: status.name,
        state: status.state.name().to_owned(),
        detail: why_stopped.map_or_else(|| status.state.to_string(), |why| format!("stopped ({why})")),
        pid: status.pid,
        for_ms: u64::try_from(status.for_.as_millis()).unwrap_or(u64::MAX),
        restarts: status.restarts,
        last_exit: status.last_exit.map(|e| e.to_string()),
        socket_lost: status.socket_lost.map(|lost| lost.to_string()),
        health: health.map(str::to_owned),
        health_failures,
        health_reason,
        checks_failed: status.checks_failed,
        // Filled in by the sampler, which looks at /proc or the cgroup.
        cpu_percent: None,
        rss_bytes: None,
        endpoint: status.endpoint,
        transport: status.transport.map(|transport| transport.as_str().to_owned()),
        last_restart: status.last_restart,
        replica_of: None,
        limits_not_applied: None,
        notify_status: status.notify_status,
    }
}

fn unknown(err: warren::supervise::UnknownProgram) -> HandlerError {
    HandlerError::new(codes::UNKNOWN_PROGRAM, err.to_string())
}

/// The control service. Requests that arrive before the supervisor exists (a few microseconds
/// at start) are answered as "starting".
pub fn control(
    slot: Arc<OnceLock<Supervisor>>,
    logs: Arc<Store>,
    file: Option<Arc<Path>>,
    call_counts: Arc<CallCounts>,
    upgrades: (crate::upgrade::Requests, u32),
) -> Server {
    let (upgrade_requests, upgrades) = upgrades;
    let get = move || slot.get().cloned().ok_or_else(|| HandlerError::new(codes::NOT_RUNNING, "warren is starting"));
    let (status, start, stop, restart, call, down, reload, scale, program) =
        (get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get.clone(), get);
    let scale_logs = Arc::clone(&logs);
    let turns = Arc::new(crate::round_robin::Turns::default());
    let (open_logs, read_logs, reload_logs, program_logs) =
        (Arc::clone(&logs), Arc::clone(&logs), Arc::clone(&logs), Arc::clone(&logs));
    let open_readers = Arc::new(serve::Readers::default());
    let read_readers = Arc::clone(&open_readers);
    let sampler = Arc::new(Sampler::default());
    let program_sampler = Arc::clone(&sampler);
    Server::new().service("Control", move |s| {
        s.method("Status", move |_ctx, (): ()| {
            let (supervisor, sampler, logs) = (status(), Arc::clone(&sampler), Arc::clone(&logs));
            async move {
                let supervisor = supervisor?;
                let mut rows: Vec<StatusRow> = supervisor.status().into_iter().map(|s| row(s, &logs)).collect();
                crate::grouping::fill(&supervisor.plan(), &mut rows);
                sampler.fill(&supervisor, &mut rows).await;
                crate::limits::mark(&supervisor, &mut rows);
                Ok(rows)
            }
        })
        .method("Program", move |_ctx, name: String| {
            let (supervisor, sampler, logs) = (program(), Arc::clone(&program_sampler), Arc::clone(&program_logs));
            async move {
                let supervisor = supervisor?;
                let all = supervisor.status();
                let Some(status) = all.iter().find(|s| s.name == name) else {
                    let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                    let message = format!("no program named {name:?} (known: {})", known.join(", "));
                    return Err(HandlerError::new(codes::UNKNOWN_PROGRAM, message));
                };
                let mut rows = [row(status.clone(), &logs)];
                sampler.fill(&supervisor, &mut rows).await;
                let [one] = rows;
                Ok(detail::build(&supervisor, status, one))
            }
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
        .method("OpenLogs", move |ctx, request: OpenRequest| {
            serve::open(Arc::clone(&open_logs), Arc::clone(&open_readers), ctx.peer().connection, request)
        })
        .method("ReadLogs", move |ctx, request: ReadRequest| {
            serve::read(Arc::clone(&read_logs), Arc::clone(&read_readers), ctx.peer().connection, request)
        })
        .method("Call", move |_ctx, request: CallRequest| {
            let (supervisor, turns, counts) = (call(), Arc::clone(&turns), Arc::clone(&call_counts));
            async move { forward(supervisor?, &turns, &counts, request).await }
        })
        .method("Reload", move |_ctx, request: crate::reload::ReloadRequest| {
            let (supervisor, file, logs) = (reload(), file.clone(), Arc::clone(&reload_logs));
            async move { crate::reload::apply(&supervisor?, &logs, file.as_deref(), request.dry_run).await }
        })
        .method("Scale", move |_ctx, request: crate::scale::ScaleRequest| {
            let (supervisor, logs) = (scale(), Arc::clone(&scale_logs));
            async move { crate::scale::apply(&supervisor?, &logs, request).await }
        })
        .method("Image", move |_ctx, (): ()| async move { Ok(crate::upgrade::Image::this(upgrades)) })
        .method("Upgrade", move |_ctx, request: crate::upgrade::UpgradeRequest| {
            let requests = upgrade_requests.clone();
            async move {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let refused = |why: String| Err::<(), _>(HandlerError::new(codes::REQUEST_REFUSED, why));
                if requests.send((request.to, reply)).is_err() {
                    return refused("not upgraded: warren is stopping".to_owned());
                }
                // An answer means it did not happen; when it does, the exec closes this connection.
                match answer.await {
                    Ok(why) => refused(format!("not upgraded, running as before: {why}")),
                    Err(_) => refused("not upgraded: warren is stopping".to_owned()),
                }
            }
        })
        .method("Down", move |_ctx, (): ()| {
            let supervisor = down();
            async move {
                // Answered once everything has stopped, with what had escaped (the control socket
                // drains its calls before it closes).
                let supervisor = supervisor?;
                supervisor.shutdown();
                supervisor.finished().await;
                Ok(supervisor.escaped_killed())
            }
        })
    })
}

/// Why there is no connection to call `program` on, in the words that lead to the fix.
fn no_client(supervisor: &Supervisor, program: &str) -> HandlerError {
    let plan = supervisor.plan();
    let serves = plan.program(program).is_some_and(|p| p.rpc || p.socket.is_some());
    let status = supervisor.program_status(program);
    let message = match status {
        _ if !serves => format!(
            "{program} does not serve RPC: give it `ready = \"warren\"`, `rpc = true` (or \"json\", \"go\") or `socket = \"PATH\"` in its settings"
        ),
        Some(status) if status.state.is_active() => format!("{program} is {} and not connected yet", status.state),
        Some(status) => format!("{program} is not running ({})", status.state),
        None => format!("{program} is not running"),
    };
    HandlerError::new(codes::NO_RPC, message)
}

/// `warren call`: the program's own RPC client carries the call; JSON in and out.
async fn forward(
    supervisor: Supervisor,
    turns: &crate::round_robin::Turns,
    counts: &CallCounts,
    request: CallRequest,
) -> Result<serde_json::Value, HandlerError> {
    let program = turns.pick(&supervisor, &request.program);
    let client = supervisor.client(&program).map_err(unknown)?.ok_or_else(|| no_client(&supervisor, &program))?;
    let options = warren_rpc::CallOptions { timeout: request.timeout_ms.map(Duration::from_millis) };
    let result = client.call_with::<_, serde_json::Value>(&request.method, &request.arg, options).await;
    counts.record(&program, result.is_ok());
    result.map_err(|err| {
        let code = match err.code() {
            warren_rpc::ErrorCode::Application(code) => code,
            _ => codes::CALL_FAILED,
        };
        HandlerError::new(code, err.to_string())
    })
}
