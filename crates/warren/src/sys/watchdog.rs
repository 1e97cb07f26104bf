//! The fork watchdog: kills every child's group (and cgroup) when the host dies by any means.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use super::process::{pid, wait_for};

/// A forked process that outlives an abruptly killed host just long enough to SIGKILL every
/// process group the host told it about. The host keeps the write end of a pipe; the kernel
/// closes it when the host dies by any means, and the watchdog wakes on end-of-file.
///
/// The host watches it back: a thread waits for the watchdog's exit, and if it dies while the
/// host lives (killed on its own), a new one is forked and told every group still registered,
/// so whichever of the two dies last still cleans up.
#[derive(Debug)]
pub struct Watchdog {
    shared: Arc<Shared>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    leftovers: Leftovers,
    state: Mutex<State>,
}

/// What the watchdog cleans up besides the groups it is told of, as paths made before the fork
/// (the watchdog must not allocate).
#[derive(Debug, Default)]
pub struct Leftovers {
    /// The host's `cgroup.kill`, written to kill every child's cgroup at once, descendants that
    /// left their process group included.
    pub cgroup_kill: Option<CString>,
    /// The host's runtime directory: removed if the host died and its children, asked to stop,
    /// removed their socket files (a directory still holding files stays for the next host's
    /// sweep).
    pub runtime_dir: Option<CString>,
    /// Files of the host's own (its control socket) to remove if it dies.
    pub files: Vec<OwnFile>,
}

/// A file the host made, named by its path and told apart from a later file at the same path
/// (the next host's) by its device and inode.
#[derive(Debug)]
pub struct OwnFile {
    path: CString,
    dev: u64,
    ino: u64,
}

impl OwnFile {
    pub fn new(path: &std::path::Path) -> io::Result<OwnFile> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        Ok(OwnFile { path, dev: meta.dev(), ino: meta.ino() })
    }
}

#[derive(Debug)]
struct State {
    pipe: Option<OwnedFd>,
    pid: u32,
    /// What the current watchdog was told, to tell a replacement.
    groups: HashSet<u32>,
    /// Set by `Drop`: the watchdog's exit is the host's doing, not to be answered.
    closing: bool,
}

/// The watchdog's process name: at most 15 bytes, the kernel's limit for `comm`.
pub const WATCHDOG_NAME: &std::ffi::CStr = c"warren-watchdog";

/// Groups one watchdog can track; more are still stopped normally, only not after a host crash.
const WATCHDOG_CAPACITY: usize = 16 * 1024;

impl Watchdog {
    pub fn start(leftovers: Leftovers) -> io::Result<Watchdog> {
        let (pipe, pid) = crate::reaper::register(|| fork_watchdog(&leftovers), |(_, pid)| Some(*pid))?;
        let state = State { pipe: Some(pipe), pid, groups: HashSet::new(), closing: false };
        let shared = Arc::new(Shared { leftovers, state: Mutex::new(state) });
        let watched = Arc::clone(&shared);
        let monitor = std::thread::Builder::new().name("warren-watchdog-monitor".into()).spawn(move || {
            monitor(&watched);
        });
        match monitor {
            Ok(monitor) => Ok(Watchdog { shared, monitor: Some(monitor) }),
            Err(err) => {
                drop(Watchdog { shared, monitor: None });
                Err(err)
            }
        }
    }

    /// Adds a group to kill if the host dies.
    pub fn watch(&self, pgid: u32) {
        let mut state = self.shared.lock();
        if state.groups.len() < WATCHDOG_CAPACITY && state.groups.insert(pgid) {
            send(&state, i32::try_from(pgid).unwrap_or(0));
        }
    }

    /// Removes a group once it is stopped and reaped, so its id may be reused safely.
    pub fn unwatch(&self, pgid: u32) {
        let mut state = self.shared.lock();
        if state.groups.remove(&pgid) {
            send(&state, -i32::try_from(pgid).unwrap_or(0));
        }
    }

    /// Watches again, in a new image of this process, the watchdog an earlier image started
    /// (a hand-over): `pipe` is its write end, `groups` what it was told.
    pub fn adopt(pipe: OwnedFd, pid: u32, groups: Vec<u32>, leftovers: Leftovers) -> io::Result<Watchdog> {
        let _ = crate::reaper::register(|| Ok(()), |()| Some(pid));
        let state = State { pipe: Some(pipe), pid, groups: groups.into_iter().collect(), closing: false };
        let shared = Arc::new(Shared { leftovers, state: Mutex::new(state) });
        let watched = Arc::clone(&shared);
        let monitor = std::thread::Builder::new().name("warren-watchdog-monitor".into()).spawn(move || {
            monitor(&watched);
        })?;
        Ok(Watchdog { shared, monitor: Some(monitor) })
    }

    /// Its pipe's write end, its pid and the groups it watches, for a hand-over; the pipe is
    /// left open across the next exec (or closed at it again, for `keep` false).
    pub fn hand_over(&self, keep: bool) -> io::Result<(i32, u32, Vec<u32>)> {
        let state = self.shared.lock();
        let pipe = state.pipe.as_ref().ok_or_else(|| io::Error::other("the watchdog could not be restarted"))?;
        super::handover::keep_across_exec(pipe, keep)?;
        Ok((pipe.as_raw_fd(), state.pid, state.groups.iter().copied().collect()))
    }

