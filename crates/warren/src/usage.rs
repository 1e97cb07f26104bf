//! What a child's whole tree uses: CPU time and resident memory. From its cgroup where it has
//! one — every process it ever started is in it, and the CPU time of those that ended is
//! still counted — else from the members of its process group, found in `/proc`.

use std::path::Path;
use std::time::Duration;

/// CPU time and memory of a child and everything it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU time used so far (user and system).
    pub cpu: Duration,
    /// Resident memory of its live processes, summed (shared pages count once per process,
    /// as `ps` shows them).
    pub rss_bytes: u64,
    /// How many processes it has now.
    pub processes: usize,
}

/// The usage of the processes in the cgroup at `dir`; `None` if it cannot be read.
pub(crate) fn of_cgroup(dir: &Path) -> Option<Usage> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    let members: Vec<u32> = procs.lines().filter_map(|line| line.trim().parse().ok()).collect();
    let mut usage = sum(members.iter().filter_map(|&pid| stat(pid)).map(|(_, usage)| usage));
    // cpu.stat is there without the cpu controller; it counts processes that have ended too.
    let cpu_stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let micros = cpu_stat.lines().find_map(|line| line.strip_prefix("usage_usec ")?.trim().parse().ok())?;
    usage.cpu = Duration::from_micros(micros);
    Some(usage)
}

/// The usage of the live processes of process group `pgid`.
pub(crate) fn of_group(pgid: u32) -> Usage {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Usage::default() };
    let members = entries.flatten().filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
    sum(members.filter_map(stat).filter(|(group, _)| *group == pgid).map(|(_, usage)| usage))
}

fn sum(each: impl Iterator<Item = Usage>) -> Usage {
    each.fold(Usage::default(), |total, one| Usage {
        cpu: total.cpu + one.cpu,
        rss_bytes: total.rss_bytes + one.rss_bytes,
        processes: total.processes + one.processes,
    })
}

/// A process's group and usage, from `/proc/PID/stat`; `None` once it is gone.
fn stat(pid: u32) -> Option<(u32, Usage)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
    // Numbered from the state (field 3 of proc(5)): pgrp 5, utime 14, stime 15, rss 24.
    let (pgrp, utime, stime, rss) = (field(2)?, field(11)?, field(12)?, field(21)?);
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let cpu = Duration::from_nanos((utime + stime).saturating_mul(1_000_000_000) / ticks);
    let rss_bytes = rss.saturating_mul(rustix::param::page_size() as u64);
    Some((u32::try_from(pgrp).ok()?, Usage { cpu, rss_bytes, processes: 1 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_group_uses_memory() {
        let me = std::process::id();
        let (group, usage) = stat(me).expect("our own stat");
        assert!(usage.rss_bytes > 0 && usage.processes == 1, "{usage:?}");
        let total = of_group(group);
        assert!(total.rss_bytes >= usage.rss_bytes && total.processes >= 1, "{total:?}");
    }
}
