//! A client that sends calls but does not read their answers holds a bounded part of the
//! server's memory: past `max_unwritten` bytes waiting for it, the server stops reading its
//! requests, and its notifications are refused; once it reads, everything is answered.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{socket_dir, socket_in, within};
use tokio::io::AsyncWriteExt;
use warren_rpc::__wire::frame::{FrameReader, Kind};
use warren_rpc::__wire::{hello, message};
use warren_rpc::{Bytes, Codec, Endpoint};

const CALLS: usize = 5_000;
const REPLY: usize = 16 * 1024;
const MAX_UNWRITTEN: usize = 256 * 1024;

#[tokio::test]
async fn a_client_that_does_not_read_is_not_read_from_and_is_answered_once_it_reads() {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let dir = socket_dir();
    let path = socket_in(&dir, "b.sock");
    let server = common::server().max_unwritten(MAX_UNWRITTEN).service("Task", move |s| {
        s.method("Big", move |_ctx, (): ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Bytes::from(vec![7u8; REPLY])) }
        })
    });
    let running = server.bind(&Endpoint::unix(&path)).await.expect("bind");

    let stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(&hello::client_hello(&[Codec::MessagePack], 1 << 20)).await.expect("hello");
    // Every call at once, in a task of its own: the writes block once the server stops reading.
    let sending = tokio::spawn(async move {
        for id in 1..=CALLS {
            let id = u32::try_from(id).expect("id");
            let request = message::request(id, "Task.Big", None, Codec::MessagePack, &(), 1 << 20).expect("encode");
            if write.write_all(&request).await.is_err() {
                return;
            }
        }
        // Keep the write half open: closing it is not the point.
        std::future::pending::<()>().await;
    });
    // Nothing is read for a while: the server answers up to its bound (plus what the socket
    // buffers hold, at most a few MiB), then waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = answered.load(Ordering::SeqCst);
    let bound = (MAX_UNWRITTEN + (8 << 20)) / REPLY;
    assert!(early < bound, "{early} calls answered for a client that reads nothing (bound {bound})");
    assert!(early > 0, "the first calls are answered");

    // Reading resumes the connection: every call is answered.
    let mut reader = FrameReader::new(read, 1 << 20);
    let got = within("every answer", async {
        assert!(matches!(hello::read_answer(&mut reader).await, Ok(hello::Answer::Welcome(_))));
        let mut got = 0;
        while got < CALLS {
            let frame = reader.read_frame().await.expect("frame").expect("not eof");
            assert_eq!(frame.kind, Kind::Response, "every call succeeds");
            got += 1;
        }
        got
    })
    .await;
    assert_eq!(got, CALLS);
    assert_eq!(answered.load(Ordering::SeqCst), CALLS);
    sending.abort();
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn notifications_to_a_client_that_does_not_read_are_refused_not_queued() {
    let (tx, refused) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let dir = socket_dir();
    let path = socket_in(&dir, "n.sock");
    let server = common::server().max_unwritten(MAX_UNWRITTEN).service("Feed", move |s| {
        s.method("Flood", move |ctx, (): ()| {
            let notifier = ctx.notifier();
            let tx = tx.lock().expect("lock").take();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![1u8; REPLY]);
                let mut pushed = 0usize;
                let err = loop {
                    match notifier.notify("Feed.Chunk", &chunk) {
                        Ok(()) => pushed += 1,
                        Err(err) => break err,
                    }
                    if pushed % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send((pushed, err));
                }
            });
            async move { Ok(()) }
        })
    });
    let running = server.bind(&Endpoint::unix(&path)).await.expect("bind");
    let mut stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    stream.write_all(&hello::client_hello(&[Codec::MessagePack], 1 << 20)).await.expect("hello");
    let request = message::request(1, "Feed.Flood", None, Codec::MessagePack, &(), 1 << 20).expect("encode");
    stream.write_all(&request).await.expect("request");
    let (pushed, err) = within("the pusher to be refused", refused).await.expect("an outcome");
    assert!(matches!(err, warren_rpc::NotifyError::Backlogged { .. }), "{err}");
    assert!(err.to_string().contains("not reading"), "{err}");
    assert!(pushed * REPLY < MAX_UNWRITTEN + (8 << 20), "{pushed} notifications of {REPLY} bytes queued");
    drop(stream);
    running.shutdown(Duration::from_secs(1)).await;
}

/// A client that stopped reading, then left: its connection ends. It used to wait for room in
/// a writer that had stopped, which returned at once, for ever, and held a runtime thread (on a
/// one-thread runtime, the whole server). Run on a thread of its own, bounded from outside the
/// runtime, since a held runtime cannot fire its own timers.
#[test]
fn a_backlogged_connection_whose_client_leaves_does_not_hold_the_server() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(backlogged_then_gone());
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the server still answers after a backlogged client left (within 20 s)");
}

async fn backlogged_then_gone() {
    let dir = socket_dir();
    let path = socket_in(&dir, "g.sock");
    let server = common::server()
        .max_unwritten(MAX_UNWRITTEN)
        .service("Task", |s| s.method("Big", |_ctx, (): ()| async move { Ok(Bytes::from(vec![7u8; REPLY])) }));
    let running = server.bind(&Endpoint::unix(&path)).await.expect("bind");
    let stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(&hello::client_hello(&[Codec::MessagePack], 1 << 20)).await.expect("hello");
    let sending = tokio::spawn(async move {
        for id in 1..=CALLS {
            let id = u32::try_from(id).expect("id");
            let request = message::request(id, "Task.Big", None, Codec::MessagePack, &(), 1 << 20).expect("encode");
            if write.write_all(&request).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    // Backlogged: the server has stopped reading this client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sending.abort();
    let _ = sending.await;
    drop(read);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = common::connect(running.endpoint()).await.expect("a new client connects");
    let reply: Bytes = client.call("Task.Big", &()).await.expect("and is answered");
    assert_eq!(reply.len(), REPLY);
    running.shutdown(Duration::from_secs(1)).await;
}
