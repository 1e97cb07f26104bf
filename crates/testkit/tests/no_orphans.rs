//! Kill the host with SIGKILL: within one second every child and grandchild is gone.
//!
//! This test makes its own process the subreaper of the tree, so that orphans are reparented
//! here rather than to PID 1 and can be checked — and reaped — without depending on how the
//! machine's init behaves. It is alone in its file so that nothing else in this process is
//! affected by that.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use testkit::{reap_orphans, running};

const HOST: &str = env!("CARGO_BIN_EXE_many-host");

#[test]
fn a_sigkilled_host_leaves_no_process_of_its_tree_behind() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let mut host = Command::new(HOST)
        .args(["20", "plugin-grandchild", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start many-host");
    let mut pids = Vec::new();
    let mut runtime_dir = None;
    let lines = BufReader::new(host.stdout.take().expect("stdout")).lines();
    for line in lines.map_while(Result::ok) {
        if line == "READY" {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["host", _, "watchdog", watchdog] => pids.push(watchdog.parse::<u32>().expect("pid")),
            ["runtime", dir] => runtime_dir = Some(std::path::PathBuf::from(dir)),
            ["child", _, child, "grandchild", grandchild] => {
                pids.push(child.parse().expect("pid"));
                pids.push(grandchild.parse().expect("pid"));
            }
            _ => {}
        }
    }
    assert_eq!(pids.len(), 41, "watchdog + 20 children + 20 grandchildren: {pids:?}");
    assert!(pids.iter().all(|&pid| pid != 0 && running(pid)));

    let killed_at = Instant::now();
    assert!(testkit::signal(host.id(), Signal::KILL), "kill -9 the host");
    let _ = host.wait();
    let mut left: Vec<u32> = pids.clone();
    while !left.is_empty() && killed_at.elapsed() < Duration::from_secs(1) {
        reap_orphans();
        left.retain(|&pid| running(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = killed_at.elapsed();
    // Clean up whatever a failure left, before asserting.
    for &pid in &left {
        testkit::signal(pid, Signal::KILL);
    }
    reap_orphans();
    assert!(left.is_empty(), "still running {took:?} after the host was killed: {left:?}");
    eprintln!("the whole tree (41 processes) was gone {took:?} after the host was killed");
    // Plugins that saw their host die (parent-death signal re-armed as SIGTERM, then the
    // watchdog's SIGTERM) remove their own sockets, unless the watchdog's SIGKILL came first on a
    // loaded machine; either way the next host's start sweeps the dead host's runtime dir.
    let runtime_dir = runtime_dir.expect("runtime dir reported");
    // A killed host cannot remove its runtime dir itself; any host started meanwhile on this
    // machine (another test) may already have swept it, which is the behaviour under test too.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let next = runtime.block_on(async { warren::Host::builder().watchdog(false).build() }).expect("next host");
    assert!(!runtime_dir.exists(), "the next host swept {}", runtime_dir.display());
    drop(next);
}
