//! The [`Wire`] of Go's `net/rpc` with its default codec, gob: what `rpc.Dial` speaks from the
//! first byte, and `rpc.DialHTTP` after its `CONNECT` (`docs/PROTOCOL.md` §18).
//!
//! Each call is two gob values on one stream, a `Request{ServiceMethod, Seq}` header and the
//! argument; each answer a `Response{ServiceMethod, Seq, Error}` and the reply (an empty struct
//! after an error, which Go reads and drops). Calls run concurrently and are answered in
//! completion order, matched by `Seq`, as Go's client expects. Gob has no deadlines, cancels,
//! notifications or goodbyes; input that is not gob ends the connection (Go's own server does
//! the same).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{debug, warn};

use super::context::{PeerInfo, Push};
use super::wire::{Broken, Call, Inbound, Replies, Wire};
use crate::bytes::ZERO_COPY_MIN;
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::frame::MethodName;
use crate::gob::decode::{Decoder, next_message};
use crate::gob::encode::{Encoder, queued};
use crate::gob::{GobError, Value};
use crate::outgoing::Outgoing;

/// Reads a Go client's requests.
pub(crate) struct Gob<R> {
    io: R,
    buf: BytesMut,
    decoder: Decoder,
    max: u32,
    /// How long the rest of a message may take once its first byte is in.
    message_timeout: Duration,
    peer: Arc<PeerInfo>,
    /// The header of the call whose argument comes next.
    header: Option<(u64, String)>,
    replies: GobReplies,
}

