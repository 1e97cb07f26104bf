//! The built-in example (`warren up` with no file): `task` calls the supervised `task-rpc` on
//! the endpoint it is given, and a `warren` moved away from the example binaries says it cannot
//! find `task-rpc`, where it looked, and fails once.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BOUND, Background, WARREN, cmdline};
use rustix::process::Signal;

/// `warren up --example` with `warren`, in `dir`, with the fixture's isolation.
fn example(warren: &Path, dir: &Path) -> Command {
    let mut command = Command::new(warren);
    command
        .args(["up", "--example"])
        .current_dir(dir)
        .env("WARREN_CONTROL", dir.join("ctl.sock"))
        .env("NO_COLOR", "1")
        .env("WARREN_TEST_TAG", dir.display().to_string())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG");
    command
}

/// Kills what is left of the instance tagged with `dir`, waiting at most a few seconds.
fn clean_up(dir: &Path) -> Vec<String> {
    let tag = dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let left = testkit::tagged("WARREN_TEST_TAG", &tag);
        if left.is_empty() || Instant::now() >= deadline {
            return seen;
        }
        for pid in left {
            seen.push(format!("{pid} {}", cmdline(pid)));
            testkit::signal(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(background: &Background) -> Vec<String> {
    background.seen.iter().map(|line| line.text.clone()).collect()
}

#[test]
fn task_calls_the_supervised_task_rpc_instead_of_starting_its_own() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut up = Background::spawn(example(Path::new(WARREN), dir.path()));
    up.wait_lines("warren   | task: exited with code 0", 1, BOUND);
    let lines = text(&up);
    let transcript = lines.join("\n");
    let serving = lines
        .iter()
        .find_map(|l| l.split("task-rpc |  INFO Serving RPC server on unix ").nth(1))
        .unwrap_or_else(|| panic!("the supervised task-rpc serves:\n{transcript}"))
        .to_owned();
    let called = lines
        .iter()
        .find_map(|l| l.split("task     |  INFO calling the supervised task-rpc on unix:").nth(1))
        .unwrap_or_else(|| panic!("task calls the supervised task-rpc:\n{transcript}"))
        .to_owned();
    assert_eq!(called, serving, "on the supervised task-rpc's own socket:\n{transcript}");
    assert!(transcript.contains("task     |  INFO Finish App: Todo { id: \"new_id\" }"), "{transcript}");
    let servers = lines.iter().filter(|l| l.contains("Serving RPC server")).count();
    assert_eq!(servers, 1, "no private task-rpc was started:\n{transcript}");
    let tag = dir.path().display().to_string();
    let rpc: Vec<u32> = testkit::tagged("WARREN_TEST_TAG", &tag)
        .into_iter()
        .filter(|&pid| cmdline(pid).ends_with("task-rpc"))
        .collect();
    assert_eq!(rpc.len(), 1, "one task-rpc process, the supervised one");

    // The server stays up for others: `warren call` reaches the same one.
    let call = assert_cmd::Command::new(WARREN)
        .args(["call", "task-rpc", "Task.Get", r#""x""#])
        .current_dir(dir.path())
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .timeout(BOUND)
        .output()
        .expect("warren call");
    assert!(call.status.success(), "{}", String::from_utf8_lossy(&call.stderr));
    let down = assert_cmd::Command::new(WARREN)
        .arg("down")
        .current_dir(dir.path())
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .timeout(BOUND)
        .output()
        .expect("warren down");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(up.wait_exit(BOUND).code(), Some(0));
    assert!(clean_up(dir.path()).is_empty(), "nothing left behind");
}

#[test]
fn a_moved_warren_says_it_cannot_find_task_rpc_and_fails_once() {
    // Inside the target directory, so that a hard link (no 100 MB copy) is possible.
    let target = Path::new(WARREN).parent().expect("the binary's directory");
    let dir = tempfile::tempdir_in(target).expect("temporary directory");
    let moved = dir.path().join("warren");
    if std::fs::hard_link(WARREN, &moved).is_err() {
        std::fs::copy(WARREN, &moved).expect("copy warren");
    }
    let started = Instant::now();
    let mut up = Background::spawn(example(&moved, dir.path()));
    let status = up.wait_exit(BOUND);
    let lines = text(&up);
    let transcript = lines.join("\n");
    let expected = format!("program not found: task-rpc; looked in {}", dir.path().display());
    assert!(
        lines.iter().any(|l| l.starts_with("warren   | task-rpc: failed: ") && l.ends_with(&expected)),
        "says what and where:\n{transcript}"
    );
    assert_eq!(lines.iter().filter(|l| l.contains("task-rpc: starting")).count(), 1, "tried once:\n{transcript}");
    assert!(!transcript.contains("restarting"), "no crash loop:\n{transcript}");
    assert_eq!(status.code(), Some(1), "{transcript}");
    assert!(started.elapsed() < Duration::from_secs(5), "fails at once, not after a backoff");
    assert!(clean_up(dir.path()).is_empty(), "nothing left behind");
}
