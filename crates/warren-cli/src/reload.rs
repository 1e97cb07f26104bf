//! `warren reload` (and SIGHUP to a detached instance): the instance re-reads the file it was
//! started with and applies it as a difference ([`warren::supervise::PlanDiff`]). A file that
//! does not load is refused with the same errors as `warren up`'s, and nothing changes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use warren::supervise::machine::State;
use warren::supervise::{PlanDiff, Supervisor};
use warren_rpc::{CallError, CallOptions, Client, HandlerError};

use crate::control::Outcome;
use crate::logs::store::Store;
use crate::remote::RemoteError;
use crate::{config, exit, lifecycle};

/// The file does not load: the answer carries the rendered errors. Apart from the codes in
/// `control::codes` so that the client can exit as `warren up` does on the same file.
pub const INVALID_CONFIG: u32 = 1010;
/// The instance runs the built-in example: there is no file to re-read.
pub const NO_FILE: u32 = 1011;

/// What `warren reload` asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadRequest {
    /// Only say what would change.
    pub dry_run: bool,
}

/// What the instance did (or, on a dry run, would do).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// The added programs with `autostart = false`: added, not started.
    #[serde(default)]
    pub manual: Vec<String>,
    /// Whether the changes were made (false on a dry run).
    pub applied: bool,
    /// The changed programs rolled rather than restarted (`restart_mode = "rolling"`, ready):
    /// a new instance with the new settings came up beside the old one.
    #[serde(default)]
    pub rolled: Vec<String>,
    /// How the programs started or restarted came up.
    pub outcomes: Vec<Outcome>,
}

/// Re-reads `file` and, unless `dry_run`, applies it; waits for the programs it starts or
/// restarts to be up. Added programs get their log files in `logs` (the other log settings
/// stay as `up` started with them).
pub async fn apply(
    supervisor: &Supervisor,
    logs: &Store,
    file: Option<&Path>,
    dry_run: bool,
) -> Result<ReloadAnswer, HandlerError> {
    let file = file.ok_or_else(|| {
        HandlerError::new(NO_FILE, "this instance runs the built-in example: it has no file to re-read")
    })?;
    let (plan, settings) =
        config::load_with_settings(file).map_err(|errors| HandlerError::new(INVALID_CONFIG, errors.to_string()))?;
    let mut diff = PlanDiff::between(&supervisor.plan(), &plan);
    let manual: Vec<String> = plan.manual().into_iter().map(str::to_owned).collect();
    let mut outcomes = Vec::new();
    let status = supervisor.status();
    let rolled: Vec<String> = diff
        .changed
        .iter()
        .filter(|name| {
            let state = status.iter().find(|s| &s.name == *name).map(|s| &s.state);
            state.is_some_and(|state| lifecycle::rolls_on_reload(&plan, name, state))
        })
        .cloned()
        .collect();
    if !dry_run {
        let stopped: Vec<String> =
            status.iter().filter(|s| s.state == State::Stopped).map(|s| s.name.clone()).collect();
        // Before the programs start, so that their first lines are recorded.
        for name in &diff.added {
            logs.add(name, settings.log_limits.get(name).copied().unwrap_or_default());
        }
        outcomes = lifecycle::until_up(supervisor, &rolled, || {
            diff = supervisor.reload_rolling(plan, rolled.clone());
            // A program stopped on request stays so, with its new settings.
            // Nor does one added with `autostart = false`.
            let added = diff.added.iter().filter(|n| !manual.contains(n));
            let restarted = diff.changed.iter().filter(|n| !stopped.contains(n) && !rolled.contains(n));
            added.chain(restarted).cloned().collect()
        })
        .await;
    }
    let PlanDiff { added, removed, changed, unchanged } = diff;
    let manual = added.iter().filter(|n| manual.contains(n)).cloned().collect();
    Ok(ReloadAnswer { added, removed, changed, unchanged, manual, rolled, applied: !dry_run, outcomes })
}

/// The plan, one line per program that changes, then a summary.
pub fn describe(answer: &ReloadAnswer) -> Vec<String> {
    let verb = |now: &str, later: &str| if answer.applied { now.to_owned() } else { format!("would {later}") };
    let mut lines = Vec::new();
    for name in &answer.added {
        if answer.manual.contains(name) {
            lines.push(format!("{name}: {} (new; autostart = false)", verb("added, not started", "add, not start")));
        } else {
            lines.push(format!("{name}: {} (new)", verb("started", "start")));
        }
    }
    for name in &answer.changed {
        let what = match answer.rolled.contains(name) {
            true => verb("rolled", "roll"),
            false => verb("restarted", "restart"),
        };
        lines.push(format!("{name}: {what} (settings changed)"));
    }
    for name in &answer.removed {
        lines.push(format!("{name}: {} (removed)", verb("stopped", "stop")));
    }
    let kept = answer.unchanged.len();
    lines.push(match (answer.added.len() + answer.changed.len() + answer.removed.len(), answer.applied) {
        (0, _) => format!("nothing to change ({kept} unchanged)"),
        (_, true) => format!("reloaded; {kept} unchanged, left as they were"),
        (_, false) => format!("dry run: nothing changed; {kept} unchanged would be left as they are"),
    });
    lines
}

/// `warren reload [--dry-run]`: exit 2 for a file that does not load (as `warren up`), 1 if a
/// program started or restarted did not come up.
pub async fn remote(client: &Client, dry_run: bool) -> Result<u8, RemoteError> {
    // The instance bounds its wait by the programs' settings.
    let options = CallOptions { timeout: None };
    let answer: ReloadAnswer = match client.call_with("Control.Reload", &ReloadRequest { dry_run }, options).await {
        Ok(answer) => answer,
        Err(CallError::Application { code: INVALID_CONFIG, message, .. }) => {
            eprintln!("warren: the file was not reloaded; the instance runs as before\n{message}");
            return Ok(exit::CONFIG);
        }
        Err(CallError::Application { message, .. }) => return Err(RemoteError::Refused(message)),
        Err(other) => return Err(RemoteError::Refused(other.to_string())),
    };
    for line in describe(&answer) {
        println!("{line}");
    }
    let code = crate::remote::print_outcomes(&answer.outcomes)?;
    Ok(code)
}
