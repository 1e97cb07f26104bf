//! How setting up a connection fails: an endpoint that cannot be understood, a server that
//! cannot listen, a client that cannot connect.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::{ErrorCode, FrameError};

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
    /// The server runs as a user the client's [`server_users`](crate::ClientBuilder::server_users)
    /// does not allow; nothing was sent to it.
    #[error("{endpoint} is served by {}, not by an allowed user ({allowed:?}); nothing was sent to it", uid.map_or_else(|| "an unknown user".to_owned(), |uid| format!("uid {uid}")))]
    ServerNotAllowed {
        /// The endpoint, as shown in errors.
        endpoint: String,
        /// The server's uid, when the kernel told it.
        uid: Option<u32>,
        /// The uids allowed.
        allowed: Vec<u32>,
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
