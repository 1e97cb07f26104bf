//! The server: register services, then serve them on an endpoint or a single stream.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warren_rpc::{Endpoint, Server};
//! #[derive(serde::Serialize)]
//! struct Todo { id: String }
//! let server = Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }));
//! server.serve(&Endpoint::parse("unix:/run/user/1000/task.sock")?).await?;
//! # Ok(()) }
//! ```

mod binary;
mod connection;
mod context;
mod dispatch;
mod gob;
mod jsonline;
mod listener;
mod registry;
mod socket_file;
mod stall;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use context::{Cancellation, Context, Notifier, NotifyError, PeerInfo};
pub use listener::Inherited;
pub use registry::ServiceBuilder;

use crate::codec::Codec;
use crate::endpoint::Endpoint;
use crate::error::BindError;
use crate::frame::DEFAULT_MAX_FRAME;
use crate::shm::negotiate::{Budget, ServerShm, Transport};
use crate::shm::ring::{MAX_CAP, MIN_CAP};
use registry::Registry;
use socket_file::SocketFile;

/// Which peers a Unix-socket server accepts, checked with kernel credentials (SO_PEERCRED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPolicy {
    /// Only these user ids. The default is the server's own effective uid.
    Users(Vec<u32>),
    /// Anyone who can open the socket file.
    AnyUser,
}

/// See [`Server::max_unwritten`].
const DEFAULT_MAX_UNWRITTEN: usize = 4 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub max_frame: u32,
    pub codecs: Vec<Codec>,
    pub hello_timeout: Duration,
    /// None: the hello timeout.
    pub frame_timeout: Option<Duration>,
    pub max_in_flight: usize,
    pub max_unwritten: usize,
    pub max_connections: usize,
    pub peer_policy: PeerPolicy,
    pub socket_mode: u32,
    pub shm: ServerShm,
}

/// Shutdown state shared by the server's tasks and every [`ServerHandle`].
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Fires when shutdown starts: stop accepting, say goodbye, refuse new calls.
    pub shutting_down: CancellationToken,
    /// Fires when the drain deadline passes: cancel what still runs.
    pub drain_expired: CancellationToken,
    /// The accept loop and every connection.
    pub connections: TaskTracker,
    /// Fires once everything is closed and the socket file is removed.
    pub stopped: CancellationToken,
    pub shutdown_started: AtomicBool,
    pub socket: Mutex<Option<SocketFile>>,
    pub started_at: Mutex<Option<Instant>>,
}

impl Options {
    pub fn frame_timeout(&self) -> Duration {
        self.frame_timeout.unwrap_or(self.hello_timeout)
    }
}

pub(crate) struct Core {
    pub registry: Registry,
    pub options: Options,
    pub control: Arc<Control>,
    pub next_connection: AtomicU64,
    /// One permit per open connection, up to `max_connections`.
    pub connection_slots: Arc<Semaphore>,
}

/// A set of services and the options to serve them with.
#[must_use]
pub struct Server {
    registry: Registry,
    options: Options,
    control: Arc<Control>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("methods", &self.registry.method_names())
            .field("options", &self.options)
            .finish()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A new one, with defaults.
    pub fn new() -> Server {
        Server {
            registry: Registry::default(),
            options: Options {
                max_frame: DEFAULT_MAX_FRAME,
                codecs: vec![Codec::MessagePack, Codec::Json],
                hello_timeout: Duration::from_secs(10),
                frame_timeout: None,
                max_in_flight: 4096,
                max_unwritten: DEFAULT_MAX_UNWRITTEN,
                max_connections: 1024,
                peer_policy: PeerPolicy::Users(vec![rustix::process::geteuid().as_raw()]),
                socket_mode: 0o600,
                shm: ServerShm::default(),
            },
            control: Arc::new(Control::default()),
        }
    }

    /// Registers a service: `Server::new().service("Task", |s| s.method("Get", handler))`.
    pub fn service(mut self, name: &str, methods: impl FnOnce(ServiceBuilder) -> ServiceBuilder) -> Server {
        self.registry.add(methods(ServiceBuilder::new(name)));
        self
    }

    /// Largest frame body accepted from clients (default 16 MiB); larger ones close the
    /// connection before anything is allocated for them.
    pub fn max_frame(mut self, bytes: u32) -> Server {
        self.options.max_frame = bytes;
        self
    }

    /// How long a new connection may take to say hello (default 10 s). Also the
    /// [frame timeout](Self::frame_timeout) unless that is set.
    pub fn hello_timeout(mut self, timeout: Duration) -> Server {
        self.options.hello_timeout = timeout;
        self
    }

