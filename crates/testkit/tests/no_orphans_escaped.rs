//! Kill the host with SIGKILL while its children have grandchildren that left their process
//! group (their own group, as daemons make): the watchdog kills the host's cgroup, so they go
//! too. Skipped (after cleaning up) where no writable cgroup2 hierarchy exists.
//!
//! Like `no_orphans`, it makes its own process the subreaper of the tree and is alone in its
//! file, so that reaping orphans here cannot take another test's statuses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use testkit::{reap_orphans, running};

const HOST: &str = env!("CARGO_BIN_EXE_many-host");

#[test]
fn a_sigkilled_host_takes_down_descendants_that_left_their_process_group() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let mut host = Command::new(HOST)
        .args(["5", "escapee", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start many-host");
    // The children print their grandchild's pid on stdout, which the host logs on its stderr.
    let (tx, grandchildren) = std::sync::mpsc::channel();
    let log = host.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(pid) =
                line.split("| grandchild ").nth(1).and_then(|p| p.split_whitespace().next()?.parse::<u32>().ok())
            {
                let _ = tx.send(pid);
            }
        }
    });
    let mut pids = Vec::new();
    let mut cgroups = false;
    for line in BufReader::new(host.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        if line == "READY" {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["cgroups", yes] => cgroups = *yes == "true",
            ["child", _, child, "grandchild", _] => pids.push(child.parse::<u32>().expect("pid")),
            _ => {}
        }
    }
    // Not asserted before the host is killed: a failure must not leave the tree running.
    let reported: Vec<u32> = (0..5).map_while(|_| grandchildren.recv_timeout(Duration::from_secs(20)).ok()).collect();
    pids.extend(&reported);
    let killed_at = Instant::now();
    assert!(testkit::signal(host.id(), Signal::KILL), "kill -9 the host");
    let _ = host.wait();
    let mut left = pids.clone();
    while !left.is_empty() && killed_at.elapsed() < Duration::from_secs(1) {
        reap_orphans();
        left.retain(|&pid| running(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = killed_at.elapsed();
    for &pid in &left {
        testkit::signal(pid, Signal::KILL);
    }
    reap_orphans();
    assert_eq!(reported.len(), 5, "every child reported its grandchild: {reported:?}");
    if !cgroups {
        return testkit::unavailable(
            "no writable cgroup2 hierarchy here; escaped grandchildren are out of reach (cleaned up)",
        );
    }
    assert!(left.is_empty(), "still running {took:?} after the host was killed: {left:?}");
    eprintln!("5 children and 5 escaped grandchildren gone {took:?} after the host was killed");
}
