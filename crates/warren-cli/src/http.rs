//! The HTTP endpoint of `warren up` (`[http] listen`, off by default), for a kubelet's probes
//! and a Prometheus scrape: `/healthz`, `/readyz`, `/metrics` and `/status`.
//!
//! Built on axum: hyper's HTTP/1 with routing and graceful shutdown on tokio, kept by the tokio
//! project; hyper alone would need the connection loop written here. The metrics go through
//! `prometheus-client`, the Prometheus project's Rust client, which writes the text format.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use warren::supervise::Supervisor;

use crate::call_counts::CallCounts;
use crate::control::StatusRow;
use crate::logs::store::Store;
use crate::usage::Sampler;

#[derive(Clone)]
struct Shared {
    supervisor: Arc<OnceLock<Supervisor>>,
    logs: Arc<Store>,
    sampler: Arc<Sampler>,
    call_counts: Arc<CallCounts>,
}

/// The running endpoint; [`Endpoint::shutdown`] stops it.
#[derive(Debug)]
pub struct Endpoint {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// A copy of the listening socket, for an upgrade's exec to carry across.
    held: std::os::fd::OwnedFd,
}

impl Endpoint {
    /// A copy of the listening socket, to cross an upgrade's exec.
    pub fn carried(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.held.try_clone()
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `listen` (or takes the socket an earlier image `handed_over`) and serves until
/// [`Endpoint::shutdown`].
pub async fn serve(
    listen: SocketAddr,
    supervisor: Arc<OnceLock<Supervisor>>,
    logs: Arc<Store>,
    call_counts: Arc<CallCounts>,
    handed_over: Option<std::os::fd::OwnedFd>,
) -> std::io::Result<Endpoint> {
    let listener = match handed_over {
        // Bound by an earlier image, which handed it over with its exec.
        Some(fd) => {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)?
        }
        None => tokio::net::TcpListener::bind(listen).await.map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot listen on {listen} ([http] listen): {err}"))
        })?,
    };
    let held = std::os::fd::AsFd::as_fd(&listener).try_clone_to_owned()?;
    let shared = Shared { supervisor, logs, sampler: Arc::new(Sampler::default()), call_counts };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(shared);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let until = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(until).await {
            eprintln!("warren: the HTTP endpoint on {listen} stopped: {err}");
        }
    });
    Ok(Endpoint { stop, task, held })
}

/// The rows of `warren status --json`; `None` while warren is starting.
async fn rows(shared: &Shared) -> Option<Vec<StatusRow>> {
    let supervisor = shared.supervisor.get()?;
    let mut rows: Vec<StatusRow> =
        supervisor.status().into_iter().map(|status| crate::service::row(status, &shared.logs)).collect();
    shared.sampler.fill(supervisor, &mut rows).await;
    Some(rows)
}

fn starting() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "warren is starting\n").into_response()
}

/// Whether a program is where it should be: ready (and not unhealthy), or ended on purpose
/// (a job that exited 0, a program stopped by `warren stop`).
fn in_place(row: &StatusRow) -> bool {
    match row.state.as_str() {
        "ready" => row.health.as_deref() != Some("unhealthy"),
        "stopped" => true,
        "exited" => row.last_exit.as_deref() == Some(&warren::Exit::Code(0).to_string()),
        _ => false,
    }
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let Some(rows) = rows(&shared).await else { return starting() };
    let not: Vec<String> =
        rows.iter().filter(|row| !in_place(row)).map(|row| format!("{}: {}", row.name, row.detail)).collect();
    if not.is_empty() {
        return "ready\n".into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, format!("not ready:\n{}\n", not.join("\n"))).into_response()
}

async fn status(State(shared): State<Shared>) -> Response {
    let Some(rows) = rows(&shared).await else { return starting() };
    match serde_json::to_string_pretty(&rows) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the status: {err}\n")).into_response(),
    }
}

type Labels = Vec<(String, String)>;

async fn metrics(State(shared): State<Shared>) -> Response {
    let Some(rows) = rows(&shared).await else { return starting() };
    let Some(supervisor) = shared.supervisor.get() else { return starting() };
    // A registry per scrape: the programs of the plan change with a reload, and nothing is
    // kept between scrapes.
    let mut registry = Registry::with_prefix("warren_program");
    let int = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let up = int(&mut registry, "up", "1 while the program runs");
    let ready = int(&mut registry, "ready", "1 while the program is ready");
    let healthy = int(&mut registry, "healthy", "1 while its health check passes (or it has none and is ready)");
    let restarts = int(&mut registry, "restarts", "Restarts since warren started it");
    let exit_code = int(&mut registry, "last_exit_code", "Exit code of its last run (128+N for signal N)");
    let rss = int(&mut registry, "rss_bytes", "Resident memory of its process tree");
    let lines = int(&mut registry, "log_lines", "Lines in its log (the last line's sequence number, kept across runs)");
    let lost = int(&mut registry, "log_lost_lines", "Lines that could not be written to its log file");
    let rpc_calls = Family::<Labels, Counter>::default();
    registry.register("rpc_calls", "Calls warren carried to it (`warren call`)", rpc_calls.clone());
    let rpc_errors = Family::<Labels, Counter>::default();
    registry.register("rpc_errors", "Calls warren carried to it that failed", rpc_errors.clone());
    let cpu = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    registry.register("cpu_seconds", "CPU time used by its running process tree", cpu.clone());
    let last_exits: std::collections::HashMap<String, warren::Exit> =
        supervisor.status().into_iter().filter_map(|s| Some((s.name, s.last_exit?))).collect();
    for row in &rows {
        let labels = vec![("program".to_owned(), row.name.clone())];
        let running = row.pid.is_some();
        up.get_or_create(&labels).set(i64::from(running));
        ready.get_or_create(&labels).set(i64::from(row.state == "ready"));
        let is_healthy = row.state == "ready" && row.health.as_deref().is_none_or(|h| h == "healthy");
        healthy.get_or_create(&labels).set(i64::from(is_healthy));
        restarts.get_or_create(&labels).set(i64::from(row.restarts));
        let calls = shared.call_counts.get(&row.name);
        if row.endpoint.is_some() || calls.calls > 0 {
            rpc_calls.get_or_create(&labels).inc_by(calls.calls);
            rpc_errors.get_or_create(&labels).inc_by(calls.errors);
        }
        lost.get_or_create(&labels).set(i64::try_from(row.log_lost).unwrap_or(i64::MAX));
        if let Some(program) = shared.logs.find(&row.name) {
            let seq = shared.logs.writer(program).seq();
            lines.get_or_create(&labels).set(i64::try_from(seq).unwrap_or(i64::MAX));
        }
        if let Some(bytes) = row.rss_bytes {
            rss.get_or_create(&labels).set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Some(usage) = supervisor.usage(&row.name) {
            cpu.get_or_create(&labels).set(usage.cpu.as_secs_f64());
        }
        match last_exits.get(&row.name).copied() {
            Some(warren::Exit::Code(code)) => exit_code.get_or_create(&labels).set(i64::from(code)),
            Some(warren::Exit::Signal(signal)) => {
                exit_code.get_or_create(&labels).set(128 + i64::from(signal.number()))
            }
            _ => 0,
        };
    }
    let mut text = String::new();
    if let Err(err) = encode(&mut text, &registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {err}\n")).into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