    /// How long the rest of a frame (or of a JSON-RPC line) may take to arrive once its first
    /// byte has (default: the hello timeout, 10 s unless changed). A peer that is slower gets
    /// `GOODBYE PROTOCOL_ERROR` and is closed. Time between frames is not limited: an idle
    /// connection stays open.
    pub fn frame_timeout(mut self, timeout: Duration) -> Server {
        self.options.frame_timeout = Some(timeout);
        self
    }

    /// Connections served at once (default 1024); one more, accepted over the limit, is told
    /// `GOODBYE OVERLOADED` and closed, so that no peer can park connections without end.
    /// Peers refused for their uid do not count.
    pub fn max_connections(mut self, connections: usize) -> Server {
        self.options.max_connections = connections;
        self
    }

    /// Calls allowed in flight per connection before new ones get OVERLOADED (default 4096).
    pub fn max_in_flight(mut self, calls: usize) -> Server {
        self.options.max_in_flight = calls;
        self
    }

    /// Bytes of answers and notifications a connection may have waiting to be written before
    /// the server stops reading its requests (default 4 MiB): a client that sends calls but
    /// never reads their answers holds at most this much of the server's memory (plus the
    /// answers of calls already running), and its notifications are refused
    /// ([`NotifyError::Backlogged`]) rather than queued. Reading resumes once the client reads.
    pub fn max_unwritten(mut self, bytes: usize) -> Server {
        self.options.max_unwritten = bytes;
        self
    }

    /// Who may connect over a Unix socket (default: the server's own uid).
    pub fn peer_policy(mut self, policy: PeerPolicy) -> Server {
        self.options.peer_policy = policy;
        self
    }

    /// Mode of the socket file (default 0600).
    pub fn socket_mode(mut self, mode: u32) -> Server {
        self.options.socket_mode = mode;
        self
    }

    /// Whether clients on this machine and uid may move a connection to shared memory
    /// (default [`Transport::Socket`]: they may not). Only binary-protocol connections over a
    /// Unix socket whose client offers it are moved; the rest stay on the socket. Each moved
    /// connection costs its [rings](Self::shm_ring) in memory from the start, in both
    /// processes. See `docs/PROTOCOL.md` §19.
    pub fn transport(mut self, transport: Transport) -> Server {
        self.options.shm.transport = transport;
        self
    }

    /// Bytes of each of a shared-memory connection's two rings (default 256 KiB), rounded up
    /// to a power of two between 4 KiB and 16 MiB. Frames larger than a ring stream through
    /// it.
    pub fn shm_ring(mut self, bytes: u64) -> Server {
        self.options.shm.ring = bytes.clamp(MIN_CAP, MAX_CAP).next_power_of_two();
        self
    }

    /// Shared memory all connections together may take (default 64 MiB); a connection that
    /// would go over it stays on its socket.
    pub fn max_shm_bytes(mut self, bytes: usize) -> Server {
        self.options.shm.budget = Arc::new(Budget::new(bytes));
        self
    }

    /// Payload codecs accepted, in order of preference (default MessagePack, JSON).
    pub fn codecs(mut self, codecs: &[Codec]) -> Server {
        self.options.codecs = codecs.to_vec();
        self
    }

