//! A connected Unix stream socket registered with the runtime for readability only.
//!
//! tokio's `UnixStream` registers its socket for reading and writing. Then every time the peer
//! reads what this side wrote, the socket becomes writable again and epoll wakes this side,
//! though it has nothing to write. A peer on the same CPU is often preempted for that wake-up
//! and has to be switched back to: one round trip then costs about four context switches
//! instead of two, which is most of a small call's time. Here the socket is registered for
//! reading only and written with plain non-blocking `send`s; only when one would block is a
//! second descriptor of it registered for writability, until the write goes through.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, ready};

use rustix::net::{SendAncillaryBuffer, SendFlags, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// Splits a connected tokio stream into halves that do not wake on writability.
pub(crate) fn split(stream: tokio::net::UnixStream) -> io::Result<(ReadHalf, WriteHalf)> {
    split_fd(OwnedFd::from(stream.into_std()?))
}

/// [`split`] of a connected socket's descriptor that is non-blocking, e.g. one another process
/// handed over.
pub(crate) fn split_fd(fd: OwnedFd) -> io::Result<(ReadHalf, WriteHalf)> {
    // tokio's pipe end is a readable-only registration of any descriptor: it reads with
    // read(2), which on a socket is recv(2).
    let socket = pipe::Receiver::from_owned_fd_unchecked(fd)?;
    let socket = Arc::new(Shared { fd: Mutex::new(socket), given_away: AtomicBool::new(false) });
    Ok((ReadHalf { socket: Arc::clone(&socket) }, WriteHalf { socket, writable: None }))
}

/// The socket of a connection's halves, without keeping it open.
#[derive(Debug, Clone)]
pub(crate) struct SocketRef(Weak<Shared>);

impl SocketRef {
    /// Another descriptor of the socket (close-on-exec), while either half is open.
    pub fn dup(&self) -> io::Result<OwnedFd> {
        let socket = self.0.upgrade().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        lock(&socket).as_fd().try_clone_to_owned()
    }

    /// The connection goes on in another process: closing the halves here must not shut it
    /// down.
    pub fn give_away(&self) {
        if let Some(socket) = self.0.upgrade() {
            socket.given_away.store(true, Ordering::SeqCst);
        }
    }
}

/// One descriptor for both halves (a connection costs one, as with tokio's own halves), held
/// by each half while it uses it: a read or a `send`, never across an await.
type Socket = Arc<Shared>;

#[derive(Debug)]
pub(crate) struct Shared {
    fd: Mutex<pipe::Receiver>,
    /// Handed over to another process ([`SocketRef::give_away`]).
    given_away: AtomicBool,
}

fn lock(socket: &Socket) -> MutexGuard<'_, pipe::Receiver> {
    socket.fd.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub(crate) struct ReadHalf {
    socket: Socket,
}

#[derive(Debug)]
pub(crate) struct WriteHalf {
    socket: Socket,
    /// Another descriptor of the socket, registered for writability while a write waits for
    /// room; dropped (deregistered, closed) once a write goes through whole.
    writable: Option<pipe::Sender>,
}

impl ReadHalf {
    pub fn socket_ref(&self) -> SocketRef {
        SocketRef(Arc::downgrade(&self.socket))
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.socket)).poll_read(cx, buf)
    }
}

impl WriteHalf {
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        mut send: impl FnMut(&pipe::Receiver) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let sent = send(&lock(&self.socket));
            match sent {
                Ok(n) => {
                    if n == len {
                        self.writable = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
            let writable = match &mut self.writable {
                Some(writable) => writable,
                None => {
                    let fd = lock(&self.socket).as_fd().try_clone_to_owned()?;
                    self.writable.insert(pipe::Sender::from_owned_fd_unchecked(fd)?)
                }
            };
            ready!(writable.poll_write_ready(cx))?;
            // Ready may be an old edge: a write that would still block forgets it, so that the
            // next poll waits for a new one.
            match writable.try_io(|| send(&lock(&self.socket))) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
        self.get_mut().poll_send(cx, buf.len(), |socket| Ok(rustix::net::send(socket, buf, SendFlags::NOSIGNAL)?))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        self.get_mut().poll_send(cx, len, |socket| {
            let mut no_control = SendAncillaryBuffer::default();
            Ok(rustix::net::sendmsg(socket, bufs, &mut no_control, SendFlags::NOSIGNAL)?)
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(rustix::net::shutdown(&*lock(&self.socket), Shutdown::Write)?))
    }
}

impl Drop for WriteHalf {
    // As tokio's own write half does: the read half keeps the socket open, and the peer must
    // still see the end of what this side sends.
    fn drop(&mut self) {
        if self.socket.given_away.load(Ordering::SeqCst) {
            return;
        }
        let _ = rustix::net::shutdown(&*lock(&self.socket), Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_full_socket_waits_for_room() {
        let (a, b) = tokio::net::UnixStream::pair().expect("pair");
        let (mut a_read, mut a_write) = split(a).expect("split");
        let (mut b_read, mut b_write) = split(b).expect("split");
        a_write.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b_read.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        // Far more than a socket buffer holds: the writer has to wait for the reader.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let writer = tokio::spawn(async move {
            b_write.write_all(&big).await.expect("write");
            b_write.shutdown().await.expect("shutdown");
        });
        let mut all = Vec::new();
        a_read.read_to_end(&mut all).await.expect("read");
        writer.await.expect("writer");
        assert!(all == expected, "{} bytes back", all.len());
        drop(a_write);
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = tokio::net::UnixStream::pair().expect("pair");
        let (_a_read, mut a_write) = split(a).expect("split");
        drop(b);
        let err = a_write.write_all(b"anyone?").await.expect_err("peer gone");
        assert!(matches!(err.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset), "{err}");
    }
}
