//! The one stop procedure: ask politely, wait up to the grace period (returning as soon as the
//! child is gone), escalate to the whole process group, reap, drain the pipes without hanging
//! on a grandchild that holds them, clean up, and report what happened.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::exit::Exit;
use crate::report::{Leak, Outcome, Step, StopReport};
use crate::running::Running;
use crate::signal::Signal;
use crate::sys;

/// How long to wait for pipe EOF once the child and its group are gone. Output already in the
/// pipe buffer (at most 64 KiB per pipe) drains in far less.
const PIPE_DRAIN: Duration = Duration::from_secs(2);
/// How long SIGKILL may take to be reported: only a process stuck in the kernel takes longer.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Stops `child` within `grace` and reports how it went.
pub(crate) async fn run(child: &Running, grace: Duration) -> StopReport {
    let start = Instant::now();
    let mut steps = Vec::new();
    let mut killed = false;
    let step = |steps: &mut Vec<(Duration, Step)>, what: Step| {
        debug!(child = %child.name, "stop: {what:?}");
        steps.push((start.elapsed(), what));
    };
    if child.exit_now().is_some() {
        step(&mut steps, Step::AlreadyExited);
    } else {
        let deadline = start + grace;
        let mut signal_at = None;
        match &child.client {
            Some(client) if client.notify("warren.Shutdown", &()).is_ok() => {
                step(&mut steps, Step::ShutdownCall);
                // A child that takes the call but does not act on it gets the stop signal half
                // way through the grace period.
                signal_at = Some(start + grace / 2);
            }
            _ => {
                child.group.signal(child.stop_signal);
                step(&mut steps, Step::Signal(child.stop_signal));
            }
        }
        if let Some(at) = signal_at
            && !child.wait_exit_until(at).await
        {
            child.group.signal(child.stop_signal);
            step(&mut steps, Step::Signal(child.stop_signal));
        }
        if !child.wait_exit_until(deadline).await {
            child.group.signal(Signal::KILL);
            killed = true;
            step(&mut steps, Step::KilledGroup);
            if !child.wait_exit_until(Instant::now() + KILL_WAIT).await {
                warn!(child = %child.name, pid = child.pid, "still not reaped {KILL_WAIT:?} after SIGKILL");
            }
        }
    }
    let took = start.elapsed();
    let exit = child.exit_now();
    // Grandchildren that outlived the leader were killed when it was reaped.
    let mut leaks = child.group.leaks();
    if !child.wait_pipes_closed(PIPE_DRAIN).await {
        warn!(child = %child.name, "a process outside the child's group holds its pipes open; no longer reading them");
        child.abort_pumps();
        leaks.push(Leak::PipesHeldOpen);
    }
    let removed_socket = child.remove_socket_file();
    child.remove_notify_file();
    let outcome = if killed {
        Outcome::Killed { after: took }
    } else {
        match exit {
            Some(Exit::Code(code)) => Outcome::Exited { code },
            Some(Exit::Signal(signal)) => Outcome::Signalled { signal },
            Some(Exit::OutOfMemory { .. }) => Outcome::Signalled { signal: Signal::KILL },
            Some(Exit::Unknown) => Outcome::Unknown,
            None => Outcome::Killed { after: took },
        }
    };
    StopReport { name: child.name.to_string(), pid: child.pid, outcome, took, steps, leaks, removed_socket }
}

/// Waits (bounded) until the killed members of a group are dead and, being reparented to the
/// host (a subreaper), reaped by it: no zombie is left for an init that may never reap.
pub(crate) async fn reap_leftovers(pgid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        sys::reap_group(pgid);
        if !sys::group_has_members(pgid) || Instant::now() >= deadline {
            return;
        }
        // SIGKILL takes effect asynchronously and no event announces a grandchild's death to a
        // process that is not yet its parent: poll briefly.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
