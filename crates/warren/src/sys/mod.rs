//! Every raw syscall of warren, in one place.
//!
//! Most of warren's OS work goes through safe wrappers (rustix, tokio). What is left here needs
//! `unsafe` for one of three reasons: code that runs between `fork` and `exec` (where only
//! async-signal-safe calls are allowed), the watchdog process, which is a `fork` without
//! `exec`, and registering a file descriptor with tokio's reactor. Each `unsafe` block says why
//! it is sound.
#![expect(unsafe_code, reason = "the one module allowed to make raw syscalls")]

mod async_fd;
pub mod handover;
mod passed;
mod pid_namespace;
mod process;
mod spawn;
mod tagged;
mod watchdog;

pub use async_fd::async_fd;
pub use passed::take_listen_fds;
pub use pid_namespace::enter_new as enter_new_pid_namespace;
pub use process::*;
pub use spawn::{CgroupJoinError, CwdError, Exec, User, spawn};
pub use watchdog::{Leftovers, OwnFile, Watchdog};
