use super::*;

async fn decode_all(bytes: &[u8], max: u32) -> Result<Vec<Frame>, FrameError> {
    let mut reader = FrameReader::new(bytes, max);
    let mut frames = Vec::new();
    while let Some(frame) = reader.read_frame().await? {
        frames.push(frame);
    }
    Ok(frames)
}

#[tokio::test]
async fn frames_round_trip_back_to_back() {
    let mut wire = Vec::new();
    wire.extend_from_slice(&encode(Kind::Request, 7, b"abc"));
    wire.extend_from_slice(&encode(Kind::Cancel, 7, b""));
    let frames = decode_all(&wire, 1024).await.expect("valid frames");
    assert_eq!(frames.len(), 2);
    assert_eq!((frames[0].kind, frames[0].id, &frames[0].body[..]), (Kind::Request, 7, &b"abc"[..]));
    assert_eq!((frames[1].kind, frames[1].id, frames[1].body.len()), (Kind::Cancel, 7, 0));
}

#[tokio::test]
async fn a_large_frame_arriving_in_pieces_survives_dropped_reads_and_leaves_the_next_frame() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = encode(Kind::Response, 3, &body).to_vec();
    wire.extend_from_slice(&encode(Kind::Pong, 4, b"next"));
    let (mut tx, rx) = tokio::io::duplex(8 * 1024);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for piece in wire.chunks(7_000) {
            tx.write_all(piece).await.expect("write");
            tokio::task::yield_now().await;
        }
    });
    let mut reader = FrameReader::new(rx, 1 << 20);
    // A caller's select! may drop the read at any await; the frame must come out whole.
    let frame = loop {
        let read = tokio::time::timeout(std::time::Duration::from_micros(50), reader.read_frame()).await;
        if let Ok(frame) = read {
            break frame.expect("valid").expect("a frame");
        }
    };
    assert_eq!((frame.kind, frame.id, frame.body.len()), (Kind::Response, 3, body.len()));
    assert!(frame.body[..] == body[..]);
    let next = reader.read_frame().await.expect("valid").expect("a frame");
    assert_eq!((next.kind, next.id, &next.body[..]), (Kind::Pong, 4, &b"next"[..]));
    writer.await.expect("writer");
    assert!(reader.read_frame().await.expect("clean end").is_none());
}

#[tokio::test]
async fn a_large_frame_cut_short_is_truncated() {
    let full = encode(Kind::Response, 1, &vec![1u8; 100_000]);
    let err = decode_all(&full[..full.len() - 1], 1 << 20).await.expect_err("truncated");
    assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
}

#[tokio::test]
async fn oversized_frame_is_rejected_from_its_header_alone() {
    // Only the header is present: the reader must refuse before waiting for (or allocating)
    // the announced 4 GiB body.
    let header = [0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 1];
    let err = decode_all(&header, 1024).await.expect_err("must refuse");
    assert!(matches!(err, FrameError::TooLarge { size: 0xffff_ffff, limit: 1024 }), "{err}");
}

#[tokio::test]
async fn truncated_and_unknown_frames_are_errors() {
    let full = encode(Kind::Response, 1, b"hello");
    let err = decode_all(&full[..full.len() - 1], 1024).await.expect_err("truncated");
    assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
    let mut unknown = full.to_vec();
    unknown[4] = 0x99;
    let err = decode_all(&unknown, 1024).await.expect_err("unknown kind");
    assert!(matches!(err, FrameError::UnknownKind { kind: 0x99 }), "{err}");
}

/// A reader stopped between two reads leaves exactly the bytes it has not returned as
/// frames, whether a small frame or a large one was cut: a reader of the same stream that
/// starts from them reads on as the first would have.
#[tokio::test]
async fn what_a_stopped_reader_leaves_reads_on_as_the_stream_would() {
    for body_len in [40, 3 * READ_CHUNK] {
        let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
        let mut stream = encode(Kind::Response, 7, b"whole").to_vec();
        stream.extend_from_slice(&encode(Kind::Response, 8, &body));
        let cut = stream.len() - body_len / 2;
        let (mut tx, rx) = tokio::io::duplex(8 * READ_CHUNK);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &stream[..cut]).await.expect("write");
        let mut first = FrameReader::new(rx, u32::MAX);
        let whole = first.read_frame().await.expect("read").expect("a frame");
        assert_eq!((whole.id, &whole.body[..]), (7, &b"whole"[..]));
        let stopped = tokio::time::timeout(std::time::Duration::from_millis(20), first.read_frame()).await;
        assert!(stopped.is_err(), "the second frame is not all there");
        let unread = first.unread();
        assert_eq!(&unread[..], &stream[HEADER_LEN + 5..cut], "body of {body_len}");
        let (rx, _) = first.into_parts();
        let mut second = FrameReader::with_buffered(rx, u32::MAX, unread);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &stream[cut..]).await.expect("write");
        let frame = second.read_frame().await.expect("read").expect("a frame");
        assert_eq!((frame.id, frame.body.len()), (8, body_len));
        assert_eq!(&frame.body[..], &body[..]);
    }
}
