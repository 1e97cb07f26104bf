//! The connection preface and the HELLO/WELCOME exchange: version, codec and feature
//! negotiation, and a clear answer to peers that speak something else.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::codec::Codec;
use crate::error::{ErrorChain, ErrorCode, Foreign, FrameError};
use crate::frame::{self, FrameReader, Kind};

/// First four bytes of every binary warren connection. 0xF7 never starts valid UTF-8, so the
/// binary protocol cannot be mistaken for JSON, HTTP or a stray log line.
pub const MAGIC: [u8; 4] = [0xF7, b'W', b'R', b'P'];

/// The protocol version this implementation speaks.
pub const VERSION: u8 = 1;

/// Magic plus version.
pub const PREFACE_LEN: usize = 5;

/// Feature bits announced in HELLO and WELCOME.
pub mod features {
    /// Requests carry deadlines.
    pub const DEADLINES: u32 = 0x1;
    /// CANCEL frames stop calls.
    pub const CANCEL: u32 = 0x2;
    /// NOTIFY frames, both ways.
    pub const NOTIFY: u32 = 0x4;
    /// PING and PONG.
    pub const PING: u32 = 0x8;
    /// Frames travel through shared memory after the hello (`docs/PROTOCOL.md` §19). Offered
    /// and granted per connection, never by default: not in [`ALL`].
    pub const SHM: u32 = 0x10;
    /// The features every binary connection of this side has.
    pub const ALL: u32 = DEADLINES | CANCEL | NOTIFY | PING;
}

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The payload codec.
    pub codec: Codec,
    /// Largest frame body the *peer* accepts: never send more.
    pub peer_max_frame: u32,
    /// The feature bits both sides have.
    pub features: u32,
}

/// Magic and version: how a binary connection starts.
pub fn preface() -> [u8; PREFACE_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION]
}

/// Preface followed by a HELLO offering `codecs` in order of preference.
pub fn client_hello(codecs: &[Codec], max_frame: u32) -> Bytes {
    client_hello_with(codecs, max_frame, features::ALL)
}

/// [`client_hello`] announcing `features`.
pub fn client_hello_with(codecs: &[Codec], max_frame: u32, features: u32) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    buf.extend_from_slice(&preface());
    let start = frame::begin(&mut buf, Kind::Hello, 0);
    buf.put_u32(max_frame);
    buf.put_u32(features);
    // More than 255 codecs cannot exist: ids are one byte.
    buf.put_u8(codecs.len().min(255) as u8);
    for codec in codecs.iter().take(255) {
        buf.put_u8(codec.id());
    }
    frame::finish(&mut buf, start);
    buf.freeze()
}

/// Server side of the handshake. On failure the peer has already been told why, in a form it
/// can read (a GOODBYE frame, or an HTTP 400 for an HTTP client), and the caller only logs.
pub async fn accept<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    supported: &[Codec],
    max_frame: u32,
    timeout: Duration,
) -> Result<Negotiated, FrameError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let outcome = tokio::time::timeout(timeout, read_hello(reader, supported))
        .await
        .unwrap_or(Err(FrameError::HelloTimeout(timeout)))
        .map(|negotiated| Negotiated { features: negotiated.features & !features::SHM, ..negotiated });
    answer(writer, &outcome, max_frame).await;
    outcome
}

/// How a connection opened.
#[derive(Debug)]
pub enum Opening {
    /// The client's HELLO was read and is acceptable; the caller sends the [`welcome`], which
    /// may carry shared memory (its `features` have [`features::SHM`] if the client offered it).
    Binary(Negotiated),
    /// The first byte that is not whitespace was `{` or `[`: the peer speaks newline-delimited
    /// JSON-RPC (`docs/PROTOCOL.md` §17). Nothing was consumed but that whitespace, and nothing
    /// was written.
    JsonRpc,
    /// Go's `net/rpc` with gob (`docs/PROTOCOL.md` §18): the stream starts with a gob type
    /// definition (`rpc.Dial`), or did after an HTTP `CONNECT /_goRPC_`, already answered
    /// (`rpc.DialHTTP`). Nothing of the gob stream was consumed.
    Gob,
}

/// The path Go's `rpc.DialHTTP` connects to (`rpc.DefaultRPCPath`).
const GO_RPC_CONNECT: &[u8] = b"CONNECT /_goRPC_ HTTP/1.";

