//! `start`, `stop` and `restart` do what they say (issue #13, point 5), on a real `warren up`:
//! they wait for the outcome and exit 1 when a program does not come back, leave a running
//! program alone, stop dependents first, take several names or `--all`; `-f` finds the
//! instance from anywhere; usage errors exit 64; completions and the man page are generated.

// Each test file uses only part of the fixture.
#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BOUND, Up, WARREN, alive};
use predicates::prelude::*;

fn pid(up: &mut Up, program: &str) -> u64 {
    up.row(program)["pid"].as_u64().unwrap_or_else(|| panic!("{program} has a pid:\n{}", up.transcript()))
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `warren down`, then checks that `up` ended cleanly and left nothing behind.
fn down(up: &mut Up, expected: i32) {
    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(expected), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

/// Ready one second after it starts (a log line): long enough to tell waiting from not.
const SLOW: &str = r#"
[programs.slow]
shell = "sleep 1; echo up; exec sleep 60"
ready = { log = "^up$" }
grace = "2s"
"#;

#[test]
fn restart_returns_once_the_new_instance_is_ready() {
    let mut up = Up::start(SLOW);
    up.wait_event("slow", "ready", BOUND);
    let before = pid(&mut up, "slow");

    let began = Instant::now();
    let output = up.warren(["restart", "slow"]).output().expect("run warren restart");
    let took = began.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let row = up.row("slow");
    assert_eq!(row["state"], "ready", "ready when restart returns: {row:#}");
    let after = row["pid"].as_u64().expect("pid");
    assert_ne!(after, before, "a new instance");
    assert!(!alive(u32::try_from(before).expect("pid")), "the old instance is gone");
    assert!(stdout(&output).contains(&format!("slow: ready (pid {after})")), "{}", stdout(&output));
    assert!(took >= Duration::from_millis(900), "it waited for the 1 s readiness: {took:?}");

    // --no-wait: back at once, the new instance not yet ready.
    let began = Instant::now();
    up.warren(["restart", "--no-wait", "slow"]).assert().success().stdout(predicate::str::contains("slow: restarting"));
    assert!(began.elapsed() < Duration::from_millis(900), "returned at once: {:?}", began.elapsed());
    assert_ne!(up.row("slow")["state"], "ready", "not waited for");
    let row = up.wait_status("slow", BOUND, |row| row["state"] == "ready");
    assert_ne!(row["pid"].as_u64(), Some(after), "restarted again: {row:#}");
    down(&mut up, 0);
}

#[test]
fn restart_exits_1_with_the_reason_when_the_program_does_not_come_back() {
    let mut up = Up::start(
        r#"
[programs.once]
# Runs the first time only: the marker it leaves makes every later start fail.
shell = "test -e started && exit 7; touch started; echo up; exec sleep 60"
ready = { log = "^up$" }
restart = "on-failure"
backoff = { initial = "5s" }

[programs.slow]
shell = "sleep 1; echo up; exec sleep 60"
ready = { log = "^up$" }
"#,
    );
    up.wait_line("all programs are up", BOUND);
    up.warren(["restart", "once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "once: did not come back: once exited before it was ready (exited with code 7)",
        ))
        .stderr(predicate::str::contains("restarting in"));

    // A bound that the restart overruns: exit 1, saying so.
    up.warren(["restart", "--timeout", "300ms", "slow"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("slow: not up within 300ms"));
    // Stopped while waiting for a restart, neither ended in failure.
    down(&mut up, 0);
}

#[test]
fn start_leaves_a_running_program_alone_and_restarts_a_failed_one_with_a_fresh_crash_count() {
    let mut up = Up::start(
        r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.crashy]
command = @child@
args = ["crash-after", "300"]
ready = "notify"
restart = "on-failure"
backoff = { initial = "50ms" }
crash_loop = { max_starts = 2, window = "60s" }
"#,
    );
    up.wait_event("alpha", "ready", BOUND);
    up.wait_event("crashy", "failed: crash loop", BOUND);
    let before = pid(&mut up, "alpha");
    let output = up.warren(["start", "alpha"]).output().expect("run warren start");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("alpha: already running (pid {before})")), "{}", stdout(&output));
    let row = up.row("alpha");
    assert_eq!((row["pid"].as_u64(), row["restarts"].as_u64()), (Some(before), Some(0)), "untouched: {row:#}");
    assert_eq!(up.events("alpha", "starting").len(), 1, "{}", up.transcript());

    // Without the reset, the crash-loop limit would refuse the start at once.
    assert_eq!(up.events("crashy", "starting").len(), 2);
    up.warren(["start", "crashy"]).assert().success().stdout(predicate::str::contains("crashy: ready (pid"));
    up.wait_events("crashy", "failed: crash loop", 2, BOUND);
    assert_eq!(up.events("crashy", "starting").len(), 4, "two more starts:\n{}", up.transcript());
    down(&mut up, 1);
}

