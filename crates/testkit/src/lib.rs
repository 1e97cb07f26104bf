//! Helpers shared by every test crate of the workspace: bounded waits, process checks, temporary
//! directories and unique names, and the one way a test says it cannot run here.
//!
//! Nothing here names a warren type: warren-rpc's own tests depend on this crate, and a signature
//! with a warren-rpc type would give them a second, incompatible copy of that type.
//!
//! The crate's binaries (`src/bin`) are the purpose-built children the tests start.

pub mod process;
pub mod skip;
pub mod temp;
pub mod wait;

pub use process::{alive, cmdline, has_env, reap_orphans, running, signal, tagged, zombies};
pub use skip::unavailable;
pub use temp::{socket_dir, unique_tag};
pub use wait::{BOUND, SLACK, poll_until, wait_until, within, within_for};
