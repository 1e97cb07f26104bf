//! `warren up -d` (issue #13, point 2) with the real binary: it returns 0 once every program is
//! up and says how to follow and stop the instance, which runs in a session of its own without
//! a terminal and is found by `status` and `down` as a foreground one is; a program that fails
//! to start makes it exit 1 with the reason and leave no process; SIGHUP to the detached
//! instance reloads its file (point 3) instead of stopping it.

// Each test file uses only part of the fixture.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{BOUND, WARREN, alive, cmdline, with_child};
use rustix::process::Signal;
use serde_json::Value;
use tempfile::TempDir;

/// A configuration directory, its own control socket, and a tag on every process started
/// from it; whatever carries the tag is killed when it is dropped.
struct Detached {
    dir: TempDir,
}

impl Detached {
    fn new(config: &str) -> Detached {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("warren.toml"), with_child(config)).expect("write warren.toml");
        Detached { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("warren.toml")
    }

    fn tag(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn warren(&self, args: &[&str]) -> std::process::Output {
        self.warren_in(self.dir.path(), args)
    }

    fn warren_in(&self, cwd: &Path, args: &[&str]) -> std::process::Output {
        assert_cmd::Command::new(WARREN)
            .args(args)
            .current_dir(cwd)
            .env("WARREN_CONTROL", self.dir.path().join("ctl.sock"))
            .env("WARREN_TEST_TAG", self.tag())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .timeout(BOUND)
            .output()
            .expect("run warren")
    }

    /// The detached instance's own lines, in its state directory.
    fn own_log(&self) -> PathBuf {
        let state = self.dir.path().join("state/warren");
        let dir = std::fs::read_dir(&state).expect("the state directory").next().expect("one instance").expect("entry");
        dir.path().join("warren.log")
    }

    /// The processes started from here.
    fn processes(&self) -> Vec<u32> {
        testkit::tagged("WARREN_TEST_TAG", &self.tag()).into_iter().filter(|&pid| alive(pid)).collect()
    }

    /// The detached `warren up` itself.
    fn instance(&self) -> u32 {
        let found = self.processes().into_iter().find(|&pid| cmdline(pid).contains("--detached-child"));
        found.unwrap_or_else(|| panic!("no detached warren among {:?}", self.processes()))
    }

    fn status(&self) -> Vec<Value> {
        let out = self.warren(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    fn pid(&self, name: &str) -> Option<u64> {
        self.status().iter().find(|row| row["name"] == name).and_then(|row| row["pid"].as_u64())
    }

    fn wait_gone(&self) {
        let deadline = Instant::now() + BOUND;
        while !self.processes().is_empty() {
            assert!(Instant::now() < deadline, "left behind: {:?}", self.processes());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        for _ in 0..100 {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            for pid in left {
                testkit::signal(pid, Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Field `n` (from 1) of /proc/pid/stat, after the command name.
fn stat_field(pid: u32, n: usize) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after.split(' ').nth(n - 3).and_then(|f| f.parse().ok()).expect("numeric field")
}

const TWO: &str = r#"
[programs.db]
shell = "exec sleep 60"
grace = "2s"

[programs.web]
shell = "sleep 1; echo listening; exec sleep 60"
ready = { log = "^listening$" }
depends_on = ["db"]
env = { MARK = "1" }
grace = "2s"
"#;

#[test]
fn up_d_returns_once_everything_is_up_and_is_found_by_status_and_down() {
    let here = Detached::new(TWO);
    let started = Instant::now();
    let out = here.warren(&["up", "-d", "-f", here.file().to_str().expect("utf-8 path")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // web becomes ready one second after it starts: `up -d` waited for it.
    assert!(started.elapsed() >= Duration::from_millis(900), "returned after {:?}", started.elapsed());
    assert!(stdout.contains("warren logs -f\n") && stdout.contains("warren down\n"), "{stdout}");
    assert!(!stdout.contains("--file"), "run from the file's directory, the hints need no --file: {stdout}");
    let rows = here.status();
    assert!(rows.iter().all(|row| row["state"] == "ready"), "{rows:#?}");

    // In a session of its own (its own leader), without a controlling terminal.
    let instance = here.instance();
    assert_eq!(stat_field(instance, 6), i64::from(instance), "session id");
    assert_eq!(stat_field(instance, 7), 0, "tty_nr");
    for fd in [0, 1] {
        let target = std::fs::read_link(format!("/proc/{instance}/fd/{fd}")).expect("fd link");
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    // Its own lines went to its log, beside its programs' logs.
    let log = std::fs::read_to_string(here.own_log()).expect("the instance's own log");
    assert!(log.contains("all programs are up"), "{log}");
    assert!(here.own_log().with_file_name("logs").join("web.log").exists(), "web's log file");

    let out = here.warren(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    here.wait_gone();
    // A second `up -d` for the same directory works once the first is gone; started from
    // elsewhere, its hints name the file, and they work as printed.
    let elsewhere = here.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("a second directory");
    let out = here.warren_in(&elsewhere, &["up", "-d", "-f", "../warren.toml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let down = stdout.lines().find_map(|line| line.trim().strip_prefix("stop it:")).expect("a hint to stop it").trim();
    let file = here.file().canonicalize().expect("the file's path");
    assert_eq!(down, format!("warren down --file {}", file.display()), "{stdout}");
    let out = here.warren_in(&elsewhere, &["down", "--file", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    here.wait_gone();
    let out = here.warren(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = here.warren(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(3), "a second instance: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("already running"), "{}", text(&out.stderr));
    assert!(here.warren(&["down"]).status.success());
    here.wait_gone();
}

#[test]
fn up_d_exits_1_with_the_reason_when_a_program_fails_to_start_and_leaves_nothing() {
    let here = Detached::new(
        r#"
[programs.db]
shell = "exec sleep 60"
grace = "2s"

[programs.broken]
shell = "echo 'cannot bind port 80' >&2; exit 3"
ready = { log = "^listening$" }
"#,
    );
    let out = here.warren(&["up", "-d"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(stderr.contains("broken") && stderr.contains("code 3"), "the reason: {stderr}");
    assert!(!text(&out.stdout).contains("warren down"), "no hints for an instance that is not there");
    // It returned once the instance had ended: nothing is left, not even for a moment.
    assert!(here.processes().is_empty(), "left behind: {:?}", here.processes());
    let out = here.warren(&["status"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
}

#[test]
fn sighup_to_a_detached_instance_reloads_its_file() {
    let here = Detached::new(TWO);
    let out = here.warren(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (db, web) = (here.pid("db").expect("db pid"), here.pid("web").expect("web pid"));
    std::fs::write(here.file(), with_child(&TWO.replace("MARK = \"1\"", "MARK = \"2\""))).expect("rewrite");
    testkit::signal(here.instance(), Signal::HUP);
    let deadline = Instant::now() + BOUND;
    loop {
        let rows = here.status();
        let web_row = rows.iter().find(|row| row["name"] == "web").expect("web row");
        if web_row["state"] == "ready" && web_row["pid"].as_u64().is_some_and(|pid| pid != web) {
            break;
        }
        assert!(Instant::now() < deadline, "web was not restarted with its new settings: {rows:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(here.pid("db"), Some(db), "the unchanged program was restarted");
    let log = std::fs::read_to_string(here.own_log()).expect("log");
    assert!(log.contains("SIGHUP: reloading") && log.contains("web: restarted"), "{log}");
    // SIGHUP does not count toward the second and third stop signals: three more are three
    // reloads with nothing to change, and the instance runs on.
    let instance = here.instance();
    let deadline = Instant::now() + BOUND;
    for n in 1..=3 {
        testkit::signal(instance, Signal::HUP);
        loop {
            let log = std::fs::read_to_string(here.own_log()).expect("log");
            if log.matches("nothing to change").count() >= n {
                break;
            }
            assert!(Instant::now() < deadline, "reload {n} not seen:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(alive(instance));
    assert_eq!(here.pid("db"), Some(db));
    assert!(here.warren(&["down"]).status.success());
    here.wait_gone();
}
