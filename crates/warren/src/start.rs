//! Starting a child, step by step: prepare its files in the runtime directory and its readiness
//! watch, build its command, launch it, start its background tasks ([`tasks`](crate::tasks)),
//! wait until it is ready, connect its RPC client. Everything it needs from the host comes in
//! one [`Context`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::debug;
use warren_rpc::{Client, Endpoint, Transport};

use crate::cgroup::{ChildCgroup, HostCgroup};
use crate::child::{Child, Registry};
use crate::error::SpawnError;
use crate::exit::Exit;
use crate::group::Group;
use crate::log::{LogSink, Stream};
use crate::notify::{NotifyListener, NotifyState};
use crate::plugin::TRANSPORT_VAR;
use crate::pump::Tail;
use crate::running::Running;
use crate::runtime_dir::RuntimeDir;
use crate::signal::Signal;
use crate::socket_watch::SocketWatch;
use crate::spawner::{self, Spawner};
use crate::spec::{Readiness, Spec};
use crate::sys::{self, Watchdog};
use crate::tasks;

/// What starting a child needs from its host.
pub(crate) struct Context<'a> {
    pub runtime_dir: &'a RuntimeDir,
    pub spawner: &'a Spawner,
    pub sink: &'a Arc<dyn LogSink>,
    pub cgroup: Option<&'a HostCgroup>,
    /// Why there is no `cgroup`.
    pub no_cgroup: Option<&'a str>,
    /// Where limits go whose controllers cgroup2 does not have here.
    pub v1: &'a crate::cgroup_v1::V1Cgroups,
    pub watchdog: Option<&'a Arc<Watchdog>>,
    /// Started with the first RPC child, so hosts without any need no inotify instance.
    pub socket_watch: &'a OnceLock<SocketWatch>,
    /// Told when the child's stop is over.
    pub registry: Weak<dyn Registry>,
    /// Counts the descendants that had left their child's process group and were killed.
    pub escaped: &'a Arc<std::sync::atomic::AtomicUsize>,
    /// True while a hand-over holds every pump and reaper (see `handover`).
    pub held: &'a watch::Receiver<bool>,
}

