//! A connection's two rings as a byte stream (docs/SHM.md §5): [`ShmRead`] is an `AsyncRead`
//! and [`ShmWrite`] an `AsyncWrite`, so the frame reader and the writer task run over them
//! unchanged. A half that finds its ring empty (or full) parks and waits on its bell, an
//! eventfd the peer rings; it also watches the connection's socket, which carries nothing
//! after the upgrade but its end (the peer is gone) or a GOODBYE (the peer found the segment
//! corrupt). Before it parks, a half may look again for a few microseconds while the peer
//! can be running on another CPU (`spin`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use rustix::net::{RecvFlags, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use super::park::{Parker, Ringer};
use super::ring::{CPU_AFTER_SLEEP, Consumer, Direction, Layout, Poisoned, Producer};
use super::spin::{self, Moment, Spinner, Step};
use super::sys::Segment;

/// Which end of the connection this side is: the client writes the client-to-server ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes the client-to-server ring, reads the other.
    Client,
    /// Writes the server-to-client ring, reads the other.
    Server,
}

/// The bells of one side (eventfds): one per half, so that a ring is only ever for the half
/// that waits on that bell. (With one bell per side, whichever half read the bell first took
/// the other's ring: the halves' tasks wait apart, and a ring drained by the read half never
/// woke a write half parked for room. `shm::stream::tests` caught it.)
#[derive(Debug)]
pub struct Bells {
    /// Rung by the peer's writer when it has published: this side's read half waits on it.
    pub data: OwnedFd,
    /// Rung by the peer's reader when it has freed room: this side's write half waits on it.
    pub room: OwnedFd,
    /// The peer's data bell: this side's write half rings it.
    pub peer_data: OwnedFd,
    /// The peer's room bell: this side's read half rings it.
    pub peer_room: OwnedFd,
}

impl Bells {
    /// A new set, non-blocking: the creator keeps the first and gives the peer the second.
    pub fn new() -> io::Result<(Bells, Bells)> {
        let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
        let bell = || rustix::event::eventfd(0, flags);
        let (client_data, client_room, server_data, server_room) = (bell()?, bell()?, bell()?, bell()?);
        let client = Bells {
            data: client_data.try_clone()?,
            room: client_room.try_clone()?,
            peer_data: server_data.try_clone()?,
            peer_room: server_room.try_clone()?,
        };
        let server = Bells { data: server_data, room: server_room, peer_data: client_data, peer_room: client_room };
        Ok((client, server))
    }
}

impl Bells {
    /// Checks that bells a peer passed are eventfds, and makes them non-blocking (the peer
    /// made them so; a peer that did not would make this side's reads of them block).
    pub fn check(&self) -> io::Result<()> {
        for bell in [&self.data, &self.room, &self.peer_data, &self.peer_room] {
            let what = std::fs::read_link(format!("/proc/self/fd/{}", bell.as_raw_fd()))?;
            if what.as_os_str() != "anon_inode:[eventfd]" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not an eventfd", what.display()),
                ));
            }
            let flags = rustix::fs::fcntl_getfl(bell)?;
            rustix::fs::fcntl_setfl(bell, flags | rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok(())
    }
}

/// Reads what the peer writes into its ring.
#[derive(Debug)]
pub struct ShmRead {
    consumer: Consumer,
    wait: Wait,
    /// The peer ended the connection: what is left in the ring is read, then end of stream.
    ended: bool,
    /// The write half's publishes when data last came: fewer than now means an answer is owed.
    sent_seen: u64,
}

/// Writes into this side's ring.
#[derive(Debug)]
pub struct ShmWrite {
    producer: Producer,
    wait: Wait,
    socket: OwnedFd,
}

/// What a half that found nothing does next (`Wait::spin`).
enum Looking {
    /// Look again now, within this poll.
    Again,
    /// Looked long enough in this poll: the task has yielded (woken itself), `Pending`.
    Yielded,
    /// The spin is over, or none began: park.
    Over,
}

/// What the two halves of one side tell each other, for the spin's rules (`spin`).
#[derive(Debug, Default)]
struct Side {
    /// Publishes by the write half so far: the read half spins only while an answer is owed.
    sent: AtomicU64,
    /// The read half parked with nothing owed, and would spin once something is: the write
    /// half's next publish wakes it (`read_waker`) so that it waits for the answer spinning,
    /// rather than parked since before the question.
    reader_idle: AtomicBool,
    read_waker: futures_util::task::AtomicWaker,
}

/// What a half needs to spin, park, be rung, ring, and notice the peer's end.
#[derive(Debug)]
struct Wait {
    segment: Arc<Segment>,
    /// This half's `sleep` word and the peer half's, as offsets.
    own_sleep: usize,
    peer_sleep: usize,
    /// This side's two `cpu` words (one per line it owns), as offsets.
    own_cpus: [usize; 2],
    side: Arc<Side>,
    spinner: Spinner,
    /// When this poll began looking, while it spins within one poll.
    looking_since: Option<Instant>,
    parker: Parker,
    ringer: Ringer,
    /// The bell this half waits on, registered for reading.
    bell: pipe::Receiver,
    /// The bell of the peer half this one rings.
    peer_bell: OwnedFd,
    /// The connection's socket, registered for reading: its end, or a GOODBYE.
    socket: pipe::Receiver,
}

