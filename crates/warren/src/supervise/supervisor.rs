//! The handle users hold: control requests go to the runner over its channel; what it last
//! published (every program's status and running child) is read without asking it.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use warren_rpc::Client;

use super::channel::{Input, Snapshot, Update};
use super::machine::{Change, Event, HealthStatus, State};
use super::plan::Plan;
use super::reload::PlanDiff;
use super::runner::Runner;
use crate::child::Child;
use crate::exit::Exit;
use crate::host::Host;

/// One program as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramStatus {
    /// The program.
    pub name: String,
    /// Where it is in its life.
    pub state: State,
    /// The pid of its process, while one runs for it.
    pub pid: Option<u32>,
    /// How long it has been in its current state.
    pub for_: Duration,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How its last process ended.
    pub last_exit: Option<Exit>,
    /// How its last instance ended, in words: its exit, or why it never got going.
    pub last_end: Option<String>,
    /// Its socket file went away while it runs (see [`Child::socket_lost`]); shown until it
    /// is restarted, which `on_socket_lost = restart` does at once.
    pub socket_lost: Option<crate::SocketLost>,
    /// Its health check's verdict; `None` without a check (or before the first, while it is
    /// not ready).
    pub health: Option<HealthStatus>,
    /// Health checks failed since its current instance started.
    pub checks_failed: u64,
    /// Why it was last restarted: "health check failed 3 times: no answer in 2s", an exit.
    pub last_restart: Option<String>,
    /// Its last state changes, oldest first.
    pub history: Vec<Change>,
    /// Where it serves RPC, while it runs.
    pub endpoint: Option<String>,
    /// How warren's RPC connection to it travels ([`Client::transport`]: the socket, or shared
    /// memory), while it runs and is connected.
    pub transport: Option<warren_rpc::Transport>,
    /// The last `STATUS=` it sent on its notify socket, while it runs.
    pub notify_status: Option<String>,
}

/// A control request named a program the plan does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no program named {name:?} (known: {known})")]
pub struct UnknownProgram {
    /// The name asked for.
    pub name: String,
    /// The programs of the plan, comma-separated.
    pub known: String,
}

/// A running supervisor; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inputs: mpsc::UnboundedSender<Input>,
    snapshot: watch::Receiver<Snapshot>,
    updates: broadcast::Sender<Update>,
    finished: watch::Receiver<Option<bool>>,
    /// The plan asked for last: replaced by [`Supervisor::reload`], shared by every clone.
    plan: Arc<RwLock<Arc<Plan>>>,
    host: Host,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.plan().programs().iter().map(|p| p.name.clone()).collect();
        f.debug_struct("Supervisor").field("programs", &names).finish()
    }
}

impl Supervisor {
    /// Starts supervising `plan` with `host`'s processes. Subscribe to updates before anything
    /// can happen by passing `updates` (a sender from `broadcast::channel`).
    pub fn start(plan: Plan, host: Host, updates: broadcast::Sender<Update>) -> Supervisor {
        let (inputs, queue) = mpsc::unbounded_channel();
        let (snapshot_tx, snapshot) = watch::channel(Snapshot::default());
        let (finished_tx, finished) = watch::channel(None);
        let runner = Runner::new(&plan, host.clone(), inputs.clone(), snapshot_tx, updates.clone());
        tokio::spawn(runner.run(Vec::new(), queue, finished_tx));
        let plan = Arc::new(RwLock::new(Arc::new(plan)));
        Supervisor { inputs, snapshot, updates, finished, plan, host }
    }

    /// In a process started by [`Supervisor::hand_over`], takes the supervisor of the image
    /// before over: the host (see [`HostBuilder::resume_with`](crate::HostBuilder::resume_with)), the same children in the same
    /// states with their restart counts, history and backoff, the `listen` sockets; returns
    /// it and what the caller carried across beside it. Updates go to `updates` from now on.
    pub async fn resume(
        builder: crate::HostBuilder,
        updates: broadcast::Sender<Update>,
    ) -> Result<(Supervisor, crate::Baggage), String> {
        let (host, baggage) = builder.resume_with().await.map_err(|err| err.to_string())?;
        let (inputs, queue) = mpsc::unbounded_channel();
        let (snapshot_tx, snapshot) = watch::channel(Snapshot::default());
        let (finished_tx, finished) = watch::channel(None);
        let (runner, first, app) =
            Runner::resumed(host.clone(), baggage, inputs.clone(), snapshot_tx, updates.clone())?;
        let plan = Plan::new(runner.programs()).map_err(|err| format!("the carried plan: {err}"))?;
        tokio::spawn(runner.run(first, queue, finished_tx));
        let plan = Arc::new(RwLock::new(Arc::new(plan)));
        Ok((Supervisor { inputs, snapshot, updates, finished, plan, host }, app))
    }

