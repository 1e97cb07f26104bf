//! Programs' log files and `warren logs`, against a real `warren up`: the file format, rotation
//! and its bound, a full disk, the filters, the merged view, and a follower that never loses a
//! line — also five at once, and one paused for 5 s.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BOUND, Up};
use predicates::prelude::*;
use regex::Regex;
use rustix::process::Signal;
use serde_json::Value;

/// The instance's log directory under the fixture's `XDG_STATE_HOME`.
fn logs_dir(up: &Up) -> PathBuf {
    let base = up.dir().join("state/warren");
    let instance = std::fs::read_dir(&base).expect("the state directory").next().expect("an instance").expect("entry");
    instance.path().join("logs")
}

fn stdout(up: &Up, args: &[&str]) -> String {
    let output = up.warren(args).output().expect("run warren logs");
    assert!(output.status.success(), "warren {args:?}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn wait_until(what: &str, bound: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn down(up: &mut Up) {
    up.warren(["down"]).assert().success();
    up.wait_exit(BOUND);
    up.assert_no_leftovers(Duration::from_secs(3));
}

/// Keeps `up` running after the printers end (it ends by itself once every program has).
const IDLE: &str = "[programs.idle]\ncommand = @child@\nargs = [\"sleeper\"]\n";

const TWO_PRINTERS: &str = r#"
[programs.alpha]
shell = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.01; done; echo done; exec sleep 60"
restart = "never"

[programs.beta]
shell = "for i in 1 2 3; do echo beta$i; sleep 0.01; done; echo done; exec sleep 60"
restart = "never"
"#;

#[test]
fn files_hold_the_documented_records_and_logs_filters_them() {
    let mut up = Up::start(TWO_PRINTERS);
    up.wait_for("both done", BOUND, |lines| {
        (lines.iter().filter(|l| l.text.ends_with("| done")).count() == 2).then_some(())
    });
    let file = logs_dir(&up).join("alpha.log");
    let format =
        Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z alpha\[(\d+)\] (out|err) (\d+) \| (.*)$").expect("regex");
    wait_until("alpha's seven records in its file", BOUND, || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.lines().count() == 7)
    });
    let text = std::fs::read_to_string(&file).expect("alpha.log");
    let mut seqs = Vec::new();
    for line in text.lines() {
        let fields = format.captures(line).unwrap_or_else(|| panic!("not in the documented format: {line:?}"));
        seqs.push(fields[3].parse::<u64>().expect("seq"));
        let expected_stream = if fields[4].starts_with("err") { "err" } else { "out" };
        assert_eq!(&fields[2], expected_stream, "{line}");
    }
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>(), "{text}");

    // One program: its text as printed (stdout and stderr are two pipes, each in order).
    let all = stdout(&up, &["logs", "alpha"]);
    let mut sorted: Vec<&str> = all.lines().collect();
    sorted.sort_unstable();
    assert_eq!(sorted, ["done", "err1", "err2", "err3", "out1", "out2", "out3"], "{all}");
    assert_eq!(stdout(&up, &["logs", "alpha", "-n", "1"]), "done\n");
    assert_eq!(stdout(&up, &["logs", "alpha", "--stream", "out"]), "out1\nout2\nout3\ndone\n");
    assert_eq!(stdout(&up, &["logs", "alpha", "--stream", "err"]), "err1\nerr2\nerr3\n");
    assert_eq!(stdout(&up, &["logs", "alpha", "--grep", "^out[13]$"]), "out1\nout3\n");
    assert_eq!(stdout(&up, &["logs", "alpha", "--grep", "^out", "-n", "2"]), "out2\nout3\n");
    assert_eq!(stdout(&up, &["logs", "alpha", "--since", "1h"]).lines().count(), 7);
    assert_eq!(stdout(&up, &["logs", "alpha", "--since", "2999-01-01T00:00:00"]), "");
    let stamped = stdout(&up, &["logs", "alpha", "-n", "1", "--timestamps"]);
    assert!(Regex::new(r"^\d{4}-\S+Z done\n$").expect("regex").is_match(&stamped), "{stamped:?}");

    // JSON lines.
    let json = stdout(&up, &["logs", "alpha", "--json", "-n", "1"]);
    let row: Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(row["program"], "alpha");
    assert_eq!(row["stream"], "out");
    assert_eq!(row["seq"], 7);
    assert_eq!(row["line"], "done");
    assert!(row["time"].as_str().is_some_and(|t| t.len() == 27), "{row}");

    // No name: every program, in time order, prefixed like `up`.
    let merged = stdout(&up, &["logs", "--json"]);
    let rows: Vec<Value> = merged.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(rows.len(), 11, "{merged}");
    let times: Vec<&str> = rows.iter().map(|r| r["time"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order: {merged}");
    let plain = stdout(&up, &["logs", "-n", "3"]);
    assert_eq!(plain.lines().count(), 3, "{plain}");
    assert!(plain.lines().all(|l| l.starts_with("alpha  | ") || l.starts_with("beta   | ")), "{plain}");
    let two = stdout(&up, &["logs", "alpha", "beta", "--grep", "^(out1|beta1)$"]);
    let mut two: Vec<&str> = two.lines().collect();
    two.sort_unstable();
    assert_eq!(two, ["alpha  | out1", "beta   | beta1"]);

    up.warren(["logs", "nope"]).assert().code(5).stderr(predicate::str::contains("known: alpha, beta"));
    up.warren(["logs", "alpha", "--stream", "both"]).assert().code(5);
    assert_eq!(up.row("alpha")["log_lost"], 0);
    down(&mut up);
}

#[test]
fn rotation_bounds_the_files_and_logs_n_reads_across_them() {
    let mut up = Up::start(&format!(
        r#"
[defaults]
max_size = "256KiB"
keep = 3

[programs.flood]
command = @child@
args = ["flood", "30000"]
restart = "never"
{IDLE}"#
    ));
    up.wait_line("control socket", BOUND);
    up.wait_status("flood", Duration::from_secs(20), |row| row["state"] == "exited");
    let dir = logs_dir(&up);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("logs dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .filter(|name| name.starts_with("flood."))
        .collect();
    names.sort();
    assert_eq!(names, ["flood.log", "flood.log.1", "flood.log.2", "flood.log.3"]);
    for name in &names {
        let len = std::fs::metadata(dir.join(name)).expect("metadata").len();
        assert!(len <= 256 * 1024, "{name} is {len} bytes");
    }
    // About 1,900 records fit in a file: 5,000 reach back through three of them.
    let tail = stdout(&up, &["logs", "flood", "-n", "5000"]);
    let numbers: Vec<u64> = tail.lines().map(|l| l[5..13].parse().expect("a line number")).collect();
    assert_eq!(numbers, (25_000..30_000).collect::<Vec<_>>());
    // Asked for more than is kept: what is kept, from the oldest file on.
    let kept = stdout(&up, &["logs", "flood", "-n", "30000"]);
    let first: u64 = kept.lines().next().expect("a line")[5..13].parse().expect("number");
    assert!(first > 20_000 && kept.lines().count() as u64 == 30_000 - first, "{first}");
    down(&mut up);
}

/// A 1 MiB tmpfs mounted on `path`, lazily unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_once_counted_and_never_stalls_the_programs() {
    let mut tmpfs = None;
    let mut up = Up::start_with(
        r#"
logs_dir = "logs"

[defaults]
max_size = "100MiB"

# The flood waits for the go-ahead: the ticker's first lines must be on disk before the disk
# fills, or its later gap has no line before it to be told after.
[programs.flood]
shell = "while [ ! -e go ]; do sleep 0.02; done; exec \"$CHILD\" flood 50000"
env = { CHILD = @child@ }
restart = "never"

[programs.ticker]
shell = "while :; do echo tick; sleep 0.02; done"
"#,
        |_, dir| {
            // A small disk, nearly full before warren starts.
            tmpfs = Tmpfs::mount(&dir.join("logs"));
            if tmpfs.is_some() {
                std::fs::write(dir.join("logs/filler"), vec![0u8; 768 * 1024]).expect("filler");
            }
        },
    );
    if tmpfs.is_none() {
        testkit::skip::unavailable("mounting a tmpfs needs root");
        return;
    }
    up.wait_line("control socket", BOUND);
    let deadline = Instant::now() + BOUND;
    while !stdout(&up, &["logs", "ticker", "-n", "1"]).contains("tick") {
        assert!(Instant::now() < deadline, "the ticker's first line never reached its file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(up.dir().join("go"), "").expect("let the flood start");
    up.wait_line("flood: cannot write its log", BOUND);
    // 5 MB into a quarter of a MiB: flood still ran to its end, never blocked on its pipe.
    let row = up.wait_status("flood", BOUND, |row| row["state"] == "exited");
    assert!(row["detail"].as_str().is_some_and(|d| d.contains("code 0")), "{row:#}");
    let lost = row["log_lost"].as_u64().expect("log_lost");
    assert!(lost > 40_000, "{row:#}");
    let table = stdout(&up, &["status"]);
    assert!(table.contains(&format!("{lost} log lines lost")), "{table}");

    // Whatever room is left filled up too: the ticker fails, then works again once it is freed.
    let _ = std::fs::write(up.dir().join("logs/filler2"), vec![0u8; 1024 * 1024]);
    up.wait_line("ticker: cannot write its log", BOUND);
    std::fs::remove_file(up.dir().join("logs/filler")).expect("free the space");
    std::fs::remove_file(up.dir().join("logs/filler2")).expect("free the space");
    up.wait_line("ticker: writing its log ", Duration::from_secs(20));
    let reports = up.transcript().matches("flood: cannot write its log").count();
    assert_eq!(reports, 1, "flood's failure reported once:\n{}", up.transcript());
    let ticks = stdout(&up, &["logs", "ticker", "-n", "100000"]);
    assert!(ticks.contains("lines lost (could not be written"), "the gap is told in place:\n{ticks}");
    down(&mut up);
    drop(tmpfs);
}

/// A `warren logs -f` whose numbered flood lines are checked as they come, on a thread.
struct Follower {
    process: Child,
    received: Arc<AtomicU64>,
    problem: Arc<Mutex<Option<String>>>,
}

/// `warren logs ARGS` against `up`, its output on a pipe.
fn logs_command(up: &Up, args: &[&str]) -> std::process::Child {
    Command::new(common::WARREN)
        .arg("logs")
        .args(args)
        .env("WARREN_CONTROL", up.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start warren logs")
}

impl Follower {
    fn start(up: &Up, program: &str) -> Follower {
        let mut process = logs_command(up, &["-f", "-n", "100000000", program]);
        let received = Arc::new(AtomicU64::new(0));
        let problem = Arc::new(Mutex::new(None));
        let out = process.stdout.take().expect("stdout");
        let (count, trouble) = (Arc::clone(&received), Arc::clone(&problem));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let expected = count.load(Ordering::Relaxed);
                let number = line.get(5..13).and_then(|n| n.parse::<u64>().ok());
                if number != Some(expected) {
                    *trouble.lock().expect("lock") = Some(format!("expected line {expected}, got {line:?}"));
                    return;
                }
                count.store(expected + 1, Ordering::Relaxed);
            }
        });
        Follower { process, received, problem }
    }

    fn wait_for(&self, n: u64, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(problem) = self.problem.lock().expect("lock").clone() {
                panic!("follower: {problem}");
            }
            let got = self.received.load(Ordering::Relaxed);
            if got >= n {
                return;
            }
            assert!(Instant::now() < deadline, "follower got {got} of {n} lines within {bound:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How many lines the lossless-follow tests flood with: the issue's million in a release build
/// (`cargo test --release`); a debug build's `warren` is about ten times slower, so a twentieth (five followers on a loaded 2-CPU machine must finish well within the fixture's 25 s).
const FLOOD: u64 = if cfg!(debug_assertions) { 50_000 } else { 1_000_000 };

fn flood_config() -> String {
    // The flood begins a second after `up` starts: the followers are there from its first line.
    format!(
        r#"
[defaults]
max_size = "1GiB"

[programs.flood]
command = "/bin/sh"
args = ["-c", "sleep 1 && exec \"$0\" flood {FLOOD}", @child@]
restart = "never"
{IDLE}"#
    )
}

fn follow_flood(followers: usize, pause: bool) {
    let mut up = Up::start(&flood_config());
    up.wait_line("control socket", BOUND);
    let started = Instant::now();
    let followers: Vec<Follower> = (0..followers).map(|_| Follower::start(&up, "flood")).collect();
    if pause {
        followers[0].wait_for(FLOOD / 10, BOUND);
        assert!(testkit::signal(followers[0].process.id(), Signal::STOP));
        std::thread::sleep(Duration::from_secs(5));
        assert!(testkit::signal(followers[0].process.id(), Signal::CONT));
    }
    for follower in &followers {
        follower.wait_for(FLOOD, Duration::from_secs(20));
    }
    eprintln!("{} follower(s) got {FLOOD} lines {:?} after up started", followers.len(), started.elapsed());
    // None twice: nothing more arrives after the last line.
    std::thread::sleep(Duration::from_millis(300));
    for follower in &followers {
        assert_eq!(follower.received.load(Ordering::Relaxed), FLOOD);
        assert!(follower.problem.lock().expect("lock").is_none());
    }
    down(&mut up);
}

#[test]
fn a_follower_gets_every_line_of_a_flood_in_order_once() {
    follow_flood(1, false);
}

#[test]
fn five_followers_get_every_line() {
    follow_flood(5, false);
}

#[test]
fn a_follower_paused_for_5_s_catches_up_from_the_files() {
    follow_flood(1, true);
}

#[test]
fn a_merged_follower_gets_every_line_of_two_floods_each_in_order() {
    let each = FLOOD / 5;
    let mut up = Up::start(&format!(
        r#"
[defaults]
max_size = "1GiB"

[programs.one]
command = "/bin/sh"
args = ["-c", "sleep 1 && exec \"$0\" flood {each}", @child@]
restart = "never"

[programs.two]
command = "/bin/sh"
args = ["-c", "sleep 1 && exec \"$0\" flood {each}", @child@]
restart = "never"
{IDLE}"#
    ));
    up.wait_line("control socket", BOUND);
    let mut follower = logs_command(&up, &["-f", "-n", "100000000", "--json"]);
    let out = BufReader::new(follower.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut next = [0u64, 0u64];
        for line in out.lines() {
            let Ok(line) = line else { return };
            let row: Value = serde_json::from_str(&line).expect("a JSON line");
            let which = usize::from(row["program"] == "two");
            let number: u64 = row["line"].as_str().and_then(|t| t.get(5..13)).and_then(|n| n.parse().ok()).expect("n");
            assert_eq!(number, next[which], "{line}");
            next[which] += 1;
            if next == [each, each] {
                let _ = tx.send(());
                return;
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    let _ = follower.kill();
    let _ = follower.wait();
    // While following live, a program read to its end does not hold the others back, so the
    // programs interleave as their lines arrive: each program's own lines stay in order.
    assert!(got.is_ok(), "the merged follower did not get {each} lines of each program in order");
    down(&mut up);
}

#[test]
fn a_follower_whose_place_was_rotated_away_is_told_how_many_lines_it_skipped() {
    let lines = 50_000u64;
    let mut up = Up::start(&format!(
        r#"
[defaults]
max_size = "64KiB"
keep = 2

[programs.flood]
command = "/bin/sh"
args = ["-c", "sleep 1 && exec \"$0\" flood {lines}", @child@]
restart = "never"
{IDLE}"#
    ));
    up.wait_line("control socket", BOUND);
    let mut follower = logs_command(&up, &["-f", "flood"]);
    let out = BufReader::new(follower.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Paused before the flood, resumed after: 5 MB went through 192 KiB of files meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    assert!(testkit::signal(follower.id(), Signal::STOP));
    up.wait_status("flood", BOUND, |row| row["state"] == "exited");
    assert!(testkit::signal(follower.id(), Signal::CONT));
    let gap = Regex::new(r"^… (\d+) lines skipped \(rotated away").expect("regex");
    let (mut skipped, mut shown, mut last) = (0, 0, None);
    let deadline = Instant::now() + BOUND;
    while last != Some(lines - 1) {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("more lines");
        if let Some(fields) = gap.captures(&line) {
            skipped += fields[1].parse::<u64>().expect("count");
        } else {
            last = Some(line[5..13].parse().expect("a line number"));
            shown += 1;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(skipped > 0, "no skip reported");
    assert_eq!(skipped + shown, lines, "every line shown or counted as skipped");
    down(&mut up);
}

#[test]
fn with_stdout_on_dev_null_every_line_still_reaches_the_file_and_its_followers() {
    // `up > /dev/null` makes no terminal lines at all: the files and `logs` must not notice.
    let lines = 20_000u64;
    let mut up = Up::start_with(
        &format!(
            r#"
[programs.flood]
command = "/bin/sh"
args = ["-c", "sleep 1 && exec \"$0\" flood {lines}", @child@]
restart = "never"
{IDLE}"#
        ),
        |command, _| {
            command.stdout(Stdio::from(std::fs::File::create("/dev/null").expect("/dev/null")));
        },
    );
    let socket = up.socket();
    wait_until("the control socket", BOUND, || socket.exists());
    let mut follower = logs_command(&up, &["-f", "flood"]);
    let out = BufReader::new(follower.stdout.take().expect("stdout"));
    let reader = std::thread::spawn(move || {
        let mut next = 0;
        for line in out.lines().map_while(Result::ok) {
            assert_eq!(line[5..13].parse::<u64>().expect("a line number"), next, "{line}");
            next += 1;
            if next == lines {
                break;
            }
        }
        next
    });
    up.wait_status("flood", BOUND, |row| row["state"] == "exited");
    let file = logs_dir(&up).join("flood.log");
    wait_until("every record in the file", BOUND, || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.lines().count() as u64 == lines)
    });
    let text = std::fs::read_to_string(&file).expect("flood.log");
    let seqs: Vec<u64> = text.lines().map(|l| l.split(' ').nth(3).expect("seq").parse().expect("a number")).collect();
    assert_eq!(seqs, (1..=lines).collect::<Vec<_>>());
    let deadline = Instant::now() + BOUND;
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped first, so that a failed check leaves no follower behind.
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(reader.join().expect("the follower's reader"), lines, "lines the follower got");
    down(&mut up);
}
