//! `warren up` as a test harness: `--abort-on-exit`, `--exit-code-from NAME`, and ending by
//! itself once nothing runs and nothing will restart — each checked by its exit code, on the
//! real binary.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::time::{Duration, Instant};

use common::{BOUND, Up};

/// A program that exits with `code` after `delay` (a shell one-liner).
fn exiting(name: &str, delay: &str, code: u8) -> String {
    format!(
        "[programs.{name}]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"sleep {delay}; exit {code}\"]\nrestart = \"never\"\n"
    )
}

/// A program that runs until it is stopped.
fn lasting(name: &str) -> String {
    format!("[programs.{name}]\ncommand = @child@\nargs = [\"sleeper\"]\n")
}

fn up_with(config: &str, flags: &[&str]) -> Up {
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    Up::start_with(config, move |command, _| {
        command.args(&flags);
    })
}

#[test]
fn abort_on_exit_stops_everything_at_the_first_exit_and_exits_with_its_code() {
    let config = format!("{}{}{}", exiting("tests", "0.3", 3), lasting("db"), lasting("web"));
    let mut up = up_with(&config, &["--abort-on-exit"]);
    up.wait_event("tests", "exited with code 3", BOUND);
    up.wait_line("tests ended (--abort-on-exit): stopping every program", BOUND);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(3), "the code of the program that exited:\n{}", up.transcript());
    for program in ["db", "web"] {
        up.wait_event(program, "stopped", BOUND);
    }
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn abort_on_exit_counts_an_exit_that_would_be_restarted_and_a_clean_one() {
    // `restart = "always"`: its exit would be followed by a restart; the harness stops anyway.
    let config = format!(
        "[programs.job]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"sleep 0.2\"]\nrestart = \"always\"\n{}",
        lasting("db")
    );
    let mut up = up_with(&config, &["--abort-on-exit"]);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "it exited with 0:\n{}", up.transcript());
    assert_eq!(up.events("job", "starting").len(), 1, "not restarted:\n{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn exit_code_from_waits_for_its_program_alone_and_exits_with_its_code() {
    let config = format!("{}{}{}", exiting("setup", "0", 0), exiting("tests", "0.8", 7), lasting("db"));
    let started = Instant::now();
    let mut up = up_with(&config, &["--exit-code-from", "tests"]);
    up.wait_event("setup", "exited with code 0", BOUND);
    let tests = up.wait_event("tests", "exited with code 7", BOUND);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(7), "tests' code:\n{}", up.transcript());
    assert!(tests.at - started >= Duration::from_millis(700), "another program's exit did not stop it early");
    let stop = up.wait_line("tests ended (--exit-code-from): stopping every program", BOUND);
    assert!(stop.at >= tests.at, "the stop follows tests' exit");
    up.wait_event("db", "stopped", BOUND);
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn exit_code_from_an_unknown_program_is_refused_before_anything_starts() {
    let mut up = up_with(&lasting("db"), &["--exit-code-from", "nope"]);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(70), "{}", up.transcript());
    assert!(up.transcript().contains(r#"no program named "nope" (known: db)"#), "{}", up.transcript());
    assert!(up.event_index("db", "starting").is_none(), "nothing started:\n{}", up.transcript());
}

#[test]
fn without_flags_up_ends_once_everything_ended_0_when_clean() {
    let config = format!("{}{}", exiting("one", "0", 0), exiting("two", "0.3", 0));
    let mut up = up_with(&config, &[]);
    up.wait_line("nothing runs and nothing will restart: exiting", BOUND);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", up.transcript());
    up.wait_event("two", "exited with code 0", BOUND);
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn without_flags_up_ends_once_everything_ended_1_when_one_failed() {
    let config = format!("{}{}", exiting("fine", "0", 0), exiting("broken", "0.3", 4));
    let mut up = up_with(&config, &[]);
    let status = up.wait_exit(BOUND);
    assert_eq!(status.code(), Some(1), "{}", up.transcript());
    up.wait_line("nothing runs and nothing will restart: exiting", BOUND);
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn a_program_in_backoff_keeps_up_running() {
    // It fails, and will be restarted: something will run again, so `up` stays.
    let config = "[programs.flaky]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exit 1\"]\nrestart = \"on-failure\"\n\
                  backoff = { initial = \"300ms\" }\ncrash_loop = { max_starts = 3, window = \"60s\" }\n";
    let mut up = up_with(config, &[]);
    let failed = up.wait_event("flaky", "failed: crash loop", BOUND);
    let ended = up.wait_line("nothing runs and nothing will restart: exiting", BOUND);
    assert_eq!(up.events("flaky", "starting").len(), 3, "every restart happened:\n{}", up.transcript());
    assert!(up.events("flaky", "exited with code 1; restarting in").len() == 2, "{}", up.transcript());
    assert!(ended.at >= failed.at, "ends after the crash loop only");
    assert_eq!(up.wait_exit(BOUND).code(), Some(1), "{}", up.transcript());
}

#[test]
fn a_program_stopped_with_warren_stop_keeps_up_running_until_down() {
    let config = format!("{}{}", exiting("batch", "0", 0), lasting("server"));
    let mut up = up_with(&config, &[]);
    up.wait_event("batch", "exited with code 0", BOUND);
    up.wait_event("server", "ready", BOUND);
    up.warren(["stop", "server"]).assert().success();
    // Nothing runs, but the person who stopped the server may start it again: `up` stays.
    std::thread::sleep(Duration::from_millis(500));
    up.warren(["status"]).assert().success();
    up.warren(["start", "server"]).assert().success();
    up.wait_event("server", "ready", BOUND);
    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "{}", up.transcript());
    assert!(!up.transcript().contains("nothing runs and nothing will restart"), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}