/// The stream halves of one side of a segment. Within a tokio runtime.
pub fn halves(
    segment: Arc<Segment>,
    layout: &Layout,
    role: Role,
    bells: Bells,
    socket: BorrowedFd<'_>,
) -> io::Result<(ShmRead, ShmWrite)> {
    let (reads, writes) = match role {
        Role::Client => (Direction::ServerToClient, Direction::ClientToServer),
        Role::Server => (Direction::ClientToServer, Direction::ServerToClient),
    };
    let consumer = Consumer::new(Arc::clone(&segment), layout, reads);
    let producer = Producer::new(Arc::clone(&segment), layout, writes);
    let registered = |fd: BorrowedFd<'_>| pipe::Receiver::from_owned_fd_unchecked(fd.try_clone_to_owned()?);
    let own_cpus = [consumer.sleep_words().0 + CPU_AFTER_SLEEP, producer.sleep_words().0 + CPU_AFTER_SLEEP];
    let side = Arc::new(Side::default());
    let peer_pid = rustix::net::sockopt::socket_peercred(socket).ok().map(|cred| cred.pid);
    let wait = |(own_sleep, peer_sleep): (usize, usize), bell: OwnedFd, peer_bell: OwnedFd| -> io::Result<Wait> {
        Ok(Wait {
            segment: Arc::clone(&segment),
            own_sleep,
            peer_sleep,
            own_cpus,
            side: Arc::clone(&side),
            spinner: Spinner::new(peer_pid),
            looking_since: None,
            parker: Parker::default(),
            ringer: Ringer::default(),
            bell: pipe::Receiver::from_owned_fd_unchecked(bell)?,
            peer_bell,
            socket: registered(socket)?,
        })
    };
    let Bells { data, room, peer_data, peer_room } = bells;
    let read = ShmRead { wait: wait(consumer.sleep_words(), data, peer_room)?, consumer, ended: false, sent_seen: 0 };
    let write_wait = wait(producer.sleep_words(), room, peer_data)?;
    let write = ShmWrite { wait: write_wait, producer, socket: socket.try_clone_to_owned()? };
    Ok((read, write))
}

fn poisoned(err: Poisoned) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

impl Wait {
    /// Found nothing: whether to look again (the task has yielded: `Pending`, woken) or to
    /// park. The peer learns the CPU this side waits on, for its own spins.
    fn spin(&mut self, cx: &mut Context<'_>, owed: bool) -> Looking {
        let our_cpu = spin::current_cpu();
        for at in self.own_cpus {
            word(&self.segment, at).store(our_cpu, Ordering::Relaxed);
        }
        let now = Instant::now();
        let moment = Moment {
            now,
            owed,
            peer_cpu: word(&self.segment, self.peer_sleep + CPU_AFTER_SLEEP).load(Ordering::Relaxed),
            our_cpu,
        };
        match self.spinner.step(moment) {
            Step::Look => {
                // Not parked while it looks: the peer need not ring.
                self.unpark();
                let since = *self.looking_since.get_or_insert(now);
                if now.duration_since(since) < spin::IN_ONE_POLL {
                    std::hint::spin_loop();
                    return Looking::Again;
                }
                self.looking_since = None;
                cx.waker().wake_by_ref();
                Looking::Yielded
            }
            Step::Park => {
                self.looking_since = None;
                Looking::Over
            }
        }
    }

    fn own(&self) -> &std::sync::atomic::AtomicU32 {
        word(&self.segment, self.own_sleep)
    }

    fn park(&mut self) {
        self.parker.park(word(&self.segment, self.own_sleep));
    }

    fn unpark(&self) {
        self.parker.unpark(self.own());
    }

    /// After a publish: rings the peer half if it is parked and not yet rung for it.
    fn ring_if_parked(&mut self) {
        if self.ringer.should_ring(word(&self.segment, self.peer_sleep)) {
            // EAGAIN: its counter is already as high as it goes, so it is rung anyway.
            let _ = rustix::io::write(&self.peer_bell, &1u64.to_ne_bytes());
        }
    }

