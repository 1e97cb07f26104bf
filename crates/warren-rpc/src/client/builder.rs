//! Connecting: the options, the transport, and the handshake that turns a stream into a
//! [`Client`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::hold::{HoldPort, ReaderPort};
use super::inflight::InFlight;
use super::wire::{self, Reading, Wire};
use super::{Client, Inner};
use crate::codec::Codec;
use crate::endpoint::{Endpoint, ToEndpoint};
use crate::error::FrameError;
use crate::error::{ConnectError, LostReason};
use crate::frame::{DEFAULT_MAX_FRAME, FrameReader, Kind};
use crate::hello::{self, Answer as HelloAnswer, Negotiated, features};
use crate::jsonrpc::LineReader;
use crate::server::PeerPolicy;
use crate::shm::negotiate::{self, Transport};
use crate::unix_io::SocketRef;
use crate::writer;

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// warren's binary protocol (`docs/PROTOCOL.md`): deadlines the server sees, cancellation,
    /// pings and notifications both ways.
    #[default]
    Binary,
    /// Newline-delimited JSON-RPC in the shape of Go's `net/rpc/jsonrpc` (`docs/PROTOCOL.md`
    /// §17), for servers that speak nothing else: a Go program serving with
    /// `jsonrpc.ServeConn`, a child written in Python. Warren servers answer it too. Deadlines
    /// are kept locally but the server does not see them, an abandoned call is not cancelled
    /// on the server, [`Client::ping`] is a call to `warren.Ping` that any answer satisfies,
    /// and an error without a code arrives as [`CallError::Remote`](crate::CallError::Remote).
    JsonRpc,
    /// Go's `net/rpc` with its default codec, gob (`docs/PROTOCOL.md` §18), for an unmodified
    /// Go server: `rpc.ServeConn` when `http_connect` is false, `rpc.HandleHTTP` (an HTTP
    /// `CONNECT /_goRPC_` first) when true. Warren servers answer both. Values map to gob as
    /// in [`PROTOCOL.md` §18](https://docs.rs/warren-rpc) (Rust `id` is Go `ID`); like
    /// [`Protocol::JsonRpc`], no deadlines reach the server, nothing is cancelled on it, there
    /// are no notifications, and [`Client::ping`] is a call that any answer satisfies.
    GoGob {
        /// Open with Go's `rpc.DialHTTP` handshake.
        http_connect: bool,
    },
}

/// Options for connecting.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    protocol: Protocol,
    codecs: Vec<Codec>,
    max_frame: u32,
    default_timeout: Option<Duration>,
    connect_timeout: Duration,
    server_policy: PeerPolicy,
    transport: Transport,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            protocol: Protocol::Binary,
            codecs: vec![Codec::MessagePack, Codec::Json],
            max_frame: DEFAULT_MAX_FRAME,
            default_timeout: None,
            connect_timeout: Duration::from_secs(10),
            server_policy: PeerPolicy::AnyUser,
            transport: Transport::Socket,
        }
    }
}

impl ClientBuilder {
    /// The protocol to speak (default [`Protocol::Binary`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use warren_rpc::{Client, Protocol};
    /// // A Go program serving net/rpc with jsonrpc.ServeConn on this socket:
    /// let client = Client::builder().protocol(Protocol::JsonRpc).connect("unix:/tmp/go-task.sock").await?;
    /// let todo: serde_json::Value = client.call("Task.Get", "new_id").await?;
    /// # Ok(()) }
    /// ```
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Payload codecs to offer, preferred first (default MessagePack, then JSON). A JSON-RPC
    /// client always uses JSON.
    pub fn codecs(mut self, codecs: &[Codec]) -> Self {
        self.codecs = codecs.to_vec();
        self
    }