/// web depends on api, api on db; other is independent.
const CHAIN: &str = r#"
[programs.db]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.api]
command = @child@
args = ["plugin"]
ready = "warren"
depends_on = ["db"]

[programs.web]
command = @child@
args = ["plugin"]
ready = "warren"
depends_on = ["api"]

[programs.other]
command = @child@
args = ["plugin"]
ready = "warren"
"#;

#[test]
fn stop_stops_dependents_first_and_says_which() {
    let mut up = Up::start(CHAIN);
    up.wait_line("all programs are up", BOUND);
    let other = pid(&mut up, "other");
    let output = up.warren(["stop", "db"]).output().expect("run warren stop");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(said, ["web: stopped (it depends on db)", "api: stopped (it depends on db)", "db: stopped"]);
    for program in ["db", "api", "web"] {
        assert_eq!(up.row(program)["state"], "stopped", "{program}");
    }
    for program in ["db", "api", "web"] {
        up.wait_event(program, "stopped", BOUND);
    }
    let order: Vec<Option<usize>> = ["web", "api", "db"].iter().map(|p| up.event_index(p, "stopped")).collect();
    assert!(order[0] < order[1] && order[1] < order[2], "web, then api, then db:\n{}", up.transcript());
    assert_eq!(pid(&mut up, "other"), other, "the independent program runs on");

    // Again: nothing left to do, and it says so.
    up.warren(["stop", "db"]).assert().success().stdout(predicate::str::contains("db: already stopped"));

    // Starting db again leaves its dependents stopped, and says how to start them.
    let output = up.warren(["start", "db"]).output().expect("run warren start");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(said.contains("api: still stopped (it depends on db); `warren start api` starts it"), "{said}");
    assert!(said.contains("web: still stopped"), "{said}");
    assert_eq!(up.row("web")["state"], "stopped");
    down(&mut up, 0);
}

#[test]
fn stop_only_leaves_dependents_running_with_a_warning() {
    let mut up = Up::start(CHAIN);
    up.wait_line("all programs are up", BOUND);
    let (api, web) = (pid(&mut up, "api"), pid(&mut up, "web"));
    up.warren(["stop", "--only", "db"])
        .assert()
        .success()
        .stdout(predicate::str::diff("db: stopped\n"))
        .stderr(predicate::str::contains("warning: db: api, web depend on it and keep running"));
    assert_eq!(up.row("db")["state"], "stopped");
    assert_eq!((pid(&mut up, "api"), pid(&mut up, "web")), (api, web), "dependents untouched");
    down(&mut up, 0);
}

