//! # warren
//!
//! Start child programs with their stdin, stdout and stderr on pipes, wait until they say they
//! are ready, call them over RPC, and stop them gracefully — with no orphan, zombie or stale
//! socket left behind, even when the host is killed. And the child side of that contract.
//!
//! ```no_run
//! # use std::time::Duration;
//! # #[derive(serde::Deserialize)] struct Todo { id: String }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warren::{Host, Spec};
//! let host = Host::new()?;
//! let child = host.spawn(Spec::new("task-rpc").name("task-rpc")).await?; // returns once READY
//! let todo: Todo = child.client().call("Task.Get", "new_id").await?;
//! let report = child.stop(Duration::from_secs(5)).await; // how it ended, and how long it took
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! Each child is started without `fork` (as `posix_spawn` does, from one long-lived spawner
//! thread, because the parent-death signal it sets follows the thread that started it), in
//! its own process group and, where the system allows, its own cgroup. A forked watchdog kills
//! every group and cgroup if the host dies. stdout and stderr are pumped line by line into a
//! [`LogSink`] from spawn to end-of-file. Readiness is systemd's notify protocol on a datagram
//! socket in a private 0700 runtime directory. See `docs/SHUTDOWN.md` for the races each step
//! prevents.

#![warn(missing_docs)]

mod cgroup;
mod cgroup_v1;
mod child;
mod error;
mod escapees;
mod exit;
mod group;
mod handover;
mod host;
mod limits;
pub mod listen;
mod log;
mod notify;
pub mod plugin;
mod pump;
pub mod reaper;
mod report;
mod running;
mod runtime_dir;
mod shutdown;
mod signal;
mod signals;
mod socket_watch;
mod spawner;
mod spec;
mod start;
mod stop;
pub mod supervise;
mod sys;
mod tasks;
mod usage;

pub use child::Child;
pub use error::{HostError, PluginError, SpawnError};
pub use exit::Exit;
pub use handover::{
    Baggage, HandoverError, main as handover_main, peek as handover_peek, pending as handover_pending,
    stops_taken as handover_stops_taken,
};
pub use host::{Host, HostBuilder};
pub use limits::{Identity, Limits};
pub use log::{LineBatch, LogLine, LogSink, SPLIT_MARKER, Stream, TracingSink};
pub use notify::{Notice, NotifyState, send as sd_notify};
pub use report::{Leak, Outcome, Step, StopReport};
pub use shutdown::{Shutdown, ShutdownStep};
pub use signal::Signal;
pub use socket_watch::{SocketLost, SocketWatch};
pub use spec::{Readiness, Spec};
pub use usage::Usage;
