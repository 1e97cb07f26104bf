//! Offering, granting and taking up shared memory during the hello (docs/SHM.md §2,
//! `docs/PROTOCOL.md` §19). The server makes the segment and the bells and sends them with its
//! WELCOME; the client checks them, answers SHM_ACK, and both sides move their halves to the
//! rings. Whatever fails on the way leaves the connection on its socket, as if never offered.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use super::ring::Layout;
use super::stream::{Bells, Role, halves};
use super::sys::Segment;
use crate::error::{ErrorChain, FrameError};
use crate::frame::{self, FrameReader, Kind};
use crate::hello::{self, Negotiated, features};
use crate::unix_io::{Passed, SocketRef};

/// Whether a connection may move its frames to shared memory (docs/SHM.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Stay on the socket (the default: the rings cost memory up front, in both processes).
    #[default]
    Socket,
    /// Use shared memory when both sides can; otherwise the socket, quietly.
    Auto,
    /// As `Auto`, but say at warn level why a connection stayed on the socket.
    Shm,
}

impl Transport {
    /// How configuration and the environment spell it (`WARREN_RPC_TRANSPORT`, warren.toml's
    /// `transport`), as serde does.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Socket => "socket",
            Transport::Auto => "auto",
            Transport::Shm => "shm",
        }
    }

    /// The transport `name` spells ([`as_str`](Self::as_str)), if any.
    pub fn from_name(name: &str) -> Option<Transport> {
        [Transport::Socket, Transport::Auto, Transport::Shm].into_iter().find(|transport| transport.as_str() == name)
    }

    fn offers(self) -> bool {
        self != Transport::Socket
    }

    /// Says why a connection stayed on the socket, as loudly as was asked.
    fn stayed_on_socket(self, endpoint: &str, why: &str) {
        if self == Transport::Shm {
            warn!(endpoint, "connection stays on the socket, not shared memory: {why}");
        } else {
            debug!(endpoint, "connection stays on the socket, not shared memory: {why}");
        }
    }
}

/// A server's shared-memory settings.
#[derive(Debug, Clone)]
pub(crate) struct ServerShm {
    pub transport: Transport,
    /// Bytes of each ring (both directions).
    pub ring: u64,
    /// What all its connections' segments may take together.
    pub budget: Arc<Budget>,
}

impl Default for ServerShm {
    fn default() -> Self {
        ServerShm { transport: Transport::Socket, ring: DEFAULT_RING, budget: Arc::new(Budget::new(DEFAULT_BUDGET)) }
    }
}

/// Each ring's size unless set: a 16 KiB frame queue's worth sixteen times over.
pub(crate) const DEFAULT_RING: u64 = 256 << 10;
/// All of a server's segments together, unless set.
pub(crate) const DEFAULT_BUDGET: usize = 64 << 20;

/// Bytes of shared memory a server may hand out.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

/// A segment's share of the budget, given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { limit, used: AtomicUsize::new(0) }
    }

    fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let taken = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|total| *total <= self.limit)
        });
        taken.ok().map(|_| Charge { budget: Arc::clone(self), bytes })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Whether the process at the other end of `socket` runs as our own effective uid: shared
/// memory is never offered across users, whatever the peer policy allows.
fn same_user(socket: &SocketRef) -> Result<(), String> {
    let ours = rustix::process::geteuid().as_raw();
    match socket.peer_uid() {
        Ok(uid) if uid == ours => Ok(()),
        Ok(uid) => Err(format!("the peer runs as uid {uid}, this side as {ours}")),
        Err(err) => Err(format!("the peer's credentials: {err}")),
    }
}

/// What a server made for one connection, before the client has taken it up.
struct Grant {
    segment: Arc<Segment>,
    layout: Layout,
    memfd: OwnedFd,
    client_bells: Bells,
    server_bells: Bells,
    charge: Charge,
}

fn grant(settings: &ServerShm, socket: &SocketRef) -> Result<Grant, String> {
    same_user(socket)?;
    let layout = Layout::new(settings.ring, settings.ring).ok_or("the ring size is not allowed")?;
    let charge = settings
        .budget
        .charge(layout.segment_len())
        .ok_or_else(|| format!("the server's shared-memory budget ({} bytes) is taken", settings.budget.limit))?;
    let (segment, memfd) = Segment::create(layout.segment_len()).map_err(|err| format!("the segment: {err}"))?;
    if !layout.write_header(&segment) {
        return Err("the segment's header".into());
    }
    let (client_bells, server_bells) = Bells::new().map_err(|err| format!("the bells: {err}"))?;
    Ok(Grant { segment: Arc::new(segment), layout, memfd, client_bells, server_bells, charge })
}