#[test]
fn start_stop_restart_take_several_names_and_all() {
    let mut up = Up::start(CHAIN);
    up.wait_line("all programs are up", BOUND);
    let pids: Vec<u64> = ["db", "api", "web", "other"].iter().map(|p| pid(&mut up, p)).collect();

    up.warren(["restart", "web", "other"]).assert().success();
    let now: Vec<u64> = ["db", "api", "web", "other"].iter().map(|p| pid(&mut up, p)).collect();
    assert_eq!(now[..2], pids[..2], "db and api untouched");
    assert!(now[2] != pids[2] && now[3] != pids[3], "web and other restarted: {pids:?} -> {now:?}");

    let output = up.warren(["stop", "--all"]).output().expect("run warren stop --all");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said = stdout(&output);
    let at = |p: &str| said.find(&format!("{p}: stopped")).unwrap_or_else(|| panic!("{p} stopped:\n{said}"));
    assert!(at("web") < at("api") && at("api") < at("db"), "dependents first:\n{said}");
    assert!(up.status_json().iter().all(|row| row["state"] == "stopped"), "all stopped");

    // Named dependents first: each still starts after what it depends on.
    up.warren(["start", "web", "api", "db"]).assert().success();
    up.warren(["start", "--all"]).assert().success().stdout(predicate::str::contains("other: ready"));
    assert!(up.status_json().iter().all(|row| row["state"] == "ready"), "all up when start returns");
    let output = up.warren(["start", "db", "other"]).output().expect("run warren start");
    let said = stdout(&output);
    assert!(said.contains("db: already running") && said.contains("other: already running"), "{said}");

    let before: Vec<u64> = ["db", "api", "web", "other"].iter().map(|p| pid(&mut up, p)).collect();
    up.warren(["restart", "--all"]).assert().success();
    let rows = up.status_json();
    for (row, old) in rows.iter().zip(&before) {
        assert_eq!(row["state"], "ready", "{row:#}");
        assert_ne!(row["pid"].as_u64(), Some(*old), "{row:#}");
    }
    // Names and --all do not mix; an unknown name changes nothing.
    up.warren(["stop", "--all", "db"]).assert().code(64);
    up.warren(["stop", "db", "nope"]).assert().code(5).stderr(predicate::str::contains("\"nope\""));
    assert_eq!(up.row("db")["state"], "ready");
    down(&mut up, 0);
}

/// A `warren` command that finds the instance by its directory only (no `WARREN_CONTROL`),
/// run from elsewhere.
fn located(cwd: &std::path::Path, args: &[&std::ffi::OsStr]) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(WARREN);
    command.args(args).current_dir(cwd).env_remove("WARREN_CONTROL").env("NO_COLOR", "1").timeout(BOUND);
    command
}

#[test]
fn file_finds_the_instance_from_anywhere_by_file_or_directory() {
    let mut up = Up::start_with(
        r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"
"#,
        |command, _| {
            command.env_remove("WARREN_CONTROL");
        },
    );
    up.wait_event("alpha", "ready", BOUND);
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let (dir, file) = (up.dir().as_os_str().to_owned(), up.config().into_os_string());
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    for target in [&dir, &file] {
        for flag in [os("-f"), os("--file")] {
            located(elsewhere.path(), &[os("status"), flag, target]).assert().success();
            located(elsewhere.path(), &[os("start"), os("alpha"), flag, target])
                .assert()
                .success()
                .stdout(predicate::str::contains("already running"));
            located(elsewhere.path(), &[os("call"), flag, target, os("alpha"), os("Task.Get"), os("\"x\"")])
                .assert()
                .success();
        }
        // `logs` keeps -f for --follow, as tail does; --file finds the instance.
        located(elsewhere.path(), &[os("logs"), os("--file"), target, os("alpha")]).assert().success();
    }
    let pid_of = |target: &std::ffi::OsStr| -> Option<u64> {
        let output = located(elsewhere.path(), &[os("status"), os("--json"), os("-f"), target]).output().ok()?;
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).ok()?;
        rows.first()?["pid"].as_u64()
    };
    let before = pid_of(&dir).expect("alpha's pid");
    up.learn(u32::try_from(before).expect("pid"));
    located(elsewhere.path(), &[os("restart"), os("-f"), &dir, os("alpha")]).assert().success();
    located(elsewhere.path(), &[os("stop"), os("-f"), &dir, os("alpha")]).assert().success();
    located(elsewhere.path(), &[os("start"), os("-f"), &dir, os("alpha")]).assert().success();
    let after = pid_of(&file).expect("alpha's new pid");
    up.learn(u32::try_from(after).expect("pid"));
    assert_ne!(after, before, "restarted, stopped and started again");
    located(elsewhere.path(), &[os("down"), os("-f"), &dir]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));

    // Nothing runs there now: the directory is named, absolute, with what to do.
    let parent = up.dir().parent().expect("a parent").to_owned();
    let relative = up.dir().file_name().expect("a name").to_owned();
    let absolute = up.dir().canonicalize().expect("canonical");
    located(&parent, &[os("status"), os("-f"), &relative]).assert().code(4).stderr(predicate::str::diff(format!(
        "warren: no warren instance is running for {} (start one with `warren up`)\n",
        absolute.display()
    )));
}

