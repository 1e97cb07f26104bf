//! A cgroup (v2) per child, so that a stop reaches every descendant — also one that left the
//! child's process group (`setsid`, `setpgid`: daemons do it on purpose), which no group
//! signal can reach.
//!
//! The host makes `warren-<pid>-<random>` under its own cgroup, and one directory in it per
//! child. The child is created in its cgroup (`sys::spawn`: clone3 with `CLONE_INTO_CGROUP`;
//! where that is refused it joins through the cgroup's `cgroup.procs` before it execs), so it
//! and everything it ever starts are in it, with no window. When the child's leader has exited
//! and its group is settled, what is left in the cgroup escaped the group: it is killed
//! (`cgroup.kill`) and reaped. If the host dies, the watchdog kills the host's whole cgroup.
//! Where no writable cgroup2 hierarchy exists (no cgroup2 mounted, no delegation to this
//! user), warren works as before, with process groups only.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::sys;

const PREFIX: &str = "warren-";

/// The host's cgroup; removed when the host ends.
#[derive(Debug)]
pub(crate) struct HostCgroup {
    /// warren's own cgroup, which the host's is made in.
    own: PathBuf,
    dir: PathBuf,
    next: AtomicU64,
    /// Controllers asked for so far: enabled, or why not.
    controllers: Mutex<HashMap<&'static str, Result<(), String>>>,
}

impl HostCgroup {
    /// Makes the host's cgroup, or says why it cannot (then warren uses process groups only).
    pub fn create() -> Result<HostCgroup, String> {
        let attempt = || -> io::Result<HostCgroup> {
            let own = own_cgroup_dir()?;
            sweep_stale(&own);
            let dir = own.join(format!("{PREFIX}{}-{:06x}", sys::current_pid(), fastrand::u32(..0x100_0000)));
            std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
            // Only a cgroup that can kill at once is worth having (cgroup.kill: Linux 5.14).
            if !dir.join("cgroup.kill").exists() {
                let _ = std::fs::remove_dir(&dir);
                return Err(io::Error::new(io::ErrorKind::Unsupported, "no cgroup.kill (Linux before 5.14)"));
            }
            Ok(HostCgroup { own, dir, next: AtomicU64::new(0), controllers: Mutex::default() })
        };
        match attempt() {
            Ok(cgroup) => {
                debug!("children's cgroups under {}", cgroup.dir.display());
                Ok(cgroup)
            }
            Err(err) => {
                debug!("no cgroup for children ({err}); a descendant that leaves its process group escapes a stop");
                Err(format!("warren cannot create cgroups here ({err})"))
            }
        }
    }

