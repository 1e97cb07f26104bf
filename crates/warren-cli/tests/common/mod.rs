//! The fixture of the CLI tests: a real `warren up` on a configuration file of its own, in a
//! temporary directory of its own, with its own control socket, and its output as it comes.
//!
//! Every process the instance starts (children, probes, the watchdog, grandchildren) inherits
//! `WARREN_TEST_TAG`, unique to the fixture, so the test can find them in `/proc` even after
//! they were reparented, check that none is left, and kill any that is.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::Value;
use tempfile::TempDir;
use testkit::signal as signal_pid;

/// The `warren` binary under test.
pub const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// How long to wait for something that normally takes well under a second: a bound that only a
/// broken program hits, not the expected time.
pub const BOUND: Duration = Duration::from_secs(10);

/// The outer bound of every fixture: past it, the instance is killed, which ends every wait on
/// its output with a failure.
const OUTER_BOUND: Duration = Duration::from_secs(25);

/// The purpose-built misbehaving child, built next to `warren` by `cargo build --workspace`.
pub fn test_child() -> PathBuf {
    let path = Path::new(WARREN).with_file_name("test-child");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (`cargo test --workspace` builds it)",
        path.display()
    );
    path
}

/// `text` as a TOML basic string.
pub fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Replaces `@child@` in a configuration with the test child's path, quoted.
pub fn with_child(config: &str) -> String {
    config.replace("@child@", &toml_string(&test_child().to_string_lossy()))
}

/// The pid in "(pid 123)" of a line `warren up` printed.
pub fn pid_in(text: &str) -> Option<u32> {
    text.split("(pid ").nth(1)?.split(')').next()?.parse().ok()
}

pub use testkit::{alive, cmdline};

/// Whether `pid` is alive and has `WARREN_TEST_TAG=tag` in its environment.
fn has_tag(pid: u32, tag: &str) -> bool {
    testkit::has_env(pid, "WARREN_TEST_TAG", tag) && alive(pid)
}

/// Live processes whose environment has `WARREN_TEST_TAG=tag`.
fn tagged(tag: &str) -> Vec<u32> {
    testkit::tagged("WARREN_TEST_TAG", tag).into_iter().filter(|&pid| alive(pid)).collect()
}

/// Which pipe of `warren up` a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A line `warren up` printed, and when the test received it.
#[derive(Debug, Clone)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
    pub at: Instant,
}

impl Line {
    /// For `warren | alpha: ready (pid 1)`: `Some(("warren", "alpha: ready (pid 1)"))`.
    pub fn split(&self) -> Option<(&str, &str)> {
        let (who, text) = self.text.split_once(" | ")?;
        Some((who.trim_end(), text))
    }

    /// A line of warren's own about `program`, whose text after "program: " starts with `what`.
    pub fn is_event(&self, program: &str, what: &str) -> bool {
        self.stream == Stream::Stdout
            && self.split().is_some_and(|(who, text)| {
                who == "warren"
                    && text
                        .strip_prefix(program)
                        .and_then(|t| t.strip_prefix(": "))
                        .is_some_and(|t| t.starts_with(what))
            })
    }
}

