//! A connection that speaks newline-delimited JSON-RPC instead of the binary protocol: Go's
//! `net/rpc/jsonrpc` shape and JSON-RPC 2.0, one request per line, served by the same registry
//! (`docs/PROTOCOL.md` §17). [`connection`](super::connection) hands a connection over here when
//! its first byte is `{` or `[`.
//!
//! Like the binary protocol: requests run concurrently and their replies are written in
//! completion order, matched by the request's id; bad input is answered, never fatal (one bad
//! line does not end the connection); a draining server refuses new calls with SHUTTING_DOWN
//! and closes once the calls in flight are done. Unlike it: JSON-RPC has no deadlines, cancels,
//! pings or goodbyes. The end of the peer's input is not the end of the connection either (a
//! person piping a line into `socat` half-closes at once): the calls it sent are still answered,
//! unless writing to it fails.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Core;
use super::connection::panic_message;
use super::context::{Cancellation, Context, Notifier, PeerInfo, Push};
use super::registry::{CallFrame, ErasedMethod, Wire};
use super::stall::{StallGuard, Stalled};
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::jsonrpc::{self, Dialect, Fault, Line, LineReader};
use crate::writer::{self, FrameSender};

/// How long a connection's last replies may take to flush once the drain deadline has passed.
const FLUSH_AFTER_DEADLINE: Duration = Duration::from_millis(200);

/// How long a connection closed for a stalled line keeps reading (and dropping) what the peer
/// still sends, so that the peer reads our error line rather than a reset.
const LINGER: Duration = Duration::from_secs(1);

/// Serves one JSON-RPC connection until the peer is done and answered, or the server drains.
/// `buffered` holds what was read while sniffing the first byte.
pub(crate) async fn serve<R, W>(core: Arc<Core>, read: StallGuard<R>, buffered: BytesMut, write: W, peer: PeerInfo)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    debug!(peer = %peer.address, connection = peer.connection, "JSON-RPC client connected");
    let (tx, queue) = writer::channel();
    let closed = CancellationToken::new();
    let writer_done = CancellationToken::new();
    let mut writer = {
        let (closed, done) = (closed.clone(), writer_done.clone());
        tokio::spawn(async move {
            let result = writer::run(write, queue, closed, || false).await;
            done.cancel();
            result
        })
    };
    let calls_token = core.control.drain_expired.child_token();
    // If this future is dropped, the calls it started and its writer must not live on.
    let _teardown = Teardown { calls: calls_token.clone(), closed: closed.clone() };
    let limit = core.options.max_frame;
    let connection = JsonConnection {
        core: Arc::clone(&core),
        tx,
        peer: Arc::new(peer),
        calls: TaskTracker::new(),
        calls_token,
        closed,
        speaks_v2: Arc::new(AtomicBool::new(false)),
    };
    let mut lines = LineReader::new(read, buffered, limit as usize);
    let stalled = connection.run(&mut lines, &writer_done).await;
    let flushed = tokio::select! {
        result = &mut writer => result,
        () = core.control.drain_expired.cancelled() => match tokio::time::timeout(FLUSH_AFTER_DEADLINE, &mut writer).await {
            Ok(result) => result,
            Err(_) => {
                writer.abort();
                Ok(Ok(()))
            }
        },
    };
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(err)) => debug!(peer = %connection.peer.address, "writing to the JSON-RPC client failed: {err}"),
        Err(err) => warn!(peer = %connection.peer.address, "connection writer panicked: {err}"),
    }
    if stalled {
        let _ = tokio::time::timeout(LINGER, async { while let Ok(Some(_)) = lines.next().await {} }).await;
    }
    debug!(peer = %connection.peer.address, connection = connection.peer.connection, "JSON-RPC connection closed");
}

struct JsonConnection {
    core: Arc<Core>,
    tx: FrameSender,
    peer: Arc<PeerInfo>,
    calls: TaskTracker,
    /// Parent of every call's token: fires when the connection ends or the drain deadline passes.
    calls_token: CancellationToken,
    /// Fires when the connection is done, to stop the writer and tell notifiers.
    closed: CancellationToken,
    /// Set by the first JSON-RPC 2.0 request: from then on the peer may be sent notifications.
    speaks_v2: Arc<AtomicBool>,
}

struct Teardown {
    calls: CancellationToken,
    closed: CancellationToken,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.calls.cancel();
        self.closed.cancel();
    }
}

impl JsonConnection {
    /// Returns whether the connection ended because a line stalled.
    async fn run<R: AsyncRead + Unpin>(&self, lines: &mut LineReader<R>, writer_done: &CancellationToken) -> bool {
        let shutting_down = self.core.control.shutting_down.clone();
        let mut draining = false;
        let mut input_open = true;
        let mut stalled = false;
        loop {
            tokio::select! {
                line = lines.next(), if input_open => match line {
                    Ok(Some(Line::Text(text))) => self.on_line(&text, draining),
                    Ok(Some(Line::TooLong)) => {
                        let limit = self.core.options.max_frame;
                        let message = format!("line longer than {limit} bytes; skipped");
                        warn!(peer = %self.peer.address, connection = self.peer.connection, "JSON-RPC: {message}");
                        let fault = Fault::Call(ErrorCode::FrameTooLarge);
                        self.send(jsonrpc::reply_error(Dialect::V2, &serde_json::Value::Null, fault, &message, None));
                    }
                    Ok(None) => {
                        // The peer is done sending; it may still be reading.
                        input_open = false;
                        self.calls.close();
                    }
                    Err(err) => {
                        if let Some(stall) = Stalled::of(&err) {
                            stalled = true;
                            self.on_stall(stall);
                        } else {
                            debug!(peer = %self.peer.address, "JSON-RPC connection ended: {err}");
                        }
                        break;
                    }
                },
                () = shutting_down.cancelled(), if !draining => {
                    draining = true;
                    self.calls.close();
                }
                () = self.calls.wait(), if draining || !input_open => break,
                // Writing failed: the peer is gone, nobody is left to answer.
                () = writer_done.cancelled() => break,
            }
        }
        self.calls_token.cancel();
        self.calls.close();
        self.calls.wait().await;
        self.closed.cancel();
        stalled
    }

