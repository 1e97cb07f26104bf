//! The supervisor's decisions, with tokio's paused clock and no processes.

use std::time::Duration;

use tokio::time::{Instant, advance};

use super::machine::{Action, Event, HealthStatus, Machine, State};
use super::plan::{
    Backoff, Condition, CrashLoop, Dependency, Health, HealthCheck, Invocation, Plan, Program, ReadyCheck, Restart,
};
use crate::exit::Exit;

fn program(name: &str) -> Program {
    let mut program = Program::new(name, Invocation::Shell("true".into()));
    program.backoff =
        Backoff { initial: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(8), jitter: 0.0 };
    program
}

fn depends(mut program: Program, on: &str, condition: Condition) -> Program {
    program.depends_on.push(Dependency { name: on.into(), condition });
    program
}

fn spawned(actions: &[Action]) -> Vec<&str> {
    actions.iter().filter_map(|a| if let Action::Spawn { name } = a { Some(name.as_str()) } else { None }).collect()
}

fn stopped(actions: &[Action]) -> Vec<&str> {
    actions.iter().filter_map(|a| if let Action::Stop { name } = a { Some(name.as_str()) } else { None }).collect()
}

fn timer(actions: &[Action]) -> Option<(Duration, u64)> {
    actions.iter().find_map(|a| {
        if let Action::SetTimer { after, generation, .. } = a { Some((*after, *generation)) } else { None }
    })
}

/// Feeds events at the paused clock's current time.
struct Harness {
    machine: Machine,
}

impl Harness {
    fn new(programs: Vec<Program>) -> (Harness, Vec<Action>) {
        let mut machine = Machine::new(&Plan::new(programs).expect("a valid plan"), Instant::now(), 1);
        let actions = machine.begin(Instant::now());
        (Harness { machine }, actions)
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        self.machine.handle(Instant::now(), event)
    }

    fn up(&mut self, name: &str) -> Vec<Action> {
        let mut actions = self.on(Event::Started { name: name.into() });
        actions.extend(self.on(Event::Ready { name: name.into() }));
        actions
    }

    fn crash(&mut self, name: &str) -> Vec<Action> {
        self.on(Event::Exited { name: name.into(), exit: Exit::Code(1) })
    }

