//! Every raw syscall of warren, in one place.
//!
//! Most of warren's OS work goes through safe wrappers (rustix, tokio). What is left here needs
//! `unsafe` for one of three reasons: code that runs between `fork` and `exec` (where only
//! async-signal-safe calls are allowed), the watchdog process, which is a `fork` without
//! `exec`, and registering a file descriptor with tokio's reactor. Each `unsafe` block says why
//! it is sound.
#![expect(unsafe_code, reason = "the one module allowed to make raw syscalls")]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::process::{Pid, Signal};

/// Signals warren sends, as our own type so no dependency's type leaks into the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopSignal {
    Term,
    Int,
    Hup,
    Quit,
    Kill,
    Usr1,
    Usr2,
}

impl StopSignal {
    fn to_rustix(self) -> Signal {
        match self {
            StopSignal::Term => Signal::TERM,
            StopSignal::Int => Signal::INT,
            StopSignal::Hup => Signal::HUP,
            StopSignal::Quit => Signal::QUIT,
            StopSignal::Kill => Signal::KILL,
            StopSignal::Usr1 => Signal::USR1,
            StopSignal::Usr2 => Signal::USR2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Hup => "SIGHUP",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Kill => "SIGKILL",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
        }
    }

    /// Parses `TERM`, `SIGTERM` or `sigterm`.
    pub fn parse(name: &str) -> Option<StopSignal> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Some(match bare {
            "TERM" => StopSignal::Term,
            "INT" => StopSignal::Int,
            "HUP" => StopSignal::Hup,
            "QUIT" => StopSignal::Quit,
            "KILL" => StopSignal::Kill,
            "USR1" => StopSignal::Usr1,
            "USR2" => StopSignal::Usr2,
            _ => return None,
        })
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a signal number, for reports.
pub fn signal_name(number: i32) -> String {
    match number {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        other => format!("signal {other}"),
    }
}

fn pid(raw: u32) -> io::Result<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw).ok_or_else(|| io::Error::other(format!("invalid pid {raw}")))
}

/// Signals every process of a group.
pub fn kill_group(pgid: u32, signal: StopSignal) -> io::Result<()> {
    rustix::process::kill_process_group(pid(pgid)?, signal.to_rustix()).map_err(io::Error::from)
}

/// Whether any process is left in the group. A group id cannot be reused while it has
/// members, so "yes" means members of *our* group remain.
pub fn group_has_members(pgid: u32) -> bool {
    pid(pgid).is_ok_and(|pgid| rustix::process::test_kill_process_group(pgid).is_ok())
}

/// Makes this process the reaper of its orphaned descendants, so that a grandchild whose parent
/// exited is reparented here (not to PID 1, which in containers may never reap it) and can be
/// reaped by [`reap_group`]. Process-wide, and harmless to set twice.
pub fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(io::Error::from)
}

/// Reaps every exited member of a group that was reparented to us. Only ever called for a
/// group whose leader (the one child tokio waits for) is already reaped, so it cannot steal an
/// exit status tokio expects.
pub fn reap_group(pgid: u32) -> usize {
    let Ok(pgid) = pid(pgid) else { return 0 };
    let options = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG;
    let mut reaped = 0;
    while let Ok(Some(_)) = rustix::process::waitid(rustix::process::WaitId::Pgid(Some(pgid)), options) {
        reaped += 1;
    }
    reaped
}

/// Whether a process exists (zombies included).
pub fn process_exists(raw_pid: u32) -> bool {
    pid(raw_pid).is_ok_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

pub fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().unsigned_abs()
}

pub fn parent_pid() -> Option<u32> {
    rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get().unsigned_abs())
}

pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Makes a spawned child die with SIGKILL when the thread that spawned it exits, and refuse to
/// start if its parent is already gone. Runs in the child between fork and exec.
pub fn die_with_parent(command: &mut tokio::process::Command, parent: u32) {
    let parent = i32::try_from(parent).unwrap_or(0);
    let hook = move || {
        // Only async-signal-safe syscalls here: no allocation, no locks.
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
        // A child starts with a clean signal state whatever the host's threads had: no blocked
        // signals (it would never see SIGTERM) and SIGPIPE at its default (Rust ignores it).
        reset_signals();
        // The parent may have died between fork and prctl, in which case the death signal
        // will never come: check by hand.
        let parent_now = rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get());
        if parent_now != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid) and touches no
    // memory shared with other threads, which is what `pre_exec` requires after fork.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Unblocks every signal and restores SIGPIPE's default action. Runs between fork and exec.
fn reset_signals() {
    // SAFETY: sigemptyset, sigprocmask and sigaction are async-signal-safe and act only on this
    // (forked, single-threaded) process; the structures are zeroed locals.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGPIPE, &default, std::ptr::null_mut());
    }
}

