use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const BOUND: Duration = Duration::from_secs(30);

/// Both sides of one segment with small rings, over a socket pair.
fn connected(c2s: u64, s2c: u64) -> ((ShmRead, ShmWrite), (ShmRead, ShmWrite), std::os::unix::net::UnixStream) {
    let layout = Layout::new(c2s, s2c).expect("sizes");
    let (segment, fd) = Segment::create(layout.segment_len()).expect("segment");
    assert!(layout.write_header(&segment));
    let theirs = Arc::new(Segment::map(&fd).expect("the peer's mapping"));
    let (client_bells, server_bells) = Bells::new().expect("bells");
    let (client_socket, server_socket) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    for socket in [&client_socket, &server_socket] {
        socket.set_nonblocking(true).expect("non-blocking");
    }
    let client = halves(Arc::new(segment), &layout, Role::Client, client_bells, client_socket.as_fd()).expect("client");
    let layout = Layout::read_header(&theirs).expect("the header");
    let server = halves(theirs, &layout, Role::Server, server_bells, server_socket.as_fd()).expect("server");
    // The halves hold their own descriptors of the client's socket; the test keeps the
    // server's, to end the connection as a dying peer would.
    drop(OwnedFd::from(client_socket));
    (client, server, server_socket)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_cross_small_rings_both_ways_at_once_and_end_with_the_stream() {
    let ((mut client_read, mut client_write), (mut server_read, mut server_write), server_socket) =
        connected(4096, 16384);
    // The server echoes until the client's end of stream, then ends its own.
    let echo = tokio::spawn(async move {
        let copied = tokio::io::copy(&mut server_read, &mut server_write).await.expect("echo");
        server_write.shutdown().await.expect("shutdown");
        drop(server_socket);
        copied
    });
    let sent = pattern(4 << 20, 0x5a);
    let writing = {
        let sent = sent.clone();
        tokio::spawn(async move {
            // Odd sizes, so that writes straddle the wrap.
            for chunk in sent.chunks(10_007) {
                client_write.write_all(chunk).await.expect("write");
            }
            client_write.shutdown().await.expect("shutdown");
            client_write
        })
    };
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, client_read.read_to_end(&mut received)).await;
    // Stuck: where each ring's indices and each half's `sleep` word stood says which wake-up
    // went missing.
    let segment = &client_read.wait.segment;
    let indices: Vec<u64> =
        [128, 256, 384, 512].map(|at| segment.word64(at).map_or(0, |w| w.load(Ordering::SeqCst))).into();
    let sleeps: Vec<u32> =
        [136, 264, 392, 520].map(|at| segment.word32(at).map_or(0, |w| w.load(Ordering::SeqCst))).into();
    assert!(
        read.is_ok(),
        "stuck after {} of {} bytes: indices {indices:?}, sleep words {sleeps:?}",
        received.len(),
        sent.len()
    );
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the bytes came back as sent, in order");
    assert_eq!(tokio::time::timeout(BOUND, echo).await.expect("bound").expect("join"), sent.len() as u64);
    drop(tokio::time::timeout(BOUND, writing).await.expect("bound").expect("join"));
}

#[tokio::test]
async fn a_writer_waiting_for_room_fails_when_the_peer_goes() {
    let ((_client_read, mut client_write), server, server_socket) = connected(4096, 4096);
    client_write.write_all(&[1; 4096]).await.expect("the ring takes this much");
    let waiting = tokio::spawn(async move { client_write.write_all(&[2; 10]).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "the ring is full: the write waits for room");
    drop(server);
    drop(server_socket);
    let err = tokio::time::timeout(BOUND, waiting).await.expect("bound").expect("join").expect_err("peer gone");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn what_the_peer_wrote_before_it_went_is_read_then_the_end() {
    let ((mut client_read, _client_write), (_server_read, mut server_write), server_socket) = connected(4096, 4096);
    server_write.write_all(b"last words").await.expect("write");
    drop(server_write);
    drop(server_socket);
    let mut all = Vec::new();
    tokio::time::timeout(BOUND, client_read.read_to_end(&mut all)).await.expect("bound").expect("read");
    assert_eq!(all, b"last words");
}

#[tokio::test]
async fn a_goodbye_on_the_socket_is_an_error_not_an_end() {
    let ((mut client_read, _client_write), _server, server_socket) = connected(4096, 4096);
    rustix::net::send(&server_socket, b"\0\0\0\x10", rustix::net::SendFlags::empty()).expect("send");
    let err = tokio::time::timeout(BOUND, client_read.read(&mut [0; 16])).await.expect("bound").expect_err("goodbye");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("corrupt"), "{err}");
}