    /// Enables each of `controllers` for the children's cgroups, once (in warren's own cgroup's
    /// `cgroup.subtree_control`, then in the host's); why those that cannot be are missing.
    /// Done only when a child asks for a limit: enabling a controller changes how the system
    /// shares that resource among warren's siblings too.
    pub fn enable(&self, controllers: &[&'static str]) -> Vec<String> {
        let mut known = self.controllers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut problems = Vec::new();
        for &controller in controllers {
            let outcome = known.entry(controller).or_insert_with(|| self.enable_one(controller));
            if let Err(why) = outcome {
                problems.push(why.clone());
            }
        }
        problems
    }

    fn enable_one(&self, controller: &str) -> Result<(), String> {
        let available = std::fs::read_to_string(self.own.join("cgroup.controllers")).unwrap_or_default();
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(format!(
                "the {controller} controller is not available to warren's cgroup {} (not in its cgroup.controllers)",
                self.own.display()
            ));
        }
        for dir in [&self.own, &self.dir] {
            let file = dir.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&file).unwrap_or_default();
            if enabled.split_whitespace().any(|c| c == controller) {
                continue;
            }
            std::fs::write(&file, format!("+{controller}"))
                .map_err(|err| format!("cannot enable the {controller} controller in {}: {err}", file.display()))?;
        }
        Ok(())
    }

    /// The cgroup an earlier image of this process made (a hand-over), with the number its
    /// next child's cgroup takes.
    pub fn adopt(dir: PathBuf, next: u64) -> io::Result<HostCgroup> {
        if !dir.join("cgroup.kill").exists() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a cgroup", dir.display())));
        }
        let own = dir.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
        Ok(HostCgroup { own, dir, next: AtomicU64::new(next), controllers: Mutex::default() })
    }

    /// Its directory and its next child's number, for a hand-over.
    pub fn handed_over(&self) -> (PathBuf, u64) {
        (self.dir.clone(), self.next.load(Ordering::Relaxed))
    }

    /// A cgroup for one child of `name`.
    pub fn child(&self, name: &str) -> io::Result<ChildCgroup> {
        let clean: String = name
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let dir = self.dir.join(format!("{clean}-{}", self.next.fetch_add(1, Ordering::Relaxed)));
        std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
        let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
        let opened =
            rustix::fs::open(&dir, flags, rustix::fs::Mode::empty()).map_err(io::Error::from).and_then(|dir_fd| {
                let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
                Ok((dir_fd, OwnedFd::from(procs)))
            });
        match opened {
            Ok((dir_fd, procs)) => Ok(ChildCgroup { dir, dir_fd, procs, memory_max: None }),
            Err(err) => {
                let _ = std::fs::remove_dir(&dir);
                Err(err)
            }
        }
    }

    /// The file the watchdog writes to kill every child's cgroup at once.
    pub fn kill_file(&self) -> Option<CString> {
        CString::new(self.dir.join("cgroup.kill").as_os_str().as_bytes()).ok()
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

/// One child's cgroup; removed once the child and all it started are gone.
#[derive(Debug)]
pub(crate) struct ChildCgroup {
    dir: PathBuf,
    /// What the child is created in (clone3's CLONE_INTO_CGROUP).
    dir_fd: OwnedFd,
    /// Open before the child starts, which writes "0" to it to join where it could not be
    /// created in the cgroup.
    procs: OwnedFd,
    /// The memory limit written to it, to tell an OOM kill from another SIGKILL.
    memory_max: Option<u64>,
}

impl ChildCgroup {
    /// A child's cgroup an earlier image of this process made (a hand-over).
    pub fn adopt(dir: PathBuf, memory_max: Option<u64>) -> io::Result<ChildCgroup> {
        let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
        let dir_fd = rustix::fs::open(&dir, flags, rustix::fs::Mode::empty())?;
        let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
        Ok(ChildCgroup { dir, dir_fd, procs: OwnedFd::from(procs), memory_max })
    }

    /// The memory limit written to it, for a hand-over.
    pub fn memory_max(&self) -> Option<u64> {
        self.memory_max
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `limits` into this cgroup; what could not be applied, and why.
    pub fn limit(&mut self, limits: &crate::Limits) -> Vec<String> {
        let problems = limits.apply(&self.dir);
        if problems.is_empty() {
            self.memory_max = limits.memory_max;
        }
        problems
    }

    /// The memory limit, if the kernel OOM-killed in this cgroup under it.
    pub fn out_of_memory(&self) -> Option<u64> {
        self.memory_max.filter(|_| crate::limits::oom_kills(&self.dir) > 0)
    }

    pub fn dir_fd(&self) -> RawFd {
        self.dir_fd.as_raw_fd()
    }

    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Kills and reaps what is left in the cgroup; how many processes that was. Called once
    /// the child's leader is reaped and its group settled, so anything left escaped the group.
    pub async fn settle(&self) -> usize {
        let members = self.members();
        if members.is_empty() {
            return 0;
        }
        if let Err(err) = std::fs::write(self.dir.join("cgroup.kill"), "1") {
            debug!("cgroup.kill in {}: {err}; killing one by one", self.dir.display());
            for &pid in &members {
                let _ = sys::kill_process(pid, crate::Signal::KILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.populated() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Those whose parent died were reparented to the host (its subreaper); the others'
        // parents were killed too, so they come to the host in turn. Reap what is ours.
        for pid in &members {
            sys::reap_if_exited(*pid);
        }
        members.len()
    }

    fn members(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|events| events.lines().any(|line| line == "populated 1"))
            .unwrap_or(false)
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir(&self.dir) {
            debug!("cannot remove cgroup {}: {err}", self.dir.display());
        }
    }
}

/// This process's cgroup directory in the cgroup2 hierarchy.
fn own_cgroup_dir() -> io::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    // Fields: id parent major:minor root mount-point options ... - fstype source super-options
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            (after.split_whitespace().next()? == "cgroup2").then(|| before.split_whitespace().nth(4))?
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 hierarchy mounted"))?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")?;
    let own = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in a cgroup2 hierarchy"))?;
    Ok(Path::new(mount).join(own.trim_start_matches('/')))
}

/// Removes the cgroups of hosts that died without removing theirs (their children were killed
/// by the watchdog; the directories stayed).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix(PREFIX)).and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if pid.0.parse::<u32>().is_ok_and(|pid| pid != sys::current_pid() && !sys::process_exists(pid)) {
            let dir = entry.path();
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            remove_tree(&dir);
        }
    }
}

/// Removes a cgroup and the cgroups in it (empty ones only: the kernel refuses the others).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    if let Err(err) = std::fs::remove_dir(dir) {
        debug!("cannot remove cgroup {}: {err}", dir.display());
    }
}
