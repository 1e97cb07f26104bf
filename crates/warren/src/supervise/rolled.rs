//! The machine's side of a rolling restart (the overlap itself is the runner's): the program
//! stays `Ready` while a new instance takes over, so its steps are recorded and announced as
//! news rather than as state changes.

use tokio::time::Instant;

use super::machine::{Action, Change, HISTORY, Machine, State};
use crate::exit::Exit;

impl Machine {
    /// A new instance took over while the program stayed ready: a restart, with no state of
    /// its own to pass through, so the change is recorded and announced as it is.
    pub(super) fn rolled(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.state != State::Ready {
            return;
        }
        slot.restarts = slot.restarts.saturating_add(1);
        slot.last_restart = Some("rolling restart".to_owned());
        slot.ready_at = Some(now);
        slot.since = now;
        slot.healthy = slot.program.health.is_none();
        slot.health_failures = 0;
        slot.checks_failed = 0;
        let reason = "rolling restart: the new instance is ready, the old one stops".to_owned();
        self.announce(now, i, reason, actions);
    }

    /// Records and announces news of a program that stays in its state (a rolling restart's
    /// steps), which `change` would skip as no change.
    fn announce(&mut self, now: Instant, i: usize, reason: String, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if slot.history.len() == HISTORY {
            slot.history.pop_front();
        }
        let state = slot.state.clone();
        slot.history.push_back(Change { state: state.clone(), reason: Some(reason.clone()), at: now });
        actions.push(Action::Changed { name: slot.program.name.clone(), state, reason: Some(reason) });
    }

    /// The old instance of a rolling restart has ended.
    pub(super) fn retired(&mut self, now: Instant, i: usize, pid: u32, exit: Exit, actions: &mut Vec<Action>) {
        self.slots[i].last_exit = Some(exit);
        self.slots[i].last_end = Some(format!("{exit} (old instance, rolling restart)"));
        self.announce(now, i, format!("rolling restart: the old instance (pid {pid}) {exit}"), actions);
    }
}
