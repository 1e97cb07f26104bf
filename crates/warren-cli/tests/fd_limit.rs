//! `warren up` raises its soft open-file limit to the hard one: under a soft limit of 64, 30
//! programs (each costs `up` a few descriptors) all start. Alone in its file, because it lowers
//! the test process's own limit, which `up` inherits.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use common::{BOUND, Up};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn up_raises_its_soft_fd_limit_to_the_hard_one_and_starts_every_program() {
    let hard = getrlimit(Resource::Nofile).maximum;
    if hard.is_some_and(|hard| hard < 1024) {
        return testkit::skip::unavailable("the hard open-file limit is below 1024 here");
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(64), maximum: hard }).expect("lower the soft limit");
    let config: String = (0..30).map(|i| format!("[programs.p{i}]\ncommand = \"sleep\"\nargs = [\"30\"]\n")).collect();
    let mut up = Up::start(&config);
    up.wait_line("all programs are up", BOUND);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", up.pid())).expect("limits");
    let line = limits.lines().find(|line| line.starts_with("Max open files")).expect("open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft = hard: {line}");
    assert!(!up.transcript().contains("Too many open files"), "{}", up.transcript());
    up.warren(["down"]).assert().success();
    up.wait_exit(BOUND);
    up.assert_no_leftovers(BOUND);
}
