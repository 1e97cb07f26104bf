//! How a call fails, as its caller sees it.

use std::time::Duration;

use super::{ErrorCode, ErrorData};

/// Why a client's connection is gone; every call in flight fails with it. More reasons may
/// come (as `HandedOver` did), so a match needs a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The peer closed the stream without a goodbye (it crashed, or was killed).
    ClosedByPeer,
    /// The peer said goodbye because it was shutting down, then closed.
    PeerShutDown,
    /// The peer said goodbye with an error code.
    Goodbye {
        /// The error code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// The peer sent bytes that are not valid protocol.
    Protocol(String),
    /// Reading or writing the stream failed.
    Io(String),
    /// This side closed the client.
    ClosedLocally,
    /// This side gave the connection to another process ([`HeldConnection::detach`](crate::HeldConnection::detach)).
    HandedOver,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::ClosedByPeer => f.write_str("connection closed by peer"),
            LostReason::PeerShutDown => f.write_str("peer shut down"),
            LostReason::Goodbye { code, reason } => write!(f, "peer closed with {code}: {reason}"),
            LostReason::Protocol(detail) => write!(f, "protocol error: {detail}"),
            LostReason::Io(detail) => write!(f, "i/o error: {detail}"),
            LostReason::ClosedLocally => f.write_str("client closed"),
            LostReason::HandedOver => f.write_str("connection handed over to another process"),
        }
    }
}

/// Why a call failed. Every variant names the method; those about the connection name the
/// endpoint too.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The server has no such service.
    #[error("{method}: unknown service on {endpoint}: {message}")]
    UnknownService {
        /// The `Service.Method` called.
        method: String,
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The service has no such method.
    #[error("{method}: unknown method on {endpoint}: {message}")]
    UnknownMethod {
        /// The `Service.Method` called.
        method: String,
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The argument could not be decoded or was refused.
    #[error("{method}: bad argument: {message}")]
    BadArgument {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// An application error the handler returned (code 1000 or above).
    #[error("{method}: error {code}: {message}")]
    Application {
        /// The `Service.Method` called.
        method: String,
        /// The error code.
        code: u32,
        /// What went wrong, in words.
        message: String,
        /// Structured detail from the handler, still encoded.
        data: Option<ErrorData>,
    },
    /// The call was not run because the server is shutting down: safe to retry elsewhere.
    #[error("{method}: {endpoint} is shutting down: {message}")]
    ShuttingDown {
        /// The `Service.Method` called.
        method: String,
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The deadline passed.
    #[error("{method}: deadline of {timeout:?} exceeded")]
    DeadlineExceeded {
        /// The `Service.Method` called.
        method: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The call was cancelled.
    #[error("{method}: cancelled: {message}")]
    Cancelled {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The connection ended before the answer came.
    #[error("{method}: connection to {endpoint} lost: {reason}")]
    ConnectionLost {
        /// The `Service.Method` called.
        method: String,
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// Why, in words.
        reason: LostReason,
    },
    /// A frame exceeded the receiver's limit.
    #[error("{method}: frame too large: {message}")]
    FrameTooLarge {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The server has too many calls or connections.
    #[error("{method}: server is overloaded: {message}")]
    Overloaded {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The server failed in a way the caller cannot fix.
    #[error("{method}: internal server error: {message}")]
    Internal {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The value could not be encoded.
    #[error("{method}: could not encode the argument: {message}")]
    Encode {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The reply could not be decoded into the expected type.
    #[error("{method}: could not decode the reply: {message}")]
    BadReply {
        /// The `Service.Method` called.
        method: String,
        /// What went wrong, in words.
        message: String,
    },
    /// A code this client has no variant for.
    #[error("{method}: server answered with {code}: {message}")]
    Other {
        /// The `Service.Method` called.
        method: String,
        /// The error code.
        code: ErrorCode,
        /// What went wrong, in words.
        message: String,
    },
    /// An error that came without a code: the string error of a JSON-RPC 1.0 server, such as
    /// a Go `net/rpc` method's `err.Error()`.
    #[error("{method}: {endpoint} answered with an error: {message}")]
    Remote {
        /// The `Service.Method` called.
        method: String,
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// What went wrong, in words.
        message: String,
    },
}

impl CallError {
    /// The wire code this error corresponds to, for callers that dispatch on codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::UnknownService { .. } => ErrorCode::UnknownService,
            CallError::UnknownMethod { .. } => ErrorCode::UnknownMethod,
            CallError::BadArgument { .. } | CallError::Encode { .. } => ErrorCode::BadArgument,
            CallError::Application { code, .. } => ErrorCode::from_u32(*code),
            CallError::ShuttingDown { .. } => ErrorCode::ShuttingDown,
            CallError::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            CallError::Cancelled { .. } => ErrorCode::Cancelled,
            CallError::ConnectionLost { .. } => ErrorCode::Normal,
            CallError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            CallError::Overloaded { .. } => ErrorCode::Overloaded,
            CallError::Internal { .. } | CallError::BadReply { .. } => ErrorCode::Internal,
            CallError::Other { code, .. } => *code,
            // No code crossed the wire; the call ran and failed for a reason only the message
            // gives, which is what INTERNAL stands for among the codes.
            CallError::Remote { .. } => ErrorCode::Internal,
        }
    }
}
