//! `warren up` supervises a child written in Python (`examples/python/task_child.py`, standard
//! library only, JSON-RPC lines: `rpc = "json"`), `warren call` reaches it, `warren down` stops
//! it cleanly. Runs with the machine's `python3`.

use std::path::Path;

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use common::{BOUND, Up};
use predicates::prelude::*;

#[test]
fn warren_up_supervises_a_python_child_and_warren_call_reaches_it() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/task_child.py");
    let mut up = Up::start(&format!(
        "[programs.task-py]\ncommand = \"python3\"\nargs = [{script:?}]\nready = \"notify\"\nrpc = \"json\"\n",
        script = script.display().to_string()
    ));
    up.wait_line("all programs are up", BOUND);
    up.wait_line("serving Task.Get on", BOUND);

    let reply = up.warren(["call", "task-py", "Task.Get", "\"x\""]).assert().success().get_output().stdout.clone();
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"id": "x"}));

    // The child's own error, with its code, reaches the caller; exit code 5 = the call failed.
    up.warren(["call", "task-py", "Task.Nope", "\"x\""])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("unknown method").and(predicate::str::contains("Task.Nope")));

    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "up exits 0: every program stopped cleanly");
    up.wait_line("stopped; removed", BOUND);
    assert!(!up.socket().exists(), "the control socket is removed");
    up.assert_no_leftovers(BOUND);
}
