//! The middle tier, in the role of containerd-shim: a warren plugin serving
//! `Shim.Run(RunRequest{id, args, stdin}) -> RunResult{id, pid, exit_code, exit, stdout, stderr}`.
//!
//! Each run starts the `runtime` program (the runc of this example) through the shim's own
//! [`warren::Host`], so a runtime runs in its own process group, with piped stdio, and is killed
//! by the shim's watchdog if the shim dies. A [`LogSink`] collects each runtime's lines for its
//! result (and passes them on to the shim's log). The reply is sent once the runtime has exited
//! and its pipes are drained.
//!
//! When the shim is asked to stop (a `warren.Shutdown` call, SIGTERM, SIGINT, or its host's
//! death) it stops every runtime still running *first*, so that runs in flight end with their
//! real exit status and are answered during the drain; once `serve` returns it makes sure no
//! runtime is left and exits 0 — or 1 if the drain deadline cut a run off unanswered.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use warren::{Child, Exit, Host, LogLine, LogSink, Readiness, Spec, Stream, TracingSink};
use warren_examples::{ERR_RUNTIME_START, ERR_SHIM_STOPPING, RunRequest, RunResult, sibling};
use warren_rpc::{HandlerError, Server, ServerHandle};

/// A runtime gets SIGTERM at once and SIGKILL after this. Shorter than the drain of
/// `plugin::serve` (3 s), so that a run in flight is answered even if its runtime must be
/// killed, and that in turn well within the daemon's grace period for the shim.
const RUNTIME_GRACE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    warren_examples::init_logging();
    match run().await {
        Ok(0) => {
            info!("shim: every runtime stopped; exiting 0");
            ExitCode::SUCCESS
        }
        Ok(cut_off) => {
            error!("shim: {cut_off} run(s) in flight were cut off by the stop, not answered; exiting 1");
            ExitCode::FAILURE
        }
        Err(err) => {
            error!("shim: {}", warren_rpc::ErrorChain(&*err));
            ExitCode::from(2)
        }
    }
}

/// Serves until stopped; returns how many runs were cut off by the stop instead of answered.
async fn run() -> Result<usize, Box<dyn std::error::Error>> {
    let collector = Arc::new(Collector::default());
    let host = Host::builder().log_sink(Arc::clone(&collector) as Arc<dyn LogSink>).build()?;
    info!(
        "shim pid={} runtime_dir={} watchdog_pid={}",
        std::process::id(),
        host.runtime_dir().display(),
        host.watchdog_pid().unwrap_or(0)
    );
    let stopping = CancellationToken::new();
    let cut_off = Arc::new(AtomicUsize::new(0));
    let server = Server::new();
    let shim = Arc::new(Shim {
        host: host.clone(),
        collector,
        server: server.handle(),
        stopping: stopping.clone(),
        cut_off: Arc::clone(&cut_off),
    });
    let watcher = tokio::spawn(stop_runtimes_when_stopping(host.clone(), server.handle(), stopping.clone()));
    let server = server.service("Shim", |s| {
        s.method("Run", move |_ctx, request: RunRequest| {
            let shim = Arc::clone(&shim);
            async move { shim.run(request).await }
        })
    });
    let served = warren::plugin::serve(server).await;
    // Normally the watcher has already stopped the runtimes; if serving failed, it wakes now.
    stopping.cancel();
    let _ = watcher.await;
    // A run that started after the watcher looked (it refuses to, but the check and the start
    // are not atomic) is stopped here at the latest.
    for report in host.stop_all(RUNTIME_GRACE).await {
        info!("stopped runtime: {report}");
    }
    served?;
    Ok(cut_off.load(Ordering::SeqCst))
}

/// Waits until the server starts shutting down (or `stopping` fires), then stops every runtime.
async fn stop_runtimes_when_stopping(host: Host, server: ServerHandle, stopping: CancellationToken) {
    tokio::select! {
        () = server.shutting_down() => {}
        () = stopping.cancelled() => {}
    }
    stopping.cancel();
    let running = host.children();
    if running.is_empty() {
        info!("shim stopping: no runtime is running");
        return;
    }
    info!("shim stopping: stopping {} runtime(s) first", running.len());
    for report in host.stop_all(RUNTIME_GRACE).await {
        info!("stopped runtime: {report}");
    }
}

