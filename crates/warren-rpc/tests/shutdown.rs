//! Graceful server shutdown: stop accepting, tell clients, refuse new calls, drain in-flight ones
//! until the deadline, cancel the rest, return once every connection is closed.

mod common;

use std::time::{Duration, Instant};

use common::{Delayed, Todo, expect_event, serve_unix, within};
use warren_rpc::{CallError, Client, LostReason};

#[tokio::test]
async fn in_flight_calls_finish_new_ones_are_refused_and_the_socket_goes_away() {
    let (running, dir, _events) = serve_unix().await;
    let path = dir.path().join("t.sock");
    let client = common::connect(running.endpoint()).await.expect("connect");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, u64>("Task.Delay", &Delayed { value: 7, delay_us: 300_000 }).await }
    });
    // Make sure the slow call is in flight before shutting down: calls on one connection are
    // handled in order, so a reply to a later call proves the earlier one was received.
    let _: Todo = client.call("Task.Get", "sync").await.expect("call");
    let handle = running.handle();
    let shutdown = tokio::spawn(async move { handle.shutdown(Duration::from_secs(5)).await });
    within("goodbye", async {
        while !client.is_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let err = client.call::<_, Todo>("Task.Get", "late").await.expect_err("refused");
    assert!(matches!(&err, CallError::ShuttingDown { method, .. } if method == "Task.Get"), "{err}");
    assert_eq!(within("slow call", slow).await.expect("join").expect("drained, not cancelled"), 7);
    let report = within("shutdown", shutdown).await.expect("join");
    assert!(!report.drain_deadline_hit, "{report:?}");
    assert!(report.elapsed < Duration::from_secs(5), "returned as soon as drained: {report:?}");
    assert!(!path.exists(), "socket file removed");
    assert!(common::connect(&path).await.is_err(), "nothing accepts any more");
    within("client sees the end", client.closed()).await;
}

#[tokio::test]
async fn calls_past_the_drain_deadline_are_cancelled_with_a_reason() {
    let (running, _dir, mut events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let hung = tokio::spawn({
        let client = client.clone();
        async move { client.call::<_, ()>("Task.Hang", "stuck").await }
    });
    expect_event(&mut events, "started:stuck").await;
    let start = Instant::now();
    let report = within("shutdown", running.shutdown(Duration::from_millis(200))).await;
    assert!(report.drain_deadline_hit);
    assert!(start.elapsed() >= Duration::from_millis(200) && start.elapsed() < Duration::from_secs(2), "{report:?}");
    expect_event(&mut events, "cancelled:stuck").await;
    let err = within("hung call", hung).await.expect("join").expect_err("cancelled");
    assert!(
        matches!(&err, CallError::Cancelled { message, .. } if message.contains("drain deadline"))
            || matches!(&err, CallError::ConnectionLost { reason: LostReason::PeerShutDown, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_is_idempotent_and_quick_when_idle() {
    let (running, _dir, _events) = serve_unix().await;
    let clients: Vec<Client> = {
        let mut clients = Vec::new();
        for _ in 0..10 {
            clients.push(common::connect(running.endpoint()).await.expect("connect"));
        }
        clients
    };
    let first = within("first shutdown", running.shutdown(Duration::from_secs(5))).await;
    let second = within("second shutdown", running.shutdown(Duration::from_secs(5))).await;
    assert!(first.elapsed < Duration::from_secs(1), "{first:?}");
    // Not its 5 s drain: the server was already shut down.
    assert!(second.elapsed < testkit::SLACK, "{second:?}");
    for client in clients {
        within("client closed", client.closed()).await;
    }
}
