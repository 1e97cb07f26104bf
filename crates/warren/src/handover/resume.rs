//! The new image's side: read the state, take over the descriptors it names, and rebuild the
//! host around the same children — pumps going on from where they stood, exits watched again
//! (still this process's children), notify sockets followed, RPC connections carried on
//! (or, where one could not cross, made anew).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use tokio::sync::watch;
use tracing::warn;
use warren_rpc::{Client, Endpoint};

use super::state::{ChildState, HostState, MAX_BYTES, VERSION, readable};
use super::{Carry, STATE_VAR};
use crate::cgroup::{ChildCgroup, HostCgroup};
use crate::child::{Child, Registry};
use crate::error::HostError;
use crate::group::Group;
use crate::host::{Host, HostBuilder, HostShared};
use crate::log::Stream;
use crate::notify::NotifyListener;
use crate::pump::Carried;
use crate::running::Running;
use crate::runtime_dir::RuntimeDir;
use crate::signal::Signal;
use crate::spawner::{Process, Spawner};
use crate::sys::{self, Leftovers, Watchdog};
use crate::tasks;

/// How long a taken-over child's RPC socket has to accept the new image's client.
const RECONNECT: Duration = Duration::from_secs(5);

fn resume_error(what: impl std::fmt::Display) -> HostError {
    HostError::Resume(what.to_string())
}

impl HostBuilder {
    /// In a process started by [`Host::hand_over`], takes over the host of the image before:
    /// the same runtime directory, watchdog and children (see docs/UPGRADE.md). The log sink
    /// and `catch_signals` are this builder's; the other options are the earlier host's.
    pub async fn resume(self) -> Result<Host, HostError> {
        Ok(self.resume_with().await?.0)
    }

    /// [`resume`](Self::resume), also returning what the earlier image carried across with
    /// [`Host::hand_over_with`].
    pub async fn resume_with(self) -> Result<(Host, super::Baggage), HostError> {
        let mut state = read_state()?;
        let mut fds = Vec::new();
        for (name, fd) in std::mem::take(&mut state.baggage_fds) {
            let fd = sys::handover::adopt_fd(fd).map_err(|err| resume_error(format!("descriptor {name}: {err}")))?;
            fds.push((name, fd));
        }
        let baggage = super::Baggage { state: std::mem::take(&mut state.baggage), fds };
        tokio::runtime::Handle::try_current().map_err(|_| HostError::NoRuntime)?;
        let signals = if self.catch_signals {
            Some(crate::shutdown::Shutdown::install().map_err(HostError::Signals)?)
        } else {
            None
        };
        // The earlier image execed with the stop signals blocked; the program has had its
        // chance to catch them (`warren up` installs its handlers before it resumes).
        super::signal_thread::release(&sys::handover::held_across_exec());
        sys::become_subreaper().map_err(HostError::Subreaper)?;
        let runtime_dir = RuntimeDir::adopt(state.runtime_dir.clone()).map_err(HostError::RuntimeDir)?;
        let cgroup = match &state.cgroup {
            Some((dir, next)) => {
                Some(HostCgroup::adopt(dir.clone(), *next).map_err(|err| resume_error(format!("cgroup: {err}")))?)
            }
            None => None,
        };
        let watchdog = match &state.watchdog {
            Some(watchdog) => {
                let pipe = sys::handover::adopt_fd(watchdog.fd).map_err(HostError::Watchdog)?;
                let leftovers = Leftovers {
                    cgroup_kill: cgroup.as_ref().and_then(HostCgroup::kill_file),
                    runtime_dir: std::ffi::CString::new(runtime_dir.path().as_os_str().as_encoded_bytes()).ok(),
                    files: state.remove_on_death.iter().filter_map(|path| sys::OwnFile::new(path).ok()).collect(),
                };
                let adopted = Watchdog::adopt(pipe, watchdog.pid, watchdog.groups.clone(), leftovers);
                Some(Arc::new(adopted.map_err(HostError::Watchdog)?))
            }
            None => None,
        };
        let spawner = Spawner::start(false)?;
        let shared = Arc::new(HostShared {
            runtime_dir,
            spawner,
            sink: self.sink,
            watchdog,
            no_cgroup: cgroup.is_none().then(|| "the host was taken over from an earlier image without cgroups".into()),
            cgroup,
            v1: crate::cgroup_v1::V1Cgroups::new(),
            children: Mutex::new(Vec::new()),
            starting: Mutex::new(std::collections::HashSet::new()),
            signals: Mutex::new(signals),
            socket_watch: OnceLock::new(),
            escaped: Arc::new(std::sync::atomic::AtomicUsize::new(state.escaped)),
            held: watch::channel(false).0,
            remove_on_death: state.remove_on_death.clone(),
            handing_over: tokio::sync::Mutex::new(()),
        });
        let mut children = Vec::new();
        for child in state.children {
            let name = child.name.clone();
            children
                .push(resume_child(&shared, child).await.map_err(|err| resume_error(format!("child {name}: {err}")))?);
        }
        *shared.children.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = children;
        Ok((Host { shared }, baggage))
    }
}

