//! Newline-delimited JSON-RPC on a warren socket (`docs/PROTOCOL.md` §17), line by line from a
//! raw socket: both request shapes, errors, notifications both ways, bad lines, concurrency,
//! a half-closed peer and the drain on shutdown; then warren's own client in JSON-RPC mode.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Delayed, Todo, expect_event, serve_unix, within};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use warren_rpc::{CallError, Client, ErrorCode, Protocol};

/// A peer that types lines, as a person with `socat` would.
struct Lines {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Lines {
    async fn connect(path: &Path) -> Lines {
        let stream = within("connect", UnixStream::connect(path)).await.expect("connect");
        let (read, write) = stream.into_split();
        Lines { read: BufReader::new(read), write }
    }

    async fn send(&mut self, line: &str) {
        within("write", self.write.write_all(format!("{line}\n").as_bytes())).await.expect("write");
    }

    async fn recv_text(&mut self) -> String {
        let mut line = String::new();
        let n = within("a reply line", self.read.read_line(&mut line)).await.expect("read");
        assert!(n > 0, "the server closed the connection instead of answering");
        assert!(line.ends_with('\n'), "replies are newline-terminated: {line:?}");
        line.trim_end().to_owned()
    }

    async fn recv(&mut self) -> Value {
        let line = self.recv_text().await;
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("reply is not JSON ({err}): {line}"))
    }

    async fn closed(&mut self) {
        let mut rest = String::new();
        let n = within("the end of the connection", self.read.read_line(&mut rest)).await.expect("read");
        assert_eq!(n, 0, "expected the connection to close, got {rest:?}");
    }
}

