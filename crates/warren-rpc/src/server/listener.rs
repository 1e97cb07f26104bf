//! Listening sockets: binding with Unix socket hygiene (length limit, stale files replaced,
//! live ones never stolen, 0600 file in a private directory, removal on shutdown), the accept
//! loop, the peer-credential check and the cap on connections.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::socket_file::{self, SocketFile};
use super::{Core, PeerPolicy, connection};
use crate::endpoint::{Endpoint, MAX_UNIX_PATH};
use crate::error::{BindError, ErrorCode};
use crate::hello;
use crate::server::context::PeerInfo;
use crate::unix_io::SocketRef;

/// How long a refused connection keeps reading (and dropping) the peer's hello, so that the
/// peer reads our GOODBYE rather than a reset.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

pub(crate) enum Listener {
    Unix { listener: UnixListener, path: PathBuf },
    Tcp(TcpListener),
}

/// A listening socket made by another process or part of the program: accepted on as it is.
#[derive(Debug)]
pub enum Inherited {
    /// A Unix stream socket.
    Unix(std::os::unix::net::UnixListener),
    /// A TCP socket.
    Tcp(std::net::TcpListener),
}

impl Inherited {
    /// Made non-blocking for the reactor; that flag is the socket's, shared with every process
    /// that holds it.
    pub(crate) fn into_listener(self) -> std::io::Result<Listener> {
        match self {
            Inherited::Unix(listener) => {
                listener.set_nonblocking(true)?;
                let path = listener.local_addr()?.as_pathname().map(Path::to_path_buf).unwrap_or_default();
                Ok(Listener::Unix { listener: UnixListener::from_std(listener)?, path })
            }
            Inherited::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                Ok(Listener::Tcp(TcpListener::from_std(listener)?))
            }
        }
    }
}

pub(crate) async fn bind(endpoint: &Endpoint, socket_mode: u32) -> Result<(Listener, Option<SocketFile>), BindError> {
    match endpoint {
        Endpoint::Unix(path) => {
            let (listener, file) = bind_unix(path, socket_mode)?;
            Ok((Listener::Unix { listener, path: path.clone() }, Some(file)))
        }
        Endpoint::Tcp(addr) => {
            let listener = TcpListener::bind(addr.as_str())
                .await
                .map_err(|source| BindError::Io { endpoint: endpoint.to_string(), source })?;
            Ok((Listener::Tcp(listener), None))
        }
        Endpoint::Stdio => Err(BindError::NotListenable { endpoint: endpoint.to_string() }),
    }
}

/// Fails with a message naming the limit when `path` cannot be a Unix socket address.
pub(crate) fn check_path_length(path: &Path) -> Result<(), (usize, usize)> {
    let len = path.as_os_str().len();
    if len > MAX_UNIX_PATH { Err((len, MAX_UNIX_PATH)) } else { Ok(()) }
}

fn bind_unix(path: &Path, socket_mode: u32) -> Result<(UnixListener, SocketFile), BindError> {
    let io_error = |source| BindError::Io { endpoint: format!("unix:{}", path.display()), source };
    check_path_length(path).map_err(|(len, limit)| BindError::PathTooLong { path: path.to_owned(), len, limit })?;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    socket_file::prepare_directory(dir, io_error)?;
    replace_if_stale(path)?;
    let listener = match UnixListener::bind(path) {
        Ok(listener) => listener,
        // Another server bound the path between our check and our bind.
        Err(err) if err.kind() == ErrorKind::AddrInUse => return Err(BindError::InUse { path: path.to_owned() }),
        Err(err) => return Err(io_error(err)),
    };
    let file = socket_file::claim(path, socket_mode)?;
    Ok((listener, file))
}

/// A socket file nobody accepts on is left by a crashed server: remove it. One that accepts
/// belongs to a live server: refuse, naming the path.
fn replace_if_stale(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(BindError::Io { endpoint: format!("unix:{}", path.display()), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket { path: path.to_owned() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::InUse { path: path.to_owned() }),
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
            debug!("replacing stale socket file {}", path.display());
            std::fs::remove_file(path)
                .map_err(|source| BindError::Io { endpoint: format!("unix:{}", path.display()), source })
        }
        Err(source) => Err(BindError::Io { endpoint: format!("unix:{}", path.display()), source }),
    }
}