#[test]
fn up_file_may_name_the_directory_of_warren_toml() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("warren.toml"), "[programs.bad]\ncommand = \"x\"\nrestart = \"sometimes\"\n")
        .expect("write warren.toml");
    // The error names DIR/warren.toml: it is the file that was read.
    assert_cmd::Command::new(WARREN)
        .args([std::ffi::OsStr::new("up"), "-f".as_ref(), dir.path().as_os_str()])
        .timeout(BOUND)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("warren.toml:3"));
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    for args in [
        &["frobnicate"][..],
        &["start"],
        &["restart", "--bogus", "x"],
        &["stop", "--all", "x"],
        &["restart", "--no-wait", "--timeout", "1s", "x"],
        &["completions", "tcsh"],
        &["man", "nope"],
        &[],
    ] {
        let output = Command::new(WARREN).args(args).output().expect("run warren");
        assert_eq!(output.status.code(), Some(64), "warren {args:?}: {}", stderr(&output));
        assert!(!stderr(&output).is_empty(), "warren {args:?} says why");
    }
    for args in [&["--help"][..], &["restart", "--help"], &["--version"]] {
        let output = Command::new(WARREN).args(args).output().expect("run warren");
        assert_eq!(output.status.code(), Some(0), "warren {args:?}");
        assert!(!stdout(&output).is_empty());
    }
}

#[test]
fn completions_and_man_page_come_from_the_command_definitions() {
    let subcommands =
        ["up", "status", "start", "stop", "restart", "logs", "call", "down", "check", "completions", "man"];
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef warren"), ("fish", "complete -c warren")] {
        let output = Command::new(WARREN).args(["completions", shell]).output().expect("run warren completions");
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell}:\n{script}");
        for word in subcommands.iter().chain(&["--no-wait", "--only", "--all"]) {
            assert!(script.contains(word.trim_start_matches('-')), "{shell} completes {word}");
        }
    }
    // bash can at least parse its script, where bash is installed.
    match Command::new("bash").arg("-n").arg("/dev/stdin").stdin(std::process::Stdio::piped()).spawn() {
        Ok(mut bash) => {
            let script = Command::new(WARREN).args(["completions", "bash"]).output().expect("run").stdout;
            std::io::Write::write_all(bash.stdin.as_mut().expect("stdin"), &script).expect("write");
            drop(bash.stdin.take());
            assert!(bash.wait().expect("bash -n").success(), "bash parses the completions");
        }
        Err(err) => testkit::skip::unavailable(&format!("bash: {err}")),
    }

    let page = stdout(&Command::new(WARREN).arg("man").output().expect("run warren man"));
    assert!(page.starts_with(".ie") || page.contains(".TH warren 1"), "{page}");
    assert!(page.contains(".TH warren 1"), "{page}");
    for sub in subcommands {
        assert!(page.contains(&format!("warren\\-{sub}")), "the page lists {sub}:\n{page}");
    }
    let restart = stdout(&Command::new(WARREN).args(["man", "restart"]).output().expect("run warren man restart"));
    assert!(restart.contains(".TH warren-restart 1"), "{restart}");
    assert!(restart.contains("\\-\\-no\\-wait") && restart.contains("\\-\\-timeout"), "{restart}");
}

