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
        slot.last_restart = Some(match slot.roll_cause.take() {
            Some(cause) => format!("{cause} (rolling restart)"),
            None => "rolling restart".to_owned(),
        });
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

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use crate::exit::Exit;
    use crate::supervise::machine::{Action, Event, Machine, State};
    use crate::supervise::plan::{Invocation, Plan, Program};

    #[test]
    fn a_roll_is_a_restart_that_never_leaves_ready() {
        let plan = Plan::new(vec![Program::new("web", Invocation::Shell("true".into()))]).expect("a valid plan");
        let mut machine = Machine::new(&plan, Instant::now(), 1);
        machine.begin(Instant::now());
        for event in [Event::Started { name: "web".into() }, Event::Ready { name: "web".into() }] {
            machine.handle(Instant::now(), event);
        }
        let actions = machine.handle(Instant::now(), Event::Rolled { name: "web".into() });
        let reasons: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Changed { state: State::Ready, reason, .. } => reason.clone(),
                Action::Spawn { .. } | Action::Stop { .. } => panic!("a roll spawns and stops nothing here: {a:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(reasons, ["rolling restart: the new instance is ready, the old one stops"]);
        let exit = Exit::Code(0);
        let actions = machine.handle(Instant::now(), Event::Retired { name: "web".into(), pid: 7, exit });
        assert!(
            actions.iter().any(|a| matches!(a, Action::Changed { reason: Some(r), .. }
                if r == "rolling restart: the old instance (pid 7) exited with code 0")),
            "{actions:?}"
        );
        let status = &machine.status()[0];
        assert_eq!((&status.state, status.restarts, status.last_exit), (&State::Ready, 1, Some(exit)));
        assert_eq!(status.last_restart.as_deref(), Some("rolling restart"));
        // A roll of a program that is not ready (it stopped meanwhile) changes nothing.
        machine.handle(Instant::now(), Event::Stop { name: "web".into() });
        assert!(machine.handle(Instant::now(), Event::Rolled { name: "web".into() }).is_empty());
    }
}