/// Whether a stream starts like gob: a message length, then a negative type id (a type
/// definition, which is how every gob stream of Go's net/rpc begins), whose encoding starts
/// with a byte count (0xF8 and up). No HTTP method, JSON or the binary magic starts so.
fn looks_like_gob(first: &[u8]) -> bool {
    matches!(first, [len, id, ..] if (*len < 0x80 || *len >= 0xFE) && *id >= 0xF8)
}

/// How a connection started, before any answer.
enum Sniffed {
    Binary(Negotiated),
    Json,
    Gob,
    /// A Go `DialHTTP`: its request is consumed, its answer not yet sent.
    GoConnect,
}

/// Reads the HTTP request of Go's `DialHTTP` if that is what the stream starts with.
async fn go_connect<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> Result<bool, FrameError> {
    // Only a stream that starts with `C` is waited on for more: a short JSON line is not held.
    if reader.peek(1).await? != b"C" || !reader.peek(GO_RPC_CONNECT.len()).await?.starts_with(GO_RPC_CONNECT) {
        return Ok(false);
    }
    // The request ends at a blank line; Go sends no headers. Bounded: anything longer is not Go.
    let mut seen = 0;
    while seen < 4096 {
        let buffered = reader.peek(seen + 1).await?;
        if buffered.len() == seen {
            return Ok(false);
        }
        seen = buffered.len();
        for end in [&b"\n\n"[..], b"\r\n\r\n"] {
            if let Some(at) = buffered.windows(end.len()).position(|w| w == end) {
                reader.consume(at + end.len());
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Server side of a connection's start: like [`accept`], but a peer whose first byte is `{` or
/// `[` is recognised as a JSON-RPC peer instead of being refused with "bad magic", and the
/// WELCOME is left to the caller. The hello timeout covers the wait for that first byte too.
pub async fn open<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    supported: &[Codec],
    max_frame: u32,
    timeout: Duration,
) -> Result<Opening, FrameError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sniff_then_hello = async {
        // Before skipping whitespace: a gob message may be 10 or 32 bytes long.
        if looks_like_gob(reader.peek(2).await?) {
            return Ok(Sniffed::Gob);
        }
        if go_connect(reader).await? {
            return Ok(Sniffed::GoConnect);
        }
        if matches!(reader.peek_past_whitespace().await?, Some(b'{' | b'[')) {
            return Ok(Sniffed::Json);
        }
        read_hello(reader, supported).await.map(Sniffed::Binary)
    };
    let outcome =
        tokio::time::timeout(timeout, sniff_then_hello).await.unwrap_or(Err(FrameError::HelloTimeout(timeout)));
    let refused = match outcome {
        Ok(Sniffed::Json) => return Ok(Opening::JsonRpc),
        Ok(Sniffed::Gob) => return Ok(Opening::Gob),
        Ok(Sniffed::GoConnect) => {
            // Go's client checks this status line to the letter.
            writer.write_all(b"HTTP/1.0 200 Connected to Go RPC\n\n").await.map_err(FrameError::Io)?;
            return Ok(Opening::Gob);
        }
        Ok(Sniffed::Binary(negotiated)) => return Ok(Opening::Binary(negotiated)),
        Err(err) => Err(err),
    };
    answer(writer, &refused, max_frame).await;
    refused.map(Opening::Binary)
}

/// Preface plus WELCOME: the server's yes to a hello.
pub fn welcome(negotiated: &Negotiated, max_frame: u32) -> Bytes {
    let mut buf = BytesMut::with_capacity(PREFACE_LEN + 19);
    buf.extend_from_slice(&preface());
    let start = frame::begin(&mut buf, Kind::Welcome, 0);
    buf.put_u32(max_frame);
    buf.put_u32(negotiated.features);
    buf.put_u8(negotiated.codec.id());
    frame::finish(&mut buf, start);
    buf.freeze()
}

/// Writes the server's answer to a hello: PREFACE + WELCOME, or the refusal the peer can read.
async fn answer<W: AsyncWrite + Unpin>(writer: &mut W, outcome: &Result<Negotiated, FrameError>, max_frame: u32) {
    let reply = match outcome {
        Ok(negotiated) => welcome(negotiated, max_frame),
        Err(FrameError::BadMagic { looks_like: Foreign::Http, .. }) => Bytes::from_static(
            b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 56\r\nConnection: close\r\n\r\n\
              this is a warren RPC socket (binary protocol), not HTTP\n",
        ),
        Err(error) => refusal(error.code(), &ErrorChain(error).to_string()),
    };
    // The peer may already be gone; the outcome is what matters to the caller.
    let _ = writer.write_all(&reply).await;
    let _ = writer.flush().await;
}

/// Preface plus GOODBYE: how a server turns a peer away before any call.
pub fn refusal(code: ErrorCode, reason: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&preface());
    buf.extend_from_slice(&frame::goodbye(code, reason));
    buf.freeze()
}

async fn read_preface<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> Result<(), FrameError> {
    let Some(preface) = reader.read_raw(PREFACE_LEN).await? else {
        return Err(FrameError::Truncated { what: "preface (peer closed before sending one)" });
    };
    if preface[..4] != MAGIC {
        // Include whatever else arrived with it so the log shows the start of the request.
        let mut found = preface.to_vec();
        found.extend_from_slice(&reader.buffered()[..reader.buffered().len().min(11)]);
        let looks_like = Foreign::of(&found);
        return Err(FrameError::BadMagic { found, looks_like });
    }
    if preface[4] != VERSION {
        return Err(FrameError::UnsupportedVersion { ours: VERSION, theirs: preface[4] });
    }
    Ok(())
}

async fn read_hello<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    supported: &[Codec],
) -> Result<Negotiated, FrameError> {
    read_preface(reader).await?;
    let frame = reader.read_frame().await?.ok_or(FrameError::Truncated { what: "hello" })?;
    if frame.kind != Kind::Hello {
        return Err(FrameError::Unexpected { kind: frame.kind, when: "instead of HELLO" });
    }
    let mut body = frame.body;
    let peer_max_frame = frame::take_u32(&mut body, "hello max_frame")?;
    let peer_features = frame::take_u32(&mut body, "hello features")?;
    let count = *body.first().ok_or(FrameError::Truncated { what: "hello codec count" })? as usize;
    let offered = body.get(1..1 + count).ok_or(FrameError::Truncated { what: "hello codec list" })?;
    let codec = offered
        .iter()
        .filter_map(|&id| Codec::from_id(id))
        .find(|codec| supported.contains(codec))
        .ok_or_else(|| FrameError::NoCommonCodec { offered: offered.to_vec() })?;
    Ok(Negotiated { codec, peer_max_frame, features: peer_features & (features::ALL | features::SHM) })
}

