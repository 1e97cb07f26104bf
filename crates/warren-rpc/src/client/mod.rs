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

mod builder;
mod gob;
mod hold;
mod inflight;
mod jsonline;
mod reader;
mod wire;

pub use builder::{ClientBuilder, Protocol};
pub use hold::{CarriedSession, CarryError, HeldConnection};

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::{Codec, CodecError};
use crate::endpoint::ToEndpoint;
use crate::error::{CallError, ConnectError, ErrorCode, ErrorData, LostReason};
use crate::hello::{Negotiated, features};
use crate::message::EncodeError;
use crate::shm::negotiate::Transport;
use crate::writer::{Flush, FrameSender, Unsent};
use inflight::{Answer, Closed, InFlight};
use wire::{ClientWire, Wire};

/// A connection to a warren server; clones share it.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    protocol: Protocol,
    wire: Wire,
    tx: FrameSender,
    in_flight: Arc<InFlight>,
    negotiated: Negotiated,
    endpoint: Arc<str>,
    default_timeout: Option<Duration>,
    close: CancellationToken,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    reader_done: CancellationToken,
    hold: hold::HoldPort,
    /// The largest frame this side accepts.
    max_frame: u32,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoint", &self.endpoint).field("codec", &self.negotiated.codec).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close.cancel();
        self.hold.reader.wake();
    }
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
    /// The notification's name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Decodes a value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        self.codec.decode_shared(&self.payload)
    }
}

/// Notifications of one name pushed by the server; ends when the connection does.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Notification>,
}

impl Subscription {
    /// The next notification; `None` once the connection has ended.
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
        // A wire without cancels only forgets the call: its late answer, if any, is ignored.
        if self.armed && self.inner.in_flight.forget(self.id) && self.sent {
            if let Some(cancel) = self.inner.wire.cancel(self.id) {
                let _ = self.inner.tx.send(cancel);
            }
        }
    }
}

impl Client {
    /// Connects with default options: `Client::connect("unix:/run/task.sock")`.
    pub async fn connect(endpoint: impl ToEndpoint) -> Result<Client, ConnectError> {
        ClientBuilder::default().connect(endpoint).await
    }

    /// Options for connecting.
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

