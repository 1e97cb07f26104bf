//! The vfork spawner: start a program as `posix_spawn` does, but with the parent-death signal.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::process::Pid;

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
    /// The `cgroup.procs` of the child's cgroups in cgroup v1 hierarchies (where its limits'
    /// controllers are not cgroup2's): it writes "0" to each before exec, so it allocates,
    /// forks and runs nothing outside them. A write refused fails the spawn.
    pub join: Vec<RawFd>,
    /// Who the child runs as, when not the host's user.
    pub user: Option<User>,
    /// Sockets passed as systemd passes them: the i-th becomes fd 3 + i in the child (without
    /// close-on-exec there). Each must be numbered at or above 3 + their count, so that no
    /// `dup2` onto 3 + i closes one not yet placed.
    pub listen: Vec<OwnedFd>,
    /// The index in `envp` of the `LISTEN_PID=` entry, filled in by the child with its own pid:
    /// only the child knows it (and in a PID namespace, only as the child sees it).
    pub listen_pid: Option<usize>,
}

/// A user to switch to before exec: ids only, resolved beforehand (no NSS lookup can run in
/// the child).
#[derive(Debug, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`setgroups`).
    pub groups: Vec<u32>,
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
    /// `join_count` descriptors of v1 `cgroup.procs` files to join.
    join: *const libc::c_int,
    join_count: usize,
    /// Set by the child when joining one of `join` failed (then `error` is that errno).
    join_failed: std::sync::atomic::AtomicBool,
    /// Whether to switch to `uid`, `gid` and `groups` (`group_count` of them).
    switch_user: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    group_count: usize,
    last_signal: libc::c_int,
    /// `listen_count` descriptors to place at 3, 4, …
    listen: *const libc::c_int,
    listen_count: usize,
    /// Where the child writes its pid's digits and a NUL (the `LISTEN_PID=` entry, after its
    /// `=`), with room for `PID_DIGITS` + 1 bytes; null when no socket is passed.
    listen_pid: *mut u8,
    /// Set by the child to the errno of what failed (negated if it was the `chdir`); read by
    /// the parent after `clone` returns.
    error: std::sync::atomic::AtomicI32,
}

