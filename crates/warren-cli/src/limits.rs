//! Users and resource limits as `up` and `status` show them: a program whose limits cannot be
//! applied here (no cgroups, a controller missing) is said so, at start and in `status NAME`,
//! never silently run without them.

use warren::supervise::Supervisor;
use warren::supervise::plan::Plan;
use warren::{Host, Identity, Limits};

use crate::control::StatusRow;
use crate::output::Output;

/// Warns, once at start, about each program whose limits will not be applied.
pub fn warn_at_start(host: &Host, plan: &Plan, output: &Output) {
    for program in plan.programs() {
        if let Some(why) = host.limits_unavailable(&program.limits) {
            output.say(&format!("warning: {} runs WITHOUT its limits ({}): {why}", program.name, program.limits));
        }
    }
}

/// `status NAME`'s limits line: the limits, and why they are not applied where they are not.
pub fn describe(supervisor: &Supervisor, limits: &Limits) -> Option<String> {
    if !limits.any() {
        return None;
    }
    Some(match supervisor.limits_unavailable(limits) {
        Some(why) => format!("{limits} — NOT APPLIED: {why}"),
        None => limits.to_string(),
    })
}

/// Marks the status rows of programs whose limits are not applied, with why.
pub fn mark(supervisor: &Supervisor, rows: &mut [StatusRow]) {
    let plan = supervisor.plan();
    for row in rows {
        if let Some(program) = plan.program(&row.name) {
            row.limits_not_applied = supervisor.limits_unavailable(&program.limits);
        }
    }
}

/// `nobody (uid 65534), group nogroup (gid 65534)`.
pub fn user(identity: &Identity) -> String {
    let group =
        identity.group.as_ref().map(|group| format!(", group {group} (gid {})", identity.gid)).unwrap_or_default();
    format!("{} (uid {}){group}", identity.user, identity.uid)
}