    /// The current watchdog's pid (another one after a replacement).
    pub fn pid(&self) -> u32 {
        self.shared.lock().pid
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn send(state: &State, value: i32) {
    if value == 0 {
        return;
    }
    // Four bytes are below PIPE_BUF, so the write is atomic; the watchdog drains promptly.
    if let Some(pipe) = &state.pipe {
        let _ = rustix::io::write(pipe, &value.to_be_bytes());
    }
}

/// Waits for the watchdog's exit (reaping it: no zombie), and replaces it unless the host is
/// ending.
fn monitor(shared: &Shared) {
    loop {
        let pid = shared.lock().pid;
        let _ = wait_for(pid);
        crate::reaper::unregister(pid);
        let mut state = shared.lock();
        if state.closing {
            return;
        }
        match crate::reaper::register(|| fork_watchdog(&shared.leftovers), |(_, pid)| Some(*pid)) {
            Ok((pipe, new_pid)) => {
                state.pipe = Some(pipe);
                state.pid = new_pid;
                for &pgid in &state.groups {
                    send(&state, i32::try_from(pgid).unwrap_or(0));
                }
                tracing::warn!("the watchdog (pid {pid}) died; started another (pid {new_pid})");
            }
            Err(err) => {
                state.pipe = None;
                tracing::warn!("the watchdog (pid {pid}) died and cannot be started again: {err}");
                return;
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing our end tells the watchdog the host ended normally; it kills whatever is still
        // registered (nothing, after a clean stop) and exits, and the monitor reaps it.
        {
            let mut state = self.shared.lock();
            state.closing = true;
            // Goodbye first: the process lives on, so the watchdog must not sweep by its tag.
            if let Some(pipe) = &state.pipe {
                let _ = rustix::io::write(pipe, &0i32.to_be_bytes());
            }
            drop(state.pipe.take());
        }
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        } else if let Ok(pid) = pid(self.shared.lock().pid) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            crate::reaper::unregister(pid.as_raw_nonzero().get().unsigned_abs());
        }
    }
}

/// Forks a watchdog; returns the write end of its pipe and its pid.
fn fork_watchdog(leftovers: &Leftovers) -> io::Result<(OwnedFd, u32)> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Allocated before fork: the watchdog must not allocate.
    let mut groups = vec![0i32; WATCHDOG_CAPACITY].into_boxed_slice();
    let tag = format!("WARREN_HOST_PID={}", std::process::id()).into_bytes();
    let read_fd = read_end.as_raw_fd();
    let write_fd = write_end.as_raw_fd();
    // SAFETY: after fork the child runs only `watchdog_main`, which makes async-signal-safe
    // syscalls (close, prctl, setpgid, sigaction, read, kill, open, write, rmdir, lstat, unlink,
    // _exit) on memory it
    // owns, and never returns into Rust code that could touch locks held by other threads of
    // the parent.
    let child = unsafe { libc::fork() };
    match child {
        -1 => Err(io::Error::last_os_error()),
        0 => watchdog_main(read_fd, write_fd, &mut groups, leftovers, &tag),
        pid => {
            drop(read_end);
            Ok((write_end, pid.unsigned_abs()))
        }
    }
}

fn watchdog_main(read_fd: i32, write_fd: i32, groups: &mut [i32], leftovers: &Leftovers, tag: &[u8]) -> ! {
    // SAFETY (whole function): runs in the forked child; every call below is an async-signal-safe
    // syscall on file descriptors and memory this process owns.
    unsafe {
        libc::close(write_fd);
        // A name of its own (the kernel's `comm`, which `killall NAME`, `pgrep NAME` and `top`
        // match and show): `killall -9 warren` must kill the host and leave the watchdog to
        // clean up after it. `pgrep -f` and `ps -f` read the command line, still the host's.
        libc::prctl(
            libc::PR_SET_NAME,
            WATCHDOG_NAME.as_ptr(),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
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
        // A 0 record: the `Host` is dropped, its process lives on.
        let mut goodbye = false;
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
            if value == 0 {
                goodbye = true;
            } else if value > 0 {
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
        // And whatever left its group: everything in the children's cgroups. After a clean
        // stop they are empty and this does nothing; the host itself is not in them.
        if let Some(path) = &leftovers.cgroup_kill {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"1".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }
        // Without cgroups, descendants that left their group are found by the host's tag in
        // their environment (with cgroups there are none left by now) — only if the host's
        // process died (no goodbye): every `Host` of a process shares the tag, and a `Host`
        // dropped in a live process must not touch another one's children.
        if !goodbye {
            super::tagged::kill_tagged(tag, libc::getpid());
            // A dropped `Host` removes its directory itself.
            if let Some(path) = &leftovers.runtime_dir {
                libc::rmdir(path.as_ptr());
            }
            for file in &leftovers.files {
                let mut meta: libc::stat = std::mem::zeroed();
                let same = libc::lstat(file.path.as_ptr(), &mut meta) == 0
                    && meta.st_dev == file.dev
                    && meta.st_ino == file.ino;
                if same {
                    libc::unlink(file.path.as_ptr());
                }
            }
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor from 3 up except `keep`. Called only in forked processes (the
/// watchdog, a PID namespace's anchor).
pub(super) unsafe fn close_all_but(keep: i32) {
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
