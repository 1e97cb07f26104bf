//! When a half that finds its ring empty (or full) looks again for a few microseconds before it
//! parks (docs/SHM.md §5, "Spinning, only when it can pay off"). Waking a parked peer costs
//! tens of microseconds on a VM; a peer running on another CPU answers in well under one. But a
//! spin on the CPU the peer needs only delays it, so every rule here is about whether the peer
//! can be running elsewhere right now:
//!
//! 1. the two processes may run at once: together they have two CPUs or more, and are not
//!    both pinned to the same one (checked again every second, for `taskset -p`);
//! 2. something is owed: this side has sent since it last received (an answer is coming), or
//!    it waits for room. A read half that parked with nothing owed is woken by its own side's
//!    next send, so that it waits for the answer spinning;
//! 3. the peer's last known CPU is not this one (then it is not running: this side is);
//! 4. the spin stops after [`BUDGET`]; after [`FAILURES_BEFORE_PAUSE`] fruitless spins in a
//!    row, none for the next [`PAUSED_WAITS`] waits.
//!
//! There is no rule against spinning for a peer that was parked when this side sent, though
//! waking it takes longer than the budget: with it, two sides that once parked never spun
//! again (each rang the other, so each skipped its spin, so each parked), and a split tiny call
//! stayed at 45 µs instead of 1.2 µs. The failures' pause bounds what the rule saved.
//!
//! A spin holds its thread for at most [`IN_ONE_POLL`] at a time, then yields (the task wakes
//! itself and returns `Pending`), so the peer's own handler, on a current-thread runtime in the
//! same process, still runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Pid;
use rustix::thread::CpuSet;

/// How long a spin looks within one poll before it yields to the runtime's other tasks: long
/// enough that a yield (a trip through the scheduler, and past three in a row a wake-up of an
/// idle worker thread to steal it) is rare, short enough not to hold back a handler on the same
/// thread for long.
pub(crate) const IN_ONE_POLL: Duration = Duration::from_micros(2);

/// How long one spin looks before the half parks.
pub(crate) const BUDGET: Duration = Duration::from_micros(20);
const FAILURES_BEFORE_PAUSE: u32 = 8;
const PAUSED_WAITS: u32 = 256;
/// How often the CPUs the two processes may run on are looked at again.
const RECHECK: Duration = Duration::from_secs(1);
/// The `cpu` word's value before its owner first waited, or when it does not know.
pub(crate) const UNKNOWN_CPU: u32 = u32::MAX;

/// Spins begun and spins that found what they waited for, in this process: for tests and the
/// benches' reports.
pub(crate) static SPINS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SPIN_HITS: AtomicU64 = AtomicU64::new(0);

/// Spins begun and spins that found what they waited for, in this process so far.
pub fn counts() -> (u64, u64) {
    (SPINS.load(Ordering::Relaxed), SPIN_HITS.load(Ordering::Relaxed))
}

/// What one wait knows when it decides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    pub now: Instant,
    /// Rule 2.
    pub owed: bool,
    /// Rule 3: the CPU the peer last began a wait on, and ours now.
    pub peer_cpu: u32,
    pub our_cpu: u32,
}

/// What a half that found nothing does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Yield and look again.
    Look,
    /// Mark itself parked and wait for the bell.
    Park,
}

/// One half's spin state.
#[derive(Debug)]
pub(crate) struct Spinner {
    peer_pid: Option<Pid>,
    /// Rule 1, and when it was last checked.
    may_run_at_once: bool,
    checked_at: Option<Instant>,
    /// The spin under way ends at this instant.
    until: Option<Instant>,
    failures: u32,
    paused_waits: u32,
}

impl Spinner {
    /// For a half whose peer process is `peer_pid` (SO_PEERCRED; `None` when unknown, e.g. in
    /// another pid namespace).
    pub fn new(peer_pid: Option<Pid>) -> Spinner {
        Spinner { peer_pid, may_run_at_once: false, checked_at: None, until: None, failures: 0, paused_waits: 0 }
    }

    /// The half found nothing: look again, or park.
    pub fn step(&mut self, moment: Moment) -> Step {
        if let Some(until) = self.until {
            if moment.now < until {
                return Step::Look;
            }
            self.until = None;
            self.failures += 1;
            if self.failures >= FAILURES_BEFORE_PAUSE {
                self.failures = 0;
                self.paused_waits = PAUSED_WAITS;
            }
            return Step::Park;
        }
        if !self.worth_it(moment) {
            return Step::Park;
        }
        self.until = Some(moment.now + BUDGET);
        SPINS.fetch_add(1, Ordering::Relaxed);
        Step::Look
    }

    /// Whether a later wait of this half might spin (the processes may run at once and
    /// spinning is not paused): worth waking it for when something becomes owed.
    pub fn may_spin_later(&mut self, now: Instant) -> bool {
        self.paused_waits == 0 && self.may_run_at_once(now)
    }