const LISTEN_PID: &[u8] = b"LISTEN_PID=";
/// A pid has at most 10 decimal digits (`pid_max` is at most 2^22).
const PID_DIGITS: usize = 10;

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
    let mut envp = pointers(&exec.envp);
    // The child writes its pid into this copy of the entry; `exec.envp` is borrowed, not ours.
    let mut pid_entry = [0u8; LISTEN_PID.len() + PID_DIGITS + 1];
    pid_entry[..LISTEN_PID.len()].copy_from_slice(LISTEN_PID);
    // Both pointers from one base, so that neither borrow invalidates the other.
    let pid_base = pid_entry.as_mut_ptr();
    if let Some(slot) = exec.listen_pid.and_then(|index| envp.get_mut(index).filter(|p| !p.is_null())) {
        *slot = pid_base.cast_const().cast();
    }
    let listen: Vec<libc::c_int> = exec.listen.iter().map(AsRawFd::as_raw_fd).collect();
    let mut args = ChildArgs {
        candidates: candidates.as_ptr(),
        candidate_count: exec.candidates.len(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: exec.cwd.as_ref().map_or(std::ptr::null(), |cwd| cwd.as_ptr()),
        stdio: [exec.stdio[0].as_raw_fd(), exec.stdio[1].as_raw_fd(), exec.stdio[2].as_raw_fd()],
        parent: libc::pid_t::try_from(exec.parent).unwrap_or(0),
        cgroup_procs: -1,
        join: exec.join.as_ptr(),
        join_count: exec.join.len(),
        join_failed: std::sync::atomic::AtomicBool::new(false),
        switch_user: exec.user.is_some(),
        uid: exec.user.as_ref().map_or(0, |user| user.uid),
        gid: exec.user.as_ref().map_or(0, |user| user.gid),
        groups: exec.user.as_ref().map_or(std::ptr::null(), |user| user.groups.as_ptr()),
        group_count: exec.user.as_ref().map_or(0, |user| user.groups.len()),
        last_signal: libc::SIGRTMAX(),
        listen: listen.as_ptr(),
        listen_count: listen.len(),
        listen_pid: match exec.listen_pid {
            Some(_) => pid_base.wrapping_add(LISTEN_PID.len()),
            None => std::ptr::null_mut(),
        },
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
    // only `args.error`, `pid_entry` (this frame's), its own stack, and errno (this thread's, which is suspended). Every
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
        if args.join_failed.load(std::sync::atomic::Ordering::Acquire) {
            let source = io::Error::from_raw_os_error(error);
            return Err(io::Error::new(source.kind(), CgroupJoinError(source)));
        }
        if error < 0 {
            let source = io::Error::from_raw_os_error(-error);
            return Err(io::Error::new(source.kind(), CwdError(source)));
        }
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(pid.unsigned_abs())
}

/// The child could not change to its working directory: not to be taken for a missing program
/// (both are `ENOENT`).
#[derive(Debug, thiserror::Error)]
#[error("cannot change to the working directory: {0}")]
pub struct CwdError(pub io::Error);

/// The child could not join one of its cgroup v1 cgroups, so it was not started: it would have
/// run without its limits.
#[derive(Debug, thiserror::Error)]
#[error("cannot join its cgroup (a cgroup v1 hierarchy's cgroup.procs refused it): {0}")]
pub struct CgroupJoinError(pub io::Error);

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
    // arrays (`groups` holds `group_count` ids, `join` `join_count` and `listen` `listen_count`
    // descriptors, from the borrowed `Exec`; `listen_pid` has room for a pid, in `spawn`'s
    // frame); every call is a plain syscall wrapper (async-signal-safe).
    let error = unsafe { child_exec(args) };
    args.error.store(error, std::sync::atomic::Ordering::Release);
    // SAFETY: `_exit` ends this process without running anything of the host's (no atexit
    // handlers, no stdio flush: those buffers belong to the host).
    unsafe { libc::_exit(127) }
}

/// Writes `pid` in decimal and a NUL at `out`, which has room for `PID_DIGITS` + 1 bytes.
///
/// # Safety
/// `out` must be valid for that many bytes. No allocation, no formatting machinery: this runs
/// between clone and exec.
unsafe fn write_pid(pid: libc::pid_t, out: *mut u8) {
    let mut digits = [0u8; PID_DIGITS];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 || len == PID_DIGITS {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: i < len <= PID_DIGITS, within `out`'s room (see above).
        unsafe { *out.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: len <= PID_DIGITS, so this is the last byte of `out`'s room at most.
    unsafe { *out.add(len) = 0 };
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
        // The v1 cgroups that hold its limits: unlike the above, not joining them is an error,
        // as it would run without the limits it was started with.
        for i in 0..args.join_count {
            if libc::write(*args.join.add(i), b"0".as_ptr().cast(), 1) < 0 {
                args.join_failed.store(true, std::sync::atomic::Ordering::Release);
                return errno();
            }
        }
        // Its user, before the death signal: a change of credentials clears that signal.
        // Groups first, then the group, then the user: after setuid the others are refused.
        if args.switch_user
            && (libc::setgroups(args.group_count, args.groups) < 0
                || libc::setgid(args.gid) < 0
                || libc::setuid(args.uid) < 0)
        {
            return errno();
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
            return -errno();
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
        // The passed sockets, last: earlier steps write to descriptors (cgroup.procs) that a
        // dup2 onto 3 + i could close. dup2 leaves the copy without close-on-exec, the source
        // (numbered above every target) keeps its flag and goes at exec.
        for i in 0..args.listen_count {
            let target = 3 + i as libc::c_int;
            if libc::dup2(*args.listen.add(i), target) < 0 {
                return errno();
            }
        }
        if !args.listen_pid.is_null() {
            write_pid(libc::getpid(), args.listen_pid);
        }
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
