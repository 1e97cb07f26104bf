//! The three tiers end to end, as real processes: `daemon` (a warren host) → `shim` (a warren
//! plugin with a host of its own) → `runtime` (a short-lived program on pipes).
//!
//! Everything is observed from the outside, through the daemon's stderr log and exit status and
//! through /proc. Each wait reads log lines as they arrive, with a deadline; nothing sleeps to
//! synchronise. If a test fails half way, a drop guard SIGKILLs every process of the tree.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rustix::process::Signal;

/// Bound for anything that normally takes milliseconds (startup, runs, a stop).
const BOUND: Duration = Duration::from_secs(30);
/// How long a Ctrl-C may take to bring the whole tree down.
const CTRL_C_BOUND: Duration = Duration::from_secs(5);
const FINAL_LINE: &str = "daemon: all children stopped cleanly; exiting 0";

/// A running `daemon` and what has been read of its log.
struct Daemon {
    pid: u32,
    lines: mpsc::Receiver<String>,
    exit: mpsc::Receiver<std::io::Result<ExitStatus>>,
    log: Vec<String>,
    status: Option<ExitStatus>,
    /// Every process of the tree seen in the log (besides the daemon), to check and to clean up.
    pids: Vec<(String, u32)>,
    /// The runtime directories of the daemon's and the shim's hosts.
    runtime_dirs: Vec<PathBuf>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_daemon"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("WARREN_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let pid = child.id();
        let stderr = child.stderr.take().expect("the daemon's stderr is piped");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The waiter thread owns the child and reaps it; the guard kills by pid.
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        Daemon { pid, lines, exit, log: Vec::new(), status: None, pids: Vec::new(), runtime_dirs: Vec::new() }
    }

    /// Returns the first line that contains `what`, reading the log until it comes.
    fn wait_for(&mut self, what: &str, within: Duration) -> String {
        if let Some(line) = self.log.iter().find(|line| line.contains(what)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let found = line.contains(what);
                    self.record(line);
                    if found {
                        return self.log.last().cloned().unwrap_or_default();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no log line with {what:?} within {within:?}; the log so far:\n{}", self.log.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the daemon's log ended without a line with {what:?}:\n{}", self.log.join("\n"))
                }
            }
        }
    }

    /// Reads the log to its end and waits for the daemon's exit, both within `within`.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.record(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the daemon's log did not end within {within:?}; the log so far:\n{}", self.log.join("\n"))
                }
            }
        }
        let status = match self.exit.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(status) => status.expect("wait for the daemon"),
            Err(_) => panic!("the daemon did not exit within {within:?}; its log:\n{}", self.log.join("\n")),
        };
        self.status = Some(status);
        status
    }

    /// Keeps the line, and the pids and runtime directories it names.
    fn record(&mut self, line: String) {
        for (marker, what) in [
            ("shim pid=", "shim"),
            ("runtime pid=", "runtime"),
            ("watchdog_pid=", "watchdog"),
            ("daemon pid=", "daemon"),
        ] {
            if let Some(pid) = number_after(&line, marker)
                && pid != 0
                && pid != self.pid
                && !self.pids.iter().any(|(_, p)| *p == pid)
            {
                self.pids.push((what.to_owned(), pid));
            }
        }
        if let Some(dir) = word_after(&line, "runtime_dir=") {
            let dir = PathBuf::from(dir);
            if !self.runtime_dirs.contains(&dir) {
                self.runtime_dirs.push(dir);
            }
        }
        self.log.push(line);
    }

    /// The pid the runtime of run `id` printed, reading the log until it comes.
    fn runtime_pid(&mut self, id: &str) -> u32 {
        let line = self.wait_for(&format!(" id={id} argv="), BOUND);
        number_after(&line, "runtime pid=").unwrap_or_else(|| panic!("no pid in {line:?}"))
    }

    fn pid_of(&self, what: &str) -> Vec<u32> {
        self.pids.iter().filter(|(w, _)| w == what).map(|(_, pid)| *pid).collect()
    }

    /// Index of the first line containing `what`, failing with the log if there is none.
    fn position(&self, what: &str) -> usize {
        self.log
            .iter()
            .position(|line| line.contains(what))
            .unwrap_or_else(|| panic!("no log line with {what:?}; the log:\n{}", self.log.join("\n")))
    }

    fn assert_in_order(&self, steps: &[&str]) {
        let positions: Vec<usize> = steps.iter().map(|step| self.position(step)).collect();
        for (pair, at) in steps.windows(2).zip(positions.windows(2)) {
            assert!(
                at[0] < at[1],
                "expected {:?} (line {}) before {:?} (line {}); the log:\n{}",
                pair[0],
                at[0] + 1,
                pair[1],
                at[1] + 1,
                self.log.join("\n")
            );
        }
    }

    fn assert_no_errors(&self) {
        let errors: Vec<&String> =
            self.log.iter().filter(|line| line.contains("ERROR") || line.contains("WARN")).collect();
        assert!(errors.is_empty(), "errors or warnings in the log: {errors:#?}\nthe log:\n{}", self.log.join("\n"));
    }

    /// After the exit: no process of the tree exists (not even as a zombie), and no socket file
    /// is left in either host's runtime directory.
    fn assert_nothing_left(&self) {
        assert!(!process_exists(self.pid), "the daemon (pid {}) still exists", self.pid);
        assert!(!self.pid_of("shim").is_empty(), "the shim's pid is not in the log");
        assert_eq!(
            self.pid_of("watchdog").len(),
            2,
            "expected the daemon's and the shim's watchdog pids: {:?}",
            self.pids
        );
        for (what, pid) in &self.pids {
            assert!(!process_exists(*pid), "{what} (pid {pid}) outlived the daemon; the log:\n{}", self.log.join("\n"));
        }
        assert_eq!(
            self.runtime_dirs.len(),
            2,
            "expected the daemon's and the shim's runtime dirs: {:?}",
            self.runtime_dirs
        );
        for dir in &self.runtime_dirs {
            let sockets = sockets_in(dir);
            assert!(sockets.is_empty(), "socket files left in {}: {sockets:?}", dir.display());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_some() && !std::thread::panicking() {
            return;
        }
        // The test failed or did not wait: kill the whole tree. The daemon's pid cannot be reused
        // until the waiter thread has reaped it; the others are checked to exist first.
        if self.status.is_none() && self.exit.try_recv().is_err() {
            kill(self.pid, Signal::KILL);
        }
        for (_, pid) in &self.pids {
            if process_exists(*pid) {
                kill(*pid, Signal::KILL);
            }
        }
    }
}

