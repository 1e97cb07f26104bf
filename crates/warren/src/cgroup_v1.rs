//! Limits through cgroup v1 hierarchies, where the memory, cpu or pids controller is not
//! cgroup2's: a hybrid layout (RHEL 8, Ubuntu 20.04, many container hosts) mounts cgroup2
//! without them and gives each to a v1 hierarchy of its own.
//!
//! Mirrors `cgroup.rs`: on first need of a controller the host makes `warren-<pid>-<random>`
//! under its own cgroup in that controller's hierarchy, and one directory in it per child that
//! asks for a limit of that controller. The limit is written before the child starts; the child
//! joins the directory through its `cgroup.procs`, opened beforehand, before it execs
//! (`sys::spawn`), so it never runs outside. Once the child and what it started are gone the
//! directory is removed; the host's goes when the host ends. v1 has no `cgroup.kill`: what is
//! left in a directory is killed pid by pid, from its `cgroup.procs`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::Limits;
use crate::sys;

const PREFIX: &str = "warren-";

/// How long a directory whose processes are gone may refuse its removal (the kernel finishes
/// their exit asynchronously), and how long what is killed in it may take to go.
const SETTLE: Duration = Duration::from_secs(2);

/// The host's directories in the v1 hierarchies, made on first need; removed when it ends.
#[derive(Debug)]
pub(crate) struct V1Cgroups {
    /// `warren-<pid>-<random>`: the host's directory's name in every hierarchy.
    name: String,
    next: AtomicU64,
    /// Per controller: the host's directory in its hierarchy, or why there is none.
    hosts: Mutex<HashMap<&'static str, Result<HostDir, String>>>,
}

impl V1Cgroups {
    pub fn new() -> V1Cgroups {
        let name = format!("{PREFIX}{}-{:06x}", sys::current_pid(), fastrand::u32(..0x100_0000));
        V1Cgroups { name, next: AtomicU64::new(0), hosts: Mutex::default() }
    }

    /// Whether `controller` can be used through a v1 hierarchy here, or why not. The first
    /// call makes the host's directory in that hierarchy.
    pub fn usable(&self, controller: &'static str) -> Result<(), String> {
        self.host_dir(controller).map(drop)
    }

    fn host_dir(&self, controller: &'static str) -> Result<PathBuf, String> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let host = hosts.entry(controller).or_insert_with(|| HostDir::create(controller, &self.name));
        host.as_ref().map(|host| host.dir.clone()).map_err(Clone::clone)
    }

    /// One child's cgroups for `limits` (those of the controllers given to v1), named after
    /// `name`; with what could not be applied, and why. A controller that fails has no
    /// directory: the child runs without that limit (the caller says so).
    pub fn child(&self, name: &str, limits: &Limits) -> (V1Child, Vec<String>) {
        let mut child = V1Child { parts: Vec::new(), memory_max: None };
        let mut problems = Vec::new();
        let leaf = format!("{}-{}", clean(name), self.next.fetch_add(1, Ordering::Relaxed));
        for controller in limits.controllers() {
            let made = self.host_dir(controller).and_then(|host| Part::create(controller, &host.join(&leaf), limits));
            match made {
                Ok(part) => {
                    if controller == "memory" {
                        child.memory_max = limits.memory_max;
                    }
                    child.parts.push(part);
                }
                Err(why) => problems.push(why),
            }
        }
        (child, problems)
    }
}

/// The host's directory in one hierarchy.
#[derive(Debug)]
struct HostDir {
    dir: PathBuf,
}

impl HostDir {
    fn create(controller: &'static str, name: &str) -> Result<HostDir, String> {
        let own = own_dir(controller)?;
        sweep_stale(&own);
        let dir = own.join(name);
        std::fs::DirBuilder::new().mode(0o755).create(&dir).map_err(|err| {
            format!("cannot create a cgroup in the cgroup v1 {controller} hierarchy ({}): {err}", dir.display())
        })?;
        let host = HostDir { dir };
        // A hierarchy without the file the limit goes in (cpu without CFS bandwidth control).
        for (file, _) in files(controller, &Limits::default()) {
            if !file.starts_with("memory.memsw.") && !host.dir.join(file).exists() {
                return Err(format!("the cgroup v1 {controller} hierarchy has no {file} here"));
            }
        }
        debug!("children's cgroup v1 {controller} cgroups under {}", host.dir.display());
        Ok(host)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        // Children still running when the host ends were killed by their parent-death signal;
        // their directories may take a moment to empty.
        remove_tree(&self.dir, Instant::now() + SETTLE);
    }
}

/// A child's directory in one hierarchy.
#[derive(Debug)]
struct Part {
    dir: PathBuf,
    controller: &'static str,
    /// Open before the child starts, which writes "0" to it to join.
    procs: OwnedFd,
}

