//! Reaps the orphans reparented to warren (a subreaper, and maybe PID 1), as tini does.
//!
//! A program's grandchild whose parent exits is reparented here; once it exits it stays a
//! zombie until someone waits for it. Waiting for "any child" would steal the exit status of
//! the children warren waits for by pid (the spawner's pidfd, tokio's probes), so every child
//! warren starts itself is registered here, under the same lock as its start, and the reaper
//! waits only for zombies whose parent is this process and whose pid is not registered.
//! The registry is taken while the reaper decides and reaps, so a child cannot exit and be
//! taken for an orphan between its start and its registration.

use std::collections::HashSet;
use std::io;
use std::sync::{Mutex, MutexGuard, OnceLock};

use tokio::signal::unix::{SignalKind, signal};

use crate::sys;

fn registry() -> MutexGuard<'static, HashSet<u32>> {
    static SPAWNED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    // A panic while holding it leaves a set that is still consistent: every insert and remove
    // is a single call.
    SPAWNED.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a child with `start` and registers its pid (read by `pid_of`) before any reaper can
/// look, so that its exit status is left to whoever waits for it by pid.
pub(crate) fn register<T>(start: impl FnOnce() -> io::Result<T>, pid_of: impl Fn(&T) -> Option<u32>) -> io::Result<T> {
    let mut spawned = registry();
    let started = start()?;
    if let Some(pid) = pid_of(&started) {
        spawned.insert(pid);
    }
    Ok(started)
}

/// Forgets a child once it has been reaped by its owner, or once nobody will wait for it (then
/// the reaper may take it).
pub(crate) fn unregister(pid: u32) {
    registry().remove(&pid);
}

/// Runs `command` to its end and returns its output, registered so that [`reap_orphans`]
/// leaves its exit to this: for a helper that a process reaping orphans runs itself (`warren
/// up` asking a new binary which state it reads). Dropped early, the child is killed and
/// left to tokio to reap.
pub async fn output(mut command: tokio::process::Command) -> io::Result<std::process::Output> {
    command.kill_on_drop(true);
    let child = register(|| command.spawn(), tokio::process::Child::id)?;
    /// Unregisters the pid however the wait ends.
    struct Registered(Option<u32>);
    impl Drop for Registered {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                unregister(pid);
            }
        }
    }
    let _registered = Registered(child.id());
    child.wait_with_output().await
}

/// Reaps, on every SIGCHLD, the exited processes reparented to this one that warren did not
/// start itself. Only for a process whose children are all started by warren (like `warren
/// up`): a child started another way (`std::process::Command`) would be taken for an orphan.
/// Needs a tokio runtime; the task runs until it is aborted.
pub fn reap_orphans() -> io::Result<tokio::task::JoinHandle<()>> {
    let mut sigchld = signal(SignalKind::child())?;
    Ok(tokio::spawn(async move {
        // Orphans that exited before the handler was installed.
        reap_now();
        while sigchld.recv().await.is_some() {
            reap_now();
        }
    }))
}

/// Reaps the orphan zombies present now; returns how many.
pub fn reap_now() -> usize {
    let me = sys::current_pid();
    let spawned = registry();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if spawned.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if zombie_child_of(&stat, me) && sys::reap_if_exited(pid) {
            reaped += 1;
        }
    }
    if reaped > 0 {
        tracing::debug!("reaped {reaped} orphaned process(es)");
    }
    reaped
}

/// Whether a `/proc/PID/stat` line is a zombie's whose parent is `parent`. The command name
/// (between the first `(` and the last `)`) may hold spaces and parentheses.
fn zombie_child_of(stat: &str, parent: u32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let mut fields = rest.split_ascii_whitespace();
    fields.next() == Some("Z") && fields.next().and_then(|ppid| ppid.parse::<u32>().ok()) == Some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_parent_past_a_tricky_name() {
        assert!(zombie_child_of("12 (a) Z (b)) Z 7 12 12 0", 7));
        assert!(!zombie_child_of("12 (sleep) S 7 12 12 0", 7));
        assert!(!zombie_child_of("12 (sleep) Z 8 12 12 0", 7));
        assert!(!zombie_child_of("garbage", 7));
    }
}
