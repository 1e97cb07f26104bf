//! What a client's protocol must provide: how calls, notifications, pings and cancels are
//! encoded, how replies decode, and the read loop that routes what the server sends. The
//! [`Client`](super::Client) knows none of it; it holds one [`Wire`], picked at connect time.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;

use super::inflight::InFlight;
use super::{gob, jsonline, reader};
use crate::codec::{Codec, CodecError};
use crate::frame::{self, FrameReader, Kind};
use crate::hello::{Negotiated, features};
use crate::jsonrpc::{self, LineReader};
use crate::message::{self, EncodeError};
use crate::outgoing::Outgoing;
use crate::writer::{Flush, FrameSender, Unsent, WeakFrameSender};

/// One protocol's encodings, client side.
pub(crate) trait ClientWire {
    /// Queues a call's request on `tx`.
    #[allow(clippy::too_many_arguments)] // each is one part of the request, as on the wire
    fn request<A: Serialize + ?Sized>(
        &self,
        tx: &FrameSender,
        flush: Flush,
        id: u32,
        method: &str,
        timeout: Option<Duration>,
        arg: &A,
    ) -> Result<(), Unsent<EncodeError>>;

    /// A notification, which gets no reply.
    fn notification<A: Serialize + ?Sized>(&self, method: &str, arg: &A) -> Result<Outgoing, EncodeError>;

    /// A ping whose answer carries `id`.
    fn ping(&self, id: u32) -> Result<Bytes, EncodeError>;

    /// Tells the server to stop the call `id`, if the wire can.
    fn cancel(&self, id: u32) -> Option<Bytes>;

    /// Decodes a reply's payload.
    fn decode<R: DeserializeOwned>(&self, payload: &Bytes) -> Result<R, CodecError>;

    /// Whether an error answer to a ping proves the server alive, as a reply does (a ping that
    /// is a call to a method the server may not have).
    fn error_answers_ping(&self) -> bool;
}

/// warren's binary protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binary {
    pub negotiated: Negotiated,
}

impl ClientWire for Binary {
    #[inline]
    fn request<A: Serialize + ?Sized>(
        &self,
        tx: &FrameSender,
        flush: Flush,
        id: u32,
        method: &str,
        timeout: Option<Duration>,
        arg: &A,
    ) -> Result<(), Unsent<EncodeError>> {
        let Negotiated { codec, peer_max_frame: limit, .. } = self.negotiated;
        tx.encode(flush, |frame| message::request_into(frame, id, method, timeout, codec, arg, limit))
    }

    fn notification<A: Serialize + ?Sized>(&self, method: &str, arg: &A) -> Result<Outgoing, EncodeError> {
        message::notify_frame(method, self.negotiated.codec, arg, self.negotiated.peer_max_frame)
    }

    fn ping(&self, id: u32) -> Result<Bytes, EncodeError> {
        Ok(frame::encode(Kind::Ping, id, &[]))
    }

    fn cancel(&self, id: u32) -> Option<Bytes> {
        // Without the cancel feature the call is only forgotten: its late answer is ignored.
        (self.negotiated.features & features::CANCEL != 0).then(|| frame::encode(Kind::Cancel, id, &[]))
    }

    #[inline]
    fn decode<R: DeserializeOwned>(&self, payload: &Bytes) -> Result<R, CodecError> {
        self.negotiated.codec.decode_shared(payload)
    }

    fn error_answers_ping(&self) -> bool {
        false
    }
}

/// JSON-RPC lines in Go's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonLines {
    pub limit: u32,
}

impl ClientWire for JsonLines {
    fn request<A: Serialize + ?Sized>(
        &self,
        tx: &FrameSender,
        flush: Flush,
        id: u32,
        method: &str,
        _timeout: Option<Duration>,
        arg: &A,
    ) -> Result<(), Unsent<EncodeError>> {
        let line = jsonrpc::request_go(Some(id), method, arg, self.limit).map_err(Unsent::Encode)?;
        tx.send_flush(line, flush).map_err(|_| Unsent::Gone)
    }

    fn notification<A: Serialize + ?Sized>(&self, method: &str, arg: &A) -> Result<Outgoing, EncodeError> {
        jsonrpc::request_go(None, method, arg, self.limit).map(Outgoing::from)
    }

