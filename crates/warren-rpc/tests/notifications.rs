//! Fire-and-forget notifications from the client, and events pushed by the server, on the same
//! connection as ordinary calls.

mod common;

use std::time::Duration;

use common::{Todo, expect_event, serve_unix, within};

#[tokio::test]
async fn a_client_notification_runs_the_handler_without_a_reply() {
    let (running, _dir, mut events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    client.notify("Log.Write", "hello").expect("notify");
    expect_event(&mut events, "log:hello").await;
    // An unknown notification is dropped without disturbing the connection.
    client.notify("Log.Nope", "x").expect("notify");
    let todo: Todo = client.call("Task.Get", "after").await.expect("call");
    assert_eq!(todo.id, "after");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_server_pushes_events_to_a_subscribed_client() {
    let (running, _dir, _events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let mut ticks = client.subscribe("Events.Tick");
    let mut other = client.subscribe("Events.Other");
    client.call::<_, ()>("Events.Subscribe", &("Events.Tick", 100u32)).await.expect("subscribe");
    within("100 events", async {
        for expected in 0..100u32 {
            let event = ticks.next().await.expect("event");
            assert_eq!(event.method(), "Events.Tick");
            assert_eq!(event.decode::<u32>().expect("decodes"), expected, "events arrive in order");
        }
    })
    .await;
    // Calls keep working while events flow, and events of other names go elsewhere.
    let todo: Todo = client.call("Task.Get", "x").await.expect("call");
    assert_eq!(todo.id, "x");
    assert!(tokio::time::timeout(Duration::from_millis(50), other.next()).await.is_err(), "no stray event");
    running.shutdown(Duration::from_secs(1)).await;
    assert!(within("subscription end", ticks.next()).await.is_none(), "subscription ends with the connection");
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let (running, _dir, _events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let rtt = client.ping(Duration::from_secs(5)).await.expect("pong");
    assert!(rtt < Duration::from_secs(5));
    running.shutdown(Duration::from_secs(1)).await;
}