/// What is in place before the child starts.
struct Prepared {
    socket_path: Option<PathBuf>,
    notify: Option<Arc<NotifyListener>>,
    /// The host's sink, or one that also watches for the readiness line.
    sink: Arc<dyn LogSink>,
    ready_line: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Starts `spec` and returns once it is ready (and its RPC client connected).
pub(crate) async fn spawn(ctx: Context<'_>, spec: Spec) -> Result<Child, SpawnError> {
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let prepared = prepare(&ctx, &spec)?;
    let mut cgroup = ctx.cgroup.and_then(|cgroups| {
        cgroups.child(spec.slot_name()).map_err(|err| debug!(child = %name, "no cgroup of its own: {err}")).ok()
    });
    let v1 = crate::limits::apply(&ctx, &spec, cgroup.as_mut());
    let mut command = command(&spec, &prepared, cgroup.as_ref());
    if let Some(v1) = &v1 {
        command.join_cgroups(v1.procs_fds());
    }
    let mut process = launch(&ctx, &spec, &command).await?;
    let pid = process.id();
    debug!(child = %name, pid, program = %spec.program.display(), "started");

    let of = tasks::PumpsOf { name: &name, pid, max_line: spec.max_line, sink: &prepared.sink, held: ctx.held };
    let pumps = match tasks::start_pumps(&mut process, &of) {
        Ok(pumps) => pumps,
        Err(source) => {
            let _ = sys::kill_group(pid, Signal::KILL);
            let _ = process.wait().await;
            return Err(SpawnError::Setup { name: spec.name.clone(), what: "output pipes", source });
        }
    };
    let stdin = process.stdin.take();
    let (exit_tx, exit) = watch::channel(None);
    let group = Arc::new(Group::new(pid));
    let watchdog = ctx.watchdog.map(Arc::downgrade);
    let cgroup_dir = cgroup.as_ref().map(|cgroup| cgroup.dir().to_path_buf());
    let claim = crate::escapees::Claim::new(&name);
    let (reap_at, reap_seen) = watch::channel(tasks::ReapAt::Watching);
    let links =
        tasks::HostLinks { watchdog, escaped: Arc::clone(ctx.escaped), claim, held: ctx.held.clone(), at: reap_at };
    let v1_limits = v1.is_some();
    let memory_max = cgroup.as_ref().and_then(ChildCgroup::memory_max);
    let cgroups = tasks::Cgroups { v2: cgroup, v1 };
    tokio::spawn(tasks::reap(process, pid, cgroups, Arc::clone(&group), links, Arc::clone(&name), exit_tx));
    let mut running = Running {
        name: Arc::clone(&name),
        pid,
        group,
        stop_signal: spec.stop_signal,
        client: None,
        socket_path: prepared.socket_path,
        cgroup: cgroup_dir,
        notify: prepared.notify.clone(),
        notices: watch::channel(NotifyState::default()).0,
        exit,
        pipes_closed: pumps.closed,
        pumps: pumps.handles,
        stopping: std::sync::atomic::AtomicBool::new(false),
        carry: crate::handover::Carry {
            pipes: pumps.links,
            reap_at: reap_seen,
            max_line: spec.max_line,
            protocol: spec.protocol,
            transport: spec.rpc_transport(),
            adopted: false,
            v1_limits,
            memory_max,
        },
    };
    let deadline = Instant::now() + spec.ready_timeout;
    wait_ready(&running, prepared.notify.as_deref(), prepared.ready_line, spec.ready_timeout, &pumps.tail).await?;
    if let Some(listener) = prepared.notify {
        tokio::spawn(tasks::follow_notices(listener, running.notices.clone(), running.exit.clone()));
    }
    let endpoint = running.socket_path.as_ref().map(Endpoint::unix);
    let (lost_tx, socket_lost) = watch::channel(None);
    if let Some(endpoint) = &endpoint {
        match connect(&running, endpoint, &spec, deadline).await {
            Ok(client) => running.client = Some(client),
            Err(source) => {
                let child = Child::new(Arc::new(running), &spec, stdin, socket_lost, ctx.registry);
                child.stop(Duration::from_secs(1)).await;
                return Err(SpawnError::Connect { name: name.to_string(), endpoint: endpoint.to_string(), source });
            }
        }
    }
    let running = Arc::new(running);
    // Only sockets in the runtime directory are watched: a program's own may live anywhere.
    let watched = running.socket_path.as_ref().filter(|path| path.parent() == Some(ctx.runtime_dir.path()));
    if let (Some(path), Some(client)) = (watched, &running.client) {
        let gone = ctx.socket_watch.get_or_init(|| SocketWatch::start(ctx.runtime_dir.path())).watch(path);
        tokio::spawn(tasks::follow_socket(gone, client.clone(), Arc::downgrade(&running), lost_tx));
    }
    Ok(Child::new(running, &spec, stdin, socket_lost, ctx.registry))
}

/// Makes the child's place in the runtime directory and its readiness watch.
fn prepare(ctx: &Context<'_>, spec: &Spec) -> Result<Prepared, SpawnError> {
    let setup = |what: &'static str| move |source| SpawnError::Setup { name: spec.name.clone(), what, source };
    ctx.runtime_dir.ensure().map_err(setup("runtime directory"))?;
    let own = spec.socket.as_ref().map(|path| match &spec.cwd {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.clone(),
    });
    if let Some(path) = &own {
        // A program that binds its own socket fails on a file left there, but the file may be
        // another process's live socket, or no socket at all: only a dead socket is removed.
        // Whatever stays, the program meets it and says so.
        let _ = crate::listen::remove_stale_socket(path);
    }
    let socket_path = spec.rpc.then(|| own.unwrap_or_else(|| ctx.runtime_dir.file_for(spec.slot_name(), ".sock")));
    if let Some(path) = socket_path.as_ref().filter(|_| spec.socket.is_none()) {
        // A previous instance that crashed may have left its socket here.
        let _ = std::fs::remove_file(path);
    }
    let notify = match spec.readiness {
        Readiness::Notify => Some(Arc::new(
            NotifyListener::bind(&ctx.runtime_dir.file_for(spec.slot_name(), ".notify"))
                .map_err(setup("notify socket"))?,
        )),
        Readiness::Started | Readiness::LogLine(_) => None,
    };
    // The watch is in place before the child starts, so even its very first line counts.
    let (sink, ready_line): (Arc<dyn LogSink>, _) = match &spec.readiness {
        Readiness::LogLine(pattern) => {
            let regex = regex::Regex::new(pattern).map_err(|err| SpawnError::BadPattern {
                name: spec.name.clone(),
                pattern: pattern.clone(),
                reason: err.to_string(),
            })?;
            let (line_seen, ready_line) = tokio::sync::oneshot::channel();
            let watch = LineWatch { inner: Arc::clone(ctx.sink), regex, seen: Mutex::new(Some(line_seen)) };
            (Arc::new(watch), Some(ready_line))
        }
        _ => (Arc::clone(ctx.sink), None),
    };
    Ok(Prepared { socket_path, notify, sink, ready_line })
}

/// The child's command: stdin, stdout and stderr are pipes; the child gets its own process
/// group, so that stopping reaches grandchildren and a terminal's Ctrl-C reaches only the host,
/// which then stops children in order; and the parent-death signal (see `spawner`).
fn command(spec: &Spec, prepared: &Prepared, cgroup: Option<&ChildCgroup>) -> spawner::Command {
    let mut command = spawner::Command::new(&spec.program);
    if let Some(cgroup) = cgroup {
        command.cgroup(cgroup.dir_fd(), cgroup.procs_fd());
    }
    command.args(&spec.args);
    if let Some(id) = &spec.identity {
        command.user(id.uid, id.gid, &id.groups);
    }
    if spec.clear_env {
        command.env_clear();
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    command.env("WARREN_PROTOCOL", warren_rpc::PROTOCOL_VERSION.to_string()).env("WARREN_NAME", &spec.name);
    command.env("WARREN_HOST_PID", sys::current_pid().to_string());
    // A hand-over's state is this process's, never a child's.
    command.env_remove(crate::handover::STATE_VAR);
    if let Some(path) = &prepared.socket_path {
        command.env("WARREN_ENDPOINT", Endpoint::unix(path).to_string());
    }
    // Only for a child asked to serve shared memory: none inherits the host's own.
    match spec.rpc_transport() {
        Transport::Socket => command.env_remove(TRANSPORT_VAR),
        transport => command.env(TRANSPORT_VAR, transport.as_str()),
    };
    // Socket activation's variables are the host's own if it was socket-activated itself:
    // never passed on, only set for a child given sockets.
    for key in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        command.env_remove(key);
    }
    if !spec.listen.is_empty() {
        let names: Vec<&str> = spec.listen.iter().map(|(name, _)| name.as_str()).collect();
        command.env("LISTEN_FDS", spec.listen.len().to_string()).env("LISTEN_FDNAMES", names.join(":"));
        command.listen(spec.listen.iter().map(|(_, fd)| Arc::clone(fd)));
    }
    match &prepared.notify {
        Some(listener) => command.env("NOTIFY_SOCKET", listener.path()),
        None => command.env_remove("NOTIFY_SOCKET"),
    };
    if let Some(dir) = &spec.cwd {
        command.current_dir(dir);
    }
    command
}

/// Starts the process on the spawner thread and registers its group with the watchdog.
async fn launch(ctx: &Context<'_>, spec: &Spec, command: &spawner::Command) -> Result<spawner::Process, SpawnError> {
    let process = ctx.spawner.spawn(command).await.map_err(|source| {
        let cwd = source.get_ref().and_then(|err| err.downcast_ref::<sys::CwdError>());
        let joining = source.get_ref().is_some_and(|err| err.is::<sys::CgroupJoinError>());
        if joining {
            SpawnError::Spawn { name: spec.name.clone(), program: spec.program.clone(), source }
        } else if let (Some(cwd), Some(dir)) = (cwd, &spec.cwd) {
            let source = std::io::Error::new(cwd.0.kind(), cwd.0.to_string());
            SpawnError::Cwd { name: spec.name.clone(), dir: dir.clone(), source }
        } else if source.kind() == std::io::ErrorKind::NotFound {
            SpawnError::NotFound { name: spec.name.clone(), program: spec.program.clone(), looked_in: looked_in(spec) }
        } else {
            SpawnError::Spawn { name: spec.name.clone(), program: spec.program.clone(), source }
        }
    })?;
    if let Some(watchdog) = ctx.watchdog {
        watchdog.watch(process.id());
    }
    Ok(process)
}

/// Where a program that was not found was looked for, as `execvp` did: the directory of a path,
/// or each entry of the child's `PATH`.
fn looked_in(spec: &Spec) -> Vec<PathBuf> {
    let path = match spec.env.iter().rev().find(|(key, _)| key == "PATH") {
        Some((_, value)) => Some(value.clone()),
        None if spec.clear_env => None,
        None => std::env::var_os("PATH"),
    };
    spawner::search_path(&spec.program, path.as_deref())
        .into_iter()
        .map(|candidate| PathBuf::from(candidate).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")))
        .collect()
}

/// Waits for READY=1 while watching for an early exit, without ever sleeping.
async fn wait_ready(
    child: &Running,
    notify: Option<&NotifyListener>,
    mut ready_line: Option<tokio::sync::oneshot::Receiver<()>>,
    timeout: Duration,
    tail: &Tail,
) -> Result<(), SpawnError> {
    if notify.is_none() && ready_line.is_none() {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let mut exit = child.exit.clone();
    loop {
        let notice = async {
            match notify {
                Some(listener) => listener.next().await,
                None => std::future::pending().await,
            }
        };
        let line = async {
            match ready_line.as_mut() {
                Some(seen) => seen.await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            true = line => return Ok(()),
            notice = notice => match notice {
                Ok(notice) => {
                    child.notices.send_if_modified(|state| state.record(&notice));
                    if notice.ready {
                        return Ok(());
                    }
                }
                Err(err) => debug!(child = %child.name, "notify socket: {err}"),
            },
            _ = async { exit.wait_for(Option::is_some).await.is_ok() } => {
                // Let the pumps deliver what it printed before it died, to show in the error.
                let _ = child.wait_pipes_closed(Duration::from_millis(500)).await;
                let exit = child.exit_now().unwrap_or(Exit::Unknown);
                let _ = child.remove_socket_file();
                return Err(SpawnError::ExitedBeforeReady { name: child.name.to_string(), exit, stderr_tail: tail.snapshot() });
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                child.group.signal(Signal::KILL);
                let _ = child.wait_exit_until(Instant::now() + Duration::from_secs(5)).await;
                let _ = child.wait_pipes_closed(Duration::from_millis(500)).await;
                let _ = child.remove_socket_file();
                return Err(SpawnError::ReadyTimeout { name: child.name.to_string(), timeout, stderr_tail: tail.snapshot() });
            }
        }
    }
}

/// Connects the RPC client. A child that said READY=1 has bound its socket, so one attempt is
/// right; one that is ready when started may not have bound yet, so that case retries (with
/// backoff, until the ready deadline or its exit) while the socket is absent or refusing.
async fn connect(
    child: &Running,
    endpoint: &Endpoint,
    spec: &Spec,
    deadline: Instant,
) -> Result<Client, warren_rpc::ConnectError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match Client::builder().protocol(spec.protocol).transport(spec.rpc_transport()).connect(endpoint).await {
            Ok(client) => return Ok(client),
            Err(warren_rpc::ConnectError::Io { source, .. })
                if spec.readiness != Readiness::Notify
                    && matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    )
                    && Instant::now() + pause < deadline
                    && child.exit_now().is_none() =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Passes lines on and signals the first that matches the readiness pattern.
struct LineWatch {
    inner: Arc<dyn LogSink>,
    regex: regex::Regex,
    seen: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl LineWatch {
    fn watch<'a>(&self, mut lines: impl Iterator<Item = &'a str>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.is_some()
            && lines.any(|line| self.regex.is_match(line))
            && let Some(tx) = seen.take()
        {
            let _ = tx.send(());
        }
    }
}

impl LogSink for LineWatch {
    fn line(&self, line: crate::log::LogLine) {
        self.watch(std::iter::once(line.text.as_str()));
        self.inner.line(line);
    }

    fn lines(&self, batch: &crate::log::LineBatch<'_>) {
        self.watch(batch.lines());
        self.inner.lines(batch);
    }

    fn closed(&self, child: &str, stream: Stream) {
        self.inner.closed(child, stream);
    }
}