    /// The formats of the state a hand-over carries that this build writes and reads, in
    /// words ("host 2 supervisor 1"): a hand-over to a build that answers otherwise would not
    /// be taken over, and is refused before anything is held.
    pub fn handover_formats() -> String {
        format!("host {} supervisor {}", crate::handover::FORMAT, super::runner::HANDOVER_FORMAT)
    }

    /// In a process started by [`Supervisor::hand_over`], the state its caller carried across
    /// (its baggage's `state`), read before anything is taken over: what it needs to set up
    /// before [`resume`](Self::resume) (its log sink, say).
    pub fn peek_baggage() -> Result<serde_json::Value, String> {
        let state = crate::handover_peek().map_err(|err| err.to_string())?;
        Ok(state.get("app").cloned().unwrap_or_default())
    }

    /// Replaces this process with `program` run with `args` (e.g. `/proc/self/exe`, the same
    /// arguments), which calls [`Supervisor::resume`] and carries on with every program
    /// running: same pids, pipes, sockets, restart counts. Waits for a moment when nothing is
    /// starting, stopping or rolling, and decides nothing until the exec. `baggage` crosses
    /// beside the supervisor (the caller's own state and descriptors). Returns only if the
    /// hand-over did not happen, with why; everything then runs on as before. Dropping the
    /// future gives the hand-over up, up to its exec.
    pub async fn hand_over(
        &self,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
        baggage: crate::Baggage,
    ) -> String {
        self.hand_over_counting_from(crate::handover_stops_taken(), program, args, baggage).await
    }

    /// [`hand_over`](Self::hand_over), given up at its exec if a stop signal was taken after
    /// the count `stops_before` ([`handover_stops_taken`](crate::handover_stops_taken)),
    /// read when the hand-over was decided on: a caller that sees the stop drops this future,
    /// but the runner may be past its last await by then, and the stop must not be lost
    /// with the image.
    pub async fn hand_over_counting_from(
        &self,
        stops_before: u64,
        program: &std::path::Path,
        args: &[std::ffi::OsString],
        baggage: crate::Baggage,
    ) -> String {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Dropped with this future: the runner then gives the hand-over up (until its exec).
        let (_abandon, abandoned) = tokio::sync::oneshot::channel::<()>();
        let request = super::runner::HandOver {
            program: program.to_owned(),
            args: args.to_vec(),
            baggage,
            reply,
            abandoned,
            stops_before,
        };
        if self.inputs.send(Input::HandOver(request)).is_err() {
            return "the supervisor has stopped".to_owned();
        }
        answer.await.unwrap_or_else(|_| "the supervisor stopped first".to_owned())
    }

    /// The plan it runs: each program's settings and dependencies (the new one as soon as
    /// [`reload`](Self::reload) has returned, while the changes are being carried out).
    pub fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `plan` from now on, as a difference from the current one (see [`PlanDiff`]):
    /// added programs start, removed ones stop, changed ones restart, the rest keep running.
    /// Returns the difference at once; the changes happen as updates. During a shutdown the
    /// plan is recorded but nothing starts.
    pub fn reload(&self, plan: Plan) -> PlanDiff {
        self.reload_rolling(plan, Vec::new())
    }

    /// As [`reload`](Self::reload), except for the changed programs in `rolled` that are
    /// ready: they take their new settings without a restart, for the caller to roll each
    /// ([`roll_program`](Self::roll_program)), so that their service does not stop.
    pub fn reload_rolling(&self, plan: Plan, rolled: Vec<String>) -> PlanDiff {
        let mut current = self.plan.write().unwrap_or_else(PoisonError::into_inner);
        let diff = PlanDiff::between(&current, &plan);
        *current = Arc::new(plan.clone());
        // Sent under the lock, so that two reloads reach the runner in the order of their diffs.
        self.control(Event::Reload { plan, rolled });
        diff
    }

