//! Sockets passed by socket activation (`LISTEN_FDS`), taken over once: systemd's
//! `sd_listen_fds` without the library.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first passed descriptor, as systemd numbers them.
const FIRST: i32 = 3;
/// More than any program is passed; a bigger `LISTEN_FDS` is taken for a corrupt variable.
const MAX: i32 = 1024;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets passed to this process, with their names (`LISTEN_FDNAMES`, or "unknown" as
/// systemd says for a missing one): fds 3 to 3 + `LISTEN_FDS` - 1, when `LISTEN_PID` is this
/// process's pid (not a parent's, whose variables were inherited). Each is made close-on-exec,
/// so this process's own children do not inherit them. Only the first call takes them; later
/// ones get none.
pub fn take_listen_fds() -> Vec<(String, OwnedFd)> {
    let var = |key| std::env::var(key).ok();
    let for_us = var("LISTEN_PID").and_then(|pid| pid.parse::<u32>().ok()) == Some(std::process::id());
    let count = var("LISTEN_FDS").and_then(|n| n.parse::<i32>().ok()).filter(|n| (1..=MAX).contains(n));
    let (true, Some(count)) = (for_us, count) else { return Vec::new() };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Vec::new();
    }
    let names = var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':');
    (FIRST..FIRST + count)
        .filter(|&fd| rustix::io::fcntl_getfd(borrow(fd)).is_ok())
        .map(|fd| {
            let _ = rustix::io::fcntl_setfd(borrow(fd), rustix::io::FdFlags::CLOEXEC);
            let name = names.next().filter(|n| !n.is_empty()).unwrap_or("unknown").to_owned();
            // SAFETY: the variables say the process was started with `fd` open for it (checked
            // open just above), and `TAKEN` makes this the only place that takes ownership.
            (name, unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

fn borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for fcntl on a descriptor number in the passed range, which is open
    // (or fcntl fails with EBADF and nothing else happens) for the duration of the call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