#[test]
fn stop_exits_1_when_a_program_outlasts_the_timeout_and_restart_during_a_start_waits_for_the_last() {
    let mut up = Up::start(&format!(
        r#"
[programs.stubborn]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "1500ms"
{SLOW}"#
    ));
    up.wait_line("all programs are up", BOUND);
    up.warren(["stop", "--timeout", "200ms", "stubborn"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("stubborn: still stopping after 200ms"));
    // The stop goes on regardless, to its SIGKILL at the grace.
    up.wait_event("stubborn", "stopped", BOUND);

    // A restart asked while the previous one is still starting waits for the instance it made.
    let first = pid(&mut up, "slow");
    up.warren(["restart", "--no-wait", "slow"]).assert().success();
    up.wait_events("slow", "starting", 2, BOUND);
    let output = up.warren(["restart", "slow"]).output().expect("run warren restart");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let row = up.row("slow");
    assert_eq!(row["state"], "ready", "{row:#}");
    let last = row["pid"].as_u64().expect("pid");
    assert!(stdout(&output).contains(&format!("slow: ready (pid {last})")), "{}", stdout(&output));
    assert_ne!(last, first);
    assert_eq!(row["restarts"], 2, "{row:#}");
    down(&mut up, 0);
}

#[test]
fn a_start_during_a_shutdown_answers_once_everything_has_stopped() {
    let mut up = Up::start(
        r#"
[programs.stubborn]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "1500ms"

[programs.other]
command = @child@
args = ["plugin"]
ready = "warren"
"#,
    );
    up.wait_line("all programs are up", BOUND);
    up.warren(["stop", "other"]).assert().success();
    up.signal(rustix::process::Signal::TERM);
    up.wait_line("SIGTERM: stopping all programs", BOUND);
    let began = Instant::now();
    up.warren(["start", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("other: the instance is shutting down"));
    // Not the 45 s bound: as soon as stubborn's grace ran out and everything was down.
    assert!(began.elapsed() < Duration::from_secs(5), "answered after {:?}", began.elapsed());
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn autostart_false_programs_wait_stopped_for_warren_start() {
    let config = r#"
[programs.api]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.tool]
command = @child@
args = ["plugin"]
ready = "warren"
autostart = false
"#;
    let mut up = Up::start(config);
    // `up` is ready without it, and says what it left out.
    up.wait_line("all programs are up; not started (autostart = false): tool", BOUND);
    let row = up.row("tool");
    assert_eq!((&row["state"], &row["detail"]), (&"stopped".into(), &"stopped (autostart = false)".into()), "{row:#}");
    let output = up.warren(["start", "tool"]).output().expect("run warren start");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("tool: ready (pid"), "{}", stdout(&output));
    assert!(alive(u32::try_from(pid(&mut up, "tool")).expect("a pid")));

    // Added by a reload, such a program is not started either.
    let added = "\n[programs.later]\ncommand = @child@\nargs = [\"sleeper\"]\nautostart = false\n";
    std::fs::write(up.config(), common::with_child(&format!("{config}{added}"))).expect("rewrite warren.toml");
    let output = up.warren(["reload"]).output().expect("run warren reload");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("later: added, not started (new; autostart = false)"), "{}", stdout(&output));
    assert_eq!(up.row("later")["state"], "stopped");
    down(&mut up, 0);
}

#[test]
fn check_reads_a_file_as_up_would_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    let good = r#"
[programs.web]
command = "/nonexistent/but/not/run"
depends_on = ["db"]

[programs.db]
command = "sh"

[programs.worker]
shell = "touch started"
depends_on = ["db"]

[programs.console]
command = "sh"
autostart = false
"#;
    std::fs::write(&file, good).expect("write");
    let output = Command::new(WARREN).arg("check").current_dir(dir.path()).output().expect("run warren check");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{}: 4 programs, started in this order:\n  1. db\n  2. web, worker\n  not started (autostart = false): console\n",
            file.strip_prefix(dir.path()).map_or(file.clone(), |_| "warren.toml".into()).display()
        )
    );
    assert!(!dir.path().join("started").exists(), "nothing ran");
    // Valid, but not going to work on this machine: said, not an error.
    assert_eq!(stderr(&output), "warren: warning: web: command /nonexistent/but/not/run is not found here\n");

    std::fs::write(&file, "[programs.web]\ncommand = \"sh\"\nrestrat = \"always\"\n").expect("write");
    let output = Command::new(WARREN).args(["check", "-f"]).arg(dir.path()).output().expect("run warren check");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("warren.toml:3: program \"web\": unknown key \"restrat\""), "{}", stderr(&output));

    let empty = tempfile::tempdir().expect("tempdir");
    let output = Command::new(WARREN).arg("check").current_dir(empty.path()).output().expect("run warren check");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no warren.toml or Procfile here"), "{}", stderr(&output));
}
