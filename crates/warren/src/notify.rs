//! Readiness over systemd's notify protocol: the host binds a datagram socket and passes its
//! path in `NOTIFY_SOCKET`; the child sends `READY=1` (and `STATUS=…`, `STOPPING=1`) there.
//!
//! A separate channel, not a line on stdout, so nothing a child prints can fake or break its
//! handshake (go-plugin#164), and programs written for systemd `Type=notify` work unmodified.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

/// What one notification said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    /// `READY=1`: the child is ready.
    pub ready: bool,
    /// `STOPPING=1`: the child is shutting down.
    pub stopping: bool,
    /// `STATUS=...`: a free-form status line.
    pub status: Option<String>,
    /// `WATCHDOG=1`: the child is alive (systemd's watchdog keep-alive).
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the child asks to be treated as hung.
    pub watchdog_trigger: bool,
}

impl Notice {
    /// Reads the `KEY=value` lines of one datagram; unknown keys are ignored.
    pub fn parse(datagram: &[u8]) -> Notice {
        let mut notice = Notice::default();
        for line in String::from_utf8_lossy(datagram).lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => notice.ready = true,
                Some(("STOPPING", "1")) => notice.stopping = true,
                Some(("STATUS", status)) => notice.status = Some(status.to_owned()),
                Some(("WATCHDOG", "1")) => notice.watchdog = true,
                Some(("WATCHDOG", "trigger")) => notice.watchdog_trigger = true,
                _ => {}
            }
        }
        notice
    }
}

/// What a child has said on its notify socket so far, for whoever asks later (`status`, the
/// supervisor's watchdog).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyState {
    /// The last `STATUS=` text.
    pub status: Option<String>,
    /// How many `WATCHDOG=1` keep-alives have come.
    pub watchdog_pings: u64,
    /// It sent `WATCHDOG=trigger`.
    pub watchdog_triggered: bool,
}

impl NotifyState {
    /// Takes in one notice; true if it changed anything worth waking a watcher for.
    pub fn record(&mut self, notice: &Notice) -> bool {
        let before = (self.watchdog_pings, self.watchdog_triggered, self.status.clone());
        if let Some(status) = &notice.status {
            self.status = Some(status.clone());
        }
        self.watchdog_pings += u64::from(notice.watchdog);
        self.watchdog_triggered |= notice.watchdog_trigger;
        before != (self.watchdog_pings, self.watchdog_triggered, self.status.clone())
    }
}

/// The host's end: one per child, in the private runtime directory.
#[derive(Debug)]
pub struct NotifyListener {
    socket: UnixDatagram,
    path: PathBuf,
    /// Identity of the socket file we created: a restarted child of the same name gets a new
    /// file at the same path, which removing ours must not touch.
    inode: (u64, u64),
}

impl NotifyListener {
    pub fn bind(path: &Path) -> io::Result<NotifyListener> {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(NotifyListener { socket, path: path.to_owned(), inode: (meta.dev(), meta.ino()) })
    }

    /// Listens again, in a new image of this process, on the socket an earlier image bound
    /// (a hand-over); datagrams queued meanwhile are still there.
    pub fn adopt(fd: std::os::fd::OwnedFd, path: &Path) -> io::Result<NotifyListener> {
        let socket = std::os::unix::net::UnixDatagram::from(fd);
        socket.set_nonblocking(true)?;
        let socket = UnixDatagram::from_std(socket)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(NotifyListener { socket, path: path.to_owned(), inode: (meta.dev(), meta.ino()) })
    }

    /// Its socket, for a hand-over.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.socket.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn next(&self) -> io::Result<Notice> {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).await?;
        Ok(Notice::parse(&buf[..n]))
    }
}

impl NotifyListener {
    /// Removes the socket file if it is still the one this listener created.
    pub fn remove_file(&self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.remove_file();
    }
}

/// The child's end: sends `message` to `$NOTIFY_SOCKET` if it is set (a path, or `@name` for
/// an abstract socket as systemd uses). Returns whether a notify socket was there.
pub fn send(message: &str) -> Result<bool, (String, io::Error)> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(false) };
    let target = target.to_string_lossy().into_owned();
    let socket = std::os::unix::net::UnixDatagram::unbound().map_err(|e| (target.clone(), e))?;
    let sent = if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &target)
    };
    sent.map(|_| true).map_err(|e| (target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_systemd_keys() {
        let notice = Notice::parse(b"READY=1\nSTATUS=listening on 7000\nMAINPID=42\n");
        let expected = Notice { ready: true, status: Some("listening on 7000".into()), ..Notice::default() };
        assert_eq!(notice, expected);
        assert!(Notice::parse(b"STOPPING=1").stopping);
        assert!(!Notice::parse(b"READY=0").ready);
        assert!(Notice::parse(b"WATCHDOG=1").watchdog);
        assert!(Notice::parse(b"WATCHDOG=trigger").watchdog_trigger);
    }

    #[test]
    fn the_state_keeps_the_last_status_and_counts_keepalives() {
        let mut state = NotifyState::default();
        assert!(state.record(&Notice::parse(b"STATUS=warming up")));
        assert!(state.record(&Notice::parse(b"WATCHDOG=1")));
        assert!(!state.record(&Notice::parse(b"STOPPING=1")), "nothing a watcher needs");
        assert!(state.record(&Notice::parse(b"WATCHDOG=1\nSTATUS=serving")));
        assert_eq!(state, NotifyState { status: Some("serving".into()), watchdog_pings: 2, watchdog_triggered: false });
    }
}
