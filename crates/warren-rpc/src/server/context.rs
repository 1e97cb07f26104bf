//! What a handler knows about its call: who is calling, whether to stop, and how to push
//! events back to the caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::codec::Codec;
use crate::message;
use crate::writer::FrameSender;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address as an endpoint-like string (`unix:/path`, `tcp:1.2.3.4:5`, `stdio:`).
    pub address: String,
    /// Kernel-checked credentials of a Unix-socket peer (SO_PEERCRED).
    pub uid: Option<u32>,
    /// Group id of a Unix-socket peer (SO_PEERCRED).
    pub gid: Option<u32>,
    /// Process id of a Unix-socket peer (SO_PEERCRED).
    pub pid: Option<i32>,
    /// Unique per server, for correlating log lines.
    pub connection: u64,
}

/// Fires when the call should stop: the caller cancelled, its deadline passed, the connection
/// closed, or the server's drain deadline passed.
#[derive(Debug, Clone)]
pub struct Cancellation(Signal);

#[derive(Debug, Clone)]
enum Signal {
    Token(CancellationToken),
    Call(Arc<CallSignal>),
}

/// A binary call's cancellation. Most calls end without anyone waiting for it to fire, so it
/// costs a flag, not a child token: making, cloning, firing and dropping a child token takes its
/// parent's and its own mutex several times per call. The child token is made only for a
/// handler that waits.
#[derive(Debug)]
struct CallSignal {
    fired: AtomicBool,
    /// The connection's token: fires when the connection ends or the drain deadline passes.
    parent: Arc<CancellationToken>,
    /// The child token of `parent` that waiters wait on, once there is one; fired with `fired`.
    watched: Mutex<Option<CancellationToken>>,
}

impl From<CancellationToken> for Cancellation {
    fn from(token: CancellationToken) -> Self {
        Cancellation(Signal::Token(token))
    }
}

impl Cancellation {
    /// A call's cancellation, which also fires when `parent` does.
    pub(crate) fn for_call(parent: &Arc<CancellationToken>) -> Cancellation {
        Cancellation(Signal::Call(Arc::new(CallSignal {
            fired: AtomicBool::new(false),
            parent: Arc::clone(parent),
            watched: Mutex::new(None),
        })))
    }

    /// Whether the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        match &self.0 {
            Signal::Token(token) => token.is_cancelled(),
            Signal::Call(call) => call.fired.load(Ordering::Acquire) || call.parent.is_cancelled(),
        }
    }

    /// Resolves once the call is cancelled.
    pub async fn cancelled(&self) {
        let token = match &self.0 {
            Signal::Token(token) => token.clone(),
            Signal::Call(call) => {
                let mut watched = call.watched.lock().unwrap_or_else(PoisonError::into_inner);
                // Read under the lock `cancel` fires under: either it has fired, or it will
                // find the token made here.
                if call.fired.load(Ordering::Acquire) {
                    return;
                }
                watched.get_or_insert_with(|| call.parent.child_token()).clone()
            }
        };
        token.cancelled().await;
    }

    pub(crate) fn cancel(&self) {
        match &self.0 {
            Signal::Token(token) => token.cancel(),
            Signal::Call(call) => {
                let watched = call.watched.lock().unwrap_or_else(PoisonError::into_inner);
                call.fired.store(true, Ordering::Release);
                if let Some(token) = watched.as_ref() {
                    token.cancel();
                }
            }
        }
    }
}

/// Pushes NOTIFY frames to one connected client; cheap to clone and to keep (a subscription).
#[derive(Debug, Clone)]
pub struct Notifier(Arc<NotifierInner>);

/// Made once per connection: every call's context has a clone, which is one reference count.
#[derive(Debug)]
struct NotifierInner {
    tx: FrameSender,
    codec: Codec,
    limit: u32,
    /// Past this many unwritten bytes on the connection, notifications are refused.
    backlog: usize,
    closed: CancellationToken,
    push: Push,
}