/// The state read from the memfd and not yet taken by a resume.
static READ: Mutex<Option<HostState>> = Mutex::new(None);

/// What the earlier image carried beside the host ([`Baggage::state`](super::Baggage)),
/// without taking the hand-over: a program may need it to set up what the host needs (its
/// log sink) before it resumes the host.
pub fn peek() -> Result<serde_json::Value, HostError> {
    let mut read = READ.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if read.is_none() {
        *read = Some(read_memfd()?);
    }
    Ok(read.as_ref().map(|state| state.baggage.clone()).unwrap_or_default())
}

/// The state the previous image left, taken once.
fn read_state() -> Result<HostState, HostError> {
    let peeked = READ.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match peeked {
        Some(state) => Ok(state),
        None => read_memfd(),
    }
}

fn read_memfd() -> Result<HostState, HostError> {
    if !sys::handover::take_handover() {
        return Err(resume_error("the hand-over has already been taken"));
    }
    let number = std::env::var(STATE_VAR).map_err(|_| resume_error(format!("{STATE_VAR} is not set")))?;
    let fd = number.parse().map_err(|_| resume_error(format!("{STATE_VAR}={number} is not a descriptor")))?;
    let memfd = sys::handover::adopt_fd(fd).map_err(|err| resume_error(format!("{STATE_VAR}={number}: {err}")))?;
    let bytes = sys::handover::read_memfd(&memfd, MAX_BYTES).map_err(resume_error)?;
    let state: HostState =
        serde_json::from_slice(&bytes).map_err(|err| resume_error(format!("the state does not parse: {err}")))?;
    if !readable(state.version) {
        return Err(resume_error(format!("state version {} (this image reads {VERSION})", state.version)));
    }
    Ok(state)
}

