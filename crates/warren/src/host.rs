//! The host: owns a private runtime directory, a spawner thread, a watchdog, and its children.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::info;

use crate::cgroup::HostCgroup;
use crate::child::{Child, Registry};
use crate::error::{HostError, SpawnError};
use crate::log::{LogSink, TracingSink};
use crate::report::StopReport;
use crate::runtime_dir::RuntimeDir;
use crate::shutdown::{Shutdown, ShutdownStep};
use crate::signal::Signal;
use crate::socket_watch::SocketWatch;
use crate::spawner::Spawner;
use crate::spec::Spec;
use crate::start::{self, Context};
use crate::sys::{self, Leftovers, Watchdog};

pub(crate) struct HostShared {
    pub(crate) runtime_dir: RuntimeDir,
    pub(crate) spawner: Spawner,
    pub(crate) sink: Arc<dyn LogSink>,
    /// Declared before `cgroup`: the watchdog must stop watching before the cgroup goes.
    pub(crate) watchdog: Option<Arc<Watchdog>>,
    /// Where children's cgroups go, when the system lets us have them.
    pub(crate) cgroup: Option<HostCgroup>,
    /// Why there is no `cgroup`.
    pub(crate) no_cgroup: Option<String>,
    /// Where limits go whose controllers cgroup2 does not have here.
    pub(crate) v1: crate::cgroup_v1::V1Cgroups,
    pub(crate) children: Mutex<Vec<Child>>,
    /// Names whose spawn is under way.
    pub(crate) starting: Mutex<std::collections::HashSet<String>>,
    /// Installed by [`HostBuilder::catch_signals`], taken by [`Host::stop_on_signal`].
    pub(crate) signals: Mutex<Option<Shutdown>>,
    /// Started with the first RPC child, so hosts without any need no inotify instance.
    pub(crate) socket_watch: std::sync::OnceLock<SocketWatch>,
    /// Descendants that had left their child's process group, killed at its stop.
    pub(crate) escaped: Arc<std::sync::atomic::AtomicUsize>,
    /// True while a hand-over holds every pump and reaper (see `handover`).
    pub(crate) held: tokio::sync::watch::Sender<bool>,
    /// The caller's files the watchdog removes if this process dies, for a hand-over's next
    /// image.
    pub(crate) remove_on_death: Vec<std::path::PathBuf>,
    /// Taken for the whole of a hand-over, so that two never overlap.
    pub(crate) handing_over: tokio::sync::Mutex<()>,
}

impl Registry for HostShared {
    fn forget(&self, child: &Child) {
        self.children.lock().unwrap_or_else(PoisonError::into_inner).retain(|c| !c.same(child));
    }
}

/// Starts child programs and owns them completely; see the crate docs.
///
/// Keep the host alive while its children are in use: dropping the last handle to it tears
/// everything down as a last line of defence — children are killed through their parent-death
/// signal (plugins get SIGTERM and clean up), the watchdog kills their groups, and the runtime
/// directory is removed. Call [`stop_all`](Self::stop_all) first for an orderly end.
#[derive(Clone)]
pub struct Host {
    pub(crate) shared: Arc<HostShared>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("runtime_dir", &self.shared.runtime_dir.path()).finish()
    }
}

/// Options for a [`Host`].
#[must_use]
pub struct HostBuilder {
    pub(crate) sink: Arc<dyn LogSink>,
    watchdog: bool,
    pub(crate) catch_signals: bool,
    pid_namespace: bool,
    pub(crate) remove_on_death: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuilder").field("watchdog", &self.watchdog).finish()
    }
}