impl Part {
    fn create(controller: &'static str, dir: &Path, limits: &Limits) -> Result<Part, String> {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(|err| format!("cannot create the cgroup {}: {err}", dir.display()))?;
        let opened = write_limits(controller, dir, limits).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|err| format!("cannot open {}: {err}", dir.join("cgroup.procs").display()))
        });
        match opened {
            Ok(procs) => Ok(Part { dir: dir.to_owned(), controller, procs: OwnedFd::from(procs) }),
            Err(why) => {
                let _ = std::fs::remove_dir(dir);
                Err(why)
            }
        }
    }
}

/// A child's cgroups in the v1 hierarchies; removed by [`remove`](Self::remove) once it and
/// all it started are gone.
#[derive(Debug)]
pub(crate) struct V1Child {
    parts: Vec<Part>,
    /// The memory limit written, to tell an OOM kill from another SIGKILL.
    memory_max: Option<u64>,
}

impl V1Child {
    /// Whether the child has any v1 cgroup to join.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The `cgroup.procs` descriptors the child writes "0" to before exec.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.parts.iter().map(|part| part.procs.as_raw_fd()).collect()
    }

    /// The memory limit, if the kernel OOM-killed in the child's memory cgroup under it.
    pub fn out_of_memory(&self) -> Option<u64> {
        let part = self.parts.iter().find(|part| part.controller == "memory")?;
        self.memory_max.filter(|_| oom_killed(&part.dir))
    }

    /// Kills and reaps what is left in the child's cgroups; how many processes that was.
    /// Called once the child's leader is reaped and its group settled (where it has no
    /// cgroup2 cgroup to settle), so anything left escaped the group.
    pub async fn settle(&self) -> usize {
        let Some(part) = self.parts.first() else { return 0 };
        let members = members(&part.dir);
        for &pid in &members {
            let _ = sys::kill_process(pid, crate::Signal::KILL);
        }
        let deadline = Instant::now() + SETTLE;
        while !self::members(&part.dir).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for &pid in &members {
            sys::reap_if_exited(pid);
        }
        members.len()
    }

    /// Removes the child's cgroups, retrying (bounded) while the kernel still counts exiting
    /// processes in them.
    pub async fn remove(mut self) {
        let deadline = Instant::now() + SETTLE;
        for part in std::mem::take(&mut self.parts) {
            loop {
                match std::fs::remove_dir(&part.dir) {
                    Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(err) => break debug!("cannot remove cgroup {}: {err}", part.dir.display()),
                    Ok(()) => break,
                }
            }
        }
    }
}

impl Drop for V1Child {
    fn drop(&mut self) {
        // Not removed through `remove` (a spawn that failed, a runtime shut down): one try; the
        // host's directory retries when the host ends.
        for part in &self.parts {
            let _ = std::fs::remove_dir(&part.dir);
        }
    }
}

/// The files a controller's limit is written to, in order, with their values: the memory
/// limit before the memory+swap one (the kernel wants memsw >= the limit), the period before
/// the quota. Limits not set give their files with empty values (to check they exist).
fn files(controller: &str, limits: &Limits) -> Vec<(&'static str, String)> {
    let value = |v: Option<String>| v.unwrap_or_default();
    match controller {
        "memory" => vec![
            ("memory.limit_in_bytes", value(limits.memory_max.map(|b| b.to_string()))),
            // Swap too: otherwise a limit only moves the excess to swap.
            ("memory.memsw.limit_in_bytes", value(limits.memory_max.map(|b| b.to_string()))),
        ],
        "cpu" => vec![
            ("cpu.cfs_period_us", value(limits.cpu_max.map(|_| crate::limits::CPU_PERIOD_US.to_string()))),
            ("cpu.cfs_quota_us", value(limits.cpu_max.map(|p| crate::limits::cpu_quota_us(p).to_string()))),
        ],
        "pids" => vec![("pids.max", value(limits.pids_max.map(|n| n.to_string())))],
        _ => Vec::new(),
    }
}

fn write_limits(controller: &str, dir: &Path, limits: &Limits) -> Result<(), String> {
    for (file, value) in files(controller, limits) {
        let path = dir.join(file);
        // memory.memsw.* is missing where swap accounting is off: no swap to limit then.
        if file.starts_with("memory.memsw.") && !path.exists() {
            continue;
        }
        std::fs::write(&path, &value).map_err(|err| format!("cannot write {value:?} to {}: {err}", path.display()))?;
    }
    Ok(())
}

