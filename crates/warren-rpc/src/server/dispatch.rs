//! The call core of a server connection, the same for every [`Wire`]: a read loop that starts
//! each call (inline first, as a task only if it has to wait), the table of calls in flight for
//! cancels, deadlines, the drain on shutdown, the teardown when the connection ends, and the
//! linger after a peer broke the protocol. (tarpc's `BaseChannel` is the model: the channel
//! owns the calls, the transport only moves messages.)

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Core;
use super::context::{Cancellation, Context, Notifier, PeerInfo};
use super::registry::{BoxFuture, CallFrame, Outcome};
use super::wire::{Broken, Call, Inbound, Replies, Wire};
use crate::error::ErrorCode;
use crate::frame::{CallIdMap, MethodName};
use crate::writer::{self, Flush, FrameSender};

/// How long a connection closed for bad input keeps reading (and dropping) what the peer still
/// sends (a refused hello included), so that the peer reads our last words rather than a reset.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// How long a connection's last answers may take to flush once the drain deadline has passed.
const FLUSH_AFTER_DEADLINE: Duration = Duration::from_millis(200);

/// Serves calls read from `wire` until the peer leaves, it misbehaves, or the server has
/// drained; answers go to `write`.
pub(crate) async fn serve<W, O>(core: Arc<Core>, mut wire: W, write: O, peer: Arc<PeerInfo>)
where
    W: Wire,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, queue) = writer::channel();
    let closed = CancellationToken::new();
    let writer_done = CancellationToken::new();
    // Answers go out as handlers finish; there is no sign of more coming worth waiting for.
    let mut writer = {
        let (closed, done) = (closed.clone(), writer_done.clone());
        tokio::spawn(async move {
            let result = writer::run(write, queue, closed, || false).await;
            done.cancel();
            result
        })
    };
    let calls_token = core.control.drain_expired.child_token();
    let ending = Arc::new(AtomicBool::new(false));
    // If this future is dropped (its task aborted, or a caller's select! chose another branch),
    // the calls it started and its writer must not live on holding the stream open.
    let _teardown = Teardown { ending: Arc::clone(&ending), calls: calls_token.clone(), closed: closed.clone() };
    let replies = wire.replies();
    let notifier = Notifier::new(
        tx.clone(),
        replies.codec(),
        replies.limit(),
        core.options.max_unwritten,
        closed.clone(),
        wire.push(),
    );
    let connection = Connection {
        call_parent: Arc::new(calls_token.clone()),
        calls_token,
        ending,
        core: Arc::clone(&core),
        tx,
        notifier,
        replies,
        peer,
        in_flight: Arc::new(Mutex::new(CallIdMap::default())),
        calls: TaskTracker::new(),
        closed,
    };
    let failed = connection.run(&mut wire, &writer_done).await;
    // A client that stopped reading can block the writer forever; past the drain deadline the
    // server gives it a moment to flush the last answers, then stops waiting for it.
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
    let peer = &connection.peer;
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(err)) => debug!(peer = %peer.address, "writing to the client failed: {err}"),
        Err(err) => warn!(peer = %peer.address, "connection writer panicked: {err}"),
    }
    if failed {
        wire.discard(LINGER).await;
    }
    debug!(peer = %peer.address, connection = peer.connection, "connection closed");
}

