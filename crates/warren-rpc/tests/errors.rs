//! Each failure is its own error variant, with a message naming the method or endpoint.

mod common;

use std::time::Duration;

use common::{Todo, serve_unix};
use warren_rpc::{CallError, Client, ErrorCode, LostReason};

#[tokio::test]
async fn every_failure_has_its_own_variant() {
    let (running, _dir, _events) = serve_unix().await;
    let endpoint = running.endpoint().to_string();
    let client = common::connect(running.endpoint()).await.expect("connect");

    let err = client.call::<_, Todo>("Nope.Get", "x").await.expect_err("unknown service");
    assert!(matches!(&err, CallError::UnknownService { method, .. } if method == "Nope.Get"), "{err}");
    assert!(err.to_string().contains(&endpoint), "names the endpoint: {err}");

    let err = client.call::<_, Todo>("Task.Nope", "x").await.expect_err("unknown method");
    assert!(
        matches!(&err, CallError::UnknownMethod { method, message, .. } if method == "Task.Nope" && message.contains("Task.Get")),
        "{err}"
    );

    let err = client.call::<_, Todo>("Task.Get", &42u32).await.expect_err("bad argument");
    assert!(matches!(&err, CallError::BadArgument { method, .. } if method == "Task.Get"), "{err}");

    let err = client.call::<_, ()>("Task.Fail", &1234u32).await.expect_err("application error");
    let CallError::Application { method, code, message, data } = &err else { panic!("{err}") };
    assert_eq!((method.as_str(), *code, message.as_str()), ("Task.Fail", 1234, "failed with 1234"));
    let detail: Todo = data.as_ref().expect("data").decode().expect("decodes");
    assert_eq!(detail.id, "detail");

    let err = client.call::<_, ()>("Task.Panic", &()).await.expect_err("panic");
    assert!(matches!(&err, CallError::Internal { message, .. } if message.contains("handler blew up")), "{err}");

    let err = client.call::<_, Todo>("Task.Get", &"x").await.map(|_| ());
    assert!(err.is_ok(), "the connection survived all of the above");

    let err = client.call::<_, u32>("Task.Get", "x").await.expect_err("reply of the wrong type");
    assert!(matches!(&err, CallError::BadReply { method, .. } if method == "Task.Get"), "{err}");

    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reserved_codes_cannot_be_impersonated_by_handlers() {
    let (running, _dir, _events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let err = client.call::<_, ()>("Task.Fail", &6u32).await.expect_err("fails");
    assert_eq!(err.code(), ErrorCode::Internal, "code 6 (SHUTTING_DOWN) is reserved: {err}");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn frames_over_the_limit_fail_that_call_only() {
    let dir = common::socket_dir();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let server = common::test_server(tx).max_frame(64 * 1024);
    let running = server.bind(&warren_rpc::Endpoint::unix(dir.path().join("t.sock"))).await.expect("bind");
    let client = common::client().max_frame(32 * 1024).connect(running.endpoint()).await.expect("connect");

    let big = warren_rpc::Bytes::from(vec![1u8; 100 * 1024]);
    let err = client.call::<_, warren_rpc::Bytes>("Task.Echo", &big).await.expect_err("request too large");
    assert!(
        matches!(&err, CallError::FrameTooLarge { method, message } if method == "Task.Echo" && message.contains("65536")),
        "{err}"
    );

    // Fits the server's limit, but the echo does not fit the client's: the server answers with
    // an error instead of sending what the client would have to refuse.
    let medium = warren_rpc::Bytes::from(vec![1u8; 40 * 1024]);
    let err = client.call::<_, warren_rpc::Bytes>("Task.Echo", &medium).await.expect_err("reply too large");
    assert!(matches!(&err, CallError::FrameTooLarge { message, .. } if message.contains("32768")), "{err}");

    let todo: Todo = client.call("Task.Get", "still").await.expect("connection intact");
    assert_eq!(todo.id, "still");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_vanished_server_fails_every_call_in_flight_with_the_reason() {
    let (running, _dir, mut events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call::<_, ()>("Task.Hang", &format!("{i}")).await })
        })
        .collect();
    for i in 0..20 {
        common::expect_event(&mut events, &format!("started:{i}")).await;
    }
    running.shutdown(Duration::ZERO).await;
    for call in calls {
        let err = common::within("failed call", call).await.expect("join").expect_err("must fail");
        assert!(
            matches!(
                &err,
                CallError::Cancelled { .. } | CallError::ConnectionLost { reason: LostReason::PeerShutDown, .. }
            ),
            "calls that had started are cancelled, never reported as not run: {err}"
        );
    }
    let err = client.call::<_, Todo>("Task.Get", "after").await.expect_err("server gone");
    assert!(
        matches!(
            &err,
            CallError::ConnectionLost { reason: LostReason::PeerShutDown, .. } | CallError::ShuttingDown { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Task.Get"), "{err}");
}

#[tokio::test]
async fn a_server_killed_mid_call_fails_every_call_at_once_as_closed_by_peer() {
    // The server end of a socket pair, served in a task that is then aborted: the abrupt end a
    // SIGKILLed child gives, without a goodbye.
    let (server_end, client_end) = tokio::net::UnixStream::pair().expect("socket pair");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (read, write) = server_end.into_split();
    let serving = tokio::spawn(common::test_server(tx).serve_io(read, write));
    let (read, write) = client_end.into_split();
    let client = Client::builder().over(read, write, "pair:test").await.expect("handshake");
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call::<_, ()>("Task.Hang", &format!("{i}")).await })
        })
        .collect();
    for i in 0..50 {
        common::expect_event(&mut events, &format!("started:{i}")).await;
    }
    serving.abort();
    let start = std::time::Instant::now();
    for call in calls {
        let err = common::within("failed call", call).await.expect("join").expect_err("must fail");
        assert!(
            matches!(&err, CallError::ConnectionLost { reason: LostReason::ClosedByPeer, endpoint, .. } if endpoint == "pair:test"),
            "{err}"
        );
        assert!(err.to_string().contains("connection closed by peer"), "says why: {err}");
    }
    assert!(start.elapsed() < Duration::from_secs(1), "calls failed promptly, not by timeout");
}

