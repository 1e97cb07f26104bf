//! The syscalls of a hand-over across `exec` (docs/UPGRADE.md): which descriptors survive it,
//! the sealed memfd that carries the host's state, and the `execve` itself.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::FdFlags;

/// Lets `fd` survive the next `execve` (clears FD_CLOEXEC), or closes it at exec again.
pub fn keep_across_exec(fd: impl AsFd, keep: bool) -> io::Result<()> {
    let flags = if keep { FdFlags::empty() } else { FdFlags::CLOEXEC };
    rustix::io::fcntl_setfd(fd, flags).map_err(io::Error::from)
}

/// [`keep_across_exec`] by number, for a descriptor owned by another part of the host (a
/// child's pipe, its stdin) that outlives the call.
pub fn keep_number_across_exec(fd: RawFd, keep: bool) -> io::Result<()> {
    let flags = if keep { 0 } else { libc::FD_CLOEXEC };
    // SAFETY: F_SETFD changes only the descriptor's close-on-exec flag, never memory; a number
    // that is not open fails with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A memfd holding `bytes`, sealed so that nothing can change it any more, closed at exec
/// unless [`keep_across_exec`] says otherwise.
pub fn sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(c"warren-handover", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut written = 0;
    while written < bytes.len() {
        written += rustix::io::write(&fd, &bytes[written..])?;
    }
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(&fd, seals)?;
    Ok(fd)
}

/// The whole content of a memfd from its start, at most `limit` bytes.
pub fn read_memfd(fd: impl AsFd, limit: u64) -> io::Result<Vec<u8>> {
    let size = rustix::fs::fstat(&fd)?.st_size.unsigned_abs();
    if size > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the hand-over state is {size} bytes, over {limit}"),
        ));
    }
    let mut bytes = vec![0u8; usize::try_from(size).map_err(io::Error::other)?];
    let mut read = 0;
    while read < bytes.len() {
        let n = rustix::io::pread(&fd, &mut bytes[read..], read as u64)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the hand-over state ended early"));
        }
        read += n;
    }
    Ok(bytes)
}

/// Takes over a descriptor the previous image left open across exec, by number, and makes it
/// close-on-exec again (a child started later must not inherit it).
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("descriptor {fd} cannot be handed over")));
    }
    // SAFETY: F_GETFD on any number is harmless; a closed one fails with EBADF and nothing is
    // taken over.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("descriptor {fd} was not handed over")));
    }
    if flags & libc::FD_CLOEXEC != 0 {
        // Everything this process opens itself is close-on-exec: a descriptor that is so was
        // not left for us by the previous image, and may be owned elsewhere in this one.
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("descriptor {fd} is not one handed over")));
    }
    // SAFETY: the descriptor is open, survived exec (not close-on-exec) and is named by the
    // hand-over state, written by the previous image for exactly this; it is made close-on-exec
    // at once below, so a second adoption of the same number is refused by the check above.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    keep_across_exec(&owned, false)?;
    Ok(owned)
}

/// Set once the state has been taken, so that two hosts never adopt the same descriptors.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Marks the hand-over as taken; false if it already was.
pub fn take_handover() -> bool {
    !TAKEN.swap(true, Ordering::SeqCst)
}

/// Whether the calling thread is the process's main thread (the thread group leader).
pub fn is_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

/// The signals whose default action ends the process and that a host catches: blocked across
/// a hand-over's exec, they wait as pending until the new image has its handlers in place
/// (the mask survives `execve`), instead of ending it in between.
const HELD_ACROSS_EXEC: [libc::c_int; 6] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR2, libc::SIGTSTP];

fn held_set() -> libc::sigset_t {
    // SAFETY: `sigemptyset` and `sigaddset` only write the set on this stack frame, with
    // valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in HELD_ACROSS_EXEC {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Lets those of `signals` that an exec was made with blocked through to this thread (the new
/// image's handlers for them are installed, or it wants their default action); pending ones
/// arrive now.
pub fn release_held_signals(signals: impl IntoIterator<Item = i32>) {
    // SAFETY: `sigemptyset` and `sigaddset` write only this frame's set; the mask change is
    // the calling thread's, from a valid set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals.into_iter().filter(|signal| HELD_ACROSS_EXEC.contains(signal)) {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks every signal of [`HELD_ACROSS_EXEC`] in the calling thread (threads it starts
/// inherit the mask).
pub fn block_held_signals() {
    let set = held_set();
    // SAFETY: changes only the calling thread's mask, from a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Stop signals whose handlers have run in this image (see [`count_stop_signals`]).
static STOP_SIGNALS_TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts every delivery of `signals` (their handlers are installed beside this): a
/// hand-over that sees the count move between its start and the moment it blocks them for
/// its exec knows that a stop was taken by this image and gives up, so that the stop is not
/// lost with the image.
pub fn count_stop_signals(signals: &[i32]) -> io::Result<()> {
    for &signal in signals {
        // SAFETY: the action only increments an atomic, which is async-signal-safe; the
        // signals are stop signals, none of those signal-hook-registry forbids.
        unsafe {
            signal_hook_registry::register(signal, || {
                STOP_SIGNALS_TAKEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        }?;
    }
    Ok(())
}

/// How many stop signals this image's handlers have taken.
pub fn stop_signals_taken() -> u64 {
    STOP_SIGNALS_TAKEN.load(std::sync::atomic::Ordering::SeqCst)
}

/// Every signal an exec holds (see [`HELD_ACROSS_EXEC`]).
pub fn held_across_exec() -> [i32; 6] {
    HELD_ACROSS_EXEC
}

/// Replaces the process image, with the stop signals blocked (see [`HELD_ACROSS_EXEC`]);
/// returns only if that failed, with why, and the mask as it was.
pub fn exec(program: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let set = held_set();
    let mut previous = held_set();
    // SAFETY: changes only the calling thread's mask, from a valid set; `previous` receives
    // the old one.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous) };
    let error = exec_unmasked(program, argv, envp);
    // SAFETY: as above: the exec failed, this thread's mask goes back to what it was.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    error
}

fn exec_unmasked(program: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let argv_ptrs: Vec<*const libc::c_char> =
        argv.iter().map(|arg| arg.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp_ptrs: Vec<*const libc::c_char> =
        envp.iter().map(|var| var.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: every pointer is to a NUL-terminated string that outlives the call, and both
    // arrays end in a null pointer, as execve requires. On success nothing after it runs.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}