struct Connection<R: Replies> {
    core: Arc<Core>,
    tx: FrameSender,
    /// Every call's context gets a clone.
    notifier: Notifier,
    replies: R,
    peer: Arc<PeerInfo>,
    /// Cancellations of the calls still running that a CANCEL can name, by key.
    in_flight: Arc<Mutex<CallIdMap<Cancellation>>>,
    calls: TaskTracker,
    /// Parent of every call's token: fires when the connection ends or the drain deadline passes.
    calls_token: CancellationToken,
    /// The same token, shared by reference with every call rather than cloned into it: cloning a
    /// token takes its mutex.
    call_parent: Arc<CancellationToken>,
    /// Fires when the connection is done, to stop the writer and tell notifiers.
    closed: CancellationToken,
    /// Set once the connection is being torn down: calls cancelled from then on have nobody to
    /// answer to, and the peer learns why from the wire's last words or the end of the stream.
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

/// How a call's handler stopped.
enum Stopped {
    Finished(std::thread::Result<Outcome>),
    Deadline(Duration),
    Cancelled,
}

impl<R: Replies> Connection<R> {
    /// Returns whether the connection ended because the peer broke the protocol.
    async fn run<W: Wire<Replies = R>>(&self, wire: &mut W, writer_done: &CancellationToken) -> bool {
        let shutting_down = self.core.control.shutting_down.clone();
        // Made once rather than per message: each `cancelled()` takes the token's mutex.
        let shutdown = shutting_down.cancelled();
        // Likewise made once: a branch's future is built on every turn even while disabled.
        let all_done = self.calls.wait();
        let writer_stopped = writer_done.cancelled();
        tokio::pin!(shutdown, all_done, writer_stopped);
        let mut draining = false;
        let mut input_open = true;
        let mut failed = false;
        let max_unwritten = self.core.options.max_unwritten;
        loop {
            // A peer that does not read its answers is not read from either, until it does.
            let backlogged = self.tx.unwritten() > max_unwritten;
            if backlogged {
                // Answers of inline calls wait for the end of a burst of requests to be
                // flushed; reading stops before that end, so they go now.
                self.tx.flush_now();
            }
            tokio::select! {
                // A writer that stopped (the peer went away) never brings the backlog down:
                // waiting for it again would return at once, for ever, and hold this worker.
                stopped = self.tx.wait_below(max_unwritten), if backlogged => if stopped { break },
                read = wire.read(), if input_open && !backlogged => match read {
                    Ok(Some(inbound)) => {
                        if let Err(Duplicate) = self.on_message(inbound, draining) {
                            failed = self.fail(wire.duplicate());
                            break;
                        }
                        // Answers of calls finished inline were only queued: write them now,
                        // from this task and in one write, unless more calls are already here
                        // to answer first.
                        if !wire.has_more() {
                            self.tx.flush_now();
                        }
                    }
                    Ok(None) if W::ANSWERS_AFTER_EOF => {
                        // The peer is done sending; it may still be reading.
                        input_open = false;
                        self.calls.close();
                    }
                    Ok(None) => break,
                    Err(broken) => {
                        failed = self.fail(broken);
                        break;
                    }
                },
                () = &mut shutdown, if !draining => {
                    draining = true;
                    if let Some(goodbye) = wire.shutting_down() {
                        self.send(goodbye);
                    }
                    self.calls.close();
                }
                () = &mut all_done, if draining || !input_open => break,
                // Writing failed: the peer is gone, nobody is left to answer.
                () = &mut writer_stopped, if W::ANSWERS_AFTER_EOF => break,
            }
        }
        // Whatever still runs has nobody to answer to (peer gone) or is past the drain deadline.
        self.ending.store(true, Ordering::SeqCst);
        self.calls_token.cancel();
        self.calls.close();
        self.calls.wait().await;
        if draining && !failed {
            if let Some(goodbye) = wire.drained() {
                self.send(goodbye);
            }
        }
        self.closed.cancel();
        failed
    }

    /// Sends the wire's last words; false when there is nobody to tell.
    fn fail(&self, broken: Broken) -> bool {
        match broken {
            Broken::Gone => false,
            Broken::Protocol(last_words) => {
                self.send(last_words);
                true
            }
        }
    }

    fn send(&self, frame: bytes::Bytes) {
        // Fails only once the writer has stopped, when there is nobody left to tell.
        let _ = self.tx.send(frame);
    }

    fn on_message(&self, inbound: Inbound<R::Id>, draining: bool) -> Result<(), Duplicate> {
        match inbound {
            Inbound::Call(call) => self.start_call(call, draining)?,
            Inbound::Cancel(key) => {
                let map = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(token) = map.get(&key) {
                    token.cancel();
                }
            }
            Inbound::Answer(answer) => self.send(answer),
            Inbound::Skip => {}
        }
        Ok(())
    }

    fn start_call(&self, call: Call<R::Id>, draining: bool) -> Result<(), Duplicate> {
        let Call { id, method: name, payload, timeout } = call;
        let refuse = |code: ErrorCode, message: String| match &id {
            Some(id) => self.send(self.replies.error(id, code, &message, None)),
            None => debug!(peer = %self.peer.address, "dropped notification {name}: {message}"),
        };
        if draining {
            refuse(ErrorCode::ShuttingDown, format!("server is shutting down; {name} refused"));
            return Ok(());
        }
        let method = match self.core.registry.resolve(&name) {
            Ok(method) => method,
            Err((code, message)) => {
                refuse(code, message);
                return Ok(());
            }
        };
        let limit = self.core.options.max_in_flight;
        if self.calls.len() >= limit {
            refuse(ErrorCode::Overloaded, format!("{limit} calls already in flight on this connection"));
            return Ok(());
        }
        let key = id.as_ref().and_then(R::cancel_key);
        if let Some(key) = key {
            if self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&key) {
                return Err(Duplicate);
            }
        }
        let cancel = Cancellation::for_call(&self.call_parent);
        let timeout = timeout.map(|timeout| (timeout, Instant::now() + timeout));
        let deadline = timeout.map(|(_, deadline)| deadline);
        let ctx =
            Context { peer: Arc::clone(&self.peer), cancel: cancel.clone(), notifier: self.notifier.clone(), deadline };
        let replies = &self.replies;
        let frame = CallFrame {
            id: key.unwrap_or(0),
            codec: replies.codec(),
            payload,
            reply_limit: replies.limit(),
            shape: replies.shape(id.as_ref()),
        };
        // Most handlers finish on their first poll: make that poll here, and spawn a task only
        // for a call that has to wait (the task polls it again, with its own waker). A call that
        // has just started cannot have been cancelled or be past its deadline yet, and one that
        // finishes here cannot be the target of a CANCEL: only a call left running is entered in
        // the table of calls in flight.
        let mut handler = method.call(ctx, frame);
        match AssertUnwindSafe(&mut handler).catch_unwind().now_or_never() {
            Some(result) => {
                let to = To { tx: &self.tx, core: &self.core, ending: &self.ending, replies, peer: &self.peer };
                to.answer(id.as_ref(), &name, Stopped::Finished(result), &cancel, Flush::Later);
            }
            None => {
                let finish = Finish {
                    id,
                    key,
                    name,
                    tx: self.tx.clone(),
                    core: Arc::clone(&self.core),
                    ending: Arc::clone(&self.ending),
                    replies: replies.clone(),
                    peer: Arc::clone(&self.peer),
                    in_flight: Arc::clone(&self.in_flight),
                };
                if let Some(key) = key {
                    self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(key, cancel.clone());
                }
                self.calls.spawn(run_call(handler, timeout, cancel, finish));
            }
        }
        Ok(())
    }
}

