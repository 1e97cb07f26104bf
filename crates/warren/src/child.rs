//! A running child: its pipes, its RPC client, its exit status, and the handle to stop it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_rpc::{Client, Endpoint};

use crate::cgroup::ChildCgroup;
use crate::error::SpawnError;
use crate::exit::Exit;
use crate::host::HostShared;
use crate::log::{LogSink, Stream};
use crate::notify::NotifyListener;
use crate::pump::{self, Tail};
use crate::signal::Signal;
use crate::socket_watch::SocketLost;
use crate::spawner;
use crate::spec::{Readiness, Spec};
use crate::stop::{self, Leak, StopReport};
use crate::sys;

/// A child program owned by a [`Host`](crate::Host); clones share it.
#[derive(Debug, Clone)]
pub struct Child {
    pub(crate) inner: Arc<ChildInner>,
}

pub(crate) struct ChildInner {
    pub name: Arc<str>,
    pub program: PathBuf,
    pub pid: u32,
    pub client: Option<Client>,
    pub endpoint: Option<Endpoint>,
    pub stop_signal: Signal,
    /// Weak, so that dropping the [`Host`](crate::Host) releases everything (see its docs).
    pub host: Weak<HostShared>,
    pub group: Arc<Group>,
    socket_path: Option<PathBuf>,
    notify: Option<Arc<NotifyListener>>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    exit: watch::Receiver<Option<Exit>>,
    pipes_closed: CancellationToken,
    pumps: Mutex<Vec<AbortHandle>>,
    stopping: tokio::sync::Mutex<Option<StopReport>>,
    started: Instant,
    socket_lost: watch::Receiver<Option<SocketLost>>,
}

/// The child's process group, as far as warren may still signal it.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Set once the leader is reaped and the group emptied: from then on its id may be reused
    /// by an unrelated group, so warren never signals it again.
    released: AtomicBool,
    /// What the group left behind when its leader exited.
    pub leaks: Mutex<Vec<Leak>>,
}

impl Group {
    /// Signals the group unless it has been released.
    pub fn signal(&self, pgid: u32, signal: Signal) {
        if !self.released.load(Ordering::SeqCst)
            && let Err(err) = sys::kill_group(pgid, signal)
        {
            debug!(pgid, "cannot send {signal}: {err}");
        }
    }
}

impl std::fmt::Debug for ChildInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("name", &self.name).field("pid", &self.pid).finish()
    }
}

impl ChildInner {
    pub fn exit_now(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits for the exit until `deadline`; true if it exited.
    pub async fn wait_exit_until(&self, deadline: Instant) -> bool {
        let mut exit = self.exit.clone();
        let wait = exit.wait_for(Option::is_some);
        tokio::time::timeout_at(deadline.into(), wait).await.is_ok_and(|r| r.is_ok())
    }

    pub async fn wait_pipes_closed(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, self.pipes_closed.cancelled()).await.is_ok()
    }

    pub fn abort_pumps(&self) {
        for pump in self.pumps.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            pump.abort();
        }
    }

    /// Removes the notify socket now, so that nothing of the child is left once a stop returns.
    pub fn remove_notify_file(&self) {
        if let Some(listener) = &self.notify {
            listener.remove_file();
        }
    }

    /// A stop has begun (or ended): whatever the child does to its socket now is expected.
    fn is_stopping(&self) -> bool {
        self.stopping.try_lock().map_or(true, |report| report.is_some())
    }

    /// Removes the child's socket file if it left it; true if it had to.
    pub fn remove_socket_file(&self) -> bool {
        match &self.socket_path {
            Some(path) if path.exists() => std::fs::remove_file(path).is_ok(),
            _ => false,
        }
    }
}

impl Child {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    pub fn program(&self) -> &Path {
        &self.inner.program
    }

    /// The RPC client connected to the child.
    ///
    /// # Panics
    /// If the child was started with `Spec::rpc(false)`; use [`try_client`](Self::try_client)
    /// when that is decided at run time.
    pub fn client(&self) -> &Client {
        self.try_client().unwrap_or_else(|| panic!("child {} was started without RPC (Spec::rpc(false))", self.name()))
    }

    pub fn try_client(&self) -> Option<&Client> {
        self.inner.client.as_ref()
    }

    /// Where the child serves RPC.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.inner.endpoint.as_ref()
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// How the child ended, if it has.
    /// Resolves if the child's socket file is deleted or replaced while the child runs and is
    /// not being stopped — by a `/tmp` cleaner, say. The child still serves the connections it
    /// has, this one included, but no new client can reach it until it binds again (restart
    /// it). Never resolves for a child without a Unix socket.
    pub async fn socket_lost(&self) -> SocketLost {
        let mut lost = self.inner.socket_lost.clone();
        let what = lost.wait_for(Option::is_some).await.ok().and_then(|what| what.clone());
        match what {
            Some(what) => what,
            None => std::future::pending().await,
        }
    }