/// How a connection carries pushed events.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    /// NOTIFY frames of the binary protocol.
    Frames,
    /// JSON-RPC 2.0 notification lines, once the peer has shown it speaks 2.0 (set by the
    /// connection when a 2.0 request arrives). Go's client drops the connection on any line
    /// that is not a reply, so a peer that has not is never sent one.
    JsonRpc { speaks_v2: Arc<AtomicBool> },
    /// None: Go's net/rpc client takes nothing but answers (the gob wire).
    Never,
}

/// A notification could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the client has disconnected")]
    /// The client has disconnected.
    Disconnected,
    /// The value could not be encoded.
    #[error("cannot encode notification {method}: {message}")]
    Encode {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The client is not reading: more than [`Server::max_unwritten`](crate::Server::max_unwritten)
    /// bytes already wait for it. Nothing was queued; the subscription may try again later
    /// or give up on this client.
    #[error("cannot push {method}: the client is not reading ({unwritten} bytes already wait for it)")]
    Backlogged {
        /// The `Service.Method` called.
        method: String,
        /// Bytes waiting to be written to the client.
        unwritten: usize,
    },
    /// The client cannot receive notifications: a Go net/rpc (gob) client, or a JSON-RPC client
    /// that has sent no JSON-RPC 2.0 request (Go's net/rpc/jsonrpc, for one).
    #[error(
        "cannot push {method}: this client takes no notifications (Go's net/rpc, or a JSON-RPC client that has not shown it speaks JSON-RPC 2.0)"
    )]
    Unsupported {
        /// The `Service.Method` called.
        method: String,
    },
}

impl Notifier {
    pub(crate) fn new(
        tx: FrameSender,
        codec: Codec,
        limit: u32,
        backlog: usize,
        closed: CancellationToken,
        push: Push,
    ) -> Notifier {
        Notifier(Arc::new(NotifierInner { tx, codec, limit, backlog, closed, push }))
    }

    /// Pushes a notification `method` with `value` to this client.
    pub fn notify<T: Serialize + ?Sized>(&self, method: &str, value: &T) -> Result<(), NotifyError> {
        let this = &*self.0;
        if this.closed.is_cancelled() {
            return Err(NotifyError::Disconnected);
        }
        let unwritten = this.tx.unwritten();
        if unwritten > this.backlog {
            return Err(NotifyError::Backlogged { method: method.to_owned(), unwritten });
        }
        let encode_error =
            |err: &dyn std::fmt::Display| NotifyError::Encode { method: method.to_owned(), message: err.to_string() };
        let frame = match &this.push {
            Push::Frames => {
                message::notify_frame(method, this.codec, value, this.limit).map_err(|err| encode_error(&err))?
            }
            Push::Never => return Err(NotifyError::Unsupported { method: method.to_owned() }),
            Push::JsonRpc { speaks_v2 } => {
                if !speaks_v2.load(Ordering::SeqCst) {
                    return Err(NotifyError::Unsupported { method: method.to_owned() });
                }
                crate::jsonrpc::notification_v2(method, value, this.limit).map_err(|err| encode_error(&err))?.into()
            }
        };
        this.tx.send(frame).map_err(|_| NotifyError::Disconnected)
    }

    /// Resolves when the client is gone, so a subscription can clean up.
    pub async fn disconnected(&self) {
        self.0.closed.cancelled().await;
    }

    /// Whether the client is gone.
    pub fn is_disconnected(&self) -> bool {
        self.0.closed.is_cancelled()
    }
}

/// Passed to every handler.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) peer: Arc<PeerInfo>,
    pub(crate) cancel: Cancellation,
    pub(crate) notifier: Notifier,
    pub(crate) deadline: Option<Instant>,
}

impl Context {
    /// Who is calling.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The call's cancellation, to hand to code that should stop with it.
    pub fn cancellation(&self) -> Cancellation {
        self.cancel.clone()
    }

    /// Whether the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves once the call is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// When the caller stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A handle to push notifications to this caller's connection, now or later.
    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }
}
