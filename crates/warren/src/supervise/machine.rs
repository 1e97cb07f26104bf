//! The supervisor's decisions, as a pure function of events.
//!
//! Nothing here spawns, signals or sleeps: [`Machine::handle`] takes an event (a child started,
//! became ready, exited; a health check failed; a timer fired; a control request) and the time
//! it happened, and returns the actions to take. The runner carries them out and feeds back
//! what happened. Tests drive it with a paused clock and no processes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Jitter, delay};
use super::plan::{Condition, Plan, Program, Restart};
use crate::stop::Exit;

/// Where a program is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not started: waiting for its dependencies.
    Waiting,
    /// Being started.
    Starting,
    /// Started, not yet ready.
    Running,
    /// Ready (its readiness condition held).
    Ready,
    /// Being stopped.
    Stopping,
    /// Waiting to be restarted.
    Backoff { delay: Duration },
    /// Ended and, by its restart policy, left so.
    Exited { exit: Exit },
    /// Given up on: a crash loop, a failed start without restart, a failed dependency.
    Failed { reason: String },
    /// Stopped on request.
    Stopped,
}

impl State {
    /// Whether a process may be running for it.
    pub fn is_active(&self) -> bool {
        matches!(self, State::Starting | State::Running | State::Ready | State::Stopping)
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running => "running",
            State::Ready => "ready",
            State::Stopping => "stopping",
            State::Backoff { .. } => "backoff",
            State::Exited { .. } => "exited",
            State::Failed { .. } => "failed",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Backoff { delay } => write!(f, "restarting in {}", humanize(*delay)),
            State::Exited { exit } => write!(f, "{exit}"),
            State::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

fn humanize(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Something that happened, reported to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The process was spawned.
    Started {
        name: String,
    },
    /// The process could not be started or made ready.
    StartFailed {
        name: String,
        error: String,
    },
    Ready {
        name: String,
    },
    /// The process ended, for whatever reason.
    Exited {
        name: String,
        exit: Exit,
    },
    HealthPassed {
        name: String,
    },
    HealthFailed {
        name: String,
    },
    /// Its socket file was deleted or replaced while it ran, and its program's
    /// [`on_socket_lost`](super::plan::Program::on_socket_lost) says to restart it.
    SocketLost {
        name: String,
    },
    /// A timer set by [`Action::SetTimer`] fired.
    Timer {
        name: String,
        generation: u64,
    },
    /// Control requests.
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    /// Stop everything, dependents before their dependencies.
    Shutdown,
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Spawn {
        name: String,
    },
    Stop {
        name: String,
    },
    /// Send `Event::Timer { name, generation }` after `after`. Timers with an old generation are
    /// ignored, so there is no need to cancel them.
    SetTimer {
        name: String,
        after: Duration,
        generation: u64,
    },
    /// A program changed state (one log line each).
    Changed {
        name: String,
        state: State,
    },
    /// Everything has stopped after a shutdown.
    AllStopped,
    /// Every program is ready (or finished successfully): time to tell systemd.
    AllReady,
}

/// What `status` shows of one program.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    pub since: Instant,
}

struct Slot {
    program: Program,
    state: State,
    since: Instant,
    /// Start times within the crash-loop window.
    starts: VecDeque<Instant>,
    /// Restarts since the last reset, the backoff exponent.
    attempt: u32,
    restarts: u32,
    last_exit: Option<Exit>,
    ready_at: Option<Instant>,
    healthy: bool,
    health_failures: u32,
    /// Restart once the current stop completes: after a backoff (health failure), or at once
    /// (a restart request).
    restart_after_stop: Option<Relaunch>,
    /// The stop was requested while the start was still in progress.
    stop_when_started: bool,
    timer_generation: u64,
}

/// How a program stopped on purpose comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relaunch {
    Now,
    WithBackoff,
}

/// The supervisor's state: every program's, and whether a shutdown is in progress.
pub struct Machine {
    slots: Vec<Slot>,
    index: HashMap<String, usize>,
    shutting_down: bool,
    announced_ready: bool,
    jitter: Jitter,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let states: Vec<(&str, &State)> = self.slots.iter().map(|s| (s.program.name.as_str(), &s.state)).collect();
        f.debug_struct("Machine").field("states", &states).field("shutting_down", &self.shutting_down).finish()
    }
}

