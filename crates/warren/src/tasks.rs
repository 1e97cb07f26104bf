//! The tasks a child has from spawn to exit: its pipe pumps, the task that reaps it and settles
//! its group, and the watches of its notify socket and of its socket file.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_rpc::Client;

use crate::cgroup::ChildCgroup;
use crate::escapees;
use crate::exit::Exit;
use crate::group::Group;
use crate::log::{LogSink, Stream};
use crate::notify::{NotifyListener, NotifyState};
use crate::pump::{self, Carried, PumpAt, Tail};
use crate::report::Leak;
use crate::running::Running;
use crate::signal::Signal;
use crate::socket_watch::SocketLost;
use crate::spawner;
use crate::stop;
use crate::sys::{self, Watchdog};

/// The child's pumps: stdout and stderr read to end-of-file into `sink`; stderr's last lines
/// also kept in `tail`, to explain a child that fails before it is ready.
pub(crate) struct Pumps {
    pub handles: Mutex<Vec<AbortHandle>>,
    /// Cancelled once both pipes reached end-of-file.
    pub closed: CancellationToken,
    pub tail: Arc<Tail>,
    /// What a hand-over needs of each pump.
    pub links: Vec<PumpLink>,
}

/// One pump as a hand-over sees it: a copy of its pipe's read end (close-on-exec until a
/// hand-over keeps it) and where the pump stands.
pub(crate) struct PumpLink {
    pub stream: Stream,
    pub fd: OwnedFd,
    pub at: watch::Receiver<PumpAt>,
}

/// Whose pumps these are.
pub(crate) struct PumpsOf<'a> {
    pub name: &'a Arc<str>,
    pub pid: u32,
    pub max_line: usize,
    pub sink: &'a Arc<dyn LogSink>,
    /// The host's hold (true while a hand-over is under way).
    pub held: &'a watch::Receiver<bool>,
}

/// Starts pumping the child's stdout and stderr.
pub(crate) fn start_pumps(process: &mut spawner::Process, of: &PumpsOf<'_>) -> std::io::Result<Pumps> {
    let mut pipes = Vec::new();
    if let Some(stdout) = process.stdout.take() {
        pipes.push((Stream::Stdout, stdout, Carried::default()));
    }
    if let Some(stderr) = process.stderr.take() {
        pipes.push((Stream::Stderr, stderr, Carried::default()));
    }
    pumps_from(pipes, of)
}

/// Pumps these pipes, each going on from where an earlier image of the host left it.
pub(crate) fn pumps_from(pipes: Vec<(Stream, pipe::Receiver, Carried)>, of: &PumpsOf<'_>) -> std::io::Result<Pumps> {
    let tail = Arc::new(Tail::default());
    let closed = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut links = Vec::new();
    for (stream, pipe, from) in pipes {
        let fd = rustix::io::fcntl_dupfd_cloexec(&pipe, 3)?;
        let (at, watched) = watch::channel(pump::PumpAt::Reading);
        links.push(PumpLink { stream, fd, at: watched });
        let pump_of = pump::PumpOf {
            child: Arc::clone(of.name),
            pid: of.pid,
            stream,
            max_line: of.max_line,
            sink: Arc::clone(of.sink),
            tail: (stream == Stream::Stderr).then(|| Arc::clone(&tail)),
        };
        let hold = pump::Hold { held: of.held.clone(), at };
        tasks.push(tokio::spawn(pump::pump_held(pipe, pump_of, from, Some(hold))));
    }
    let handles = tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect();
    {
        let closed = closed.clone();
        tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
            closed.cancel();
        });
    }
    Ok(Pumps { handles: Mutex::new(handles), closed, tail, links })
}

/// Where the reaper of a child stands, for a hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReapAt {
    Watching,
    /// Not watching, nothing reaped: the child (alive or a zombie) is still to be waited for.
    Held,
    /// Its exit cannot be left unwatched (no pidfd): no hand-over.
    Unholdable,
    /// Reaped, or settling its group: the child is not handed over.
    Done,
}

/// What of its host the reaper of a child reports to.
pub(crate) struct HostLinks {
    pub watchdog: Option<Weak<Watchdog>>,
    /// The host's count of killed descendants that had left their child's group.
    pub escaped: Arc<AtomicUsize>,
    pub claim: escapees::Claim,
    /// The host's hold (true while a hand-over is under way) and where this reaper stands.
    pub held: watch::Receiver<bool>,
    pub at: watch::Sender<ReapAt>,
}

/// A child's cgroups: its cgroup2 one, and those of its limits in cgroup v1 hierarchies.
pub(crate) struct Cgroups {
    pub v2: Option<ChildCgroup>,
    pub v1: Option<crate::cgroup_v1::V1Child>,
}

/// How long the members of a group have to end by themselves once its leader has: a stop
/// signal reaches the whole group at once, and a member (the `sleep` of a shell loop) can be a
/// moment behind its leader on the way out.
const MEMBERS_BEHIND: Duration = Duration::from_millis(100);

