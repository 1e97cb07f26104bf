//! The plan `warren up` runs without a configuration file: the original example, supervised.
//! `task-rpc` serves `Task.Get`; `task`, once `task-rpc` is ready, calls it — on the endpoint the
//! supervisor passes to a dependent as `WARREN_ENDPOINT_TASK_RPC`, not a private copy — and
//! exits 0, leaving the supervised `task-rpc` for `warren call task-rpc Task.Get '"new_id"'`.
//! A `warren` moved away from the example binaries reports "program not found: task-rpc;
//! looked in (its directory)" once: a missing program is not restarted.

use std::path::PathBuf;
use std::time::Duration;

use warren::supervise::plan::{Condition, Dependency, Invocation, Plan, Program, ReadyCheck, Restart};

/// The example binaries are built next to `warren` (`cargo build` builds them all).
fn sibling(name: &str) -> PathBuf {
    let dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)).unwrap_or_default();
    dir.join(name)
}

pub fn plan() -> Plan {
    let mut server = Program::new("task-rpc", Invocation::Exec { program: sibling("task-rpc"), args: Vec::new() });
    server.rpc = true;
    server.readiness = ReadyCheck::Notify;
    server.restart = Restart::OnFailure;
    server.grace = Duration::from_secs(5);
    let mut client = Program::new("task", Invocation::Exec { program: sibling("task"), args: Vec::new() });
    client.depends_on.push(Dependency { name: "task-rpc".into(), condition: Condition::Ready });
    client.env.push(("NO_COLOR".into(), "1".into()));
    // Two programs, the second depending on the first: a plan by construction.
    Plan::new(vec![server, client]).unwrap_or_else(|err| unreachable!("the built-in plan: {err}"))
}
