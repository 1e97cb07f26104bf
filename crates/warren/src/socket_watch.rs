//! Notices a child's socket file deleted or replaced while the child runs.
//!
//! A `/tmp` cleaner (systemd-tmpfiles, tmpreaper) may delete a socket it thinks is old. The
//! child keeps its listening socket and the host keeps its connection, so nothing fails at
//! once — but no new client can reach the child until it binds again. The host watches its
//! runtime directory with one inotify instance (not one per child: the default limit is 128
//! instances per user) and, on any change there, checks every watched file's device and inode
//! against what they were when the host connected. A check every few seconds backs inotify up
//! (events can overflow), and replaces it when inotify cannot be had.
//!
//! This module only observes; whether a vanished file was expected (the child removes its own
//! socket when it shuts down) is decided by the child's task in `child.rs`.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// What became of a socket file the host connected through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketLost {
    /// Nothing is at the path any more.
    Deleted(PathBuf),
    /// Something else is at the path now (another socket, a file, a link).
    Replaced(PathBuf),
}

impl SocketLost {
    /// The socket file's path.
    pub fn path(&self) -> &Path {
        match self {
            SocketLost::Deleted(path) | SocketLost::Replaced(path) => path,
        }
    }
}

impl std::fmt::Display for SocketLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketLost::Deleted(path) => write!(f, "socket file {} was deleted", path.display()),
            SocketLost::Replaced(path) => write!(f, "socket file {} was replaced by another file", path.display()),
        }
    }
}

/// How often files are checked without an inotify event: a backstop when inotify works, the
/// only means when it does not.
const RECHECK_WITH_INOTIFY: Duration = Duration::from_secs(5);
const RECHECK_WITHOUT: Duration = Duration::from_secs(1);

/// Watches socket files in one directory (a host's runtime directory, a supervisor's control
/// socket directory); dropping it ends the watching task.
#[derive(Debug)]
pub struct SocketWatch {
    registrations: mpsc::UnboundedSender<Watched>,
}

#[derive(Debug)]
struct Watched {
    path: PathBuf,
    identity: (u64, u64),
    /// Fired once with what happened; a closed receiver means the child no longer cares.
    gone: oneshot::Sender<SocketLost>,
}

impl SocketWatch {
    /// Starts watching `dir` on the current runtime.
    pub fn start(dir: &Path) -> SocketWatch {
        let (registrations, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(dir.to_path_buf(), rx));
        SocketWatch { registrations }
    }

    /// Watches the socket file at `path` as it is now; the receiver fires if it goes or is
    /// replaced. If it is already gone, it fires at once.
    pub fn watch(&self, path: &Path) -> oneshot::Receiver<SocketLost> {
        let (gone, rx) = oneshot::channel();
        match identity(path) {
            Some(identity) => {
                let _ = self.registrations.send(Watched { path: path.to_path_buf(), identity, gone });
            }
            None => {
                let _ = gone.send(SocketLost::Deleted(path.to_path_buf()));
            }
        }
        rx
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
}

/// What is at the path now, if it is not the file that was watched.
fn check(watched: &Watched) -> Option<SocketLost> {
    match identity(&watched.path) {
        None => Some(SocketLost::Deleted(watched.path.clone())),
        Some(now) if now != watched.identity => Some(SocketLost::Replaced(watched.path.clone())),
        Some(_) => None,
    }
}

async fn run(dir: PathBuf, mut registrations: mpsc::UnboundedReceiver<Watched>) {
    let mut inotify = DirEvents::open(&dir);
    let mut watched: Vec<Watched> = Vec::new();
    let period = if inotify.is_some() { RECHECK_WITH_INOTIFY } else { RECHECK_WITHOUT };
    let mut recheck = tokio::time::interval(period);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            registration = registrations.recv() => match registration {
                Some(registration) => watched.push(registration),
                None => return,
            },
            () = async {
                match inotify.as_mut() {
                    Some(events) => events.changed().await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = recheck.tick() => {
                if inotify.as_ref().is_some_and(|events| events.lost_its_watch) {
                    // The directory itself went away; the host makes it again at its next
                    // spawn, and then it can be watched again.
                    inotify = DirEvents::open(&dir);
                }
            }
        }
        let mut still = Vec::with_capacity(watched.len());
        for entry in watched.drain(..) {
            if entry.gone.is_closed() {
                continue;
            }
            match check(&entry) {
                Some(what) => {
                    let _ = entry.gone.send(what);
                }
                None => still.push(entry),
            }
        }
        watched = still;
    }
}

/// Changes in one directory, as inotify reports them.
struct DirEvents {
    fd: AsyncFd<OwnedFd>,
    /// The kernel dropped the watch (the directory was deleted or its filesystem unmounted).
    lost_its_watch: bool,
}

impl DirEvents {
    fn open(dir: &Path) -> Option<DirEvents> {
        let open = || -> std::io::Result<DirEvents> {
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
            let flags = inotify::WatchFlags::DELETE
                | inotify::WatchFlags::MOVED_FROM
                | inotify::WatchFlags::MOVED_TO
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::DELETE_SELF
                | inotify::WatchFlags::MOVE_SELF
                | inotify::WatchFlags::ONLYDIR
                | inotify::WatchFlags::DONT_FOLLOW;
            inotify::add_watch(&fd, dir, flags)?;
            Ok(DirEvents { fd: crate::sys::async_fd(fd)?, lost_its_watch: false })
        };
        match open() {
            Ok(events) => Some(events),
            Err(err) => {
                let every = RECHECK_WITHOUT.as_secs();
                warn!("cannot watch {} with inotify ({err}); checking its socket files every {every} s", dir.display());
                None
            }
        }
    }

    /// Waits for one or more events and consumes them all.
    async fn changed(&mut self) {
        if self.lost_its_watch {
            return std::future::pending().await;
        }
        let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let Ok(mut ready) = self.fd.readable().await else { return std::future::pending().await };
            let mut reader = inotify::Reader::new(self.fd.get_ref(), &mut buffer);
            let mut any = false;
            loop {
                match reader.next() {
                    Ok(event) => {
                        any = true;
                        if event.events().contains(inotify::ReadFlags::IGNORED) {
                            self.lost_its_watch = true;
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => {
                        ready.clear_ready();
                        break;
                    }
                    Err(err) => {
                        debug!("reading inotify events: {err}");
                        ready.clear_ready();
                        break;
                    }
                }
            }
            if any {
                return;
            }
        }
    }
}
