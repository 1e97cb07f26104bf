//! The [`Wire`] of newline-delimited JSON-RPC: Go's `net/rpc/jsonrpc` shape and JSON-RPC 2.0,
//! one request per line, served by the same registry (`docs/PROTOCOL.md` §17). A connection
//! whose first byte is `{` or `[` speaks it.
//!
//! Like the binary protocol: requests run concurrently and their replies are written in
//! completion order, matched by the request's id; a draining server refuses new calls with
//! SHUTTING_DOWN and closes once the calls in flight are done. Unlike it: bad input is
//! answered, never fatal (one bad line does not end the connection); JSON-RPC has no
//! deadlines, cancels, pings or goodbyes; and the end of the peer's input is not the end of the
//! connection (a person piping a line into `socat` half-closes at once): the calls it sent are
//! still answered, unless writing to it fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncRead;
use tracing::{debug, warn};

use super::context::{PeerInfo, Push};
use super::stall::{StallGuard, Stalled};
use super::wire::{Broken, Call, Inbound, Replies, Wire};
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::frame::MethodName;
use crate::jsonrpc::{self, Dialect, Fault, Line, LineReader};
use crate::outgoing::Outgoing;

/// Reads request lines.
pub(crate) struct JsonLines<R> {
    lines: LineReader<StallGuard<R>>,
    max_line: u32,
    peer: Arc<PeerInfo>,
    /// Set by the first JSON-RPC 2.0 request: from then on the peer may be sent notifications.
    speaks_v2: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin + Send + 'static> JsonLines<R> {
    pub fn new(lines: LineReader<StallGuard<R>>, max_line: u32, peer: Arc<PeerInfo>) -> Self {
        debug!(peer = %peer.address, connection = peer.connection, "JSON-RPC client connected");
        JsonLines { lines, max_line, peer, speaks_v2: Arc::new(AtomicBool::new(false)) }
    }

    fn on_line(&self, text: &[u8]) -> Inbound<JsonId> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Inbound::Skip;
        }
        let request = match jsonrpc::parse_request(text) {
            Ok(request) => request,
            Err(rejected) => {
                let peer = &self.peer;
                warn!(peer = %peer.address, connection = peer.connection, "bad JSON-RPC line: {}", rejected.message);
                let answer =
                    jsonrpc::reply_error(rejected.dialect, &rejected.id, rejected.fault, &rejected.message, None);
                return Inbound::Answer(answer);
            }
        };
        if request.dialect == Dialect::V2 {
            self.speaks_v2.store(true, Ordering::SeqCst);
        }
        // Serializing a Value cannot fail.
        let payload = Bytes::from(serde_json::to_vec(&request.arg).unwrap_or_default());
        let dialect = request.dialect;
        Inbound::Call(Call {
            id: request.id.map(|id| JsonId { dialect, id }),
            method: MethodName::from(request.method),
            payload,
            timeout: None,
        })
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Wire for JsonLines<R> {
    type Replies = JsonReplies;
    const ANSWERS_AFTER_EOF: bool = true;

    fn replies(&self) -> JsonReplies {
        JsonReplies { limit: self.max_line }
    }

    fn push(&self) -> Push {
        Push::JsonRpc { speaks_v2: Arc::clone(&self.speaks_v2) }
    }

    async fn read(&mut self) -> Result<Option<Inbound<JsonId>>, Broken> {
        let peer = &self.peer;
        match self.lines.next().await {
            Ok(Some(Line::Text(text))) => Ok(Some(self.on_line(&text))),
            Ok(Some(Line::TooLong)) => {
                let message = format!("line longer than {} bytes; skipped", self.max_line);
                warn!(peer = %peer.address, connection = peer.connection, "JSON-RPC: {message}");
                let fault = Fault::Call(ErrorCode::FrameTooLarge);
                Ok(Some(Inbound::Answer(jsonrpc::reply_error(Dialect::V2, &Value::Null, fault, &message, None))))
            }
            Ok(None) => Ok(None),
            Err(err) => match Stalled::of(&err) {
                // JSON-RPC has no goodbye: a last error line with a null id tells the peer why.
                Some(stall) => {
                    warn!(peer = %peer.address, connection = peer.connection, "closing JSON-RPC connection: {stall}");
                    let fault = Fault::Call(ErrorCode::ProtocolError);
                    Err(Broken::Protocol(jsonrpc::reply_error(
                        Dialect::V2,
                        &Value::Null,
                        fault,
                        &stall.to_string(),
                        None,
                    )))
                }
                None => {
                    debug!(peer = %peer.address, "JSON-RPC connection ended: {err}");
                    Err(Broken::Gone)
                }
            },
        }
    }

    fn has_more(&self) -> bool {
        self.lines.has_line()
    }

    async fn discard(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async { while let Ok(Some(_)) = self.lines.next().await {} }).await;
    }
}

/// A JSON-RPC call's id, and the dialect its answer is written in.
pub(crate) struct JsonId {
    dialect: Dialect,
    id: Value,
}

/// Answers as reply lines, in the dialect of each request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonReplies {
    limit: u32,
}

impl Replies for JsonReplies {
    type Id = JsonId;

    fn codec(&self) -> Codec {
        Codec::Json
    }

    fn limit(&self) -> u32 {
        self.limit
    }

    fn success(&self, id: &JsonId, reply: Outgoing) -> Outgoing {
        jsonrpc::reply_ok(id.dialect, &id.id, &reply.into_bytes()).into()
    }

    fn error(&self, id: &JsonId, code: ErrorCode, message: &str, data: Option<&Value>) -> Bytes {
        jsonrpc::reply_error(id.dialect, &id.id, Fault::Call(code), message, data)
    }
}
