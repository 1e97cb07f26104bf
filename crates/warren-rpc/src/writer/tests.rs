use super::*;
use bytes::Bytes;

#[tokio::test]
async fn large_parts_go_out_in_order_between_small_frames() {
    let (tx, queue) = channel();
    let big = Bytes::from(vec![7u8; COALESCE_MAX + 1]);
    tx.send(Bytes::from_static(b"a")).expect("queued");
    tx.send(Outgoing::Parts(vec![Bytes::from_static(b"b"), big.clone(), Bytes::from_static(b"c")].into()))
        .expect("queued");
    tx.send(Bytes::from_static(b"d")).expect("queued");
    drop(tx);
    let (mut read, write) = tokio::io::duplex(1 << 20);
    run(write, queue, CancellationToken::new(), || false).await.expect("written");
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut read, &mut out).await.expect("read");
    let mut expected = b"ab".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"cd");
    assert_eq!(out, expected);
}

#[tokio::test]
async fn a_failed_or_panicking_encode_leaves_nothing_behind() {
    let (tx, queue) = channel();
    tx.send(Bytes::from_static(b"<")).expect("queued");
    let failed = tx.encode(Flush::Later, |frame| {
        frame.buf.extend_from_slice(b"half");
        Err("no")
    });
    assert!(matches!(failed, Err(Unsent::Encode("no"))));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tx.encode(Flush::Later, |frame| -> Result<(), ()> {
            frame.buf.extend_from_slice(b"half");
            panic!("a Serialize impl panicked");
        })
    }));
    assert!(panicked.is_err());
    tx.encode(Flush::Later, |frame| {
        frame.buf.extend_from_slice(b"whole");
        Ok::<(), ()>(())
    })
    .expect("queued");
    drop(tx);
    let (mut read, write) = tokio::io::duplex(1024);
    run(write, queue, CancellationToken::new(), || false).await.expect("written");
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut read, &mut out).await.expect("read");
    assert_eq!(out, b"<whole");
}

#[tokio::test]
async fn a_frame_flushed_now_is_written_by_the_sender_and_the_rest_by_the_writer() {
    let (tx, queue) = channel();
    let (mut read, write) = tokio::io::duplex(16);
    let writer = tokio::spawn(run(write, queue, CancellationToken::new(), || false));
    // Let the writer task take its place, idle, so that the next flush is the sender's.
    tokio::task::yield_now().await;
    tx.send_flush(Bytes::from_static(b"0123456789"), Flush::Now).expect("queued");
    let mut first = [0u8; 10];
    tokio::io::AsyncReadExt::read_exact(&mut read, &mut first).await.expect("read");
    assert_eq!(&first, b"0123456789");
    // More than the pipe takes at once: the writer task finishes it.
    let big: Vec<u8> = (0..100u8).collect();
    tx.send_flush(Bytes::from(big.clone()), Flush::Now).expect("queued");
    tx.send_flush(Bytes::from_static(b"!"), Flush::Later).expect("queued");
    tx.flush_now();
    drop(tx);
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut read, &mut out).await.expect("read");
    writer.await.expect("joined").expect("written");
    let mut expected = big;
    expected.push(b'!');
    assert_eq!(out, expected);
}
