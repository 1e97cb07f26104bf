//! A connected Unix stream socket registered with the runtime for readability only.
//!
//! tokio's `UnixStream` registers its socket for reading and writing. Then every time the peer
//! reads what this side wrote, the socket becomes writable again and epoll wakes this side,
//! though it has nothing to write. A peer on the same CPU is often preempted for that wake-up
//! and has to be switched back to: one round trip then costs about four context switches
//! instead of two, which is most of a small call's time. Here the socket is registered for
//! reading only and written with plain non-blocking `send`s; only when one would block is a
//! second descriptor of it registered for writability, until the write goes through.
//!
//! A connection upgraded to shared memory (docs/SHM.md) keeps these halves: each moves to its
//! ring at its next poll, so the frame reader, the stall guard and the writer above it are the
//! same code and the same instantiation on both transports.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, ready};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, Shutdown,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use crate::shm::stream::{ShmRead, ShmWrite};

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
    let socket = Arc::new(Shared {
        fd: Mutex::new(socket),
        given_away: AtomicBool::new(false),
        mode: AtomicU8::new(mode::PLAIN),
        passed: Mutex::default(),
        rings: Mutex::default(),
    });
    Ok((ReadHalf { socket: Arc::clone(&socket), ring: None }, WriteHalf { socket, writable: None, ring: None }))
}

/// What a connection's socket is used for now.
mod mode {
    /// Bytes, read with `read(2)`.
    pub const PLAIN: u8 = 0;
    /// Bytes and the descriptors passed with them (a client's hello that offered shared memory).
    pub const COLLECTING: u8 = 1;
    /// Frames go through the rings: each half takes its own at its next poll.
    pub const UPGRADED: u8 = 2;
}

/// Descriptors that came with the bytes read while collecting.
#[derive(Debug, Default)]
pub(crate) struct Passed {
    pub fds: Vec<OwnedFd>,
    /// The kernel had more for us than fitted (or than this process may hold): it closed them.
    pub truncated: bool,
}

/// The most descriptors one read takes: what a shared-memory WELCOME carries (docs/SHM.md §2.4).
const MAX_PASSED: usize = 5;

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

    fn shared(&self) -> io::Result<Arc<Shared>> {
        self.0.upgrade().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// The uid of the process at the other end (SO_PEERCRED).
    pub fn peer_uid(&self) -> io::Result<u32> {
        let socket = self.shared()?;
        let cred = rustix::net::sockopt::socket_peercred(&*lock(&socket))?;
        Ok(cred.uid.as_raw())
    }

    /// From now on, reads keep the descriptors passed with the bytes, until [`take_passed`].
    ///
    /// [`take_passed`]: SocketRef::take_passed
    pub fn collect_passed(&self) -> io::Result<()> {
        let socket = self.shared()?;
        *lock_passed(&socket) = Passed::default();
        socket.mode.store(mode::COLLECTING, Ordering::Release);
        Ok(())
    }

    /// Back to plain reads; what was passed since [`collect_passed`](SocketRef::collect_passed).
    pub fn take_passed(&self) -> Passed {
        let Ok(socket) = self.shared() else { return Passed::default() };
        let _ = socket.mode.compare_exchange(mode::COLLECTING, mode::PLAIN, Ordering::AcqRel, Ordering::Acquire);
        std::mem::take(&mut *lock_passed(&socket))
    }

    /// Sends `bytes` with `fds` attached, without waiting: how many bytes went (the descriptors
    /// went with the first), or `WouldBlock` if none did. Only before anything else is written.
    pub fn send_with_fds(&self, bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<usize> {
        let socket = self.shared()?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors for one message"));
        }
        let sent = rustix::net::sendmsg(&*lock(&socket), &[IoSlice::new(bytes)], &mut control, SendFlags::NOSIGNAL);
        Ok(sent?)
    }

    /// Moves both halves to the rings: each takes its own at its next poll. Nothing must be
    /// left to read on the socket, nor half written to it.
    pub fn upgrade(&self, read: ShmRead, write: ShmWrite) -> io::Result<()> {
        let socket = self.shared()?;
        *socket.rings.lock().unwrap_or_else(PoisonError::into_inner) = (Some(read), Some(write));
        socket.mode.store(mode::UPGRADED, Ordering::Release);
        Ok(())
    }

    /// Whether the connection's frames go through shared memory.
    pub fn is_upgraded(&self) -> bool {
        self.0.upgrade().is_some_and(|socket| socket.mode.load(Ordering::Acquire) == mode::UPGRADED)
    }
}

