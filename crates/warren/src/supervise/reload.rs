//! A new plan for a running machine, applied as a difference from the old one: programs the
//! new plan adds start (once their dependencies allow, as at the beginning), programs it drops
//! stop (dependents first) and are then forgotten, programs whose settings differ restart with
//! the new ones, and the others are left alone — same process, no restart.
//!
//! Settings are compared as a whole ([`Program`](super::plan::Program)'s `PartialEq`): any change, down to an
//! environment variable, is a reason to restart, because the running process was started
//! with the old value. Except `depends_on`: it decides when a program starts, not how it runs,
//! so a change of it alone (a replicated dependency scaled, say) is taken up in place.
//!
//! A changed program the caller rolls (`restart_mode = "rolling"`, ready) is not restarted
//! here either: it takes its new settings at once, and the caller starts a new instance with
//! them beside the running one (`runner/rolling.rs`), as `warren restart` would.

use std::collections::HashMap;

use tokio::time::Instant;

use super::events::{Action, State};
use super::machine::{Machine, Relaunch, Slot};
use super::plan::{Plan, Program};

/// How a new plan differs from the running one, program by program: in the order of the new
/// plan, and removed ones in the order of the old.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDiff {
    /// Programs only the new plan has: they start.
    pub added: Vec<String>,
    /// Programs only the old plan has: they stop, dependents first.
    pub removed: Vec<String>,
    /// Programs whose settings differ: they restart with the new ones.
    pub changed: Vec<String>,
    /// Programs with the same settings: they keep running.
    pub unchanged: Vec<String>,
}

impl PlanDiff {
    /// What applying `new` over `old` does.
    pub fn between(old: &Plan, new: &Plan) -> PlanDiff {
        let mut diff = PlanDiff::default();
        for program in new.programs() {
            let list = match old.program(&program.name) {
                None => &mut diff.added,
                Some(before) if same_process(before, program) => &mut diff.unchanged,
                Some(_) => &mut diff.changed,
            };
            list.push(program.name.clone());
        }
        let removed = old.programs().iter().filter(|p| new.program(&p.name).is_none());
        diff.removed = removed.map(|p| p.name.clone()).collect();
        diff
    }

    /// Whether applying it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Whether `a` and `b` differ in nothing but whom they depend on.
fn same_process(a: &Program, b: &Program) -> bool {
    let without = |p: &Program| Program { depends_on: Vec::new(), ..p.clone() };
    without(a) == without(b)
}

/// Why a reload restarts or rolls a program.
const SETTINGS_CHANGED: &str = "its settings changed";

impl Machine {
    /// Runs `plan` from now on; the changed programs in `rolled` that are ready take their new
    /// settings in place, for the caller to roll. Ignored during a shutdown: everything is
    /// stopping anyway.
    pub(super) fn replace(&mut self, now: Instant, plan: &Plan, rolled: &[String], actions: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let order: Vec<String> = self.slots.iter().map(|s| s.program.name.clone()).collect();
        let mut old: HashMap<String, Slot> = self.slots.drain(..).map(|s| (s.program.name.clone(), s)).collect();
        let mut changed = Vec::new();
        for program in plan.programs() {
            let slot = match old.remove(&program.name) {
                Some(mut slot) => {
                    // Named again before it was gone: it is no longer on its way out, and one
                    // already being stopped comes back.
                    if std::mem::take(&mut slot.retiring) {
                        slot.restart_after_stop = (slot.state == State::Stopping).then_some(Relaunch::Now);
                    }
                    let current = slot.pending.as_mut().unwrap_or(&mut slot.program);
                    if same_process(current, program) {
                        current.depends_on.clone_from(&program.depends_on);
                    } else if slot.state == State::Ready && slot.pending.is_none() && rolled.contains(&program.name) {
                        slot.program = program.clone();
                        slot.roll_cause = Some(SETTINGS_CHANGED.to_owned());
                    } else {
                        slot.pending = Some(program.clone());
                        changed.push(program.name.clone());
                    }
                    slot
                }
                None => Slot::new(program.clone(), now),
            };
            self.slots.push(slot);
        }
        // What the new plan drops stays, after the others, until it has stopped.
        for name in order {
            if let Some(mut slot) = old.remove(&name) {
                slot.retiring = true;
                slot.pending = None;
                self.slots.push(slot);
            }
        }
        self.reindex();
        for name in changed {
            let i = self.index[&name];
            self.restart_with_pending(now, i, actions);
        }
        for i in 0..self.slots.len() {
            if self.slots[i].retiring && !self.slots[i].state.is_active() {
                // Not running: nothing to wait for (a pending restart or backoff is cancelled).
                self.request_stop(now, i, None, actions);
            } else if self.slots[i].retiring {
                // Running: stopped by `retire` once its dependents are down, and not relaunched.
                self.slots[i].restart_after_stop = None;
            }
        }
    }

    /// A changed program: a running one restarts and takes up its new settings when stopped
    /// (its old ones still say whom it depends on until then); one that is not running takes
    /// them up now and starts again, unless it was stopped on request — or was never started
    /// for `autostart = false` that the new settings drop.
    fn restart_with_pending(&mut self, now: Instant, i: usize, actions: &mut Vec<Action>) {
        let slot = &mut self.slots[i];
        if !slot.state.is_active() {
            let was_manual = !slot.program.autostart;
            if let Some(program) = slot.pending.take() {
                slot.program = program;
            }
            if slot.state == State::Stopped && !(was_manual && slot.program.autostart) {
                return;
            }
        }
        self.request_restart(now, i, SETTINGS_CHANGED, actions);
    }

    /// Stops each retiring program once nothing active depends on it, and drops the retiring
    /// programs that have ended.
    pub(super) fn retire(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if !slot.retiring || !matches!(slot.state, State::Starting | State::Running | State::Ready) {
                continue;
            }
            let name = &slot.program.name;
            let needed = self.slots.iter().enumerate().any(|(j, other)| {
                j != i && other.state.is_active() && other.program.depends_on.iter().any(|d| &d.name == name)
            });
            if !needed {
                self.request_stop(now, i, None, actions);
            }
        }
        let before = self.slots.len();
        self.slots.retain(|s| !s.retiring || s.state.is_active());
        if self.slots.len() != before {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        self.index = self.slots.iter().enumerate().map(|(i, s)| (s.program.name.clone(), i)).collect();
    }
}