/// The peer started a call with the id of one still in flight.
struct Duplicate;

/// What a call needs once its handler is done.
struct Finish<R: Replies> {
    id: Option<R::Id>,
    /// The key of the call in the table of calls in flight, if it is in it.
    key: Option<u32>,
    name: MethodName,
    tx: FrameSender,
    /// For the drain deadline, read through the connection's reference rather than cloned per
    /// call (cloning a token takes its mutex).
    core: Arc<Core>,
    ending: Arc<AtomicBool>,
    replies: R,
    peer: Arc<PeerInfo>,
    in_flight: Arc<Mutex<CallIdMap<Cancellation>>>,
}

/// The rest of a call whose handler did not finish on its first poll.
async fn run_call<R: Replies>(
    handler: BoxFuture,
    timeout: Option<(Duration, Instant)>,
    cancel: Cancellation,
    finish: Finish<R>,
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
    if let Some(key) = finish.key {
        finish.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
    }
    let to =
        To { tx: &finish.tx, core: &finish.core, ending: &finish.ending, replies: &finish.replies, peer: &finish.peer };
    to.answer(finish.id.as_ref(), &finish.name, stopped, &cancel, Flush::Writer);
}

/// Where a call's answer goes: borrowed from the connection for a call answered inline (no
/// reference counts to take and drop), from its [`Finish`] for one that ran as a task.
struct To<'a, R> {
    tx: &'a FrameSender,
    core: &'a Core,
    ending: &'a AtomicBool,
    replies: &'a R,
    peer: &'a PeerInfo,
}

impl<R: Replies> To<'_, R> {
    /// Answers the call; `flush` says who writes the answer.
    fn answer(self, id: Option<&R::Id>, name: &MethodName, stopped: Stopped, cancel: &Cancellation, flush: Flush) {
        // Fire the cancellation in every case: observers of a call past its deadline must see
        // it, and a fired child token is unlinked from its parent.
        cancel.cancel();
        let Some(id) = id else {
            if let Stopped::Finished(Ok(Err(err))) = &stopped {
                debug!(peer = %self.peer.address, "notification {name} failed: {err}");
            }
            return;
        };
        let error = |code: ErrorCode, message: &str| self.replies.error(id, code, message, None);
        let reply = match stopped {
            Stopped::Finished(Ok(Ok(reply))) => {
                let _ = self.tx.send_flush(self.replies.success(id, reply), flush);
                return;
            }
            Stopped::Finished(Ok(Err(err))) => self.replies.error(id, err.code, &err.message, err.data.as_ref()),
            Stopped::Finished(Err(panic)) => {
                let what = panic_message(&*panic);
                warn!(peer = %self.peer.address, "handler {name} panicked: {what}");
                error(ErrorCode::Internal, &format!("handler {name} panicked: {what}"))
            }
            Stopped::Deadline(after) => {
                error(ErrorCode::DeadlineExceeded, &format!("deadline of {after:?} exceeded on the server"))
            }
            // CANCELLED, not SHUTTING_DOWN: the call ran (in part), so it is not safe to retry
            // blindly; SHUTTING_DOWN always means "never started".
            Stopped::Cancelled if self.core.control.drain_expired.is_cancelled() => {
                error(ErrorCode::Cancelled, "server shut down before the call finished (drain deadline passed)")
            }
            Stopped::Cancelled if self.ending.load(Ordering::SeqCst) => return,
            Stopped::Cancelled => error(ErrorCode::Cancelled, "cancelled by the caller"),
        };
        let _ = self.tx.send_flush(reply, flush);
    }
}

/// What a handler's panic said, for the INTERNAL error that replaces its reply.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