fn lock_passed(socket: &Shared) -> MutexGuard<'_, Passed> {
    socket.passed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One descriptor for both halves (a connection costs one, as with tokio's own halves), held
/// by each half while it uses it: a read or a `send`, never across an await.
type Socket = Arc<Shared>;

#[derive(Debug)]
pub(crate) struct Shared {
    fd: Mutex<pipe::Receiver>,
    /// Handed over to another process ([`SocketRef::give_away`]).
    given_away: AtomicBool,
    /// One of [`mode`]'s.
    mode: AtomicU8,
    passed: Mutex<Passed>,
    /// The rings of an upgraded connection, until each half takes its own.
    rings: Mutex<(Option<ShmRead>, Option<ShmWrite>)>,
}

impl Shared {
    fn upgraded(&self) -> bool {
        self.mode.load(Ordering::Acquire) == mode::UPGRADED
    }

    fn take_rings(&self) -> MutexGuard<'_, (Option<ShmRead>, Option<ShmWrite>)> {
        self.rings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock(socket: &Socket) -> MutexGuard<'_, pipe::Receiver> {
    socket.fd.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
pub(crate) struct ReadHalf {
    socket: Socket,
    /// Its ring, once the connection is upgraded.
    ring: Option<ShmRead>,
}

#[derive(Debug)]
pub(crate) struct WriteHalf {
    socket: Socket,
    /// Another descriptor of the socket, registered for writability while a write waits for
    /// room; dropped (deregistered, closed) once a write goes through whole.
    writable: Option<pipe::Sender>,
    /// Its ring, once the connection is upgraded.
    ring: Option<ShmWrite>,
}

impl ReadHalf {
    pub fn socket_ref(&self) -> SocketRef {
        SocketRef(Arc::downgrade(&self.socket))
    }
}

impl ReadHalf {
    /// A read that keeps the descriptors passed with the bytes (at most [`MAX_PASSED`]).
    fn poll_recv_with_fds(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let socket = lock(&self.socket);
            ready!(socket.poll_read_ready(cx))?;
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let unfilled = buf.initialize_unfilled();
            let received = socket.try_io(|| {
                let mut iov = [io::IoSliceMut::new(unfilled)];
                Ok(rustix::net::recvmsg(&*socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?)
            });
            let received = match received {
                Ok(received) => received,
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(err) => return Poll::Ready(Err(err)),
            };
            let mut passed = lock_passed(&self.socket);
            passed.truncated |= received.flags.contains(ReturnFlags::CTRUNC);
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = message {
                    passed.fds.extend(fds);
                }
            }
            buf.advance(received.bytes);
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(ring) = &mut this.ring {
            return Pin::new(ring).poll_read(cx, buf);
        }
        // One load of the mode per read of the socket, the hot path of every other connection.
        match this.socket.mode.load(Ordering::Acquire) {
            mode::UPGRADED => match this.socket.take_rings().0.take() {
                Some(ring) => Pin::new(this.ring.insert(ring)).poll_read(cx, buf),
                None => Poll::Ready(Err(io::Error::other("the read half's ring was taken twice"))),
            },
            mode::COLLECTING => this.poll_recv_with_fds(cx, buf),
            _ => Pin::new(&mut *lock(&this.socket)).poll_read(cx, buf),
        }
    }
}

impl WriteHalf {
    /// Its ring, if the connection is upgraded.
    fn ring(&mut self) -> Option<Pin<&mut ShmWrite>> {
        if self.ring.is_none() && self.socket.upgraded() {
            self.ring = self.socket.take_rings().1.take();
        }
        self.ring.as_mut().map(Pin::new)
    }

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
        let this = self.get_mut();
        if let Some(ring) = this.ring() {
            return ring.poll_write(cx, buf);
        }
        // MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
        this.poll_send(cx, buf.len(), |socket| Ok(rustix::net::send(socket, buf, SendFlags::NOSIGNAL)?))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(ring) = this.ring() {
            return ring.poll_write_vectored(cx, bufs);
        }
        let len = bufs.iter().map(|buf| buf.len()).sum();
        this.poll_send(cx, len, |socket| {
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(ring) = this.ring() {
            return ring.poll_shutdown(cx);
        }
        Poll::Ready(Ok(rustix::net::shutdown(&*lock(&this.socket), Shutdown::Write)?))
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
