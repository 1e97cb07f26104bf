//! The life of one started instance of a program, in its own task: spawn, readiness, health,
//! socket loss, and the one stop of its child — asked for by the runner, or after the child
//! ended by itself (to reap it, drain its pipes and remove what it left).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::channel::{Input, Report};
use super::machine::{Event, StartError};
use super::plan::{self, Invocation, Program, ReadyCheck};
use super::probe;
use crate::child::Child;
use crate::host::Host;
use crate::listen::Sockets;
use crate::spec::{Readiness, Spec};

pub(super) struct Instance {
    pub(super) name: String,
    pub(super) instance: u64,
    pub(super) inputs: mpsc::UnboundedSender<Input>,
    pub(super) host: Host,
    /// Where its `listen` sockets come from (bound once, kept across instances).
    pub(super) sockets: Arc<Sockets>,
    /// Its runtime files' name when it runs beside another instance (see [`Spec::slot`]).
    pub(super) slot: Option<String>,
}

impl Instance {
    fn report(&self, report: Report) {
        let _ = self.inputs.send(Input::Instance { name: self.name.clone(), instance: self.instance, report });
    }

    fn send(&self, event: Event) {
        self.report(Report::Event(event));
    }

    pub(super) async fn run(self, program: Program, stop: oneshot::Receiver<()>) {
        let listen = match self.sockets.get(&program.listen, program.cwd.as_deref()) {
            Ok(listen) => listen,
            Err(why) => {
                self.send(Event::StartFailed { name: self.name.clone(), error: StartError::Listen(why) });
                return;
            }
        };
        let mut spec = spec_for(&program).listen(listen);
        if let Some(slot) = &self.slot {
            spec = spec.slot(slot);
        }
        let child = match self.host.spawn(spec).await {
            Ok(child) => child,
            Err(err) => {
                let error = StartError::Spawn(Arc::new(err));
                self.send(Event::StartFailed { name: self.name.clone(), error });
                return;
            }
        };
        self.report(Report::Spawned(child.clone()));
        self.supervise(&program, &child, stop, false).await;
    }

    /// Carries on with a ready child that an earlier image started and handed over.
    pub(super) async fn adopt(self, program: Program, child: Child, stop: oneshot::Receiver<()>) {
        self.supervise(&program, &child, stop, true).await;
    }

    async fn supervise(&self, program: &Program, child: &Child, stop: oneshot::Receiver<()>, ready: bool) {
        // The runner dropping its end means no stop will be asked for: only the exit ends this.
        let stop_requested = async {
            if stop.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = self.follow(program, child, ready) => {}
            () = stop_requested => {}
        }
        // The one stop of this child: polite, then forceful at the grace; if it has exited
        // already, this reaps it, drains its pipes and removes what it left. Only then is the
        // exit reported: the next instance may start as soon as the machine hears of it.
        child.stop(program.grace).await;
        let exit = child.wait().await;
        self.send(Event::Exited { name: self.name.clone(), exit });
    }

    /// Reports readiness (unless it is `ready` already), health and a lost socket until the
    /// child exits.
    async fn follow(&self, program: &Program, child: &Child, ready: bool) {
        let exited = !ready
            && tokio::select! {
                _ = child.wait() => true,
                verdict = probe::wait_ready(program) => {
                    match verdict {
                        Ok(()) => self.send(Event::Ready { name: self.name.clone() }),
                        Err(error) => {
                            self.send(Event::StartFailed { name: self.name.clone(), error });
                            child.kill();
                        }
                    }
                    false
                }
            };
        if !exited {
            tokio::select! {
                _ = child.wait() => {}
                () = self.check_health(program, child) => {}
                () = self.follow_socket(program, child) => {}
                () = self.watch_keepalives(program, child) => {}
            }
        }
    }

    /// Acts on the child's socket file going away, as the program says (the host has logged
    /// it already); never returns, the caller selects on the exit.
    async fn follow_socket(&self, program: &Program, child: &Child) {
        let lost = child.socket_lost().await;
        if program.on_socket_lost == plan::OnSocketLost::Restart {
            info!(program = %self.name, "{lost}: restarting it so that it binds its socket again");
            self.send(Event::SocketLost { name: self.name.clone() });
        }
        std::future::pending().await
    }

    /// Reports a missed `WATCHDOG=1` (or a `WATCHDOG=trigger`) once; never returns, the caller
    /// selects on the exit. The first period starts at ready, as systemd's does.
    async fn watch_keepalives(&self, program: &Program, child: &Child) {
        let Some(period) = program.watchdog else { return std::future::pending().await };
        let mut notices = child.notices();
        let mut pings = notices.borrow_and_update().watchdog_pings;
        let mut deadline = tokio::time::Instant::now() + period;
        let reason = loop {
            match tokio::time::timeout_at(deadline, notices.changed()).await {
                Err(_) => break format!("no WATCHDOG=1 within {}", super::events::humanize(period)),
                // The child's end is gone with it: its exit ends this.
                Ok(Err(_)) => return std::future::pending().await,
                Ok(Ok(())) => {
                    let state = notices.borrow_and_update().clone();
                    if state.watchdog_triggered {
                        break "it sent WATCHDOG=trigger".to_owned();
                    }
                    if state.watchdog_pings != pings {
                        pings = state.watchdog_pings;
                        deadline = tokio::time::Instant::now() + period;
                    }
                }
            }
        };
        // No line of its own here: the stop it causes says why.
        self.send(Event::WatchdogExpired { name: self.name.clone(), reason });
        std::future::pending().await
    }

    /// Runs the health check; never returns, the caller selects on the exit.
    async fn check_health(&self, program: &Program, child: &Child) {
        let Some(health) = &program.health else { return std::future::pending().await };
        let mut ticks = tokio::time::interval(health.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut failures = 0;
        loop {
            ticks.tick().await;
            let name = self.name.clone();
            match probe::health(&health.check, health.timeout, child, program).await {
                Ok(()) => {
                    failures = 0;
                    self.send(Event::HealthPassed { name });
                }
                Err(reason) => {
                    // Counted here for the log line; the machine counts for itself.
                    failures += 1;
                    warn!("{}: health check failed ({failures} of {}): {reason}", self.name, health.failures);
                    self.send(Event::HealthFailed { name, reason });
                }
            }
        }
    }
}

/// What warren's host needs to start `program`.
fn spec_for(program: &Program) -> Spec {
    let spec = match &program.command {
        Invocation::Exec { program, args } => Spec::new(program).args(args),
        Invocation::Shell(line) => Spec::new("/bin/sh").args(["-c", line.as_str()]),
    };
    let mut spec = spec
        .name(&program.name)
        .rpc(program.rpc)
        .protocol(program.protocol)
        .transport(program.transport)
        .ready_timeout(program.ready_timeout)
        .stop_signal(program.stop_signal)
        .readiness(match &program.readiness {
            ReadyCheck::Notify => Readiness::Notify,
            ReadyCheck::LogLine(pattern) => Readiness::LogLine(pattern.clone()),
            _ => Readiness::Started,
        });
    if program.clear_env {
        spec = spec.clear_env();
    }
    for (key, value) in &program.env {
        spec = spec.env(key, value);
    }
    if let Some(dir) = &program.cwd {
        spec = spec.cwd(dir);
    }
    if let Some(socket) = &program.socket {
        spec = spec.socket(socket);
    }
    if let Some(period) = program.watchdog {
        spec = spec.env("WATCHDOG_USEC", period.as_micros().to_string());
    }
    if let Some(identity) = &program.identity {
        spec = spec.identity(identity.clone());
    }
    spec.limits(program.limits)
}
