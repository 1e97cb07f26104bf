//! `warren call NAME` for a replicated program: each call goes to the next ready member, in
//! turn. `call NAME.2` names one member and goes to it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use warren::supervise::Supervisor;
use warren::supervise::machine::State;

/// The next member each group is called on. One entry per group name that a plan had, so it
/// is as bounded as the plans are.
#[derive(Debug, Default)]
pub struct Turns(Mutex<HashMap<String, usize>>);

impl Turns {
    /// The program a call to `name` goes to: `name` itself unless it is a replicated program,
    /// else its next ready member (its first member when none is ready, whose answer then says
    /// why it cannot be called).
    pub fn pick(&self, supervisor: &Supervisor, name: &str) -> String {
        let plan = supervisor.plan();
        if plan.program(name).is_some() {
            return name.to_owned();
        }
        let members: Vec<String> = plan.replicas(name).iter().map(|p| p.name.clone()).collect();
        let Some(first) = members.first().cloned() else { return name.to_owned() };
        let status = supervisor.status();
        let ready: Vec<&String> = members
            .iter()
            .filter(|m| status.iter().any(|s| &s.name == *m && s.state == State::Ready))
            .filter(|m| supervisor.client(m).ok().flatten().is_some())
            .collect();
        if ready.is_empty() {
            return first;
        }
        let mut turns = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let turn = turns.entry(name.to_owned()).or_insert(0);
        let chosen = ready[*turn % ready.len()].clone();
        *turn = turn.wrapping_add(1);
        chosen
    }
}
