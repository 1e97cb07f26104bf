//! The client: one connection, many calls in flight, each with an optional deadline; dropping
//! a call's future cancels it on the server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! #[derive(serde::Deserialize)]
//! struct Todo { id: String }
//! let client = warren_rpc::Client::connect("unix:/run/user/1000/task.sock").await?;
//! let todo: Todo = client.call("Task.Get", "new_id").await?;
//! # Ok(()) }
//! ```

mod inflight;
mod jsonline;
mod reader;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::{Codec, CodecError};
use crate::endpoint::{Endpoint, ToEndpoint};
use crate::error::{CallError, ConnectError, ErrorCode, ErrorData, LostReason};
use crate::frame::{self, DEFAULT_MAX_FRAME, FrameReader, Kind};
use crate::hello::{self, Answer as HelloAnswer, Negotiated, features};
use crate::jsonrpc::{self, LineReader};
use crate::message::{self, EncodeError};
use crate::writer::{self, FrameSender};
use inflight::{Answer, Closed, InFlight};

/// A connection to a warren server; clones share it.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    protocol: Protocol,
    tx: FrameSender,
    in_flight: Arc<InFlight>,
    negotiated: Negotiated,
    endpoint: Arc<str>,
    default_timeout: Option<Duration>,
    close: CancellationToken,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    reader_done: CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoint", &self.endpoint).field("codec", &self.negotiated.codec).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close.cancel();
    }
}

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// and an error without a code arrives as [`CallError::Remote`].
    JsonRpc,
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
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            protocol: Protocol::Binary,
            codecs: vec![Codec::MessagePack, Codec::Json],
            max_frame: DEFAULT_MAX_FRAME,
            default_timeout: None,
            connect_timeout: Duration::from_secs(10),
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
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|source| ConnectError::Io { endpoint: label.clone(), source })?;
                    let (read, write) = stream.into_split();
                    self.clone().handshake(read, write, &label).await
                }
                Endpoint::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|source| ConnectError::Io { endpoint: label.clone(), source })?;
                    let _ = stream.set_nodelay(true);
                    let (read, write) = stream.into_split();
                    self.clone().handshake(read, write, &label).await
                }
                Endpoint::Stdio => Err(ConnectError::NotConnectable { endpoint: label.clone() }),
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout { endpoint: label.clone(), timeout }))
    }

    /// Speaks the protocol over an already-open pair of streams, e.g. a child's stdout (read)
    /// and stdin (write). `label` names the peer in errors.
    pub async fn over<R, W>(self, read: R, write: W, label: &str) -> Result<Client, ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let timeout = self.connect_timeout;
        tokio::time::timeout(timeout, self.handshake(read, write, label))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout { endpoint: label.to_owned(), timeout }))
    }

    async fn handshake<R, W>(self, read: R, write: W, label: &str) -> Result<Client, ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        match self.protocol {
            Protocol::Binary => {
                let (reader, negotiated, write) = self.hello(read, write, label).await?;
                Ok(self.start(Reading::Frames(reader), write, negotiated, label))
            }
            // JSON-RPC has no handshake: the connection is open as soon as it is connected.
            Protocol::JsonRpc => {
                let negotiated = Negotiated { codec: Codec::Json, peer_max_frame: self.max_frame, features: 0 };
                let lines = LineReader::new(read, BytesMut::new(), self.max_frame as usize);
                Ok(self.start(Reading::Lines(lines), write, negotiated, label))
            }
        }
    }

    async fn hello<R, W>(
        &self,
        read: R,
        mut write: W,
        label: &str,
    ) -> Result<(FrameReader<R>, Negotiated, W), ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let io_error = |source| ConnectError::Io { endpoint: label.to_owned(), source };
        let sent = async {
            write.write_all(&hello::client_hello(&self.codecs, self.max_frame)).await?;
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
        let negotiated = match hello::read_answer(&mut reader).await {
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
        Ok((reader, negotiated, write))
    }

    /// Starts the writer and reader tasks of an open connection.
    fn start<R, W>(self, reading: Reading<R>, write: W, negotiated: Negotiated, label: &str) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, queue) = mpsc::unbounded_channel();
        let close = CancellationToken::new();
        let in_flight = Arc::new(InFlight::default());
        let endpoint: Arc<str> = Arc::from(label);
        let more_coming = {
            let in_flight = Arc::clone(&in_flight);
            move || in_flight.waiting() > 1
        };
        let writer = tokio::spawn(writer::run(write, queue, close.clone(), more_coming));
        let reader_done = CancellationToken::new();
        {
            let (in_flight, weak, endpoint, close, done) =
                (Arc::clone(&in_flight), tx.downgrade(), Arc::clone(&endpoint), close.clone(), reader_done.clone());
            tokio::spawn(async move {
                let read = async {
                    match reading {
                        Reading::Frames(reader) => {
                            reader::run(reader, Arc::clone(&in_flight), weak, negotiated.codec, endpoint).await;
                        }
                        Reading::Lines(lines) => jsonline::run(lines, Arc::clone(&in_flight), endpoint).await,
                    }
                };
                tokio::select! {
                    () = read => {}
                    () = close.cancelled() => in_flight.lose(LostReason::ClosedLocally, None),
                }
                done.cancel();
            });
        }
        Client {
            inner: Arc::new(Inner {
                protocol: self.protocol,
                tx,
                in_flight,
                negotiated,
                endpoint,
                default_timeout: self.default_timeout,
                close,
                writer: Mutex::new(Some(writer)),
                reader_done,
            }),
        }
    }
}

