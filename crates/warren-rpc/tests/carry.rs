//! Carrying a client's connection to another holder (`Client::hold`, `HeldConnection::detach`,
//! `Client::adopt`), as `warren upgrade` does across `exec`: the server sees one connection
//! throughout, calls made during the hold wait for it to end, calls left in flight are
//! cancelled by the new holder, and a released hold goes on as if nothing happened.

mod common;

use std::time::Duration;

use common::{Todo, expect_event, serve_unix, socket_in, within};
use warren_rpc::{CallError, CarriedSession, Client, LostReason, Protocol};

const HOLD: Duration = Duration::from_secs(5);

async fn connection(client: &Client) -> u64 {
    within("Task.Connection", client.call("Task.Connection", &())).await.expect("Task.Connection")
}

async fn carried_over(protocol: Protocol) {
    let (running, dir, mut events) = serve_unix().await;
    let path = socket_in(&dir, "t.sock");
    let client = within("connect", Client::builder().protocol(protocol).connect(&path)).await.expect("connect");
    let first = connection(&client).await;
    // A call in flight when the connection crosses: its caller stays behind.
    let hanging = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<_, ()>("Task.Hang", "left-behind").await })
    };
    expect_event(&mut events, "started:left-behind").await;
    let held = within("hold", client.hold(HOLD)).await.expect("hold");
    // A call made during the hold waits for it to end.
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<_, Todo>("Task.Get", "during").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a call made during the hold waited");
    let (fd, session) = held.detach().expect("detach");
    // It crosses as text, as it does in warren's memfd.
    let session: CarriedSession =
        serde_json::from_str(&serde_json::to_string(&session).expect("encode")).expect("decode");
    assert_eq!(session.orphaned().len(), 1, "the hanging call was in flight");
    let lost = |result: Result<_, CallError>| {
        matches!(result, Err(CallError::ConnectionLost { reason: LostReason::HandedOver, .. }))
    };
    assert!(lost(within("the waiting call", waiting).await.expect("join")), "the waiting call fails here");
    let hanging = within("the hanging call", hanging).await.expect("join");
    assert!(lost(hanging.map(|()| Todo { id: String::new() })), "the hanging call fails here");
    let adopted = Client::adopt(fd, session).expect("adopt");
    if protocol == Protocol::Binary {
        // The binary wire cancels what was left behind; JSON-RPC has no cancel.
        expect_event(&mut events, "cancelled:left-behind").await;
    }
    assert_eq!(connection(&adopted).await, first, "the same connection, as the server sees it");
    let todo: Todo = within("Task.Get", adopted.call("Task.Get", "after")).await.expect("Task.Get");
    assert_eq!(todo.id, "after");
    adopted.close().await;
    drop(client);
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn a_binary_connection_crosses_with_its_session() {
    carried_over(Protocol::Binary).await;
}

#[tokio::test]
async fn a_json_rpc_connection_crosses_with_its_session() {
    carried_over(Protocol::JsonRpc).await;
}