async fn resume_child(shared: &Arc<HostShared>, state: ChildState) -> std::io::Result<Child> {
    let name: Arc<str> = Arc::from(state.name.as_str());
    let pid = state.pid;
    let process = Process::adopt(pid);
    let mut pipes = Vec::new();
    for pipe in &state.pipes {
        let fd = sys::handover::adopt_fd(pipe.fd)?;
        let stream = if pipe.stderr { Stream::Stderr } else { Stream::Stdout };
        pipes.push((stream, pipe::Receiver::from_owned_fd(fd)?, Carried { seq: pipe.seq, rest: pipe.rest.clone() }));
    }
    let held = shared.held.subscribe();
    let of = tasks::PumpsOf { name: &name, pid, max_line: state.max_line, sink: &shared.sink, held: &held };
    let pumps = tasks::pumps_from(pipes, &of)?;
    let stdin = state.stdin.map(|fd| sys::handover::adopt_fd(fd).and_then(pipe::Sender::from_owned_fd)).transpose()?;
    let notify = match &state.notify {
        Some(notify) => Some(Arc::new(NotifyListener::adopt(sys::handover::adopt_fd(notify.fd)?, &notify.path)?)),
        None => None,
    };
    let group = Arc::new(Group::new(pid));
    let (exit_tx, exit) = watch::channel(None);
    let (reap_at, reap_seen) = watch::channel(tasks::ReapAt::Watching);
    let links = tasks::HostLinks {
        watchdog: shared.watchdog.as_ref().map(Arc::downgrade),
        escaped: Arc::clone(&shared.escaped),
        claim: crate::escapees::Claim::new(&name),
        held: held.clone(),
        at: reap_at,
    };
    let v2 = state.cgroup.clone().map(|dir| ChildCgroup::adopt(dir, state.memory_max)).transpose()?;
    let cgroups = tasks::Cgroups { v2, v1: None };
    tokio::spawn(tasks::reap(process, pid, cgroups, Arc::clone(&group), links, Arc::clone(&name), exit_tx));
    let notices = crate::notify::NotifyState {
        status: state.notices.status.clone(),
        watchdog_pings: state.notices.watchdog_pings,
        watchdog_triggered: state.notices.watchdog_triggered,
    };
    let mut running = Running {
        name: Arc::clone(&name),
        pid,
        group,
        stop_signal: Signal::from_number(state.stop_signal).unwrap_or(Signal::TERM),
        client: None,
        socket_path: state.socket_path.clone(),
        cgroup: state.cgroup.clone(),
        notify: notify.clone(),
        notices: watch::channel(notices).0,
        exit,
        pipes_closed: pumps.closed,
        pumps: pumps.handles,
        stopping: std::sync::atomic::AtomicBool::new(false),
        carry: Carry {
            pipes: pumps.links,
            reap_at: reap_seen,
            max_line: state.max_line,
            protocol: state.protocol.into(),
            transport: state.transport,
            adopted: true,
            v1_limits: false,
            memory_max: state.memory_max,
        },
    };
    if let Some(listener) = notify {
        tokio::spawn(tasks::follow_notices(listener, running.notices.clone(), running.exit.clone()));
    }
    let (lost_tx, socket_lost) = watch::channel(None);
    let carried = match state.rpc {
        Some(rpc) => match sys::handover::adopt_fd(rpc.fd)
            .map_err(|err| err.to_string())
            .and_then(|fd| Client::adopt(fd, rpc.session).map_err(|err| err.to_string()))
        {
            Ok(client) => Some(client),
            Err(err) => {
                warn!(child = %name, pid, "its RPC connection did not cross, connecting anew: {err}");
                None
            }
        },
        None => None,
    };
    running.client = match (carried, &state.socket_path) {
        (Some(client), _) => Some(client),
        (None, Some(path)) => match reconnect(&Endpoint::unix(path), &running).await {
            Ok(client) => Some(client),
            Err(err) => {
                warn!(child = %name, pid, "not connected again after the hand-over: {err}");
                None
            }
        },
        (None, None) => None,
    };
    let running = Arc::new(running);
    let watched = running.socket_path.as_ref().filter(|path| path.parent() == Some(shared.runtime_dir.path()));
    if let (Some(path), Some(client)) = (watched, &running.client) {
        let gone =
            shared.socket_watch.get_or_init(|| crate::socket_watch::SocketWatch::start(shared.runtime_dir.path()));
        tokio::spawn(tasks::follow_socket(gone.watch(path), client.clone(), Arc::downgrade(&running), lost_tx));
    }
    let registry: std::sync::Weak<dyn Registry> = Arc::downgrade(shared) as std::sync::Weak<HostShared>;
    let started = Instant::now().checked_sub(Duration::from_millis(state.uptime_ms)).unwrap_or_else(Instant::now);
    Ok(Child::resumed(running, state.slot, state.program, stdin, socket_lost, registry, started))
}

/// Connects to a taken-over child's socket, retrying briefly while it is busy or the child
/// has just exited (then there is nothing to connect to, and no client). It asks for the
/// transport the image before asked for: a shared-memory connection is never carried
/// (`Client::hold` refuses it), so this is where it moves to shared memory again.
async fn reconnect(endpoint: &Endpoint, running: &Running) -> Result<Client, warren_rpc::ConnectError> {
    let deadline = Instant::now() + RECONNECT;
    let mut pause = Duration::from_millis(1);
    let builder = Client::builder().protocol(running.carry.protocol).transport(running.carry.transport);
    loop {
        match builder.clone().connect(endpoint).await {
            Ok(client) => return Ok(client),
            Err(err) if Instant::now() + pause >= deadline || running.exit_now().is_some() => return Err(err),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}
