//! `start`, `stop` and `restart` as the running instance carries them out: several programs
//! at once or all of them, waiting until they are up (or down), dependents stopped first.
//!
//! Built on the supervisor's public handle (requests, status, updates) rather than on new
//! machine events, so that the machine's decisions stay as they are: this module only orders
//! requests and watches what comes of them.

mod rolling;
mod stop;
mod wait;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use warren::supervise::Supervisor;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren_rpc::HandlerError;

use crate::control::{Outcome, OutcomeKind, ProgramsRequest, codes};
pub use stop::stop;
use wait::Watch;

/// Added to every bound derived from the settings: what they do not count (spawning, reaping,
/// the probes' own start), so that only a program that overran its own settings times out.
const MARGIN: Duration = Duration::from_secs(5);

/// The programs a request names, each once, in the order given (the plan's for `--all`).
fn targets(supervisor: &Supervisor, request: &ProgramsRequest) -> Result<Vec<String>, HandlerError> {
    let plan = supervisor.plan();
    if request.all {
        return Ok(plan.programs().iter().map(|p| p.name.clone()).collect());
    }
    // A replicated program's name stands for its members.
    let names: Vec<String> = request
        .names
        .iter()
        .flat_map(|n| match plan.replicas(n) {
            members if plan.program(n).is_none() && !members.is_empty() => {
                members.iter().map(|p| p.name.clone()).collect()
            }
            _ => vec![n.clone()],
        })
        .collect();
    let unknown: Vec<&str> = names.iter().filter(|n| plan.program(n).is_none()).map(String::as_str).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = plan.programs().iter().map(|p| p.name.as_str()).collect();
        let unknown: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
        let message = format!("no program named {} (known: {})", unknown.join(", "), known.join(", "));
        return Err(HandlerError::new(codes::UNKNOWN_PROGRAM, message));
    }
    if names.is_empty() {
        return Err(HandlerError::new(codes::UNKNOWN_PROGRAM, "no program named (give names, or --all)"));
    }
    let mut seen = HashSet::new();
    Ok(names.iter().filter(|n| seen.insert(n.as_str())).cloned().collect())
}

/// Every program `name` depends on, directly or not (`up = true`), or every program that
/// depends on it (`up = false`); not `name` itself.
fn related(plan: &Plan, name: &str, up: bool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut queue = vec![name.to_owned()];
    while let Some(next) = queue.pop() {
        let step: Vec<String> = if up {
            plan.program(&next).map(|p| p.depends_on.iter().map(|d| d.name.clone()).collect()).unwrap_or_default()
        } else {
            plan.programs()
                .iter()
                .filter(|p| p.depends_on.iter().any(|d| d.name == next))
                .map(|p| p.name.clone())
                .collect()
        };
        for other in step {
            if other != name && !found.contains(&other) {
                found.push(other.clone());
                queue.push(other);
            }
        }
    }
    found
}

/// How long `names` may take to be up again: for each, its own stop and start and those of
/// everything it waits for, as its settings bound them (`grace`, `ready_timeout`), one after
/// the other; the longest of them, plus [`MARGIN`].
fn up_bound(plan: &Plan, names: &[String]) -> Duration {
    let each = |name: &String| -> Duration {
        std::iter::once(name.clone())
            .chain(related(plan, name, true))
            .filter_map(|n| plan.program(&n).map(|p| p.grace + p.ready_timeout))
            .sum()
    };
    names.iter().map(each).max().unwrap_or_default() + MARGIN
}

fn bound(request: &ProgramsRequest, derived: Duration) -> Duration {
    request.timeout_ms.map_or(derived, Duration::from_millis)
}

fn states(supervisor: &Supervisor) -> HashMap<String, (State, Option<u32>)> {
    supervisor.status().into_iter().map(|s| (s.name, (s.state, s.pid))).collect()
}

/// `names` in start order. The machine takes requests one at a time: a program started before
/// the dependency started with it would find that dependency stopped, and fail at once.
fn dependencies_first(plan: &Plan, names: &[String]) -> Vec<String> {
    plan.start_order().into_iter().flatten().filter(|name| names.contains(name)).collect()
}

/// Puts outcomes in the order the programs were named.
fn in_order(names: &[String], mut outcomes: Vec<Outcome>) -> Vec<Outcome> {
    outcomes.sort_by_key(|o| names.iter().position(|n| *n == o.program).unwrap_or(usize::MAX));
    outcomes
}

/// `warren start`: a program that runs (or is on its way) is left alone and said so; one that
/// stopped, exited or failed starts again, its crash-loop count reset by the machine.
pub async fn start(supervisor: Supervisor, request: ProgramsRequest) -> Result<Vec<Outcome>, HandlerError> {
    let names = targets(&supervisor, &request)?;
    // Before any request, so that no state change of theirs is missed.
    let mut watch = Watch::new(&supervisor);
    let mut outcomes = Vec::new();
    let mut asked = Vec::new();
    let now = states(&supervisor);
    for name in &names {
        let Some((state, pid)) = now.get(name) else { continue };
        let (kind, text) = match state {
            State::Stopping => (OutcomeKind::Failed, "is being stopped; start it once it has stopped".to_owned()),
            state if state.is_active() => (OutcomeKind::Done, format!("already running{}", wait::pid(*pid))),
            State::Waiting => (OutcomeKind::Done, "already starting (waiting for its dependencies)".to_owned()),
            State::Backoff { .. } => (OutcomeKind::Done, format!("already being restarted ({state})")),
            _ => {
                asked.push(name.clone());
                continue;
            }
        };
        outcomes.push(Outcome::new(name, kind, text));
    }
    for name in dependencies_first(&supervisor.plan(), &asked) {
        let _ = supervisor.start_program(&name);
    }
    outcomes.extend(finish(&mut watch, &request, &asked, "starting").await);
    let mut outcomes = in_order(&names, outcomes);
    outcomes.extend(left_stopped(&supervisor, &asked));
    Ok(outcomes)
}