/// Server side, once the client's HELLO is read: sends the WELCOME, with a segment if the
/// client offered shared memory and this server grants it, and then waits for the client's
/// SHM_ACK. What it returns lives as long as the connection: the segment's share of the budget.
pub(crate) async fn welcome<R, W>(
    reader: &mut FrameReader<R>,
    write: &mut W,
    socket: Option<&SocketRef>,
    negotiated: &mut Negotiated,
    settings: &ServerShm,
    max_frame: u32,
    hello_timeout: Duration,
) -> Result<Option<Charge>, FrameError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let offered = negotiated.features & features::SHM != 0;
    negotiated.features &= !features::SHM;
    let granted = match socket {
        Some(socket) if offered && settings.transport.offers() => match grant(settings, socket) {
            Ok(granted) => Some((granted, socket)),
            Err(why) => {
                settings.transport.stayed_on_socket("server", &why);
                None
            }
        },
        _ => None,
    };
    let Some((granted, socket)) = granted else {
        send_plain_welcome(write, negotiated, max_frame).await?;
        return Ok(None);
    };
    let with_shm = Negotiated { features: negotiated.features | features::SHM, ..*negotiated };
    let answer = hello::welcome(&with_shm, max_frame);
    let fds = [
        granted.memfd.as_fd(),
        granted.client_bells.data.as_fd(),
        granted.client_bells.room.as_fd(),
        granted.client_bells.peer_data.as_fd(),
        granted.client_bells.peer_room.as_fd(),
    ];
    let sent = match socket.send_with_fds(&answer, &fds) {
        Ok(sent) => sent,
        Err(why) => {
            // Nothing went: the plain WELCOME still can.
            settings.transport.stayed_on_socket("server", &format!("passing the descriptors: {why}"));
            send_plain_welcome(write, negotiated, max_frame).await?;
            return Ok(None);
        }
    };
    write.write_all(&answer[sent..]).await.map_err(FrameError::Io)?;
    let taken_up = take_up_granted(reader, socket, granted, &settings.transport, hello_timeout).await;
    match taken_up {
        Ok(Some(charge)) => {
            negotiated.features |= features::SHM;
            Ok(Some(charge))
        }
        Ok(None) => Ok(None),
        Err(err) => {
            // After a WELCOME the client reads frames: no preface before this GOODBYE.
            let goodbye = frame::goodbye(err.code(), &ErrorChain(&err).to_string());
            let _ = write.write_all(&goodbye).await;
            Err(err)
        }
    }
}

/// The WELCOME of a connection that stays on its stream, flushed: a child's stdout holds what
/// it is given until then.
async fn send_plain_welcome<W: AsyncWrite + Unpin>(
    write: &mut W,
    negotiated: &Negotiated,
    max_frame: u32,
) -> Result<(), FrameError> {
    write.write_all(&hello::welcome(negotiated, max_frame)).await.map_err(FrameError::Io)?;
    write.flush().await.map_err(FrameError::Io)
}

/// Server side, after a WELCOME with the descriptors: reads the client's SHM_ACK and, if it
/// accepted, moves the connection to the rings.
async fn take_up_granted<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    socket: &SocketRef,
    granted: Grant,
    transport: &Transport,
    hello_timeout: Duration,
) -> Result<Option<Charge>, FrameError> {
    let Grant { segment, layout, memfd, client_bells, server_bells, charge } = granted;
    // The client holds its own copies now; ours would only keep the segment alive.
    drop((memfd, client_bells));
    let ack = tokio::time::timeout(hello_timeout, reader.read_frame())
        .await
        .map_err(|_| FrameError::HelloTimeout(hello_timeout))??
        .ok_or(FrameError::Truncated { what: "SHM_ACK (the client closed)" })?;
    if ack.kind != Kind::ShmAck {
        return Err(FrameError::Unexpected { kind: ack.kind, when: "instead of SHM_ACK" });
    }
    let accepted = *ack.body.first().ok_or(FrameError::Truncated { what: "SHM_ACK" })?;
    if accepted != 1 {
        let reason = String::from_utf8_lossy(&ack.body[1..]);
        transport.stayed_on_socket("server", &format!("the client declined: {reason}"));
        return Ok(None);
    }
    if !reader.buffered().is_empty() {
        return Err(FrameError::Unexpected { kind: Kind::ShmAck, when: "followed by bytes on the socket" });
    }
    let fd = socket.dup().map_err(FrameError::Io)?;
    let (read, write) = halves(segment, &layout, Role::Server, server_bells, fd.as_fd()).map_err(FrameError::Io)?;
    socket.upgrade(read, write).map_err(FrameError::Io)?;
    Ok(Some(charge))
}

