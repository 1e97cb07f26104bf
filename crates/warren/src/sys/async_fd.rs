//! Registering a raw descriptor with tokio's reactor.

use std::io;
use std::os::fd::OwnedFd;

/// Registers `fd` (non-blocking) with tokio's reactor, for descriptors tokio has no type for
/// (inotify, pidfds).
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and is not replaced while
    // registered. The `AsyncFd` takes the `OwnedFd` by value, so nothing else can close it,
    // and it deregisters before the `OwnedFd` is dropped with it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|err| err.into_parts().1)
}