    /// JSON-RPC has no goodbye: a last error line with a null id tells the peer why we close.
    fn on_stall(&self, stall: &Stalled) {
        warn!(peer = %self.peer.address, connection = self.peer.connection, "closing JSON-RPC connection: {stall}");
        let fault = Fault::Call(ErrorCode::ProtocolError);
        self.send(jsonrpc::reply_error(Dialect::V2, &serde_json::Value::Null, fault, &stall.to_string(), None));
    }

    fn send(&self, line: Bytes) {
        // Fails only once the writer has stopped, when there is nobody left to tell.
        let _ = self.tx.send(line);
    }

    fn on_line(&self, text: &[u8], draining: bool) {
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let request = match jsonrpc::parse_request(text) {
            Ok(request) => request,
            Err(rejected) => {
                warn!(peer = %self.peer.address, connection = self.peer.connection, "bad JSON-RPC line: {}", rejected.message);
                self.send(jsonrpc::reply_error(
                    rejected.dialect,
                    &rejected.id,
                    rejected.fault,
                    &rejected.message,
                    None,
                ));
                return;
            }
        };
        if request.dialect == Dialect::V2 {
            self.speaks_v2.store(true, Ordering::SeqCst);
        }
        let refuse = |code: ErrorCode, message: String| match &request.id {
            Some(id) => self.send(jsonrpc::reply_error(request.dialect, id, Fault::Call(code), &message, None)),
            None => debug!(peer = %self.peer.address, "dropped notification {}: {message}", request.method),
        };
        if draining {
            refuse(ErrorCode::ShuttingDown, format!("server is shutting down; {} refused", request.method));
            return;
        }
        let method = match self.core.registry.resolve(&request.method) {
            Ok(method) => method,
            Err((code, message)) => {
                refuse(code, message);
                return;
            }
        };
        let limit = self.core.options.max_in_flight;
        if self.calls.len() >= limit {
            refuse(ErrorCode::Overloaded, format!("{limit} calls already in flight on this connection"));
            return;
        }
        // Serializing a Value cannot fail.
        let payload = Bytes::from(serde_json::to_vec(&request.arg).unwrap_or_default());
        let token = self.calls_token.child_token();
        let max_frame = self.core.options.max_frame;
        let ctx = Context {
            peer: Arc::clone(&self.peer),
            cancel: Cancellation::from(token.clone()),
            notifier: Notifier::new(
                self.tx.clone(),
                Codec::Json,
                max_frame,
                self.closed.clone(),
                Push::JsonRpc { speaks_v2: Arc::clone(&self.speaks_v2) },
            ),
            deadline: None,
        };
        let call = CallFrame { id: 0, codec: Codec::Json, payload, reply_limit: max_frame, wire: Wire::JsonRpc };
        let finish = Finish {
            dialect: request.dialect,
            id: request.id,
            name: request.method,
            tx: self.tx.clone(),
            drain_expired: self.core.control.drain_expired.clone(),
            peer: Arc::clone(&self.peer),
        };
        self.calls.spawn(run_call(method, ctx, call, token, finish));
    }
}

/// What a call task needs once its handler is done.
struct Finish {
    dialect: Dialect,
    id: Option<serde_json::Value>,
    name: String,
    tx: FrameSender,
    drain_expired: CancellationToken,
    peer: Arc<PeerInfo>,
}

async fn run_call(
    method: Arc<dyn ErasedMethod>,
    ctx: Context,
    call: CallFrame,
    token: CancellationToken,
    finish: Finish,
) {
    let handler = AssertUnwindSafe(method.call(ctx, call)).catch_unwind();
    let outcome = tokio::select! {
        biased;
        () = token.cancelled() => None,
        result = handler => Some(result),
    };
    token.cancel();
    let name = &finish.name;
    let Some(id) = &finish.id else {
        if let Some(Ok(Err(err))) = &outcome {
            debug!(peer = %finish.peer.address, "notification {name} failed: {err}");
        }
        return;
    };
    let error =
        |code: ErrorCode, message: &str| jsonrpc::reply_error(finish.dialect, id, Fault::Call(code), message, None);
    let reply = match outcome {
        Some(Ok(Ok(payload))) => jsonrpc::reply_ok(finish.dialect, id, &payload.into_bytes()),
        Some(Ok(Err(err))) => {
            jsonrpc::reply_error(finish.dialect, id, Fault::Call(err.code), &err.message, err.data.as_ref())
        }
        Some(Err(panic)) => {
            let what = panic_message(&*panic);
            warn!(peer = %finish.peer.address, "handler {name} panicked: {what}");
            error(ErrorCode::Internal, &format!("handler {name} panicked: {what}"))
        }
        None if finish.drain_expired.is_cancelled() => {
            error(ErrorCode::Cancelled, "server shut down before the call finished (drain deadline passed)")
        }
        // The connection ended: nobody to answer.
        None => return,
    };
    let _ = finish.tx.send(reply);
}
