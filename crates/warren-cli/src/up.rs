//! `warren up`: supervise the plan, serve the control socket, render what happens, and stop
//! everything in reverse dependency order on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT; what a second
//! and third signal, Ctrl-Z and `fg` do is `warren::Shutdown`'s policy. When it ends by itself
//! is `harness`'s business. Detached (`up -d`, see `detach`), SIGHUP reloads the file instead
//! (`reload`), and a program that fails to start ends the instance.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::broadcast;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren::supervise::{Supervisor, Update};
use warren::{Host, Shutdown, ShutdownStep, Signal};

use crate::cli::UpOptions;
use crate::config::FileSettings;
use crate::control_socket::{ControlSocket, OpenError};
use crate::detach;
use crate::exit;
use crate::harness::{self, Harness};
use crate::logs::store::Store;
use crate::output::Output;
use crate::terminal::Terminal;
use crate::{reload, service, upgrade};

/// How long the control server lets calls finish when `up` ends.
const CONTROL_DRAIN: Duration = Duration::from_secs(2);

/// Where an instance of `up` begins: from its configuration, or from the image before it
/// (an upgrade: the programs run on).
pub enum Origin {
    Fresh(Plan, FileSettings),
    HandedOver(upgrade::Carried),
}

pub async fn run(
    origin: Origin,
    file: Option<PathBuf>,
    instance_dir: &Path,
    options: UpOptions,
    terminal: Terminal,
) -> anyhow::Result<u8> {
    let (names, settings, upgrades): (Vec<String>, FileSettings, u32) = match &origin {
        Origin::Fresh(plan, settings) => {
            (plan.programs().iter().map(|p| p.name.clone()).collect(), settings.clone(), 0)
        }
        Origin::HandedOver(carried) => (carried.programs.clone(), carried.settings.clone(), carried.upgrades),
    };
    if let Some(name) = &options.exit_code_from {
        if !names.contains(name) {
            anyhow::bail!("--exit-code-from {name}: no program named {name:?} (known: {})", names.join(", "));
        }
    }
    if let Err(err) = crate::fd_limit::raise() {
        eprintln!("warren: cannot raise the open-file limit to its hard limit: {err}");
    }
    let detached = options.detached_child;
    let mut harness = Harness::new(options);
    // First of all, so that a Ctrl-C while programs start is an orderly stop, not a crash.
    let mut shutdown = Shutdown::install().context("cannot install signal handlers")?;
    shutdown = shutdown.upgrade_on(Signal::USR2).context("cannot install signal handlers")?;
    if detached {
        shutdown = shutdown.reload_on(Signal::HUP);
    }
    let fresh = matches!(origin, Origin::Fresh(..));
    let mut report = (detached && fresh).then(detach::Report::default);
    let mut failed_to_start = false;
    let file: Option<Arc<Path>> = file.map(Arc::from);
    let output = Arc::new(Output::new(names.iter().map(String::as_str), terminal));
    let http_listen = settings.http;
    let pid_namespace = settings.pid_namespace;
    let logs_dir = settings.logs_dir.clone().unwrap_or_else(|| crate::instance::state_dir(instance_dir).join("logs"));
    let limits = names.iter().map(|name| (name.clone(), settings.log_limits.get(name).copied().unwrap_or_default()));
    let say = Arc::clone(&output);
    let logs = Arc::new(Store::open(&logs_dir, limits, output.clone(), Arc::new(move |text: &str| say.say(text))));
    if let Origin::HandedOver(carried) = &origin {
        logs.carry_on_from(&carried.log_generations);
    }
    let flusher = logs.spawn_flusher();
    if detached {
        output.own_lines_only();
    }
    let supervisor_slot: Arc<OnceLock<Supervisor>> = Arc::new(OnceLock::new());
    let call_counts = Arc::new(crate::call_counts::CallCounts::default());
    let control_path = crate::instance::control_socket(instance_dir);
    let (upgrade_tx, mut upgrade_requests) = tokio::sync::mpsc::unbounded_channel();
    let serve = {
        let (slot, logs) = (Arc::clone(&supervisor_slot), Arc::clone(&logs));
        let file = file.clone();
        let call_counts = Arc::clone(&call_counts);
        move || {
            let upgrades = (upgrade_tx.clone(), upgrades);
            service::control(Arc::clone(&slot), Arc::clone(&logs), file.clone(), Arc::clone(&call_counts), upgrades)
        }
    };
    let builder = Host::builder().log_sink(logs.clone()).pid_namespace(pid_namespace);
    let (notices_tx, mut notices) = broadcast::channel(1024);
    let started = match origin {
        Origin::Fresh(plan, _) => {
            let control = match ControlSocket::open(&control_path, serve, say_with(&output)).await {
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
            };
            // A killed `up` cannot remove its control socket; its watchdog can.
            let host = match builder.remove_on_death(&control_path).build() {
                Ok(host) => host,
                Err(err) => {
                    // No stale control socket is left for the next `up` or `status` to stumble on.
                    control.shutdown(Duration::ZERO).await;
                    return Err(anyhow::Error::new(err).context("cannot set up the host"));
                }
            };
            let http = match http_listen {
                Some(listen) => {
                    let served =
                        crate::http::serve(listen, Arc::clone(&supervisor_slot), Arc::clone(&logs), call_counts, None);
                    match served.await {
                        Ok(endpoint) => {
                            output
                                .say(&format!("HTTP endpoint on http://{listen} (/healthz /readyz /metrics /status)"));
                            Some(endpoint)
                        }
                        Err(err) => {
                            control.shutdown(Duration::ZERO).await;
                            return Err(anyhow::Error::new(err));
                        }
                    }
                }
                None => None,
            };
            crate::limits::warn_at_start(&host, &plan, &output);
            let supervisor = Supervisor::start(plan, host, notices_tx);
            Started { control, http, supervisor }
        }
        Origin::HandedOver(_) => {
            let http = http_listen.map(|listen| (listen, Arc::clone(&supervisor_slot), Arc::clone(&logs), call_counts));
            resume(builder, notices_tx, &control_path, serve, say_with(&output), http, &supervisor_slot).await?
        }
    };
    let Started { control, http, supervisor } = started;
    // Every child of this process is started by warren, so orphans may be reaped (PID 1 in a
    // container, or any subreaper).
    let reaper = warren::reaper::reap_orphans()
        .inspect_err(|err| output.say(&format!("orphans will not be reaped: cannot watch SIGCHLD: {err}")))
        .ok();
    let _ = supervisor_slot.set(supervisor.clone());
    if fresh {
        output.say(&format!("control socket {}; logs in {}", control_path.display(), logs_dir.display()));
    } else {
        let running = supervisor.status().iter().filter(|s| s.pid.is_some()).count();
        let carried = match running {
            1 => "1 program carried on, its pid unchanged".to_owned(),
            n => format!("{n} programs carried on, their pids unchanged"),
        };
        output.say(&format!(
            "upgraded in place: warren {} (upgrade {upgrades}, pid {}); {carried}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ));
    }
    let upgrade = Upgrade {
        supervisor: &supervisor,
        control: &control,
        http: http.as_ref(),
        logs: &logs,
        file: file.as_deref(),
        settings: &settings,
        upgrades,
    };

    // Once a stop is under way, exits are its doing, not reasons to stop.
    let mut stopping = false;
    // A stop signal that interrupted an upgrade, to be acted on as if it came now.
    let mut interrupted: Option<ShutdownStep> = None;
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(Update::Changed { name, state, pid, reason }) => {
                    // Waiting is worth a line only for a program that has something to wait for.
                    let waits = supervisor.has_dependencies(&name);
                    let line = describe(&supervisor, &name, &state, pid, reason.as_deref());
                    if state != State::Waiting || waits || reason.is_some() {
                        output.say(&line);
                    }
                    if stopping {
                        continue;
                    }
                    if let Some(report) = report.as_ref().filter(|r| r.waiting() && did_not_start(&state)) {
                        report.failed(&line);
                        failed_to_start = true;
                        stop_for(Some("a program did not come up: stopping everything".into()), &mut stopping, &output, &supervisor);
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
                    let plan = supervisor.plan();
                    let manual = plan.manual();
                    match manual.as_slice() {
                        [] => output.say("all programs are up"),
                        names => output.say(&format!(
                            "all programs are up; not started (autostart = false): {} (`warren start NAME`)",
                            names.join(", ")
                        )),
                    }
                    if let Some(report) = &mut report {
                        report.up(instance_dir);
                    }
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
            Some((to, reply)) = upgrade_requests.recv() => {
                output.say("upgrading warren in place, as asked (the programs run on)");
                let why = upgrade.attempt(stopping, to, &mut shutdown, &mut interrupted, &output).await;
                let _ = reply.send(why);
            }
            step = next_step(&mut shutdown, &mut interrupted, &supervisor) => match step {
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
                ShutdownStep::Upgrade(signal) => {
                    output.say(&format!("{signal}: upgrading warren in place (the programs run on)"));
                    upgrade.attempt(stopping, None, &mut shutdown, &mut interrupted, &output).await;
                }
                ShutdownStep::Reload(signal) => {
                    output.say(&format!("{signal}: reloading the configuration file"));
                    // Apart, so that updates go on being read while the changes are made.
                    let (supervisor, output, file) = (supervisor.clone(), Arc::clone(&output), file.clone());
                    let logs = Arc::clone(&logs);
                    tokio::spawn(async move {
                        match reload::apply(&supervisor, &logs, file.as_deref(), false).await {
                            Ok(answer) => reload::describe(&answer).iter().for_each(|line| output.say(line)),
                            Err(err) => output.say(&format!("not reloaded, running as before: {}", err.message())),
                        }
                    });
                }
            }
        }
    }
    let failed = supervisor.finished().await;
    if let Some(reaper) = reaper {
        reaper.abort();
        warren::reaper::reap_now();
    }
    flusher.abort();
    logs.close();
    control.shutdown(CONTROL_DRAIN).await;
    if let Some(http) = http {
        http.shutdown().await;
    }
    let mut code = harness.exit_code(&supervisor, failed);
    if failed_to_start && code == exit::OK {
        code = exit::PROGRAM_FAILED;
    }
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

/// What `up` has running once it has begun, whichever way it began.
struct Started {
    control: ControlSocket,
    http: Option<crate::http::Endpoint>,
    supervisor: Supervisor,
}

fn say_with(output: &Arc<Output>) -> impl Fn(&str) + Send + Sync + 'static {
    let output = Arc::clone(output);
    move |text| output.say(text)
}

type HttpParts = (std::net::SocketAddr, Arc<OnceLock<Supervisor>>, Arc<Store>, Arc<crate::call_counts::CallCounts>);

/// Takes over what the image before this one handed over: the supervisor with its host and
/// programs, then the control socket and HTTP endpoint on the sockets it held.
async fn resume(
    builder: warren::HostBuilder,
    notices: broadcast::Sender<Update>,
    control_path: &Path,
    serve: impl Fn() -> warren_rpc::Server + Send + Sync + 'static,
    say: impl Fn(&str) + Send + Sync + 'static,
    http: Option<HttpParts>,
    supervisor_slot: &OnceLock<Supervisor>,
) -> anyhow::Result<Started> {
    let (supervisor, mut baggage) = Supervisor::resume(builder, notices)
        .await
        .map_err(|why| anyhow::anyhow!("cannot take over from the image before: {why}"))?;
    // Before the control socket is served again: connections waiting in its backlog are
    // answered at once, not told that warren is starting.
    let _ = supervisor_slot.set(supervisor.clone());
    let missing =
        |name: &str| anyhow::anyhow!("cannot take over from the image before: its {name} descriptor did not cross");
    let listener = baggage.take_fd(upgrade::CONTROL_FD).ok_or_else(|| missing(upgrade::CONTROL_FD))?;
    let lock = baggage.take_fd(upgrade::CONTROL_LOCK_FD).ok_or_else(|| missing(upgrade::CONTROL_LOCK_FD))?;
    let control = ControlSocket::adopt(control_path, listener, lock, serve, say).await?;
    let http = match http {
        Some((listen, slot, logs, counts)) => {
            let fd = baggage.take_fd(upgrade::HTTP_FD);
            Some(crate::http::serve(listen, slot, logs, counts, fd).await?)
        }
        None => None,
    };
    Ok(Started { control, http, supervisor })
}

/// `up`'s part of an upgrade: what it carries, and the hand-over itself.
struct Upgrade<'a> {
    supervisor: &'a Supervisor,
    control: &'a ControlSocket,
    http: Option<&'a crate::http::Endpoint>,
    logs: &'a Store,
    file: Option<&'a Path>,
    settings: &'a FileSettings,
    upgrades: u32,
}

/// The next signal step: one that interrupted an upgrade first.
async fn next_step(
    shutdown: &mut Shutdown,
    interrupted: &mut Option<ShutdownStep>,
    supervisor: &Supervisor,
) -> ShutdownStep {
    match interrupted.take() {
        Some(step) => step,
        None => shutdown.next(|signal| supervisor.signal_all(signal)).await,
    }
}

impl Upgrade<'_> {
    /// Upgrades unless a stop signal comes first (kept in `interrupted`, to be acted on next);
    /// returns why it did not happen, which it has said. Returns only if it did not happen.
    async fn attempt(
        &self,
        stopping: bool,
        to: Option<PathBuf>,
        shutdown: &mut Shutdown,
        interrupted: &mut Option<ShutdownStep>,
        output: &Output,
    ) -> String {
        let why = match self.run_unless_stopped(stopping, to, shutdown).await {
            Ok(why) => why,
            Err(stop) => {
                *interrupted = Some(stop);
                "a stop signal came first".to_owned()
            }
        };
        output.say(&format!("not upgraded, running as before: {why}"));
        why
    }

    /// [`run`](Self::run), unless a stop signal comes before the exec: the hand-over is then
    /// undone (its future dropped, which releases the hold) and the stop returned, so that it is
    /// not lost with this image. Other signals meanwhile are let go.
    async fn run_unless_stopped(
        &self,
        stopping: bool,
        to: Option<PathBuf>,
        shutdown: &mut Shutdown,
    ) -> Result<String, ShutdownStep> {
        let upgrading = self.run(stopping, to);
        tokio::pin!(upgrading);
        loop {
            tokio::select! {
                why = &mut upgrading => return Ok(why),
                step = shutdown.next(|signal| self.supervisor.signal_all(signal)) => {
                    if let ShutdownStep::Stop(_) | ShutdownStep::Killed(_) = step {
                        return Err(step);
                    }
                }
            }
        }
    }

    /// Hands over to a new image; returns only if that did not happen, with why.
    async fn run(&self, stopping: bool, to: Option<PathBuf>) -> String {
        if stopping {
            return "warren is stopping".to_owned();
        }
        let carried = upgrade::Carried {
            settings: self.settings.clone(),
            programs: self.supervisor.plan().programs().iter().map(|p| p.name.clone()).collect(),
            file: self.file.map(Path::to_path_buf),
            upgrades: self.upgrades + 1,
            log_generations: self.logs.generations(),
        };
        upgrade::hand_over(self.supervisor, self.control, self.http, carried, to).await
    }
}