/// Whether the kernel OOM-killed in the memory cgroup at `dir`: `memory.oom_control`'s
/// `oom_kill` (Linux 4.13); before it, whether the limit was ever hit (`memory.failcnt`), which
/// the caller only asks about a child ended by SIGKILL.
pub(crate) fn oom_killed(dir: &Path) -> bool {
    let count = |file: &str, key: Option<&str>| {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        match key {
            Some(key) => text.lines().find_map(|line| line.strip_prefix(key)?.trim().parse::<u64>().ok()),
            None => text.trim().parse::<u64>().ok(),
        }
    };
    match count("memory.oom_control", Some("oom_kill ")) {
        Some(kills) => kills > 0,
        None => count("memory.failcnt", None).is_some_and(|hits| hits > 0),
    }
}

/// This process's cgroup directory in the v1 hierarchy that holds `controller`.
fn own_dir(controller: &str) -> Result<PathBuf, String> {
    let has = |list: &str| list.split(',').any(|c| c == controller);
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|err| format!("/proc/self/mountinfo: {err}"))?;
    // Fields: id parent major:minor root mount-point options ... - fstype source super-options
    let (root, mount) = mountinfo
        .lines()
        .find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut after = after.split_whitespace();
            let (fstype, options) = (after.next()?, after.nth(1)?);
            let mut before = before.split_whitespace().skip(3);
            (fstype == "cgroup" && has(options)).then_some((before.next()?, before.next()?))
        })
        .ok_or_else(|| format!("no cgroup v1 hierarchy holds the {controller} controller"))?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|err| format!("/proc/self/cgroup: {err}"))?;
    // Lines: hierarchy-id:controller-list:path
    let own = cgroups
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, list, path) = (fields.next()?, fields.next()?, fields.next()?);
            has(list).then_some(path)
        })
        .ok_or_else(|| format!("warren is in no cgroup of the v1 {controller} hierarchy"))?;
    // A mount of a subtree (a container's) shows the part below its root.
    let below = Path::new(own).strip_prefix(root).unwrap_or(Path::new(own));
    Ok(Path::new(mount).join(below.to_string_lossy().trim_start_matches('/')))
}

fn clean(name: &str) -> String {
    name.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes the directories of hosts that died without removing theirs, killing what is left
/// in them (those hosts' children, whose watchdog could not reach what left their groups).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, _)) = name.to_str().and_then(|name| name.strip_prefix(PREFIX)).and_then(|r| r.split_once('-'))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok_and(|pid| pid != sys::current_pid() && !sys::process_exists(pid)) {
            // Briefly: a directory whose processes this process cannot see (another pid
            // namespace's) never empties, and every start would wait for it.
            remove_tree(&entry.path(), Instant::now() + Duration::from_millis(200));
        }
    }
}

