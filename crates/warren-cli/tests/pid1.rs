//! warren as PID 1 of a fresh PID namespace (a container's entrypoint): it reaps the orphans
//! reparented to it, and SIGTERM stops every program through its trap and exits 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses its constants")]
mod common;
use common::{BOUND, WARREN};

/// A program whose grandchildren are orphaned (their parent, a subshell, exits at once) and
/// exit shortly after, over and over; its TERM trap leaves a file. Its health probe runs every
/// 50 ms beside them.
fn orphan_maker(dir: &Path, name: &str) -> String {
    let trap = dir.join(format!("trap-{name}"));
    format!(
        "[programs.{name}]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"trap 'touch {}; exit 0' TERM; while :; do (sleep 0.05 &); sleep 0.1; done\"]\nhealth = {{ exec = [\"true\"], interval = \"50ms\" }}\n",
        trap.display()
    )
}

/// `/proc/PID/stat`'s state and parent.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_ascii_whitespace();
    Some((fields.next()?.chars().next()?, fields.next()?.parse().ok()?))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn children_of(parent: u32) -> Vec<(u32, char)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| state_and_parent(pid).filter(|s| s.1 == parent).map(|s| (pid, s.0)))
        .collect()
}

/// Waits for `done`, polling, for at most `bound`.
fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

struct Namespace {
    unshare: Child,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Killing PID 1 of the namespace kills everything in it.
        for (pid, _) in children_of(self.unshare.id()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn as_pid_1_orphans_are_reaped_and_sigterm_runs_every_trap() {
    let probe = Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        return testkit::skip::unavailable("unshare --pid --fork --mount-proc needs root (or user namespaces)");
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let names = ["a", "b", "c"];
    let config: String = names.iter().map(|name| orphan_maker(dir.path(), name)).collect();
    std::fs::write(dir.path().join("warren.toml"), config).expect("write warren.toml");
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", WARREN, "up", "-f"])
        .arg(dir.path().join("warren.toml"))
        .current_dir(dir.path())
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("out")).expect("output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start unshare");
    let mut ns = Namespace { unshare };
    let mut warren = None;
    assert!(
        wait_until(BOUND, || {
            warren = children_of(ns.unshare.id()).first().map(|c| c.0);
            warren.is_some_and(|pid| children_of(pid).len() >= names.len())
        }),
        "warren did not start its programs as PID 1 of a new namespace"
    );
    let warren = warren.expect("warren's pid");
    // Let the programs orphan a few dozen grandchildren each.
    std::thread::sleep(Duration::from_secs(2));
    let zombies = || children_of(warren).into_iter().filter(|c| c.1 == 'Z').count();
    // A grandchild may be caught between its exit and its reaping: zero must come soon.
    let mut seen = usize::MAX;
    let none = wait_until(Duration::from_secs(2), || {
        seen = zombies();
        seen == 0
    });
    assert!(none, "{seen} zombie(s) reparented to warren are not reaped");

    assert!(Command::new("kill").args(["-TERM", &warren.to_string()]).status().is_ok_and(|s| s.success()));
    let mut exit = None;
    assert!(
        wait_until(BOUND, || {
            exit = ns.unshare.try_wait().ok().flatten();
            exit.is_some()
        }),
        "warren did not stop"
    );
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "warren's exit code after SIGTERM");
    for name in names {
        assert!(dir.path().join(format!("trap-{name}")).exists(), "{name}'s TERM trap did not run");
    }
    assert!(children_of(ns.unshare.id()).is_empty(), "something is left in the namespace");
    // The reaper took no exit status that warren waits for (a program's, a probe's).
    let out = std::fs::read_to_string(dir.path().join("out")).expect("warren's output");
    assert!(out.contains("a: stopped") && !out.contains("health check failed"), "{out}");
    drop(ns);
}
