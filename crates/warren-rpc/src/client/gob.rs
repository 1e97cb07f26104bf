//! The client side of Go's `net/rpc` with gob ([`Protocol::GoGob`](super::Protocol)): calls to
//! an unmodified Go server, over `rpc.ServeConn` or, after an HTTP `CONNECT /_goRPC_`, over
//! `rpc.HandleHTTP` (`docs/PROTOCOL.md` §18).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::inflight::{Answer, InFlight};
use super::wire::ClientWire;
use crate::codec::{Codec, CodecError};
use crate::error::LostReason;
use crate::gob::decode::{Decoder, next_message};
use crate::gob::encode::{Encoder, queued};
use crate::gob::{GobError, Value, ser};
use crate::message::EncodeError;
use crate::outgoing::Outgoing;
use crate::writer::{Flush, FrameSender, Unsent};

/// What Go's `rpc.DialHTTP` sends, and the answer it expects.
const CONNECT: &[u8] = b"CONNECT /_goRPC_ HTTP/1.0\n\n";
const CONNECTED: &str = "HTTP/1.0 200 Connected to Go RPC";

/// Go's `rpc.DialHTTP` handshake: the `CONNECT`, and the server's answer up to its blank line.
pub(crate) async fn connect<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    read: &mut R,
    write: &mut W,
) -> Result<(), std::io::Error> {
    write.write_all(CONNECT).await?;
    write.flush().await?;
    // Read byte by byte: whatever follows the blank line is gob, for the reader.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\n\n") && !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 4096 {
            break;
        }
        let byte = read.read_u8().await?;
        answer.push(byte);
    }
    let status = String::from_utf8_lossy(&answer);
    let status = status.lines().next().unwrap_or_default();
    if status != CONNECTED {
        return Err(std::io::Error::other(format!("the server answered the CONNECT with {status:?}, not Go RPC")));
    }
    Ok(())
}

/// Encodes calls on the connection's one gob stream.
#[derive(Debug, Clone)]
pub(crate) struct GoGob {
    encoder: Arc<Mutex<Encoder>>,
    limit: u32,
}

impl GoGob {
    pub fn new(limit: u32) -> Self {
        GoGob { encoder: Arc::new(Mutex::new(Encoder::default())), limit }
    }

    fn call<A: Serialize + ?Sized>(&self, seq: u32, method: &str, arg: &A) -> Result<Bytes, EncodeError> {
        let gob_error = |err: GobError| EncodeError::Codec(CodecError { codec: Codec::Gob, message: err.0 });
        let header = Value::Struct(
            "Request".into(),
            vec![("ServiceMethod".into(), Value::Str(method.to_owned())), ("Seq".into(), Value::Uint(seq.into()))],
        );
        let arg = ser::to_value(arg).map_err(gob_error)?;
        let mut encoder = self.encoder.lock().unwrap_or_else(PoisonError::into_inner);
        let head = encoder.encode(&header).map_err(gob_error)?;
        let body = encoder.encode(&arg).map_err(gob_error)?;
        let size = head.bytes.len() + body.bytes.len();
        if size > self.limit as usize {
            return Err(EncodeError::TooLarge { size: size as u64, limit: self.limit });
        }
        Ok(queued([head, body]))
    }
}

impl ClientWire for GoGob {
    fn request<A: Serialize + ?Sized>(
        &self,
        tx: &FrameSender,
        flush: Flush,
        id: u32,
        method: &str,
        _timeout: Option<Duration>,
        arg: &A,
    ) -> Result<(), Unsent<EncodeError>> {
        let call = self.call(id, method, arg).map_err(Unsent::Encode)?;
        tx.send_flush(call, flush).map_err(|_| Unsent::Gone)
    }

    fn notification<A: Serialize + ?Sized>(&self, method: &str, _: &A) -> Result<Outgoing, EncodeError> {
        let message = format!("{method}: Go's net/rpc has no notifications");
        Err(EncodeError::Codec(CodecError { codec: Codec::Gob, message }))
    }

    fn ping(&self, id: u32) -> Result<Bytes, EncodeError> {
        // Go answers a call to a service it lacks with an error: that proves it alive.
        self.call(id, "warren.Ping", &())
    }

    fn cancel(&self, _: u32) -> Option<Bytes> {
        None
    }

    fn decode<R: DeserializeOwned>(&self, payload: &Bytes) -> Result<R, CodecError> {
        Codec::Gob.decode_shared(payload)
    }

    fn error_answers_ping(&self) -> bool {
        true
    }
}

/// Routes a Go server's responses to their calls until the connection ends.
pub(crate) async fn run<R: AsyncRead + Unpin>(read: &mut R, max: u32, in_flight: &InFlight, endpoint: &str) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut decoder = Decoder::default();
    let mut header: Option<(u64, String)> = None;
    let reason = loop {
        let message = match next_message(&buf, max as usize) {
            Err(err) => break LostReason::Protocol(err.to_string()),
            Ok(Some((prefix, len))) if buf.len() >= prefix + len => (buf.split_to(prefix + len).freeze(), prefix),
            found => match read.read_buf(reserved(&mut buf, found)).await {
                Ok(0) if buf.is_empty() => break LostReason::ClosedByPeer,
                Ok(0) => break LostReason::Protocol("the server closed in the middle of a gob message".into()),
                Ok(_) => continue,
                Err(err) => break LostReason::Io(err.to_string()),
            },
        };
        let message = match decoder.read(message.0, message.1) {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(err) => break LostReason::Protocol(err.to_string()),
        };
        let Some((seq, error)) = header.take() else {
            match decoder.value(&message) {
                Ok(value) => header = Some(value.header("Error").unwrap_or_default()),
                Err(err) => break LostReason::Protocol(err.to_string()),
            }
            continue;
        };
        let answer = if error.is_empty() {
            // Read by the caller, into its type (Codec::Gob).
            match decoder.standalone(message) {
                Ok(payload) => Answer::Reply(payload),
                Err(err) => break LostReason::Protocol(err.to_string()),
            }
        } else {
            match crate::jsonrpc::parse_error_string(&error) {
                Some((code, message)) => Answer::Error { code, message: message.to_owned(), data: None },
                None => Answer::Untyped(error),
            }
        };
        match u32::try_from(seq) {
            Ok(id) => in_flight.answer(id, answer),
            Err(_) => debug!(%endpoint, seq, "response to a call this client did not make ignored"),
        }
    };
    debug!(%endpoint, calls = in_flight.waiting(), "connection lost: {reason}");
    in_flight.lose(reason, None);
}

/// `buf`, with room for the whole of the message it starts, if it says how long that is.
fn reserved(buf: &mut BytesMut, found: Result<Option<(usize, usize)>, GobError>) -> &mut BytesMut {
    if let Ok(Some((prefix, len))) = found {
        buf.reserve((prefix + len).saturating_sub(buf.len()));
    }
    buf
}
