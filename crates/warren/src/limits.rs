//! Resource limits and the user a child runs as: what a [`Spec`](crate::Spec) asks for, and how
//! limits are written into the child's cgroup (cgroup v2 `memory.max`, `cpu.max`, `pids.max`).

use std::fmt;
use std::path::Path;

/// Resource limits of a child and everything it starts, enforced by its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// `memory.max`, in bytes: past it the kernel reclaims, then OOM-kills within the cgroup.
    pub memory_max: Option<u64>,
    /// `cpu.max` as a percentage of one CPU (150 = one and a half CPUs).
    pub cpu_max: Option<u32>,
    /// `pids.max`: processes and threads; a `fork` past it fails with `EAGAIN`.
    pub pids_max: Option<u64>,
}

/// The cgroup period `cpu_max` is expressed in, in microseconds (the kernel's default).
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// The CPU time per period that `percent` of one CPU is, in microseconds.
pub(crate) fn cpu_quota_us(percent: u32) -> u64 {
    u64::from(percent) * CPU_PERIOD_US / 100
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_max.is_some() || self.cpu_max.is_some() || self.pids_max.is_some()
    }

    /// The cgroup controllers these limits need.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if self.memory_max.is_some() {
            needed.push("memory");
        }
        if self.cpu_max.is_some() {
            needed.push("cpu");
        }
        if self.pids_max.is_some() {
            needed.push("pids");
        }
        needed
    }

    /// Sets `controller`'s limit to `from`'s.
    fn take(&mut self, controller: &str, from: &Limits) {
        match controller {
            "memory" => self.memory_max = from.memory_max,
            "cpu" => self.cpu_max = from.cpu_max,
            "pids" => self.pids_max = from.pids_max,
            _ => {}
        }
    }

    /// The files and values to write in the child's cgroup.
    fn files(&self) -> Vec<(&'static str, String)> {
        let mut files = Vec::new();
        if let Some(bytes) = self.memory_max {
            files.push(("memory.max", bytes.to_string()));
            // No swap either: otherwise a limit only moves the excess to swap.
            files.push(("memory.swap.max", "0".to_owned()));
        }
        if let Some(percent) = self.cpu_max {
            files.push(("cpu.max", format!("{} {CPU_PERIOD_US}", cpu_quota_us(percent))));
        }
        if let Some(count) = self.pids_max {
            files.push(("pids.max", count.to_string()));
        }
        files
    }

    /// Writes the limits into the cgroup at `dir`; what could not be applied, and why.
    pub(crate) fn apply(&self, dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for (file, value) in self.files() {
            let path = dir.join(file);
            // memory.swap.max is missing where swap accounting is off: nothing to limit then.
            if file == "memory.swap.max" && !path.exists() {
                continue;
            }
            if let Err(err) = std::fs::write(&path, &value) {
                problems.push(format!("cannot write {value:?} to {}: {err}", path.display()));
            }
        }
        problems
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(bytes) = self.memory_max {
            parts.push(format!("memory_max {}", size(bytes)));
        }
        if let Some(percent) = self.cpu_max {
            parts.push(format!("cpu_max {percent}%"));
        }
        if let Some(count) = self.pids_max {
            parts.push(format!("pids_max {count}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A byte count as written in a config: the largest unit that divides it (`64M`, `1G`).
pub fn size(bytes: u64) -> String {
    for (unit, factor) in [("T", 1u64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= factor && bytes % factor == 0 {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// The user (and groups) a child runs as; only root may ask for one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The user's name, as configured (for messages and exports).
    pub user: String,
    /// The group's name when one was configured, else `None` (the user's primary group).
    pub group: Option<String>,
    /// The user's id.
    pub uid: u32,
    /// The primary group: the configured group's id, else the user's own.
    pub gid: u32,
    /// Supplementary groups: those the user is a member of, as `initgroups` would set them.
    pub groups: Vec<u32>,
}

/// Where the controllers of a child's limits are: cgroup2's where warren's cgroup can give
/// them to its children, else a cgroup v1 hierarchy's (a hybrid layout); why neither, for the
/// others.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    pub v2: Limits,
    pub v1: Limits,
    pub problems: Vec<String>,
}

/// Finds where each of `limits`' controllers can be had, enabling (v2) or creating (v1) what
/// is needed on first use.
pub(crate) fn route(
    cgroup: Option<&crate::cgroup::HostCgroup>,
    no_cgroup: Option<&str>,
    v1: &crate::cgroup_v1::V1Cgroups,
    limits: &Limits,
) -> Routes {
    let mut routes = Routes::default();
    let mut add = |problem: String| {
        if !routes.problems.contains(&problem) {
            routes.problems.push(problem);
        }
    };
    for controller in limits.controllers() {
        let v2_problem = match cgroup {
            Some(cgroups) => cgroups.enable(&[controller]).pop(),
            None => Some(no_cgroup.unwrap_or("warren cannot create cgroups here").to_owned()),
        };
        let Some(v2_problem) = v2_problem else {
            routes.v2.take(controller, limits);
            continue;
        };
        match v1.usable(controller) {
            Ok(()) => routes.v1.take(controller, limits),
            Err(v1_problem) => {
                add(v2_problem);
                add(v1_problem);
            }
        }
    }
    routes
}

/// Applies `spec`'s limits to its cgroups before it starts: those of cgroup2 controllers to
/// `cgroup`, the others to cgroups made in the v1 hierarchies (returned, for the child to join
/// before exec). Where they cannot be, the child runs without them (refusing to start it would
/// turn a missing controller into an outage): the host's owner says so once, through
/// [`Host::limits_unavailable`](crate::Host::limits_unavailable); here it is only logged at
/// debug level, as it repeats at every restart.
pub(crate) fn apply(
    ctx: &crate::start::Context<'_>,
    spec: &crate::Spec,
    cgroup: Option<&mut crate::cgroup::ChildCgroup>,
) -> Option<crate::cgroup_v1::V1Child> {
    let limits = &spec.limits;
    if !limits.any() {
        return None;
    }
    let Routes { v2, v1, mut problems } = route(ctx.cgroup, ctx.no_cgroup, ctx.v1, limits);
    if v2.any() {
        match cgroup {
            Some(cgroup) => problems.extend(cgroup.limit(&v2)),
            None => problems.push("it has no cgroup of its own".to_owned()),
        }
    }
    let v1 = v1.any().then(|| {
        let (child, v1_problems) = ctx.v1.child(spec.slot_name(), &v1);
        problems.extend(v1_problems);
        child
    });
    if !problems.is_empty() {
        tracing::debug!(child = %spec.name, "runs WITHOUT (some of) its limits ({limits}): {}", problems.join("; "));
    }
    v1
}

/// How many times the kernel OOM-killed in the cgroup at `dir` (`memory.events`' `oom_kill`).
pub(crate) fn oom_kills(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("memory.events"))
        .ok()
        .and_then(|events| {
            events.lines().find_map(|line| line.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(size(64 << 20), "64M");
        assert_eq!(size(1 << 30), "1G");
        assert_eq!(size(1536 << 10), "1536K");
        assert_eq!(size(1000), "1000");
    }

    /// A directory standing in for a cgroup: the kernel's files are plain files to the writer.
    #[test]
    fn limits_are_written_and_oom_kills_read_where_the_kernel_keeps_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits { memory_max: Some(64 << 20), cpu_max: Some(150), pids_max: Some(20) };
        assert_eq!(limits.apply(dir.path()), Vec::<String>::new());
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("pids.max"), "20");
        assert!(!dir.path().join("memory.swap.max").exists(), "no swap file where swap is not accounted");
        assert_eq!(oom_kills(dir.path()), 0, "no memory.events: no OOM kill");
        std::fs::write(dir.path().join("memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n").expect("events");
        assert_eq!(oom_kills(dir.path()), 1);
        let missing = dir.path().join("gone");
        let problems = limits.apply(&missing);
        assert_eq!(problems.len(), 3, "each file that cannot be written is named: {problems:?}");
        assert!(problems[0].contains("memory.max"), "{problems:?}");
    }

    #[test]
    fn cpu_percent_becomes_a_quota_per_period() {
        let limits = Limits { cpu_max: Some(50), ..Limits::default() };
        assert_eq!(limits.files(), vec![("cpu.max", "50000 100000".to_owned())]);
        assert_eq!(limits.to_string(), "cpu_max 50%");
    }
}
