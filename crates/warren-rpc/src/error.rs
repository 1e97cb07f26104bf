//! Errors, one enum per failure domain, and the stable numeric codes that cross the wire.

use std::io;
use std::time::Duration;

use crate::codec::Codec;

mod call;
mod setup;

pub use call::{CallError, LostReason};
pub use setup::{BindError, ConnectError, EndpointError};

/// A stable error code as carried by ERROR and GOODBYE frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Orderly close (GOODBYE only).
    Normal,
    /// The server has no such service.
    UnknownService,
    /// The service has no such method.
    UnknownMethod,
    /// The argument could not be decoded or was refused.
    BadArgument,
    /// The deadline passed.
    DeadlineExceeded,
    /// The call was cancelled.
    Cancelled,
    /// The server is shutting down; the call did not run.
    ShuttingDown,
    /// The server failed in a way the caller cannot fix.
    Internal,
    /// A frame exceeded the receiver's limit.
    FrameTooLarge,
    /// The peer broke the protocol.
    ProtocolError,
    /// The peer speaks another protocol version.
    UnsupportedVersion,
    /// The peer is not allowed to connect.
    PermissionDenied,
    /// No payload codec in common.
    UnsupportedCodec,
    /// The server has too many calls or connections.
    Overloaded,
    /// A code chosen by a service, 1000 or above.
    Application(u32),
    /// A code this version does not know (14..=999); kept so it can be shown.
    Unknown(u32),
}

/// Lowest code a service may use for its own errors.
pub const FIRST_APPLICATION_CODE: u32 = 1000;

impl ErrorCode {
    /// The code as it travels on the wire.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::Normal => 0,
            ErrorCode::UnknownService => 1,
            ErrorCode::UnknownMethod => 2,
            ErrorCode::BadArgument => 3,
            ErrorCode::DeadlineExceeded => 4,
            ErrorCode::Cancelled => 5,
            ErrorCode::ShuttingDown => 6,
            ErrorCode::Internal => 7,
            ErrorCode::FrameTooLarge => 8,
            ErrorCode::ProtocolError => 9,
            ErrorCode::UnsupportedVersion => 10,
            ErrorCode::PermissionDenied => 11,
            ErrorCode::UnsupportedCodec => 12,
            ErrorCode::Overloaded => 13,
            ErrorCode::Application(code) | ErrorCode::Unknown(code) => code,
        }
    }

    /// The code for this wire number.
    pub fn from_u32(code: u32) -> ErrorCode {
        match code {
            0 => ErrorCode::Normal,
            1 => ErrorCode::UnknownService,
            2 => ErrorCode::UnknownMethod,
            3 => ErrorCode::BadArgument,
            4 => ErrorCode::DeadlineExceeded,
            5 => ErrorCode::Cancelled,
            6 => ErrorCode::ShuttingDown,
            7 => ErrorCode::Internal,
            8 => ErrorCode::FrameTooLarge,
            9 => ErrorCode::ProtocolError,
            10 => ErrorCode::UnsupportedVersion,
            11 => ErrorCode::PermissionDenied,
            12 => ErrorCode::UnsupportedCodec,
            13 => ErrorCode::Overloaded,
            code if code >= FIRST_APPLICATION_CODE => ErrorCode::Application(code),
            code => ErrorCode::Unknown(code),
        }
    }

    /// The name used in logs and in `docs/PROTOCOL.md`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Normal => "NORMAL",
            ErrorCode::UnknownService => "UNKNOWN_SERVICE",
            ErrorCode::UnknownMethod => "UNKNOWN_METHOD",
            ErrorCode::BadArgument => "BAD_ARGUMENT",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::UnsupportedCodec => "UNSUPPORTED_CODEC",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Application(_) => "APPLICATION",
            ErrorCode::Unknown(_) => "UNKNOWN_CODE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u32())
    }
}

