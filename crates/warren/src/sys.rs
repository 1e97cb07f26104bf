//! Every raw syscall of warren, in one place.
//!
//! Most of warren's OS work goes through safe wrappers (rustix, tokio). What is left here needs
//! `unsafe` for one of three reasons: code that runs between `fork` and `exec` (where only
//! async-signal-safe calls are allowed), the watchdog process, which is a `fork` without
//! `exec`, and registering a file descriptor with tokio's reactor. Each `unsafe` block says why
//! it is sound.
#![expect(unsafe_code, reason = "the one module allowed to make raw syscalls")]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

/// Waits (blocking) for a child of ours to exit, and reaps it.
pub fn wait_for(raw_pid: u32) -> io::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    let child = pid(raw_pid)?;
    loop {
        match rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(std::process::ExitStatus::from_raw(status.as_raw())),
            Ok(None) => return Err(io::Error::other(format!("process {raw_pid} has no status to reap"))),
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

pub fn kill_process(raw_pid: u32, signal: StopSignal) -> io::Result<()> {
    rustix::process::kill_process(pid(raw_pid)?, signal.to_rustix()).map_err(io::Error::from)
}

/// Reaps `raw_pid` if it is an exited child of ours; never waits.
pub fn reap_if_exited(raw_pid: u32) {
    if let Ok(child) = pid(raw_pid) {
        let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::NOHANG);
    }
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

/// Everything one child needs between `clone` and `exec`, prepared beforehand: in there only
/// syscalls may run, no allocation and no lock.
#[derive(Debug)]
pub struct Exec {
    /// Where to look for the program, in order: the path itself, or each `PATH` entry joined
    /// with the name (what `execvp` would try, with the child's `PATH`).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    /// `KEY=value`, the child's whole environment.
    pub envp: Vec<CString>,
    pub cwd: Option<CString>,
    /// The child's ends of its stdin, stdout and stderr pipes (close-on-exec here; dup'd to
    /// 0, 1 and 2 in the child, which clears the flag).
    pub stdio: [OwnedFd; 3],
    /// The host's pid: the child refuses to exec once its parent is no longer the host.
    pub parent: u32,
    /// The child's cgroup, if it has one: its directory and its `cgroup.procs`. The child is
    /// created in it (`CLONE_INTO_CGROUP`), or where that is not available joins it before exec.
    pub cgroup: Option<(RawFd, RawFd)>,
}

/// What the child of [`spawn`] reads: raw pointers into an [`Exec`] and pointer arrays made
/// from it, all owned by `spawn`'s frame, which the kernel keeps suspended until the child has
/// exec'd or exited.
struct ChildArgs {
    candidates: *const *const libc::c_char,
    candidate_count: usize,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [libc::c_int; 3],
    parent: libc::pid_t,
    cgroup_procs: libc::c_int,
    last_signal: libc::c_int,
    /// Set by the child to the errno of what failed; read by the parent after `clone` returns.
    error: std::sync::atomic::AtomicI32,
}

/// Room for the child's frames until exec: `child_main` and a few libc wrappers.
const CHILD_STACK: usize = 64 * 1024;

/// Starts `exec` as a new process in a process group of its own, with the parent-death signal
/// set to SIGKILL, a clean signal state (nothing blocked, default actions, SIGPIPE included) and
/// the given stdio; returns its pid once it has exec'd, or why it could not.
///
/// Like `posix_spawn`, this shares the caller's memory with the child until exec
/// (`CLONE_VM | CLONE_VFORK`) instead of forking: a fork copies the host's page tables (which
/// grow with every child it serves) and leaves every page it writes afterwards to a
/// copy-on-write fault. `posix_spawn` itself cannot set the death signal, which is why this is
/// done by hand. The death signal follows the *thread* that clones: call this only from a
/// thread that lives as long as the children (the spawner thread).
pub fn spawn(exec: &Exec) -> io::Result<u32> {
    let pointers = |strings: &[CString]| -> Vec<*const libc::c_char> {
        strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
    };
    let candidates = pointers(&exec.candidates);
    let argv = pointers(&exec.argv);
    let envp = pointers(&exec.envp);
    let mut args = ChildArgs {
        candidates: candidates.as_ptr(),
        candidate_count: exec.candidates.len(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: exec.cwd.as_ref().map_or(std::ptr::null(), |cwd| cwd.as_ptr()),
        stdio: [exec.stdio[0].as_raw_fd(), exec.stdio[1].as_raw_fd(), exec.stdio[2].as_raw_fd()],
        parent: libc::pid_t::try_from(exec.parent).unwrap_or(0),
        cgroup_procs: -1,
        last_signal: libc::SIGRTMAX(),
        error: std::sync::atomic::AtomicI32::new(0),
    };
    // u128 keeps the stack 16-byte aligned, as the ABI wants at a call.
    let mut stack = vec![0u128; CHILD_STACK / std::mem::size_of::<u128>()];
    let stack_top = stack.as_mut_ptr_range().end.cast::<libc::c_void>();
    let mut pid = -1;
    // SAFETY: `clone` with CLONE_VM|CLONE_VFORK runs `child_main` in a new process that shares
    // this memory, on `stack`, while the kernel suspends this thread until the child has
    // exec'd or exited; `args`, the pointer arrays and the strings they point to are not
    // touched by anyone else meanwhile (they belong to this frame, and `exec` is borrowed).
    // Other threads of the host keep running, but the child reads only that memory and writes
    // only `args.error`, its own stack, and errno (this thread's, which is suspended). Every
    // signal is blocked here first, so the child inherits an all-blocked mask and no handler
    // of the host can run in it before it has reset them; the mask is restored right after.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        // Created right in its cgroup: joining one afterwards is a migration, which the first
        // time after a pause waits for an RCU grace period (measured: 16 ms) with this thread
        // suspended and every spawn queued behind it. Kernels before 5.7, other architectures
        // and seccomp filters that refuse clone3 get the join before exec instead.
        #[cfg(target_arch = "x86_64")]
        if let Some((dir, _)) = exec.cgroup {
            let clone_args = CloneArgs {
                flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
                exit_signal: libc::SIGCHLD as u64,
                stack: stack.as_mut_ptr() as u64,
                stack_size: CHILD_STACK as u64,
                cgroup: dir.unsigned_abs().into(),
                ..CloneArgs::default()
            };
            pid = clone3_vfork(&clone_args, std::ptr::from_mut(&mut args).cast());
        }
        if pid < 0 {
            args.cgroup_procs = exec.cgroup.map_or(-1, |(_, procs)| procs);
            pid = libc::clone(
                child_main,
                stack_top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_mut(&mut args).cast(),
            );
        }
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
    }
    drop(stack);
    let error = args.error.load(std::sync::atomic::Ordering::Acquire);
    if error != 0 {
        // It has exited already (CLONE_VFORK returned): reap it so no zombie stays.
        if let Some(child) = Pid::from_raw(pid) {
            let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
        }
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(pid.unsigned_abs())
}

/// `struct clone_args` of clone3 (Linux 5.7's, with `cgroup`).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Default)]
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[cfg(target_arch = "x86_64")]
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3 for a child that shares this memory and runs `child_main(arg)` on the stack that
/// `args` gives it; returns the child's pid, or a negative errno (no child was made then).
///
/// # Safety
/// As for `libc::clone` with the same flags: `args.flags` must include CLONE_VM|CLONE_VFORK,
/// the stack must stay valid until this returns, and `arg` must be what `child_main` expects.
/// glibc has no clone3 wrapper, hence the few instructions of one: the kernel starts the child
/// right after the `syscall` with `rsp` at the top of its new stack and every other register
/// as the parent's (rax = 0); it calls `child_main(arg)`, which never returns (it execs or
/// exits), so the child never runs this function's code past that point.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vfork(args: &CloneArgs, arg: *mut libc::c_void) -> libc::pid_t {
    let ret: i64;
    // SAFETY: see above. rcx and r11 are clobbered by `syscall`; r12 and r13 survive it and
    // carry the function and its argument into the child. `stack + stack_size` is 16-byte
    // aligned (CHILD_STACK is a multiple of 16, the stack is u128s), so `call` leaves the
    // callee's stack aligned as the ABI requires. The parent's path touches no stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::from_ref(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child_main as extern "C" fn(*mut libc::c_void) -> libc::c_int,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    libc::pid_t::try_from(ret).unwrap_or(-1)
}

/// The new process until exec. Makes only syscalls, on memory described in [`ChildArgs`].
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` of the suspended `spawn` frame (see there).
    let args = unsafe { &*arg.cast::<ChildArgs>() };
    // SAFETY: the pointers in `args` are valid, NUL-terminated and null-terminated where
    // arrays; every call is a plain syscall wrapper (async-signal-safe).
    let error = unsafe { child_exec(args) };
    args.error.store(error, std::sync::atomic::Ordering::Release);
    // SAFETY: `_exit` ends this process without running anything of the host's (no atexit
    // handlers, no stdio flush: those buffers belong to the host).
    unsafe { libc::_exit(127) }
}

/// Sets the child up and execs it; returns the errno of what failed (it returns only then).
unsafe fn child_exec(args: &ChildArgs) -> libc::c_int {
    // SAFETY: see `child_main`.
    unsafe {
        let errno = || *libc::__errno_location();
        // Stdio: dup2 leaves the copies without close-on-exec; an end that already has its
        // number only needs the flag cleared.
        for (target, &fd) in args.stdio.iter().enumerate() {
            let target = target as libc::c_int;
            let done = if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) } else { libc::dup2(fd, target) };
            if done < 0 {
                return errno();
            }
        }
        // Its own process group, so that stopping reaches grandchildren and a terminal's Ctrl-C
        // reaches only the host.
        if libc::setpgid(0, 0) < 0 {
            return errno();
        }
        // Its cgroup, before it can start anything: then every descendant is in it too. "0"
        // means the writer. Refused only by an odd cgroup setup; the child then runs with
        // process groups only, as where no cgroup is available.
        if args.cgroup_procs >= 0 {
            libc::write(args.cgroup_procs, b"0".as_ptr().cast(), 1);
        }
        // prctl is variadic and reads its arguments as unsigned longs: pass them as such.
        let (kill, zero) = (libc::SIGKILL as libc::c_ulong, 0 as libc::c_ulong);
        if libc::prctl(libc::PR_SET_PDEATHSIG, kill, zero, zero, zero) < 0 {
            return errno();
        }
        // The host may have died between clone and prctl, and then no death signal will come.
        if libc::getppid() != args.parent {
            return libc::ESRCH;
        }
        if !args.cwd.is_null() && libc::chdir(args.cwd) < 0 {
            return errno();
        }
        // A clean signal state: handlers are reset before anything is unblocked, since a
        // handler of the host running here would act on the host's memory. exec would reset
        // them anyway; SIGPIPE, which Rust ignores, goes back to its default too. Signals
        // other than SIGPIPE that the host ignores stay ignored, as across any exec.
        for signal in 1..=args.last_signal {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut action) < 0 {
                continue;
            }
            if signal == libc::SIGPIPE || (action.sa_sigaction != libc::SIG_IGN && action.sa_sigaction != libc::SIG_DFL)
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // execvp's search, without its fall-back to /bin/sh for a file that is no executable.
        let mut denied = false;
        for i in 0..args.candidate_count {
            libc::execve(*args.candidates.add(i), args.argv, args.envp);
            match errno() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => return other,
            }
        }
        if denied { libc::EACCES } else { libc::ENOENT }
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
    /// `cgroup_kill`: the host's `cgroup.kill`, written to kill every child's cgroup at once,
    /// descendants that left their process group included.
    pub fn start(cgroup_kill: Option<CString>) -> io::Result<Watchdog> {
        let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // Allocated before fork: the watchdog must not allocate.
        let mut groups = vec![0i32; WATCHDOG_CAPACITY].into_boxed_slice();
        let read_fd = read_end.as_raw_fd();
        let write_fd = write_end.as_raw_fd();
        // SAFETY: after fork the child runs only `watchdog_main`, which makes async-signal-safe
        // syscalls (close, setpgid, sigaction, read, kill, open, write, _exit) on memory it owns, and never
        // returns into Rust code that could touch locks held by other threads of the parent.
        let child = unsafe { libc::fork() };
        match child {
            -1 => Err(io::Error::last_os_error()),
            0 => watchdog_main(read_fd, write_fd, &mut groups, cgroup_kill.as_deref()),
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

fn watchdog_main(read_fd: i32, write_fd: i32, groups: &mut [i32], cgroup_kill: Option<&std::ffi::CStr>) -> ! {
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
        // And whatever left its group: everything in the children's cgroups. After a clean
        // stop they are empty and this does nothing; the host itself is not in them.
        if let Some(path) = cgroup_kill {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"1".as_ptr().cast(), 1);
                libc::close(fd);
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
/// (inotify, pidfds).
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and is not replaced while
    // registered. The `AsyncFd` takes the `OwnedFd` by value, so nothing else can close it,
    // and it deregisters before the `OwnedFd` is dropped with it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|err| err.into_parts().1)
}
