//! The handle to a started child ([`Child`]): its name and pid, its RPC client, its stdin, its
//! exit, and the stop. How a child is started is `start.rs`; what runs beside it, `tasks.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tracing::info;
use warren_rpc::{Client, Endpoint};

use crate::exit::Exit;
use crate::report::StopReport;
use crate::running::Running;
use crate::signal::Signal;
use crate::socket_watch::SocketLost;
use crate::spec::Spec;
use crate::stop;

/// Whoever lists the running children (the host): told when a child's stop is over. A trait,
/// so that a child refers to its host without depending on it.
pub(crate) trait Registry: Send + Sync {
    fn forget(&self, child: &Child);
}

/// A child program owned by a [`Host`](crate::Host); clones share it.
#[derive(Clone)]
pub struct Child {
    inner: Arc<ChildInner>,
}

struct ChildInner {
    running: Arc<Running>,
    /// What its runtime files are named after (see [`Spec::slot`]).
    slot: String,
    program: PathBuf,
    endpoint: Option<Endpoint>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    /// The report of the stop, once one has run; held during the stop, so that a second call
    /// waits for the first and returns its report.
    stopping: tokio::sync::Mutex<Option<StopReport>>,
    started: Instant,
    socket_lost: watch::Receiver<Option<SocketLost>>,
    /// Weak, so that dropping the [`Host`](crate::Host) releases everything (see its docs).
    registry: Weak<dyn Registry>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("name", &self.name()).field("pid", &self.pid()).finish()
    }
}

impl Child {
    pub(crate) fn new(
        running: Arc<Running>,
        spec: &Spec,
        stdin: Option<pipe::Sender>,
        socket_lost: watch::Receiver<Option<SocketLost>>,
        registry: Weak<dyn Registry>,
    ) -> Child {
        let endpoint = running.socket_path.as_ref().map(Endpoint::unix);
        Child {
            inner: Arc::new(ChildInner {
                running,
                slot: spec.slot_name().to_owned(),
                program: spec.program.clone(),
                endpoint,
                stdin: tokio::sync::Mutex::new(stdin),
                stopping: tokio::sync::Mutex::new(None),
                started: Instant::now(),
                socket_lost,
                registry,
            }),
        }
    }

    /// A child an earlier image of this process started (a hand-over), running `started` ago.
    pub(crate) fn resumed(
        running: Arc<Running>,
        slot: String,
        program: PathBuf,
        stdin: Option<pipe::Sender>,
        socket_lost: watch::Receiver<Option<SocketLost>>,
        registry: Weak<dyn Registry>,
        started: Instant,
    ) -> Child {
        let endpoint = running.socket_path.as_ref().map(Endpoint::unix);
        Child {
            inner: Arc::new(ChildInner {
                running,
                slot,
                program,
                endpoint,
                stdin: tokio::sync::Mutex::new(stdin),
                stopping: tokio::sync::Mutex::new(None),
                started,
                socket_lost,
                registry,
            }),
        }
    }

    /// What a hand-over needs of it beside its `Running`.
    pub(crate) fn running(&self) -> &Arc<Running> {
        &self.inner.running
    }

    /// Its stdin's descriptor, if open and not in use (a hand-over keeps it across exec).
    pub(crate) fn stdin_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.inner.stdin.try_lock().ok().and_then(|stdin| stdin.as_ref().map(AsRawFd::as_raw_fd))
    }

    /// What its runtime files are named after: its name, unless started with [`Spec::slot`].
    pub(crate) fn slot(&self) -> &str {
        &self.inner.slot
    }

    /// Whether both handles are clones of one child.
    pub(crate) fn same(&self, other: &Child) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The name it was started under (unique among the host's children).
    pub fn name(&self) -> &str {
        &self.inner.running.name
    }

    /// Its pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.inner.running.pid
    }

    /// The program it runs.
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

    /// The RPC client, or `None` for a child started with `Spec::rpc(false)`.
    pub fn try_client(&self) -> Option<&Client> {
        self.inner.running.client.as_ref()
    }

    /// Where the child serves RPC.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.inner.endpoint.as_ref()
    }

    /// CPU time and memory of the child and everything it started: from its cgroup where it
    /// has one, else from its process group.
    pub fn usage(&self) -> crate::Usage {
        let running = &self.inner.running;
        running
            .cgroup
            .as_deref()
            .and_then(crate::usage::of_cgroup)
            .unwrap_or_else(|| crate::usage::of_group(running.pid))
    }

    /// How long ago it was started (ready, for a child with a readiness check).
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

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

    /// What it has said on its notify socket so far (`STATUS=`, `WATCHDOG=`), and its changes;
    /// always the default for a child without a notify socket.
    pub fn notices(&self) -> tokio::sync::watch::Receiver<crate::NotifyState> {
        self.inner.running.notices.subscribe()
    }

    /// How the child ended, if it has (published once it is reaped and its group settled).
    pub fn exit(&self) -> Option<Exit> {
        self.inner.running.exit_now()
    }

    /// Waits until the child exits (by itself or because it was stopped).
    pub async fn wait(&self) -> Exit {
        let mut exit = self.inner.running.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.unwrap_or(Exit::Unknown),
            // The waiter task is gone only if the runtime is shutting down.
            Err(_) => self.inner.running.exit_now().unwrap_or(Exit::Unknown),
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
        self.inner.running.stopping.store(true, Ordering::SeqCst);
        let report = stop::run(&self.inner.running, grace).await;
        info!(child = %self.name(), "{report}");
        if let Some(registry) = self.inner.registry.upgrade() {
            registry.forget(self);
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
        self.inner.running.group.signal(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Readiness;

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
