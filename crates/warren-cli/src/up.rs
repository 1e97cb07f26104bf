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
use warren_rpc::Endpoint;

use crate::config::LogSettings;
use crate::exit;
use crate::logs::store::Store;
use crate::output::Output;
use crate::service;

/// How long the control server lets calls finish when `up` ends.
const CONTROL_DRAIN: Duration = Duration::from_secs(2);

pub async fn run(plan: Plan, log_settings: LogSettings, instance_dir: &Path) -> anyhow::Result<u8> {
    // First of all, so that a Ctrl-C while programs start is an orderly stop, not a crash.
    let mut shutdown = Shutdown::install().context("cannot install signal handlers")?;
    let output = Arc::new(Output::new(plan.programs().iter().map(|p| p.name.as_str())));
    let logs_dir = log_settings.dir.unwrap_or_else(|| crate::instance::state_dir(instance_dir).join("logs"));
    let limits =
        plan.programs().iter().map(|p| (p.name.clone(), log_settings.limits.get(&p.name).copied().unwrap_or_default()));
    let say = Arc::clone(&output);
    let logs = Arc::new(Store::open(&logs_dir, limits, output.clone(), Arc::new(move |text: &str| say.say(text))));
    let flusher = logs.spawn_flusher();
    let supervisor_slot: Arc<OnceLock<Supervisor>> = Arc::new(OnceLock::new());
    let control_path = crate::instance::control_socket(instance_dir);
    let control = match service::control(Arc::clone(&supervisor_slot), Arc::clone(&logs))
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
    let host = Host::builder().log_sink(logs.clone()).build().context("cannot set up the host")?;
    let (notices_tx, mut notices) = broadcast::channel(1024);
    let supervisor = Supervisor::start(plan, host, notices_tx);
    let _ = supervisor_slot.set(supervisor.clone());
    output.say(&format!("control socket {}; logs in {}", control_path.display(), logs_dir.display()));

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
    flusher.abort();
    logs.close();
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
