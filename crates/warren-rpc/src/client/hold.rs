//! Carrying a client's connection to another process, as a program that re-executes itself
//! does (`warren upgrade`): the connection is *held* between two frames — no new call starts,
//! the writer is at rest, the reader has stopped with what it read and not yet routed — and
//! its descriptor and [`CarriedSession`] go across; [`Client::adopt`] goes on from them with
//! no new hello. The server sees one connection throughout, and no frame is cut, lost or
//! sent twice. Binary and JSON-line connections over Unix sockets can be carried; gob keeps
//! type tables on both sides that would have to cross too, so its connections cannot.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::builder::{ClientBuilder, Opened};
use super::inflight::{HeldCalls, InFlight};
use super::reader::Heard;
use super::wire::{self, ClientWire, ReadTo, Reading, Wire};
use super::{Client, Protocol};
use crate::codec::Codec;
use crate::error::LostReason;
use crate::frame::FrameReader;
use crate::hello::Negotiated;
use crate::jsonrpc::LineReader;
use crate::unix_io::{self, SocketRef};
use crate::writer::WeakFrameSender;

/// The most that may wait to be written when a connection is held: it crosses inside the
/// session, which a big request would swell.
const MAX_UNWRITTEN: usize = 1 << 20;

/// Why a connection was not held or not taken over; a held connection is released again.
#[derive(Debug, thiserror::Error)]
#[error("cannot carry the connection to {endpoint} over: {why}")]
pub struct CarryError {
    endpoint: String,
    why: String,
}

/// What a carried connection needs beside its descriptor: what was agreed at the hello, the
/// last call id given, and the bytes read and not yet routed or queued and not yet written.
/// Serde makes it whatever the carrier needs (warren writes it as JSON into a memfd).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CarriedSession {
    endpoint: String,
    wire: CarriedWire,
    /// The largest frame (or line) this side accepts.
    max_frame: u32,
    default_timeout_ms: Option<u64>,
    last_id: u32,
    /// Calls still waiting when the connection crossed: their callers stayed behind, so the
    /// new holder cancels them (where the wire can) and drops their answers.
    orphaned: Vec<u32>,
    unread: Vec<u8>,
    /// `unread` is the rest of an overlong line being dropped.
    skipping_line: bool,
    unwritten: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum CarriedWire {
    Binary { codec: u8, peer_max_frame: u32, features: u32 },
    JsonLines { limit: u32 },
}

impl CarriedSession {
    /// The calls whose answers the earlier holder never got.
    pub fn orphaned(&self) -> &[u32] {
        &self.orphaned
    }
}

/// A connection held for a hand-over ([`Client::hold`]). Dropped, it is released and goes on
/// as if nothing happened; a process replaced by `exec` meanwhile never releases it, and the
/// image after takes it over with [`fd`](Self::fd) and [`session`](Self::session).
#[derive(Debug)]
pub struct HeldConnection {
    client: Client,
    wire: CarriedWire,
    fd: OwnedFd,
    unread: BytesMut,
    skipping_line: bool,
    /// Dropped to let the reader go on.
    resume: Option<oneshot::Sender<Detached>>,
}

/// Sent to a held reader: the connection is another process's now.
#[derive(Debug)]
pub(super) struct Detached;

/// A hold's request to the reader task, answered once it has stopped between two frames.
pub(super) struct HoldRequest {
    paused: oneshot::Sender<(BytesMut, bool)>,
    resume: oneshot::Receiver<Detached>,
}

/// How a client reaches its reader task for a hold, and the socket a hold hands over.
#[derive(Debug)]
pub(super) struct HoldPort {
    pub reader: Arc<ReaderPort>,
    pub socket: Option<SocketRef>,
}

/// How a client gets its reader task's attention between two reads: to close, or to stop for
/// a hold. One wake-up source, which the reader polls beside its reads anyway (it is what
/// `close` was before holds): a hold costs the read path nothing more.
#[derive(Default)]
pub(super) struct ReaderPort {
    wake: Notify,
    state: Mutex<PortState>,
}

#[derive(Default)]
struct PortState {
    hold: Option<HoldRequest>,
    /// The reader task has ended: nobody will take a hold.
    ended: bool,
}

impl std::fmt::Debug for ReaderPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPort").finish_non_exhaustive()
    }
}

impl ReaderPort {
    fn lock(&self) -> std::sync::MutexGuard<'_, PortState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the reader to look at `close` (after it was cancelled).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks the reader to stop for a hold; false if it has ended.
    fn request(&self, hold: HoldRequest) -> bool {
        {
            let mut state = self.lock();
            if state.ended {
                return false;
            }
            state.hold = Some(hold);
        }
        self.wake.notify_one();
        true
    }

