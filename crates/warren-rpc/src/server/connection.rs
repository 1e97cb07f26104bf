//! One server connection: handshake, then a read loop that starts a task per call, answers
//! pings and cancels, and drains on shutdown. A connection whose first byte is `{` or `[` is
//! handed to [`jsonline`] instead.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Core;
use super::context::{Cancellation, Context, Notifier, PeerInfo, Push};
use super::jsonline;
use super::registry::{BoxFuture, CallFrame, Wire};
use super::stall::{StallGuard, Stalled};
use crate::codec::Codec;
use crate::error::{ErrorCode, FrameError};
use crate::frame::{self, CallIdMap, Frame, FrameReader, Kind, MethodName};
use crate::hello::{self, Opening};
use crate::message::{self, Incoming};
use crate::writer::{self, Flush, FrameSender};

/// How long a connection closed for bad input keeps reading (and dropping) what the peer still
/// sends, so that the peer reads our GOODBYE rather than a reset.
const LINGER: Duration = Duration::from_secs(1);

/// How long a connection's last frames may take to flush once the drain deadline has passed.
const FLUSH_AFTER_DEADLINE: Duration = Duration::from_millis(200);

/// Serves one connection until the peer leaves, it misbehaves, or the server has drained.
pub(crate) async fn serve<R, W>(core: Arc<Core>, read: R, mut write: W, peer: PeerInfo)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let options = &core.options;
    let mut reader = FrameReader::new(StallGuard::new(read, options.frame_timeout()), options.max_frame);
    // A server that starts shutting down does not wait for connections still saying hello.
    let handshake = async {
        tokio::select! {
            outcome = hello::open(&mut reader, &mut write, &options.codecs, options.max_frame, options.hello_timeout) => Some(outcome),
            () = core.control.shutting_down.cancelled() => None,
        }
    };
    let Some(handshake) = handshake.await else { return };
    let negotiated = match handshake {
        Ok(Opening::Binary(negotiated)) => negotiated,
        Ok(Opening::JsonRpc) => {
            let (mut read, buffered) = reader.into_parts();
            read.watch_lines(&buffered);
            return jsonline::serve(core, read, buffered, write, peer).await;
        }
        Err(err) => {
            warn!(peer = %peer.address, connection = peer.connection, "refused connection: {err}");
            let _ = write.shutdown().await;
            reader.discard_until_eof(LINGER).await;
            return;
        }
    };
    debug!(peer = %peer.address, connection = peer.connection, codec = ?negotiated.codec, "client connected");
    // Frames are bounded from here on; the hello had its own timeout.
    let (mut read, buffered) = reader.into_parts();
    read.watch_frames(&buffered);
    let mut reader = FrameReader::with_buffered(read, options.max_frame, buffered);
    let (tx, queue) = writer::channel();
    let closed = CancellationToken::new();
    // Replies go out as handlers finish; there is no sign of more coming worth waiting for.
    let writer = tokio::spawn(writer::run(write, queue, closed.clone(), || false));
    let calls_token = core.control.drain_expired.child_token();
    let ending = Arc::new(AtomicBool::new(false));
    // If this future is dropped (its task aborted, or a caller's select! chose another branch),
    // the calls it started and its writer must not live on holding the stream open.
    let _teardown = Teardown { ending: Arc::clone(&ending), calls: calls_token.clone(), closed: closed.clone() };
    let notifier = Notifier::new(tx.clone(), negotiated.codec, negotiated.peer_max_frame, closed.clone(), Push::Frames);
    let connection = Connection {
        call_parent: Arc::new(calls_token.clone()),
        calls_token,
        ending,
        core: Arc::clone(&core),
        tx,
        notifier,
        codec: negotiated.codec,
        reply_limit: negotiated.peer_max_frame,
        peer: Arc::new(peer),
        in_flight: Arc::new(Mutex::new(CallIdMap::default())),
        last_request: AtomicU32::new(0),
        calls: TaskTracker::new(),
        closed,
    };
    let failed = connection.run(&mut reader).await;
    // A client that stopped reading can block the writer forever; past the drain deadline the
    // server gives it a moment to flush the last answers, then stops waiting for it.
    let mut writer = writer;
    let writer = async {
        tokio::select! {
            result = &mut writer => result,
            () = core.control.drain_expired.cancelled() => {
                match tokio::time::timeout(FLUSH_AFTER_DEADLINE, &mut writer).await {
                    Ok(result) => result,
                    Err(_) => {
                        writer.abort();
                        Ok(Ok(()))
                    }
                }
            }
        }
    };
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => debug!(peer = %connection.peer.address, "writing to the client failed: {err}"),
        Err(err) => warn!(peer = %connection.peer.address, "connection writer panicked: {err}"),
    }
    if failed {
        reader.discard_until_eof(LINGER).await;
    }
    debug!(peer = %connection.peer.address, connection = connection.peer.connection, "connection closed");
}