/// Malformed or unacceptable bytes on a connection. Each one ends that connection only.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading or writing the stream failed; the cause is the `source()`.
    #[error("i/o error")]
    Io(#[source] io::Error),
    /// Larger than the limit.
    #[error("frame too large: {size} bytes announced, limit is {limit}")]
    TooLarge {
        /// The size announced or encoded, in bytes.
        size: u64,
        /// The limit.
        limit: u32,
    },
    /// A frame kind this side does not know.
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind {
        /// The frame kind.
        kind: u8,
    },
    /// The input ended in the middle of something.
    #[error("truncated {what}")]
    Truncated {
        /// What was cut short.
        what: &'static str,
    },
    /// A method name is over 255 bytes.
    #[error("method name is {len} bytes, the limit is 255")]
    MethodTooLong {
        /// Its length in bytes.
        len: usize,
    },
    #[error("method name is not UTF-8")]
    /// A method name is not UTF-8.
    MethodNotUtf8,
    /// The connection did not start with the binary protocol's magic.
    #[error("bad magic {found:02x?}: {looks_like}")]
    BadMagic {
        /// The first bytes received.
        found: Vec<u8>,
        /// What they look like.
        looks_like: Foreign,
    },
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {theirs} (this side speaks {ours})")]
    UnsupportedVersion {
        /// The version this side speaks.
        ours: u8,
        /// The version the peer announced.
        theirs: u8,
    },
    /// A frame of a kind not expected here.
    #[error("unexpected {kind:?} frame {when}")]
    Unexpected {
        /// The frame kind.
        kind: crate::kind::Kind,
        /// When it came.
        when: &'static str,
    },
    /// The peers have no payload codec in common.
    #[error("no common payload codec (offered {offered:?})")]
    NoCommonCodec {
        /// The codec ids the peer offered.
        offered: Vec<u8>,
    },
    #[error("no hello within {0:?}")]
    /// The peer did not say hello in time.
    HelloTimeout(Duration),
}

impl FrameError {
    /// The code sent to the peer in the GOODBYE that closes the connection.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            FrameError::NoCommonCodec { .. } => ErrorCode::UnsupportedCodec,
            _ => ErrorCode::ProtocolError,
        }
    }
}

/// What the first bytes of a connection look like when they are not the binary protocol's
/// magic: a server answers an HTTP client in HTTP, and every log says what the peer spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// An HTTP request line.
    Http,
    /// JSON: the peer speaks JSON-RPC lines. A server serves those itself, so only a client
    /// meets this: the server answered its binary hello in JSON.
    Json,
    /// Anything else.
    Unknown,
}

impl Foreign {
    /// Recognises the start of a connection that is not ours.
    pub fn of(bytes: &[u8]) -> Foreign {
        const HTTP_METHODS: [&[u8]; 10] =
            [b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI "];
        if HTTP_METHODS.iter().any(|m| bytes.starts_with(m)) {
            Foreign::Http
        } else if bytes.first() == Some(&b'{') || bytes.first() == Some(&b'[') {
            Foreign::Json
        } else {
            Foreign::Unknown
        }
    }
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Foreign::Http => "an HTTP request was sent to a warren RPC socket",
            Foreign::Json => "JSON: the peer speaks JSON-RPC lines, not the binary protocol (use Protocol::JsonRpc)",
            Foreign::Unknown => "not the warren RPC protocol",
        })
    }
}

/// Optional structured detail attached to an application error, still in its wire encoding so
/// the caller decodes it into whatever type it expects.
#[derive(Debug, Clone)]
pub struct ErrorData {
    pub(crate) codec: Codec,
    pub(crate) bytes: bytes::Bytes,
}

impl ErrorData {
    /// Decodes a value.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::codec::CodecError> {
        self.codec.decode(&self.bytes)
    }
}

/// The error a handler returns: a code, a message, and optional structured data.
#[derive(Debug, Clone)]
pub struct HandlerError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) data: Option<serde_json::Value>,
}

impl HandlerError {
    /// An application error; `code` should be 1000 or above (lower ones are reserved and are
    /// reported as INTERNAL so they cannot impersonate protocol errors).
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        let code = if code >= FIRST_APPLICATION_CODE { ErrorCode::Application(code) } else { ErrorCode::Internal };
        HandlerError { code, message: message.into(), data: None }
    }

    /// The argument was acceptable to the decoder but not to the method.
    pub fn bad_argument(message: impl Into<String>) -> Self {
        HandlerError { code: ErrorCode::BadArgument, message: message.into(), data: None }
    }

    /// Something went wrong inside the service that the caller cannot fix.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        HandlerError { code: ErrorCode::Internal, message: message.to_string(), data: None }
    }

    /// Attaches structured data; it is encoded with the connection's codec.
    pub fn with_data(mut self, data: impl serde::Serialize) -> Self {
        self.data = serde_json::to_value(data).ok();
        self
    }

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for HandlerError {}

/// Displays an error and its sources, `: `-separated, as `{:#}` does for anyhow. Every error of
/// warren's displays only its own layer and returns its cause as `source()`; this is for the
/// logs and one-line messages that must say everything without depending on anyhow.
///
/// ```
/// let err = warren_rpc::Endpoint::parse("nonsense").unwrap_err();
/// assert!(warren_rpc::ErrorChain(&err).to_string().starts_with("bad endpoint"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
