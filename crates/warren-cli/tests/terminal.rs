//! A reader of `warren up`'s stdout that stops reading (`warren up | less` left unscrolled,
//! Ctrl-S) must not stall the supervisor: `status` keeps answering, SIGINT is acted on at once,
//! and once reading resumes an in-place notice says how many lines were not shown.
//!
//! The fixture (`common::Up`) reads stdout as it comes, so this test runs `warren up` itself
//! with a pipe it does not read; every wait is bounded, and `Instance`'s drop kills whatever is
//! left, passed or failed.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BOUND, WARREN, alive, with_child};
use rustix::process::Signal;

/// How long the reader stops reading.
const STALL: Duration = Duration::from_secs(20);
/// The flooding program's grace: SIGINT must end it well within.
const GRACE: Duration = Duration::from_secs(5);

/// `warren up` and its programs (found by their `WARREN_TEST_TAG`), killed when dropped.
struct Instance {
    up: std::process::Child,
    tag: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.up.kill();
        let _ = self.up.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = testkit::tagged("WARREN_TEST_TAG", &self.tag);
            if left.is_empty() || Instant::now() >= deadline {
                return;
            }
            for pid in left {
                testkit::signal(pid, Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn try_status(dir: &std::path::Path) -> std::process::Output {
    assert_cmd::Command::new(WARREN)
        .args(["status", "--json"])
        .current_dir(dir)
        .env("WARREN_CONTROL", dir.join("ctl.sock"))
        .timeout(BOUND)
        .output()
        .expect("run warren status")
}

fn status(dir: &std::path::Path) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let output = try_status(dir);
    let took = started.elapsed();
    assert!(output.status.success(), "status failed after {took:?}: {}", String::from_utf8_lossy(&output.stderr));
    (took, serde_json::from_slice(&output.stdout).expect("status --json is JSON"))
}

fn pid_of(rows: &serde_json::Value, name: &str) -> Option<u32> {
    let row = rows.as_array()?.iter().find(|row| row["name"] == name)?;
    (row["state"] == "ready").then(|| row["pid"].as_u64().and_then(|p| u32::try_from(p).ok())).flatten()
}

#[test]
fn a_reader_that_stops_reading_never_stalls_status_or_sigint() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // One flooding program per runtime worker and one more: were the pumps to write to the
    // pipe themselves, every worker would be stuck in a write. Each prints some 20,000 lines a
    // second, a flood for any terminal, without starving the machine of CPU (which would
    // measure the machine, not warren).
    let more = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let mut config = String::new();
    for name in std::iter::once("flood".to_owned()).chain((1..=more).map(|i| format!("flood{i}"))) {
        config.push_str(&format!(
            "[programs.{name}]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"while sleep 0.01; do seq 200; done\"]\n\
             grace = \"{}s\"\n\n",
            GRACE.as_secs()
        ));
    }
    config.push_str("[programs.quiet]\ncommand = @child@\nargs = [\"sleeper\"]\n");
    std::fs::write(dir.path().join("warren.toml"), with_child(&config)).expect("write warren.toml");
    let tag = dir.path().display().to_string();
    let up = Command::new(WARREN)
        .args(["up", "-f", "warren.toml"])
        .current_dir(dir.path())
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .env("NO_COLOR", "1")
        .env("WARREN_TEST_TAG", &tag)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warren up");
    let mut instance = Instance { up, tag: tag.clone() };
    let up_pid = instance.up.id();
    let stdout = instance.up.stdout.take().expect("stdout");

    // Nobody reads: the pipe fills within milliseconds of the flood starting.
    let deadline = Instant::now() + BOUND;
    let flood = loop {
        let output = try_status(dir.path());
        let rows = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if let Some(pid) = pid_of(&rows, "flood").filter(|_| output.status.success()) {
            break pid;
        }
        assert!(Instant::now() < deadline, "flood never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stalled = Instant::now();
    let (mut slowest, mut answers) = (Duration::ZERO, 0);
    while stalled.elapsed() < STALL {
        let (took, rows) = status(dir.path());
        assert_eq!(pid_of(&rows, "flood"), Some(flood), "flood runs on: {rows:#}");
        slowest = slowest.max(took);
        answers += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss = std::fs::read_to_string(format!("/proc/{up_pid}/status"))
        .ok()
        .and_then(|status| status.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .unwrap_or_default();
    eprintln!("{answers} status answers during the {STALL:?} stall, the slowest in {slowest:?}; warren up {rss}");
    assert!(slowest < Duration::from_secs(1), "status answered in {slowest:?} at worst");

    // Still not reading: SIGINT must stop the programs at once, not once the pipe drains.
    let asked = Instant::now();
    assert!(testkit::signal(up_pid, Signal::INT), "signal warren up");
    while alive(flood) {
        assert!(asked.elapsed() < GRACE, "flood still runs {GRACE:?} after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("flood stopped {:?} after SIGINT, with nobody reading", asked.elapsed());

    // Reading again: what was queued comes out, then the notice, then the last lines.
    let (text_tx, text_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut stdout = stdout;
        let _ = stdout.read_to_end(&mut text);
        let _ = text_tx.send(String::from_utf8_lossy(&text).into_owned());
    });
    let text = text_rx.recv_timeout(BOUND).expect("warren up's output ends once it exits");
    let status = instance.up.wait().expect("wait for warren up");
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    assert_eq!(status.code(), Some(0), "a clean stop:\n{tail}");
    // One notice per stretch of skipped lines, where the stretch was.
    let notices: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("warren | … ")?.strip_suffix(" lines not shown; `warren logs` has them"))
        .map(|n| n.replace(',', "").parse().unwrap_or_else(|_| panic!("a count in the notice: {n}")))
        .collect();
    let skipped: u64 = notices.iter().sum();
    eprintln!("{} notices, {skipped} lines skipped in all", notices.len());
    assert!(skipped > 10_000, "a 20 s flood skipped {skipped} lines:\n{tail}");
    assert_eq!(lines.last().copied(), Some("warren | stopped"), "the last line comes out:\n{tail}");
    assert!(lines.contains(&"warren | flood: stopped"), "{tail}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !testkit::tagged("WARREN_TEST_TAG", &tag).is_empty() {
        assert!(Instant::now() < deadline, "processes left behind");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn timestamps_start_every_line_and_diagnostics_are_warren_lines_with_their_level() {
    let before = std::time::SystemTime::now();
    let mut up = common::Up::start_with(
        "[programs.hello]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"echo hello\"]\nrestart = \"never\"\n",
        |command, _| {
            command.arg("--timestamps").env("RUST_LOG", "debug");
        },
    );
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "{}", up.transcript());
    let after = std::time::SystemTime::now();
    let transcript = up.transcript();
    let lines: Vec<&str> = transcript.lines().map(str::trim_start).collect();
    assert!(lines.iter().all(|l| !l.starts_with("[stderr]")), "nothing on stderr:\n{transcript}");
    let (mut debug, mut hello) = (0, 0);
    for line in &lines {
        let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("a time, then the line: {line}"));
        let time = humantime::parse_rfc3339(time).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(before <= time && time <= after, "the time it was printed: {line}");
        let (who, text) = rest.split_once(" | ").unwrap_or_else(|| panic!("who | text: {line}"));
        debug += usize::from(who == "warren" && text.starts_with("DEBUG "));
        hello += usize::from(who.trim_end() == "hello" && text == "hello");
    }
    assert_eq!(hello, 1, "the program's line, with its time too:\n{transcript}");
    assert!(debug > 0, "warren's diagnostics are `warren | LEVEL …` lines:\n{transcript}");
}
