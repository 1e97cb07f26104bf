//! `warren up`: supervise the plan, serve the control socket, render what happens, and stop
//! everything in reverse dependency order on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT; what a second
//! and third signal, Ctrl-Z and `fg` do is `warren::Shutdown`'s policy. When it ends by itself
//! is `harness`'s business.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::broadcast;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren::supervise::{Supervisor, Update};
use warren::{Host, Shutdown, ShutdownStep};

use crate::cli::UpOptions;
use crate::control_socket::{ControlSocket, OpenError};
use crate::exit;
use crate::harness::{self, Harness};
use crate::output::Output;
use crate::service;
use crate::terminal::Terminal;

/// How long the control server lets calls finish when `up` ends.
const CONTROL_DRAIN: Duration = Duration::from_secs(2);

pub async fn run(plan: Plan, instance_dir: &Path, options: UpOptions, terminal: Terminal) -> anyhow::Result<u8> {
    if let Some(name) = &options.exit_code_from {
        if !plan.programs().iter().any(|p| &p.name == name) {
            let known: Vec<&str> = plan.programs().iter().map(|p| p.name.as_str()).collect();
            anyhow::bail!("--exit-code-from {name}: no program named {name:?} (known: {})", known.join(", "));
        }
    }
    if let Err(err) = crate::fd_limit::raise() {
        eprintln!("warren: cannot raise the open-file limit to its hard limit: {err}");
    }
    let mut harness = Harness::new(options);
    // First of all, so that a Ctrl-C while programs start is an orderly stop, not a crash.
    let mut shutdown = Shutdown::install().context("cannot install signal handlers")?;
    let output = Arc::new(Output::new(plan.programs().iter().map(|p| p.name.as_str()), terminal));
    let supervisor_slot: Arc<OnceLock<Supervisor>> = Arc::new(OnceLock::new());
    let control_path = crate::instance::control_socket(instance_dir);
    let control = {
        let (slot, output) = (Arc::clone(&supervisor_slot), Arc::clone(&output));
        let say = Arc::clone(&output);
        let serve = move || service::control(Arc::clone(&slot), Arc::clone(&output));
        match ControlSocket::open(&control_path, serve, move |text| say.say(text)).await {
            Ok(control) => control,
            Err(OpenError::AlreadyRunning(lock)) => {
                eprintln!(
                    "warren: an instance is already running for {} (it holds {}); use `warren status` or `warren down`",
                    instance_dir.display(),
                    lock.display()
                );
                return Ok(exit::ALREADY_RUNNING);
            }
            Err(err) => return Err(err.into()),
        }
    };
    let host = match Host::builder().log_sink(output.clone()).build() {
        Ok(host) => host,
        Err(err) => {
            // No stale control socket is left for the next `up` or `status` to stumble on.
            control.shutdown(Duration::ZERO).await;
            return Err(anyhow::Error::new(err).context("cannot set up the host"));
        }
    };
    let (notices_tx, mut notices) = broadcast::channel(1024);
    let supervisor = Supervisor::start(plan, host, notices_tx);
    let _ = supervisor_slot.set(supervisor.clone());
    output.say(&format!("control socket {}", control_path.display()));

    // Once a stop is under way, exits are its doing, not reasons to stop.
    let mut stopping = false;
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(Update::Changed { name, state, pid }) => {
                    // Waiting is worth a line only for a program that has something to wait for.
                    let waits = supervisor.has_dependencies(&name);
                    if state != State::Waiting || waits {
                        output.say(&describe(&supervisor, &name, &state, pid));
                    }
                    if stopping {
                        continue;
                    }
                    // Checked once the changes of one decision are all in, so that its last
                    // lines come before the stop.
                    let why = harness.on_change(&supervisor, &name, &state).or_else(|| {
                        let settled = notices.is_empty().then(|| harness::all_ended(&supervisor));
                        settled.flatten().map(str::to_owned)
                    });
                    stop_for(why, &mut stopping, &output, &supervisor);
                }
                Ok(Update::AllReady) => {
                    output.say("all programs are up");
                    // Lets `warren up` run as a systemd Type=notify service.
                    if let Err((path, err)) = warren::sd_notify("READY=1") {
                        output.say(&format!("cannot notify systemd at {path}: {err}"));
                    }
                    // Every program may have ended already (a batch of jobs that all exit 0).
                    let why = harness::all_ended(&supervisor).filter(|_| !stopping && notices.is_empty());
                    stop_for(why.map(str::to_owned), &mut stopping, &output, &supervisor);
                }
                Ok(Update::AllStopped) => break,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    output.say(&format!("({missed} state changes not shown)"));
                    let why = harness::all_ended(&supervisor).filter(|_| !stopping);
                    stop_for(why.map(str::to_owned), &mut stopping, &output, &supervisor);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            step = shutdown.next(|signal| supervisor.signal_all(signal)) => match step {
                ShutdownStep::Stop(signal) => {
                    output.say(&format!("{signal}: stopping all programs, dependents first (again to kill them)"));
                    let _ = warren::sd_notify("STOPPING=1");
                    stopping = true;
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
    let code = harness.exit_code(&supervisor, failed);
    let mut text = String::from(if failed { "stopped; some programs failed" } else { "stopped" });
    if code != if failed { exit::PROGRAM_FAILED } else { exit::OK } {
        text.push_str(&format!("; exit code {code}"));
    }
    let escaped = supervisor.escaped_killed();
    if escaped > 0 {
        text.push_str(&format!("; {escaped} process(es) that had left their program's process group were killed"));
    }
    output.say(&text);
    Ok(code)
}

/// Stops everything, once, if there is a reason to.
fn stop_for(why: Option<String>, stopping: &mut bool, output: &Output, supervisor: &Supervisor) {
    if let Some(why) = why {
        output.say(&why);
        *stopping = true;
        supervisor.shutdown();
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
