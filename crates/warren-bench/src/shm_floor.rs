//! The shared-memory floor (`shm-floor`, docs/SHM.md §7): to shared memory what [`crate::raw`]
//! is to the socket. Two plain processes, the raw workload's frames (a 4-byte little-endian
//! length, then a method byte and the argument; the reply is the argument), no warren call
//! layer: no framing of calls, no codec, no dispatch.
//!
//! Per connection the server makes the segment (rings of warren's default size) and the four
//! bells, and passes them on the connected Unix socket in one `sendmsg` with `SCM_RIGHTS`, in
//! the order memfd, then the client's bells: data, room, peer data, peer room (as warren's
//! server does in its WELCOME, docs/SHM.md §2). Both ends then drive warren-rpc's ring halves
//! (`ShmRead`/`ShmWrite`) under a current-thread tokio runtime, as the `c1/shm_tokio` bench
//! does: the floor includes tokio's wake-up path, the same one warren's connection takes. The
//! socket carries nothing more; its end tells the other side the connection is over.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use crate::raw::FrameBuf;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren_rpc::__wire::shm::{Bells, Layout, Role, Segment, ShmRead, ShmWrite, halves};

/// Each ring's size: warren's default (`Server::shm_ring`), so that the floor and warren-shm
/// move the same bytes through rings of the same size.
pub const RING: u64 = 256 << 10;
/// The memfd and four bells.
const PASSED: usize = 5;

/// What one side needs to make its halves: the mapped segment, its layout, its bells.
#[derive(Debug)]
pub struct Side {
    segment: Arc<Segment>,
    layout: Layout,
    bells: Bells,
}

impl Side {
    /// This side's two halves, within a tokio runtime; `socket` is the connection's, watched
    /// for the peer's end. Makes it non-blocking.
    pub fn halves(self, role: Role, socket: &UnixStream) -> io::Result<(ShmRead, ShmWrite)> {
        socket.set_nonblocking(true)?;
        halves(self.segment, &self.layout, role, self.bells, socket.as_fd())
    }
}

/// Server side of a new connection: makes the segment and the bells, passes the client its
/// part, keeps its own.
pub fn grant(socket: &UnixStream) -> io::Result<Side> {
    let layout = Layout::new(RING, RING).ok_or_else(|| io::Error::other("ring size"))?;
    let (segment, memfd) = Segment::create(layout.segment_len())?;
    if !layout.write_header(&segment) {
        return Err(io::Error::other("the segment's header"));
    }
    let (client, server) = Bells::new()?;
    let fds =
        [memfd.as_fd(), client.data.as_fd(), client.room.as_fd(), client.peer_data.as_fd(), client.peer_room.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PASSED))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptors"));
    }
    let sent = rustix::net::sendmsg(socket, &[IoSlice::new(b"S")], &mut control, SendFlags::NOSIGNAL)?;
    if sent != 1 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(Side { segment: Arc::new(segment), layout, bells: server })
}

/// Client side of a new connection: receives the segment and its bells, maps and checks them.
pub fn take(socket: &UnixStream) -> io::Result<Side> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PASSED))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let received =
        rustix::net::recvmsg(socket, &mut [IoSliceMut::new(&mut byte)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    if received.bytes != 1 || received.flags.contains(ReturnFlags::CTRUNC) || fds.len() != PASSED {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the server passed {} bytes and {} descriptors, not 1 and {PASSED}", received.bytes, fds.len()),
        ));
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or_else(|| io::Error::other("a descriptor short"));
    let memfd = next()?;
    let bells = Bells { data: next()?, room: next()?, peer_data: next()?, peer_room: next()? };
    bells.check()?;
    let segment = Segment::map(&memfd)?;
    let layout = Layout::read_header(&segment).map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
    Ok(Side { segment: Arc::new(segment), layout, bells })
}

/// A buffered frame reader over an async stream: [`crate::raw::Conn`]'s, awaiting.
#[derive(Debug)]
pub struct Frames<R> {
    read: R,
    frames: FrameBuf,
}

impl<R: AsyncRead + Unpin> Frames<R> {
    pub fn new(read: R) -> Frames<R> {
        Frames { read, frames: FrameBuf::default() }
    }

    /// Ensures `need` bytes are buffered; false on end-of-stream before any byte.
    async fn fill(&mut self, need: usize) -> io::Result<bool> {
        while let Some(room) = self.frames.room_for(need) {
            let n = self.read.read(room).await?;
            if !self.frames.filled(n)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next frame's body, or `None` at a clean end of stream.
    pub async fn read_frame(&mut self) -> io::Result<Option<&[u8]>> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let len = self.frames.body_len()?;
        if !self.fill(4 + len).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(self.frames.take(len)))
    }
}

/// Writes one frame whose body is `a` then `b`, as [`crate::raw::write_frame`] does: vectored.
pub async fn write_frame<W: AsyncWrite + Unpin>(write: &mut W, a: &[u8], b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(a.len() + b.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let header = len.to_le_bytes();
    let mut slices = [IoSlice::new(&header), IoSlice::new(a), IoSlice::new(b)];
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = write.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// The server's loop: each frame answered with its argument, until the client's end.
pub async fn echo<R, W>(read: R, mut write: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = Frames::new(read);
    while let Some(body) = frames.read_frame().await? {
        write_frame(&mut write, body.get(1..).unwrap_or_default(), &[]).await?;
    }
    Ok(())
}

/// A client's end of one connection: one call at a time.
#[derive(Debug)]
pub struct Caller<R, W> {
    frames: Frames<R>,
    write: W,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Caller<R, W> {
    pub fn new(read: R, write: W) -> Caller<R, W> {
        Caller { frames: Frames::new(read), write }
    }

    /// One call: the request frame, then its reply, whose body is returned.
    pub async fn call(&mut self, method: u8, arg: &[u8]) -> io::Result<&[u8]> {
        write_frame(&mut self.write, &[method], arg).await?;
        self.frames.read_frame().await?.ok_or_else(|| io::Error::other("the server ended the connection"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw;

    #[test]
    fn segment_and_bells_pass_and_frames_of_any_size_echo() {
        let (client_socket, server_socket) = UnixStream::pair().expect("socketpair");
        let server = std::thread::spawn(move || {
            let side = grant(&server_socket).expect("grant");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let (read, write) = side.halves(Role::Server, &server_socket).expect("server halves");
                echo(read, write).await
            })
        });
        let side = take(&client_socket).expect("take");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (read, write) = side.halves(Role::Client, &client_socket).expect("client halves");
            let mut caller = Caller::new(read, write);
            assert_eq!(caller.call(raw::GET, b"new_id").await.expect("tiny"), b"new_id");
            // Four times a ring: it streams through.
            let big: Vec<u8> = (0..4 * RING as usize).map(|i| (i % 251) as u8).collect();
            assert_eq!(caller.call(raw::ECHO, &big).await.expect("big"), &big[..]);
            drop(caller);
        });
        server.join().expect("server thread").expect("the server ends cleanly at the client's end");
    }
}