/// Client side, before the HELLO: whether to offer shared memory on this connection. If so,
/// the socket starts keeping the descriptors that come with what it reads.
pub(crate) fn offer(transport: Transport, socket: Option<&SocketRef>, endpoint: &str) -> bool {
    if !transport.offers() {
        return false;
    }
    let Some(socket) = socket else {
        transport.stayed_on_socket(endpoint, "not a Unix socket");
        return false;
    };
    let ready = same_user(socket).and_then(|()| socket.collect_passed().map_err(|err| err.to_string()));
    match ready {
        Ok(()) => true,
        Err(why) => {
            transport.stayed_on_socket(endpoint, &why);
            false
        }
    }
}

/// Client side, once the WELCOME is read after an [`offer`]: takes up the segment if the server
/// granted one and it passes every check, telling the server with SHM_ACK either way.
/// `more_read`: bytes came after the WELCOME, which a server that grants must not send.
pub(crate) async fn take_up<W>(
    more_read: bool,
    write: &mut W,
    socket: &SocketRef,
    negotiated: &mut Negotiated,
    transport: Transport,
    endpoint: &str,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let passed = socket.take_passed();
    if negotiated.features & features::SHM == 0 {
        transport.stayed_on_socket(endpoint, "the server did not grant it");
        return Ok(());
    }
    let checked =
        if more_read { Err("the server wrote more after its WELCOME".to_owned()) } else { check(passed, socket) };
    match checked {
        Ok((read, write_ring)) => {
            write.write_all(&ack(true, "")).await?;
            socket.upgrade(read, write_ring)?;
            Ok(())
        }
        Err(why) => {
            negotiated.features &= !features::SHM;
            transport.stayed_on_socket(endpoint, &why);
            write.write_all(&ack(false, &why)).await
        }
    }
}

/// Checks what the server passed (docs/SHM.md §2.4) and maps it: the client's halves.
fn check(passed: Passed, socket: &SocketRef) -> Result<(super::stream::ShmRead, super::stream::ShmWrite), String> {
    if passed.truncated {
        return Err("the descriptors did not all arrive (this process may be at its limit)".into());
    }
    let [memfd, data, room, peer_data, peer_room]: [OwnedFd; 5] = passed
        .fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| format!("{} descriptors came with the WELCOME, not 5", fds.len()))?;
    let segment = Segment::map(&memfd).map_err(|err| format!("the segment: {err}"))?;
    let layout = Layout::read_header(&segment).map_err(|err| format!("the segment's header: {err}"))?;
    let bells = Bells { data, room, peer_data, peer_room };
    bells.check().map_err(|err| format!("the bells: {err}"))?;
    let fd = socket.dup().map_err(|err| err.to_string())?;
    halves(Arc::new(segment), &layout, Role::Client, bells, fd.as_fd()).map_err(|err| format!("the rings: {err}"))
}

/// An SHM_ACK frame.
fn ack(accepted: bool, reason: &str) -> bytes::Bytes {
    let mut body = BytesMut::with_capacity(1 + reason.len());
    body.put_u8(u8::from(accepted));
    body.put_slice(reason.as_bytes());
    frame::encode(Kind::ShmAck, 0, &body)
}

#[cfg(test)]
mod tests {
    use super::Transport;

    #[test]
    fn a_transport_is_spelled_as_serde_spells_it_and_read_back() {
        for transport in [Transport::Socket, Transport::Auto, Transport::Shm] {
            let json = serde_json::to_string(&transport).expect("serialize");
            assert_eq!(json, format!("\"{}\"", transport.as_str()));
            assert_eq!(Transport::from_name(transport.as_str()), Some(transport));
        }
        assert_eq!(Transport::from_name("mmap"), None);
        assert_eq!(Transport::from_name("SHM"), None, "as warren.toml writes it: lower case");
    }
}
