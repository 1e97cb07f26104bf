//! Watching programs come up after a start or restart, from the supervisor's updates.
//!
//! An update may describe a change made before the request (the subscription is taken first,
//! so nothing is missed, but something old may come through). So a program's fate is read only
//! once it has been seen waiting or starting — the first steps of every new instance — and an
//! update of an older instance (its exit during a restart, an old failure) is not mistaken for
//! the new one's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren::supervise::{Supervisor, Update};

use crate::control::{Outcome, OutcomeKind};

/// The supervisor's updates, subscribed to before a request is made.
pub struct Watch {
    supervisor: Supervisor,
    updates: broadcast::Receiver<Update>,
    /// Each program's pid when the watch began: after missed updates, a ready program with
    /// another pid is known to be a new instance.
    pids_before: HashMap<String, Option<u32>>,
}

impl Watch {
    pub fn new(supervisor: &Supervisor) -> Watch {
        let updates = supervisor.subscribe();
        let pids_before = supervisor.status().into_iter().map(|s| (s.name, s.pid)).collect();
        Watch { supervisor: supervisor.clone(), updates, pids_before }
    }

    pub fn plan(&self) -> Arc<Plan> {
        self.supervisor.plan()
    }

    /// The next update, or None once `deadline` passed or everything has stopped after a
    /// shutdown (a start asked for during one is never carried out). Missed updates (a lagging
    /// receiver) come back as `Some(None)`: read the status instead.
    pub async fn next(&mut self, deadline: Instant) -> Option<Option<Update>> {
        let update = tokio::select! {
            update = tokio::time::timeout_at(deadline, self.updates.recv()) => update,
            _ = self.supervisor.finished() => return None,
        };
        match update {
            Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => None,
            Ok(Ok(update)) => Some(Some(update)),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => Some(None),
        }
    }

    /// Waits until each of `names` is ready (or, for a program that runs to completion, has
    /// exited cleanly), has failed to come up, or `bound` has passed.
    pub async fn until_up(&mut self, names: &[String], bound: Duration) -> Vec<Outcome> {
        let deadline = Instant::now() + bound;
        let mut pending: HashMap<String, bool> = names.iter().map(|n| (n.clone(), false)).collect();
        let mut outcomes = Vec::new();
        while !pending.is_empty() {
            match self.next(deadline).await {
                None => break,
                Some(Some(Update::Changed { name, state, pid, .. })) => {
                    let Some(armed) = pending.get_mut(&name) else { continue };
                    if matches!(state, State::Waiting | State::Starting) {
                        *armed = true;
                        continue;
                    }
                    if !*armed {
                        continue;
                    }
                    if let Some(outcome) = self.verdict(&name, &state, pid) {
                        pending.remove(&name);
                        outcomes.push(outcome);
                    }
                }
                Some(Some(_)) => {}
                Some(None) => self.after_missed_updates(&mut pending, &mut outcomes),
            }
        }
        let now = self.supervisor.status();
        for name in pending.into_keys() {
            let state = now.iter().find(|s| s.name == name).map_or_else(String::new, |s| s.state.to_string());
            let text = match Instant::now() >= deadline {
                true => format!("not up within {} (now {state})", humantime::format_duration(bound)),
                false => format!("the instance is shutting down (now {state})"),
            };
            outcomes.push(Outcome::new(&name, OutcomeKind::Failed, text));
        }
        outcomes
    }

    /// Only a program ready with a new pid is known to be up; anything else waits for the
    /// next update or the deadline.
    fn after_missed_updates(&self, pending: &mut HashMap<String, bool>, outcomes: &mut Vec<Outcome>) {
        for status in self.supervisor.status() {
            let new = self.pids_before.get(&status.name).is_some_and(|before| *before != status.pid);
            if status.state == State::Ready && new && pending.remove(&status.name).is_some() {
                outcomes.push(Outcome::new(&status.name, OutcomeKind::Done, format!("ready{}", pid(status.pid))));
            }
        }
    }

    /// What `state` says of a new instance: up, not up, or not yet known (None).
    fn verdict(&self, name: &str, state: &State, pid_now: Option<u32>) -> Option<Outcome> {
        let (kind, text) = match state {
            State::Ready => (OutcomeKind::Done, format!("ready{}", pid(pid_now))),
            State::Exited { exit } if exit.success() => (OutcomeKind::Done, format!("ran and {exit}")),
            State::Exited { exit } => (OutcomeKind::Failed, format!("did not come back: {exit}")),
            State::Backoff { .. } => {
                let last = self.supervisor.program_status(name).and_then(|s| s.last_end);
                let last = last.map(|end| format!("{end}; ")).unwrap_or_default();
                (OutcomeKind::Failed, format!("did not come back: {last}{state}"))
            }
            State::Failed { .. } => (OutcomeKind::Failed, format!("did not come back: {state}")),
            State::Stopped => (OutcomeKind::Failed, "was stopped before it was up".to_owned()),
            State::Waiting | State::Starting | State::Running | State::Stopping => return None,
        };
        Some(Outcome::new(name, kind, text))
    }
}

pub fn pid(pid: Option<u32>) -> String {
    pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}