    fn take(&self) -> Option<HoldRequest> {
        self.lock().hold.take()
    }
}

/// Marks the reader ended however its task ends, dropping a hold request it will never take
/// (its holder then hears so at once).
struct Ended<'a>(&'a ReaderPort);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.ended = true;
        state.hold = None;
    }
}

impl Client {
    /// Holds the connection for carrying it to another process: waits (up to `timeout`) for
    /// the write under way, stops the reader between two frames, and keeps new calls waiting
    /// until the hold ends. Calls in flight stay registered; their answers come to whoever
    /// has the connection then.
    pub async fn hold(&self, timeout: Duration) -> Result<HeldConnection, CarryError> {
        let inner = &*self.inner;
        let refuse = |why: String| CarryError { endpoint: inner.endpoint.to_string(), why };
        let wire = match &inner.wire {
            Wire::Binary(binary) => CarriedWire::Binary {
                codec: binary.negotiated.codec.id(),
                peer_max_frame: binary.negotiated.peer_max_frame,
                features: binary.negotiated.features,
            },
            Wire::JsonLines(lines) => CarriedWire::JsonLines { limit: lines.limit },
            Wire::GoGob(_) => return Err(refuse("a gob connection keeps type tables on both sides".into())),
        };
        let Some(socket) = &inner.hold.socket else {
            return Err(refuse("only a connection over a Unix socket can be carried".into()));
        };
        if socket.is_upgraded() {
            return Err(refuse("a shared-memory connection's rings stay in this process".into()));
        }
        let fd = socket.dup().map_err(|err| refuse(format!("its socket: {err}")))?;
        inner.in_flight.hold().map_err(|closed| refuse(format!("{closed:?}")))?;
        let mut held = HeldConnection {
            client: self.clone(),
            wire,
            fd,
            unread: BytesMut::new(),
            skipping_line: false,
            resume: None,
        };
        let paused = tokio::time::timeout(timeout, async {
            if !inner.tx.hold().await {
                return Err("its writer has stopped".to_owned());
            }
            let (paused, paused_rx) = oneshot::channel();
            let (resume, resume_rx) = oneshot::channel();
            let request = HoldRequest { paused, resume: resume_rx };
            if !inner.hold.reader.request(request) {
                return Err("its reader has ended".to_owned());
            }
            held.resume = Some(resume);
            paused_rx.await.map_err(|_| "its reader has ended".to_owned())
        })
        .await;
        let (unread, skipping_line) = match paused {
            Ok(Ok(paused)) => paused,
            Ok(Err(why)) => return Err(refuse(why)),
            Err(_) => return Err(refuse(format!("a write or a read did not come to a stop within {timeout:?}"))),
        };
        // A GOODBYE routed before the reader stopped: the server is going, nothing to carry.
        if let Some(closed) = inner.in_flight.closed() {
            return Err(refuse(format!("{closed:?}")));
        }
        let unwritten = inner.tx.unwritten();
        if unwritten > MAX_UNWRITTEN {
            return Err(refuse(format!("{unwritten} bytes wait to be written")));
        }
        held.unread = unread;
        held.skipping_line = skipping_line;
        Ok(held)
    }

    /// Goes on with a connection another process held ([`Client::hold`]) and carried across
    /// with its session: what was queued there is written first, its calls still in flight
    /// are cancelled (where the wire can), and their answers dropped. Within a tokio runtime.
    pub fn adopt(fd: OwnedFd, session: CarriedSession) -> Result<Client, CarryError> {
        let CarriedSession { endpoint, wire, max_frame, default_timeout_ms, last_id, orphaned, .. } = session;
        let refuse = |why: String| CarryError { endpoint: endpoint.clone(), why };
        tokio::runtime::Handle::try_current().map_err(|_| refuse("Client::adopt needs a tokio runtime".into()))?;
        let stream = std::os::unix::net::UnixStream::from(fd);
        // ENOTSOCK here, rather than a confusing read error later.
        stream.local_addr().map_err(|err| refuse(format!("the descriptor: {err}")))?;
        stream.set_nonblocking(true).map_err(|err| refuse(format!("the descriptor: {err}")))?;
        let (read, write) = unix_io::split_fd(OwnedFd::from(stream)).map_err(|err| refuse(err.to_string()))?;
        let socket = Some(read.socket_ref());
        let unread = BytesMut::from(&session.unread[..]);
        let (reading, wire, negotiated, protocol) = match wire {
            CarriedWire::Binary { codec, peer_max_frame, features } => {
                let codec = Codec::from_id(codec).ok_or_else(|| refuse(format!("codec {codec} is unknown")))?;
                let negotiated = Negotiated { codec, peer_max_frame, features };
                let reader = FrameReader::with_buffered(read, max_frame, unread);
                (Reading::Frames(reader), Wire::Binary(wire::Binary { negotiated }), negotiated, Protocol::Binary)
            }
            CarriedWire::JsonLines { limit } => {
                let negotiated = Negotiated { codec: Codec::Json, peer_max_frame: limit, features: 0 };
                let lines = LineReader::resume(read, unread, session.skipping_line, max_frame as usize);
                (Reading::Lines(lines), Wire::JsonLines(wire::JsonLines { limit }), negotiated, Protocol::JsonRpc)
            }
        };
        let builder = ClientBuilder::carried(protocol, max_frame, default_timeout_ms.map(Duration::from_millis));
        let in_flight = InFlight::carried_on(&HeldCalls { last_id, waiting: Vec::new() });
        let client = builder.start(Opened { reading, write, socket }, wire, negotiated, in_flight, &endpoint);
        let inner = &*client.inner;
        // Nothing else is queued yet: these go first, whole frames after a part of one.
        if !session.unwritten.is_empty() {
            let _ = inner.tx.send(Bytes::from(session.unwritten));
        }
        for id in orphaned {
            if let Some(cancel) = inner.wire.cancel(id) {
                let _ = inner.tx.send(cancel);
            }
        }
        Ok(client)
    }
}

