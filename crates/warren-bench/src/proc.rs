//! What `/proc` says about CPU time, memory and load.

use std::path::Path;

/// CPU time (user + kernel) of every live thread of `pid`, in ns, from
/// `/proc/PID/task/*/schedstat` (nanosecond resolution, unlike the 10 ms ticks of
/// `/proc/PID/stat`). Threads that have exited are not counted: read it over windows in which
/// the process keeps its threads.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .sum()
}

/// CPU time of this process, as [`process_cpu_ns`].
pub fn self_cpu_ns() -> u64 {
    process_cpu_ns(std::process::id())
}

/// Busy time of the whole machine, all CPUs together, in ns (from `/proc/stat`, 10 ms ticks):
/// everything but idle and iowait.
pub fn machine_busy_ns() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = text.lines().next() else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is already in user)
    let busy: u64 = fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy * 10_000_000
}

/// Resident memory of `pid` in KiB (`VmRSS`), if it exists.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Peak resident memory of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Minor page faults of `pid` so far, all its threads together (`minflt` of `/proc/PID/stat`):
/// the copy-on-write faults a process takes after a `fork` are counted here.
pub fn minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command: state ppid pgrp session tty_nr tpgid flags minflt.
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Whether `pid` still has an entry in the process table at all (a zombie counts).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    [it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN)]
}

/// Proportional and private resident memory of `pid` in KiB (`Pss`, and `Private_Clean` +
/// `Private_Dirty`, from `smaps_rollup`): what the process costs beyond the pages it shares
/// with others (libc, and the binary's text when several instances run).
pub fn pss_and_private_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("Pss:")?, field("Private_Clean:")? + field("Private_Dirty:")?))
}
