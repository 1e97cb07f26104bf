//! One program's place in the machine: its settings, where it is in its life, and what the
//! decisions about it count and remember.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::{Change, HealthStatus, Relaunch, State};
use crate::exit::Exit;
use crate::supervise::plan::Program;

pub(in crate::supervise) struct Slot {
    pub(in crate::supervise) program: Program,
    pub(in crate::supervise) state: State,
    pub(in crate::supervise) since: Instant,
    /// Start times within the crash-loop window.
    pub(in crate::supervise::machine) starts: VecDeque<Instant>,
    /// Restarts since the last reset, the backoff exponent.
    pub(in crate::supervise::machine) attempt: u32,
    pub(in crate::supervise) restarts: u32,
    pub(in crate::supervise) last_exit: Option<Exit>,
    /// How its last instance ended, in words: its exit, or why it never got going.
    pub(in crate::supervise) last_end: Option<String>,
    pub(in crate::supervise) ready_at: Option<Instant>,
    pub(in crate::supervise) healthy: bool,
    pub(in crate::supervise) health_failures: u32,
    /// Why the last health check failed, while failures are counted.
    pub(in crate::supervise::machine) health_reason: String,
    /// Health checks failed since the current instance started.
    pub(in crate::supervise) checks_failed: u64,
    /// Why the current stop was issued, for the restart it leads to.
    pub(in crate::supervise::machine) stop_cause: Option<String>,
    pub(in crate::supervise) last_restart: Option<String>,
    pub(in crate::supervise) history: VecDeque<Change>,
    /// Restart once the current stop completes: after a backoff (health failure), or at once
    /// (a restart request).
    pub(in crate::supervise) restart_after_stop: Option<Relaunch>,
    /// The stop was requested while the start was still in progress.
    pub(in crate::supervise) stop_when_started: bool,
    pub(in crate::supervise) timer_generation: u64,
    /// Removed by a reload: stopped (dependents first), then dropped.
    pub(in crate::supervise) retiring: bool,
    /// Its settings from a reload, taken up when its current instance has stopped.
    pub(in crate::supervise) pending: Option<Program>,
    /// Why its next rolling restart comes, when it is not a plain request: its settings
    /// changed (a reload rolls it).
    pub(in crate::supervise) roll_cause: Option<String>,
}

impl Slot {
    pub(in crate::supervise) fn new(program: Program, now: Instant) -> Slot {
        // One started only when asked begins as stopped on request: `up` keeps running for it,
        // `warren start` starts it.
        let (state, history) = if program.autostart {
            (State::Waiting, VecDeque::new())
        } else {
            let change = Change { state: State::Stopped, reason: Some("autostart = false".to_owned()), at: now };
            (State::Stopped, VecDeque::from([change]))
        };
        Slot {
            program,
            state,
            since: now,
            starts: VecDeque::new(),
            attempt: 0,
            restarts: 0,
            last_exit: None,
            last_end: None,
            ready_at: None,
            healthy: false,
            health_failures: 0,
            health_reason: String::new(),
            checks_failed: 0,
            stop_cause: None,
            last_restart: None,
            history,
            restart_after_stop: None,
            stop_when_started: false,
            timer_generation: 0,
            retiring: false,
            pending: None,
            roll_cause: None,
        }
    }
}

impl Slot {
    pub(in crate::supervise::machine) fn health(&self) -> Option<HealthStatus> {
        self.program.health.as_ref()?;
        if self.health_failures > 0 {
            let reason = self.health_reason.clone();
            Some(HealthStatus::Unhealthy { failures: self.health_failures, reason })
        } else if self.healthy {
            Some(HealthStatus::Healthy)
        } else {
            // Checks begin once it is ready; until then (and until the first verdict) it has
            // a check that has not answered yet, which "-" (no check) would hide.
            matches!(self.state, State::Starting | State::Running | State::Ready).then_some(HealthStatus::Pending)
        }
    }
}
