//! The top tier, in the role of dockerd: starts the `shim` plugin with a [`warren::Host`], asks
//! it over RPC to run the `runtime` program a few times (`Shim.Run`), logs what each run printed
//! and how it ended, then waits for Ctrl-C (SIGINT) or SIGTERM and stops the shim, which stops
//! its runtimes first. A second Ctrl-C kills every child's process group, a third exits at once.
//!
//! ```text
//! daemon [--runs N] [--hang] [--exit-after-runs]
//!   --runs N            how many runs to make (default 3); even ones exit with code 3
//!   --hang              then start one more run that blocks until it is stopped
//!   --exit-after-runs   stop by itself after the runs instead of waiting for a signal
//! ```
//!
//! Exits 0 if every child stopped cleanly and no run failed (a run not made because a stop began
//! is not a failure; a run in flight when it began is answered by the shim before it exits).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use warren::{Host, Spec, StopReport};
use warren_examples::{ERR_SHIM_STOPPING, RunRequest, RunResult, sibling};
use warren_rpc::{CallError, Client, LostReason};

/// The shim gets a Shutdown call, SIGTERM half way through this, SIGKILL at the end.
const GRACE: Duration = Duration::from_secs(10);
/// Bound on one ordinary run.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// The id of the run started by `--hang`.
const HANG_ID: &str = "run-hang";

