//! Dependencies: which programs may start, which can never start, and the order of a shutdown
//! (dependents before what they depend on, independents in parallel).

use tokio::time::Instant;

use super::events::{Action, State};
use super::machine::Machine;
use super::plan::Condition;

impl Machine {
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
    pub(super) fn settle(&mut self, now: Instant, actions: &mut Vec<Action>) {
        loop {
            let before = actions.len();
            if self.shutting_down {
                self.stop_in_order(now, actions);
            } else {
                self.retire(now, actions);
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
            State::Stopped => !s.program.autostart,
            _ => false,
        })
    }

    fn start_ready_ones(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for i in 0..self.slots.len() {
            if self.slots[i].state != State::Waiting || self.slots[i].retiring {
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