    /// Like [`call`](Self::call), with options.
    pub async fn call_with<A, R>(&self, method: &str, arg: &A, options: CallOptions) -> Result<R, CallError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let inner = &*self.inner;
        let mut timeout = options.timeout.or(inner.default_timeout);
        let (id, waiting) = match inner.in_flight.register() {
            Ok(registered) => registered,
            Err(Closed::Held) => self.register_after_hold(method, &mut timeout).await?,
            Err(closed) => return Err(self.closed_error(method, closed)),
        };
        let mut guard = CallGuard { inner, id, sent: false, armed: true };
        // Alone, the call is written from this task at once; with others under way, the writer
        // task gathers them into one write.
        let flush = if waiting > 1 { Flush::Writer } else { Flush::Now };
        inner.wire.request(&inner.tx, flush, id, method, timeout, arg).map_err(|unsent| match unsent {
            Unsent::Gone => self.unsendable(method),
            Unsent::Encode(err) => encode_error(method, err),
        })?;
        guard.sent = true;
        let answer = inner.in_flight.wait(id);
        let answer = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => return Err(CallError::DeadlineExceeded { method: method.to_owned(), timeout }),
            },
            None => answer.await,
        };
        guard.armed = false;
        match answer {
            Answer::Reply(bytes) => inner
                .wire
                .decode(&bytes)
                .map_err(|err| CallError::BadReply { method: method.to_owned(), message: err.message }),
            Answer::Error { code, message, data } => Err(self.remote_error(method, code, message, data, timeout)),
            Answer::Untyped(message) => Err(self.untyped(method, message)),
            Answer::Lost(reason) => Err(self.lost(method, reason)),
            Answer::NotRun => Err(self.not_run(method)),
        }
    }

    /// Registers a call once the hold on the connection ends, within the call's deadline
    /// (what is left of it is the call's from then on).
    async fn register_after_hold(
        &self,
        method: &str,
        timeout: &mut Option<Duration>,
    ) -> Result<(u32, usize), CallError> {
        let in_flight = &self.inner.in_flight;
        let start = Instant::now();
        loop {
            match *timeout {
                Some(limit) => tokio::time::timeout(limit.saturating_sub(start.elapsed()), in_flight.unheld())
                    .await
                    .map_err(|_| CallError::DeadlineExceeded { method: method.to_owned(), timeout: limit })?,
                None => in_flight.unheld().await,
            }
            match in_flight.register() {
                Ok(registered) => {
                    *timeout = timeout.map(|limit| limit.saturating_sub(start.elapsed()));
                    return Ok(registered);
                }
                Err(Closed::Held) => {}
                Err(closed) => return Err(self.closed_error(method, closed)),
            }
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
        let frame = self.inner.wire.notification(method, arg).map_err(|err| encode_error(method, err))?;
        self.inner.tx.send(frame).map_err(|_| self.unsendable(method))
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
        let (id, _) = match inner.in_flight.register() {
            Ok(registered) => registered,
            Err(Closed::Held) => self.register_after_hold(METHOD, &mut Some(timeout)).await?,
            Err(closed) => return Err(self.closed_error(METHOD, closed)),
        };
        let mut guard = CallGuard { inner, id, sent: false, armed: true };
        let start = Instant::now();
        let frame = inner.wire.ping(id).map_err(|err| encode_error(METHOD, err))?;
        inner.tx.send(frame).map_err(|_| self.unsendable(METHOD))?;
        // A server ignores CANCEL for a ping id, so the guard's cancel is harmless.
        guard.sent = true;
        let answer = tokio::time::timeout(timeout, inner.in_flight.wait(id))
            .await
            .map_err(|_| CallError::DeadlineExceeded { method: METHOD.to_owned(), timeout })?;
        guard.armed = false;
        match answer {
            Answer::Reply(_) => Ok(start.elapsed()),
            Answer::Error { .. } | Answer::Untyped(_) if inner.wire.error_answers_ping() => Ok(start.elapsed()),
            Answer::Untyped(message) => Err(self.untyped(METHOD, message)),
            Answer::Lost(reason) => Err(self.lost(METHOD, reason)),
            Answer::NotRun => Err(self.not_run(METHOD)),
            Answer::Error { code, message, data } => Err(self.remote_error(METHOD, code, message, data, None)),
        }
    }

    /// Fails calls still in flight, flushes what is queued and closes the connection.
    pub async fn close(&self) {
        self.inner.in_flight.lose(LostReason::ClosedLocally, None);
        self.inner.close.cancel();
        self.inner.hold.reader.wake();
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

    /// The payload codec in use.
    pub fn codec(&self) -> Codec {
        self.inner.negotiated.codec
    }

    /// The protocol this client speaks.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// How this connection's frames travel: [`Transport::Shm`] once it moved to shared memory
    /// during the hello, [`Transport::Socket`] otherwise.
    pub fn transport(&self) -> Transport {
        if self.inner.negotiated.features & features::SHM != 0 { Transport::Shm } else { Transport::Socket }
    }

    fn lost(&self, method: &str, reason: LostReason) -> CallError {
        CallError::ConnectionLost { method: method.to_owned(), endpoint: self.inner.endpoint.to_string(), reason }
    }

    /// The error for a frame the writer can no longer take.
    fn unsendable(&self, method: &str) -> CallError {
        self.lost(method, self.inner.in_flight.unsendable())
    }

    fn closed_error(&self, method: &str, closed: Closed) -> CallError {
        match closed {
            Closed::Lost(reason) => self.lost(method, reason),
            Closed::ShuttingDown(message) => CallError::ShuttingDown {
                method: method.to_owned(),
                endpoint: self.inner.endpoint.to_string(),
                message,
            },
            // Calls wait out a hold (`register_after_hold`); nothing else meets one.
            Closed::Held => self.lost(method, LostReason::ClosedLocally),
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