/// How an open connection is read, by protocol.
enum Reading<R> {
    Frames(FrameReader<R>),
    Lines(LineReader<R>),
}

/// Per-call options.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOptions {
    /// Fail with [`CallError::DeadlineExceeded`] after this long; the server is told too.
    pub timeout: Option<Duration>,
}

/// An event pushed by the server.
#[derive(Debug, Clone)]
pub struct Notification {
    method: String,
    codec: Codec,
    payload: Bytes,
}

impl Notification {
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        self.codec.decode(&self.payload)
    }
}

/// Notifications of one name pushed by the server; ends when the connection does.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Notification>,
}

impl Subscription {
    pub async fn next(&mut self) -> Option<Notification> {
        self.rx.recv().await
    }
}

/// Forgets the call and tells the server to stop when the caller stops waiting early.
struct CallGuard<'a> {
    inner: &'a Inner,
    id: u32,
    sent: bool,
    armed: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        // Without the cancel feature (and in JSON-RPC, which has none) the call is only
        // forgotten: its late answer, if any, is ignored.
        let can_cancel = self.inner.negotiated.features & features::CANCEL != 0;
        if self.armed && self.inner.in_flight.forget(self.id) && self.sent && can_cancel {
            let _ = self.inner.tx.send(frame::encode(Kind::Cancel, self.id, &[]));
        }
    }
}

