//! Descendants that left a child's process group, found without cgroups.
//!
//! Every unprivileged user runs without cgroups, and a process that calls `setsid` (a daemon's
//! double fork) is then out of reach of the group signal. What such a user still has: every
//! child carries `WARREN_NAME` and `WARREN_HOST_PID` in its environment, its descendants
//! inherit them, and `/proc/<pid>/environ` of a process of one's own uid is readable. Once a
//! child's leader is reaped, whatever still carries its tag is an escapee: it is killed through
//! a pidfd opened *before* the tag is checked again, so a pid reused in between is never hit,
//! and reaped (the host is the subreaper, so an orphan's parent is the host).
//!
//! A process that clears or rewrites its environment is not found; `docs/SHUTDOWN.md` says so.
//!
//! The tag names the host by its pid, which every `Host` of one process shares: while another
//! child of the same name runs in this process (under another `Host`), its processes carry the
//! same tag, so the sweep is skipped rather than hit them ([`Claim`]).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// How long the sweep may take: processes killed keep forking until they are gone, and their
/// orphans are reparented before they can be found.
const BOUND: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(10);

/// How many children of each name run in this process, across its hosts; entries go at zero.
static LIVE: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// A running child's hold on its name, from spawn to the end of its reaping.
pub(crate) struct Claim(String);

impl Claim {
    pub fn new(name: &str) -> Claim {
        *LIVE.lock().unwrap_or_else(PoisonError::into_inner).entry(name.to_owned()).or_default() += 1;
        Claim(name.to_owned())
    }

    /// Whether this is the only child of its name in the process: then its tag is its own.
    pub fn alone(&self) -> bool {
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).get(&self.0).is_none_or(|&n| n <= 1)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = live.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.0);
            }
        }
    }
}

/// The tag a child's descendants inherit.
pub(crate) struct Tag {
    name: Vec<u8>,
    host: Vec<u8>,
}

impl Tag {
    pub fn new(name: &str, host_pid: u32) -> Tag {
        Tag {
            name: format!("WARREN_NAME={name}").into_bytes(),
            host: format!("WARREN_HOST_PID={host_pid}").into_bytes(),
        }
    }

    /// Whether `pid`'s environment carries the tag; false if it cannot be read (another uid, a
    /// zombie, gone).
    fn carried_by(&self, pid: u32) -> bool {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
        let mut name = false;
        let mut host = false;
        for entry in environ.split(|&b| b == 0) {
            name |= entry == self.name.as_slice();
            host |= entry == self.host.as_slice();
        }
        name && host
    }
}

/// Kills and reaps every process carrying `tag` (except this one); returns how many were
/// killed. Blocking: run it off the runtime.
pub(crate) fn kill_tagged(tag: &Tag) -> usize {
    let me = std::process::id();
    let deadline = Instant::now() + BOUND;
    let mut killed = 0;
    // Killed and not yet reaped, by pidfd: waiting on the pidfd reaps that process and never
    // another that reused its pid (the host's next child, whose status is not ours to take).
    let mut pending: HashMap<u32, OwnedFd> = HashMap::new();
    loop {
        let found: Vec<u32> = pids().filter(|&pid| pid != me && tag.carried_by(pid)).collect();
        if found.is_empty() {
            break;
        }
        for pid in found {
            let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else { continue };
            // Open first, check again, then signal the pidfd: a pid reused between the scan and
            // the open fails the second check, and one reused after the open is not this pidfd's.
            let Ok(pidfd) = rustix::process::pidfd_open(raw, PidfdFlags::empty()) else { continue };
            if !pending.contains_key(&pid)
                && tag.carried_by(pid)
                && rustix::process::pidfd_send_signal(&pidfd, Signal::KILL).is_ok()
            {
                killed += 1;
                pending.insert(pid, pidfd);
            }
        }
        reap(&mut pending);
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(TICK);
    }
    // Those whose parent was killed too are reparented here a moment later: reap them as well.
    let until = Instant::now() + Duration::from_millis(500);
    while !pending.is_empty() && Instant::now() < until {
        reap(&mut pending);
        std::thread::sleep(TICK);
    }
    killed
}

/// Reaps what of `pending` exited and is ours. One that is not (yet) ours stays: its parent,
/// killed too, leaves it to the host a moment later.
fn reap(pending: &mut HashMap<u32, OwnedFd>) {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    pending.retain(|_, pidfd| !matches!(rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options), Ok(Some(_))));
}

/// Every pid in `/proc`.
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
}
