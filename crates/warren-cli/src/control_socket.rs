//! `warren up`'s control socket: claimed with a lock, served in a private directory, and bound
//! again when it disappears.
//!
//! The lock (`flock` on a file beside the socket, held for the life of `up`) is what tells a
//! second `up` that an instance runs: a socket file alone can be deleted by a `/tmp` cleaner,
//! and a second `up` that trusted it would start a duplicate of every program. A deleted or
//! replaced socket file is noticed as the children's are (`warren::SocketWatch`: inotify on the
//! directory, backed by a periodic check) and bound again; connections made before keep their
//! server.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;
use warren::SocketWatch;
use warren_rpc::{BindError, Inherited, Running, Server};

use crate::private_dir::{self, UnsafeDir};

/// How long to wait before binding again after a failed attempt.
const RETRY: Duration = Duration::from_secs(1);

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another `up` holds the lock (or, without it, answers on the socket).
    #[error("an instance is already running here (it holds {0})")]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    Unsafe(#[from] UnsafeDir),
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve the control socket")]
    Bind(#[source] BindError),
}

/// The served control socket; [`ControlSocket::shutdown`] ends every server bound for it.
pub struct ControlSocket {
    servers: Arc<Mutex<Vec<Running>>>,
    healer: JoinHandle<()>,
    /// Held, not read: the lock lasts as long as the open file.
    lock: File,
    lock_path: PathBuf,
    /// The socket served now, kept for a hand-over to a new image, and which file it made.
    bound: Arc<Mutex<Bound>>,
}

/// warren binds the control socket itself (rather than the RPC server) to keep a descriptor
/// of it that can cross an upgrade's exec.
struct Bound {
    listener: UnixListener,
    path: PathBuf,
    file: (u64, u64),
}