/// Removes a directory and those in it, killing the processes left in them and retrying until
/// `deadline` while they go.
fn remove_tree(dir: &Path, deadline: Instant) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_tree(&entry.path(), deadline);
            }
        }
    }
    loop {
        for pid in members(dir) {
            let _ = sys::kill_process(pid, crate::Signal::KILL);
        }
        match std::fs::remove_dir(dir) {
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => break debug!("cannot remove cgroup {}: {err}", dir.display()),
            Ok(()) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A directory standing in for a cgroup: the kernel's files are plain files to the writer.
    #[test]
    fn limits_go_to_the_v1_files_and_oom_kills_are_read_from_oom_control() {
        let dir = tempfile::tempdir().expect("tempdir");
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        let limits = Limits { memory_max: Some(64 << 20), cpu_max: Some(150), pids_max: Some(20) };
        for controller in ["memory", "cpu", "pids"] {
            assert_eq!(write_limits(controller, dir.path(), &limits), Ok(()));
        }
        assert_eq!(read("memory.limit_in_bytes"), "67108864");
        assert!(!dir.path().join("memory.memsw.limit_in_bytes").exists(), "no memsw file where swap is not accounted");
        std::fs::write(dir.path().join("memory.memsw.limit_in_bytes"), "").expect("memsw");
        assert_eq!(write_limits("memory", dir.path(), &limits), Ok(()));
        assert_eq!(read("memory.memsw.limit_in_bytes"), "67108864", "swap cannot dodge the limit");
        assert_eq!((read("cpu.cfs_period_us").as_str(), read("cpu.cfs_quota_us").as_str()), ("100000", "150000"));
        assert_eq!(read("pids.max"), "20");

        assert!(!oom_killed(dir.path()), "no oom_control, no failcnt: no OOM kill");
        std::fs::write(dir.path().join("memory.failcnt"), "3\n").expect("failcnt");
        assert!(oom_killed(dir.path()), "before Linux 4.13, the limit hit stands for it");
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
            .expect("oom_control");
        assert!(!oom_killed(dir.path()), "the counter, where there is one, decides");
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
            .expect("oom_control");
        assert!(oom_killed(dir.path()));

        let missing = dir.path().join("gone");
        let problem = write_limits("pids", &missing, &limits).expect_err("no such cgroup");
        assert!(problem.contains("pids.max"), "the file is named: {problem}");
    }

    /// As root where memory, cpu and pids are v1 hierarchies (a hybrid layout): the child is in
    /// its three cgroups when it runs (`cat` reads its own `/proc/self/cgroup`), they hold its
    /// limits, and nothing is left once it and the host's directories are gone.
    #[test]
    fn a_child_joins_its_v1_cgroups_before_exec_and_they_are_removed() {
        let cgroups = V1Cgroups::new();
        let controllers = ["memory", "cpu", "pids"];
        if let Some(why) = controllers.iter().find_map(|c| cgroups.usable(c).err()) {
            eprintln!("skipped: {why}");
            return;
        }
        let limits = Limits { memory_max: Some(64 << 20), cpu_max: Some(50), pids_max: Some(20) };
        let (child, problems) = cgroups.child("v1 test", &limits);
        assert_eq!(problems, Vec::<String>::new());
        let dirs: Vec<PathBuf> = child.parts.iter().map(|part| part.dir.clone()).collect();
        let hosts: Vec<PathBuf> = dirs.iter().filter_map(|dir| dir.parent().map(Path::to_path_buf)).collect();
        assert_eq!(dirs.len(), 3);
        let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert_eq!(read(&dirs[0], "memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(read(&dirs[1], "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(read(&dirs[2], "pids.max").trim(), "20");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let spawner = crate::spawner::Spawner::start(false).expect("spawner");
            let mut command = crate::spawner::Command::new("cat");
            command.args(["/proc/self/cgroup"]).join_cgroups(child.procs_fds());
            let mut process = spawner.spawn(&command).await.expect("spawn");
            let mut out = String::new();
            process.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("read");
            assert!(process.wait().await.expect("wait").success(), "{out}");
            for controller in controllers {
                // Lines: hierarchy-id:controller-list:path
                let path = out
                    .lines()
                    .filter_map(|line| line.split_once(':')?.1.split_once(':'))
                    .find_map(|(list, path)| list.split(',').any(|c| c == controller).then_some(path))
                    .unwrap_or_else(|| panic!("no {controller} line in {out}"));
                assert!(path.ends_with("/v1_test-0"), "in its {controller} cgroup: {out}");
            }
            assert_eq!(child.settle().await, 0, "nothing left behind by cat");
            assert_eq!(child.out_of_memory(), None, "cat was not OOM-killed");
            child.remove().await;
        });
        assert!(dirs.iter().all(|dir| !dir.exists()), "the child's cgroups are removed: {dirs:?}");
        drop(cgroups);
        assert!(hosts.iter().all(|dir| !dir.exists()), "the host's cgroups are removed: {hosts:?}");
    }

    /// A host killed before it could remove its directories: the next host's first use of
    /// the hierarchy removes them.
    #[test]
    fn a_dead_hosts_v1_cgroups_are_swept() {
        let own = match own_dir("pids") {
            Ok(own) => own,
            Err(why) => return eprintln!("skipped: {why}"),
        };
        let mut gone = std::process::Command::new("true").spawn().expect("spawn true");
        let dead = gone.id();
        gone.wait().expect("wait");
        let stale = own.join(format!("{PREFIX}{dead}-abcdef"));
        if let Err(err) = std::fs::create_dir_all(stale.join("left-0")) {
            return eprintln!("skipped: cannot create cgroups in the pids hierarchy ({err})");
        }
        let cgroups = V1Cgroups::new();
        assert_eq!(cgroups.usable("pids"), Ok(()));
        assert!(!stale.exists(), "the dead host's cgroups are removed: {}", stale.display());
    }

    /// A `cgroup.procs` that refuses the child (here a descriptor not open for writing): the
    /// child does not run, and the error says why.
    #[test]
    fn a_child_that_cannot_join_its_v1_cgroup_is_not_started() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let unwritable = std::fs::File::open("/dev/null").expect("open /dev/null");
        let marker = tempfile::tempdir().expect("tempdir");
        let ran = marker.path().join("ran");
        runtime.block_on(async {
            let spawner = crate::spawner::Spawner::start(false).expect("spawner");
            let mut command = crate::spawner::Command::new("touch");
            command.args([&ran]).join_cgroups([unwritable.as_raw_fd()]);
            let Err(err) = spawner.spawn(&command).await else { panic!("the spawn fails") };
            assert!(err.get_ref().is_some_and(|inner| inner.is::<sys::CgroupJoinError>()), "{err}");
            assert!(err.to_string().contains("cannot join its cgroup"), "{err}");
        });
        assert!(!ran.exists(), "the program never ran");
    }
}