/// The programs that depend on those just started and stay stopped (`stop` stops dependents
/// first; `start` does not bring them back unasked): said, so nobody wonders why a worker
/// never came back with its queue.
fn left_stopped(supervisor: &Supervisor, started: &[String]) -> Vec<Outcome> {
    let plan = supervisor.plan();
    let now = states(supervisor);
    let mut seen = HashSet::new();
    let mut notes = Vec::new();
    for name in started {
        for dependent in related(&plan, name, false) {
            let stopped = matches!(now.get(&dependent), Some((State::Stopped, _)));
            if stopped && !started.contains(&dependent) && seen.insert(dependent.clone()) {
                let text = format!("still stopped (it depends on {name}); `warren start {dependent}` starts it");
                notes.push(Outcome::new(&dependent, OutcomeKind::Done, text));
            }
        }
    }
    notes
}

/// `warren restart`: each program stops and starts again at once (a stopped or failed one just
/// starts); dependencies come up first, as at `up`.
pub async fn restart(supervisor: Supervisor, request: ProgramsRequest) -> Result<Vec<Outcome>, HandlerError> {
    let names = targets(&supervisor, &request)?;
    let plan = supervisor.plan();
    let (rolled, plain): (Vec<String>, Vec<String>) =
        names.iter().cloned().partition(|name| request.rolling || rolling::is_rolling(&plan, name));
    let mut watch = Watch::new(&supervisor);
    for name in dependencies_first(&plan, &plain) {
        let _ = supervisor.restart_program(&name);
    }
    let rolls = rolling::roll(&supervisor, &request, dependencies_first(&plan, &rolled));
    let (mut outcomes, rolled) = tokio::join!(finish(&mut watch, &request, &plain, "restarting"), rolls);
    outcomes.extend(rolled);
    Ok(in_order(&names, outcomes))
}

/// `warren reload`: `apply` starts or restarts programs and returns their names; waits, as
/// bounded by their settings, until they are up. Then rolls `rolled`, one at a time, as
/// `warren restart` rolls them.
pub async fn until_up(supervisor: &Supervisor, rolled: &[String], apply: impl FnOnce() -> Vec<String>) -> Vec<Outcome> {
    // Before the changes, so that no state change of theirs is missed.
    let mut watch = Watch::new(supervisor);
    let names = apply();
    let limit = up_bound(&watch.plan(), &names);
    let mut outcomes = in_order(&names, watch.until_up(&names, limit).await);
    let plan = supervisor.plan();
    let request = ProgramsRequest {
        names: rolled.to_vec(),
        all: false,
        wait: true,
        only: false,
        timeout_ms: None,
        rolling: true,
    };
    outcomes.extend(rolling::roll(supervisor, &request, dependencies_first(&plan, rolled)).await);
    outcomes
}

/// Whether a changed program is rolled by a reload rather than restarted: its new settings
/// say `restart_mode = "rolling"`, and it is ready (something serves while the new instance
/// comes up).
pub fn rolls_on_reload(plan: &Plan, name: &str, state: &State) -> bool {
    rolling::is_rolling(plan, name) && *state == State::Ready
}

/// Waits for `asked` to be up if the request says so; otherwise says what is under way.
async fn finish(watch: &mut Watch, request: &ProgramsRequest, asked: &[String], doing: &str) -> Vec<Outcome> {
    if !request.wait {
        return asked.iter().map(|name| Outcome::new(name, OutcomeKind::Done, doing)).collect();
    }
    let limit = bound(request, up_bound(&watch.plan(), asked));
    watch.until_up(asked, limit).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warren::supervise::plan::{Condition, Dependency, Invocation, Plan, Program};

    use super::{MARGIN, dependencies_first, related, up_bound};

    /// web → api → db, and other alone; each with its own grace and ready timeout.
    fn plan() -> Plan {
        let program = |name: &str, deps: &[&str], secs: u64| {
            let mut p = Program::new(name, Invocation::Shell("true".to_owned()));
            p.depends_on =
                deps.iter().map(|d| Dependency { name: (*d).to_owned(), condition: Condition::Started }).collect();
            p.grace = Duration::from_secs(secs);
            p.ready_timeout = Duration::from_secs(secs * 10);
            p
        };
        let programs = vec![
            program("web", &["api"], 1),
            program("api", &["db"], 2),
            program("db", &[], 3),
            program("other", &[], 4),
        ];
        Plan::new(programs).expect("a valid plan")
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn related_follows_dependencies_both_ways_transitively() {
        let plan = plan();
        assert_eq!(related(&plan, "web", true), names(&["api", "db"]));
        assert_eq!(related(&plan, "db", false), names(&["api", "web"]));
        assert!(related(&plan, "other", true).is_empty() && related(&plan, "other", false).is_empty());
    }

    #[test]
    fn the_bound_adds_up_a_program_and_what_it_waits_for() {
        let plan = plan();
        // web: (1 + 10) + api (2 + 20) + db (3 + 30).
        assert_eq!(up_bound(&plan, &names(&["web"])), Duration::from_secs(66) + MARGIN);
        // The longest of several: other's 4 + 40 is less than web's chain.
        assert_eq!(up_bound(&plan, &names(&["other", "web"])), Duration::from_secs(66) + MARGIN);
        assert_eq!(up_bound(&plan, &names(&["other"])), Duration::from_secs(44) + MARGIN);
    }

    #[test]
    fn requests_go_out_dependencies_first() {
        assert_eq!(dependencies_first(&plan(), &names(&["web", "other", "db"])), names(&["db", "other", "web"]));
    }
}
