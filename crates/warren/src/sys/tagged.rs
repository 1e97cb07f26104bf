//! For the watchdog, after the host died: kill every process whose environment holds the host's
//! tag (`WARREN_HOST_PID=<host pid>`, which every child is given and its descendants inherit) —
//! without cgroups, the only way to reach descendants that left their child's process group.
//!
//! Runs in the forked watchdog, so it only makes syscalls, on stack buffers: no allocation, no
//! lock, no `std::fs`.

/// Kills the processes carrying `tag` (a whole `NAME=value` entry), except `me`; a few rounds,
/// for processes forked meanwhile.
///
/// # Safety
/// Async-signal-safe: only call it where nothing else may be (the forked watchdog).
pub(super) unsafe fn kill_tagged(tag: &[u8], me: i32) {
    let tick = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
    for _ in 0..5 {
        // SAFETY: see the function's contract; `scan` only makes syscalls on its own buffers.
        let killed = unsafe { scan(tag, me) };
        if killed == 0 {
            return;
        }
        // SAFETY: a plain syscall.
        unsafe { libc::nanosleep(&tick, std::ptr::null_mut()) };
    }
}

/// One pass over /proc; returns how many were killed.
unsafe fn scan(tag: &[u8], me: i32) -> usize {
    // SAFETY (whole function): syscalls on descriptors this process opened and on buffers on
    // its stack, whose lengths are passed along.
    unsafe {
        let proc_dir = libc::open(c"/proc".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if proc_dir < 0 {
            return 0;
        }
        let mut killed = 0;
        let mut entries = [0u8; 8192];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, proc_dir, entries.as_mut_ptr(), entries.len());
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            let mut at = 0;
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the name.
            while at + 19 <= n {
                let reclen = usize::from(u16::from_ne_bytes([entries[at + 16], entries[at + 17]]));
                if reclen == 0 || at + reclen > n {
                    break;
                }
                let name = &entries[at + 19..at + reclen];
                at += reclen;
                let Some(pid) = parse_pid(name) else { continue };
                if pid == me || !carries(pid, tag) {
                    continue;
                }
                // Through a pidfd, checked again: a pid reused since the check is not hit.
                let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
                let Ok(pidfd) = i32::try_from(pidfd) else { continue };
                if pidfd >= 0 {
                    if carries(pid, tag)
                        && libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, std::ptr::null::<u8>(), 0)
                            == 0
                    {
                        killed += 1;
                    }
                    libc::close(pidfd);
                }
            }
        }
        libc::close(proc_dir);
        killed
    }
}

/// The pid a /proc entry's NUL-terminated name stands for, if it is one.
fn parse_pid(name: &[u8]) -> Option<i32> {
    let mut pid: i32 = 0;
    let mut digits = 0;
    for &b in name.iter().take_while(|&&b| b != 0) {
        if !b.is_ascii_digit() {
            return None;
        }
        pid = pid.checked_mul(10)?.checked_add(i32::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0 && pid > 0).then_some(pid)
}

/// Whether `/proc/<pid>/environ` has `tag` as one whole entry; read in chunks, matched as it
/// streams by.
unsafe fn carries(pid: i32, tag: &[u8]) -> bool {
    // "/proc/" + 10 digits + "/environ" + NUL.
    let mut path = [0u8; 32];
    let mut len = 0;
    for &b in b"/proc/" {
        path[len] = b;
        len += 1;
    }
    let mut digits = [0u8; 10];
    let mut count = 0;
    let mut rest = pid.unsigned_abs();
    loop {
        digits[count] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        count += 1;
        rest /= 10;
        if rest == 0 || count == digits.len() {
            break;
        }
    }
    for i in (0..count).rev() {
        path[len] = digits[i];
        len += 1;
    }
    for &b in b"/environ" {
        path[len] = b;
        len += 1;
    }
    // SAFETY: `path` is NUL-terminated (zeroed past `len`); read into a stack buffer of its
    // length; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        // Bytes of `tag` matched since the entry began; None once the entry differs.
        let mut matched = Some(0usize);
        let mut found = false;
        'read: loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b == 0 {
                    if matched == Some(tag.len()) {
                        found = true;
                        break 'read;
                    }
                    matched = Some(0);
                } else {
                    matched = matched.filter(|&m| m < tag.len() && tag[m] == b).map(|m| m + 1);
                }
            }
        }
        libc::close(fd);
        found
    }
}
