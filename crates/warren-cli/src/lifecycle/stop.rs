//! `warren stop`: the programs that depend on the named ones stop first, each only once its
//! own dependents are down — the order of a shutdown, for a part of the plan.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use warren::supervise::Supervisor;
use warren::supervise::machine::State;
use warren::supervise::plan::Plan;
use warren_rpc::HandlerError;

use super::wait::Watch;
use super::{MARGIN, bound, related, states, targets};
use crate::control::{Outcome, OutcomeKind, ProgramsRequest, codes};

fn down(state: &State) -> bool {
    matches!(state, State::Stopped | State::Exited { .. } | State::Failed { .. })
}

fn depends_on(plan: &Plan, dependent: &str, on: &str) -> bool {
    plan.program(dependent).is_some_and(|p| p.depends_on.iter().any(|d| d.name == on))
}

pub async fn stop(supervisor: Supervisor, request: ProgramsRequest) -> Result<Vec<Outcome>, HandlerError> {
    let names = targets(&supervisor, &request)?;
    // A task of its own: once begun, the stop is carried through even if the client goes away
    // (which drops this handler), rather than leaving half the programs stopped.
    tokio::spawn(ordered(supervisor, names, request))
        .await
        .map_err(|err| HandlerError::new(codes::CALL_FAILED, format!("the stop was interrupted: {err}")))
}

async fn ordered(supervisor: Supervisor, names: Vec<String>, request: ProgramsRequest) -> Vec<Outcome> {
    let plan = supervisor.plan();
    let before = states(&supervisor);
    let mut outcomes = Vec::new();
    // Which named program each dependent is stopped for, to say why.
    let mut because: HashMap<String, String> = HashMap::new();
    let mut set = names.clone();
    for name in &names {
        let dependents: Vec<String> = related(&plan, name, false).into_iter().filter(|d| !names.contains(d)).collect();
        if request.only {
            let left: Vec<&str> = dependents
                .iter()
                .filter(|d| before.get(*d).is_some_and(|(state, _)| !down(state)))
                .map(String::as_str)
                .collect();
            if !left.is_empty() {
                let text = format!("{} depend on it and keep running", left.join(", "));
                outcomes.push(Outcome::new(name, OutcomeKind::Warning, text));
            }
            continue;
        }
        for dependent in dependents {
            because.entry(dependent.clone()).or_insert_with(|| name.clone());
            if !set.contains(&dependent) {
                set.push(dependent);
            }
        }
    }
    let graces: Duration = set.iter().filter_map(|n| plan.program(n)).map(|p| p.grace).sum();
    let limit = bound(&request, graces + MARGIN);
    let deadline = Instant::now() + limit;
    let mut watch = Watch::new(&supervisor);
    let mut asked: Vec<String> = Vec::new();
    loop {
        let now = states(&supervisor);
        let is_down = |name: &String| now.get(name).is_none_or(|(state, _)| down(state));
        if asked.len() == set.len() && set.iter().all(is_down) {
            break;
        }
        // A program is stopped once every program of the set that depends on it is down.
        let ready: Vec<String> = set
            .iter()
            .filter(|p| !asked.contains(p))
            .filter(|p| set.iter().all(|q| !depends_on(&plan, q, p) || (asked.contains(q) && is_down(q))))
            .cloned()
            .collect();
        for name in &ready {
            let _ = supervisor.stop_program(name);
        }
        asked.extend(ready.iter().cloned());
        // Asking a stopped program changes nothing, so no update would come: look again now.
        if ready.is_empty() && watch.next(deadline).await.is_none() {
            break;
        }
    }
    let now = states(&supervisor);
    for name in &set {
        let was = before.get(name).map(|(state, _)| state);
        let is = now.get(name).map(|(state, _)| state);
        let (kind, text) = match (was, is) {
            (Some(State::Stopped), _) => (OutcomeKind::Done, "already stopped".to_owned()),
            (Some(was), _) if down(was) => (OutcomeKind::Done, format!("not running ({was})")),
            (_, Some(State::Stopped)) => match because.get(name) {
                Some(on) => (OutcomeKind::Done, format!("stopped (it depends on {on})")),
                None => (OutcomeKind::Done, "stopped".to_owned()),
            },
            (_, Some(is)) if down(is) => (OutcomeKind::Done, format!("stopped ({is})")),
            (_, is) => {
                let is = is.map_or_else(String::new, ToString::to_string);
                let why = format!("still {is} after {}", humantime::format_duration(limit));
                (OutcomeKind::Failed, why)
            }
        };
        outcomes.push(Outcome::new(name, kind, text));
    }
    // Dependents first, in the order they were asked to stop.
    outcomes.sort_by_key(|o| asked.iter().position(|n| *n == o.program).unwrap_or(usize::MAX));
    outcomes
}