struct Shim {
    host: Host,
    collector: Arc<Collector>,
    server: ServerHandle,
    /// Fires once the shim has begun to stop its runtimes.
    stopping: CancellationToken,
    /// Runs dropped unanswered while the server was shutting down (by the drain deadline).
    cut_off: Arc<AtomicUsize>,
}

impl Shim {
    async fn run(self: Arc<Self>, request: RunRequest) -> Result<RunResult, HandlerError> {
        let id = request.id.clone();
        if self.stopping.is_cancelled() {
            return Err(HandlerError::new(ERR_SHIM_STOPPING, format!("the shim is stopping; run {id} refused")));
        }
        let name = format!("runtime-{id}");
        let spec = Spec::new(sibling("runtime"))
            .name(&name)
            .arg(&id)
            .args(&request.args)
            .rpc(false)
            .readiness(Readiness::Started);
        let child = self.host.spawn(spec).await.map_err(|err| {
            HandlerError::new(
                ERR_RUNTIME_START,
                format!("cannot start the runtime for run {id}: {}", warren_rpc::ErrorChain(&err)),
            )
        })?;
        info!("run {id}: started {name} (pid {})", child.pid());
        // If the caller gives up (cancel, deadline, disconnect) this future is dropped: the
        // guard then stops the runtime so that nothing outlives its run.
        let mut guard = StopOnDrop { child: Some(child.clone()), name: name.clone(), shim: Arc::clone(&self) };
        for line in &request.stdin {
            if let Err(err) = child.write_stdin(format!("{line}\n").as_bytes()).await {
                warn!("run {id}: cannot write to the runtime's stdin: {err}");
                break;
            }
        }
        child.close_stdin().await;
        let exit = tokio::select! {
            exit = child.wait() => exit,
            () = self.stopping.cancelled() => {
                info!("run {id}: the shim is stopping; stopping {name}");
                child.stop(RUNTIME_GRACE).await;
                child.wait().await
            }
        };
        // It has exited: this reaps it, reads its pipes to the end and forgets it.
        let report = child.stop(RUNTIME_GRACE).await;
        guard.disarm();
        let captured = self.collector.take(&name);
        let exit_code = match exit {
            Exit::Code(code) => code,
            Exit::Signal(signal) => signal.exit_code(),
            Exit::OutOfMemory { .. } => warren::Signal::KILL.exit_code(),
            // What the shim reported before the status had a variant of its own.
            Exit::Unknown => -1,
        };
        info!("run {id}: {name} (pid {}) {exit} after {:?}", report.pid, child.uptime());
        Ok(RunResult {
            id,
            pid: report.pid,
            exit_code,
            exit: exit.to_string(),
            stdout: captured.stdout,
            stderr: captured.stderr,
        })
    }
}

/// Stops a runtime whose run was abandoned: its caller went away, or the drain deadline of a
/// stop passed (which the shim counts, since a run in flight should be answered).
struct StopOnDrop {
    child: Option<Child>,
    name: String,
    shim: Arc<Shim>,
}

impl StopOnDrop {
    fn disarm(&mut self) {
        self.child = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else { return };
        if self.shim.server.is_shutting_down() || self.shim.stopping.is_cancelled() {
            self.shim.cut_off.fetch_add(1, Ordering::SeqCst);
            error!("the run of {} was cut off by the stop: stopping it", self.name);
        } else {
            warn!("the run of {} was abandoned by its caller: stopping it", self.name);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (name, collector) = (std::mem::take(&mut self.name), Arc::clone(&self.shim.collector));
                runtime.spawn(async move {
                    let report = child.stop(RUNTIME_GRACE).await;
                    info!("stopped runtime: {report}");
                    collector.take(&name);
                });
            }
            // Only while the runtime itself is going away: no time for politeness.
            Err(_) => child.kill(),
        }
    }
}

/// Lines of every runtime, by child name, until its run takes them; each line is also logged.
#[derive(Debug, Default)]
struct Collector {
    runs: Mutex<HashMap<String, Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Collector {
    fn take(&self, child: &str) -> Captured {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).remove(child).unwrap_or_default()
    }
}

impl LogSink for Collector {
    fn line(&self, line: LogLine) {
        {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            let captured = runs.entry(line.child.to_string()).or_default();
            let lines = match line.stream {
                Stream::Stdout => &mut captured.stdout,
                Stream::Stderr => &mut captured.stderr,
            };
            lines.push(line.to_string());
        }
        TracingSink.line(line);
    }
}