    fn ping(&self, id: u32) -> Result<Bytes, EncodeError> {
        jsonrpc::request_go(Some(id), "warren.Ping", &(), self.limit)
    }

    fn cancel(&self, _: u32) -> Option<Bytes> {
        // JSON-RPC has no cancel: the call is only forgotten.
        None
    }

    fn decode<R: DeserializeOwned>(&self, payload: &Bytes) -> Result<R, CodecError> {
        match Codec::Json.decode_shared(payload) {
            // In Go's shape `{}` stands for "no value", as Go's client cannot take a null.
            Err(_) if &payload[..] == b"{}" => Codec::Json.decode(b"null"),
            decoded => decoded,
        }
    }

    fn error_answers_ping(&self) -> bool {
        true
    }
}

/// The wire a client was connected with. The one place that dispatches on it: a new wire is
/// one more variant here and its own module.
#[derive(Debug, Clone)]
pub(crate) enum Wire {
    Binary(Binary),
    JsonLines(JsonLines),
    GoGob(gob::GoGob),
}

/// Calls `$body` with the wire inside `$wire` bound to `$w`.
macro_rules! each_wire {
    ($wire:expr, $w:ident => $body:expr) => {
        match $wire {
            Wire::Binary($w) => $body,
            Wire::JsonLines($w) => $body,
            Wire::GoGob($w) => $body,
        }
    };
}

impl ClientWire for Wire {
    #[inline]
    fn request<A: Serialize + ?Sized>(
        &self,
        tx: &FrameSender,
        flush: Flush,
        id: u32,
        method: &str,
        timeout: Option<Duration>,
        arg: &A,
    ) -> Result<(), Unsent<EncodeError>> {
        each_wire!(self, w => w.request(tx, flush, id, method, timeout, arg))
    }

    fn notification<A: Serialize + ?Sized>(&self, method: &str, arg: &A) -> Result<Outgoing, EncodeError> {
        each_wire!(self, w => w.notification(method, arg))
    }

    fn ping(&self, id: u32) -> Result<Bytes, EncodeError> {
        each_wire!(self, w => w.ping(id))
    }

    fn cancel(&self, id: u32) -> Option<Bytes> {
        each_wire!(self, w => w.cancel(id))
    }

    #[inline]
    fn decode<R: DeserializeOwned>(&self, payload: &Bytes) -> Result<R, CodecError> {
        each_wire!(self, w => w.decode(payload))
    }

    fn error_answers_ping(&self) -> bool {
        each_wire!(self, w => w.error_answers_ping())
    }
}

/// An open connection's read side, by wire.
pub(crate) enum Reading<R> {
    Frames(FrameReader<R>),
    Lines(LineReader<R>),
    /// Go's gob responses, with the most bytes one message may have.
    Gob(R, u32),
}

/// Where the read loop sends what it reads.
pub(crate) struct ReadTo<'a> {
    pub in_flight: &'a InFlight,
    pub tx: &'a WeakFrameSender,
    pub codec: Codec,
    pub endpoint: &'a str,
}

impl<R: AsyncRead + Unpin> Reading<R> {
    /// Routes what the server sends until the connection ends, then fails the calls in flight.
    /// Dropped at an await, it has stopped between two frames (or lines): it can be run again,
    /// or its [`unread`](Self::unread) bytes carried on elsewhere.
    pub async fn run(&mut self, heard: &mut reader::Heard, to: &ReadTo<'_>) {
        match self {
            Reading::Frames(reader) => reader::run(reader, heard, to.in_flight, to.tx, to.codec, to.endpoint).await,
            Reading::Lines(lines) => jsonline::run(lines, to.in_flight, to.endpoint).await,
            Reading::Gob(read, max) => gob::run(read, *max, to.in_flight, to.endpoint).await,
        }
    }

    /// The bytes read and not yet routed, and whether they are the rest of an overlong line
    /// being dropped. Gob is never carried (its type tables live on both sides), so none.
    pub fn unread(&self) -> (bytes::BytesMut, bool) {
        match self {
            Reading::Frames(reader) => (reader.unread(), false),
            Reading::Lines(lines) => lines.unread(),
            Reading::Gob(..) => (bytes::BytesMut::new(), false),
        }
    }
}