    /// The socket file's loss, if [`socket_lost`](Self::socket_lost) has resolved.
    pub fn socket_lost_now(&self) -> Option<SocketLost> {
        self.inner.socket_lost.borrow().clone()
    }

    pub fn exit(&self) -> Option<Exit> {
        self.inner.exit_now()
    }

    /// Waits until the child exits (by itself or because it was stopped).
    pub async fn wait(&self) -> Exit {
        let mut exit = self.inner.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.unwrap_or(Exit::Unknown),
            // The waiter task is gone only if the runtime is shutting down.
            Err(_) => self.inner.exit_now().unwrap_or(Exit::Unknown),
        }
    }

    /// Writes to the child's stdin.
    pub async fn write_stdin(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut stdin = self.inner.stdin.lock().await;
        let pipe = stdin.as_mut().ok_or_else(|| std::io::Error::other("stdin already closed"))?;
        pipe.write_all(bytes).await?;
        pipe.flush().await
    }

    /// Closes the child's stdin so it reads end-of-file.
    pub async fn close_stdin(&self) {
        self.inner.stdin.lock().await.take();
    }

    /// Stops the child: a Shutdown call (or the stop signal for children without RPC), then the
    /// stop signal to its whole process group half way through `grace`, then SIGKILL to the
    /// group at `grace`; returns as soon as it is gone. Idempotent: a second call returns the
    /// same report.
    pub async fn stop(&self, grace: Duration) -> StopReport {
        let mut slot = self.inner.stopping.lock().await;
        if let Some(report) = &*slot {
            return report.clone();
        }
        let report = stop::run(&self.inner, grace).await;
        info!(child = %self.inner.name, "{report}");
        if let Some(host) = self.inner.host.upgrade() {
            host.forget(self);
        }
        *slot = Some(report.clone());
        report
    }

    /// SIGKILLs the child's whole process group now (a stop in progress then ends at once).
    pub fn kill(&self) {
        self.signal_group(Signal::KILL);
    }

    /// Sends `signal` to the child's process group, unless its leader has been reaped.
    pub(crate) fn signal_group(&self, signal: Signal) {
        self.inner.group.signal(self.inner.pid, signal);
    }
}