    /// Ready once the bell has rung since this half last looked (for this half, or for the
    /// other: the caller looks at its ring again either way), or with an error.
    ///
    /// The bell is read here by hand, not with `poll_read`: when the other half has drained
    /// the count first, the read finds nothing, and `poll_read` would then wait for the next
    /// ring without returning, although the ring it missed may have been this half's. Here an
    /// empty bell clears the readiness and still returns, so the caller re-checks its ring
    /// before it parks again.
    fn poll_rung(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.bell.poll_read_ready(cx))?;
        let mut count = [0; 8];
        match self.bell.try_read(&mut count) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// Ready once the peer has ended the connection: `Ok` for its end, an error for a GOODBYE
    /// (or anything else) on the socket. `End::Writing` is the end of what the peer writes
    /// (its `shutdown(SHUT_WR)` or close): what the read half waits for. `End::Reading` is the
    /// peer gone altogether (the socket hung up): what a write half waiting for room waits
    /// for, since a peer that only stopped writing still reads.
    fn poll_peer_end(&mut self, cx: &mut Context<'_>, end: End) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            let mut byte = [0; 1];
            let socket = &self.socket;
            let peeked = socket.try_io(|| {
                let (n, _) = rustix::net::recv(socket.as_fd(), &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT)?;
                if n == 0 && end == End::Reading && !hung_up(socket.as_fd())? {
                    // Not yet: forget this readiness (unless a newer event came meanwhile), so
                    // that the hang-up, a change of the socket's state, wakes this half again.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            return Poll::Ready(match peeked {
                Ok(0) => Ok(()),
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the peer wrote on the socket of a shared-memory connection (it found the segment corrupt)",
                )),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => Err(err),
            });
        }
    }
}

/// Which end of the peer a half watches for (`Wait::poll_peer_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Writing,
    Reading,
}

/// Whether both directions of `socket` are shut: the peer closed it (or this side shut both).
fn hung_up(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut fds = [rustix::event::PollFd::from_borrowed_fd(socket, rustix::event::PollFlags::empty())];
    rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 }))?;
    Ok(fds[0].revents().contains(rustix::event::PollFlags::HUP))
}

fn word(segment: &Segment, offset: usize) -> &std::sync::atomic::AtomicU32 {
    // The offsets are the layout's own, inside the header page of a segment whose size was
    // checked against the layout: a word is always there.
    segment.word32(offset).unwrap_or_else(|| unreachable!("a sleep word at {offset} outside the header"))
}

impl AsyncRead for ShmRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let before = buf.filled().len();
            this.consumer.read_into(buf).map_err(poisoned)?;
            if buf.filled().len() > before {
                this.wait.spinner.found();
                this.sent_seen = this.wait.side.sent.load(Ordering::Relaxed);
                this.wait.unpark();
                this.wait.ring_if_parked();
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 || this.ended {
                return Poll::Ready(Ok(()));
            }
            let owed = this.wait.side.sent.load(Ordering::Relaxed) != this.sent_seen;
            match this.wait.spin(cx, owed) {
                Looking::Again => continue,
                Looking::Yielded => return Poll::Pending,
                Looking::Over => {}
            }
            if !owed && this.wait.spinner.may_spin_later(Instant::now()) {
                this.wait.side.read_waker.register(cx.waker());
                this.wait.side.reader_idle.store(true, Ordering::Release);
            }
            this.wait.park();
            if this.consumer.available().map_err(poisoned)? > 0 {
                continue;
            }
            if let Poll::Ready(end) = this.wait.poll_peer_end(cx, End::Writing) {
                end?;
                // What it published before it ended is still read.
                this.ended = true;
                continue;
            }
            ready!(this.wait.poll_rung(cx))?;
        }
    }
}

impl AsyncWrite for ShmWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let n = this.producer.write(buf).map_err(poisoned)?;
            if n > 0 || buf.is_empty() {
                this.published();
                return Poll::Ready(Ok(n));
            }
            ready!(this.wait_for_room(cx))?;
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let n = this.producer.write_vectored(bufs).map_err(poisoned)?;
            if n > 0 || bufs.iter().all(|buf| buf.is_empty()) {
                this.published();
                return Poll::Ready(Ok(n));
            }
            ready!(this.wait_for_room(cx))?;
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every write is published at once.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // What was written is in the ring; the socket's end tells the peer there is no more.
        Poll::Ready(Ok(rustix::net::shutdown(&self.socket, Shutdown::Write)?))
    }
}

impl ShmWrite {
    fn published(&mut self) {
        self.wait.spinner.found();
        self.wait.unpark();
        self.wait.ring_if_parked();
        self.wait.side.sent.fetch_add(1, Ordering::Relaxed);
        if self.wait.side.reader_idle.swap(false, Ordering::AcqRel) {
            self.wait.side.read_waker.wake();
        }
    }

    /// Spins, then parks, until the ring may have room: ready to look again, or an error if
    /// the peer is gone.
    fn wait_for_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.wait.spin(cx, true) {
            Looking::Again => return Poll::Ready(Ok(())),
            Looking::Yielded => return Poll::Pending,
            Looking::Over => {}
        }
        self.wait.park();
        if self.producer.room().map_err(poisoned)? > 0 {
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(end) = self.wait.poll_peer_end(cx, End::Reading) {
            end?;
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.wait.poll_rung(cx)
    }
}

impl Drop for ShmWrite {
    fn drop(&mut self) {
        let _ = rustix::net::shutdown(&self.socket, Shutdown::Write);
    }
}

#[cfg(test)]
mod tests;