    /// The half found what it waited for.
    pub fn found(&mut self) {
        if self.until.take().is_some() {
            self.failures = 0;
            SPIN_HITS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn worth_it(&mut self, moment: Moment) -> bool {
        if self.paused_waits > 0 {
            self.paused_waits -= 1;
            return false;
        }
        if !moment.owed || moment.peer_cpu == moment.our_cpu {
            return false;
        }
        self.may_run_at_once(moment.now)
    }

    /// Rule 1, looked at again once it is [`RECHECK`] old.
    fn may_run_at_once(&mut self, now: Instant) -> bool {
        if self.checked_at.is_none_or(|at| now.duration_since(at) >= RECHECK) {
            self.checked_at = Some(now);
            let ours = rustix::thread::sched_getaffinity(None).ok();
            let peer = self.peer_pid.and_then(|pid| rustix::thread::sched_getaffinity(Some(pid)).ok());
            self.may_run_at_once = may_run_at_once(ours.as_ref(), peer.as_ref());
        }
        self.may_run_at_once
    }
}

/// Rule 1 from the two processes' CPU masks (`None`: unknown).
fn may_run_at_once(ours: Option<&CpuSet>, peer: Option<&CpuSet>) -> bool {
    let Some(ours) = ours else { return false };
    match peer {
        // Both on the same single CPU: only one runs at a time.
        Some(peer) if ours.count() == 1 && peer == ours => false,
        Some(peer) => union_has_two(ours, peer),
        // The peer's mask unknown: only if ours alone leaves it a CPU to run on.
        None => ours.count() >= 2,
    }
}

fn union_has_two(ours: &CpuSet, peer: &CpuSet) -> bool {
    (0..CpuSet::MAX_CPU).filter(|&cpu| ours.is_set(cpu) || peer.is_set(cpu)).nth(1).is_some()
}

/// The CPU this thread runs on now (the vDSO's `getcpu`), as the `cpu` word holds it.
pub(crate) fn current_cpu() -> u32 {
    u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(UNKNOWN_CPU)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(list: &[usize]) -> CpuSet {
        let mut set = CpuSet::new();
        for &cpu in list {
            set.set(cpu);
        }
        set
    }

    fn moment(now: Instant) -> Moment {
        Moment { now, owed: true, peer_cpu: 1, our_cpu: 0 }
    }

    #[test]
    fn two_processes_run_at_once_unless_both_are_pinned_to_one_cpu() {
        assert!(!may_run_at_once(Some(&cpus(&[0])), Some(&cpus(&[0]))), "both on CPU 0");
        assert!(may_run_at_once(Some(&cpus(&[0])), Some(&cpus(&[1]))), "split: 0 and 1");
        assert!(may_run_at_once(Some(&cpus(&[0, 1])), Some(&cpus(&[0, 1]))), "unpinned");
        assert!(!may_run_at_once(Some(&cpus(&[0])), None), "alone on one CPU, the peer unknown");
        assert!(may_run_at_once(Some(&cpus(&[0, 1])), None));
        assert!(!may_run_at_once(None, Some(&cpus(&[0, 1]))), "our own mask unknown");
    }

    #[test]
    fn a_spin_looks_until_its_budget_is_spent_then_parks() {
        let mut spinner = Spinner::new(None);
        spinner.may_run_at_once = true;
        spinner.checked_at = Some(Instant::now());
        let start = Instant::now();
        assert_eq!(spinner.step(moment(start)), Step::Look);
        assert_eq!(spinner.step(moment(start + BUDGET / 2)), Step::Look);
        assert_eq!(spinner.step(moment(start + BUDGET)), Step::Park, "spent");
        assert_eq!(spinner.failures, 1);
        assert_eq!(spinner.step(moment(start + BUDGET * 2)), Step::Look, "the next wait spins again");
        spinner.found();
        assert_eq!(spinner.failures, 0, "a spin that found its data clears the failures");
    }

    #[test]
    fn nothing_owed_or_a_peer_on_our_cpu_means_no_spin() {
        let mut spinner = Spinner::new(None);
        spinner.may_run_at_once = true;
        spinner.checked_at = Some(Instant::now());
        let now = Instant::now();
        assert_eq!(spinner.step(Moment { owed: false, ..moment(now) }), Step::Park);
        assert_eq!(spinner.step(Moment { peer_cpu: 0, ..moment(now) }), Step::Park);
        spinner.may_run_at_once = false;
        assert_eq!(spinner.step(moment(now)), Step::Park, "rule 1");
    }

    #[test]
    fn eight_fruitless_spins_in_a_row_pause_spinning_for_256_waits() {
        let mut spinner = Spinner::new(None);
        spinner.may_run_at_once = true;
        spinner.checked_at = Some(Instant::now());
        let mut now = Instant::now();
        for _ in 0..FAILURES_BEFORE_PAUSE {
            assert_eq!(spinner.step(moment(now)), Step::Look);
            now += BUDGET;
            assert_eq!(spinner.step(moment(now)), Step::Park);
        }
        for _ in 0..PAUSED_WAITS {
            assert_eq!(spinner.step(moment(now)), Step::Park, "paused");
        }
        assert_eq!(spinner.step(moment(now)), Step::Look, "spinning again");
    }
}
