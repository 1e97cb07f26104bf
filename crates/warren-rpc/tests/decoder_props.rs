//! Properties of the decoders that face untrusted bytes: the frame reader, the handshake and the
//! body parsers never panic on any input, never hand out a frame over the limit, and decode
//! whatever the encoder produced back to the same frames.
//!
//! The case count is proptest's: 256 by default, `PROPTEST_CASES=1000000` for a soak run.
//! Failure persistence is off so a failing run writes no regression file into the source tree;
//! proptest prints the minimal failing input, which is what to turn into a unit test.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use warren_rpc::__wire::frame::{self, Frame, FrameReader, HEADER_LEN, Kind};
use warren_rpc::__wire::{hello, message};
use warren_rpc::{Codec, FrameError};

/// A deliberately small limit, so that arbitrary headers exceed it often and frames under it are
/// cheap to generate.
const SMALL_MAX: u32 = 512;

const KINDS: [Kind; 10] = [
    Kind::Hello,
    Kind::Welcome,
    Kind::Request,
    Kind::Response,
    Kind::Error,
    Kind::Cancel,
    Kind::Notify,
    Kind::Ping,
    Kind::Pong,
    Kind::Goodbye,
];

fn config() -> ProptestConfig {
    // `default()` reads PROPTEST_CASES and the other PROPTEST_* variables.
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Runs `fut` to completion on a fresh current-thread runtime with a clock.
fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime").block_on(fut)
}

/// Serves `data` at most `chunk` bytes per read, so frames arrive split at every possible point.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Frames the reader returns until it stops, and how it stopped.
struct Decoded {
    frames: Vec<Frame>,
    end: Result<(), FrameError>,
}

fn decode_all(data: &[u8], chunk: usize, max_frame: u32) -> Decoded {
    block_on(async {
        let mut reader = FrameReader::new(Chunked { data, chunk }, max_frame);
        let mut frames = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return Decoded { frames, end: Ok(()) },
                Err(err) => return Decoded { frames, end: Err(err) },
            }
        }
    })
}

/// Arbitrary bytes, biased towards ones that get past the header: half of the inputs start
/// with a plausible header (small length, a known kind) so the body paths are exercised too.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    let plausible = (0..SMALL_MAX + 64, proptest::sample::select(&KINDS[..]), any::<u32>(), vec(any::<u8>(), 0..4096))
        .prop_map(|(len, kind, id, rest)| {
            let mut out = frame::encode(kind, id, &[]).to_vec();
            out[..4].copy_from_slice(&len.to_be_bytes());
            out.extend(rest);
            out
        });
    prop_oneof![vec(any::<u8>(), 0..4096), plausible]
}

fn vec(element: impl Strategy<Value = u8>, len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(element, len)
}

fn frame_strategy() -> impl Strategy<Value = (Kind, u32, Vec<u8>)> {
    (proptest::sample::select(&KINDS[..]), any::<u32>(), vec(any::<u8>(), 0..600))
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the bytes, the reader returns frames within the limit that are faithful copies
    /// of the input, then stops with end-of-stream or an error; it never panics.
    #[test]
    fn frame_reader_never_panics_nor_exceeds_its_limit(
        data in wire_bytes(),
        chunk in 1usize..5000,
        max_frame in 0u32..=SMALL_MAX,
    ) {
        let decoded = decode_all(&data, chunk, max_frame);
        let mut offset = 0;
        for frame in &decoded.frames {
            prop_assert!(frame.body.len() <= max_frame as usize, "body {} > limit {max_frame}", frame.body.len());
            let header = &data[offset..offset + HEADER_LEN];
            prop_assert_eq!(u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize, frame.body.len());
            prop_assert_eq!(header[4], frame.kind as u8);
            prop_assert_eq!(u32::from_be_bytes([header[6], header[7], header[8], header[9]]), frame.id);
            offset += HEADER_LEN;
            prop_assert_eq!(&data[offset..offset + frame.body.len()], &frame.body[..]);
            offset += frame.body.len();
        }
        if decoded.end.is_ok() {
            prop_assert_eq!(offset, data.len(), "clean end of stream only on a frame boundary");
        }
    }

    /// The server side of the handshake never panics on any first bytes, and only a preface plus
    /// a HELLO naming a codec it supports gets a welcome.
    #[test]
    fn hello_accept_never_panics(data in wire_bytes(), prefixed in any::<bool>(), chunk in 1usize..64) {
        let mut input = if prefixed { hello::preface().to_vec() } else { Vec::new() };
        input.extend_from_slice(&data);
        let mut reply = Vec::new();
        let outcome = block_on(async {
            let mut reader = FrameReader::new(Chunked { data: &input, chunk }, SMALL_MAX);
            let codecs = [Codec::MessagePack, Codec::Json];
            hello::accept(&mut reader, &mut reply, &codecs, SMALL_MAX, Duration::from_millis(1)).await
        });
        if outcome.is_ok() {
            prop_assert!(input.starts_with(&hello::preface()));
            prop_assert_eq!(input[PREFACE_KIND_OFFSET], Kind::Hello as u8);
        }
        prop_assert!(!reply.is_empty(), "the peer is always told something");
    }

    /// The client side of the handshake never panics on any answer.
    #[test]
    fn hello_read_answer_never_panics(data in wire_bytes(), prefixed in any::<bool>()) {
        let mut input = if prefixed { hello::preface().to_vec() } else { Vec::new() };
        input.extend_from_slice(&data);
        let _ = block_on(async {
            let mut reader = FrameReader::new(Chunked { data: &input, chunk: input.len().max(1) }, SMALL_MAX);
            hello::read_answer(&mut reader).await
        });
    }

    /// Body parsers never panic; what they accept is consistent with the body they were given.
    #[test]
    fn body_parsers_never_panic(body in vec(any::<u8>(), 0..1024)) {
        let bytes = bytes::Bytes::from(body.clone());
        if let Ok(request) = message::parse_request(bytes.clone()) {
            prop_assert_eq!(body[0] as usize, request.method.len());
            prop_assert_eq!(request.payload.len(), body.len() - 1 - request.method.len() - 8);
        }
        if let Ok(notify) = message::parse_notify(bytes.clone()) {
            prop_assert_eq!(notify.payload.len(), body.len() - 1 - notify.method.len());
        }
        if let Ok(error) = message::parse_error(bytes.clone()) {
            prop_assert!(error.data.as_ref().is_none_or(|data| !data.is_empty()), "empty data is absent data");
        }
        let _ = frame::parse_goodbye(bytes);
    }

    /// Any sequence of frames encoded back to back decodes to the same frames, however the
    /// stream is split into reads.
    #[test]
    fn encoded_frames_round_trip(frames in proptest::collection::vec(frame_strategy(), 0..16), chunk in 1usize..2000) {
        let mut wire = Vec::new();
        for (kind, id, body) in &frames {
            wire.extend_from_slice(&frame::encode(*kind, *id, body));
        }
        let max_frame = frames.iter().map(|(_, _, body)| body.len()).max().unwrap_or(0);
        let decoded = decode_all(&wire, chunk, u32::try_from(max_frame).expect("small"));
        prop_assert!(decoded.end.is_ok(), "{:?}", decoded.end);
        let back: Vec<(Kind, u32, Vec<u8>)> =
            decoded.frames.into_iter().map(|frame| (frame.kind, frame.id, frame.body.to_vec())).collect();
        prop_assert_eq!(back, frames);
    }
}

/// Offset of the first frame's kind byte after a preface.
const PREFACE_KIND_OFFSET: usize = hello::PREFACE_LEN + 4;
