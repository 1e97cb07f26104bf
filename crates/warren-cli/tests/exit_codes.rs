//! Every exit code of `crates/warren-cli/src/exit.rs`, provoked with the real binary, and the
//! README's table of them: the same codes, none missing, none extra.

// Each test file uses only part of the fixture.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BOUND, Up, WARREN};
use rustix::process::Signal;

/// `pub const NAME: u8 = N;` lines of exit.rs.
fn codes_in_exit_rs() -> BTreeSet<i32> {
    include_str!("../src/exit.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("pub const ")?.split_once(": u8 = ")?.1.strip_suffix(';')?.parse().ok())
        .collect()
}

/// The first column of the README's exit-code table.
fn codes_in_readme() -> BTreeSet<i32> {
    let readme = include_str!("../../../README.md");
    let table = readme.split("**Exit codes**").nth(1).expect("the README has an exit-code table");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.trim_matches('|').split('|').next()?.trim().parse().ok())
        .collect()
}

fn code(command: &mut Command) -> Option<i32> {
    command.stdin(Stdio::null()).output().expect("run warren").status.code()
}

fn assisted(command: &mut assert_cmd::Command) -> Option<i32> {
    command.output().expect("run warren").status.code()
}

/// Records that `what` exited `got`, which must be `expected`.
fn check(seen: &mut BTreeSet<i32>, expected: i32, got: Option<i32>, what: &str) {
    assert_eq!(got, Some(expected), "{what}");
    seen.insert(expected);
}

#[test]
fn each_exit_code_is_in_the_readme_and_provoked_by_the_binary() {
    let declared = codes_in_exit_rs();
    assert_eq!(declared.len(), 9, "exit.rs as parsed: {declared:?}");
    assert_eq!(codes_in_readme(), declared, "the README's table lists exactly exit.rs's codes");

    let mut seen = BTreeSet::new();
    // 0: the command did what was asked.
    check(&mut seen, 0, code(Command::new(WARREN).arg("--version")), "--version");
    // 64: a bad command line.
    check(&mut seen, 64, code(Command::new(WARREN).arg("frobnicate")), "an unknown subcommand");
    // 70: anything else, here an I/O error (stdout is a full device).
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let got = code(Command::new(WARREN).args(["completions", "bash"]).stdout(full));
    check(&mut seen, 70, got, "completions to /dev/full");

    let nowhere = tempfile::tempdir().expect("temporary directory");
    // 4: no instance to talk to.
    let got = code(Command::new(WARREN).arg("status").env("WARREN_CONTROL", nowhere.path().join("none.sock")));
    check(&mut seen, 4, got, "status without an instance");
    // 2: an invalid configuration.
    let bad = nowhere.path().join("warren.toml");
    std::fs::write(&bad, "[programs.x]\nrestart = \"sometimes\"\n").expect("write");
    let got = code(Command::new(WARREN).arg("up").arg("-f").arg(&bad).env("WARREN_CONTROL", nowhere.path().join("c")));
    check(&mut seen, 2, got, "up on an invalid file");

    let mut up = Up::start(
        r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.fails]
shell = "exit 9"
ready = { log = "^never$" }
restart = "never"
"#,
    );
    up.wait_event("fails", "failed", BOUND);
    up.wait_event("alpha", "ready", BOUND);
    // 3: a second `up` for the same directory.
    let config = up.config();
    let got = assisted(&mut up.warren([std::ffi::OsStr::new("up"), "-f".as_ref(), config.as_os_str()]));
    check(&mut seen, 3, got, "a second up");
    // 5: the instance refuses the request.
    check(&mut seen, 5, assisted(&mut up.warren(["stop", "nope"])), "stop of an unknown program");
    // 1: a program did not come back (restart), and `up` ends with a failed program.
    check(&mut seen, 1, assisted(&mut up.warren(["restart", "fails"])), "restart of a program that fails");
    up.warren(["down"]).assert().success();
    let got = up.wait_exit(BOUND).code();
    check(&mut seen, 1, got, &format!("up with a failed program:\n{}", up.transcript()));
    up.assert_no_leftovers(Duration::from_secs(3));

    // 130: a third signal, right behind the second, while the killed programs are not yet reaped.
    let mut up = Up::stubborn_with_an_escaped_grandchild();
    up.signal(Signal::TERM);
    up.wait_line("SIGTERM: stopping all programs", BOUND);
    up.wait_line("stubborn | ignoring SIGTERM", BOUND);
    up.signal(Signal::HUP);
    up.signal(Signal::QUIT);
    let got = up.wait_exit(BOUND).code();
    check(&mut seen, 130, got, &format!("a third signal:\n{}", up.transcript()));

    assert_eq!(seen, declared, "every code provoked, and no other");
}