/// Starts `spec` and returns once it is ready (and its RPC client connected).
pub(crate) async fn spawn(host: &Arc<HostShared>, spec: Spec) -> Result<Child, SpawnError> {
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let spec_name = spec.name.clone();
    let setup = |what: &'static str| move |source| SpawnError::Setup { name: spec_name, what, source };
    host.runtime_dir.ensure().map_err(|source| SpawnError::Setup {
        name: spec.name.clone(),
        what: "runtime directory",
        source,
    })?;
    let socket_path = spec.rpc.then(|| host.runtime_dir.file_for(&spec.name, ".sock"));
    if let Some(path) = &socket_path {
        // A previous instance that crashed may have left its socket here.
        let _ = std::fs::remove_file(path);
    }
    let notify = match spec.readiness {
        Readiness::Notify => Some(Arc::new(
            NotifyListener::bind(&host.runtime_dir.file_for(&spec.name, ".notify")).map_err(setup("notify socket"))?,
        )),
        Readiness::Started | Readiness::LogLine(_) => None,
    };
    // The watch is in place before the child starts, so even its very first line counts.
    let (line_seen, ready_line) = tokio::sync::oneshot::channel();
    let sink: Arc<dyn LogSink> = match &spec.readiness {
        Readiness::LogLine(pattern) => {
            let regex = regex::Regex::new(pattern).map_err(|err| SpawnError::BadPattern {
                name: spec.name.clone(),
                pattern: pattern.clone(),
                reason: err.to_string(),
            })?;
            Arc::new(LineWatch { inner: Arc::clone(&host.sink), regex, seen: Mutex::new(Some(line_seen)) })
        }
        _ => Arc::clone(&host.sink),
    };
    let ready_line = matches!(spec.readiness, Readiness::LogLine(_)).then_some(ready_line);
    // stdin, stdout and stderr are pipes; the child gets its own process group, so that
    // stopping reaches grandchildren and a terminal's Ctrl-C reaches only the host, which then
    // stops children in order; and the parent-death signal (see `spawner`).
    let mut command = spawner::Command::new(&spec.program);
    let cgroup = host.cgroup.as_ref().and_then(|cgroups| {
        cgroups.child(&spec.name).map_err(|err| debug!(child = %name, "no cgroup of its own: {err}")).ok()
    });
    if let Some(cgroup) = &cgroup {
        command.cgroup(cgroup.dir_fd(), cgroup.procs_fd());
    }
    command.args(&spec.args);
    if spec.clear_env {
        command.env_clear();
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    command.env("WARREN_PROTOCOL", warren_rpc::hello::VERSION.to_string()).env("WARREN_NAME", &spec.name);
    command.env("WARREN_HOST_PID", sys::current_pid().to_string());
    if let Some(path) = &socket_path {
        command.env("WARREN_ENDPOINT", Endpoint::unix(path).to_string());
    }
    match &notify {
        Some(listener) => command.env("NOTIFY_SOCKET", listener.path()),
        None => command.env_remove("NOTIFY_SOCKET"),
    };
    if let Some(dir) = &spec.cwd {
        command.current_dir(dir);
    }
    let mut process = host.spawner.spawn(&command).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SpawnError::NotFound { name: spec.name.clone(), program: spec.program.clone() }
        } else {
            SpawnError::Spawn { name: spec.name.clone(), program: spec.program.clone(), source }
        }
    })?;
    let pid = process.id();
    host.watch(pid);
    debug!(child = %name, pid, program = %spec.program.display(), "started");

    let tail = Arc::new(Tail::default());
    let pipes_closed = CancellationToken::new();
    let start_pump = |pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>, stream: Stream, tail: Option<Arc<Tail>>| {
        tokio::spawn(pump::pump(pipe, Arc::clone(&name), stream, spec.max_line, Arc::clone(&sink), tail))
    };
    let mut pump_tasks = Vec::new();
    if let Some(stdout) = process.stdout.take() {
        pump_tasks.push(start_pump(Box::new(stdout), Stream::Stdout, None));
    }
    if let Some(stderr) = process.stderr.take() {
        // stderr's last lines are kept to explain a child that fails before it is ready.
        pump_tasks.push(start_pump(Box::new(stderr), Stream::Stderr, Some(Arc::clone(&tail))));
    }
    let pumps: Vec<AbortHandle> = pump_tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect();
    {
        let pipes_closed = pipes_closed.clone();
        tokio::spawn(async move {
            for task in pump_tasks {
                let _ = task.await;
            }
            pipes_closed.cancel();
        });
    }
    let stdin = process.stdin.take();
    let (exit_tx, exit) = watch::channel(None);
    let group = Arc::new(Group::default());
    let (lost_tx, socket_lost) = watch::channel(None);
    tokio::spawn(reap(process, pid, cgroup, Arc::clone(&group), Arc::downgrade(host), Arc::clone(&name), exit_tx));

    let inner = ChildInner {
        name: Arc::clone(&name),
        program: spec.program.clone(),
        pid,
        client: None,
        endpoint: socket_path.as_ref().map(Endpoint::unix),
        stop_signal: spec.stop_signal,
        host: Arc::downgrade(host),
        group,
        socket_path,
        notify: notify.clone(),
        stdin: tokio::sync::Mutex::new(stdin),
        exit,
        pipes_closed,
        pumps: Mutex::new(pumps),
        stopping: tokio::sync::Mutex::new(None),
        started: Instant::now(),
        socket_lost,
    };
    let mut inner = inner;
    let deadline = Instant::now() + spec.ready_timeout;
    wait_ready(&inner, notify.as_deref(), ready_line, spec.ready_timeout, &tail).await?;
    if let Some(listener) = notify {
        tokio::spawn(follow_notices(listener, Arc::clone(&name), inner.exit.clone()));
    }
    if let Some(endpoint) = inner.endpoint.clone() {
        match connect(&inner, &endpoint, &spec, deadline).await {
            Ok(client) => inner.client = Some(client),
            Err(source) => {
                let child = Child { inner: Arc::new(inner) };
                child.stop(Duration::from_secs(1)).await;
                return Err(SpawnError::Connect { name: name.to_string(), endpoint: endpoint.to_string(), source });
            }
        }
    }
    let child = Child { inner: Arc::new(inner) };
    if let (Some(path), Some(client)) = (&child.inner.socket_path, &child.inner.client) {
        let gone = host.socket_watch().watch(path);
        tokio::spawn(follow_socket(gone, client.clone(), Arc::downgrade(&child.inner), lost_tx));
    }
    Ok(child)
}

/// How long a child that removed its socket may take to exit before the removal counts as a
/// loss. A child shutting down closes every connection, the host's too, before it removes
/// its socket, and then exits: either is seen well within this.
const SHUTDOWN_EVIDENCE: Duration = Duration::from_millis(500);