    /// A handle to shut the server down from elsewhere, taken before [`serve`](Self::serve).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { control: Arc::clone(&self.control) }
    }

    fn into_core(self) -> Arc<Core> {
        *self.control.started_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let slots = self.options.max_connections.min(Semaphore::MAX_PERMITS);
        Arc::new(Core {
            connection_slots: Arc::new(Semaphore::new(slots)),
            registry: self.registry,
            options: self.options,
            control: self.control,
            next_connection: AtomicU64::new(1),
        })
    }

    /// Starts listening and accepting in the background. Returns once the socket is bound, so the
    /// caller can announce readiness knowing that connections will be accepted.
    pub async fn bind(self, endpoint: &Endpoint) -> Result<Running, BindError> {
        let (listener, socket) = listener::bind(endpoint, self.options.socket_mode).await?;
        let local = match (&listener, endpoint) {
            (listener::Listener::Tcp(tcp), _) => {
                tcp.local_addr().map_or_else(|_| endpoint.clone(), |a| Endpoint::Tcp(a.to_string()))
            }
            _ => endpoint.clone(),
        };
        let core = self.into_core();
        *core.control.socket.lock().unwrap_or_else(PoisonError::into_inner) = socket;
        let handle = ServerHandle { control: Arc::clone(&core.control) };
        core.control.connections.spawn(listener::accept_loop(Arc::clone(&core), listener));
        Ok(Running { handle, endpoint: local })
    }

    /// Like [`bind`](Self::bind), and also accepts on sockets made elsewhere (passed by a
    /// supervisor, systemd's socket activation); `endpoint` may then be `None`. Those sockets'
    /// files, if any, are left alone: they belong to whoever made them.
    pub async fn bind_with(self, endpoint: Option<&Endpoint>, inherited: Vec<Inherited>) -> Result<Running, BindError> {
        let mut listeners = Vec::new();
        let mut socket = None;
        for listener in inherited {
            listeners.push(
                listener
                    .into_listener()
                    .map_err(|source| BindError::Io { endpoint: "inherited socket".to_owned(), source })?,
            );
        }
        if let Some(endpoint) = endpoint {
            let (listener, file) = listener::bind(endpoint, self.options.socket_mode).await?;
            socket = file;
            listeners.insert(0, listener);
        }
        let local = match listeners.first() {
            Some(listener::Listener::Tcp(tcp)) => tcp.local_addr().map(|a| Endpoint::Tcp(a.to_string())).ok(),
            Some(listener::Listener::Unix { path, .. }) => Some(Endpoint::Unix(path.clone())),
            None => None,
        };
        let local = local
            .or_else(|| endpoint.cloned())
            .ok_or_else(|| BindError::NotListenable { endpoint: "nothing to listen on".to_owned() })?;
        let core = self.into_core();
        *core.control.socket.lock().unwrap_or_else(PoisonError::into_inner) = socket;
        let handle = ServerHandle { control: Arc::clone(&core.control) };
        for listener in listeners {
            core.control.connections.spawn(listener::accept_loop(Arc::clone(&core), listener));
        }
        Ok(Running { handle, endpoint: local })
    }

    /// Binds and serves until [`ServerHandle::shutdown`] completes. `stdio:` serves one
    /// connection on this process's stdin and stdout.
    pub async fn serve(self, endpoint: &Endpoint) -> Result<(), BindError> {
        if *endpoint == Endpoint::Stdio {
            self.serve_io(tokio::io::stdin(), tokio::io::stdout()).await;
            return Ok(());
        }
        let running = self.bind(endpoint).await?;
        running.handle.stopped().await;
        Ok(())
    }

    /// Serves exactly one connection over a pair of byte streams (a child's stdin/stdout, an
    /// in-memory duplex) until the peer closes it or the server shuts down.
    pub async fn serve_io<R, W>(self, read: R, write: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let core = self.into_core();
        let peer = PeerInfo { address: "stdio:".to_owned(), uid: None, gid: None, pid: None, connection: 0 };
        let control = Arc::clone(&core.control);
        control.connections.track_future(connection::serve(core, read, write, peer, None)).await;
    }
}

/// A server that is accepting connections.
#[derive(Debug)]
pub struct Running {
    handle: ServerHandle,
    endpoint: Endpoint,
}

impl Running {
    /// Where the server listens (for `tcp:127.0.0.1:0`, the port actually bound).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle to shut the server down.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Shuts the server down; see [`ServerHandle::shutdown`].
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        self.handle.shutdown(drain).await
    }

    /// Resolves when the server has stopped.
    pub async fn stopped(&self) {
        self.handle.stopped().await;
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// From the shutdown request to the last connection closed.
    pub elapsed: Duration,
    /// Whether the drain deadline passed and calls had to be cancelled.
    pub drain_deadline_hit: bool,
}

/// Shuts a server down; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    control: Arc<Control>,
}

impl ServerHandle {
    /// Stops accepting, tells every client goodbye, refuses new calls, lets calls in flight run
    /// until `drain` has passed and then cancels them; returns once every connection is closed
    /// and the socket file is removed. Calling it again waits for the same shutdown.
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        let start = Instant::now();
        if !self.control.shutdown_started.swap(true, Ordering::SeqCst) {
            // Done in a task of its own so that dropping this future cannot leave the server
            // half shut down.
            let control = Arc::clone(&self.control);
            tokio::spawn(async move {
                control.shutting_down.cancel();
                let timer = {
                    let control = Arc::clone(&control);
                    tokio::spawn(async move {
                        tokio::select! {
                            () = tokio::time::sleep(drain) => control.drain_expired.cancel(),
                            () = control.stopped.cancelled() => {}
                        }
                    })
                };
                control.connections.close();
                control.connections.wait().await;
                if let Some(socket) = control.socket.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    socket.remove_if_ours();
                }
                control.stopped.cancel();
                let _ = timer.await;
            });
        }
        self.control.stopped.cancelled().await;
        ShutdownReport { elapsed: start.elapsed(), drain_deadline_hit: self.control.drain_expired.is_cancelled() }
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.control.shutting_down.is_cancelled()
    }

    /// Resolves when shutdown starts (before the drain), so a service can stop taking new work
    /// of its own, e.g. stop the processes it manages before its callers are cut off.
    pub async fn shutting_down(&self) {
        self.control.shutting_down.cancelled().await;
    }

    /// Resolves once the server has fully stopped.
    pub async fn stopped(&self) {
        self.control.stopped.cancelled().await;
    }
}

pub(crate) use listener::check_path_length;
