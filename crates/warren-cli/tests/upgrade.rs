//! Upgrading `warren up` in place (issue #18 point 3): `warren upgrade` and SIGUSR2 re-execute
//! the binary and every program runs on — same pids, no restart, no log line lost or doubled,
//! warren's RPC connection to each plugin carried across, calls through the control socket
//! answered across — and a binary that cannot take over is refused before anything is held.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use common::{BOUND, Background, Up, WARREN};
use rustix::process::Signal;

/// Lines the flood prints, 20 a millisecond: a few seconds, across the upgrades.
const FLOOD_LINES: usize = 60_000;

/// 1 flood, 9 RPC plugins, 10 sleepers.
fn twenty_programs() -> String {
    let mut toml = format!("[programs.flood]\ncommand = @child@\nargs = [\"trickle-then-wait\", \"{FLOOD_LINES}\"]\n");
    for i in 1..=9 {
        toml.push_str(&format!("\n[programs.rpc{i}]\ncommand = @child@\nargs = [\"plugin\"]\nready = \"warren\"\n"));
    }
    for i in 1..=10 {
        toml.push_str(&format!("\n[programs.idle{i}]\ncommand = @child@\nargs = [\"sleeper\"]\n"));
    }
    toml
}

/// Every program's pid and restart count.
fn pids_and_restarts(up: &mut Up) -> Vec<(String, u64, u64)> {
    let rows = up.status_json();
    rows.iter()
        .map(|row| {
            let name = row["name"].as_str().expect("a name").to_owned();
            (name, row["pid"].as_u64().unwrap_or(0), row["restarts"].as_u64().unwrap_or(u64::MAX))
        })
        .collect()
}

/// How many numbered flood lines there are, and how many are not where their number says.
fn in_order<'a>(lines: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let numbers: Vec<usize> = lines
        .map(|l| {
            let text = &l[l.find("line ").unwrap_or(0)..];
            text.get(5..13).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("a numbered line: {l:?}"))
        })
        .collect();
    (numbers.len(), numbers.iter().enumerate().filter(|(i, n)| i != *n).count())
}

/// The number of the flood's last line in its log so far.
fn last_flood_line(up: &Up) -> usize {
    let output = up.warren(["logs", "flood", "-n", "1"]).output().expect("warren logs flood");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().filter_map(|l| l.strip_prefix("line ")?.get(..8)?.parse().ok()).next_back().unwrap_or(0)
}

