//! What a started child consists of, as the stop procedure and the background tasks see it:
//! its group, its exit, its pipes and the files it owns in the runtime directory. The handle
//! users hold ([`Child`](crate::Child)) wraps this.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use warren_rpc::Client;

use crate::exit::Exit;
use crate::group::Group;
use crate::notify::{NotifyListener, NotifyState};
use crate::signal::Signal;

pub(crate) struct Running {
    pub name: Arc<str>,
    pub pid: u32,
    pub group: Arc<Group>,
    pub stop_signal: Signal,
    /// Set once it is connected; `None` for a child without RPC.
    pub client: Option<Client>,
    pub socket_path: Option<PathBuf>,
    /// Its cgroup's directory, where it has one (for its usage).
    pub cgroup: Option<PathBuf>,
    pub notify: Option<Arc<NotifyListener>>,
    /// What it said on its notify socket (`STATUS=`, `WATCHDOG=`).
    pub notices: watch::Sender<NotifyState>,
    /// Published by the task that reaps it.
    pub exit: watch::Receiver<Option<Exit>>,
    /// Cancelled once both stdout and stderr reached end-of-file.
    pub pipes_closed: CancellationToken,
    pub pumps: Mutex<Vec<AbortHandle>>,
    /// Set when a stop begins: whatever the child does to its socket from then on is expected.
    pub stopping: AtomicBool,
    /// What a hand-over across exec needs of it.
    pub carry: crate::handover::Carry,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("name", &self.name).field("pid", &self.pid).finish()
    }
}

impl Running {
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

    /// Removes the child's socket file if it left it; true if it had to.
    pub fn remove_socket_file(&self) -> bool {
        match &self.socket_path {
            Some(path) if path.exists() => std::fs::remove_file(path).is_ok(),
            _ => false,
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