impl<R: AsyncRead + Unpin + Send + 'static> Gob<R> {
    pub fn new(io: R, buffered: BytesMut, max: u32, message_timeout: Duration, peer: Arc<PeerInfo>) -> Self {
        debug!(peer = %peer.address, connection = peer.connection, "Go net/rpc (gob) client connected");
        let replies = GobReplies { encoder: Arc::new(Mutex::new(Encoder::default())), limit: max };
        Gob { io, buf: buffered, decoder: Decoder::default(), max, message_timeout, peer, header: None, replies }
    }

    /// The next whole message with the length of its length prefix; `None` at a clean end of
    /// input.
    async fn message(&mut self) -> Result<Option<(Bytes, usize)>, Broken> {
        loop {
            match next_message(&self.buf, self.max as usize) {
                Err(err) => return Err(self.broken(&err)),
                Ok(Some((prefix, len))) if self.buf.len() >= prefix + len => {
                    return Ok(Some((self.buf.split_to(prefix + len).freeze(), prefix)));
                }
                // Room for the whole message at once, rather than doubling up to it.
                Ok(Some((prefix, len))) => self.buf.reserve(prefix + len - self.buf.len()),
                Ok(None) => {}
            }
            let started = !self.buf.is_empty();
            let read = self.io.read_buf(&mut self.buf);
            let read = if started {
                // Time between messages is free; a message begun must end in time.
                match tokio::time::timeout(self.message_timeout, read).await {
                    Ok(read) => read,
                    Err(_) => {
                        let stalled = format!("a message begun did not end within {:?}", self.message_timeout);
                        return Err(self.broken(&GobError(stalled)));
                    }
                }
            } else {
                read.await
            };
            match read {
                Ok(0) if !started && self.header.is_none() => return Ok(None),
                Ok(0) => return Err(self.broken(&GobError("the client closed in the middle of a call".into()))),
                Ok(_) => {}
                Err(err) => {
                    debug!(peer = %self.peer.address, "gob connection ended: {err}");
                    return Err(Broken::Gone);
                }
            }
        }
    }

    fn broken(&self, err: &GobError) -> Broken {
        let peer = &self.peer;
        warn!(peer = %peer.address, connection = peer.connection, "closing Go net/rpc connection: {err}");
        // Go's client has no way to hear why: it sees the connection end.
        Broken::Protocol(Bytes::new())
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Wire for Gob<R> {
    type Replies = GobReplies;
    const ANSWERS_AFTER_EOF: bool = false;

    fn replies(&self) -> GobReplies {
        self.replies.clone()
    }

    fn push(&self) -> Push {
        Push::Never
    }

    async fn read(&mut self) -> Result<Option<Inbound<GobId>>, Broken> {
        loop {
            let Some((whole, prefix)) = self.message().await? else { return Ok(None) };
            let message = match self.decoder.read(whole, prefix) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(err) => return Err(self.broken(&err)),
            };
            let Some((seq, method)) = self.header.take() else {
                let header = self.decoder.value(&message).and_then(|value| {
                    value
                        .header("ServiceMethod")
                        .ok_or_else(|| GobError("a request header that is not a struct".into()))
                });
                self.header = Some(header.map_err(|err| self.broken(&err))?);
                continue;
            };
            // The argument travels to its handler as gob (Codec::Gob), read only there.
            let payload = self.decoder.standalone(message).map_err(|err| self.broken(&err))?;
            let method = MethodName::from(method);
            return Ok(Some(Inbound::Call(Call { id: Some(GobId { seq }), method, payload, timeout: None })));
        }
    }

    fn has_more(&self) -> bool {
        matches!(next_message(&self.buf, self.max as usize), Ok(Some((prefix, len))) if self.buf.len() >= prefix + len)
    }

    async fn discard(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                self.buf.clear();
                if !matches!(self.io.read_buf(&mut self.buf).await, Ok(n) if n > 0) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A call's `Seq`, which its answer repeats.
pub(crate) struct GobId {
    seq: u64,
}

/// Answers on one gob stream, whose type definitions all calls share.
#[derive(Debug, Clone)]
pub(crate) struct GobReplies {
    encoder: Arc<Mutex<Encoder>>,
    limit: u32,
}

/// A `Response` header.
fn response(seq: u64, error: &str) -> Value {
    Value::Struct(
        "Response".into(),
        vec![
            // Go's client does not look at it; Go's server sends it, the client may log it.
            ("ServiceMethod".into(), Value::Str(String::new())),
            ("Seq".into(), Value::Uint(seq)),
            ("Error".into(), Value::Str(error.to_owned())),
        ],
    )
}

impl GobReplies {
    fn too_large(&self, size: usize) -> Result<(), GobError> {
        if size > self.limit as usize {
            return Err(GobError(format!("answer of {size} bytes exceeds the limit of {} bytes", self.limit)));
        }
        Ok(())
    }

    /// A `Response` header and a handler's reply in the [`Codec::Gob`] form, put on this
    /// connection's stream: large byte strings of the reply stay in their own buffers.
    fn answer(&self, seq: u64, reply: Outgoing) -> Result<Outgoing, GobError> {
        let parts = match reply {
            Outgoing::Whole(bytes) => vec![bytes],
            Outgoing::Owned(bytes) => vec![bytes.freeze()],
            Outgoing::Parts(parts) => parts.into_vec(),
        };
        let mut encoder = self.encoder.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut head, body) = encoder.reencode(&response(seq, ""), parts)?;
        drop(encoder);
        self.too_large(head.bytes.len() + body.iter().map(Bytes::len).sum::<usize>())?;
        if body.iter().all(|part| part.len() < ZERO_COPY_MIN) {
            for part in &body {
                head.bytes.extend_from_slice(part);
            }
            return Ok(queued([head]).into());
        }
        let mut whole = Vec::with_capacity(body.len() + 1);
        whole.push(queued([head]));
        whole.extend(body);
        Ok(Outgoing::Parts(whole.into()))
    }

    fn error_answer(&self, seq: u64, code: ErrorCode, message: &str) -> Bytes {
        let answer = || {
            let error = format!("{code}: {message}");
            let mut encoder = self.encoder.lock().unwrap_or_else(PoisonError::into_inner);
            let head = encoder.encode(&response(seq, &error))?;
            // An empty struct follows an error, as from Go's server (`invalidRequest`).
            let body = encoder.encode(&Value::Struct(String::new(), Vec::new()))?;
            self.too_large(head.bytes.len() + body.bytes.len())?;
            Ok::<_, GobError>(queued([head, body]))
        };
        answer().unwrap_or_else(|err| {
            // Only a broken encoder state gets here; the peer then sees the connection end.
            warn!("cannot encode a gob error answer: {err}");
            Bytes::new()
        })
    }
}

impl Replies for GobReplies {
    type Id = GobId;

    fn codec(&self) -> Codec {
        Codec::Gob
    }

    fn limit(&self) -> u32 {
        self.limit
    }

    fn success(&self, id: &GobId, reply: Outgoing) -> Outgoing {
        match self.answer(id.seq, reply) {
            Ok(answer) => answer,
            Err(err) => {
                self.error_answer(id.seq, ErrorCode::Internal, &format!("cannot encode the reply: {err}")).into()
            }
        }
    }

    fn error(&self, id: &GobId, code: ErrorCode, message: &str, _: Option<&serde_json::Value>) -> Bytes {
        self.error_answer(id.seq, code, message)
    }
}