#[tokio::test]
async fn a_released_hold_goes_on_where_it_stood() {
    let (running, dir, _events) = serve_unix().await;
    let client = within("connect", Client::connect(socket_in(&dir, "t.sock"))).await.expect("connect");
    let first = connection(&client).await;
    for round in 0..20 {
        let held = within("hold", client.hold(HOLD)).await.expect("hold");
        let waiting = {
            let client = client.clone();
            tokio::spawn(async move { client.call::<_, Todo>("Task.Get", &format!("round {round}")).await })
        };
        tokio::task::yield_now().await;
        drop(held);
        let todo = within("the waiting call", waiting).await.expect("join").expect("answered after the hold");
        assert_eq!(todo.id, format!("round {round}"));
    }
    assert_eq!(connection(&client).await, first, "one connection throughout");
    client.close().await;
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn calls_under_way_while_holds_come_and_go_are_all_answered() {
    let (running, dir, _events) = serve_unix().await;
    let client = within("connect", Client::connect(socket_in(&dir, "t.sock"))).await.expect("connect");
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in 0..200 {
                    let id = format!("{caller}-{n}");
                    let todo: Todo = client.call("Task.Get", &id).await.expect("answered");
                    assert_eq!(todo.id, id, "each answer is its own call's");
                }
            })
        })
        .collect();
    for _ in 0..50 {
        drop(within("hold", client.hold(HOLD)).await.expect("hold"));
        tokio::task::yield_now().await;
    }
    for caller in callers {
        within("a caller", caller).await.expect("every call answered");
    }
    client.close().await;
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn a_gob_or_tcp_connection_is_not_held() {
    let (running, dir, _events) = serve_unix().await;
    let path = socket_in(&dir, "t.sock");
    let gob = Client::builder().protocol(Protocol::GoGob { http_connect: false }).connect(&path);
    let gob = within("connect", gob).await.expect("connect");
    let refused = within("hold", gob.hold(HOLD)).await.expect_err("gob is not carried");
    assert!(refused.to_string().contains("gob"), "{refused}");
    let _: Todo = within("Task.Get", gob.call("Task.Get", "still")).await.expect("the refused hold left it working");
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;

    let tcp = test_tcp().await;
    let client = within("connect", Client::connect(tcp.0.clone())).await.expect("connect");
    let refused = within("hold", client.hold(HOLD)).await.expect_err("tcp is not carried");
    assert!(refused.to_string().contains("Unix socket"), "{refused}");
    within("shutdown", tcp.1.shutdown(Duration::from_secs(1))).await;
}

async fn test_tcp() -> (warren_rpc::Endpoint, warren_rpc::Running) {
    let (observed, _) = tokio::sync::mpsc::unbounded_channel();
    let any_port = warren_rpc::Endpoint::parse("tcp:127.0.0.1:0").expect("endpoint");
    let running = common::test_server(observed).bind(&any_port).await.expect("bind tcp");
    (running.endpoint().clone(), running)
}

#[tokio::test]
async fn a_descriptor_that_is_not_a_socket_is_refused() {
    let (_, session) = {
        let (running, dir, _events) = serve_unix().await;
        let client = within("connect", Client::connect(socket_in(&dir, "t.sock"))).await.expect("connect");
        let carried = within("hold", client.hold(HOLD)).await.expect("hold").detach().expect("detach");
        within("shutdown", running.shutdown(Duration::from_secs(1))).await;
        carried
    };
    let file = tempfile::tempfile().expect("a file");
    let refused = Client::adopt(file.into(), session).expect_err("a file is no connection");
    assert!(refused.to_string().contains("descriptor"), "{refused}");
}

/// A peer that does not read: the hold cannot stop the writer within its bound, says so, and
/// lets the connection go on; once the peer reads, calls made since are answered.
#[tokio::test]
async fn a_hold_that_cannot_stop_in_time_is_released() {
    use std::io::{BufRead, Write};

    let dir = common::socket_dir();
    let path = socket_in(&dir, "slow.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let (go, gate) = std::sync::mpsc::channel::<()>();
    // A JSON-RPC peer that reads nothing until told to, then answers every call with its id.
    let peer = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = gate.recv_timeout(Duration::from_secs(30));
        let mut writer = stream.try_clone().expect("clone");
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let request: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            let reply = serde_json::json!({ "id": request["id"], "result": { "id": "answered" }, "error": null });
            if writeln!(writer, "{reply}").is_err() {
                break;
            }
        }
    });
    let client =
        within("connect", Client::builder().protocol(Protocol::JsonRpc).connect(&path)).await.expect("connect");
    // More than the socket buffers take: the writer is left in the middle of a write.
    let big = "x".repeat(8 << 20);
    let stuck = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<_, Todo>("Task.Get", &big).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = within("hold", client.hold(Duration::from_millis(200))).await.expect_err("the writer cannot stop");
    assert!(refused.to_string().contains("did not come to a stop"), "{refused}");
    let after = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<_, Todo>("Task.Get", "after").await })
    };
    go.send(()).expect("let the peer read");
    let answered = within("the call made after", after).await.expect("join").expect("answered");
    assert_eq!(answered.id, "answered");
    within("the big call", stuck).await.expect("join").expect("answered too");
    client.close().await;
    peer.join().expect("peer");
}
