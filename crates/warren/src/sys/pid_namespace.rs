//! A PID namespace for a host's children ([`HostBuilder::pid_namespace`]): the one way to make
//! the whole tree die with the host even when the host and its watchdog are killed at the same
//! instant (`pkill -9 warren`), when neither is left to kill anything.
//!
//! The kernel kills every process of a PID namespace when the namespace's first process (its
//! init) ends, and a parent-death signal is sent by the kernel itself. So the init here is a
//! small fork of the host, the *anchor*, that ends with the host: it reaps the orphans of the
//! namespace (its init must) and, once the host is gone, gives the watchdog's ask-then-force
//! its half second and ends — which ends everything still in the namespace.
//!
//! [`HostBuilder::pid_namespace`]: crate::HostBuilder::pid_namespace

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The anchor's process name (at most 15 bytes, the kernel's limit for `comm`).
const ANCHOR_NAME: &std::ffi::CStr = c"warren-pidns";

/// The anchor of a namespace, with the pipe whose closing tells it that the host is gone if the
/// host died before the anchor could arm its parent-death signal.
#[derive(Debug)]
pub struct Anchor {
    pub pid: u32,
    _alive: OwnedFd,
}

/// Puts the calling thread's future children in a new PID namespace and starts its anchor
/// (PID 1 there). The anchor ends when this thread ends: call it on a thread that lives as long
/// as the children.
pub fn enter_new() -> io::Result<Anchor> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: unshare(CLONE_NEWPID) changes only the namespace this thread's next children go
    // into; the thread itself and the rest of the process stay where they are.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("cannot create a PID namespace (it needs root): {err}")));
    }
    let read_fd = read_end.as_raw_fd();
    // SAFETY: after fork the child runs only `anchor_main`, which makes async-signal-safe
    // syscalls on memory it owns and never returns into Rust code that could touch locks held
    // by the parent's other threads.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => anchor_main(read_fd),
        pid => Ok(Anchor { pid: pid.unsigned_abs(), _alive: write_end }),
    }
}

fn anchor_main(alive_fd: i32) -> ! {
    // SAFETY (whole function): runs in the forked child, PID 1 of the new namespace; every call
    // is an async-signal-safe syscall on descriptors and memory this process owns.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            ANCHOR_NAME.as_ptr(),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        super::watchdog::close_all_but(alive_fd);
        // Out of the host's process group: a Ctrl-C is for the programs, through the host.
        libc::setpgid(0, 0);
        // Taken with sigwaitinfo, never delivered: blocked signals reach even a namespace's init.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        // The host may have died before the signal was armed: then its end of the pipe is closed.
        libc::fcntl(alive_fd, libc::F_SETFL, libc::O_NONBLOCK);
        let mut byte = 0u8;
        let host_alive = libc::read(alive_fd, (&raw mut byte).cast(), 1) < 0;
        if host_alive {
            loop {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let signal = libc::sigwaitinfo(&set, &mut info);
                if signal == libc::SIGCHLD {
                    reap_all();
                } else if signal == libc::SIGTERM && info.si_pid() == 0 {
                    // From outside the namespace (the kernel's parent-death signal, or the
                    // host's own request): a program's `kill 1` must not end its siblings.
                    break;
                }
            }
        }
        let tick = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
        for _ in 0..100 {
            reap_all();
            // kill(-1) from a namespace's init reaches every other process of the namespace.
            if libc::kill(-1, 0) != 0 {
                break;
            }
            libc::nanosleep(&tick, std::ptr::null_mut());
        }
        libc::_exit(0)
    }
}

/// Waits for every child that has ended. Called only in the anchor.
unsafe fn reap_all() {
    // SAFETY: waitpid on this process's own children, without blocking.
    unsafe { while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {} }
}
