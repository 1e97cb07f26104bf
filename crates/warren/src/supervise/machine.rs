//! The supervisor's decisions, as a pure function of events.
//!
//! Nothing here spawns, signals or sleeps: [`Machine::handle`] takes an event (a child started,
//! became ready, exited; a health check failed; a timer fired; a control request) and the time
//! it happened, and returns the actions to take. The runner carries them out and feeds back
//! what happened. Tests drive it with a paused clock and no processes.

mod carried;
mod slot;

use std::collections::HashMap;
use std::fmt;

use tokio::time::Instant;

use super::backoff::{Jitter, delay};
use super::events::humanize;
pub use super::events::{Action, Change, Event, HISTORY, HealthStatus, StartError, State, Status};
use super::plan::{Plan, Program, Restart};
use crate::exit::Exit;
pub(crate) use carried::MachineState;
pub(super) use slot::Slot;

/// How a program stopped on purpose comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relaunch {
    Now,
    WithBackoff,
}

/// The supervisor's state: every program's, and whether a shutdown is in progress.
pub struct Machine {
    pub(super) slots: Vec<Slot>,
    pub(super) index: HashMap<String, usize>,
    pub(super) shutting_down: bool,
    pub(super) announced_ready: bool,
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
        let slots: Vec<Slot> = plan.programs().iter().map(|program| Slot::new(program.clone(), now)).collect();
        let index = slots.iter().enumerate().map(|(i, s)| (s.program.name.clone(), i)).collect();
        Machine { slots, index, shutting_down: false, announced_ready: false, jitter: Jitter::new(seed) }
    }

    /// The first actions: start every program whose dependencies allow it.
    pub fn begin(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.settle(now, &mut actions);
        actions
    }

    /// The program named `name`.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.index.get(name).map(|&i| &self.slots[i].program)
    }

    /// Where the program named `name` is in its life.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|&i| &self.slots[i].state)
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Every program's status, in the order of the plan.
    pub fn status(&self) -> Vec<Status> {
        self.slots
            .iter()
            .map(|s| Status {
                name: s.program.name.clone(),
                state: s.state.clone(),
                restarts: s.restarts,
                last_exit: s.last_exit,
                last_end: s.last_end.clone(),
                since: s.since,
                health: s.health(),
                checks_failed: s.checks_failed,
                last_restart: s.last_restart.clone(),
                history: s.history.iter().cloned().collect(),
            })
            .collect()
    }

    /// Whether any program ended in failure (for the exit code of `warren up`).
    pub fn any_failed(&self) -> bool {
        self.slots.iter().any(|s| {
            matches!(s.state, State::Failed { .. }) || matches!(s.state, State::Exited { exit } if !exit.success())
        })
    }

    /// Takes in what happened at `now` and returns what to do about it.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Shutdown => self.shutdown(now, &mut actions),
            Event::Reload { plan, rolled } => self.replace(now, &plan, &rolled, &mut actions),
            Event::Start { name } => self.with(&name, |m, i| m.request_start(now, i, &mut actions)),
            Event::Stop { name } => self.with(&name, |m, i| m.request_stop(now, i, None, &mut actions)),
            Event::Restart { name } => {
                self.with(&name, |m, i| m.request_restart(now, i, "restart requested", &mut actions))
            }
            Event::Started { name } => self.with(&name, |m, i| m.started(now, i, &mut actions)),
            Event::Ready { name } => self.with(&name, |m, i| m.ready(now, i, &mut actions)),
            Event::StartFailed { name, error } => {
                let retry = !error.is_permanent();
                self.with(&name, |m, i| m.ended(now, i, None, error.describe(), retry, &mut actions));
            }
            Event::Exited { name, exit } => {
                self.with(&name, |m, i| m.ended(now, i, Some(exit), exit.to_string(), true, &mut actions));
            }
            Event::HealthPassed { name } => self.with(&name, |m, i| {
                let slot = &mut m.slots[i];
                slot.health_failures = 0;
                slot.healthy = slot.state == State::Ready;
            }),
            Event::HealthFailed { name, reason } => {
                self.with(&name, |m, i| m.health_failed(now, i, reason, &mut actions));
            }
            Event::Rolled { name } => self.with(&name, |m, i| m.rolled(now, i, &mut actions)),
            Event::Retired { name, pid, exit } => self.with(&name, |m, i| m.retired(now, i, pid, exit, &mut actions)),
            Event::SocketLost { name } => self.with(&name, |m, i| m.socket_lost(now, i, &mut actions)),
            Event::WatchdogExpired { name, reason } => {
                self.with(&name, |m, i| m.watchdog_expired(now, i, reason, &mut actions));
            }
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

    pub(super) fn set_state(&mut self, now: Instant, i: usize, state: State, actions: &mut Vec<Action>) {
        self.change(now, i, state, None, actions);
    }

    /// Enters `state` for `reason` (where the state does not say why), and keeps the change.
    fn change(&mut self, now: Instant, i: usize, state: State, reason: Option<String>, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.state == state {
            return;
        }
        slot.state = state.clone();
        slot.since = now;
        if slot.history.len() == HISTORY {
            slot.history.pop_front();
        }
        slot.history.push_back(Change { state: state.clone(), reason: reason.clone(), at: now });
        actions.push(Action::Changed { name: slot.program.name.clone(), state, reason });
    }

    pub(super) fn spawn(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
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
        slot.checks_failed = 0;
        slot.stop_cause = None;
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

    pub(super) fn issue_stop(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        actions.push(Action::Stop { name: self.slots[i].program.name.clone() });
        let reason = self.slots[i].stop_cause.clone();
        self.change(now, i, State::Stopping, reason, actions);
    }

    fn health_failed(&mut self, now: Instant, i: usize, reason: String, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.state != State::Ready {
            return;
        }
        slot.health_failures += 1;
        slot.checks_failed += 1;
        slot.health_reason = reason;
        slot.healthy = false;
        // The period that resets the backoff is one of being ready *and* healthy: it starts over.
        slot.ready_at = Some(now);
        let limit = slot.program.health.as_ref().map_or(1, |h| h.failures);
        if slot.health_failures >= limit && !self.shutting_down {
            let cause = match slot.health_failures {
                1 => format!("health check failed: {}", slot.health_reason),
                n => format!("health check failed {n} times: {}", slot.health_reason),
            };
            slot.stop_cause = Some(cause);
            self.slots[i].restart_after_stop = Some(Relaunch::WithBackoff);
            self.issue_stop(now, i, actions);
        }
    }

    /// A hung program is restarted as one whose health check failed: stopped, then started
    /// again after its backoff, whatever its restart policy.
    fn watchdog_expired(&mut self, now: Instant, i: usize, reason: String, actions: &mut Vec<Action>) {
        if self.slots[i].state != State::Ready || self.shutting_down {
            return;
        }
        self.slots[i].stop_cause = Some(format!("watchdog: {reason}"));
        self.slots[i].restart_after_stop = Some(Relaunch::WithBackoff);
        self.issue_stop(now, i, actions);
    }

    /// Restarts at once — no crash happened, so no backoff — but the start still counts toward
    /// the crash loop, so a socket deleted at every start ends in `Failed`, not in a loop.
    fn socket_lost(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        if self.slots[i].state == State::Ready && !self.shutting_down {
            self.slots[i].stop_cause = Some("its socket file was lost".to_owned());
            self.slots[i].restart_after_stop = Some(Relaunch::Now);
            self.issue_stop(now, i, actions);
        }
    }

    /// The process is gone (`exit`), or never got going (`exit` is None); `retry`: whether
    /// starting it again could help at all.
    fn ended(
        &mut self,
        now: Instant,
        i: usize,
        exit: Option<Exit>,
        what: String,
        retry: bool,
        actions: &mut Vec<Action>,
    ) {
        let slot = &mut self.slots[i];
        if !slot.state.is_active() {
            return;
        }
        if let Some(exit) = exit {
            slot.last_exit = Some(exit);
        }
        slot.last_end = Some(what.clone());
        slot.stop_when_started = false;
        let was_stopping = slot.state == State::Stopping;
        let relaunch = slot.restart_after_stop.take();
        // Why it ended, when that was warren's doing; otherwise its exit says it.
        let cause = slot.stop_cause.take();
        if self.shutting_down || slot.retiring || (was_stopping && relaunch.is_none()) {
            self.set_state(now, i, State::Stopped, actions);
            return;
        }
        if relaunch == Some(Relaunch::Now) {
            if let Some(program) = slot.pending.take() {
                slot.program = program;
            }
            slot.restarts = slot.restarts.saturating_add(1);
            slot.last_restart = cause.clone();
            self.change(now, i, State::Waiting, cause, actions);
            return;
        }
        let restart_now = relaunch.is_some();
        let program = &slot.program;
        let failed = !exit.is_some_and(Exit::success);
        let restart = retry
            && match program.restart {
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
        // The exit that a stop of warren's caused is in `last_exit`; the cause is the news.
        let why = cause.unwrap_or(what);
        self.slots[i].last_restart = Some(why.clone());
        actions.push(Action::SetTimer { name, after: pause, generation });
        self.change(now, i, State::Backoff { delay: pause }, Some(why), actions);
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

    pub(super) fn request_stop(
        &mut self,
        now: Instant,
        i: usize,
        relaunch: Option<Relaunch>,
        actions: &mut Vec<Action>,
    ) {
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

    /// Restarts program `i`; `cause` is what its stop is reported with.
    pub(super) fn request_restart(&mut self, now: Instant, i: usize, cause: &str, actions: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let slot = &mut self.slots[i];
        slot.attempt = 0;
        slot.starts.clear();
        if slot.state.is_active() {
            slot.stop_cause = Some(cause.to_owned());
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
}
