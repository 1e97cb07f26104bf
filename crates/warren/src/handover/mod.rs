//! Hand-over across `exec` (docs/UPGRADE.md): a host replaces its process image with a new
//! one (the same binary, or a newer one) and the new image takes its children over — same
//! pids, same pipes, nothing printed lost or doubled. `out.rs` holds and writes down the host,
//! `resume.rs` rebuilds it in the new image, `state.rs` is what crosses between them.

mod out;
mod resume;
pub(crate) mod signal_thread;
mod state;

pub use resume::peek;

/// The format of the host's state that this build writes and reads.
pub(crate) const FORMAT: u32 = state::VERSION;

use tokio::sync::watch;

use crate::pump::PumpAt;
use crate::tasks::{PumpLink, ReapAt};

/// The variable that tells the new image which descriptor holds the state.
pub(crate) const STATE_VAR: &str = "WARREN_HANDOVER_FD";

/// How many stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) this image's handlers have taken
/// since [`Shutdown::install`](crate::Shutdown::install). Read when a hand-over is decided on
/// and given to [`Supervisor::hand_over_counting_from`](crate::supervise::Supervisor::hand_over_counting_from):
/// one more by the exec, and the hand-over is given up, so that the stop is not lost.
pub fn stops_taken() -> u64 {
    crate::sys::handover::stop_signals_taken()
}

/// Whether this process was started by a hand-over, with a state for
/// [`HostBuilder::resume`](crate::HostBuilder::resume) to take over.
pub fn pending() -> bool {
    std::env::var_os(STATE_VAR).is_some()
}

/// Runs `body` (the rest of `main`) on a thread of its own and gives the main thread to warren:
/// every host of the process then starts its children there, and hands over from there. Call
/// it first thing in `main`, in the first image and in every image a hand-over starts: the
/// children's parent-death signal follows the thread that started them, and only the main
/// thread survives every exec, so then a host can hand over any mix of children it started and
/// children it took over (docs/UPGRADE.md). Fails if called from another thread, or twice.
///
/// Under it SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2 and SIGTSTP wait, pending, until the
/// program installs its handlers ([`Shutdown::install`](crate::Shutdown::install)) or builds
/// or resumes a host (then they take their default action): a hand-over can then hold them
/// across its exec. A program that does neither should not run under it.
pub fn main<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    crate::spawner::main_thread::run(body)
}

/// What the program using a host carries across a hand-over beside the host itself: its own
/// state (e.g. a supervisor's) and descriptors by name (e.g. a listening socket). Given to
/// [`Host::hand_over_with`](crate::Host::hand_over_with), returned by
/// [`HostBuilder::resume_with`](crate::HostBuilder::resume_with).
#[derive(Debug, Default)]
pub struct Baggage {
    /// Anything serde can write as JSON.
    pub state: serde_json::Value,
    /// Descriptors kept open across `exec`, each under a name; close-on-exec again in the new
    /// image.
    pub fds: Vec<(String, std::os::fd::OwnedFd)>,
}

impl Baggage {
    /// Takes the descriptor named `name` out of the baggage.
    pub fn take_fd(&mut self, name: &str) -> Option<std::os::fd::OwnedFd> {
        let index = self.fds.iter().position(|(n, _)| n == name)?;
        Some(self.fds.swap_remove(index).1)
    }
}

/// What a hand-over needs of a running child beside what the stop needs.
pub(crate) struct Carry {
    pub pipes: Vec<PumpLink>,
    pub reap_at: watch::Receiver<ReapAt>,
    pub max_line: usize,
    pub protocol: warren_rpc::Protocol,
    /// The transport its RPC connection asks for, asked again when the next image reconnects.
    pub transport: warren_rpc::Transport,
    /// Started by an earlier image: its parent is the thread that image execed from, which is
    /// this image's main thread.
    pub adopted: bool,
    /// It has limits in cgroup v1 hierarchies, which a hand-over does not carry yet.
    pub v1_limits: bool,
    /// The memory limit of its cgroup2 cgroup, to tell an OOM kill after a hand-over.
    pub memory_max: Option<u64>,
}

impl Carry {
    /// Whether every pump and the reaper have stopped between two steps.
    fn settled(&self) -> bool {
        let pumps = self.pipes.iter().all(|pipe| !matches!(*pipe.at.borrow(), PumpAt::Reading));
        pumps && !matches!(*self.reap_at.borrow(), ReapAt::Watching)
    }
}

/// Why a hand-over did not happen; the host runs on as before.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Something about the host rules a hand-over out.
    #[error("cannot hand over: {0}")]
    Refused(String),
    /// A pump or a reaper did not come to a stop in time.
    #[error("cannot hand over: {0} did not settle within {1:?}")]
    NotSettled(String, std::time::Duration),
    /// The state could not be written.
    #[error("cannot hand over: writing the state failed")]
    State(#[source] std::io::Error),
    /// `execve` failed (the program is missing, not executable, …).
    #[error("cannot hand over to {program}: exec failed")]
    Exec {
        /// What was to be executed.
        program: std::path::PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}