#[tokio::test]
async fn go_shaped_requests_get_go_shaped_replies() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;

    peer.send(r#"{"method":"Task.Get","params":["new_id"],"id":0}"#).await;
    assert_eq!(peer.recv_text().await, r#"{"id":0,"result":{"id":"new_id"},"error":null}"#);

    // An application error: a string, never an object, with the code in front.
    peer.send(r#"{"method":"Task.Fail","params":[1042],"id":1}"#).await;
    assert_eq!(peer.recv_text().await, r#"{"id":1,"result":null,"error":"APPLICATION (1042): failed with 1042"}"#);

    // A method returning nothing: `{}`, since Go's client takes a null result for a broken reply.
    peer.send(r#"{"method":"Log.Write","params":["hello"],"id":2}"#).await;
    assert_eq!(peer.recv_text().await, r#"{"id":2,"result":{},"error":null}"#);

    peer.send(r#"{"method":"Nope.Get","params":["x"],"id":3}"#).await;
    let reply = peer.recv().await;
    assert_eq!((&reply["id"], &reply["result"]), (&json!(3), &Value::Null));
    assert!(reply["error"].as_str().is_some_and(|e| e.starts_with("UNKNOWN_SERVICE (1): ")), "{reply}");

    // Go's callers pass struct{}{} where a method takes nothing.
    peer.send(r#"{"method":"Task.Panic","params":[{}],"id":4}"#).await;
    let reply = peer.recv().await;
    assert!(reply["error"].as_str().is_some_and(|e| e.contains("INTERNAL (7)") && e.contains("blew up")), "{reply}");

    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
    peer.closed().await;
}

#[tokio::test]
async fn json_rpc_2_requests_get_2_0_replies_and_notifications_get_none() {
    let (running, _dir, mut events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;

    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Get","params":["a"],"id":"first"}"#).await;
    assert_eq!(peer.recv_text().await, r#"{"jsonrpc":"2.0","id":"first","result":{"id":"a"}}"#);

    // Named parameters are the argument itself: here the struct `Delayed`.
    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Delay","params":{"value":7,"delay_us":0},"id":2}"#).await;
    assert_eq!(peer.recv().await, json!({"jsonrpc": "2.0", "id": 2, "result": 7}));

    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Nope","params":[1],"id":3}"#).await;
    let reply = peer.recv().await;
    assert_eq!(reply["error"]["code"], json!(-32601), "{reply}");
    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Get","params":[42],"id":4}"#).await;
    assert_eq!(peer.recv().await["error"]["code"], json!(-32602), "bad argument");
    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Fail","params":[1001],"id":5}"#).await;
    assert_eq!(
        peer.recv().await,
        json!({"jsonrpc": "2.0", "id": 5, "error": {"code": 1001, "message": "failed with 1001", "data": {"id": "detail"}}})
    );

    // A notification runs and is not answered: the next line read is the next call's reply.
    peer.send(r#"{"jsonrpc":"2.0","method":"Log.Write","params":["noted"]}"#).await;
    expect_event(&mut events, "log:noted").await;
    peer.send(r#"{"jsonrpc":"2.0","method":"Task.Get","params":["b"],"id":6}"#).await;
    assert_eq!(peer.recv().await["id"], json!(6));

    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn a_bad_line_is_answered_and_the_connection_goes_on() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;
    peer.send(r#"{"method":"Task.Get","params":["x"],"id":1"#).await;
    let reply = peer.recv().await;
    assert_eq!((&reply["id"], &reply["error"]["code"]), (&Value::Null, &json!(-32700)), "{reply}");
    peer.send(r#"[{"method":"Task.Get","params":["x"],"id":1}]"#).await;
    assert_eq!(peer.recv().await["error"]["code"], json!(-32600), "batches are refused");
    peer.send(r#"{"params":["x"],"id":9}"#).await;
    let reply = peer.recv().await;
    assert_eq!(reply["id"], json!(9), "an invalid request still carries its id: {reply}");
    assert!(reply["error"].as_str().is_some_and(|e| e.starts_with("PROTOCOL_ERROR (9)")), "{reply}");
    peer.send("").await;
    peer.send(r#"{"method":"Task.Get","params":["still"],"id":2}"#).await;
    assert_eq!(peer.recv().await["result"], json!({"id": "still"}));
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn a_line_over_max_frame_is_skipped_without_ending_the_connection() {
    let dir = common::socket_dir();
    let path = common::socket_in(&dir, "small.sock");
    let (tx, _events) = tokio::sync::mpsc::unbounded_channel();
    let running = common::test_server(tx).max_frame(1024).bind(&warren_rpc::Endpoint::unix(&path)).await.expect("bind");
    let mut peer = Lines::connect(&path).await;
    let huge = format!(r#"{{"method":"Task.Get","params":["{}"],"id":1}}"#, "x".repeat(10_000));
    peer.send(&huge).await;
    let reply = peer.recv().await;
    assert_eq!(reply["id"], Value::Null);
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("1024")), "{reply}");
    peer.send(r#"{"method":"Task.Get","params":["small"],"id":2}"#).await;
    assert_eq!(peer.recv().await["result"], json!({"id": "small"}));
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn calls_on_one_connection_run_concurrently_and_reply_in_completion_order() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;
    let slow = serde_json::to_string(&Delayed { value: 1, delay_us: 300_000 }).expect("json");
    peer.send(&format!(r#"{{"method":"Task.Delay","params":[{slow}],"id":"slow"}}"#)).await;
    peer.send(r#"{"method":"Task.Get","params":["fast"],"id":"fast"}"#).await;
    assert_eq!(peer.recv().await["id"], json!("fast"), "the fast call is not stuck behind the slow one");
    assert_eq!(peer.recv().await, json!({"id": "slow", "result": 1, "error": null}));
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

/// `printf '…\n' | socat - UNIX-CONNECT:…` closes its side as soon as the line is sent.
#[tokio::test]
async fn a_peer_that_half_closes_still_gets_its_answers() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;
    let slow = serde_json::to_string(&Delayed { value: 5, delay_us: 100_000 }).expect("json");
    peer.send(&format!(r#"{{"method":"Task.Delay","params":[{slow}],"id":1}}"#)).await;
    within("shutdown write", peer.write.shutdown()).await.expect("shutdown");
    assert_eq!(peer.recv().await["result"], json!(5));
    peer.closed().await;
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn a_draining_server_refuses_new_calls_finishes_old_ones_then_closes() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();
    let mut peer = Lines::connect(&path).await;
    let slow = serde_json::to_string(&Delayed { value: 3, delay_us: 500_000 }).expect("json");
    peer.send(&format!(r#"{{"method":"Task.Delay","params":[{slow}],"id":1}}"#)).await;
    // Make sure the slow call is running before the shutdown starts.
    peer.send(r#"{"method":"Task.Get","params":["before"],"id":2}"#).await;
    assert_eq!(peer.recv().await["id"], json!(2));
    let handle = running.handle();
    let shutdown = tokio::spawn(async move { handle.shutdown(Duration::from_secs(5)).await });
    within("draining", async {
        while !running.handle().is_shutting_down() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    peer.send(r#"{"method":"Task.Get","params":["late"],"id":3}"#).await;
    let refused = peer.recv().await;
    assert_eq!(refused["id"], json!(3));
    assert!(refused["error"].as_str().is_some_and(|e| e.starts_with("SHUTTING_DOWN (6)")), "{refused}");
    assert_eq!(peer.recv().await["result"], json!(3), "the call in flight finishes");
    peer.closed().await;
    let report = within("shutdown", shutdown).await.expect("join");
    assert!(!report.drain_deadline_hit);
}

#[tokio::test]
async fn a_2_0_peer_receives_pushed_notifications_a_go_peer_never_does() {
    let (running, _dir, _events) = serve_unix().await;
    let path = running.endpoint().unix_path().expect("unix").to_owned();

    let mut v2 = Lines::connect(&path).await;
    v2.send(r#"{"jsonrpc":"2.0","method":"Events.Subscribe","params":[["tick",2]],"id":1}"#).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(v2.recv().await);
    }
    assert!(seen.contains(&json!({"jsonrpc": "2.0", "id": 1, "result": null})), "{seen:?}");
    assert!(seen.contains(&json!({"jsonrpc": "2.0", "method": "tick", "params": [0]})), "{seen:?}");
    assert!(seen.contains(&json!({"jsonrpc": "2.0", "method": "tick", "params": [1]})), "{seen:?}");

    let mut go = Lines::connect(&path).await;
    go.send(r#"{"method":"Events.Subscribe","params":[["tick",2]],"id":1}"#).await;
    assert_eq!(go.recv().await, json!({"id": 1, "result": {}, "error": null}));
    go.send(r#"{"method":"Task.Get","params":["next"],"id":2}"#).await;
    assert_eq!(go.recv().await["id"], json!(2), "no notification line came before the next reply");

    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn warrens_client_in_json_rpc_mode_talks_to_a_warren_server() {
    let (running, _dir, _events) = serve_unix().await;
    let connect = Client::builder().protocol(Protocol::JsonRpc).connect(running.endpoint());
    let client = within("connect", connect).await.expect("connect");
    let todo: Todo = within("Task.Get", client.call("Task.Get", "json")).await.expect("Task.Get");
    assert_eq!(todo.id, "json");

    // The code travels in the error string, so errors come back typed.
    let err = within("Task.Fail", client.call::<_, ()>("Task.Fail", &1042u32)).await.expect_err("fails");
    assert!(
        matches!(&err, CallError::Application { code: 1042, message, .. } if message == "failed with 1042"),
        "{err:?}"
    );
    let err = within("Task.Nope", client.call::<_, ()>("Task.Nope", "x")).await.expect_err("fails");
    assert_eq!(err.code(), ErrorCode::UnknownMethod, "{err:?}");
    // `{}` stands for "no value" in Go's shape, both ways.
    within("Log.Write", client.call::<_, ()>("Log.Write", "unit")).await.expect("unit reply");

    // Deadlines are local: the call fails on time though the server never hears of it.
    let err = within("Task.Hang", client.call_timeout::<_, ()>("Task.Hang", "h", Duration::from_millis(100)))
        .await
        .expect_err("times out");
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err:?}");
    within("ping", client.ping(Duration::from_secs(5))).await.expect("ping");
    client.notify("Log.Write", "fire and forget").expect("notify");
    let todo: Todo = within("Task.Get", client.call("Task.Get", "end")).await.expect("Task.Get");
    assert_eq!(todo.id, "end");

    client.close().await;
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}