impl HostBuilder {
    /// Where children's lines go (default: `tracing`, see [`TracingSink`]).
    pub fn log_sink(mut self, sink: Arc<dyn LogSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Whether to fork the watchdog that kills every child's process group if the host is
    /// killed (default on).
    pub fn watchdog(mut self, enabled: bool) -> Self {
        self.watchdog = enabled;
        self
    }

    /// A file of the caller's (a control socket) that the watchdog removes if this process
    /// dies without removing it, unless another file has taken its path by then.
    pub fn remove_on_death(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.remove_on_death.push(path.into());
        self
    }

    /// Starts the children in a PID namespace of their own (default off; needs root), whose
    /// first process ends with the host. Then the kernel kills every process of the tree when
    /// the host dies, even when its watchdog is killed at the same instant (`pkill -9`),
    /// grandchildren that left their group and cgroup included. The price: the children see
    /// their own pids as numbered in the namespace (`getpid()` is small, and a pid file holds a
    /// number that means another process outside), while `/proc` is still the host's.
    pub fn pid_namespace(mut self, enabled: bool) -> Self {
        self.pid_namespace = enabled;
        self
    }

    /// Catches the signals of [`Host::stop_on_signal`] from now on, so that one arriving before
    /// it is called is kept for it instead of killing the process (default off: a library
    /// should not take over the process's signals unasked).
    pub fn catch_signals(mut self) -> Self {
        self.catch_signals = true;
        self
    }

    /// Creates the host: its runtime directory, spawner thread, watchdog and, where the system
    /// allows, its cgroup. Must run inside a tokio runtime.
    pub fn build(self) -> Result<Host, HostError> {
        let signals = if self.catch_signals { Some(Shutdown::install().map_err(HostError::Signals)?) } else { None };
        // Under `handover_main` they were blocked until now: the program has had its chance
        // to catch them, and otherwise wants their default action.
        crate::handover::signal_thread::release(&crate::sys::handover::held_across_exec());
        // The pipes and exit watches of children are registered with the caller's runtime.
        tokio::runtime::Handle::try_current().map_err(|_| HostError::NoRuntime)?;
        let runtime_dir = RuntimeDir::create().map_err(HostError::RuntimeDir)?;
        sys::become_subreaper().map_err(HostError::Subreaper)?;
        let (cgroup, no_cgroup) = match HostCgroup::create() {
            Ok(cgroup) => (Some(cgroup), None),
            Err(why) => (None, Some(why)),
        };
        let leftovers = Leftovers {
            cgroup_kill: cgroup.as_ref().and_then(HostCgroup::kill_file),
            runtime_dir: std::ffi::CString::new(runtime_dir.path().as_os_str().as_encoded_bytes()).ok(),
            // A file already gone has nothing to remove.
            files: self.remove_on_death.iter().filter_map(|path| sys::OwnFile::new(path).ok()).collect(),
        };
        let watchdog =
            if self.watchdog { Some(Arc::new(Watchdog::start(leftovers).map_err(HostError::Watchdog)?)) } else { None };
        let spawner = Spawner::start(self.pid_namespace)?;
        let remove_on_death = self.remove_on_death;
        Ok(Host {
            shared: Arc::new(HostShared {
                runtime_dir,
                spawner,
                sink: self.sink,
                watchdog,
                cgroup,
                no_cgroup,
                v1: crate::cgroup_v1::V1Cgroups::new(),
                children: Mutex::new(Vec::new()),
                starting: Mutex::new(std::collections::HashSet::new()),
                signals: Mutex::new(signals),
                socket_watch: std::sync::OnceLock::new(),
                escaped: Arc::default(),
                held: tokio::sync::watch::channel(false).0,
                remove_on_death,
                handing_over: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl Host {
    /// A host with a private runtime directory, the watchdog, and lines logged via `tracing`.
    pub fn new() -> Result<Host, HostError> {
        Host::builder().build()
    }

    /// Options for a host: log sink, watchdog, catching signals early.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            sink: Arc::new(TracingSink),
            watchdog: true,
            catch_signals: false,
            pid_namespace: false,
            remove_on_death: Vec::new(),
        }
    }

    /// Starts a child and returns once it is ready and, for RPC children, connected.
    pub async fn spawn(&self, spec: Spec) -> Result<Child, SpawnError> {
        // The name is reserved before anything is done in the runtime directory: its socket and
        // notify paths are derived from it, so two starts of one name must never overlap.
        let name = spec.slot_name().to_owned();
        {
            let mut starting = self.shared.starting.lock().unwrap_or_else(PoisonError::into_inner);
            let running = self.children().iter().any(|c| c.slot() == name);
            if running || !starting.insert(name.clone()) {
                return Err(SpawnError::DuplicateName { name: spec.name.clone() });
            }
            // Checked under the lock a hand-over sets its hold under: a child started now
            // would be left out of the state, and its pipes closed by the exec.
            if *self.shared.held.borrow() {
                starting.remove(&name);
                let source =
                    std::io::Error::new(std::io::ErrorKind::ResourceBusy, "the host is handing over to a new image");
                return Err(SpawnError::Setup { name: spec.name.clone(), what: "start", source });
            }
        }
        let shared = &self.shared;
        let registry: std::sync::Weak<dyn Registry> = Arc::downgrade(shared) as std::sync::Weak<HostShared>;
        let ctx = Context {
            runtime_dir: &shared.runtime_dir,
            spawner: &shared.spawner,
            sink: &shared.sink,
            cgroup: shared.cgroup.as_ref(),
            no_cgroup: shared.no_cgroup.as_deref(),
            v1: &shared.v1,
            watchdog: shared.watchdog.as_ref(),
            socket_watch: &shared.socket_watch,
            registry,
            escaped: &shared.escaped,
            held: &shared.held.subscribe(),
        };
        let spawned = start::spawn(ctx, spec).await;
        let mut starting = self.shared.starting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(child) = &spawned {
            self.shared.children.lock().unwrap_or_else(PoisonError::into_inner).push(child.clone());
        }
        starting.remove(&name);
        spawned
    }

    /// The children started and not yet stopped.
    pub fn children(&self) -> Vec<Child> {
        self.shared.children.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether each child runs in a cgroup of its own, so that a stop (and the watchdog, if the
    /// host dies) also reaches descendants that left the child's process group. Needs a
    /// writable cgroup2 hierarchy (root, or a delegated subtree) and Linux 5.14.
    pub fn uses_cgroups(&self) -> bool {
        self.shared.cgroup.is_some()
    }

    /// Why `limits` cannot be applied to children here (neither a cgroup2 controller nor a
    /// cgroup v1 hierarchy usable for one of them), or `None` when they can.
    pub fn limits_unavailable(&self, limits: &crate::Limits) -> Option<String> {
        if !limits.any() {
            return None;
        }
        let shared = &self.shared;
        let problems =
            crate::limits::route(shared.cgroup.as_ref(), shared.no_cgroup.as_deref(), &shared.v1, limits).problems;
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// How many descendants that had left their child's process group (a `setsid`, a daemon's
    /// double fork) were found and killed at their child's stop so far: through its cgroup, or
    /// without cgroups by the `WARREN_NAME`/`WARREN_HOST_PID` their environment inherited.
    pub fn escaped_killed(&self) -> usize {
        self.shared.escaped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The pid of the watchdog process, if it runs (see [`HostBuilder::watchdog`]).
    pub fn watchdog_pid(&self) -> Option<u32> {
        self.shared.watchdog.as_deref().map(Watchdog::pid)
    }

    /// The host's private directory, where children's sockets and notify sockets are.
    pub fn runtime_dir(&self) -> &std::path::Path {
        self.shared.runtime_dir.path()
    }

    /// Stops every child in parallel, each with `grace`; returns their reports.
    pub async fn stop_all(&self, grace: Duration) -> Vec<StopReport> {
        let mut stops = tokio::task::JoinSet::new();
        for child in self.children() {
            stops.spawn(async move { child.stop(grace).await });
        }
        let mut reports = Vec::new();
        while let Some(report) = stops.join_next().await {
            if let Ok(report) = report {
                reports.push(report);
            }
        }
        reports.sort_by(|a, b| a.name.cmp(&b.name));
        reports
    }

    /// SIGKILLs every child's process group at once.
    pub fn kill_all(&self) {
        self.signal_all(Signal::KILL);
    }

    /// Waits for a stop signal — SIGINT, SIGTERM, SIGHUP or SIGQUIT — then stops every child
    /// gracefully within `grace`. A second one SIGKILLs every group at once; a third exits the
    /// process immediately (code 130). Ctrl-Z (SIGTSTP) suspends every child's group with the
    /// process, and SIGCONT resumes them. The policy is [`Shutdown`]'s; see docs/SHUTDOWN.md.
    pub async fn stop_on_signal(&self, grace: Duration) -> std::io::Result<Vec<StopReport>> {
        let caught = self.shared.signals.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut shutdown = match caught {
            Some(shutdown) => shutdown,
            None => Shutdown::install()?,
        };
        let signal_groups = |signal| self.signal_all(signal);
        let first = loop {
            match shutdown.next(signal_groups).await {
                ShutdownStep::Stop(signal) | ShutdownStep::Killed(signal) => break signal,
                ShutdownStep::Resumed => info!("resumed: continued every child's process group"),
                // Not asked for here: `stop_on_signal` never calls `reload_on` or `upgrade_on`.
                ShutdownStep::Reload(_) | ShutdownStep::Upgrade(_) => {}
            }
        };
        info!("received {first}: stopping {} children (grace {grace:?}); again to kill them", self.children().len());
        let stopping = self.stop_all(grace);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                reports = &mut stopping => return Ok(reports),
                step = shutdown.next(signal_groups) => match step {
                    ShutdownStep::Killed(signal) => info!(
                        "received {signal} again: killing every child's process group now; once more to exit at once"
                    ),
                    ShutdownStep::Stop(_) | ShutdownStep::Resumed | ShutdownStep::Reload(_) | ShutdownStep::Upgrade(_) => {}
                },
            }
        }
    }

    /// Sends `signal` to every child's process group (a group whose leader has been reaped is
    /// skipped: its id may already be another's).
    pub fn signal_all(&self, signal: Signal) {
        for child in self.children() {
            child.signal_group(signal);
        }
    }
}
