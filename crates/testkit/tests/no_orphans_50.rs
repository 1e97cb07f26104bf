//! Kill a host of 50 plugins, each with a grandchild, with SIGKILL: within one second nothing of
//! its tree is left — not the 50 children, not the 50 grandchildren, not the watchdog.
//!
//! The same check as `no_orphans.rs` at a larger scale, and by two means: the pids the host
//! reported, and a scan of every process in `/proc` for a tag put in the host's environment,
//! which every process of the tree inherits (so a process the host never reported is found
//! too). Like `no_orphans.rs`, this test makes its process the subreaper of the tree, so orphans
//! come here rather than to PID 1 and are reaped; it is alone in its file so that nothing else
//! in this process is affected by that.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use testkit::{reap_orphans, running};

const HOST: &str = env!("CARGO_BIN_EXE_many-host");
const CHILDREN: usize = 50;
/// How long the host may take to start every child (debug build, two cores).
const START_BOUND: Duration = Duration::from_secs(60);
const GONE_WITHIN: Duration = Duration::from_secs(1);
const TAG_VAR: &str = "WARREN_TEST_TREE";

/// Every live process whose environment carries `TAG_VAR=tag`.
fn tagged(tag: &str) -> Vec<u32> {
    testkit::tagged(TAG_VAR, tag)
}

fn sigkill(pids: &[u32]) {
    for &pid in pids {
        testkit::signal(pid, Signal::KILL);
    }
}

#[test]
fn a_sigkilled_host_of_50_children_with_grandchildren_leaves_no_process_behind() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let tag = testkit::unique_tag();
    let mut host = Command::new(HOST)
        .args([CHILDREN.to_string().as_str(), "plugin-grandchild", "5000"])
        .env(TAG_VAR, &tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start many-host");
    let (tx, lines) = mpsc::channel();
    let stdout = host.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut pids = Vec::new();
    let started = Instant::now();
    loop {
        let Ok(line) = lines.recv_timeout(START_BOUND.saturating_sub(started.elapsed())) else {
            let tree = tagged(&tag);
            sigkill(&tree);
            let _ = host.kill();
            let _ = host.wait();
            reap_orphans();
            panic!("the host did not report READY within {START_BOUND:?}; killed its tree {tree:?}");
        };
        if line == "READY" {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["host", _, "watchdog", watchdog] => pids.push(watchdog.parse::<u32>().expect("pid")),
            ["child", _, child, "grandchild", grandchild] => {
                pids.push(child.parse().expect("pid"));
                pids.push(grandchild.parse().expect("pid"));
            }
            _ => {}
        }
    }
    eprintln!("{CHILDREN} children with grandchildren started in {:?}", started.elapsed());
    assert_eq!(pids.len(), 1 + 2 * CHILDREN, "watchdog + children + grandchildren: {pids:?}");
    assert!(pids.iter().all(|&pid| pid != 0 && running(pid)), "{pids:?}");
    let mut tree = tagged(&tag);
    tree.sort_unstable();
    let mut expected: Vec<u32> = pids.iter().copied().chain([host.id()]).collect();
    expected.sort_unstable();
    assert_eq!(tree, expected, "the tag finds exactly the host and the processes it reported");

    let killed_at = Instant::now();
    assert!(testkit::signal(host.id(), Signal::KILL), "kill -9 the host");
    let _ = host.wait();
    let mut left_pids = pids.clone();
    let mut left_tagged = tagged(&tag);
    while (!left_pids.is_empty() || !left_tagged.is_empty()) && killed_at.elapsed() < GONE_WITHIN {
        reap_orphans();
        left_pids.retain(|&pid| running(pid));
        left_tagged = tagged(&tag);
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = killed_at.elapsed();
    // Clean up whatever a failure left, before asserting.
    sigkill(&left_pids);
    sigkill(&left_tagged);
    reap_orphans();
    eprintln!("after the host's SIGKILL: {} left at {took:?}", left_pids.len() + left_tagged.len());
    assert!(left_pids.is_empty(), "still running {took:?} after the host was killed: {left_pids:?}");
    assert!(left_tagged.is_empty(), "processes of the tree still running {took:?} after: {left_tagged:?}");
}
