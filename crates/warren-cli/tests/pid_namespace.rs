//! `pid_namespace = true`: the programs run in a PID namespace whose first process ends with
//! `warren up`, so that the kernel kills the whole tree even when `up` and its watchdog are
//! SIGKILLed at the same instant, with nobody left to kill anything.

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use std::time::{Duration, Instant};

use common::{BOUND, Up, alive, cmdline};
use rustix::process::Signal;

/// A program with a grandchild in its group (`sleep 3041`), one that escaped it with `setsid`
/// (`sleep 3042`), itself `sleep 3043`.
const FAMILY: &str = r#"
pid_namespace = true

[programs.family]
shell = "sleep 3041 & setsid -f sleep 3042; exec sleep 3043"
"#;

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// The pids of a process in each namespace it is in, outermost first.
fn ns_pids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap_or_default().to_owned();
    line.split_whitespace().filter_map(|n| n.parse().ok()).collect()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The family's `n` sleeps, once they all run.
fn family(up: &mut Up, n: usize) -> Vec<u32> {
    up.wait_event("family", "started", BOUND);
    up.wait_processes("sleep 304", n)
}

#[test]
fn killing_up_and_its_watchdog_at_once_leaves_nothing() {
    if !is_root() {
        return testkit::skip::unavailable("a PID namespace needs root");
    }
    let mut up = Up::start(FAMILY);
    let tree = family(&mut up, 3);
    let anchor = up.processes("").into_iter().find(|&pid| comm(pid) == "warren-pidns").expect("the namespace's init");
    let watchdog = up.processes("").into_iter().find(|&pid| comm(pid) == "warren-watchdog").expect("the watchdog");
    assert_eq!(ns_pids(anchor).last(), Some(&1), "the anchor is the namespace's init");
    let killed = Instant::now();
    assert!(testkit::signal(up.pid(), Signal::KILL) && testkit::signal(watchdog, Signal::KILL));
    let gone = testkit::wait_until(Duration::from_secs(3), || tree.iter().all(|&pid| !alive(pid)));
    let left: Vec<String> = tree.iter().filter(|&&pid| alive(pid)).map(|&pid| cmdline(pid)).collect();
    for &pid in &tree {
        testkit::signal(pid, Signal::KILL);
    }
    assert!(gone, "left {:?} after both were killed: {left:?}", killed.elapsed());
    eprintln!("up and watchdog killed at once: the whole tree gone {:?} after", killed.elapsed());
    // Nobody was left to remove the dead host's runtime directory.
    for base in ["/tmp".into(), std::env::var("XDG_RUNTIME_DIR").unwrap_or_default()] {
        let Ok(entries) = std::fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&format!("warren-{}-", up.pid())) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[test]
fn programs_in_the_namespace_run_and_stop_as_usual() {
    if !is_root() {
        return testkit::skip::unavailable("a PID namespace needs root");
    }
    // No escape from the group here: `down` would report (and kill) it, as without a namespace.
    let mut up = Up::start(&FAMILY.replace("setsid -f sleep 3042; ", ""));
    let tree = family(&mut up, 2);
    let row = up.row("family");
    let pid = u32::try_from(row["pid"].as_u64().expect("a pid")).expect("a pid");
    // Status shows the pid as the host sees it; inside, the program is numbered anew.
    let pids = ns_pids(pid);
    assert_eq!(pids.first(), Some(&pid), "{pids:?}");
    assert!(pids.len() >= 2 && pids.last() < Some(&10), "not in a namespace of its own: {pids:?}");
    up.warren(["restart", "family"]).assert().success();
    up.wait_events("family", "started", 2, BOUND);
    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0));
    assert!(tree.iter().all(|&pid| !alive(pid)), "the family outlived down");
    // The anchor, a fork of `up` that carries its tag, is gone and reaped too.
    up.assert_no_leftovers(BOUND);
}

#[test]
fn without_root_a_pid_namespace_is_refused_with_the_reason() {
    let nobody = (65534, 65534);
    if !is_root() {
        return testkit::skip::unavailable("running warren up as nobody needs root");
    }
    let mut up = Up::start_with(FAMILY, |command, dir| {
        std::os::unix::fs::chown(dir, Some(nobody.0), Some(nobody.1)).expect("chown the instance directory");
        std::os::unix::process::CommandExt::uid(command, nobody.0);
        std::os::unix::process::CommandExt::gid(command, nobody.1);
    });
    let status = up.wait_exit(BOUND);
    assert!(!status.success());
    let transcript = up.transcript();
    assert!(transcript.contains("PID namespace") && transcript.contains("root"), "{transcript}");
}