/// A forked process that outlives an abruptly killed host just long enough to SIGKILL every
/// process group the host told it about. The host keeps the write end of a pipe; the kernel
/// closes it when the host dies by any means, and the watchdog wakes on end-of-file.
#[derive(Debug)]
pub struct Watchdog {
    pipe: Option<OwnedFd>,
    pid: u32,
}

/// Groups one watchdog can track; more are still stopped normally, only not after a host crash.
const WATCHDOG_CAPACITY: usize = 16 * 1024;

impl Watchdog {
    pub fn start() -> io::Result<Watchdog> {
        let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // Allocated before fork: the watchdog must not allocate.
        let mut groups = vec![0i32; WATCHDOG_CAPACITY].into_boxed_slice();
        let read_fd = read_end.as_raw_fd();
        let write_fd = write_end.as_raw_fd();
        // SAFETY: after fork the child runs only `watchdog_main`, which makes async-signal-safe
        // syscalls (close, setpgid, sigaction, read, kill, _exit) on memory it owns, and never
        // returns into Rust code that could touch locks held by other threads of the parent.
        let child = unsafe { libc::fork() };
        match child {
            -1 => Err(io::Error::last_os_error()),
            0 => watchdog_main(read_fd, write_fd, &mut groups),
            pid => {
                drop(read_end);
                Ok(Watchdog { pipe: Some(write_end), pid: pid.unsigned_abs() })
            }
        }
    }

    /// Adds a group to kill if the host dies.
    pub fn watch(&self, pgid: u32) {
        self.send(i32::try_from(pgid).unwrap_or(0));
    }

    /// Removes a group once it is stopped and reaped, so its id may be reused safely.
    pub fn unwatch(&self, pgid: u32) {
        self.send(-i32::try_from(pgid).unwrap_or(0));
    }

    fn send(&self, value: i32) {
        if value == 0 {
            return;
        }
        // Four bytes are below PIPE_BUF, so the write is atomic; the watchdog drains promptly.
        if let Some(pipe) = &self.pipe {
            let _ = rustix::io::write(pipe, &value.to_be_bytes());
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing our end tells the watchdog the host ended normally; it kills whatever is still
        // registered (nothing, after a clean stop) and exits. Reap it so it is no zombie.
        drop(self.pipe.take());
        if let Ok(pid) = pid(self.pid) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}

fn watchdog_main(read_fd: i32, write_fd: i32, groups: &mut [i32]) -> ! {
    // SAFETY (whole function): runs in the forked child; every call below is an async-signal-safe
    // syscall on file descriptors and memory this process owns.
    unsafe {
        libc::close(write_fd);
        // Close every other inherited descriptor (the host's sockets, the children's pipes) so
        // the watchdog keeps nothing open that the host's peers wait on.
        close_all_but(read_fd);
        // Out of the host's process group, and deaf to the terminal's Ctrl-C: it must survive
        // exactly the events that kill the host.
        libc::setpgid(0, 0);
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
            libc::sigaction(signal, &ignore, std::ptr::null_mut());
        }
        let mut buf = [0u8; 4];
        let mut have = 0usize;
        loop {
            let n = libc::read(read_fd, buf.as_mut_ptr().add(have).cast(), 4 - have);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            have += n.unsigned_abs();
            if have < 4 {
                continue;
            }
            have = 0;
            let value = i32::from_be_bytes(buf);
            if value > 0 {
                if let Some(slot) = groups.iter_mut().find(|slot| **slot == 0) {
                    *slot = value;
                }
            } else if let Some(slot) = groups.iter_mut().find(|slot| **slot == -value) {
                *slot = 0;
            }
        }
        // The host is gone. Ask first (a warren child then removes its socket file), then
        // force, all within half a second.
        for &pgid in groups.iter() {
            if pgid > 0 {
                libc::kill(-pgid, libc::SIGTERM);
            }
        }
        let tick = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
        for _ in 0..50 {
            let alive = groups.iter().any(|&pgid| pgid > 0 && libc::kill(-pgid, 0) == 0);
            if !alive {
                break;
            }
            libc::nanosleep(&tick, std::ptr::null_mut());
        }
        for &pgid in groups.iter() {
            if pgid > 0 {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor from 3 up except `keep`. Called only in the forked watchdog.
unsafe fn close_all_but(keep: i32) {
    // SAFETY: close_range and close are async-signal-safe; closing fds this process inherited
    // affects only this process.
    unsafe {
        let keep = keep.unsigned_abs();
        let below = keep <= 3 || libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32) == 0;
        let above = libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32) == 0;
        if !(below && above) {
            // Kernels before 5.9: close one by one up to a generous bound.
            for fd in 3..65536 {
                if fd != keep as i32 {
                    libc::close(fd);
                }
            }
        }
    }
}

/// Registers `fd` (non-blocking) with tokio's reactor, for descriptors tokio has no type for
/// (inotify).
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and is not replaced while
    // registered. The `AsyncFd` takes the `OwnedFd` by value, so nothing else can close it,
    // and it deregisters before the `OwnedFd` is dropped with it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|err| err.into_parts().1)
}