fn kill(pid: u32, signal: Signal) {
    testkit::signal(pid, signal);
}

/// Whether a process exists, zombies included (they still have a /proc entry).
fn process_exists(pid: u32) -> bool {
    testkit::running(pid)
}

fn sockets_in(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_socket())).map(|e| e.path()).collect()
}

fn word_after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let start = line.find(marker)? + marker.len();
    line[start..].split_whitespace().next()
}

fn number_after(line: &str, marker: &str) -> Option<u32> {
    let start = line.find(marker)? + marker.len();
    let digits: String = line[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
fn runs_are_relayed_through_the_shim_and_everything_stops_by_itself() {
    let mut daemon = Daemon::start(&["--runs", "2", "--exit-after-runs"]);
    let status = daemon.wait_exit(BOUND);
    let log = daemon.log.join("\n");
    assert!(status.success(), "the daemon failed ({status}); its log:\n{log}");
    assert_eq!(daemon.log.last().map(String::as_str).map(|l| l.contains(FINAL_LINE)), Some(true), "{log}");

    // Each runtime's own lines, with its pid, came back to the daemon in the shim's reply.
    assert_eq!(daemon.pid_of("runtime").len(), 2, "expected two runtime processes: {:?}\n{log}", daemon.pids);
    for (id, code) in [("run-1", 0), ("run-2", 3)] {
        let pid = daemon.runtime_pid(id);
        for expected in [
            format!("run {id}: runtime pid {pid} exited with code {code} (exit_code={code})"),
            format!(
                "run {id}: stdout| runtime pid={pid} id={id} argv=[\"runtime\", \"{id}\", \"cat\", \"exit={code}\"]"
            ),
            format!("run {id}: stdout| {id}: stdin| hello from the daemon to {id}"),
            format!("run {id}: stderr| {id}: container process exited with code {code}"),
        ] {
            daemon.position(&expected);
        }
    }
    let shim = daemon.pid_of("shim").first().copied().expect("the shim's pid is in the log");
    daemon.assert_in_order(&[
        "run run-2: runtime pid",
        &format!("stop report: shim (pid {shim}) exited with code 0"),
        ": no socket left behind",
        FINAL_LINE,
    ]);
    daemon.assert_no_errors();
    daemon.assert_nothing_left();
}

#[test]
fn ctrl_c_on_the_daemon_stops_the_runtime_then_the_shim_then_the_daemon() {
    let mut daemon = Daemon::start(&["--runs", "1", "--hang"]);
    // The runtime says this once its SIGTERM handler is installed: the run is in progress.
    daemon.wait_for("run-hang: hanging until SIGTERM", BOUND);
    // Its stdout is pumped apart from its stderr, so this line may come before or after.
    let runtime = daemon.runtime_pid("run-hang");
    assert!(process_exists(runtime), "the hanging runtime (pid {runtime}) should be running");

    let interrupted = Instant::now();
    kill(daemon.pid, Signal::INT);
    let status = daemon.wait_exit(CTRL_C_BOUND);
    let took = interrupted.elapsed();
    let log = daemon.log.join("\n");
    assert!(status.success(), "the daemon failed after Ctrl-C ({status}); its log:\n{log}");
    assert_eq!(daemon.log.last().map(|l| l.contains(FINAL_LINE)), Some(true), "{log}");
    assert!(took < CTRL_C_BOUND, "Ctrl-C took {took:?} to bring the tree down");

    // The order of stops: the shim's own log (relayed in order through its stderr) shows it
    // stopping the runtime first, the runtime seeing SIGTERM, and its report; only then the
    // daemon reports the shim's exit, and last says it is done.
    let shim = daemon.pid_of("shim").first().copied().expect("the shim's pid is in the log");
    daemon.assert_in_order(&[
        "shim stopping: stopping 1 runtime(s) first",
        "runtime-run-hang| run-hang: received SIGTERM, container stopped",
        &format!("stopped runtime: runtime-run-hang (pid {runtime}) exited with code 143"),
        &format!("stop report: shim (pid {shim}) exited with code 0"),
        FINAL_LINE,
    ]);
    // The run in flight was answered with the runtime's real end, not cut off. (The reply comes
    // over the RPC socket, so it may be logged before or after the shim's stderr lines above.)
    daemon.assert_in_order(&[&format!("run run-hang: runtime pid {runtime} exited with code 143"), FINAL_LINE]);
    daemon.assert_no_errors();
    daemon.assert_nothing_left();
}

#[test]
fn ctrl_c_during_the_runs_lets_the_run_in_flight_finish_and_makes_no_more() {
    let mut daemon = Daemon::start(&["--runs", "100000"]);
    daemon.wait_for("run run-3: runtime pid", BOUND);
    kill(daemon.pid, Signal::INT);
    let status = daemon.wait_exit(CTRL_C_BOUND);
    let log = daemon.log.join("\n");
    assert!(status.success(), "the daemon failed after Ctrl-C ({status}); its log:\n{log}");
    assert_eq!(daemon.log.last().map(|l| l.contains(FINAL_LINE)), Some(true), "{log}");
    let shim = daemon.pid_of("shim").first().copied().expect("the shim's pid is in the log");
    daemon.assert_in_order(&[
        "the shim is stopping: run-",
        &format!("stop report: shim (pid {shim}) exited with code 0"),
        FINAL_LINE,
    ]);
    // Every run asked for was answered, except at most one that crossed the stop on the wire
    // and was refused because the shim was already stopping.
    let count = |what: &str| daemon.log.iter().filter(|line| line.contains(what)).count();
    let (asked, answered, refused) =
        (count(": Shim.Run args="), count(" (exit_code="), count(": not answered, the shim is stopping: "));
    assert!(answered >= 3 && refused <= 1, "answered {answered}, refused {refused}; the log:\n{log}");
    assert_eq!(asked, answered + refused, "a run was neither answered nor refused; the log:\n{log}");
    daemon.assert_nothing_left();
}
