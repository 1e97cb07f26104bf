//! Errors, one enum per failure domain, and the stable numeric codes that cross the wire.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::Codec;

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

/// Why a client's connection is gone; every call in flight fails with it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Why an endpoint string could not be understood.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad endpoint {input:?}: {why} (expected unix:/path.sock, /path.sock, tcp:host:port or stdio:)")]
pub struct EndpointError {
    /// The text given.
    pub input: String,
    /// Why.
    pub why: String,
}

/// Why a server could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "socket path {path} is {len} bytes; the OS limit for a Unix socket path is {limit} bytes \
         (use a shorter directory, e.g. $XDG_RUNTIME_DIR or /tmp)"
    )]
    /// The socket path is longer than the OS allows.
    PathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Another server accepts connections on the socket.
    #[error("socket {path} is in use: another server is accepting connections on it")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is at the path.
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket's directory is one that others could change entries of (or not a directory).
    #[error("refusing to put a socket in {dir}: {why}")]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// What is at the socket path after the bind is not the socket the bind made.
    #[error("socket file {path} was swapped after the bind ({why}); refusing to use it")]
    Replaced {
        /// The socket path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The cause is the `source()`.
    #[error("cannot listen on {endpoint}")]
    Io {
        /// The endpoint, as shown in errors.
        endpoint: String,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// The endpoint is not an address (stdio).
    #[error("{endpoint} cannot be listened on; use Server::serve_io for a single stream")]
    NotListenable {
        /// The endpoint, as shown in errors.
        endpoint: String,
    },
}

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    /// The endpoint could not be understood.
    Endpoint(#[from] EndpointError),
    /// The cause is the `source()`.
    #[error("cannot connect to {endpoint}")]
    Io {
        /// The endpoint, as shown in errors.
        endpoint: String,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// The server refused the connection with a GOODBYE.
    #[error("{endpoint} refused the connection with {code}: {reason}")]
    Refused {
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// The error code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// The cause is the `source()`.
    #[error("handshake with {endpoint} failed")]
    Handshake {
        /// The endpoint, as shown in errors.
        endpoint: String,
        #[source]
        /// The cause.
        source: FrameError,
    },
    /// The handshake did not complete in time.
    #[error("{endpoint} did not complete the handshake within {timeout:?}")]
    Timeout {
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The socket path is longer than the OS allows.
    #[error("socket path {path} is {len} bytes; the OS limit for a Unix socket path is {limit} bytes")]
    PathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The endpoint is not an address (stdio).
    #[error("{endpoint} cannot be connected to by address; use Client::over with the stream")]
    NotConnectable {
        /// The endpoint, as shown in errors.
        endpoint: String,
    },
}

/// Displays an error and its sources, `: `-separated, as `{:#}` does for anyhow: for the logs
/// and strings that must say everything, now that each error displays only its own layer.
pub(crate) struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
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
