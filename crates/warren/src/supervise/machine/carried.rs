//! The machine written down for a hand-over across `exec` (docs/HANDOFF.md) and read back in
//! the new image. Only a machine between two decisions is carried: nothing starting or
//! stopping, no reload half done. Times cross as ages, since an `Instant` means nothing to
//! another image; a program waiting out its backoff gets its timer again for what is left.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Machine, Slot};
use crate::exit::Exit;
use crate::supervise::backoff::Jitter;
use crate::supervise::events::{Action, Change, State};
use crate::supervise::plan::Program;

/// The machine's part of the supervisor's state.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MachineState {
    slots: Vec<SlotState>,
    announced_ready: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct SlotState {
    program: Program,
    state: State,
    /// Milliseconds in that state at the hand-over.
    in_state_ms: u64,
    /// The ages of the starts within the crash-loop window.
    start_ages_ms: Vec<u64>,
    attempt: u32,
    restarts: u32,
    last_exit: Option<Exit>,
    last_end: Option<String>,
    ready_age_ms: Option<u64>,
    healthy: bool,
    health_failures: u32,
    health_reason: String,
    checks_failed: u64,
    last_restart: Option<String>,
    history: Vec<ChangeState>,
    timer_generation: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChangeState {
    state: State,
    reason: Option<String>,
    age_ms: u64,
}

fn age(now: Instant, at: Instant) -> u64 {
    u64::try_from(now.duration_since(at).as_millis()).unwrap_or(u64::MAX)
}

fn at(now: Instant, age_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(age_ms)).unwrap_or(now)
}

impl Machine {
    /// The machine as it stands, or why it cannot be carried now (a retryable reason: the
    /// program named is in the middle of something).
    pub(crate) fn carried(&self, now: Instant) -> Result<MachineState, String> {
        if self.shutting_down {
            return Err("everything is being stopped".to_owned());
        }
        let mut slots = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let name = &slot.program.name;
            let busy = match &slot.state {
                State::Starting => Some("is starting"),
                State::Running => Some("is started but not ready yet (its readiness check does not cross exec)"),
                State::Stopping => Some("is being stopped"),
                _ if slot.retiring => Some("is being removed by a reload"),
                _ if slot.pending.is_some() => Some("waits to take up a reload's settings"),
                _ if slot.restart_after_stop.is_some() || slot.stop_when_started => Some("is being restarted"),
                _ => None,
            };
            if let Some(busy) = busy {
                return Err(format!("{name} {busy}; try again in a moment"));
            }
            slots.push(SlotState {
                program: slot.program.clone(),
                state: slot.state.clone(),
                in_state_ms: age(now, slot.since),
                start_ages_ms: slot.starts.iter().map(|&t| age(now, t)).collect(),
                attempt: slot.attempt,
                restarts: slot.restarts,
                last_exit: slot.last_exit,
                last_end: slot.last_end.clone(),
                ready_age_ms: slot.ready_at.map(|t| age(now, t)),
                healthy: slot.healthy,
                health_failures: slot.health_failures,
                health_reason: slot.health_reason.clone(),
                checks_failed: slot.checks_failed,
                last_restart: slot.last_restart.clone(),
                history: slot
                    .history
                    .iter()
                    .map(|c| ChangeState { state: c.state.clone(), reason: c.reason.clone(), age_ms: age(now, c.at) })
                    .collect(),
                timer_generation: slot.timer_generation,
            });
        }
        Ok(MachineState { slots, announced_ready: self.announced_ready })
    }

    /// The machine an earlier image carried, and the timers it had running (a backoff's, for
    /// what is left of it).
    pub(crate) fn from_carried(state: MachineState, now: Instant, seed: u64) -> (Machine, Vec<Action>) {
        let mut timers = Vec::new();
        let slots: Vec<Slot> = state
            .slots
            .into_iter()
            .map(|carried| {
                let mut slot = Slot::new(carried.program, now);
                if let State::Backoff { delay } = carried.state {
                    let left = delay.saturating_sub(Duration::from_millis(carried.in_state_ms));
                    let name = slot.program.name.clone();
                    timers.push(Action::SetTimer { name, after: left, generation: carried.timer_generation });
                }
                slot.state = carried.state;
                slot.since = at(now, carried.in_state_ms);
                slot.starts = carried.start_ages_ms.iter().map(|&a| at(now, a)).collect();
                slot.attempt = carried.attempt;
                slot.restarts = carried.restarts;
                slot.last_exit = carried.last_exit;
                slot.last_end = carried.last_end;
                slot.ready_at = carried.ready_age_ms.map(|a| at(now, a));
                slot.healthy = carried.healthy;
                slot.health_failures = carried.health_failures;
                slot.health_reason = carried.health_reason;
                slot.checks_failed = carried.checks_failed;
                slot.last_restart = carried.last_restart;
                slot.history = carried
                    .history
                    .into_iter()
                    .map(|c| Change { state: c.state, reason: c.reason, at: at(now, c.age_ms) })
                    .collect::<VecDeque<_>>();
                slot.timer_generation = carried.timer_generation;
                slot
            })
            .collect();
        let index = slots.iter().enumerate().map(|(i, s)| (s.program.name.clone(), i)).collect();
        let machine = Machine {
            slots,
            index,
            shutting_down: false,
            announced_ready: state.announced_ready,
            jitter: Jitter::new(seed),
        };
        (machine, timers)
    }

    /// The programs it runs, in order (the plan of a machine carried between two decisions).
    pub(crate) fn programs(&self) -> Vec<Program> {
        self.slots.iter().map(|slot| slot.program.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::plan::{Invocation, Plan};

    fn plan_of(names: &[&str]) -> Plan {
        let programs = names.iter().map(|name| Program::new(*name, Invocation::Shell("true".into()))).collect();
        Plan::new(programs).expect("a plan")
    }

    #[tokio::test(start_paused = true)]
    async fn a_carried_machine_reads_back_with_its_counts_ages_and_backoff() {
        let plan = plan_of(&["api", "web"]);
        let start = Instant::now();
        let mut machine = Machine::new(&plan, start, 7);
        machine.slots[0].state = State::Ready;
        machine.slots[0].restarts = 3;
        machine.slots[0].ready_at = Some(start);
        machine.slots[1].state = State::Backoff { delay: Duration::from_secs(10) };
        machine.slots[1].timer_generation = 4;
        tokio::time::advance(Duration::from_secs(4)).await;
        let now = Instant::now();
        let json = serde_json::to_string(&machine.carried(now).expect("carried")).expect("written");
        let state: MachineState = serde_json::from_str(&json).expect("read back");
        let (back, timers) = Machine::from_carried(state, now, 7);
        assert_eq!(back.status()[0].restarts, 3);
        assert_eq!(back.status()[0].state, State::Ready);
        assert_eq!(back.slots[0].ready_at, Some(start));
        assert_eq!(
            timers,
            [Action::SetTimer { name: "web".into(), after: Duration::from_secs(6), generation: 4 }],
            "the backoff's timer, for what is left of it"
        );
        assert_eq!(Plan::new(back.programs()).expect("a plan").programs(), plan.programs());
    }

    #[tokio::test(start_paused = true)]
    async fn a_machine_in_the_middle_of_a_start_is_not_carried() {
        let plan = plan_of(&["api"]);
        let mut machine = Machine::new(&plan, Instant::now(), 7);
        machine.slots[0].state = State::Starting;
        let why = machine.carried(Instant::now()).expect_err("refused");
        assert!(why.contains("api is starting"), "{why}");
    }
}
