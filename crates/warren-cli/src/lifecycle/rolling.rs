//! `warren restart --rolling` (or `restart_mode = "rolling"`): one program at a time — each
//! member of a replicated one in turn — a new instance comes up beside the old one, and the
//! next program is rolled only once the old instance has ended, so that capacity never drops
//! by more than one instance.

use std::time::Duration;

use warren::supervise::plan::{Plan, RestartMode};
use warren::supervise::{Rolled, Supervisor};

use super::wait::Watch;
use super::{MARGIN, bound, up_bound};
use crate::control::{Outcome, OutcomeKind, ProgramsRequest};

pub fn is_rolling(plan: &Plan, name: &str) -> bool {
    plan.program(name).is_some_and(|p| p.restart_mode == RestartMode::Rolling)
}

/// Rolls `names` in this order; with `wait` off, in the background, answering at once.
pub async fn roll(supervisor: &Supervisor, request: &ProgramsRequest, names: Vec<String>) -> Vec<Outcome> {
    if !request.wait {
        let outcomes = names.iter().map(|n| Outcome::new(n, OutcomeKind::Done, "rolling restart under way")).collect();
        let (supervisor, request) = (supervisor.clone(), request.clone());
        tokio::spawn(async move { each(&supervisor, &request, &names).await });
        return outcomes;
    }
    each(supervisor, request, &names).await
}

async fn each(supervisor: &Supervisor, request: &ProgramsRequest, names: &[String]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for name in names {
        outcomes.push(one(supervisor, request, name).await);
    }
    outcomes
}

/// A new instance's start and the old one's stop, as the program's settings bound them.
fn limit(supervisor: &Supervisor, request: &ProgramsRequest, name: &str) -> Duration {
    let derived = supervisor.plan().program(name).map_or(Duration::ZERO, |p| p.ready_timeout + p.grace) + MARGIN;
    bound(request, derived)
}

async fn one(supervisor: &Supervisor, request: &ProgramsRequest, name: &str) -> Outcome {
    let limit = limit(supervisor, request, name);
    // Before the request: a plain restart instead is then watched as `restart` watches one.
    let mut watch = Watch::new(supervisor);
    let rolled = match tokio::time::timeout(limit, supervisor.roll_program(name)).await {
        Err(_) => {
            let text = format!("rolling restart not over within {}", humantime::format_duration(limit));
            return Outcome::new(name, OutcomeKind::Failed, text);
        }
        Ok(Err(unknown)) => return Outcome::new(name, OutcomeKind::Failed, unknown.to_string()),
        Ok(Ok(rolled)) => rolled,
    };
    match rolled {
        Ok(Rolled::Replaced { pid, old_pid, old_exit }) => {
            let kind = if old_exit.success() { OutcomeKind::Done } else { OutcomeKind::Warning };
            Outcome::new(name, kind, format!("rolled: ready (pid {pid}); the old instance (pid {old_pid}) {old_exit}"))
        }
        Ok(Rolled::Restarted) if request.wait => {
            let bound = bound(request, up_bound(&supervisor.plan(), &[name.to_owned()]));
            watch.until_up(&[name.to_owned()], bound).await.pop().unwrap_or_else(|| {
                Outcome::new(name, OutcomeKind::Failed, "restarted (no ready instance to roll from), fate unknown")
            })
        }
        Ok(Rolled::Restarted) => Outcome::new(name, OutcomeKind::Done, "restarting (no ready instance to roll from)"),
        Err(why) => Outcome::new(name, OutcomeKind::Failed, format!("rolling restart failed: {why}")),
    }
}
