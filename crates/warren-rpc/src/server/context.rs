//! What a handler knows about its call: who is calling, whether to stop, and how to push
//! events back to the caller.

use std::sync::Arc;
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
    pub gid: Option<u32>,
    pub pid: Option<i32>,
    /// Unique per server, for correlating log lines.
    pub connection: u64,
}

/// Fires when the call should stop: the caller cancelled, its deadline passed, the connection
/// closed, or the server's drain deadline passed.
#[derive(Debug, Clone)]
pub struct Cancellation(pub(crate) CancellationToken);

impl Cancellation {
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once the call is cancelled.
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }
}

/// Pushes NOTIFY frames to one connected client; cheap to clone and to keep (a subscription).
#[derive(Debug, Clone)]
pub struct Notifier {
    pub(crate) tx: FrameSender,
    pub(crate) codec: Codec,
    pub(crate) limit: u32,
    pub(crate) closed: CancellationToken,
}

/// A notification could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the client has disconnected")]
    Disconnected,
    #[error("cannot encode notification {method}: {message}")]
    Encode { method: String, message: String },
}

impl Notifier {
    pub fn notify<T: Serialize + ?Sized>(&self, method: &str, value: &T) -> Result<(), NotifyError> {
        if self.closed.is_cancelled() {
            return Err(NotifyError::Disconnected);
        }
        let frame = message::notify(method, self.codec, value, self.limit)
            .map_err(|err| NotifyError::Encode { method: method.to_owned(), message: err.to_string() })?;
        self.tx.send(frame).map_err(|_| NotifyError::Disconnected)
    }

    /// Resolves when the client is gone, so a subscription can clean up.
    pub async fn disconnected(&self) {
        self.closed.cancelled().await;
    }

    pub fn is_disconnected(&self) -> bool {
        self.closed.is_cancelled()
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
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    pub fn cancellation(&self) -> Cancellation {
        self.cancel.clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

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
