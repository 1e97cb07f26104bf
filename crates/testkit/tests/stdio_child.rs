//! The stdio transport with a real child process: `rpc-stdio-child` serves on its own stdin and
//! stdout, the host speaks the protocol over the child's pipes, and closing the client ends the
//! child cleanly.

use std::process::Stdio;

use serde::Deserialize;
use testkit::within;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use warren_rpc::{CallError, Client};

const LABEL: &str = "stdio:rpc-stdio-child";

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct Todo {
    id: String,
}

/// Spawns the child with both protocol pipes; `kill_on_drop` is only the last line of defence
/// for a test that fails half way.
fn spawn_child() -> (Child, ChildStdout, ChildStdin) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpc-stdio-child"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rpc-stdio-child");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let stdin = child.stdin.take().expect("child stdin is piped");
    (child, stdout, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_childs_stdio_and_the_child_exits_0_when_the_client_closes() {
    let (mut child, stdout, stdin) = spawn_child();
    let pid = child.id().expect("child is running");
    let client = within("handshake with the child", Client::builder().over(stdout, stdin, LABEL))
        .await
        .expect("handshake over the child's pipes");
    assert_eq!(client.endpoint(), LABEL);

    let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id")).await.expect("Task.Get");
    assert_eq!(todo, Todo { id: "new_id".into() });
    let served_by: u32 = within("Task.Pid", client.call("Task.Pid", &())).await.expect("Task.Pid");
    assert_eq!(served_by, pid, "Task.Pid was not answered by the child we spawned");

    let mut calls = tokio::task::JoinSet::new();
    for n in 0..100 {
        let client = client.clone();
        calls.spawn(async move {
            let id = format!("call-{n}");
            let todo: Todo = client.call("Task.Get", &id).await.unwrap_or_else(|err| panic!("{id}: {err}"));
            assert_eq!(todo.id, id, "a reply was matched to the wrong call");
        });
    }
    within("100 concurrent calls", async {
        let mut done = 0;
        while let Some(joined) = calls.join_next().await {
            joined.expect("call task");
            done += 1;
        }
        assert_eq!(done, 100);
    })
    .await;

    within("client close", client.close()).await;
    let status = within("the child's exit after its stdin closed", child.wait()).await.expect("wait for the child");
    assert_eq!(status.code(), Some(0), "the child should exit 0 when its stdin closes, got {status}");
}

#[tokio::test]
async fn a_killed_child_fails_the_connection_with_the_label_named() {
    let (mut child, stdout, stdin) = spawn_child();
    let client = within("handshake with the child", Client::builder().over(stdout, stdin, LABEL))
        .await
        .expect("handshake over the child's pipes");
    let _: Todo = within("Task.Get", client.call("Task.Get", "before")).await.expect("Task.Get before the kill");

    child.start_kill().expect("kill the child");
    let status = within("the killed child's exit", child.wait()).await.expect("wait for the child");
    assert!(!status.success(), "the child was killed, yet exited with {status}");
    within("the client to notice the end of the stream", client.closed()).await;

    let err = within("Task.Get after the kill", client.call::<_, Todo>("Task.Get", "after"))
        .await
        .expect_err("the child is gone");
    assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");
    assert!(err.to_string().contains(LABEL), "the error should name the peer: {err}");
    client.close().await;
}