struct Connection {
    core: Arc<Core>,
    tx: FrameSender,
    /// Every call's context gets a clone.
    notifier: Notifier,
    codec: Codec,
    reply_limit: u32,
    peer: Arc<PeerInfo>,
    /// Cancellations of the calls still running, by call id, for CANCEL frames.
    in_flight: Arc<Mutex<CallIdMap<Cancellation>>>,
    calls: TaskTracker,
    /// Parent of every call's token: fires when the connection ends or the drain deadline passes.
    calls_token: CancellationToken,
    /// The same token, shared by reference with every call rather than cloned into it: cloning a
    /// token takes its mutex.
    call_parent: Arc<CancellationToken>,
    /// Fires when the connection is done, to stop the writer and tell notifiers.
    closed: CancellationToken,
    /// The id of the last REQUEST read. Clients number calls in increasing order, so every call
    /// with a later id was never read, hence never run: the final GOODBYE tells the client so.
    last_request: AtomicU32,
    /// Set once the connection is being torn down: calls cancelled from then on have nobody to
    /// answer to, and the peer learns why from the GOODBYE or the end of the stream.
    ending: Arc<AtomicBool>,
}

struct Teardown {
    ending: Arc<AtomicBool>,
    calls: CancellationToken,
    closed: CancellationToken,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.ending.store(true, Ordering::SeqCst);
        self.calls.cancel();
        self.closed.cancel();
    }
}

enum Stopped {
    Finished(std::thread::Result<super::registry::Outcome>),
    Deadline(Duration),
    Cancelled,
}