impl HeldConnection {
    /// The connection's descriptor (a duplicate, close-on-exec): keep it open across `exec`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What the taker needs beside the descriptor, as the connection is now.
    pub fn session(&self) -> CarriedSession {
        let inner = &*self.client.inner;
        let HeldCalls { last_id, waiting } = inner.in_flight.held_calls();
        CarriedSession {
            endpoint: inner.endpoint.to_string(),
            wire: self.wire,
            max_frame: inner.max_frame,
            default_timeout_ms: inner.default_timeout.and_then(|timeout| u64::try_from(timeout.as_millis()).ok()),
            last_id,
            orphaned: waiting,
            unread: self.unread.to_vec(),
            skipping_line: self.skipping_line,
            unwritten: inner.tx.unwritten_bytes(),
        }
    }

    /// Gives the connection to another process (in this one, the client's calls fail with
    /// [`LostReason::HandedOver`]; nothing more is read, written or shut down here). Fails
    /// only if the descriptor cannot be duplicated (out of descriptors); the connection is
    /// then released and goes on here.
    pub fn detach(mut self) -> Result<(OwnedFd, CarriedSession), CarryError> {
        let inner = &*self.client.inner;
        let fd = self
            .fd
            .try_clone()
            .map_err(|err| CarryError { endpoint: inner.endpoint.to_string(), why: format!("its socket: {err}") })?;
        let session = self.session();
        if let Some(socket) = &inner.hold.socket {
            socket.give_away();
        }
        inner.tx.detach();
        if let Some(resume) = self.resume.take() {
            let _ = resume.send(Detached);
        }
        inner.in_flight.lose(LostReason::HandedOver, None);
        inner.close.cancel();
        inner.hold.reader.wake();
        Ok((fd, session))
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let inner = &*self.client.inner;
        // Dropping `resume` lets the reader go on.
        self.resume = None;
        inner.tx.release();
        inner.in_flight.release();
    }
}

/// A connection's reader task: routes what the server sends until the connection ends or
/// `close` fires, and stops between two frames whenever a hold asks.
pub(super) async fn read_task<R: AsyncRead + Unpin>(
    mut reading: Reading<R>,
    port: Arc<ReaderPort>,
    in_flight: Arc<InFlight>,
    tx: WeakFrameSender,
    codec: Codec,
    endpoint: Arc<str>,
    close: CancellationToken,
) {
    let _ended = Ended(&port);
    let to = ReadTo { in_flight: &in_flight, tx: &tx, codec, endpoint: &endpoint };
    let mut heard = Heard::default();
    'reading: loop {
        tokio::select! {
            biased;
            () = reading.run(&mut heard, &to) => return,
            () = port.wake.notified() => {}
        }
        if close.is_cancelled() {
            break;
        }
        let Some(hold) = port.take() else { continue };
        // The holder gave up before the reader stopped: read on.
        if hold.paused.send(reading.unread()).is_err() {
            continue;
        }
        let mut resume = hold.resume;
        loop {
            tokio::select! {
                after = &mut resume => match after {
                    Ok(Detached) => return,
                    // Released: read on from where it stopped.
                    Err(_) => continue 'reading,
                },
                () = port.wake.notified() => if close.is_cancelled() {
                    break 'reading;
                },
            }
        }
    }
    in_flight.lose(LostReason::ClosedLocally, None);
}