/// Reads `pipe` line by line on a thread of its own, to `tx`.
pub fn forward(pipe: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<Line>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send(Line { stream, text, at: Instant::now() }).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// A running `warren up -f <tempdir>/warren.toml`.
pub struct Up {
    dir: TempDir,
    process: Child,
    /// Set, under the lock, once the process is reaped: from then on its pid may be reused and
    /// the outer-bound guard must not signal it.
    reaped: Arc<Mutex<bool>>,
    guard: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    lines: mpsc::Receiver<Line>,
    seen: Vec<Line>,
    /// Pids the test learned (from the output, status or /proc): killed by Drop while still
    /// ours (they carry the tag; a recycled pid does not).
    learned: Vec<u32>,
    tag: String,
    exit: Option<ExitStatus>,
}

impl Up {
    /// Starts `warren up` on `config` (`@child@` stands for the test child's path).
    pub fn start(config: &str) -> Up {
        Up::start_with(config, |_, _| {})
    }

    /// The same, with more settings on the command (environment variables, say).
    pub fn start_with(config: &str, configure: impl FnOnce(&mut std::process::Command, &Path)) -> Up {
        Up::start_within(config, OUTER_BOUND, configure)
    }

    /// The same, killed after `outer` rather than the usual outer bound (a test that runs long
    /// on purpose). `configure` may take stdout elsewhere (`Stdio::from` a pipe of the test's):
    /// then only stderr is seen.
    pub fn start_within(
        config: &str,
        outer: Duration,
        configure: impl FnOnce(&mut std::process::Command, &Path),
    ) -> Up {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("warren.toml");
        std::fs::write(&file, with_child(config)).expect("write warren.toml");
        let tag = dir.path().display().to_string();
        let mut command = std::process::Command::new(WARREN);
        command
            .arg("up")
            .arg("-f")
            .arg(&file)
            .current_dir(dir.path())
            .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
            .env("NO_COLOR", "1")
            .env("WARREN_TEST_TAG", &tag)
            // Log files stay in the fixture's directory, not in the user's ~/.local/state.
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command, dir.path());
        let mut process = command.spawn().expect("start warren up");
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = process.stdout.take() {
            forward(stdout, Stream::Stdout, tx.clone());
        }
        forward(process.stderr.take().expect("stderr"), Stream::Stderr, tx);
        let reaped = Arc::new(Mutex::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let pid = process.id();
        let guard_reaped = Arc::clone(&reaped);
        let guard = std::thread::spawn(move || {
            if stopped.recv_timeout(outer) == Err(mpsc::RecvTimeoutError::Timeout) {
                let reaped = guard_reaped.lock().unwrap_or_else(PoisonError::into_inner);
                if !*reaped {
                    eprintln!("warren up ran longer than the outer bound of {outer:?}: killing it");
                    signal_pid(pid, Signal::KILL);
                }
            }
        });
        Up {
            dir,
            process,
            reaped,
            guard: Some((stop, guard)),
            lines,
            seen: Vec::new(),
            learned: Vec::new(),
            tag,
            exit: None,
        }
    }

    /// A program that ignores SIGTERM beside one whose grandchild left its process group (and
    /// keeps the output open): what a second and a third signal are for. Returns once both
    /// are up and the grandchild is known (so that the end-of-test check looks for it too).
    #[allow(dead_code, reason = "used by some of the test files that share this fixture")]
    pub fn stubborn_with_an_escaped_grandchild() -> Up {
        let mut up = Up::start(
            r#"
[programs.stubborn]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "60s"

[programs.escapee]
command = @child@
args = ["cgroup-escapee"]
ready = "notify"
grace = "60s"
"#,
        );
        up.wait_line("all programs are up", BOUND);
        let grandchild = up.wait_for("the escapee's grandchild", BOUND, |lines| {
            lines.iter().find_map(|l| l.text.split("| grandchild ").nth(1)?.trim().parse::<u32>().ok())
        });
        up.learn(grandchild);
        up
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir().join("warren.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("ctl.sock")
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Sends `signal` to the `warren up` process (not to its children).
    pub fn signal(&self, signal: Signal) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!*reaped, "warren up already exited");
        assert!(signal_pid(self.pid(), signal), "cannot signal warren up");
    }

    /// Takes the lines received so far; true if the pipes are still open.
    fn receive(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line);
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => true,
            Err(mpsc::RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Waits until `found` finds something in the output so far, for at most `bound`.
    pub fn wait_for<T>(&mut self, what: &str, bound: Duration, found: impl Fn(&[Line]) -> Option<T>) -> T {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(result) = found(&self.seen) {
                return result;
            }
            let open = self.receive(deadline);
            if !open || Instant::now() >= deadline {
                if let Some(result) = found(&self.seen) {
                    return result;
                }
                let why = if open { "" } else { " (warren up closed its output)" };
                panic!("no {what} within {bound:?}{why}; output so far:\n{}", self.transcript());
            }
        }
    }

    /// The first line of stdout that contains `needle` (waiting for it at most `bound`).
    pub fn wait_line(&mut self, needle: &str, bound: Duration) -> Line {
        self.wait_for(&format!("line with {needle:?}"), bound, |lines| {
            lines.iter().find(|l| l.stream == Stream::Stdout && l.text.contains(needle)).cloned()
        })
    }

    /// The first line in which warren says `program: what…`; a pid in it is learned.
    pub fn wait_event(&mut self, program: &str, what: &str, bound: Duration) -> Line {
        let line = self.wait_for(&format!("\"{program}: {what}\" line"), bound, |lines| {
            lines.iter().find(|l| l.is_event(program, what)).cloned()
        });
        if let Some(pid) = pid_in(&line.text) {
            self.learn(pid);
        }
        line
    }

    /// Waits until warren said `program: what…` `n` times; returns the last of them.
    pub fn wait_events(&mut self, program: &str, what: &str, n: usize, bound: Duration) -> Line {
        self.wait_for(&format!("{n} \"{program}: {what}\" lines"), bound, |lines| {
            lines.iter().filter(|l| l.is_event(program, what)).nth(n - 1).cloned()
        })
    }

    /// Where the first `program: what…` line is in the output, if it is there.
    pub fn event_index(&self, program: &str, what: &str) -> Option<usize> {
        self.seen.iter().position(|l| l.is_event(program, what))
    }

    /// Where the `program: what…` lines are in the output so far, and the lines.
    pub fn events(&self, program: &str, what: &str) -> Vec<(usize, Line)> {
        self.seen.iter().enumerate().filter(|(_, l)| l.is_event(program, what)).map(|(i, l)| (i, l.clone())).collect()
    }

    /// Every line received so far, for failure messages.
    /// [`transcript`](Self::transcript), once what was on its way has come in (for at most
    /// `settle`): for a failure message that must show the latest lines.
    #[allow(dead_code, reason = "used by some of the test files that share this fixture")]
    pub fn transcript_after(&mut self, settle: Duration) -> String {
        let until = Instant::now() + settle;
        while Instant::now() < until && self.receive(until) {}
        self.transcript()
    }

    pub fn transcript(&self) -> String {
        let mut text = String::new();
        for line in &self.seen {
            let prefix = if line.stream == Stream::Stdout { "" } else { "[stderr] " };
            text.push_str(&format!("    {prefix}{}\n", line.text));
        }
        text
    }

    pub fn learn(&mut self, pid: u32) {
        if !self.learned.contains(&pid) {
            self.learned.push(pid);
        }
    }

    /// A `warren` command against this instance (same `WARREN_CONTROL`), bounded in time.
    pub fn warren<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = assert_cmd::Command::new(WARREN);
        command
            .args(args)
            .current_dir(self.dir())
            .env("WARREN_CONTROL", self.socket())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .timeout(BOUND);
        command
    }

    /// `warren status --json`, parsed.
    pub fn status_json(&mut self) -> Vec<Value> {
        let output = self.warren(["status", "--json"]).output().expect("run warren status --json");
        assert!(
            output.status.success(),
            "warren status --json: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&output.stdout).expect("status --json prints a JSON array");
        for pid in rows.iter().filter_map(|row| row["pid"].as_u64()) {
            self.learn(u32::try_from(pid).expect("pid fits u32"));
        }
        rows
    }

    /// `program`'s row of `warren status --json`.
    pub fn row(&mut self, program: &str) -> Value {
        let rows = self.status_json();
        rows.into_iter().find(|row| row["name"] == program).unwrap_or_else(|| panic!("no status row for {program}"))
    }

    /// Polls `program`'s status until `ok` holds, for at most `bound`.
    pub fn wait_status(&mut self, program: &str, bound: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + bound;
        loop {
            let row = self.row(program);
            if ok(&row) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "{program}'s status did not change as expected within {bound:?}: {row:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Live processes of this instance (started by it, or by its children) whose command line
    /// contains `needle`.
    pub fn processes(&self, needle: &str) -> Vec<u32> {
        tagged(&self.tag).into_iter().filter(|&pid| cmdline(pid).contains(needle)).collect()
    }

    /// The instance's processes whose command line contains `needle`, once there are `n` of
    /// them; learned, so that the end-of-test check looks for them too.
    #[allow(dead_code, reason = "used by some of the test files that share this fixture")]
    pub fn wait_processes(&mut self, needle: &str, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + BOUND;
        loop {
            let found = self.processes(needle);
            if found.len() >= n {
                for &pid in &found {
                    self.learn(pid);
                }
                return found;
            }
            assert!(Instant::now() < deadline, "{n} processes {needle:?} not there:\n{}", self.transcript());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `warren up` to exit (at most `bound`) and for the end of its output.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        let status = loop {
            {
                let mut reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(status) = self.process.try_wait().expect("wait for warren up") {
                    *reaped = true;
                    break status;
                }
            }
            if Instant::now() >= deadline {
                panic!("warren up did not exit within {bound:?}; output so far:\n{}", self.transcript());
            }
            // Nothing announces the exit but the pipes' end, which a leaked grandchild could hold;
            // once they ended (or if they end first), polling is all there is.
            if !self.receive(Instant::now() + Duration::from_millis(20)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        self.exit = Some(status);
        while self.receive(deadline) {
            assert!(
                Instant::now() < deadline,
                "warren up exited but its output did not end within {bound:?}:\n{}",
                self.transcript()
            );
        }
        status
    }

    /// Asserts that no process of this instance is left (waiting at most `bound` for the ones
    /// being torn down).
    pub fn assert_no_leftovers(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let left = tagged(&self.tag);
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let list: Vec<String> = left.iter().map(|&pid| format!("{pid} {}", cmdline(pid))).collect();
                panic!("processes left behind {bound:?} after warren up ended:\n    {}", list.join("\n    "));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some((stop, guard)) = self.guard.take() {
            drop(stop);
            let _ = guard.join();
        }
        if self.exit.is_none() {
            // Killed, warren up cannot stop its children; its watchdog kills their groups and
            // the parent-death signal takes the rest. What survives anyway is killed below.
            signal_pid(self.pid(), Signal::KILL);
            let _ = self.process.wait();
            *self.reaped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut left = tagged(&self.tag);
            // A learned pid is killed only while it is still ours: a recycled pid (another
            // test's child, say) does not carry this fixture's tag.
            let learned: Vec<u32> =
                self.learned.iter().copied().filter(|&pid| has_tag(pid, &self.tag) && !left.contains(&pid)).collect();
            left.extend(learned);
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in left {
                signal_pid(pid, Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A `warren` command that runs in the background (`logs -f`), its stdout as it comes; killed
/// and reaped when dropped.
pub struct Background {
    process: Child,
    lines: mpsc::Receiver<Line>,
    pub seen: Vec<Line>,
}

impl Background {
    pub fn spawn(mut command: std::process::Command) -> Background {
        let mut process =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start warren");
        let (tx, lines) = mpsc::channel();
        forward(process.stdout.take().expect("stdout"), Stream::Stdout, tx.clone());
        forward(process.stderr.take().expect("stderr"), Stream::Stderr, tx);
        Background { process, lines, seen: Vec::new() }
    }

    /// Waits until `n` lines of stdout contain `needle`.
    pub fn wait_lines(&mut self, needle: &str, n: usize, bound: Duration) {
        let deadline = Instant::now() + bound;
        let matches = |l: &Line| l.stream == Stream::Stdout && l.text.contains(needle);
        // Counted as lines come: a follower of a flood gets tens of thousands.
        let mut found = self.seen.iter().filter(|l| matches(l)).count();
        loop {
            if found >= n {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    found += usize::from(matches(&line));
                    self.seen.push(line);
                }
                Err(_) => {
                    let text: Vec<&str> = self.seen.iter().map(|l| l.text.as_str()).collect();
                    panic!("no {n} lines with {needle:?} within {bound:?}; got:\n    {}", text.join("\n    "));
                }
            }
        }
    }
}

impl Background {
    #[allow(dead_code, reason = "used by some of the test files that share this fixture")]
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The lines of stdout received so far.
    #[allow(dead_code, reason = "used by some of the test files that share this fixture")]
    pub fn stdout(&self) -> Vec<&str> {
        self.seen.iter().filter(|l| l.stream == Stream::Stdout).map(|l| l.text.as_str()).collect()
    }

    /// Waits for the command to exit by itself, for at most `bound`.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.process.try_wait().expect("wait for warren") {
                return status;
            }
            assert!(Instant::now() < deadline, "warren did not exit within {bound:?}");
            // Its output ends when it exits; wait on that rather than sleeping.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
