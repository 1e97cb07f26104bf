//! Deadlines and cancellation reach the handler: its token fires, and the caller learns at once.

mod common;

use std::time::Duration;

use common::{serve_unix, test_server, within};
use std::time::Instant;
use warren_rpc::{CallError, Client};

/// In memory. The handler never answers, so only the client's own deadline ends the call; the
/// upper bound is loose (a loaded 2-CPU machine must not fail it) because a client that waited
/// for the server would hang, not be late. Not on tokio's paused clock: that needs tokio's
/// `test-util`, which as a dev-dependency would also be compiled into the criterion benches and
/// slow every clock read of the measured code.
#[tokio::test]
async fn a_call_with_a_deadline_fails_promptly_and_the_handler_token_fires() {
    let (events, mut observed) = tokio::sync::mpsc::unbounded_channel();
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_end);
    let serving = tokio::spawn(test_server(events).serve_io(read, write));
    let (read, write) = tokio::io::split(client_end);
    let client = within("handshake", Client::builder().over(read, write, "mem")).await.expect("handshake");
    let deadline = Duration::from_millis(100);
    let start = Instant::now();
    let err = client.call_timeout::<_, ()>("Task.Hang", "deadline", deadline).await.expect_err("must time out");
    let took = start.elapsed();
    assert!(
        matches!(&err, CallError::DeadlineExceeded { method, timeout } if method == "Task.Hang" && *timeout == deadline),
        "{err}"
    );
    assert!(err.to_string().contains("Task.Hang"), "error names the method: {err}");
    assert!(took >= deadline && took < deadline + testkit::SLACK, "took {took:?}");
    common::expect_event(&mut observed, "cancelled:deadline").await;
    client.close().await;
    within("serve_io to return once the client closed", serving).await.expect("serve_io task");
}

#[tokio::test]
async fn the_server_enforces_the_deadline_even_if_the_client_does_not_cancel() {
    // A raw REQUEST with a deadline but no CANCEL afterwards: the server must still stop the
    // handler and answer DEADLINE_EXCEEDED by itself.
    let (running, dir, mut observed) = serve_unix().await;
    let path = dir.path().join("t.sock");
    let mut stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(&warren_rpc::__wire::hello::client_hello(&[warren_rpc::Codec::Json], 1 << 20))
        .await
        .expect("hello");
    let request = warren_rpc::__wire::message::request(
        5,
        "Task.Hang",
        Some(Duration::from_millis(50)),
        warren_rpc::Codec::Json,
        "raw",
        1 << 20,
    )
    .expect("encode");
    stream.write_all(&request).await.expect("request");
    let mut reader = warren_rpc::__wire::frame::FrameReader::new(stream, 1 << 20);
    let answer = within("server-side deadline", async {
        assert!(matches!(
            warren_rpc::__wire::hello::read_answer(&mut reader).await,
            Ok(warren_rpc::__wire::hello::Answer::Welcome(_))
        ));
        reader.read_frame().await.expect("frame").expect("not eof")
    })
    .await;
    assert_eq!((answer.kind, answer.id), (warren_rpc::__wire::frame::Kind::Error, 5));
    let body = warren_rpc::__wire::message::parse_error(answer.body).expect("error body");
    assert_eq!(body.code, warren_rpc::ErrorCode::DeadlineExceeded, "{}", body.message);
    common::expect_event(&mut observed, "cancelled:raw").await;
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dropping_an_in_flight_call_cancels_the_handler() {
    let (running, _dir, mut observed) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let call = client.call::<_, ()>("Task.Hang", "dropped");
    // Poll the call long enough to send it, then drop it.
    let _ = tokio::time::timeout(Duration::from_millis(20), call).await;
    common::expect_event(&mut observed, "cancelled:dropped").await;
    // The connection is unaffected.
    let todo: common::Todo = client.call("Task.Get", "after").await.expect("call");
    assert_eq!(todo.id, "after");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_hung_handler_does_not_hold_up_other_calls() {
    let (running, _dir, _observed) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let hung = tokio::spawn({
        let client = client.clone();
        async move { client.call_timeout::<_, ()>("Task.Hang", "h", Duration::from_secs(2)).await }
    });
    for i in 0..100 {
        let todo: common::Todo =
            within("call beside a hung one", client.call("Task.Get", &format!("{i}"))).await.expect("call");
        assert_eq!(todo.id, i.to_string());
    }
    assert!(matches!(hung.await.expect("join"), Err(CallError::DeadlineExceeded { .. })));
    running.shutdown(Duration::from_secs(1)).await;
}