    /// Largest frame body accepted from the server (default 16 MiB). A JSON-RPC client applies
    /// it to lines both ways, since it cannot learn the server's limit.
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Deadline for calls made without one (default: none).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Bound on connecting plus the hello exchange (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Which users a Unix-socket server may run as (default: any). Checked with the kernel's
    /// credentials of the listening end (SO_PEERCRED) right after connecting, before a byte is
    /// sent: a socket planted by another user in a directory it could write learns nothing,
    /// not even the hello.
    pub fn server_users(mut self, policy: PeerPolicy) -> Self {
        self.server_policy = policy;
        self
    }

    /// Whether to offer moving the connection to shared memory during the hello (default
    /// [`Transport::Socket`]: never). Only the binary protocol over a Unix socket, to a server
    /// of the same uid that grants it, moves; anything else stays on the socket and works as
    /// before. [`Client::transport`] tells which it got. See `docs/PROTOCOL.md` §19.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Connects to `endpoint` and completes the handshake.
    pub async fn connect(self, endpoint: impl ToEndpoint) -> Result<Client, ConnectError> {
        let endpoint = endpoint.to_endpoint()?;
        let label = endpoint.to_string();
        let timeout = self.connect_timeout;
        let attempt = async {
            match &endpoint {
                Endpoint::Unix(path) => {
                    crate::server::check_path_length(path).map_err(|(len, limit)| ConnectError::PathTooLong {
                        path: path.clone(),
                        len,
                        limit,
                    })?;
                    let io_error = |source| ConnectError::Io { endpoint: label.clone(), source };
                    let stream = tokio::net::UnixStream::connect(path).await.map_err(io_error)?;
                    self.check_server(&stream, &label)?;
                    let (read, write) = crate::unix_io::split(stream).map_err(io_error)?;
                    let socket = Some(read.socket_ref());
                    self.clone().handshake(read, write, socket, &label).await
                }
                Endpoint::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|source| ConnectError::Io { endpoint: label.clone(), source })?;
                    let _ = stream.set_nodelay(true);
                    let (read, write) = stream.into_split();
                    self.clone().handshake(read, write, None, &label).await
                }
                Endpoint::Stdio => Err(ConnectError::NotConnectable { endpoint: label.clone() }),
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout { endpoint: label.clone(), timeout }))
    }

    fn check_server(&self, stream: &tokio::net::UnixStream, label: &str) -> Result<(), ConnectError> {
        let PeerPolicy::Users(allowed) = &self.server_policy else { return Ok(()) };
        let uid = stream.peer_cred().ok().map(|cred| cred.uid());
        match uid {
            Some(uid) if allowed.contains(&uid) => Ok(()),
            _ => Err(ConnectError::ServerNotAllowed { endpoint: label.to_owned(), uid, allowed: allowed.clone() }),
        }
    }

    /// Speaks the protocol over an already-open pair of streams, e.g. a child's stdout (read)
    /// and stdin (write). `label` names the peer in errors.
    pub async fn over<R, W>(self, read: R, write: W, label: &str) -> Result<Client, ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let timeout = self.connect_timeout;
        tokio::time::timeout(timeout, self.handshake(read, write, None, label))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout { endpoint: label.to_owned(), timeout }))
    }

    async fn handshake<R, W>(
        self,
        read: R,
        write: W,
        socket: Option<SocketRef>,
        label: &str,
    ) -> Result<Client, ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        match self.protocol {
            Protocol::Binary => {
                let (reader, negotiated, write) = self.hello(read, write, socket.as_ref(), label).await?;
                let wire = Wire::Binary(wire::Binary { negotiated });
                let opened = Opened { reading: Reading::Frames(reader), write, socket };
                Ok(self.start(opened, wire, negotiated, InFlight::default(), label))
            }
            // JSON-RPC has no handshake: the connection is open as soon as it is connected.
            Protocol::JsonRpc => {
                let negotiated = Negotiated { codec: Codec::Json, peer_max_frame: self.max_frame, features: 0 };
                let lines = LineReader::new(read, BytesMut::new(), self.max_frame as usize);
                let wire = Wire::JsonLines(wire::JsonLines { limit: self.max_frame });
                let opened = Opened { reading: Reading::Lines(lines), write, socket };
                Ok(self.start(opened, wire, negotiated, InFlight::default(), label))
            }
            Protocol::GoGob { http_connect } => {
                let (mut read, mut write) = (read, write);
                if http_connect {
                    super::gob::connect(&mut read, &mut write)
                        .await
                        .map_err(|source| ConnectError::Io { endpoint: label.to_owned(), source })?;
                }
                let negotiated = Negotiated { codec: Codec::Gob, peer_max_frame: self.max_frame, features: 0 };
                let max_frame = self.max_frame;
                let wire = Wire::GoGob(super::gob::GoGob::new(max_frame));
                let opened = Opened { reading: Reading::Gob(read, max_frame), write, socket };
                Ok(self.start(opened, wire, negotiated, InFlight::default(), label))
            }
        }
    }

    async fn hello<R, W>(
        &self,
        read: R,
        mut write: W,
        socket: Option<&SocketRef>,
        label: &str,
    ) -> Result<(FrameReader<R>, Negotiated, W), ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let io_error = |source| ConnectError::Io { endpoint: label.to_owned(), source };
        let shm = socket.filter(|socket| negotiate::offer(self.transport, Some(socket), label));
        let features = if shm.is_some() { features::ALL | features::SHM } else { features::ALL };
        let sent = async {
            write.write_all(&hello::client_hello_with(&self.codecs, self.max_frame, features)).await?;
            write.flush().await
        }
        .await;
        // A server that refuses us may write its preface and GOODBYE and close before our hello
        // arrives; our write then fails (EPIPE, ECONNRESET) but the refusal is still readable,
        // and it is the error that says why.
        let sent = match sent {
            Err(err) if !matches!(err.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) => {
                return Err(io_error(err));
            }
            sent => sent,
        };
        let mut reader = FrameReader::new(read, self.max_frame);
        let mut negotiated = match hello::read_answer(&mut reader).await {
            Ok(HelloAnswer::Refused { code, reason }) => {
                return Err(ConnectError::Refused { endpoint: label.to_owned(), code, reason });
            }
            Ok(HelloAnswer::Welcome(negotiated)) => {
                sent.map_err(io_error)?;
                negotiated
            }
            Err(source) => {
                sent.map_err(io_error)?;
                return Err(ConnectError::Handshake { endpoint: label.to_owned(), source });
            }
        };
        match shm {
            Some(socket) => {
                let more_read = !reader.buffered().is_empty();
                negotiate::take_up(more_read, &mut write, socket, &mut negotiated, self.transport, label)
                    .await
                    .map_err(io_error)?;
            }
            // A server that grants what was not offered breaks the protocol.
            None if negotiated.features & features::SHM != 0 => {
                let source = FrameError::Unexpected { kind: Kind::Welcome, when: "granting shared memory not offered" };
                return Err(ConnectError::Handshake { endpoint: label.to_owned(), source });
            }
            None => {}
        }
        Ok((reader, negotiated, write))
    }

    /// The options of a connection carried over from another process ([`Client::adopt`]).
    pub(super) fn carried(protocol: Protocol, max_frame: u32, default_timeout: Option<Duration>) -> ClientBuilder {
        ClientBuilder { protocol, max_frame, default_timeout, ..ClientBuilder::default() }
    }

    /// Starts the writer and reader tasks of an open connection.
    pub(super) fn start<R, W>(
        self,
        opened: Opened<R, W>,
        wire: Wire,
        negotiated: Negotiated,
        in_flight: InFlight,
        label: &str,
    ) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let Opened { reading, write, socket } = opened;
        let (tx, queue) = writer::channel();
        let close = CancellationToken::new();
        let in_flight = Arc::new(in_flight);
        let endpoint: Arc<str> = Arc::from(label);
        let more_coming = {
            let in_flight = Arc::clone(&in_flight);
            move || in_flight.waiting() > 1
        };
        let writer = {
            let (in_flight, close) = (Arc::clone(&in_flight), close.clone());
            tokio::spawn(async move {
                let result = writer::run(write, queue, close, more_coming).await;
                if let Err(err) = &result {
                    in_flight.writer_failed(LostReason::Io(err.to_string()));
                }
                result
            })
        };
        let reader_done = CancellationToken::new();
        let port = Arc::new(ReaderPort::default());
        {
            let (in_flight, weak, endpoint, close, done, port) = (
                Arc::clone(&in_flight),
                tx.downgrade(),
                Arc::clone(&endpoint),
                close.clone(),
                reader_done.clone(),
                Arc::clone(&port),
            );
            let codec = negotiated.codec;
            tokio::spawn(async move {
                super::hold::read_task(reading, port, in_flight, weak, codec, endpoint, close).await;
                done.cancel();
            });
        }
        Client {
            inner: Arc::new(Inner {
                protocol: self.protocol,
                wire,
                tx,
                in_flight,
                negotiated,
                endpoint,
                default_timeout: self.default_timeout,
                close,
                writer: Mutex::new(Some(writer)),
                reader_done,
                hold: HoldPort { reader: port, socket },
                max_frame: self.max_frame,
            }),
        }
    }
}

/// A connection open and ready for its tasks.
pub(super) struct Opened<R, W> {
    pub reading: Reading<R>,
    pub write: W,
    /// Its Unix socket, which a hold can carry to another process.
    pub socket: Option<SocketRef>,
}
