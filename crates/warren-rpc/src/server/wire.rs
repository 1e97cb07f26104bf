//! What a server connection's protocol must provide to the call core ([`dispatch`]): read the
//! peer's messages as calls and control, and encode the answers. The core owns everything a
//! call goes through between the two (in-flight table, deadlines, cancellation, drain,
//! teardown, linger), the same for every wire; a wire only knows its bytes.
//!
//! The wires: binary frames ([`binary`]) and newline-delimited JSON-RPC ([`jsonline`]).
//! [`connection`] picks one from a connection's first bytes.
//!
//! [`dispatch`]: super::dispatch
//! [`binary`]: super::binary
//! [`jsonline`]: super::jsonline
//! [`connection`]: super::connection

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::context::Push;
use super::registry::Shape;
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::frame::MethodName;
use crate::outgoing::Outgoing;

/// One protocol's read side, owned by the connection's read loop.
pub(crate) trait Wire: Send + 'static {
    /// Encodes this wire's answers; the core keeps one, and each call task that outlives its
    /// first poll a clone.
    type Replies: Replies;

    /// When true, the end of the peer's input is not the end of the connection: the calls it
    /// sent are still answered (someone piping a line into `socat` half-closes at once), and
    /// a failed write ends the connection instead. When false, the end of input ends it.
    const ANSWERS_AFTER_EOF: bool;

    /// The answer encoder for this connection.
    fn replies(&self) -> Self::Replies;

    /// How pushed notifications reach this peer.
    fn push(&self) -> Push;

    /// The next message; `None` at a clean end of input. On `Err` the wire has logged why.
    fn read(&mut self) -> impl Future<Output = Result<Option<Inbound<ReplyTo<Self>>>, Broken>> + Send;

    /// Whether another whole message is already buffered: answers made inline then wait to go
    /// out in one write with that message's.
    fn has_more(&self) -> bool;

    /// Reads and drops input for up to `limit`, so that the peer reads our last words rather
    /// than a reset.
    fn discard(&mut self, limit: Duration) -> impl Future<Output = ()> + Send;

    /// Said to the peer when the server starts draining, if the wire can say it.
    fn shutting_down(&self) -> Option<Bytes> {
        None
    }

    /// Said to the peer last, once a drain is done.
    fn drained(&self) -> Option<Bytes> {
        None
    }

    /// The peer started a call whose id is still in flight: an answer would be matched to the
    /// first one, so the connection ends. The wire logs and returns its last words. A wire
    /// without cancel keys never has a duplicate.
    fn duplicate(&self) -> Broken {
        Broken::Gone
    }
}

/// The id a wire routes a call's answer with.
pub(crate) type ReplyTo<W> = <<W as Wire>::Replies as Replies>::Id;

/// Encodes the answers of one connection's calls.
pub(crate) trait Replies: Clone + Send + Sync + 'static {
    /// Routes one call's answer back to its caller.
    type Id: Send + Sync + 'static;

    /// The payload codec of the connection.
    fn codec(&self) -> Codec;

    /// Largest answer the peer accepts.
    fn limit(&self) -> u32;

    /// How a handler of this wire encodes its success: a bare payload unless the wire frames
    /// it in place.
    fn shape(&self, _id: Option<&Self::Id>) -> Shape {
        Shape::Payload
    }

    /// The key a CANCEL names the call by, if the wire has cancels.
    fn cancel_key(_id: &Self::Id) -> Option<u32> {
        None
    }

    /// A handler's success, encoded by it in [`shape`](Self::shape), as the answer to send.
    fn success(&self, id: &Self::Id, reply: Outgoing) -> Outgoing;

    /// An error answer.
    fn error(&self, id: &Self::Id, code: ErrorCode, message: &str, data: Option<&serde_json::Value>) -> Bytes;
}

/// A message from the peer, as the core sees it.
pub(crate) enum Inbound<Id> {
    /// A call to run; without an id it is a notification and gets no answer.
    Call(Call<Id>),
    /// Stop the call in flight with this key.
    Cancel(u32),
    /// Answered by the wire itself, at once: a PONG, or the error for a line that is no call.
    Answer(Bytes),
    /// Nothing for the core to do (a PONG, a blank line, a GOODBYE already logged).
    Skip,
}

/// A call as read from the wire.
pub(crate) struct Call<Id> {
    pub id: Option<Id>,
    pub method: MethodName,
    pub payload: Bytes,
    pub timeout: Option<Duration>,
}

/// Why reading ended badly.
pub(crate) enum Broken {
    /// The stream failed: nobody is left to tell.
    Gone,
    /// The peer broke the protocol or stalled: these last words go out, then its input is
    /// read and dropped for a while.
    Protocol(Bytes),
}