/// Tells a socket file lost under a running child from the child removing its own on the
/// way out, and publishes (and logs) the first.
async fn follow_socket(
    gone: tokio::sync::oneshot::Receiver<SocketLost>,
    client: Client,
    child: Weak<ChildInner>,
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

/// Connects the RPC client. A child that said READY=1 has bound its socket, so one attempt is
/// right; one that is ready when started may not have bound yet, so that case retries (with
/// backoff, until the ready deadline or its exit) while the socket is absent or refusing.
async fn connect(
    child: &ChildInner,
    endpoint: &Endpoint,
    spec: &Spec,
    deadline: Instant,
) -> Result<Client, warren_rpc::ConnectError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match Client::builder().protocol(spec.protocol).connect(endpoint).await {
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

/// Reaps the leader, then settles its group: members that outlived it are grandchildren that
/// would otherwise run on unowned; they are killed and reaped (the host is their subreaper), and
/// the group is released before anyone can see the exit, so no later signal can reach a
/// reused group id.
async fn reap(
    process: spawner::Process,
    pgid: u32,
    cgroup: Option<ChildCgroup>,
    group: Arc<Group>,
    host: Weak<HostShared>,
    name: Arc<str>,
    exit_tx: watch::Sender<Option<Exit>>,
) {
    let status = process.wait().await;
    if sys::group_has_members(pgid) {
        let _ = sys::kill_group(pgid, Signal::KILL);
        warn!(child = %name, pgid, "processes of the child's group outlived it; killed them");
        group.leaks.lock().unwrap_or_else(PoisonError::into_inner).push(Leak::GroupMembers);
        stop::reap_leftovers(pgid).await;
    }
    // What is still in its cgroup left the group (its own session or group) and would outlive
    // every stop.
    let escaped = match &cgroup {
        Some(cgroup) => cgroup.settle().await,
        None => 0,
    };
    if escaped > 0 {
        warn!(child = %name, "{escaped} descendant(s) that had left the child's process group outlived it; killed them");
        group.leaks.lock().unwrap_or_else(PoisonError::into_inner).push(Leak::Escaped { count: escaped });
    }
    drop(cgroup);
    group.released.store(true, Ordering::SeqCst);
    if let Some(host) = host.upgrade() {
        host.unwatch(pgid);
    }
    let _ = exit_tx.send(Some(status.map_or(Exit::Unknown, Exit::from_status)));
}

/// Passes lines on and signals the first that matches the readiness pattern.
struct LineWatch {
    inner: Arc<dyn LogSink>,
    regex: regex::Regex,
    seen: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl LogSink for LineWatch {
    fn line(&self, line: crate::log::LogLine) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.is_some()
            && self.regex.is_match(&line.text)
            && let Some(tx) = seen.take()
        {
            let _ = tx.send(());
        }
        drop(seen);
        self.inner.line(line);
    }

    fn closed(&self, child: &str, stream: Stream) {
        self.inner.closed(child, stream);
    }
}

/// Keeps reading the child's notifications after READY=1 (STATUS=, STOPPING=1, WATCHDOG=1) so
/// that a child sending them never blocks on a full socket queue.
async fn follow_notices(listener: Arc<NotifyListener>, name: Arc<str>, mut exit: watch::Receiver<Option<Exit>>) {
    loop {
        tokio::select! {
            notice = listener.next() => match notice {
                Ok(notice) => {
                    if let Some(status) = notice.status {
                        debug!(child = %name, "status: {status}");
                    }
                    if notice.stopping {
                        debug!(child = %name, "stopping");
                    }
                }
                Err(_) => return,
            },
            _ = async { exit.wait_for(Option::is_some).await.is_ok() } => return,
        }
    }
}

/// Waits for READY=1 while watching for an early exit, without ever sleeping.
async fn wait_ready(
    child: &ChildInner,
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
                Ok(notice) if notice.ready => return Ok(()),
                Ok(notice) => {
                    if let Some(status) = notice.status {
                        debug!(child = %child.name, "status: {status}");
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
                child.group.signal(child.pid, Signal::KILL);
                let _ = child.wait_exit_until(Instant::now() + Duration::from_secs(5)).await;
                let _ = child.wait_pipes_closed(Duration::from_millis(500)).await;
                let _ = child.remove_socket_file();
                return Err(SpawnError::ReadyTimeout { name: child.name.to_string(), timeout, stderr_tail: tail.snapshot() });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Host::spawn and Child::stop must be usable from spawned tasks.
    #[test]
    fn futures_are_send() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let host = crate::Host::builder().watchdog(false).build().expect("host");
            let spawn = host.spawn(Spec::new("/nonexistent"));
            assert_send(&spawn);
            drop(spawn);
            let child = host.spawn(Spec::new("true").rpc(false).readiness(Readiness::Started)).await.expect("spawn");
            let wait = child.wait();
            assert_send(&wait);
            drop(wait);
            let stop = child.stop(Duration::from_secs(1));
            assert_send(&stop);
            stop.await;
        });
    }
}