    /// A receiver of every update from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    fn control(&self, event: Event) {
        let _ = self.inputs.send(Input::Control(event));
    }

    fn check(&self, name: &str) -> Result<(), UnknownProgram> {
        let plan = self.plan();
        if plan.program(name).is_some() {
            Ok(())
        } else {
            let known: Vec<&str> = plan.programs().iter().map(|p| p.name.as_str()).collect();
            Err(UnknownProgram { name: name.to_owned(), known: known.join(", ") })
        }
    }

    /// Starts a program that is stopped, exited or failed.
    pub fn start_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Start { name: name.to_owned() });
        Ok(())
    }

    /// Stops a program; it stays stopped until started again.
    pub fn stop_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Stop { name: name.to_owned() });
        Ok(())
    }

    /// Stops a program and starts it again, with no backoff.
    pub fn restart_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Restart { name: name.to_owned() });
        Ok(())
    }

    /// Restarts a program the rolling way: a new instance starts beside the running one (on the
    /// same `listen` sockets), and once it is ready the old one is stopped gracefully. Returns
    /// once the old one has ended, or why the new one did not take over (the old one then
    /// keeps running). A program with no ready instance is restarted the plain way.
    pub async fn roll_program(&self, name: &str) -> Result<Result<super::Rolled, String>, UnknownProgram> {
        self.check(name)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let _ = self.inputs.send(Input::Roll { name: name.to_owned(), reply });
        Ok(answer.await.unwrap_or_else(|_| Err("the supervisor stopped first".to_owned())))
    }

    /// Stops everything, dependents first.
    pub fn shutdown(&self) {
        self.control(Event::Shutdown);
    }

    /// Whether the program waits for others before it starts.
    pub fn has_dependencies(&self, name: &str) -> bool {
        self.plan().program(name).is_some_and(|p| !p.depends_on.is_empty())
    }

    /// SIGKILLs every process group now (a second Ctrl-C).
    pub fn kill_all(&self) {
        self.host.kill_all();
    }

    /// Sends `signal` to every running program's process group (Ctrl-Z and `fg`).
    pub fn signal_all(&self, signal: crate::Signal) {
        self.host.signal_all(signal);
    }

    /// The RPC client of a running program that serves RPC.
    pub fn client(&self, name: &str) -> Result<Option<Client>, UnknownProgram> {
        self.check(name)?;
        Ok(self.snapshot.borrow().children.get(name).and_then(|c| c.try_client().cloned()))
    }

    /// CPU time and memory of the program's running instance and all it started, if one runs.
    /// Reads `/proc` (or its cgroup): for `status`, not for a loop.
    pub fn usage(&self, name: &str) -> Option<crate::Usage> {
        let child = self.snapshot.borrow().children.get(name).cloned()?;
        Some(child.usage())
    }

    /// One program's status, if the plan has it.
    pub fn program_status(&self, name: &str) -> Option<ProgramStatus> {
        self.status().into_iter().find(|s| s.name == name)
    }

    /// Every program's status, in the order of the plan.
    pub fn status(&self) -> Vec<ProgramStatus> {
        let snapshot = self.snapshot.borrow();
        let now = Instant::now();
        snapshot
            .status
            .iter()
            .map(|s| {
                let child = snapshot.children.get(&s.name).filter(|_| s.state.is_active());
                ProgramStatus {
                    name: s.name.clone(),
                    state: s.state.clone(),
                    pid: child.map(Child::pid),
                    for_: now.duration_since(s.since),
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                    last_end: s.last_end.clone(),
                    socket_lost: child.and_then(Child::socket_lost_now),
                    health: s.health.clone(),
                    checks_failed: s.checks_failed,
                    last_restart: s.last_restart.clone(),
                    history: s.history.clone(),
                    endpoint: child.and_then(Child::endpoint).map(ToString::to_string),
                    transport: child.and_then(Child::try_client).map(Client::transport),
                    notify_status: child.and_then(|c| c.notices().borrow().status.clone()),
                }
            })
            .collect()
    }

    /// Whether every program has ended by itself and none will start by itself again: nothing
    /// runs, nothing waits for a restart or for its dependencies (a program whose dependency can
    /// no longer be met has failed), and none was stopped on request — a person who stopped a
    /// program is still driving and may start it again.
    pub fn all_ended(&self) -> bool {
        let snapshot = self.snapshot.borrow();
        !snapshot.status.is_empty()
            && snapshot.status.iter().all(|s| s.state.has_ended() && !matches!(s.state, State::Stopped))
    }

    /// How many descendants that had left their program's process group were killed at its
    /// stop (see [`Host::escaped_killed`]).
    pub fn escaped_killed(&self) -> usize {
        self.host.escaped_killed()
    }

    /// Why `limits` cannot be applied here, or `None` when they can (see
    /// [`Host::limits_unavailable`]).
    pub fn limits_unavailable(&self, limits: &crate::Limits) -> Option<String> {
        self.host.limits_unavailable(limits)
    }

    /// Waits until everything has stopped after a shutdown; true if any program failed.
    pub async fn finished(&self) -> bool {
        let mut finished = self.finished.clone();
        match finished.wait_for(Option::is_some).await {
            Ok(failed) => failed.unwrap_or(true),
            Err(_) => true,
        }
    }
}
