//! The binary protocol's [`Wire`]: frames after the HELLO/WELCOME exchange (`docs/PROTOCOL.md`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tracing::{debug, warn};

use super::context::{PeerInfo, Push};
use super::registry::Shape;
use super::stall::{StallGuard, Stalled};
use super::wire::{Broken, Call, Inbound, Replies, Wire};
use crate::codec::Codec;
use crate::error::{ErrorCode, FrameError};
use crate::frame::{self, Frame, FrameReader, Kind};
use crate::hello::Negotiated;
use crate::message::{self, Incoming};
use crate::outgoing::Outgoing;

/// Reads frames from a client whose hello is done.
pub(crate) struct Binary<R> {
    reader: FrameReader<StallGuard<R>>,
    negotiated: Negotiated,
    peer: Arc<PeerInfo>,
    /// The id of the last REQUEST read. Clients number calls in increasing order, so every call
    /// with a later id was never read, hence never run: the final GOODBYE tells the client so.
    last_request: u32,
}

impl<R: AsyncRead + Unpin + Send + 'static> Binary<R> {
    pub fn new(reader: FrameReader<StallGuard<R>>, negotiated: Negotiated, peer: Arc<PeerInfo>) -> Self {
        Binary { reader, negotiated, peer, last_request: 0 }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Inbound<u32>, FrameError> {
        let call = |id, incoming: Incoming| {
            let Incoming { method, timeout, payload } = incoming;
            Inbound::Call(Call { id, method, payload, timeout })
        };
        Ok(match frame.kind {
            Kind::Request => {
                if frame.id == 0 {
                    return Err(FrameError::Unexpected { kind: Kind::Request, when: "with call id 0 (reserved)" });
                }
                self.last_request = frame.id;
                call(Some(frame.id), message::parse_request(frame.body)?)
            }
            Kind::Notify => call(None, message::parse_notify(frame.body)?),
            Kind::Cancel => Inbound::Cancel(frame.id),
            Kind::Ping => Inbound::Answer(frame::encode(Kind::Pong, frame.id, &frame.body)),
            Kind::Pong => Inbound::Skip,
            Kind::Goodbye => {
                let (code, reason) = frame::parse_goodbye(frame.body)?;
                debug!(peer = %self.peer.address, "client said goodbye: {code}: {reason}");
                Inbound::Skip
            }
            kind => return Err(FrameError::Unexpected { kind, when: "from a client" }),
        })
    }

    /// Logs why the connection ends, and what the peer is told.
    fn broken(&self, err: &FrameError) -> Broken {
        let peer = &self.peer;
        if let FrameError::Io(io) = err {
            if let Some(stalled) = Stalled::of(io) {
                warn!(peer = %peer.address, connection = peer.connection, "closing connection: {stalled}");
                return Broken::Protocol(frame::goodbye(ErrorCode::ProtocolError, &stalled.to_string()));
            }
            debug!(peer = %peer.address, "connection ended: {io}");
            return Broken::Gone;
        }
        warn!(peer = %peer.address, connection = peer.connection, "closing connection: {err}");
        Broken::Protocol(frame::goodbye(err.code(), &err.to_string()))
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Wire for Binary<R> {
    type Replies = BinaryReplies;
    const ANSWERS_AFTER_EOF: bool = false;

    fn replies(&self) -> BinaryReplies {
        BinaryReplies { codec: self.negotiated.codec, limit: self.negotiated.peer_max_frame }
    }

    fn push(&self) -> Push {
        Push::Frames
    }

    async fn read(&mut self) -> Result<Option<Inbound<u32>>, Broken> {
        let frame = match self.reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(err) => return Err(self.broken(&err)),
        };
        self.on_frame(frame).map(Some).map_err(|err| self.broken(&err))
    }

    fn has_more(&self) -> bool {
        self.reader.has_frame()
    }

    async fn discard(&mut self, limit: Duration) {
        self.reader.discard_until_eof(limit).await;
    }

    fn shutting_down(&self) -> Option<Bytes> {
        Some(frame::goodbye(ErrorCode::ShuttingDown, "server shutting down"))
    }

    fn drained(&self) -> Option<Bytes> {
        // The last word of a drained connection: calls after this id were never read.
        Some(frame::goodbye_after(ErrorCode::Normal, "server shut down", self.last_request))
    }

    fn duplicate(&self) -> Broken {
        // Answering would be matched to the first call with that id: the peer is broken.
        self.broken(&FrameError::Unexpected { kind: Kind::Request, when: "with a call id already in flight" })
    }
}

/// Answers as RESPONSE and ERROR frames, in the connection's codec, within the peer's limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinaryReplies {
    codec: Codec,
    limit: u32,
}

impl Replies for BinaryReplies {
    type Id = u32;

    fn codec(&self) -> Codec {
        self.codec
    }

    fn limit(&self) -> u32 {
        self.limit
    }

    fn shape(&self, _: Option<&u32>) -> Shape {
        Shape::Frame
    }

    fn cancel_key(id: &u32) -> Option<u32> {
        Some(*id)
    }

    #[inline]
    fn success(&self, _: &u32, reply: Outgoing) -> Outgoing {
        // The handler encoded the whole RESPONSE frame in place.
        reply
    }

    fn error(&self, id: &u32, code: ErrorCode, message: &str, data: Option<&serde_json::Value>) -> Bytes {
        message::error(*id, code, message, data.map(|data| (data, self.codec)))
    }
}
