//! The one stop procedure: ask politely, wait up to the grace period (returning as soon as the
//! child is gone), escalate to the whole process group, reap, drain the pipes without hanging
//! on a grandchild that holds them, clean up, and report what happened.

use std::fmt;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::child::ChildInner;
use crate::exit::Exit;
use crate::signal::Signal;
use crate::sys;

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The child exited by itself (after being asked, or before).
    Exited { code: i32 },
    /// The child died of a signal: the stop signal it did not handle, or another.
    Signalled { signal: Signal },
    /// The child did not stop within the grace period (or a forced stop was requested) and was
    /// killed with SIGKILL, with its whole process group.
    Killed { after: Duration },
    /// The child is gone but its exit status could not be read.
    Unknown,
}

impl Outcome {
    /// Whether the child stopped cleanly on its own: exit code 0.
    pub fn is_clean(&self) -> bool {
        *self == Outcome::Exited { code: 0 }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited { code } => write!(f, "exited with code {code}"),
            Outcome::Signalled { signal } => write!(f, "killed by {signal}"),
            Outcome::Killed { after } => write!(f, "killed with SIGKILL after {after:?}"),
            Outcome::Unknown => f.write_str("ended with a status that could not be read"),
        }
    }
}

/// Something the child left behind that warren had to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leak {
    /// Processes of the child's group (grandchildren) outlived it; they were killed.
    GroupMembers,
    /// Something outside the group kept the child's stdout/stderr open; warren stopped reading.
    PipesHeldOpen,
    /// Descendants that had left the child's process group outlived it; they were found in
    /// its cgroup and killed.
    Escaped { count: usize },
}

/// The report of one stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    pub name: String,
    pub pid: u32,
    pub outcome: Outcome,
    /// From the stop request until the child was gone.
    pub took: Duration,
    /// The steps taken, in order, with when each happened.
    pub steps: Vec<(Duration, Step)>,
    pub leaks: Vec<Leak>,
    /// The child had not removed its socket file; warren did.
    pub removed_socket: bool,
}

/// One action of the stop procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AlreadyExited,
    ShutdownCall,
    Signal(Signal),
    KilledGroup,
}

impl fmt::Display for StopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {}) {} in {:?}", self.name, self.pid, self.outcome, self.took)?;
        for leak in &self.leaks {
            match leak {
                Leak::GroupMembers => f.write_str("; leftover processes in its group were killed")?,
                Leak::PipesHeldOpen => f.write_str("; a process outside its group kept its pipes open")?,
                Leak::Escaped { count } => write!(f, "; {count} descendant(s) outside its group were killed")?,
            }
        }
        Ok(())
    }
}

/// How long to wait for pipe EOF once the child and its group are gone. Output already in the
/// pipe buffer (at most 64 KiB per pipe) drains in far less.
const PIPE_DRAIN: Duration = Duration::from_secs(2);
/// How long SIGKILL may take to be reported: only a process stuck in the kernel takes longer.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub(crate) async fn run(child: &ChildInner, grace: Duration) -> StopReport {
    let start = Instant::now();
    let mut steps = Vec::new();
    let pgid = child.pid;
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
                signal_group(child, child.stop_signal);
                step(&mut steps, Step::Signal(child.stop_signal));
            }
        }
        if let Some(at) = signal_at
            && !child.wait_exit_until(at).await
        {
            signal_group(child, child.stop_signal);
            step(&mut steps, Step::Signal(child.stop_signal));
        }
        if !child.wait_exit_until(deadline).await {
            child.group.signal(pgid, Signal::KILL);
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
    let mut leaks = child.group.leaks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
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
            Some(Exit::Unknown) => Outcome::Unknown,
            None => Outcome::Killed { after: took },
        }
    };
    StopReport { name: child.name.to_string(), pid: child.pid, outcome, took, steps, leaks, removed_socket }
}

fn signal_group(child: &ChildInner, signal: Signal) {
    child.group.signal(child.pid, signal);
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
