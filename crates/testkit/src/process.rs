//! Processes seen through `/proc`, by pid.

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};

/// Whether `pid` has a `/proc` entry. A zombie has one: it counts until someone reaps it.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        // The command name may contain spaces and parentheses: the fields start after the last ')'.
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The arguments a process was started with, space-separated; empty if it is gone.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " ").trim_end().to_owned())
        .unwrap_or_default()
}

/// Sends `signal` to `pid`; whether it was delivered (false for a pid that is gone or invalid).
pub fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid).ok().and_then(Pid::from_raw).is_some_and(|pid| kill_process(pid, signal).is_ok())
}

/// Reaps every child of this process that has exited, without blocking. A test that made itself
/// the subreaper of a tree calls it so that orphans reparented here do not stay zombies.
pub fn reap_orphans() {
    while let Ok(Some(_)) = waitid(WaitId::All, WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {}
}

/// Whether `pid`'s environment has `var=value` (a zombie's reads empty: it has not).
pub fn has_env(pid: u32, var: &str, value: &str) -> bool {
    let needle = format!("{var}={value}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
}

/// Every process whose environment has `var=value`. The processes of a tree inherit a variable
/// set on its root, so this finds the ones nobody reported too, even after they were reparented.
pub fn tagged(var: &str, value: &str) -> Vec<u32> {
    pids().filter(|&pid| has_env(pid, var, value)).collect()
}

/// Every pid in `/proc`.
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
}

/// Children of this process that exited and were never reaped.
pub fn zombies() -> Vec<u32> {
    let me = std::process::id();
    pids()
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // The command name may contain spaces and parentheses: the fields start after the last ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let mut fields = rest.split_whitespace();
            fields.next() == Some("Z") && fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(me)
        })
        .collect()
}