/// Stops everything, once, if there is a reason to.
fn stop_for(why: Option<String>, stopping: &mut bool, output: &Output, supervisor: &Supervisor) {
    if let Some(why) = why {
        output.say(&why);
        *stopping = true;
        supervisor.shutdown();
    }
}

/// A detached instance's start went wrong: the program failed, or ended in failure (and may
/// be waiting to restart).
fn did_not_start(state: &State) -> bool {
    match state {
        State::Failed { .. } | State::Backoff { .. } => true,
        State::Exited { exit } => !exit.success(),
        _ => false,
    }
}

fn describe(supervisor: &Supervisor, name: &str, state: &State, pid: Option<u32>, reason: Option<&str>) -> String {
    let pid = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
    // "api: exited with code 1; restarting in 500 ms", "web: stopping: health check failed …".
    if let Some(reason) = reason {
        return match state {
            State::Backoff { .. } => format!("{name}: {reason}; {state}"),
            // News about a program that stays ready (a rolling restart's steps): the news alone.
            State::Ready => format!("{name}: {reason}"),
            _ => format!("{name}: {}: {reason}", state.as_change(true)),
        };
    }
    match state {
        State::Running => format!("{name}: started{pid}"),
        State::Ready => {
            // Said once, where a person watches: `transport = "shm"` that took hold (one that
            // did not is a warning of its own).
            let shm = supervisor.program_status(name).and_then(|s| s.transport) == Some(warren_rpc::Transport::Shm);
            let rides = if shm { ", RPC over shared memory" } else { "" };
            format!("{name}: ready{pid}{rides}")
        }
        State::Waiting => format!("{name}: waiting for its dependencies"),
        State::Starting => format!("{name}: starting"),
        State::Backoff { .. } => {
            let last = supervisor.program_status(name).and_then(|s| s.last_exit);
            match last {
                Some(exit) => format!("{name}: {exit}; {state}"),
                None => format!("{name}: {state}"),
            }
        }
        other => format!("{name}: {other}"),
    }
}