impl Client {
    /// Connects with default options: `Client::connect("unix:/run/task.sock")`.
    pub async fn connect(endpoint: impl ToEndpoint) -> Result<Client, ConnectError> {
        ClientBuilder::default().connect(endpoint).await
    }

    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Calls `Service.Method` with `arg` and decodes the reply.
    pub async fn call<A, R>(&self, method: &str, arg: &A) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(method, arg, CallOptions::default()).await
    }

    /// Like [`call`](Self::call) with a deadline.
    pub async fn call_timeout<A, R>(&self, method: &str, arg: &A, timeout: Duration) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(method, arg, CallOptions { timeout: Some(timeout) }).await
    }

    pub async fn call_with<A, R>(&self, method: &str, arg: &A, options: CallOptions) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let inner = &*self.inner;
        let codec = inner.negotiated.codec;
        let timeout = options.timeout.or(inner.default_timeout);
        let (id, answer) = inner.in_flight.register().map_err(|closed| self.closed_error(method, closed))?;
        let mut guard = CallGuard { inner, id, sent: false, armed: true };
        let limit = inner.negotiated.peer_max_frame;
        let frame = match inner.protocol {
            Protocol::Binary => message::request(id, method, timeout, codec, arg, limit),
            Protocol::JsonRpc => jsonrpc::request_go(Some(id), method, arg, limit),
        }
        .map_err(|err| encode_error(method, err))?;
        inner.tx.send(frame).map_err(|_| self.lost(method, LostReason::ClosedLocally))?;
        guard.sent = true;
        let answer = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => return Err(CallError::DeadlineExceeded { method: method.to_owned(), timeout }),
            },
            None => answer.await,
        };
        guard.armed = false;
        match answer {
            Ok(Answer::Reply(bytes)) => match codec.decode(&bytes) {
                // In Go's shape `{}` stands for "no value", as Go's client cannot take a null.
                Err(_) if inner.protocol == Protocol::JsonRpc && &bytes[..] == b"{}" => codec.decode(b"null"),
                decoded => decoded,
            }
            .map_err(|err| CallError::BadReply { method: method.to_owned(), message: err.message }),
            Ok(Answer::Error { code, message, data }) => Err(self.remote_error(method, code, message, data, timeout)),
            Ok(Answer::Untyped(message)) => Err(self.untyped(method, message)),
            Ok(Answer::Lost(reason)) => Err(self.lost(method, reason)),
            Ok(Answer::NotRun) => Err(self.not_run(method)),
            Err(_) => Err(self.lost(method, LostReason::ClosedLocally)),
        }
    }

    fn untyped(&self, method: &str, message: String) -> CallError {
        CallError::Remote { method: method.to_owned(), endpoint: self.inner.endpoint.to_string(), message }
    }

    fn not_run(&self, method: &str) -> CallError {
        CallError::ShuttingDown {
            method: method.to_owned(),
            endpoint: self.inner.endpoint.to_string(),
            message: "the server shut down without reading this call; it never ran".to_owned(),
        }
    }

    /// Sends a fire-and-forget notification to `Service.Method`; no reply comes back.
    pub fn notify<A: Serialize + ?Sized>(&self, method: &str, arg: &A) -> Result<(), CallError> {
        if let Some(closed) = self.inner.in_flight.closed() {
            return Err(self.closed_error(method, closed));
        }
        let (codec, limit) = (self.inner.negotiated.codec, self.inner.negotiated.peer_max_frame);
        let frame = match self.inner.protocol {
            Protocol::Binary => message::notify(method, codec, arg, limit),
            Protocol::JsonRpc => jsonrpc::request_go(None, method, arg, limit),
        }
        .map_err(|err| encode_error(method, err))?;
        self.inner.tx.send(frame).map_err(|_| self.lost(method, LostReason::ClosedLocally))
    }

    /// Receives the notifications named `method` that the server pushes, from now on. Up to
    /// 1024 may wait unread; beyond that new ones are dropped (and logged) so a slow reader
    /// cannot stall the connection's calls.
    pub fn subscribe(&self, method: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(1024);
        self.inner.in_flight.subscribe(method, tx);
        Subscription { rx }
    }

    /// Round trip of a PING: tells a hung server from a busy one (pings bypass handlers). In
    /// JSON-RPC, which has no ping, a call to `warren.Ping` whose answer, even an error such as
    /// "unknown service", proves the server alive.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, CallError> {
        const METHOD: &str = "(ping)";
        let inner = &*self.inner;
        let (id, answer) = inner.in_flight.register().map_err(|closed| self.closed_error(METHOD, closed))?;
        let mut guard = CallGuard { inner, id, sent: false, armed: true };
        let start = Instant::now();
        let frame = match inner.protocol {
            Protocol::Binary => frame::encode(Kind::Ping, id, &[]),
            Protocol::JsonRpc => jsonrpc::request_go(Some(id), "warren.Ping", &(), inner.negotiated.peer_max_frame)
                .map_err(|err| encode_error(METHOD, err))?,
        };
        inner.tx.send(frame).map_err(|_| self.lost(METHOD, LostReason::ClosedLocally))?;
        // A server ignores CANCEL for a ping id, so the guard's cancel is harmless.
        guard.sent = true;
        let answer = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| CallError::DeadlineExceeded { method: METHOD.to_owned(), timeout })?;
        guard.armed = false;
        match answer {
            Ok(Answer::Reply(_)) => Ok(start.elapsed()),
            Ok(Answer::Error { .. } | Answer::Untyped(_)) if inner.protocol == Protocol::JsonRpc => Ok(start.elapsed()),
            Ok(Answer::Untyped(message)) => Err(self.untyped(METHOD, message)),
            Ok(Answer::Lost(reason)) => Err(self.lost(METHOD, reason)),
            Ok(Answer::NotRun) => Err(self.not_run(METHOD)),
            Ok(Answer::Error { code, message, data }) => Err(self.remote_error(METHOD, code, message, data, None)),
            Err(_) => Err(self.lost(METHOD, LostReason::ClosedLocally)),
        }
    }

    /// Fails calls still in flight, flushes what is queued and closes the connection.
    pub async fn close(&self) {
        self.inner.in_flight.lose(LostReason::ClosedLocally, None);
        self.inner.close.cancel();
        let writer = self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }

    /// Resolves when the connection has ended, for whatever reason.
    pub async fn closed(&self) {
        self.inner.reader_done.cancelled().await;
    }

    /// Whether new calls would fail at once (connection lost or server shutting down).
    pub fn is_closed(&self) -> bool {
        self.inner.in_flight.closed().is_some()
    }

    /// The endpoint this client is connected to, as shown in errors.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    pub fn codec(&self) -> Codec {
        self.inner.negotiated.codec
    }

    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    fn lost(&self, method: &str, reason: LostReason) -> CallError {
        CallError::ConnectionLost { method: method.to_owned(), endpoint: self.inner.endpoint.to_string(), reason }
    }

    fn closed_error(&self, method: &str, closed: Closed) -> CallError {
        match closed {
            Closed::Lost(reason) => self.lost(method, reason),
            Closed::ShuttingDown(message) => CallError::ShuttingDown {
                method: method.to_owned(),
                endpoint: self.inner.endpoint.to_string(),
                message,
            },
        }
    }

    fn remote_error(
        &self,
        method: &str,
        code: ErrorCode,
        message: String,
        data: Option<Bytes>,
        timeout: Option<Duration>,
    ) -> CallError {
        let method = method.to_owned();
        let endpoint = self.inner.endpoint.to_string();
        match code {
            ErrorCode::UnknownService => CallError::UnknownService { method, endpoint, message },
            ErrorCode::UnknownMethod => CallError::UnknownMethod { method, endpoint, message },
            ErrorCode::BadArgument => CallError::BadArgument { method, message },
            ErrorCode::DeadlineExceeded => CallError::DeadlineExceeded { method, timeout: timeout.unwrap_or_default() },
            ErrorCode::Cancelled => CallError::Cancelled { method, message },
            ErrorCode::ShuttingDown => CallError::ShuttingDown { method, endpoint, message },
            ErrorCode::Internal => CallError::Internal { method, message },
            ErrorCode::FrameTooLarge => CallError::FrameTooLarge { method, message },
            ErrorCode::Overloaded => CallError::Overloaded { method, message },
            ErrorCode::Application(code) => {
                let data = data.map(|bytes| ErrorData { codec: self.inner.negotiated.codec, bytes });
                CallError::Application { method, code, message, data }
            }
            code => CallError::Other { method, code, message },
        }
    }
}

fn encode_error(method: &str, err: EncodeError) -> CallError {
    let method = method.to_owned();
    match err {
        EncodeError::TooLarge { size, limit } => CallError::FrameTooLarge {
            method,
            message: format!("request of {size} bytes exceeds the server's limit of {limit} bytes; not sent"),
        },
        other => CallError::Encode { method, message: other.to_string() },
    }
}