/// The command line (`--help` prints it).
#[derive(Debug, Parser)]
#[command(name = "daemon", about = "The top tier: starts the shim, asks it for runs, stops it on Ctrl-C")]
struct Options {
    /// How many runs to make; even ones exit with code 3.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Then start one more run that blocks until it is stopped.
    #[arg(long)]
    hang: bool,
    /// Stop by itself after the runs instead of waiting for a signal.
    #[arg(long)]
    exit_after_runs: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    // A usage error exits 2, as before.
    let options = Options::parse();
    warren_examples::init_logging();
    // `run` owns the host: when it returns, the runtime directory is removed and the watchdog
    // reaped, so this really is the last word.
    match run(options).await {
        Ok(true) => {
            info!("daemon: all children stopped cleanly; exiting 0");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            error!("daemon: not everything went cleanly; exiting 1");
            ExitCode::FAILURE
        }
        Err(err) => {
            error!("daemon: {err}; exiting 1");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the runs left to check once everything is stopped.
#[derive(Debug, Default)]
struct Runs {
    failed: u32,
    /// The runs ended early because the shim was stopping (or gone).
    cut_short: bool,
    hang: Option<tokio::task::JoinHandle<bool>>,
}

async fn run(options: Options) -> Result<bool, BoxError> {
    // Signals are caught from the start: a Ctrl-C while the shim starts is kept, not fatal.
    let host = Host::builder().catch_signals().build()?;
    info!(
        "daemon pid={} runtime_dir={} watchdog_pid={}",
        std::process::id(),
        host.runtime_dir().display(),
        host.watchdog_pid().unwrap_or(0)
    );
    let exit_after_runs = options.exit_after_runs;
    // Polled from the start, so that Ctrl-C is acted on while the runs go on too.
    let stop = host.stop_on_signal(GRACE);
    tokio::pin!(stop);
    // The runs go on in a task of their own, so that a stop never drops a call half way: the
    // shim answers the run in flight before it exits, and the task takes that answer.
    let stopped = CancellationToken::new();
    let mut work = tokio::spawn(start_and_run(host.clone(), options, stopped.clone()));
    let (mut reports, runs) = tokio::select! {
        reports = &mut stop => {
            stopped.cancel();
            let reports = reports?;
            let runs = match tokio::time::timeout(Duration::from_secs(5), &mut work).await {
                Ok(runs) => runs,
                Err(_) => {
                    work.abort();
                    error!("the runs did not end although the shim has stopped");
                    Ok(Ok(Runs { failed: 1, ..Runs::default() }))
                }
            };
            (reports, runs)
        }
        runs = &mut work => {
            let cut_short = matches!(&runs, Ok(Ok(runs)) if runs.cut_short);
            let reports = if cut_short {
                // Most likely Ctrl-C during the runs, and the stop it began is under way: let it
                // finish. If no stop was asked for, the shim went away by itself.
                match tokio::time::timeout(GRACE + Duration::from_secs(5), &mut stop).await {
                    Ok(reports) => reports?,
                    Err(_) => {
                        error!("the shim went away by itself");
                        host.stop_all(GRACE).await
                    }
                }
            } else if exit_after_runs || !matches!(&runs, Ok(Ok(_))) {
                if exit_after_runs {
                    info!("--exit-after-runs: stopping without waiting for a signal");
                }
                host.stop_all(GRACE).await
            } else {
                info!("daemon ready: Ctrl-C (SIGINT) or SIGTERM stops everything");
                stop.await?
            };
            (reports, runs)
        }
    };
    // A shim that was still starting when the signal came is stopped here.
    reports.extend(host.stop_all(GRACE).await);
    let mut clean = true;
    for report in &reports {
        clean &= log_report(report);
    }
    match runs {
        Ok(Ok(runs)) => {
            clean &= runs.failed == 0;
            if let Some(hang) = runs.hang {
                // The shim answers it (or its connection ends) before the shim exits.
                match tokio::time::timeout(Duration::from_secs(5), hang).await {
                    Ok(Ok(ok)) => clean &= ok,
                    Ok(Err(err)) => {
                        error!("run {HANG_ID}: its task failed: {err}");
                        clean = false;
                    }
                    Err(_) => {
                        error!("run {HANG_ID}: no answer although the shim has stopped");
                        clean = false;
                    }
                }
            }
        }
        Ok(Err(err)) => {
            error!("{}", warren_rpc::ErrorChain(&*err));
            clean = false;
        }
        Err(err) => {
            error!("the runs task failed: {err}");
            clean = false;
        }
    }
    // The shim removes its own socket as it stops (the reports say if warren had to); none may
    // be left. (warren's own files here go with the directory when the host is dropped.)
    let dir = host.runtime_dir();
    let sockets: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sock"))
                .collect()
        })
        .unwrap_or_default();
    if sockets.is_empty() {
        info!("runtime dir {}: no socket left behind", dir.display());
    } else {
        error!("sockets left behind in {}: {sockets:?}", dir.display());
        clean = false;
    }
    Ok(clean)
}

/// Starts the shim and makes the runs, until `stopped` fires or the shim is stopping; with
/// `--hang`, leaves one more run in flight.
async fn start_and_run(host: Host, options: Options, stopped: CancellationToken) -> Result<Runs, BoxError> {
    let cut_short = Runs { cut_short: true, ..Runs::default() };
    if stopped.is_cancelled() {
        return Ok(cut_short);
    }
    let shim = host.spawn(Spec::new(sibling("shim")).name("shim")).await?;
    info!("shim is ready (pid {}), serving on {}", shim.pid(), shim.client().endpoint());
    let client = shim.client().clone();
    let mut failed = 0;
    for n in 1..=options.runs {
        let id = format!("run-{n}");
        if stopped.is_cancelled() || client.is_closed() {
            warn!("the shim is stopping: {id} and later runs are not made");
            return Ok(Runs { failed, ..cut_short });
        }
        let code = if n % 2 == 0 { 3 } else { 0 };
        let request = RunRequest {
            id: id.clone(),
            args: vec!["cat".into(), format!("exit={code}")],
            stdin: vec![format!("hello from the daemon to {id}")],
        };
        info!("run {id}: Shim.Run args={:?}", request.args);
        match client.call_timeout::<_, RunResult>("Shim.Run", &request, RUN_TIMEOUT).await {
            Ok(result) => log_result(&result),
            Err(err) => failed += u32::from(!not_run_because_stopping(&id, &err)),
        }
    }
    if options.hang {
        if stopped.is_cancelled() || client.is_closed() {
            warn!("the shim is stopping: {HANG_ID} is not made");
            return Ok(Runs { failed, ..cut_short });
        }
        let hang = tokio::spawn(hang_run(client));
        return Ok(Runs { failed, cut_short: false, hang: Some(hang) });
    }
    Ok(Runs { failed, ..Runs::default() })
}

/// Logs a failed run; true if it failed only because the shim is stopping: refused
/// (SHUTTING_DOWN, or the shim's own refusal), or sent just as the shim said goodbye and never
/// read (the connection then ends with "peer shut down"). Those are no failure of the run: a
/// run the shim had started is answered before it exits, and if the stop cut one off instead,
/// the shim exits 1, which its stop report shows.
fn not_run_because_stopping(id: &str, err: &CallError) -> bool {
    let not_run = matches!(
        err,
        CallError::ShuttingDown { .. }
            | CallError::Application { code: ERR_SHIM_STOPPING, .. }
            | CallError::ConnectionLost { reason: LostReason::PeerShutDown, .. }
    );
    if not_run {
        warn!("run {id}: not answered, the shim is stopping: {err}");
    } else {
        error!("run {id}: {err}");
    }
    not_run
}

/// A run that lasts until the runtime is stopped; true unless it failed.
async fn hang_run(client: Client) -> bool {
    let request = RunRequest { id: HANG_ID.into(), args: vec!["hang".into()], stdin: Vec::new() };
    info!("run {HANG_ID}: Shim.Run args={:?} (runs until it is stopped)", request.args);
    match client.call::<_, RunResult>("Shim.Run", &request).await {
        Ok(result) => {
            log_result(&result);
            true
        }
        Err(err) => not_run_because_stopping(HANG_ID, &err),
    }
}

fn log_result(result: &RunResult) {
    let id = &result.id;
    info!("run {id}: runtime pid {} {} (exit_code={})", result.pid, result.exit, result.exit_code);
    for line in &result.stdout {
        info!("run {id}: stdout| {line}");
    }
    for line in &result.stderr {
        info!("run {id}: stderr| {line}");
    }
}

/// Logs how a child stopped; true if cleanly.
fn log_report(report: &StopReport) -> bool {
    let steps: Vec<String> = report.steps.iter().map(|(at, step)| format!("{step:?} at {at:?}")).collect();
    let clean = report.outcome.is_clean() && report.leaks.is_empty() && !report.removed_socket;
    if clean {
        info!("stop report: {report}; steps: {}", steps.join(", "));
    } else {
        error!(
            "stop report: {report}; steps: {}; leaks: {:?}; socket removed by warren: {}",
            steps.join(", "),
            report.leaks,
            report.removed_socket
        );
    }
    clean
}
