//! A host hands its children over to a new image of itself across `exec` (docs/UPGRADE.md):
//! five times in a row while a child floods numbered lines — same pids, every line once and in
//! order, the plugin answering after each; a hand-over to a missing binary fails and changes
//! nothing; and `kill -9` of the last image still leaves no process behind.
//!
//! The kill test makes this process the subreaper of the tree (as tests/no_orphans.rs does),
//! so orphans come here and can be checked and reaped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use testkit::{reap_orphans, running};

const HOST: &str = env!("CARGO_BIN_EXE_upgrade-host");
const CHILD: &str = env!("CARGO_BIN_EXE_test-child");
const BOUND: Duration = Duration::from_secs(60);

fn start(rounds: &str, lines: &str, end: &str, main_thread: bool) -> Child {
    let mut command = Command::new(HOST);
    if main_thread {
        command.env("UPGRADE_HOST_MAIN", "1");
    }
    command
        .args([CHILD, rounds, lines, end])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start upgrade-host")
}

/// The host's lines until `READY` or its end; kills it if it takes longer than [`BOUND`].
fn lines_of(host: &mut Child) -> Vec<String> {
    let stdout = host.stdout.take().expect("stdout");
    let pid = host.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let ready = line == "READY";
            if tx.send(line).is_err() || ready {
                return;
            }
        }
    });
    let deadline = Instant::now() + BOUND;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let ready = line == "READY";
                lines.push(line);
                if ready {
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                testkit::signal(pid, Signal::KILL);
                panic!("upgrade-host took over {BOUND:?}: {lines:#?}");
            }
        }
    }
}

fn field<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
    lines.iter().filter_map(|line| line.strip_prefix(prefix)).collect()
}

/// The pids each round printed (`round R pids a=1 b=2 c=3 watchdog W`), without the round.
fn pids_per_round(lines: &[String]) -> Vec<&str> {
    field(lines, "round ").iter().map(|rest| rest.split_once(' ').map_or(*rest, |(_, pids)| pids)).collect()
}

#[test]
fn five_hand_overs_keep_the_same_children_and_every_line_once() {
    let mut host = start("5", "300000", "stop", false);
    let lines = lines_of(&mut host);
    let status = host.wait().expect("wait");
    assert!(status.success(), "{status:?}: {lines:#?}");

    let pids = pids_per_round(&lines);
    assert_eq!(pids.len(), 6, "round 0 and five hand-overs: {lines:#?}");
    assert!(pids.iter().all(|round| *round == pids[0]), "pids changed across exec: {pids:#?}");
    let runtime = field(&lines, "runtime ");
    let dir = runtime[0].split_once(' ').expect("dir").1;
    assert!(runtime.iter().all(|line| line.ends_with(dir)), "{runtime:?}");

    let rpc = field(&lines, "rpc ");
    let expected: Vec<String> = (0..=5).map(|round| format!("{round} \"r{round}\"")).collect();
    assert_eq!(rpc, expected, "the plugin answers in every image");

    let missing = field(&lines, "missing-binary ");
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("/nonexistent/upgrade-host") && missing[0].contains("exec failed"), "{missing:?}");
    assert_eq!(field(&lines, "rpc-after-failure "), ["\"after\""], "the host works on after a failed exec");
    let mixed = field(&lines, "mixed-refused ");
    assert!(mixed.len() == 1 && mixed[0].contains("two different threads"), "{mixed:?}");
    assert_eq!(field(&lines, "late-stopped ").len(), 1, "the late child stopped, so the next hand-over goes ahead");

    for checked in field(&lines, "lines ") {
        assert!(checked.ends_with(" bad 0"), "a flood line lost, doubled or out of order: {checked}");
    }
    assert_eq!(field(&lines, "flood-complete "), ["300000"], "the flood's last line arrived, once");
    assert!(field(&lines, "lines final ").iter().all(|line| line.ends_with(" bad 0")));
    let exits = field(&lines, "exit ");
    assert_eq!(exits.len(), 3, "{lines:#?}");
    assert!(exits.iter().all(|exit| exit.ends_with("Exited { code: 0 }")), "a clean stop: {exits:#?}");
    assert!(!std::path::Path::new(dir).exists(), "runtime directory {dir} left behind");

    // From `hand_over` called to the new image's host rebuilt, its clients connected.
    let at = |prefix: &str| -> Vec<u128> {
        field(&lines, prefix).iter().filter_map(|rest| rest.split_once(' ')?.1.parse().ok()).collect()
    };
    let (out, up) = (at("handing-over "), at("host-up "));
    let pauses: Vec<u128> = out.iter().zip(&up[1..]).map(|(out, up)| up.saturating_sub(*out) / 1000).collect();
    eprintln!("hand-over pauses (ms, debug build): {pauses:?}");
    assert_eq!(pauses.len(), 5);
}

#[test]
fn a_sigkilled_host_after_hand_overs_leaves_no_process_behind() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let mut host = start("2", "1000", "wait", false);
    let lines = lines_of(&mut host);
    assert_eq!(lines.last().map(String::as_str), Some("READY"), "{lines:#?}");
    let pids_line = *pids_per_round(&lines).last().expect("pids");
    let pids: Vec<u32> = pids_line
        .split_whitespace()
        .filter_map(|field| field.rsplit_once('=').map_or(field, |(_, pid)| pid).parse().ok())
        .collect();
    assert_eq!(pids.len(), 4, "three children and the watchdog: {pids_line}");
    assert!(pids.iter().all(|&pid| running(pid)), "{pids:?}");

    let killed_at = Instant::now();
    assert!(testkit::signal(host.id(), Signal::KILL), "kill -9 the host");
    let _ = host.wait();
    let mut left = pids.clone();
    while !left.is_empty() && killed_at.elapsed() < Duration::from_secs(2) {
        reap_orphans();
        left.retain(|&pid| running(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    for &pid in &left {
        testkit::signal(pid, Signal::KILL);
    }
    reap_orphans();
    assert!(left.is_empty(), "survived the host's kill -9 after two hand-overs: {left:?}");
}

#[test]
fn with_the_spawner_on_the_main_thread_new_and_taken_over_children_cross_together() {
    let mut host = start("3", "100000", "stop", true);
    let lines = lines_of(&mut host);
    let status = host.wait().expect("wait");
    assert!(status.success(), "{status:?}: {lines:#?}");
    let pids = pids_per_round(&lines);
    assert_eq!(pids.len(), 4, "{lines:#?}");
    let late = field(&lines, "late ");
    assert_eq!(late.len(), 1, "{lines:#?}");
    let late = format!("late={}", late[0]);
    assert!(pids[2].contains(&late) && pids[3].contains(&late), "the late child crossed two execs: {pids:#?}");
    assert_eq!(pids[2], pids[3]);
    let without_late = pids[2].replace(&format!("{late} "), "");
    assert_eq!(without_late, pids[0], "the first children kept their pids: {pids:#?}");
    for checked in field(&lines, "lines ") {
        assert!(checked.ends_with(" bad 0"), "a flood line lost, doubled or out of order: {checked}");
    }
    assert_eq!(field(&lines, "flood-complete "), ["100000"], "the flood's last line arrived, once");
    let exits = field(&lines, "exit ");
    assert_eq!(exits.len(), 4, "{lines:#?}");
    assert!(exits.iter().all(|exit| exit.ends_with("Exited { code: 0 }")), "a clean stop: {exits:#?}");
}
