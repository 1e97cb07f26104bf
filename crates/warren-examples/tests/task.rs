//! The original sketch, reproduced: `task` starts `task-rpc`, waits until it is ready, calls
//! `Task.Get("new_id")`, and stops it; the log tells the same story as the Go original.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_task_example_tells_the_original_story_in_order() {
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_task"))
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .output()
        .expect("run task");
    assert!(start.elapsed() < Duration::from_secs(20));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "task failed: {log}");

    let socket = log
        .lines()
        .find_map(|l| l.split("Serving RPC server on unix ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no serving line: {log}"))
        .to_owned();
    let story = [
        format!("task-rpc|  INFO Serving RPC server on unix {socket}"),
        "Finish App: Todo { id: \"new_id\" }".to_owned(),
        "task-rpc|  INFO stop the server".to_owned(),
        format!("task-rpc|  INFO deleted socket file: {socket}"),
        "exited with code 0".to_owned(),
        "stop subproc ".to_owned(),
    ];
    let mut lines = log.lines();
    for step in &story {
        assert!(lines.any(|line| line.contains(step.as_str())), "missing, or out of order: {step:?}\n{log}");
    }
    // Each pipe is read by its own task, so stdout's end-of-file may be logged before or after
    // the last stderr lines; both must come after the call and before the exit is reported.
    let position = |needle: &str| {
        log.lines().position(|line| line.contains(needle)).unwrap_or_else(|| panic!("missing {needle:?}\n{log}"))
    };
    let (called, exited) = (position("Finish App"), position("exited with code 0"));
    for stream in ["stdout", "stderr"] {
        let closed = position(&format!("pipe task-rpc {stream} has closed"));
        assert!(called < closed && closed < exited, "{stream} closed out of order\n{log}");
    }
    assert!(log.lines().last().is_some_and(|l| l.contains("stop subproc") && l.contains("task-rpc success")), "{log}");
    assert!(!std::path::Path::new(&socket).exists(), "socket removed");
    let runtime_dir = std::path::Path::new(&socket).parent().expect("dir");
    assert!(!runtime_dir.exists(), "the host's runtime dir is gone too");
}