/// Each plugin's number for warren's connection to it (its server counts connections).
fn plugin_connections(up: &Up) -> Vec<u64> {
    (1..=9)
        .map(|i| {
            let output = up.warren(["call", &format!("rpc{i}"), "Task.Connection"]).output().expect("warren call");
            assert!(output.status.success(), "Task.Connection: {}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).trim().parse().expect("a connection number")
        })
        .collect()
}

/// `warren call` in a loop through the control socket, round the plugins, until stopped.
struct CallLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl CallLoop {
    fn start(up: &Up) -> CallLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (socket, dir, flag) = (up.socket(), up.dir().to_owned(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let (mut answered, mut failed) = (0, Vec::new());
            // Bounded in count as well as by the flag.
            for i in 0..20_000 {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let output = Command::new(WARREN)
                    .args(["call", &format!("rpc{}", i % 9 + 1), "Task.Get", r#""x""#])
                    .current_dir(&dir)
                    .env("WARREN_CONTROL", &socket)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run warren call");
                if output.status.success() {
                    answered += 1;
                } else {
                    failed.push(String::from_utf8_lossy(&output.stderr).trim().to_owned());
                }
            }
            (answered, failed)
        });
        CallLoop { stop, thread }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the call loop")
    }
}

#[test]
fn twenty_programs_run_on_through_ten_upgrades_under_calls_and_a_flood() {
    let mut up = Up::start_within(&twenty_programs(), Duration::from_secs(120), |_, _| {});
    up.wait_line("all programs are up", BOUND);
    let before = pids_and_restarts(&mut up);
    assert_eq!(before.len(), 20);
    assert!(before.iter().all(|(_, pid, restarts)| *pid > 0 && *restarts == 0), "{before:?}");
    let connections = plugin_connections(&up);
    let calls = CallLoop::start(&up);
    // A follower across every upgrade: it carries on where it was.
    let mut follow = Command::new(WARREN);
    follow.args(["logs", "-f", "-n", "1000000", "flood"]).current_dir(up.dir()).env("WARREN_CONTROL", up.socket());
    let mut follower = Background::spawn(follow);
    let flood_at_first = last_flood_line(&up);
    let mut pauses = Vec::new();
    for upgrade in 1..=10 {
        let asked = Instant::now();
        // Half by `warren upgrade`, half by SIGUSR2.
        if upgrade % 2 == 0 {
            let output = up.warren(["upgrade"]).output().expect("run warren upgrade");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("upgraded"),
                "warren upgrade {upgrade}: {}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        } else {
            up.signal(Signal::USR2);
        }
        up.wait_line(&format!("(upgrade {upgrade}, pid {}", up.pid()), BOUND);
        pauses.push(asked.elapsed());
        assert_eq!(pids_and_restarts(&mut up), before, "after upgrade {upgrade}");
    }
    let (answered, failed) = calls.finish();
    // warren's connection to each plugin crossed every exec: the plugin saw no new one.
    assert_eq!(plugin_connections(&up), connections, "each plugin's connection from warren, as the plugin numbers it");
    eprintln!("calls: {answered} answered, {} failed: {failed:?}; upgrades took {pauses:?}", failed.len());
    assert!(answered > 0, "no call was answered");
    // A call cut by the exec is the only failure allowed, and says so.
    for message in &failed {
        assert!(message.contains("retry"), "a failed call says it may be retried: {message}");
    }
    // The flood ran across the upgrades, and every line of it is in its log once, in order.
    assert!(flood_at_first + 1 < FLOOD_LINES, "the flood ended before the first upgrade");
    let deadline = Instant::now() + BOUND;
    let lines = loop {
        let output = up.warren(["logs", "flood", "-n", "1000000"]).output().expect("warren logs flood");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let lines: Vec<String> = text.lines().filter(|l| l.starts_with("line ")).map(str::to_owned).collect();
        if lines.len() >= FLOOD_LINES || Instant::now() >= deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(in_order(lines.iter().map(String::as_str)), (FLOOD_LINES, 0), "every flood line once, in order");
    follower.wait_lines("line ", FLOOD_LINES, BOUND);
    let followed = follower.stdout().into_iter().filter(|l| l.contains("line "));
    assert_eq!(in_order(followed), (FLOOD_LINES, 0), "`warren logs -f` saw every line once, in order");
    // The upgraded warren killed: nothing survives it.
    up.signal(Signal::KILL);
    up.wait_exit(BOUND);
    up.assert_no_leftovers(BOUND);
}

#[test]
fn a_binary_that_cannot_take_over_is_refused_and_warren_runs_on() {
    let mut up = Up::start("[programs.rpc]\ncommand = @child@\nargs = [\"plugin\"]\nready = \"warren\"\n");
    up.wait_line("all programs are up", BOUND);
    let before = pids_and_restarts(&mut up);
    // Missing; and one that reads another state format (an older or newer warren).
    let other_format = up.dir().join("other-warren");
    std::fs::write(&other_format, "#!/bin/sh\necho host 0 supervisor 1 up 1\n").expect("write a fake binary");
    std::fs::set_permissions(&other_format, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let refusals = [("/nonexistent/warren", "cannot run /nonexistent/warren"), ("other-warren", "reads state formats")];
    for (to, why) in refusals {
        let output = up.warren(["upgrade", "--to", to]).output().expect("run warren upgrade");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(5), "warren upgrade --to {to}: {stderr}");
        assert!(stderr.contains("not upgraded, running as before") && stderr.contains(why), "{stderr}");
        up.wait_line("not upgraded, running as before: ", BOUND);
        assert_eq!(pids_and_restarts(&mut up), before);
        up.warren(["call", "rpc", "Task.Get", r#""x""#]).assert().success();
    }
    up.signal(Signal::TERM);
    assert!(up.wait_exit(BOUND).success(), "{}", up.transcript());
    up.assert_no_leftovers(BOUND);
}

#[test]
fn a_stop_signal_during_an_upgrade_is_a_graceful_stop_not_a_death() {
    // Signals sent while the exec happens wait, blocked, for the new image's handlers.
    for delay_ms in [0, 2, 5, 10, 25, 40] {
        let mut up = Up::start("[programs.rpc]\ncommand = @child@\nargs = [\"plugin\"]\nready = \"warren\"\n");
        up.wait_line("all programs are up", BOUND);
        up.signal(Signal::USR2);
        std::thread::sleep(Duration::from_millis(delay_ms));
        up.signal(Signal::TERM);
        let status = up.wait_exit(BOUND);
        assert!(status.success(), "{delay_ms} ms after SIGUSR2: {status}\n{}", up.transcript());
        assert!(up.transcript().contains("rpc: stopped"), "{}", up.transcript());
        eprintln!(
            "{delay_ms} ms: {}",
            up.transcript()
                .lines()
                .filter(|l| l.contains("upgrad") || l.contains("SIGTERM"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
        up.assert_no_leftovers(BOUND);
    }
}

/// `python3 -c THIS PROGRAM ARGS…`: PROGRAM with SIGINT at its default, in the same process.
const DEFAULT_SIGINT_THEN_EXEC: &str =
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])";

#[test]
fn commands_other_than_up_end_on_ctrl_c() {
    // Only `up` holds the stop signals for its handlers (see docs/UPGRADE.md): a follower
    // must still end on Ctrl-C.
    let mut up = Up::start("[programs.one]\ncommand = @child@\nargs = [\"flood-then-wait\", \"1\"]\n");
    up.wait_line("all programs are up", BOUND);
    // Through python, which puts SIGINT back to its default first: a test run in the background
    // of a non-interactive shell inherits it ignored, and a follower started so is meant to
    // ignore Ctrl-C.
    let mut follow = Command::new("python3");
    follow
        .args(["-c", DEFAULT_SIGINT_THEN_EXEC, WARREN, "logs", "-f"])
        .current_dir(up.dir())
        .env("WARREN_CONTROL", up.socket());
    let mut follower = Background::spawn(follow);
    // It has printed the program's line: it is up and following, its handlers (if any) set.
    follower.wait_lines("line ", 1, BOUND);
    assert!(testkit::signal(follower.pid(), Signal::INT), "SIGINT the follower");
    // Bounded: it ends on the signal, or the wait fails the test.
    follower.wait_exit(BOUND);
    up.signal(Signal::TERM);
    up.wait_exit(BOUND);
    up.assert_no_leftovers(BOUND);
}