#[tokio::test]
async fn a_call_after_a_failed_write_reports_the_write_error_not_a_local_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two socket pairs, so that the client's writes can fail while its reads stay open: the
    // moment between a write failing (EPIPE after the peer died) and the reader seeing the end,
    // held open for as long as the test needs.
    let (client_read, mut server_write) = tokio::net::UnixStream::pair().expect("socket pair");
    let (client_write, mut server_read) = tokio::net::UnixStream::pair().expect("socket pair");
    let server = async {
        let mut hello = [0u8; 5 + 10 + 11];
        server_read.read_exact(&mut hello).await.expect("client preface and hello");
        // PREFACE, then WELCOME: max_frame 16 MiB, features 0xF, MessagePack (PROTOCOL.md §14.3).
        let welcome = b"\xf7WRP\x01\x00\x00\x00\x09\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0f\x01";
        server_write.write_all(welcome).await.expect("welcome");
    };
    let (client, ()) = tokio::join!(Client::builder().over(client_read, client_write, "pair:half"), server);
    let client = client.expect("handshake");
    drop(server_read);

    let err = common::within("a call on the broken connection", async {
        loop {
            match client.call_timeout::<_, Todo>("Task.Get", "x", Duration::from_millis(50)).await {
                // The frame was written before the write side broke, or went down with the
                // writer's queue: no answer can come.
                Err(CallError::DeadlineExceeded { .. }) => continue,
                other => break other.expect_err("nothing answers"),
            }
        }
    })
    .await;
    assert!(
        matches!(&err, CallError::ConnectionLost { reason: LostReason::Io(_), .. }),
        "the failed write is the reason, not a local close: {err}"
    );
    drop(server_write);
}