    fn state(&self, name: &str) -> State {
        self.machine.state(name).cloned().expect("known program")
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_exponentially_up_to_its_cap() {
    let mut p = program("api");
    p.restart = Restart::Always;
    p.crash_loop = CrashLoop { max_starts: 100, window: Duration::from_secs(1) };
    let (mut h, actions) = Harness::new(vec![p]);
    assert_eq!(spawned(&actions), ["api"]);
    let mut delays = Vec::new();
    for _ in 0..6 {
        h.up("api");
        let actions = h.crash("api");
        let (after, generation) = timer(&actions).expect("restart scheduled");
        assert_eq!(h.state("api"), State::Backoff { delay: after });
        delays.push(after.as_secs());
        advance(after).await;
        let actions = h.on(Event::Timer { name: "api".into(), generation });
        assert_eq!(spawned(&actions), ["api"], "restarted when the timer fired");
    }
    assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_marks_the_program_failed_and_leaves_it_alone() {
    let mut p = program("api");
    p.restart = Restart::Always;
    p.crash_loop = CrashLoop { max_starts: 3, window: Duration::from_secs(60) };
    let (mut h, _) = Harness::new(vec![p]);
    for start in 1..=3 {
        h.on(Event::Started { name: "api".into() });
        let actions = h.crash("api");
        if start < 3 {
            let (after, generation) = timer(&actions).expect("restart");
            advance(after).await;
            h.on(Event::Timer { name: "api".into(), generation });
        } else {
            assert!(timer(&actions).is_none(), "no more restarts");
        }
    }
    assert!(
        matches!(h.state("api"), State::Failed { reason } if reason.contains("crash loop: 3 starts")),
        "{:?}",
        h.state("api")
    );
    advance(Duration::from_secs(3600)).await;
    let actions = h.on(Event::Timer { name: "api".into(), generation: 99 });
    assert!(spawned(&actions).is_empty(), "a failed program is left alone");
    // An explicit start gives it a fresh chance.
    let actions = h.on(Event::Start { name: "api".into() });
    assert_eq!(spawned(&actions), ["api"]);
}

#[tokio::test(start_paused = true)]
async fn starts_spread_beyond_the_window_are_not_a_crash_loop() {
    let mut p = program("api");
    p.restart = Restart::OnFailure;
    p.backoff.initial = Duration::from_secs(30);
    p.backoff.max = Duration::from_secs(30);
    p.crash_loop = CrashLoop { max_starts: 2, window: Duration::from_secs(20) };
    let (mut h, _) = Harness::new(vec![p]);
    for _ in 0..5 {
        h.on(Event::Started { name: "api".into() });
        let (after, generation) = timer(&h.crash("api")).expect("restart");
        advance(after).await;
        assert_eq!(spawned(&h.on(Event::Timer { name: "api".into(), generation })), ["api"]);
    }
}

#[tokio::test(start_paused = true)]
async fn on_failure_does_not_restart_a_clean_exit_and_never_never_restarts() {
    let mut once = program("once");
    once.restart = Restart::OnFailure;
    let never = program("never");
    let (mut h, _) = Harness::new(vec![once, never]);
    h.up("once");
    h.up("never");
    let actions = h.on(Event::Exited { name: "once".into(), exit: Exit::Code(0) });
    assert!(timer(&actions).is_none());
    assert_eq!(h.state("once"), State::Exited { exit: Exit::Code(0) });
    let actions = h.crash("never");
    assert!(timer(&actions).is_none());
    assert_eq!(h.state("never"), State::Exited { exit: Exit::Code(1) });
    assert!(h.machine.any_failed());
}

#[tokio::test(start_paused = true)]
async fn dependents_start_only_when_their_condition_holds() {
    let db = program("db");
    let migrate = depends(program("migrate"), "db", Condition::Ready);
    let api = depends(depends(program("api"), "migrate", Condition::ExitedOk), "db", Condition::Ready);
    let (mut h, actions) = Harness::new(vec![db, migrate, api]);
    assert_eq!(spawned(&actions), ["db"], "only the program without dependencies starts");
    let actions = h.on(Event::Started { name: "db".into() });
    assert!(spawned(&actions).is_empty(), "started is not ready");
    let actions = h.on(Event::Ready { name: "db".into() });
    assert_eq!(spawned(&actions), ["migrate"]);
    h.up("migrate");
    assert_eq!(h.state("api"), State::Waiting);
    let actions = h.on(Event::Exited { name: "migrate".into(), exit: Exit::Code(0) });
    assert_eq!(spawned(&actions), ["api"]);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_fails_fails_its_dependents() {
    let setup = program("setup");
    let api = depends(program("api"), "setup", Condition::ExitedOk);
    let (mut h, _) = Harness::new(vec![setup, api]);
    h.up("setup");
    h.on(Event::Exited { name: "setup".into(), exit: Exit::Code(2) });
    assert!(matches!(h.state("api"), State::Failed { reason } if reason.contains("setup")), "{:?}", h.state("api"));
}

#[tokio::test(start_paused = true)]
async fn healthy_gating_and_restart_after_failed_health_checks() {
    let mut db = program("db");
    db.health = Some(Health {
        check: HealthCheck::RpcPing,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        failures: 2,
    });
    db.restart = Restart::OnFailure;
    let api = depends(program("api"), "db", Condition::Healthy);
    let (mut h, _) = Harness::new(vec![db, api]);
    h.up("db");
    assert_eq!(h.state("api"), State::Waiting, "ready is not yet healthy");
    let actions = h.on(Event::HealthPassed { name: "db".into() });
    assert_eq!(spawned(&actions), ["api"]);
    let failed = || Event::HealthFailed { name: "db".into(), reason: "HTTP 503".into() };
    assert!(stopped(&h.on(failed())).is_empty(), "one failure is tolerated");
    let actions = h.on(failed());
    assert_eq!(stopped(&actions), ["db"], "two consecutive failures restart it");
    let why = "health check failed 2 times: HTTP 503";
    let reasons: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Changed { state: State::Stopping, reason, .. } => reason.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [why], "the stop says why");
    let actions = h.on(Event::Exited { name: "db".into(), exit: Exit::Signal(crate::Signal::TERM) });
    assert!(timer(&actions).is_some(), "restarted after the stop, with backoff");
    let status = h.machine.status().into_iter().find(|s| s.name == "db").expect("db");
    assert_eq!(status.last_restart.as_deref(), Some(why));
    assert_eq!(status.health, Some(HealthStatus::Unhealthy { failures: 2, reason: "HTTP 503".into() }));
    assert_eq!(status.history.last().and_then(|c| c.reason.as_deref()), status.last_restart.as_deref());
}

#[tokio::test(start_paused = true)]
async fn the_backoff_resets_after_a_healthy_period() {
    let mut p = program("api");
    p.restart = Restart::Always;
    p.reset_after = Duration::from_secs(60);
    p.crash_loop = CrashLoop { max_starts: 3, window: Duration::from_secs(600) };
    let (mut h, _) = Harness::new(vec![p]);
    let mut delays = Vec::new();
    for uptime in [0, 0, 120, 0] {
        h.up("api");
        advance(Duration::from_secs(uptime)).await;
        let (after, generation) = timer(&h.crash("api")).expect("restart, not a crash loop: the count was reset");
        delays.push(after.as_secs());
        advance(after).await;
        h.on(Event::Timer { name: "api".into(), generation });
    }
    assert_eq!(delays, [1, 2, 1, 2], "120 s of uptime reset the backoff");
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_dependents_before_their_dependencies() {
    let db = program("db");
    let cache = program("cache");
    let api = depends(depends(program("api"), "db", Condition::Ready), "cache", Condition::Started);
    let web = depends(program("web"), "api", Condition::Ready);
    let (mut h, _) = Harness::new(vec![db, cache, api, web]);
    for name in ["db", "cache", "api", "web"] {
        h.up(name);
    }
    let actions = h.on(Event::Shutdown);
    assert_eq!(stopped(&actions), ["web"], "only what nothing depends on stops first");
    let actions = h.on(Event::Exited { name: "web".into(), exit: Exit::Code(0) });
    assert_eq!(stopped(&actions), ["api"]);
    let actions = h.on(Event::Exited { name: "api".into(), exit: Exit::Code(0) });
    assert_eq!(stopped(&actions), ["db", "cache"], "independent ones in parallel");
    h.on(Event::Exited { name: "db".into(), exit: Exit::Code(0) });
    let actions = h.on(Event::Exited { name: "cache".into(), exit: Exit::Code(0) });
    assert!(actions.contains(&Action::AllStopped));
    assert!(!h.machine.any_failed(), "stopped on request is not a failure");
    assert_eq!(h.state("db"), State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn no_restart_during_shutdown_and_pending_restarts_are_cancelled() {
    let mut a = program("a");
    a.restart = Restart::Always;
    let mut b = program("b");
    b.restart = Restart::Always;
    let (mut h, _) = Harness::new(vec![a, b]);
    h.up("a");
    h.up("b");
    let (_, generation) = timer(&h.crash("b")).expect("b restarting");
    let actions = h.on(Event::Shutdown);
    assert_eq!(stopped(&actions), ["a"]);
    assert_eq!(h.state("b"), State::Stopped, "its pending restart is cancelled");
    assert!(spawned(&h.on(Event::Timer { name: "b".into(), generation })).is_empty());
    let actions = h.on(Event::Exited { name: "a".into(), exit: Exit::Signal(crate::Signal::TERM) });
    assert!(timer(&actions).is_none());
    assert!(actions.contains(&Action::AllStopped));
}

#[tokio::test(start_paused = true)]
async fn stop_start_and_restart_requests() {
    let mut p = program("api");
    p.restart = Restart::Always;
    let (mut h, _) = Harness::new(vec![p]);
    h.up("api");
    assert_eq!(stopped(&h.on(Event::Stop { name: "api".into() })), ["api"]);
    let actions = h.on(Event::Exited { name: "api".into(), exit: Exit::Signal(crate::Signal::TERM) });
    assert!(timer(&actions).is_none(), "a requested stop is not restarted, even with restart = always");
    assert_eq!(h.state("api"), State::Stopped);
    assert_eq!(spawned(&h.on(Event::Start { name: "api".into() })), ["api"]);
    h.up("api");
    assert_eq!(stopped(&h.on(Event::Restart { name: "api".into() })), ["api"]);
    let actions = h.on(Event::Exited { name: "api".into(), exit: Exit::Signal(crate::Signal::TERM) });
    assert_eq!(spawned(&actions), ["api"], "a requested restart starts again at once, without backoff");
}

#[tokio::test(start_paused = true)]
async fn autostart_false_waits_stopped_for_a_start_and_does_not_hold_up_all_ready() {
    let mut tool = program("tool");
    tool.autostart = false;
    let (mut h, actions) = Harness::new(vec![program("api"), tool]);
    assert_eq!(spawned(&actions), ["api"]);
    assert_eq!(h.state("tool"), State::Stopped);
    assert!(h.up("api").contains(&Action::AllReady), "the program left stopped on purpose is not waited for");
    assert_eq!(spawned(&h.on(Event::Start { name: "tool".into() })), ["tool"]);
    h.up("tool");
    assert_eq!(h.state("tool"), State::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_missed_watchdog_restarts_a_ready_program_with_backoff_whatever_its_policy() {
    let mut worker = program("worker");
    worker.watchdog = Some(Duration::from_millis(200));
    let (mut h, _) = Harness::new(vec![worker]);
    let expired = || Event::WatchdogExpired { name: "worker".into(), reason: "no WATCHDOG=1 within 200 ms".into() };
    h.on(Event::Started { name: "worker".into() });
    assert!(stopped(&h.on(expired())).is_empty(), "not ready yet: its ready timeout covers it");
    h.on(Event::Ready { name: "worker".into() });
    assert_eq!(stopped(&h.on(expired())), ["worker"]);
    let actions = h.on(Event::Exited { name: "worker".into(), exit: Exit::Signal(crate::Signal::TERM) });
    assert_eq!(timer(&actions).map(|(after, _)| after), Some(Duration::from_secs(1)), "after its backoff");
    let status = h.machine.status().into_iter().find(|s| s.name == "worker").expect("worker");
    assert_eq!(status.last_restart.as_deref(), Some("watchdog: no WATCHDOG=1 within 200 ms"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_requested_while_starting_happens_once_started() {
    let (mut h, _) = Harness::new(vec![program("slow")]);
    assert!(stopped(&h.on(Event::Shutdown)).is_empty(), "cannot stop what has no pid yet");
    let actions = h.on(Event::Started { name: "slow".into() });
    assert_eq!(stopped(&actions), ["slow"]);
}

#[tokio::test(start_paused = true)]
async fn all_ready_is_announced_once() {
    let mut worker = program("worker");
    worker.readiness = ReadyCheck::Notify;
    let (mut h, _) = Harness::new(vec![program("setup"), worker]);
    h.up("setup");
    let actions = h.up("worker");
    assert_eq!(actions.iter().filter(|a| **a == Action::AllReady).count(), 1);
    let actions = h.on(Event::HealthPassed { name: "worker".into() });
    assert!(!actions.contains(&Action::AllReady));
}

#[tokio::test(start_paused = true)]
async fn a_lost_socket_restarts_at_once_but_counts_toward_the_crash_loop() {
    let mut p = program("api");
    p.crash_loop = CrashLoop { max_starts: 3, window: Duration::from_secs(600) };
    let (mut h, _) = Harness::new(vec![p]);
    for _ in 0..2 {
        h.up("api");
        let actions = h.on(Event::SocketLost { name: "api".into() });
        assert_eq!(stopped(&actions), ["api"]);
        assert!(h.on(Event::SocketLost { name: "api".into() }).is_empty(), "once is enough while it stops");
        let actions = h.on(Event::Exited { name: "api".into(), exit: Exit::Code(0) });
        assert_eq!((spawned(&actions), timer(&actions)), (vec!["api"], None), "at once, without backoff");
    }
    h.up("api");
    h.on(Event::SocketLost { name: "api".into() });
    let actions = h.on(Event::Exited { name: "api".into(), exit: Exit::Code(0) });
    assert!(spawned(&actions).is_empty());
    assert!(matches!(h.state("api"), State::Failed { .. }), "the fourth start in the window is a crash loop");
}

#[tokio::test(start_paused = true)]
async fn a_lost_socket_during_shutdown_or_before_ready_changes_nothing() {
    let (mut h, _) = Harness::new(vec![program("api")]);
    h.on(Event::Started { name: "api".into() });
    assert!(h.on(Event::SocketLost { name: "api".into() }).is_empty(), "not ready yet");
    h.on(Event::Ready { name: "api".into() });
    assert_eq!(stopped(&h.on(Event::Shutdown)), ["api"]);
    assert!(h.on(Event::SocketLost { name: "api".into() }).is_empty());
    h.on(Event::Exited { name: "api".into(), exit: Exit::Code(0) });
    assert_eq!(h.state("api"), State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_program_not_found_fails_at_once_and_a_start_that_timed_out_is_retried() {
    use std::sync::Arc;

    use super::machine::StartError;
    use crate::SpawnError;

    let mut missing = program("missing");
    missing.restart = Restart::Always;
    let mut slow = program("slow");
    slow.restart = Restart::Always;
    let (mut h, _) = Harness::new(vec![missing, slow]);
    let error = StartError::Spawn(Arc::new(SpawnError::NotFound {
        name: "missing".into(),
        program: "/opt/app/missing".into(),
        looked_in: vec!["/opt/app".into()],
    }));
    assert!(error.is_permanent());
    let actions = h.on(Event::StartFailed { name: "missing".into(), error });
    assert_eq!(timer(&actions), None, "no restart is scheduled");
    let reason = "cannot start missing: program not found: missing; looked in /opt/app";
    assert_eq!(h.machine.state("missing"), Some(&State::Failed { reason: reason.into() }));

    let error = StartError::NotReady(Duration::from_secs(1));
    assert!(!error.is_permanent());
    let actions = h.on(Event::StartFailed { name: "slow".into(), error });
    assert!(timer(&actions).is_some(), "a start that may work next time is retried");
}

fn stop_and_exit(h: &mut Harness, name: &str) -> Vec<Action> {
    h.on(Event::Exited { name: name.into(), exit: Exit::Signal(crate::Signal::TERM) })
}

fn names(h: &Harness) -> Vec<String> {
    h.machine.status().into_iter().map(|s| s.name).collect()
}

#[test]
fn a_plan_diff_sorts_programs_by_what_happens_to_them() {
    let old = Plan::new(vec![program("a"), program("b"), program("c")]).expect("plan");
    let mut changed = program("b");
    changed.env.push(("MARK".into(), "2".into()));
    let new = Plan::new(vec![program("d"), changed, program("a")]).expect("plan");
    let diff = super::PlanDiff::between(&old, &new);
    assert_eq!(diff.added, ["d"]);
    assert_eq!(diff.changed, ["b"]);
    assert_eq!(diff.unchanged, ["a"]);
    assert_eq!(diff.removed, ["c"]);
    assert!(!diff.is_empty());
    assert!(super::PlanDiff::between(&old, &old).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reload_stops_removed_programs_dependents_first_restarts_changed_ones_and_starts_new_ones() {
    let (mut h, _) = Harness::new(vec![program("db"), depends(program("api"), "db", Condition::Ready), program("web")]);
    for name in ["db", "api", "web"] {
        h.up(name);
    }
    let mut web = program("web");
    web.env.push(("MARK".into(), "2".into()));
    let new = Plan::new(vec![web.clone(), depends(program("cron"), "web", Condition::Ready)]).expect("plan");
    let actions = h.on(Event::Reload { plan: new, rolled: Vec::new() });
    // api goes before db, which it depends on; web restarts; cron waits for the new web.
    assert_eq!(stopped(&actions), ["web", "api"]);
    assert!(spawned(&actions).is_empty(), "{actions:?}");
    assert_eq!(h.state("db"), State::Ready);
    let actions = stop_and_exit(&mut h, "api");
    assert_eq!(stopped(&actions), ["db"]);
    let actions = stop_and_exit(&mut h, "web");
    assert_eq!(spawned(&actions), ["web"]);
    assert_eq!(h.machine.program("web"), Some(&web), "restarted with its new settings");
    let actions = h.up("web");
    assert_eq!(spawned(&actions), ["cron"]);
    stop_and_exit(&mut h, "db");
    // Removed programs are forgotten once stopped; the order is the new plan's.
    assert_eq!(names(&h), ["web", "cron"]);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_program_is_left_alone_and_a_removed_one_that_crashes_is_not_restarted() {
    let mut keep = program("keep");
    keep.restart = Restart::Always;
    let mut gone = program("gone");
    gone.restart = Restart::Always;
    let (mut h, _) = Harness::new(vec![keep.clone(), gone, depends(program("user"), "gone", Condition::Started)]);
    for name in ["keep", "gone", "user"] {
        h.up(name);
    }
    let actions = h.on(Event::Reload { plan: Plan::new(vec![keep]).expect("plan"), rolled: Vec::new() });
    assert_eq!(stopped(&actions), ["user"], "gone waits for its dependent");
    assert!(!actions.iter().any(|a| matches!(a, Action::Changed { name, .. } if name == "keep")), "{actions:?}");
    // gone ends by itself while it waits: not restarted, despite `restart = always`.
    let actions = h.crash("gone");
    assert!(spawned(&actions).is_empty() && timer(&actions).is_none(), "{actions:?}");
    stop_and_exit(&mut h, "user");
    assert_eq!(names(&h), ["keep"]);
    assert_eq!(h.state("keep"), State::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_rolled_program_takes_its_new_settings_without_a_restart_unless_it_is_not_ready() {
    let (mut h, _) = Harness::new(vec![program("web"), program("api")]);
    h.up("web");
    h.on(Event::Started { name: "api".into() });
    let (mut web, mut api) = (program("web"), program("api"));
    web.env.push(("MARK".into(), "2".into()));
    api.env.push(("MARK".into(), "2".into()));
    let plan = Plan::new(vec![web.clone(), api.clone()]).expect("plan");
    let actions = h.on(Event::Reload { plan, rolled: vec!["web".into(), "api".into()] });
    // web is ready: its next instance, rolled in beside this one, runs with the new settings.
    assert!(!stopped(&actions).contains(&"web"), "{actions:?}");
    assert_eq!(h.state("web"), State::Ready);
    assert_eq!(h.machine.program("web"), Some(&web));
    // api is not ready yet: nothing to roll from, so it restarts the plain way.
    assert_eq!(stopped(&actions), ["api"], "{actions:?}");
    // The roll, once over, says why it came.
    h.on(Event::Rolled { name: "web".into() });
    let status = h.machine.status().into_iter().find(|s| s.name == "web").expect("web");
    assert_eq!(status.last_restart.as_deref(), Some("its settings changed (rolling restart)"));
}

#[tokio::test(start_paused = true)]
async fn a_program_stopped_on_request_takes_its_new_settings_but_stays_stopped() {
    let (mut h, _) = Harness::new(vec![program("a")]);
    h.up("a");
    h.on(Event::Stop { name: "a".into() });
    stop_and_exit(&mut h, "a");
    let mut a = program("a");
    a.grace = Duration::from_secs(30);
    let actions = h.on(Event::Reload { plan: Plan::new(vec![a.clone()]).expect("plan"), rolled: Vec::new() });
    assert!(spawned(&actions).is_empty());
    assert_eq!(h.state("a"), State::Stopped);
    assert_eq!(h.machine.program("a"), Some(&a));
}

#[tokio::test(start_paused = true)]
async fn a_program_named_again_while_it_is_being_removed_comes_back() {
    let (mut h, _) = Harness::new(vec![program("a"), program("b")]);
    h.up("a");
    h.up("b");
    let both = Plan::new(vec![program("a"), program("b")]).expect("plan");
    let actions = h.on(Event::Reload { plan: Plan::new(vec![program("a")]).expect("plan"), rolled: Vec::new() });
    assert_eq!(stopped(&actions), ["b"]);
    let actions = h.on(Event::Reload { plan: both, rolled: Vec::new() });
    assert!(stopped(&actions).is_empty());
    let actions = stop_and_exit(&mut h, "b");
    assert_eq!(spawned(&actions), ["b"]);
    assert_eq!(names(&h), ["a", "b"]);
}