/// What a client learns from the server's answer to its hello.
#[derive(Debug)]
pub enum Answer {
    /// The server's answer to HELLO.
    Welcome(Negotiated),
    /// The server refused the connection with a GOODBYE.
    Refused {
        /// The error code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
}

/// Client side: reads the server's preface and its WELCOME or GOODBYE.
pub async fn read_answer<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> Result<Answer, FrameError> {
    read_preface(reader).await?;
    let frame = reader.read_frame().await?.ok_or(FrameError::Truncated { what: "welcome" })?;
    let mut body = frame.body;
    match frame.kind {
        Kind::Welcome => {
            let peer_max_frame = frame::take_u32(&mut body, "welcome max_frame")?;
            let features = frame::take_u32(&mut body, "welcome features")?;
            let id = *body.first().ok_or(FrameError::Truncated { what: "welcome codec" })?;
            let codec = Codec::from_id(id).ok_or(FrameError::NoCommonCodec { offered: vec![id] })?;
            Ok(Answer::Welcome(Negotiated { codec, peer_max_frame, features }))
        }
        Kind::Goodbye => {
            let (code, reason) = frame::parse_goodbye(body)?;
            Ok(Answer::Refused { code, reason })
        }
        kind => Err(FrameError::Unexpected { kind, when: "instead of WELCOME" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn server_sees(bytes: &[u8]) -> (Result<Negotiated, FrameError>, Vec<u8>) {
        let mut reader = FrameReader::new(bytes, 1024);
        let mut reply = Vec::new();
        let outcome =
            accept(&mut reader, &mut reply, &[Codec::MessagePack, Codec::Json], 4096, Duration::from_secs(1)).await;
        (outcome, reply)
    }

    #[tokio::test]
    async fn negotiates_the_first_codec_both_sides_know() {
        let hello = client_hello(&[Codec::Json, Codec::MessagePack], 2048);
        let (outcome, reply) = server_sees(&hello).await;
        let negotiated = outcome.expect("handshake succeeds");
        assert_eq!(negotiated, Negotiated { codec: Codec::Json, peer_max_frame: 2048, features: features::ALL });
        let mut reader = FrameReader::new(&reply[..], 1024);
        let Answer::Welcome(seen) = read_answer(&mut reader).await.expect("welcome") else { panic!("refused") };
        assert_eq!(seen, Negotiated { codec: Codec::Json, peer_max_frame: 4096, features: features::ALL });
    }

    #[tokio::test]
    async fn open_tells_json_from_the_binary_protocol_by_the_first_byte() {
        let line = b" \r\n{\"method\":\"Task.Get\",\"params\":[\"x\"],\"id\":0}\n";
        let mut reader = FrameReader::new(&line[..], 1024);
        let mut reply = Vec::new();
        let opening = open(&mut reader, &mut reply, &[Codec::Json], 4096, Duration::from_secs(1)).await;
        assert!(matches!(opening, Ok(Opening::JsonRpc)), "{opening:?}");
        assert!(reply.is_empty(), "a JSON peer is answered in JSON, not with a WELCOME");
        assert!(reader.buffered().starts_with(b"{\"method\""), "only the leading whitespace is consumed");

        let hello = client_hello(&[Codec::Json], 2048);
        let mut reader = FrameReader::new(&hello[..], 1024);
        let opening = open(&mut reader, &mut reply, &[Codec::Json], 4096, Duration::from_secs(1)).await;
        assert!(matches!(opening, Ok(Opening::Binary(Negotiated { codec: Codec::Json, .. }))), "{opening:?}");
        assert!(reply.is_empty(), "the caller sends the WELCOME");
    }

    /// Opens a connection whose peer sent `first` and keeps its end open.
    async fn opening_of(first: &[u8]) -> (Result<Opening, FrameError>, Vec<u8>, Vec<u8>) {
        let (mut peer, ours) = tokio::io::duplex(4096);
        peer.write_all(first).await.expect("write");
        let (read, mut write) = tokio::io::split(ours);
        let mut reader = FrameReader::new(read, 1024);
        let opening = open(&mut reader, &mut write, &[Codec::Json], 4096, Duration::from_secs(2)).await;
        drop(write);
        let mut answer = vec![0; 64];
        let n = tokio::time::timeout(Duration::from_millis(100), tokio::io::AsyncReadExt::read(&mut peer, &mut answer))
            .await
            .map_or(0, |read| read.unwrap_or(0));
        answer.truncate(n);
        (opening, answer, reader.buffered().to_vec())
    }

    #[tokio::test]
    async fn go_gob_is_told_from_its_first_bytes_and_short_json_is_not_held() {
        // rpc.Dial: a gob type definition (length, type id -65 = FF 81).
        let (opening, answer, left) = opening_of(&[0x3B, 0xFF, 0x81, 0x03]).await;
        assert!(matches!(opening, Ok(Opening::Gob)), "{opening:?}");
        assert!(answer.is_empty() && left.starts_with(&[0x3B, 0xFF, 0x81]), "nothing consumed or written");
        // rpc.DialHTTP: the CONNECT is consumed and answered as Go's client expects.
        let (opening, answer, left) = opening_of(b"CONNECT /_goRPC_ HTTP/1.0\n\n\x3B\xFF").await;
        assert!(matches!(opening, Ok(Opening::Gob)), "{opening:?}");
        assert_eq!(answer, b"HTTP/1.0 200 Connected to Go RPC\n\n");
        assert_eq!(left, [0x3B, 0xFF]);
        // A JSON line shorter than the CONNECT line is recognised without waiting for more.
        let (opening, ..) = opening_of(b"{}\n").await;
        assert!(matches!(opening, Ok(Opening::JsonRpc)), "{opening:?}");
    }

    #[tokio::test]
    async fn http_gets_an_http_answer() {
        let (outcome, reply) = server_sees(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(outcome, Err(FrameError::BadMagic { .. })));
        assert!(reply.starts_with(b"HTTP/1.0 400 Bad Request"), "{}", String::from_utf8_lossy(&reply));
    }

    #[tokio::test]
    async fn wrong_version_and_unknown_codec_are_refused_with_a_reason() {
        let mut hello = client_hello(&[Codec::Json], 2048).to_vec();
        hello[4] = 9;
        let (outcome, reply) = server_sees(&hello).await;
        assert!(matches!(outcome, Err(FrameError::UnsupportedVersion { theirs: 9, .. })));
        let Answer::Refused { code, reason } =
            read_answer(&mut FrameReader::new(&reply[..], 1024)).await.expect("goodbye")
        else {
            panic!("welcomed")
        };
        assert_eq!(code, ErrorCode::UnsupportedVersion);
        assert!(reason.contains("version 9"), "{reason}");

        let mut hello = client_hello(&[Codec::Json], 2048).to_vec();
        let last = hello.len() - 1;
        hello[last] = 77;
        let (outcome, _) = server_sees(&hello).await;
        assert!(matches!(outcome, Err(FrameError::NoCommonCodec { .. })));
    }
}
