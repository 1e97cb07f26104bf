//! `warren scale NAME N`: a replicated program runs N members from now on. The instance applies
//! it as a plan difference ([`warren::supervise::Plan::scale`], then the same path as a
//! reload): new members start, members past N stop, the others keep running untouched.
//! A reload goes back to the file's `replicas`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use warren::supervise::{PlanDiff, Supervisor};
use warren_rpc::{CallError, CallOptions, Client, HandlerError};

use crate::control::{Outcome, codes};
use crate::lifecycle;
use crate::logs::store::Store;
use crate::remote::RemoteError;

/// What `warren scale` asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRequest {
    pub program: String,
    pub count: u32,
}

/// What the instance did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleAnswer {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// How the members started came up.
    pub outcomes: Vec<Outcome>,
}

/// Scales, waits for the new members to be up (bounded by their settings) and the removed
/// ones to be gone (bounded by their grace).
pub async fn apply(supervisor: &Supervisor, logs: &Store, request: ScaleRequest) -> Result<ScaleAnswer, HandlerError> {
    // Two scales at once would each build on the plan before the other's: one at a time, from
    // reading the plan until the new one is in place.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = ONE_AT_A_TIME.lock().await;
    let current = supervisor.plan();
    let plan = current
        .scale(&request.program, request.count)
        .map_err(|err| HandlerError::new(codes::UNKNOWN_PROGRAM, err.to_string()))?;
    let diff = PlanDiff::between(&current, &plan);
    let grace = current.replicas(&request.program).iter().map(|p| p.grace).max().unwrap_or_default();
    // A new member's log file is like its group's (the first member stays: a group has one).
    let first = current.replicas(&request.program).first().map(|p| p.name.clone()).unwrap_or_default();
    let limits = logs.find(&first).map(|i| logs.writer(i).limits()).unwrap_or_default();
    for name in &diff.added {
        logs.add(name, limits);
    }
    let added = diff.added.clone();
    let outcomes = lifecycle::until_up(supervisor, &[], || {
        supervisor.reload(plan);
        drop(turn);
        added
    })
    .await;
    // Each removed member has its grace and a moment to be reaped and forgotten.
    let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(5);
    while supervisor.status().iter().any(|s| diff.removed.contains(&s.name)) {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(ScaleAnswer { added: diff.added, removed: diff.removed, outcomes })
}

/// `warren scale NAME N`: exit 1 if a new member did not come up.
pub async fn remote(client: &Client, program: &str, count: u32) -> Result<u8, RemoteError> {
    // The instance bounds its wait by the programs' settings.
    let options = CallOptions { timeout: None };
    let request = ScaleRequest { program: program.to_owned(), count };
    let answer: ScaleAnswer = match client.call_with("Control.Scale", &request, options).await {
        Ok(answer) => answer,
        Err(CallError::Application { message, .. }) => return Err(RemoteError::Refused(message)),
        Err(other) => return Err(RemoteError::Refused(other.to_string())),
    };
    for name in &answer.removed {
        println!("{name}: stopped (scaled down)");
    }
    let code = crate::remote::print_outcomes(&answer.outcomes)?;
    if answer.added.is_empty() && answer.removed.is_empty() {
        println!("{program}: already {count} replicas");
    }
    Ok(code)
}
