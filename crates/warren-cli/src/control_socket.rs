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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;
use warren::SocketWatch;
use warren_rpc::{BindError, Endpoint, Running, Server};

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
        let running = match serve().bind(&Endpoint::unix(path)).await {
            Ok(running) => running,
            Err(BindError::InUse { .. }) => return Err(OpenError::AlreadyRunning(lock_path(path))),
            Err(err) => return Err(OpenError::Bind(err)),
        };
        let servers = Arc::new(Mutex::new(vec![running]));
        let healer = tokio::spawn(heal(path.to_owned(), Arc::clone(&servers), serve, say));
        Ok(ControlSocket { servers, healer, lock, lock_path: lock_path(path) })
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
        // Removed while still held, so that no other `up` can take it in between (see `lock`).
        let _ = std::fs::remove_file(&self.lock_path);
        drop(self.lock);
    }
}

fn lock_path(socket: &Path) -> PathBuf {
    socket.with_extension("lock")
}

/// Takes the instance's lock, or says who has it. `up` removes the file when it ends (still
/// holding the lock), so a lock taken on a file that was opened just before its removal is
/// a lock on nothing: the lock counts only if the path still names the locked file, and is
/// taken again otherwise.
fn lock(socket: &Path) -> Result<File, OpenError> {
    use std::os::unix::fs::MetadataExt;
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
            let bound = match private_dir::ensure(&dir) {
                Ok(()) => serve().bind(&Endpoint::unix(&path)).await.map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
            match bound {
                Ok(running) => {
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
