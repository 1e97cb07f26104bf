//! Processes and process groups: signal, test, reap — safe wrappers over rustix.

use std::io;

use rustix::process::Pid;

use crate::signal::Signal;

fn to_rustix(signal: Signal) -> io::Result<rustix::process::Signal> {
    rustix::process::Signal::from_named_raw(signal.number())
        .ok_or_else(|| io::Error::other(format!("warren cannot send {signal}")))
}

pub(crate) fn pid(raw: u32) -> io::Result<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw).ok_or_else(|| io::Error::other(format!("invalid pid {raw}")))
}

/// Signals every process of a group.
pub fn kill_group(pgid: u32, signal: Signal) -> io::Result<()> {
    rustix::process::kill_process_group(pid(pgid)?, to_rustix(signal)?).map_err(io::Error::from)
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

/// Signals one process.
pub fn kill_process(raw_pid: u32, signal: Signal) -> io::Result<()> {
    rustix::process::kill_process(pid(raw_pid)?, to_rustix(signal)?).map_err(io::Error::from)
}

/// Reaps `raw_pid` if it is an exited child of ours; never waits. Whether it was reaped.
pub fn reap_if_exited(raw_pid: u32) -> bool {
    pid(raw_pid).is_ok_and(|child| {
        matches!(rustix::process::waitpid(Some(child), rustix::process::WaitOptions::NOHANG), Ok(Some(_)))
    })
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