impl ControlSocket {
    /// Locks, then binds `path` with a server made by `serve` (again each time it is rebound);
    /// `say` tells the user when it is lost and bound again.
    pub async fn open(
        path: &Path,
        serve: impl Fn() -> Server + Send + Sync + 'static,
        say: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Self, OpenError> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        private_dir::ensure(dir)?;
        let lock = lock(path)?;
        let bound = match bind(path) {
            Ok(bound) => bound,
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(OpenError::AlreadyRunning(lock_path(path)));
            }
            Err(err) => {
                return Err(OpenError::Bind(BindError::Io { endpoint: path.display().to_string(), source: err }));
            }
        };
        Self::serve(bound, lock, serve, say).await
    }

    /// The control socket an earlier image served, from the descriptors [`carried`](Self::carried)
    /// made: its socket and its lock.
    pub async fn adopt(
        path: &Path,
        listener: OwnedFd,
        lock: OwnedFd,
        serve: impl Fn() -> Server + Send + Sync + 'static,
        say: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Self, OpenError> {
        let io = |source| OpenError::Bind(BindError::Io { endpoint: path.display().to_string(), source });
        let file = std::fs::metadata(path).map(|m| (m.dev(), m.ino())).map_err(io)?;
        let bound = Bound { listener: UnixListener::from(listener), path: path.to_owned(), file };
        Self::serve(bound, File::from(lock), serve, say).await
    }

    async fn serve(
        bound: Bound,
        lock: File,
        serve: impl Fn() -> Server + Send + Sync + 'static,
        say: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Self, OpenError> {
        let path = bound.path.clone();
        let running = serve_on(&bound, &serve).await.map_err(OpenError::Bind)?;
        let servers = Arc::new(Mutex::new(vec![running]));
        let bound = Arc::new(Mutex::new(bound));
        let healer = tokio::spawn(heal(path.clone(), Arc::clone(&servers), Arc::clone(&bound), serve, say));
        Ok(ControlSocket { servers, healer, lock, lock_path: lock_path(&path), bound })
    }

    /// Copies of the socket and of the lock, to cross an upgrade's exec ([`adopt`](Self::adopt)).
    pub fn carried(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        Ok((bound.listener.as_fd().try_clone_to_owned()?, self.lock.as_fd().try_clone_to_owned()?))
    }

    /// Stops binding again, then shuts every server down (letting calls finish for `drain`).
    pub async fn shutdown(self, drain: Duration) {
        self.healer.abort();
        let servers = std::mem::take(&mut *self.servers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut stopping = tokio::task::JoinSet::new();
        for server in servers {
            stopping.spawn(async move { server.shutdown(drain).await });
        }
        while stopping.join_next().await.is_some() {}
        {
            let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
            let ours = std::fs::symlink_metadata(&bound.path).is_ok_and(|m| (m.dev(), m.ino()) == bound.file);
            if ours {
                let _ = std::fs::remove_file(&bound.path);
            }
        }
        // Removed while still held, so that no other `up` can take it in between (see `lock`).
        let _ = std::fs::remove_file(&self.lock_path);
        drop(self.lock);
    }
}

/// Binds `path`, removing a file an earlier run left there (nobody accepts on it); one that
/// answers is in use (`AddrInUse`).
fn bind(path: &Path) -> std::io::Result<Bound> {
    let listener = match UnixListener::bind(path) {
        Ok(listener) => listener,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            warren::listen::remove_stale_socket(path)?;
            UnixListener::bind(path)?
        }
        Err(err) => return Err(err),
    };
    // Only the owner may drive the instance (the directory is private too).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let metadata = std::fs::metadata(path)?;
    Ok(Bound { listener, path: path.to_owned(), file: (metadata.dev(), metadata.ino()) })
}

/// A server made by `serve`, accepting on `bound`'s socket.
async fn serve_on(bound: &Bound, serve: &impl Fn() -> Server) -> Result<Running, BindError> {
    let io = |source| BindError::Io { endpoint: bound.path.display().to_string(), source };
    let listener = bound.listener.try_clone().map_err(io)?;
    serve().bind_with(None, vec![Inherited::Unix(listener)]).await
}

fn lock_path(socket: &Path) -> PathBuf {
    socket.with_extension("lock")
}

/// Takes the instance's lock, or says who has it. `up` removes the file when it ends (still
/// holding the lock), so a lock taken on a file that was opened just before its removal is
/// a lock on nothing: the lock counts only if the path still names the locked file, and is
/// taken again otherwise.
fn lock(socket: &Path) -> Result<File, OpenError> {
    let path = lock_path(socket);
    let io = |source| OpenError::Lock { path: path.clone(), source };
    for _ in 0..LOCK_TRIES {
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(OpenError::AlreadyRunning(path)),
            Err(errno) => return Err(io(errno.into())),
        }
        let locked = file.metadata().map_err(io)?;
        match std::fs::metadata(&path) {
            Ok(named) if (named.dev(), named.ino()) == (locked.dev(), locked.ino()) => return Ok(file),
            _ => continue,
        }
    }
    Err(io(std::io::Error::other("the lock file kept being replaced while it was locked")))
}

/// Attempts at a lock whose file is removed under it: each one means another `up` ended
/// just then, which cannot go on for long.
const LOCK_TRIES: usize = 10;

/// Binds `path` again whenever the file there stops being the one a server of ours made.
async fn heal(
    path: PathBuf,
    servers: Arc<Mutex<Vec<Running>>>,
    held: Arc<Mutex<Bound>>,
    serve: impl Fn() -> Server + Send + Sync + 'static,
    say: impl Fn(&str) + Send + Sync + 'static,
) {
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    let watch = SocketWatch::start(&dir);
    loop {
        let lost = watch.watch(&path).await;
        match lost {
            Ok(lost) => say(&format!("{lost}; binding the control socket again")),
            Err(_) => return,
        }
        loop {
            let bound = match private_dir::ensure(&dir)
                .map_err(|err| err.to_string())
                .and_then(|()| bind(&path).map_err(|err| err.to_string()))
            {
                Ok(bound) => {
                    serve_on(&bound, &serve).await.map(|running| (bound, running)).map_err(|err| err.to_string())
                }
                Err(err) => Err(err),
            };
            match bound {
                Ok((bound, running)) => {
                    *held.lock().unwrap_or_else(PoisonError::into_inner) = bound;
                    say(&format!("control socket {} bound again", path.display()));
                    servers.lock().unwrap_or_else(PoisonError::into_inner).push(running);
                    break;
                }
                Err(err) => {
                    warn!("cannot bind the control socket again (retrying in {RETRY:?}): {err}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}