/// Accepts until the server starts shutting down; each connection runs in its own task.
pub(crate) async fn accept_loop(core: Arc<Core>, listener: Listener) {
    let shutting_down = core.control.shutting_down.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutting_down.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Unix(stream)) => {
                let peer = unix_peer(&core, &listener, &stream);
                if let Err(refusal) = admit(&core.options.peer_policy, &peer) {
                    warn!(peer = %peer.address, uid = ?peer.uid, pid = ?peer.pid, "refused connection: {refusal}");
                    core.control.connections.spawn(refuse(
                        stream,
                        ErrorCode::PermissionDenied,
                        refusal,
                        shutting_down.clone(),
                    ));
                    continue;
                }
                let Some((slot, stream)) = take_slot(&core, &peer, stream, &shutting_down) else { continue };
                let (read, write) = match crate::unix_io::split(stream) {
                    Ok(halves) => halves,
                    Err(err) => {
                        warn!(peer = %peer.address, "cannot register the connection: {err}");
                        continue;
                    }
                };
                let socket = Some(read.socket_ref());
                core.control.connections.spawn(serve_in(slot, Arc::clone(&core), read, write, peer, socket));
            }
            Ok(Accepted::Tcp(stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let peer = PeerInfo {
                    address: format!("tcp:{addr}"),
                    uid: None,
                    gid: None,
                    pid: None,
                    connection: core.next_connection.fetch_add(1, Ordering::Relaxed),
                };
                let Some((slot, stream)) = take_slot(&core, &peer, stream, &shutting_down) else { continue };
                let (read, write) = stream.into_split();
                core.control.connections.spawn(serve_in(slot, Arc::clone(&core), read, write, peer, None));
            }
            Err(err) => {
                // Out of fds or memory: keep the listener, give existing connections a moment to
                // free resources instead of spinning.
                warn!("accept failed: {err}");
                tokio::select! {
                    () = shutting_down.cancelled() => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

enum Accepted {
    Unix(UnixStream),
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix { listener, .. } => listener.accept().await.map(|(stream, _)| Accepted::Unix(stream)),
        Listener::Tcp(listener) => listener.accept().await.map(|(stream, addr)| Accepted::Tcp(stream, addr)),
    }
}

fn unix_peer(core: &Core, listener: &Listener, stream: &UnixStream) -> PeerInfo {
    let cred = stream.peer_cred().ok();
    let address = match listener {
        Listener::Unix { path, .. } => format!("unix:{}", path.display()),
        Listener::Tcp(_) => "unix:".to_owned(),
    };
    PeerInfo {
        address,
        uid: cred.map(|c| c.uid()),
        gid: cred.map(|c| c.gid()),
        pid: cred.and_then(|c| c.pid()),
        connection: core.next_connection.fetch_add(1, Ordering::Relaxed),
    }
}

fn admit(policy: &PeerPolicy, peer: &PeerInfo) -> Result<(), String> {
    let allowed = match policy {
        PeerPolicy::AnyUser => return Ok(()),
        PeerPolicy::Users(uids) => uids,
    };
    match peer.uid {
        Some(uid) if allowed.contains(&uid) => Ok(()),
        Some(uid) => Err(format!("peer uid {uid} is not allowed on this socket (allowed: {allowed:?})")),
        None => Err("peer credentials unavailable; refusing".to_owned()),
    }
}

/// A place among the `max_connections` connections served at once for `stream`; when all are
/// taken, the stream is refused with OVERLOADED (and logged) and this is None.
fn take_slot<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    core: &Core,
    peer: &PeerInfo,
    stream: S,
    shutting_down: &CancellationToken,
) -> Option<(OwnedSemaphorePermit, S)> {
    match Arc::clone(&core.connection_slots).try_acquire_owned() {
        Ok(slot) => Some((slot, stream)),
        Err(_) => {
            let reason = full(core);
            warn!(peer = %peer.address, uid = ?peer.uid, pid = ?peer.pid, "refused connection: {reason}");
            core.control.connections.spawn(refuse(stream, ErrorCode::Overloaded, reason, shutting_down.clone()));
            None
        }
    }
}

fn full(core: &Core) -> String {
    let limit = core.options.max_connections;
    format!("server already has {limit} connections open (max_connections); try again later")
}

/// Serves a connection holding its slot, which frees up when the connection ends.
async fn serve_in<R, W>(
    slot: OwnedSemaphorePermit,
    core: Arc<Core>,
    read: R,
    write: W,
    peer: PeerInfo,
    socket: Option<SocketRef>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    connection::serve(core, read, write, peer, socket).await;
    drop(slot);
}

/// Tells a peer turned away at the door why, in the binary protocol's words, whatever it speaks.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    code: ErrorCode,
    reason: String,
    shutting_down: CancellationToken,
) {
    let _ = stream.write_all(&hello::refusal(code, &reason)).await;
    let _ = stream.shutdown().await;
    // Closing with the peer's hello unread could reset the connection (always over TCP) before
    // the peer has read the refusal; drain a little first, bounded, since these connections do
    // not count against max_connections.
    let mut sink = [0u8; 1024];
    let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    tokio::select! {
        _ = tokio::time::timeout(REFUSAL_LINGER, drain) => {}
        () = shutting_down.cancelled() => {}
    }
}