impl Machine {
    /// A machine for `plan`; `seed` makes the backoff jitter reproducible.
    pub fn new(plan: &Plan, now: Instant, seed: u64) -> Machine {
        let slots: Vec<Slot> = plan
            .programs
            .iter()
            .map(|program| Slot {
                program: program.clone(),
                state: State::Waiting,
                since: now,
                starts: VecDeque::new(),
                attempt: 0,
                restarts: 0,
                last_exit: None,
                ready_at: None,
                healthy: false,
                health_failures: 0,
                restart_after_stop: None,
                stop_when_started: false,
                timer_generation: 0,
            })
            .collect();
        let index = slots.iter().enumerate().map(|(i, s)| (s.program.name.clone(), i)).collect();
        Machine { slots, index, shutting_down: false, announced_ready: false, jitter: Jitter::new(seed) }
    }

    /// The first actions: start every program whose dependencies allow it.
    pub fn begin(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.settle(now, &mut actions);
        actions
    }

    pub fn program(&self, name: &str) -> Option<&Program> {
        self.index.get(name).map(|&i| &self.slots[i].program)
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|&i| &self.slots[i].state)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    pub fn status(&self) -> Vec<Status> {
        self.slots
            .iter()
            .map(|s| Status {
                name: s.program.name.clone(),
                state: s.state.clone(),
                restarts: s.restarts,
                last_exit: s.last_exit,
                since: s.since,
            })
            .collect()
    }