impl Connection {
    /// Returns whether the connection ended because the peer broke the protocol.
    async fn run<R: AsyncRead + Unpin>(&self, reader: &mut FrameReader<R>) -> bool {
        let shutting_down = self.core.control.shutting_down.clone();
        // Made once rather than per frame: each `cancelled()` takes the token's mutex.
        let shutdown = shutting_down.cancelled();
        tokio::pin!(shutdown);
        let mut draining = false;
        let mut failed = false;
        loop {
            tokio::select! {
                read = reader.read_frame() => match read {
                    Ok(Some(frame)) => {
                        if let Err(err) = self.on_frame(frame, draining) {
                            failed = self.fail(&err);
                            break;
                        }
                        // Replies of calls finished inline were only queued: write them now,
                        // from this task and in one write, unless more requests are already
                        // here to answer first.
                        if !reader.has_frame() {
                            self.tx.flush_now();
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        failed = self.fail(&err);
                        break;
                    }
                },
                () = &mut shutdown, if !draining => {
                    draining = true;
                    self.send(frame::goodbye(ErrorCode::ShuttingDown, "server shutting down"));
                    self.calls.close();
                }
                () = self.calls.wait(), if draining => break,
            }
        }
        // Whatever still runs has nobody to answer to (peer gone) or is past the drain deadline.
        self.ending.store(true, Ordering::SeqCst);
        self.calls_token.cancel();
        self.calls.close();
        self.calls.wait().await;
        if draining && !failed {
            // The last word of a drained connection: calls after this id were never read.
            let last = self.last_request.load(Ordering::SeqCst);
            self.send(frame::goodbye_after(ErrorCode::Normal, "server shut down", last));
        }
        self.closed.cancel();
        failed
    }

    /// Tells the peer why the connection ends; false when there is nobody to tell (i/o error).
    fn fail(&self, err: &FrameError) -> bool {
        if let FrameError::Io(io) = err {
            if let Some(stalled) = Stalled::of(io) {
                warn!(peer = %self.peer.address, connection = self.peer.connection, "closing connection: {stalled}");
                self.send(frame::goodbye(ErrorCode::ProtocolError, &stalled.to_string()));
                return true;
            }
            debug!(peer = %self.peer.address, "connection ended: {io}");
            return false;
        }
        warn!(peer = %self.peer.address, connection = self.peer.connection, "closing connection: {err}");
        self.send(frame::goodbye(err.code(), &err.to_string()));
        true
    }

    fn send(&self, frame: bytes::Bytes) {
        // Fails only once the writer has stopped, when there is nobody left to tell.
        let _ = self.tx.send(frame);
    }

    fn on_frame(&self, frame: Frame, draining: bool) -> Result<(), FrameError> {
        match frame.kind {
            Kind::Request => {
                if frame.id == 0 {
                    return Err(FrameError::Unexpected { kind: Kind::Request, when: "with call id 0 (reserved)" });
                }
                self.last_request.store(frame.id, Ordering::SeqCst);
                self.start_call(Some(frame.id), message::parse_request(frame.body)?, draining)?;
            }
            Kind::Notify => self.start_call(None, message::parse_notify(frame.body)?, draining)?,
            Kind::Cancel => {
                let map = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(token) = map.get(&frame.id) {
                    token.cancel();
                }
            }
            Kind::Ping => self.send(frame::encode(Kind::Pong, frame.id, &frame.body)),
            Kind::Pong => {}
            Kind::Goodbye => {
                let (code, reason) = frame::parse_goodbye(frame.body)?;
                debug!(peer = %self.peer.address, "client said goodbye: {code}: {reason}");
            }
            kind => return Err(FrameError::Unexpected { kind, when: "from a client" }),
        }
        Ok(())
    }

    fn start_call(&self, id: Option<u32>, incoming: Incoming, draining: bool) -> Result<(), FrameError> {
        let reply_error = |code: ErrorCode, message: String| {
            if let Some(id) = id {
                self.send(message::error(id, code, &message, None));
            } else {
                debug!(peer = %self.peer.address, "dropped notification {}: {message}", incoming.method);
            }
        };
        if draining {
            reply_error(ErrorCode::ShuttingDown, format!("server is shutting down; {} refused", incoming.method));
            return Ok(());
        }
        let method = match self.core.registry.resolve(&incoming.method) {
            Ok(method) => method,
            Err((code, message)) => {
                reply_error(code, message);
                return Ok(());
            }
        };
        let cancel = Cancellation::for_call(&self.call_parent);
        if let Some(id) = id {
            let map = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= self.core.options.max_in_flight {
                drop(map);
                let limit = self.core.options.max_in_flight;
                reply_error(ErrorCode::Overloaded, format!("{limit} calls already in flight on this connection"));
                return Ok(());
            }
            if map.contains_key(&id) {
                // Answering would be matched to the first call with that id: the peer is
                // broken, so end the connection instead.
                return Err(FrameError::Unexpected { kind: Kind::Request, when: "with a call id already in flight" });
            }
        }
        let timeout = incoming.timeout.map(|timeout| (timeout, Instant::now() + timeout));
        let deadline = timeout.map(|(_, deadline)| deadline);
        let ctx =
            Context { peer: Arc::clone(&self.peer), cancel: cancel.clone(), notifier: self.notifier.clone(), deadline };
        let call = CallFrame {
            id: id.unwrap_or(0),
            codec: self.codec,
            payload: incoming.payload,
            reply_limit: self.reply_limit,
            wire: Wire::Binary,
        };
        // Most handlers finish on their first poll: make that poll here, and spawn a task only
        // for a call that has to wait (the task polls it again, with its own waker). A call that
        // has just started cannot have been cancelled or be past its deadline yet, and one that
        // finishes here cannot be the target of a CANCEL: only a call left running is entered in
        // the table of calls in flight.
        let mut handler = method.call(ctx, call);
        match AssertUnwindSafe(&mut handler).catch_unwind().now_or_never() {
            Some(result) => {
                let to =
                    To { tx: &self.tx, core: &self.core, ending: &self.ending, codec: self.codec, peer: &self.peer };
                to.answer(id, &incoming.method, Stopped::Finished(result), &cancel, Flush::Later);
            }
            None => {
                let finish = Finish {
                    id,
                    name: incoming.method,
                    tx: self.tx.clone(),
                    core: Arc::clone(&self.core),
                    ending: Arc::clone(&self.ending),
                    codec: self.codec,
                    peer: Arc::clone(&self.peer),
                };
                if let Some(id) = id {
                    self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(id, cancel.clone());
                }
                let in_flight = Arc::clone(&self.in_flight);
                self.calls.spawn(run_call(handler, timeout, cancel, finish, in_flight));
            }
        }
        Ok(())
    }
}

/// What a call needs once its handler is done.
struct Finish {
    id: Option<u32>,
    name: MethodName,
    tx: FrameSender,
    /// For the drain deadline, read through the connection's reference rather than cloned per
    /// call (cloning a token takes its mutex).
    core: Arc<Core>,
    ending: Arc<AtomicBool>,
    codec: Codec,
    peer: Arc<PeerInfo>,
}

/// The rest of a call whose handler did not finish on its first poll.
async fn run_call(
    handler: BoxFuture,
    timeout: Option<(Duration, Instant)>,
    cancel: Cancellation,
    finish: Finish,
    in_flight: Arc<Mutex<CallIdMap<Cancellation>>>,
) {
    let handler = AssertUnwindSafe(handler).catch_unwind();
    let expired = async {
        match timeout {
            Some((_, deadline)) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    let stopped = tokio::select! {
        biased;
        () = cancel.cancelled() => Stopped::Cancelled,
        result = handler => Stopped::Finished(result),
        () = expired => Stopped::Deadline(timeout.map(|(after, _)| after).unwrap_or_default()),
    };
    if let Some(id) = finish.id {
        in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
    finish.done(stopped, &cancel, Flush::Writer);
}

impl Finish {
    fn done(self, stopped: Stopped, cancel: &Cancellation, flush: Flush) {
        let to = To { tx: &self.tx, core: &self.core, ending: &self.ending, codec: self.codec, peer: &self.peer };
        to.answer(self.id, &self.name, stopped, cancel, flush);
    }
}

/// Where a call's answer goes: borrowed from the connection for a call answered inline (no
/// reference counts to take and drop), from its [`Finish`] for one that ran as a task.
struct To<'a> {
    tx: &'a FrameSender,
    core: &'a Core,
    ending: &'a AtomicBool,
    codec: Codec,
    peer: &'a PeerInfo,
}

impl To<'_> {
    /// Answers the call; `flush` says who writes the answer.
    fn answer(self, id: Option<u32>, name: &MethodName, stopped: Stopped, cancel: &Cancellation, flush: Flush) {
        // Fire the cancellation in every case: observers of a call past its deadline must see
        // it, and a fired child token is unlinked from its parent.
        cancel.cancel();
        let Some(id) = id else {
            if let Stopped::Finished(Ok(Err(err))) = &stopped {
                debug!(peer = %self.peer.address, "notification {name} failed: {err}");
            }
            return;
        };
        let reply = match stopped {
            Stopped::Finished(Ok(Ok(frame))) => {
                let _ = self.tx.send_flush(frame, flush);
                return;
            }
            Stopped::Finished(Ok(Err(err))) => {
                let data = err.data.as_ref().map(|data| (data, self.codec));
                message::error(id, err.code, &err.message, data)
            }
            Stopped::Finished(Err(panic)) => {
                let what = panic_message(&*panic);
                warn!(peer = %self.peer.address, "handler {name} panicked: {what}");
                message::error(id, ErrorCode::Internal, &format!("handler {name} panicked: {what}"), None)
            }
            Stopped::Deadline(after) => message::error(
                id,
                ErrorCode::DeadlineExceeded,
                &format!("deadline of {after:?} exceeded on the server"),
                None,
            ),
            // CANCELLED, not SHUTTING_DOWN: the call ran (in part), so it is not safe to retry
            // blindly; SHUTTING_DOWN always means "never started".
            Stopped::Cancelled if self.core.control.drain_expired.is_cancelled() => message::error(
                id,
                ErrorCode::Cancelled,
                "server shut down before the call finished (drain deadline passed)",
                None,
            ),
            Stopped::Cancelled if self.ending.load(Ordering::SeqCst) => return,
            Stopped::Cancelled => message::error(id, ErrorCode::Cancelled, "cancelled by the caller", None),
        };
        let _ = self.tx.send_flush(reply, flush);
    }
}

/// What a handler's panic said, for the INTERNAL error that replaces its reply.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