/// Whether the leader's group empties by itself within [`MEMBERS_BEHIND`], reaping the members
/// that end (the host is their subreaper: a dead one stays a member until reaped).
async fn group_empties(pgid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + MEMBERS_BEHIND;
    loop {
        sys::reap_group(pgid);
        if !sys::group_has_members(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reaps the leader, then settles its group: members that outlived it are grandchildren that
/// would otherwise run on unowned; they are killed and reaped (the host is their subreaper), and
/// the group is released before anyone can see the exit, so no later signal can reach a
/// reused group id.
pub(crate) async fn reap(
    mut process: spawner::Process,
    pgid: u32,
    cgroups: Cgroups,
    group: Arc<Group>,
    host: HostLinks,
    name: Arc<str>,
    exit_tx: watch::Sender<Option<Exit>>,
) {
    let HostLinks { watchdog, escaped: escaped_total, claim, mut held, at } = host;
    let Cgroups { v2: cgroup, v1 } = cgroups;
    let v1 = v1.filter(|v1| !v1.is_empty());
    let status = if process.watched_by_pidfd() {
        loop {
            // A wait by pidfd dropped at the hold has reaped nothing: the child stays to be
            // waited for by whichever image of the host comes next.
            let hold = tokio::select! {
                biased;
                Ok(_) = held.wait_for(|held| *held) => true,
                status = process.exited() => break status,
            };
            if hold {
                at.send_replace(ReapAt::Held);
                let _ = held.wait_for(|held| !*held).await;
                at.send_replace(ReapAt::Watching);
            }
        }
    } else {
        at.send_replace(ReapAt::Unholdable);
        process.exited().await
    };
    at.send_replace(ReapAt::Done);
    drop(process);
    if !group_empties(pgid).await {
        let _ = sys::kill_group(pgid, Signal::KILL);
        warn!(child = %name, pgid, "processes of the child's group outlived it; killed them");
        group.leaked(Leak::GroupMembers);
        stop::reap_leftovers(pgid).await;
    }
    // What is still in its cgroup left the group (its own session or group) and would outlive
    // every stop.
    // Without cgroups, by the tag its descendants inherit (see `escapees`).
    let escaped = match (&cgroup, &v1) {
        (Some(cgroup), _) => cgroup.settle().await,
        (None, Some(v1)) => v1.settle().await,
        (None, None) if claim.alone() => {
            let tag = escapees::Tag::new(&name, sys::current_pid());
            tokio::task::spawn_blocking(move || escapees::kill_tagged(&tag)).await.unwrap_or(0)
        }
        (None, None) => {
            debug!(child = %name, "another child of this name runs in this process: no sweep by tag");
            0
        }
    };
    escaped_total.fetch_add(escaped, Ordering::Relaxed);
    if escaped > 0 {
        warn!(child = %name, "{escaped} descendant(s) that had left the child's process group outlived it; killed them");
        group.leaked(Leak::Escaped { count: escaped });
    }
    let out_of_memory = cgroup
        .as_ref()
        .and_then(ChildCgroup::out_of_memory)
        .or_else(|| v1.as_ref().and_then(crate::cgroup_v1::V1Child::out_of_memory));
    drop(cgroup);
    if let Some(v1) = v1 {
        v1.remove().await;
    }
    group.release();
    if let Some(watchdog) = watchdog.and_then(|watchdog| watchdog.upgrade()) {
        watchdog.unwatch(pgid);
    }
    let exit = match (status.map_or(Exit::Unknown, Exit::from_status), out_of_memory) {
        // The OOM killer's SIGKILL is the only one the kernel counts (memory.events in v2,
        // memory.oom_control in v1).
        (Exit::Signal(Signal::KILL), Some(memory_max)) => Exit::OutOfMemory { memory_max },
        (exit, _) => exit,
    };
    let _ = exit_tx.send(Some(exit));
}

/// Keeps reading the child's notifications after READY=1 (STATUS=, STOPPING=1, WATCHDOG=1):
/// they are published for `status` and the watchdog, and a child sending them never blocks on
/// a full socket queue.
pub(crate) async fn follow_notices(
    listener: Arc<NotifyListener>,
    notices: watch::Sender<NotifyState>,
    mut exit: watch::Receiver<Option<Exit>>,
) {
    loop {
        tokio::select! {
            notice = listener.next() => match notice {
                Ok(notice) => {
                    notices.send_if_modified(|state| state.record(&notice));
                }
                Err(_) => return,
            },
            _ = async { exit.wait_for(Option::is_some).await.is_ok() } => return,
        }
    }
}

/// How long a child that removed its socket may take to exit before the removal counts as a
/// loss. A child shutting down closes every connection, the host's too, before it removes
/// its socket, and then exits: either is seen well within this.
const SHUTDOWN_EVIDENCE: Duration = Duration::from_millis(500);

/// Tells a socket file lost under a running child from the child removing its own on the
/// way out, and publishes (and logs) the first.
pub(crate) async fn follow_socket(
    gone: tokio::sync::oneshot::Receiver<SocketLost>,
    client: Client,
    child: Weak<Running>,
    lost: watch::Sender<Option<SocketLost>>,
) {
    let Some(mut exit) = child.upgrade().map(|child| child.exit.clone()) else { return };
    let what = tokio::select! {
        what = gone => match what {
            Ok(what) => what,
            Err(_) => return,
        },
        _ = async { exit.wait_for(Option::is_some).await.is_ok() } => return,
    };
    let shutting_down = async {
        tokio::select! {
            _ = async { exit.wait_for(Option::is_some).await.is_ok() } => {}
            () = client.closed() => {}
        }
    };
    if tokio::time::timeout(SHUTDOWN_EVIDENCE, shutting_down).await.is_ok() {
        return;
    }
    let Some(child) = child.upgrade() else { return };
    if child.is_stopping() || child.exit_now().is_some() {
        return;
    }
    warn!(
        child = %child.name,
        pid = child.pid,
        "{what} while the child runs: it keeps its connections, but no new client can reach it until it binds again"
    );
    let _ = lost.send(Some(what));
}