    /// Whether any program ended in failure (for the exit code of `warren up`).
    pub fn any_failed(&self) -> bool {
        self.slots.iter().any(|s| {
            matches!(s.state, State::Failed { .. }) || matches!(s.state, State::Exited { exit } if !exit.success())
        })
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Shutdown => self.shutdown(now, &mut actions),
            Event::Start { name } => self.with(&name, |m, i| m.request_start(now, i, &mut actions)),
            Event::Stop { name } => self.with(&name, |m, i| m.request_stop(now, i, None, &mut actions)),
            Event::Restart { name } => self.with(&name, |m, i| m.request_restart(now, i, &mut actions)),
            Event::Started { name } => self.with(&name, |m, i| m.started(now, i, &mut actions)),
            Event::Ready { name } => self.with(&name, |m, i| m.ready(now, i, &mut actions)),
            Event::StartFailed { name, error } => self.with(&name, |m, i| m.ended(now, i, None, error, &mut actions)),
            Event::Exited { name, exit } => {
                self.with(&name, |m, i| m.ended(now, i, Some(exit), exit.to_string(), &mut actions));
            }
            Event::HealthPassed { name } => self.with(&name, |m, i| {
                let slot = &mut m.slots[i];
                slot.health_failures = 0;
                slot.healthy = slot.state == State::Ready;
            }),
            Event::HealthFailed { name } => self.with(&name, |m, i| m.health_failed(now, i, &mut actions)),
            Event::SocketLost { name } => self.with(&name, |m, i| m.socket_lost(now, i, &mut actions)),
            Event::Timer { name, generation } => self.with(&name, |m, i| {
                let slot = &m.slots[i];
                if slot.timer_generation == generation && matches!(slot.state, State::Backoff { .. }) {
                    m.set_state(now, i, State::Waiting, &mut actions);
                }
            }),
        }
        self.settle(now, &mut actions);
        actions
    }

    fn with(&mut self, name: &str, f: impl FnOnce(&mut Machine, usize)) {
        // Events for unknown programs (a stale timer, a typo in a control request checked
        // elsewhere) change nothing.
        if let Some(&i) = self.index.get(name) {
            f(self, i);
        }
    }

    fn set_state(&mut self, now: Instant, i: usize, state: State, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.state == state {
            return;
        }
        slot.state = state.clone();
        slot.since = now;
        actions.push(Action::Changed { name: slot.program.name.clone(), state });
    }

    fn spawn(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        let window = self.slots[i].program.crash_loop.window;
        let max_starts = self.slots[i].program.crash_loop.max_starts;
        let slot = &mut self.slots[i];
        while slot.starts.front().is_some_and(|&t| now.duration_since(t) >= window) {
            slot.starts.pop_front();
        }
        if slot.starts.len() >= max_starts as usize {
            let reason = format!("crash loop: {max_starts} starts within {}", humanize(window));
            self.set_state(now, i, State::Failed { reason }, actions);
            return;
        }
        let slot = &mut self.slots[i];
        slot.starts.push_back(now);
        slot.healthy = false;
        slot.health_failures = 0;
        slot.ready_at = None;
        actions.push(Action::Spawn { name: slot.program.name.clone() });
        self.set_state(now, i, State::Starting, actions);
    }

    fn started(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if self.slots[i].state == State::Starting {
            self.set_state(now, i, State::Running, actions);
        }
        self.stop_if_asked_while_starting(now, i, actions);
    }

    fn ready(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if matches!(self.slots[i].state, State::Starting | State::Running) {
            let slot = &mut self.slots[i];
            slot.ready_at = Some(now);
            // Without a health check, ready is as healthy as it gets.
            slot.healthy = slot.program.health.is_none();
            self.set_state(now, i, State::Ready, actions);
        }
        self.stop_if_asked_while_starting(now, i, actions);
    }

    fn stop_if_asked_while_starting(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if std::mem::take(&mut self.slots[i].stop_when_started) {
            self.issue_stop(now, i, actions);
        }
    }

    fn issue_stop(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        actions.push(Action::Stop { name: self.slots[i].program.name.clone() });
        self.set_state(now, i, State::Stopping, actions);
    }

    fn health_failed(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.state != State::Ready {
            return;
        }
        slot.health_failures += 1;
        slot.healthy = false;
        // The period that resets the backoff is one of being ready *and* healthy: it starts over.
        slot.ready_at = Some(now);
        let limit = slot.program.health.as_ref().map_or(1, |h| h.failures);
        if slot.health_failures >= limit && !self.shutting_down {
            self.slots[i].restart_after_stop = Some(Relaunch::WithBackoff);
            self.issue_stop(now, i, actions);
        }
    }

    /// Restarts at once — no crash happened, so no backoff — but the start still counts toward
    /// the crash loop, so a socket deleted at every start ends in `Failed`, not in a loop.
    fn socket_lost(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if self.slots[i].state == State::Ready && !self.shutting_down {
            self.slots[i].restart_after_stop = Some(Relaunch::Now);
            self.issue_stop(now, i, actions);
        }
    }

    /// The process is gone (`exit`), or never got going (`exit` is None).
    fn ended(&mut self, now: Instant, i: usize, exit: Option<Exit>, what: String, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if !slot.state.is_active() {
            return;
        }
        if let Some(exit) = exit {
            slot.last_exit = Some(exit);
        }
        slot.stop_when_started = false;
        let was_stopping = slot.state == State::Stopping;
        let relaunch = slot.restart_after_stop.take();
        if self.shutting_down || (was_stopping && relaunch.is_none()) {
            self.set_state(now, i, State::Stopped, actions);
            return;
        }
        if relaunch == Some(Relaunch::Now) {
            slot.restarts = slot.restarts.saturating_add(1);
            self.set_state(now, i, State::Waiting, actions);
            return;
        }
        let restart_now = relaunch.is_some();
        let program = &slot.program;
        let failed = !exit.is_some_and(Exit::success);
        let restart = match program.restart {
            Restart::Always => true,
            Restart::OnFailure => failed || restart_now,
            Restart::Never => restart_now,
        };
        if !restart {
            let state = match exit {
                Some(exit) => State::Exited { exit },
                None => State::Failed { reason: what },
            };
            self.set_state(now, i, state, actions);
            return;
        }
        // A program that stayed up long enough starts its backoff and crash count over.
        if slot.ready_at.is_some_and(|at| now.duration_since(at) >= program.reset_after) {
            slot.attempt = 0;
            slot.starts.clear();
        }
        let pause = delay(&program.backoff, slot.attempt, self.jitter.next_unit());
        slot.attempt = slot.attempt.saturating_add(1);
        slot.timer_generation += 1;
        let name = program.name.clone();
        let generation = slot.timer_generation;
        // The crash-loop limit is checked when the restart is due (in `spawn`), but a program
        // that is already over it is failed now rather than after a pointless wait.
        let window = program.crash_loop.window;
        let max_starts = program.crash_loop.max_starts as usize;
        let recent = slot.starts.iter().filter(|&&t| now.duration_since(t) < window).count();
        if recent >= max_starts {
            let reason = format!("crash loop: {max_starts} starts within {}", humanize(window));
            self.set_state(now, i, State::Failed { reason }, actions);
            return;
        }
        // Counted only now: a restart refused by the crash-loop limit never happens.
        self.slots[i].restarts = self.slots[i].restarts.saturating_add(1);
        actions.push(Action::SetTimer { name, after: pause, generation });
        self.set_state(now, i, State::Backoff { delay: pause }, actions);
    }

    fn request_start(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let slot = &mut self.slots[i];
        if matches!(slot.state, State::Stopped | State::Exited { .. } | State::Failed { .. }) {
            slot.attempt = 0;
            slot.starts.clear();
            self.set_state(now, i, State::Waiting, actions);
        }
    }

    fn request_stop(&mut self, now: Instant, i: usize, relaunch: Option<Relaunch>, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        slot.restart_after_stop = relaunch;
        match slot.state {
            State::Starting => slot.stop_when_started = true,
            State::Running | State::Ready => self.issue_stop(now, i, actions),
            State::Waiting | State::Backoff { .. } => {
                slot.timer_generation += 1;
                self.set_state(now, i, State::Stopped, actions);
            }
            State::Stopping | State::Exited { .. } | State::Failed { .. } | State::Stopped => {}
        }
    }

    fn request_restart(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let slot = &mut self.slots[i];
        slot.attempt = 0;
        slot.starts.clear();
        if slot.state.is_active() {
            self.request_stop(now, i, Some(Relaunch::Now), actions);
        } else {
            slot.timer_generation += 1;
            self.set_state(now, i, State::Waiting, actions);
        }
    }

    fn shutdown(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].state, State::Waiting | State::Backoff { .. }) {
                self.slots[i].timer_generation += 1;
                self.set_state(now, i, State::Stopped, actions);
            }
        }
    }

    /// Whether `dep` has reached `condition`.
    fn satisfied(&self, dep: usize, condition: Condition) -> bool {
        let slot = &self.slots[dep];
        match condition {
            Condition::Started => matches!(slot.state, State::Running | State::Ready),
            Condition::Ready => slot.state == State::Ready,
            Condition::Healthy => slot.state == State::Ready && slot.healthy,
            Condition::ExitedOk => matches!(slot.state, State::Exited { exit } if exit.success()),
        }
    }

    /// Whether `dep` can never reach `condition` any more.
    fn hopeless(&self, dep: usize, condition: Condition) -> bool {
        match &self.slots[dep].state {
            State::Failed { .. } | State::Stopped => true,
            State::Exited { exit } => condition != Condition::ExitedOk || !exit.success(),
            _ => false,
        }
    }

    /// Applies the consequences of the current states until nothing changes: start programs
    /// whose dependencies are met, fail those whose dependencies never will be, and during a
    /// shutdown stop programs whose dependents are all down.
    fn settle(&mut self, now: Instant, actions: &mut Vec<Action>) {
        loop {
            let before = actions.len();
            if self.shutting_down {
                self.stop_in_order(now, actions);
            } else {
                self.start_ready_ones(now, actions);
            }
            if actions.len() == before {
                break;
            }
        }
        if self.shutting_down && self.slots.iter().all(|s| !s.state.is_active()) {
            if !actions.contains(&Action::AllStopped) {
                actions.push(Action::AllStopped);
            }
        } else if !self.shutting_down && !self.announced_ready && self.all_up() {
            self.announced_ready = true;
            actions.push(Action::AllReady);
        }
    }

    fn all_up(&self) -> bool {
        self.slots.iter().all(|s| match &s.state {
            State::Ready => true,
            State::Exited { exit } => exit.success(),
            _ => false,
        })
    }

    fn start_ready_ones(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for i in 0..self.slots.len() {
            if self.slots[i].state != State::Waiting {
                continue;
            }
            let deps: Vec<(usize, Condition, String)> = self.slots[i]
                .program
                .depends_on
                .iter()
                .filter_map(|d| self.index.get(&d.name).map(|&j| (j, d.condition, d.name.clone())))
                .collect();
            if let Some((_, condition, name)) = deps.iter().find(|(j, c, _)| self.hopeless(*j, *c)) {
                let reason = format!("dependency {name} can no longer be {}", condition_name(*condition));
                self.set_state(now, i, State::Failed { reason }, actions);
            } else if deps.iter().all(|(j, c, _)| self.satisfied(*j, *c)) {
                self.spawn(now, i, actions);
            }
        }
    }

    fn stop_in_order(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for i in 0..self.slots.len() {
            let state = &self.slots[i].state;
            if !matches!(state, State::Running | State::Ready | State::Starting) {
                continue;
            }
            let name = self.slots[i].program.name.clone();
            let dependents_down = self
                .slots
                .iter()
                .all(|other| !other.program.depends_on.iter().any(|d| d.name == name) || !other.state.is_active());
            if dependents_down {
                if self.slots[i].state == State::Starting {
                    self.slots[i].stop_when_started = true;
                } else {
                    self.issue_stop(now, i, actions);
                }
            }
        }
    }
}

fn condition_name(condition: Condition) -> &'static str {
    match condition {
        Condition::Started => "started",
        Condition::Ready => "ready",
        Condition::Healthy => "healthy",
        Condition::ExitedOk => "exited with code 0",
    }
}
