//! A real host program and real signals: the first SIGINT stops every child gracefully and in
//! parallel (so do SIGHUP and SIGQUIT), a second kills every group at once, a third exits
//! immediately; SIGTSTP suspends the host with every child group, SIGCONT resumes them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

const HOST: &str = env!("CARGO_BIN_EXE_many-host");

/// The host process, its stdout lines as they come, and every pid it reported.
struct Run {
    host: Child,
    lines: mpsc::Receiver<String>,
    /// The host's log (stderr), where children's own lines appear too.
    log: mpsc::Receiver<String>,
    pids: Vec<u32>,
}

fn forward(pipe: impl std::io::Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Run {
    fn start(children: usize, mode: &str, grace_ms: u64) -> Run {
        let mut host = Command::new(HOST)
            .args([children.to_string(), mode.to_owned(), grace_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start many-host");
        let (tx, lines) = mpsc::channel();
        let (log_tx, log) = mpsc::channel();
        forward(host.stdout.take().expect("stdout"), tx);
        forward(host.stderr.take().expect("stderr"), log_tx);
        let mut run = Run { host, lines, log, pids: Vec::new() };
        loop {
            let line = run.next_line(Duration::from_secs(20)).expect("host reports READY");
            if line == "READY" {
                break;
            }
            if let Some(rest) = line.strip_prefix("child ") {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                run.pids.push(fields[1].parse().expect("pid"));
                let grandchild: u32 = fields[3].parse().expect("grandchild pid");
                if grandchild != 0 {
                    run.pids.push(grandchild);
                }
            }
        }
        assert!(run.pids.len() >= children);
        run
    }

    fn next_line(&self, bound: Duration) -> Option<String> {
        self.lines.recv_timeout(bound).ok()
    }

    /// Waits for a log line containing `needle`, noting grandchild pids children print on the
    /// way (an escaped grandchild must be killed by the test's guard).
    fn wait_log(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.log.recv_timeout(left).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if let Some(pid) =
                line.split("| grandchild ").nth(1).and_then(|p| p.split_whitespace().next()?.parse().ok())
            {
                self.pids.push(pid);
            }
            if line.contains(needle) {
                return;
            }
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.host.id() as i32).expect("pid");
        kill_process(pid, signal).expect("signal the host");
    }

    fn wait_exit(&mut self, bound: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.host.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "host did not exit within {bound:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stopped_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line(Duration::from_secs(5)) {
            if line == "DONE" {
                break;
            }
            lines.push(line);
        }
        lines
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Last line of defence if an assertion failed: nothing may outlive the test.
        for &pid in &self.pids {
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[test]
fn one_sigint_stops_every_child_gracefully_and_in_parallel() {
    let mut run = Run::start(5, "plugin", 5000);
    let start = Instant::now();
    run.signal(Signal::INT);
    let status = run.wait_exit(Duration::from_secs(10));
    let lines = run.stopped_lines();
    assert!(status.success(), "{status:?}: {lines:?}");
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("exited with code 0")), "{lines:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "graceful stop ends as soon as children are gone");
    assert!(run.pids.iter().all(|&pid| !alive(pid)));
}

#[test]
fn a_second_sigint_kills_every_group_at_once() {
    // Children that ignore SIGTERM, and a grace far longer than the test bound.
    let mut run = Run::start(4, "ignore-term", 60_000);
    run.signal(Signal::INT);
    run.wait_log("received SIGINT: stopping");
    run.wait_log("ignoring SIGTERM");
    assert!(run.pids.iter().all(|&pid| alive(pid)), "still waiting out the grace period");
    let start = Instant::now();
    run.signal(Signal::INT);
    let status = run.wait_exit(Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_secs(2), "killed at once, not after the 60 s grace");
    let lines = run.stopped_lines();
    assert_eq!(status.code(), Some(1), "children were killed, not stopped cleanly: {lines:?}");
    assert!(lines.iter().all(|l| l.contains("SIGKILL")), "{lines:?}");
    assert!(run.pids.iter().all(|&pid| !alive(pid)));
}

#[test]
fn a_third_sigint_exits_immediately() {
    // Grandchildren that escaped both their group and their cgroup hold the pipes, so even after
    // the kill the host would wait for the pipes to drain; the third signal cuts that short.
    let mut run = Run::start(2, "cgroup-escapee", 60_000);
    run.signal(Signal::INT);
    run.wait_log("received SIGINT: stopping");
    run.signal(Signal::INT);
    run.wait_log("killing every child's process group now");
    let start = Instant::now();
    run.signal(Signal::INT);
    let status = run.wait_exit(Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_millis(1500), "exited at once");
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[test]
fn sighup_and_sigquit_stop_every_child_gracefully_too() {
    // Closing the terminal (SIGHUP) must give children their grace, not SIGKILL them.
    for signal in [Signal::HUP, Signal::QUIT] {
        let mut run = Run::start(2, "plugin", 5000);
        run.signal(signal);
        let status = run.wait_exit(Duration::from_secs(10));
        let lines = run.stopped_lines();
        assert!(status.success(), "{signal:?} {status:?}: {lines:?}");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("exited with code 0")), "{lines:?}");
        assert!(run.pids.iter().all(|&pid| !alive(pid)));
    }
}

/// The state letter of `/proc/PID/stat` (R, S, T, Z, ...).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_states(pids: &[u32], what: &str, ok: impl Fn(Option<char>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let states: Vec<(u32, Option<char>)> = pids.iter().map(|&pid| (pid, state(pid))).collect();
        if states.iter().all(|&(_, s)| ok(s)) {
            return;
        }
        assert!(Instant::now() < deadline, "not all {what}: {states:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigtstp_suspends_the_host_and_every_group_and_sigcont_resumes_them() {
    let mut run = Run::start(3, "plugin", 5000);
    let mut everything = run.pids.clone();
    everything.push(run.host.id());
    run.signal(Signal::TSTP);
    wait_states(&everything, "stopped (T)", |s| s == Some('T'));
    run.signal(Signal::CONT);
    wait_states(&everything, "running again", |s| s.is_some_and(|s| s != 'T'));
    // Still an orderly stop afterwards.
    run.signal(Signal::INT);
    let status = run.wait_exit(Duration::from_secs(10));
    let lines = run.stopped_lines();
    assert!(status.success(), "{status:?}: {lines:?}");
    assert!(lines.iter().all(|l| l.contains("exited with code 0")), "{lines:?}");
}
