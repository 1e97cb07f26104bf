//! `warren up` supervises unmodified Go net/rpc servers (gob behind `rpc.HandleHTTP`:
//! `rpc = "go"`), `warren call` reaches them, `warren down` stops them cleanly: one that listens
//! on `WARREN_ENDPOINT`, and the original sketch's server, which binds `rpc.sock` itself
//! (`socket = "rpc.sock"`) and restarts cleanly. The Go programs are in
//! `crates/warren-rpc/tests/go/`, built with the machine's `go`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use common::{BOUND, Up};
use predicates::prelude::*;

/// Builds a Go program of `crates/warren-rpc/tests/go/` into cargo's scratch directory.
fn go_program(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-child");
    let binary = scratch.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warren-rpc/tests/go").join(name).join("main.go");
    let mut go = Command::new("go");
    go.arg("build").arg("-o").arg(&binary).arg(&source);
    go.env("GOCACHE", scratch.join("cache")).env("GOTOOLCHAIN", "local");
    if std::env::var_os("HOME").is_none() {
        go.env("GOPATH", scratch.join("gopath"));
    }
    let output = go.output().expect("the Go child test needs Go on PATH (apt-get install -y golang-go)");
    assert!(output.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    binary
}

#[test]
fn warren_up_supervises_a_go_gob_server_and_warren_call_reaches_it() {
    let text = format!(
        "[programs.task-go]\ncommand = {server:?}\nargs = [\"http\", \"-\"]\nready = {{ log = \"listening\" }}\nrpc = \"go\"\n",
        server = go_program("gobserver").display().to_string()
    );
    let mut up = Up::start(&text);
    up.wait_line("all programs are up", BOUND);

    let reply = up.warren(["call", "task-go", "Task.Get", "\"new_id\""]).assert().success().get_output().stdout.clone();
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"ID": "new_id"}), "Go's field names, as Go sent them");

    // The Go method's error reaches the caller; exit code 5 = the call failed.
    up.warren(["call", "task-go", "Task.Fail", "\"x\""])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("no such todo: x"));

    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "up exits 0: every program stopped cleanly");
    assert!(!up.socket().exists(), "the control socket is removed");
    up.assert_no_leftovers(BOUND);
}

fn call_get(up: &Up, id: &str) {
    let reply =
        up.warren(["call", "task-rpc", "Task.Get", &format!("{id:?}")]).assert().success().get_output().stdout.clone();
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"ID": id}));
}

/// The sketch's server, as written, binds `rpc.sock` in its working directory and never removes
/// it: warren removes the stale file before each start and after the stop, so it restarts
/// cleanly, and calls it there.
#[test]
fn the_sketch_server_binds_its_own_socket_and_restarts_cleanly() {
    let text = format!(
        "[programs.task-rpc]\ncommand = {server:?}\nrpc = \"go\"\nsocket = \"rpc.sock\"\n",
        server = go_program("sketchserver").display().to_string(),
    );
    // A stale socket file, as a killed earlier run leaves it: bound, then nobody listening.
    let mut up = Up::start_with(&text, |_, dir| {
        drop(std::os::unix::net::UnixListener::bind(dir.join("rpc.sock")).expect("bind a stale socket"));
    });
    let socket = up.dir().join("rpc.sock");
    up.wait_line("all programs are up", BOUND);
    call_get(&up, "new_id");

    // Where to find it, without reading logs: `warren endpoint` alone, and in `status --json`.
    up.warren(["endpoint", "task-rpc"]).assert().success().stdout(format!("unix:{}\n", socket.display()));
    let rows = up.status_json();
    assert_eq!(rows[0]["endpoint"], serde_json::json!(format!("unix:{}", socket.display())));
    up.warren(["endpoint", "nope"]).assert().code(5);
    for round in 0..3 {
        up.warren(["restart", "task-rpc"]).assert().success();
        call_get(&up, &format!("after-restart-{round}"));
    }
    up.warren(["down"]).assert().success();
    up.wait_exit(BOUND);
    assert!(!socket.exists(), "the program's own socket is removed after it stops");
    up.assert_no_leftovers(BOUND);
}
