//! How a connection's frames reach the stream: callers and handlers append them to one shared
//! buffer, and they are written in as few syscalls as possible — by the connection's writer
//! task, or, when it is idle and nothing else is about to be queued, by the task that queued
//! them, at once (a hop to the writer task and back costs more than the write).

use std::cell::Cell;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outgoing::{FrameBuf, Outgoing};

/// Who writes a frame just queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// The writer task, woken for it.
    Writer,
    /// This task, now, if the writer task is idle; else the writer task.
    Now,
    /// Nobody yet: the caller calls [`FrameSender::flush_now`] once it has queued what it has.
    Later,
}

/// Queues frames for one connection; the writer ends once every sender is gone.
#[derive(Debug)]
pub struct FrameSender {
    shared: Arc<Shared>,
}

/// A [`FrameSender`] that does not keep the writer alive.
#[derive(Debug, Clone)]
pub struct WeakFrameSender {
    shared: Weak<Shared>,
}

/// The writer task's end of [`channel`].
#[derive(Debug)]
pub struct FrameQueue {
    shared: Arc<Shared>,
}

/// The writer has stopped; the frame was not queued.
#[derive(Debug)]
pub struct WriterGone;

/// Why a frame encoded in place was not queued.
#[derive(Debug)]
pub enum Unsent<E> {
    Gone,
    Encode(E),
}

struct Shared {
    state: Mutex<State>,
    senders: AtomicUsize,
    /// The writer task, when it waits for frames.
    writer: AtomicWaker,
    /// Bytes queued and not yet known to be written: what a peer that stops reading makes
    /// pile up, for the connection to stop taking new requests from it (see `wait_below`).
    unwritten: AtomicUsize,
    /// Set by a task waiting in `wait_below`, so that writes wake it only when someone waits.
    room_wanted: AtomicBool,
    room: Notify,
    /// Woken when the writer task gives the stream back while the connection is held.
    idle: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("senders", &self.senders).finish_non_exhaustive()
    }
}

type Io = Box<dyn AsyncWrite + Send + Unpin>;

struct State {
    /// Frames queued and not yet written, in order.
    pending: FrameBuf,
    /// How much of `pending` a write made in a sender's task has already sent.
    sent: usize,
    /// The stream, while the writer task is not using it: a sender may then write with it.
    io: Option<Io>,
    /// A sender's write could not be flushed at once; the writer task must.
    unflushed: bool,
    /// The writer task has ended: nothing queued from now on would be written.
    stopped: bool,
    /// Nothing is written while a hand-over holds the connection: what is queued meanwhile is
    /// carried to whoever takes the stream over, or written once the hold ends.
    held: bool,
    /// The stream now belongs to another process: it is neither written nor shut down here.
    detached: bool,
}

impl State {
    fn has_work(&self) -> bool {
        !self.paused() && (self.pending.len() > self.sent || self.unflushed)
    }

    fn paused(&self) -> bool {
        self.held || self.detached
    }

    /// The stream is in place and no write is under way.
    fn at_rest(&self) -> bool {
        self.io.is_some() || self.stopped
    }
}

pub fn channel() -> (FrameSender, FrameQueue) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: FrameBuf::default(),
            sent: 0,
            io: None,
            unflushed: false,
            stopped: false,
            held: false,
            detached: false,
        }),
        senders: AtomicUsize::new(1),
        writer: AtomicWaker::new(),
        unwritten: AtomicUsize::new(0),
        room_wanted: AtomicBool::new(false),
        room: Notify::new(),
        idle: Notify::new(),
    });
    (FrameSender { shared: Arc::clone(&shared) }, FrameQueue { shared })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer task is done with the stream for now.
    fn give_back(&self, io: Io) {
        let mut state = self.lock();
        state.io = Some(io);
        if state.held {
            drop(state);
            self.idle.notify_waiters();
        }
    }

    /// `bytes` of what was queued have been written (or will never be: the writer stopped).
    fn written(&self, bytes: usize) {
        self.unwritten.fetch_sub(bytes, Ordering::SeqCst);
        if self.room_wanted.load(Ordering::SeqCst) && self.room_wanted.swap(false, Ordering::SeqCst) {
            self.room.notify_waiters();
        }
    }
}

impl Clone for FrameSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        FrameSender { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the writer writes what is queued and ends.
            self.shared.writer.wake();
        }
    }
}

impl FrameSender {
    /// Queues a frame and wakes the writer task for it.
    pub fn send(&self, frame: impl Into<Outgoing>) -> Result<(), WriterGone> {
        self.send_flush(frame, Flush::Writer)
    }

    pub fn send_flush(&self, frame: impl Into<Outgoing>, flush: Flush) -> Result<(), WriterGone> {
        let frame = frame.into();
        self.encode(flush, |pending| {
            push(pending, frame);
            Ok::<(), ()>(())
        })
        .map_err(|_| WriterGone)
    }

    /// Queues the frame `encode` appends to a buffer: a buffer of this thread's, reused, not
    /// the pending frames themselves, so that no `Serialize` impl runs under their lock (it
    /// would hold up every other sender, and deadlock one that sends from inside it).
    pub(crate) fn encode<E>(
        &self,
        flush: Flush,
        encode: impl FnOnce(&mut FrameBuf) -> Result<(), E>,
    ) -> Result<(), Unsent<E>> {
        // A nested encode on this thread (a `Serialize` that sends) finds none and makes its own.
        let mut scratch = SCRATCH.take().unwrap_or_default();
        scratch.clear();
        let result = match encode(&mut scratch) {
            Ok(()) => self.queue(&scratch, flush),
            Err(err) => Err(Unsent::Encode(err)),
        };
        scratch.clear();
        if scratch.buf.capacity() <= SCRATCH_MAX {
            SCRATCH.set(Some(scratch));
        }
        result
    }

    fn queue<E>(&self, frames: &FrameBuf, flush: Flush) -> Result<(), Unsent<E>> {
        let mut state = self.shared.lock();
        if state.stopped {
            return Err(Unsent::Gone);
        }
        state.pending.append(frames);
        self.shared.unwritten.fetch_add(frames.len(), Ordering::SeqCst);
        match flush {
            Flush::Writer => {
                drop(state);
                self.shared.writer.wake();
            }
            Flush::Now => self.write_now(state),
            Flush::Later => {}
        }
        Ok(())
    }

    /// Writes what is queued from this task if the writer task is idle, without waiting: what
    /// the stream does not take at once is left to the writer task.
    pub fn flush_now(&self) {
        let state = self.shared.lock();
        if state.has_work() {
            self.write_now(state);
        }
    }

    fn write_now(&self, mut guard: MutexGuard<'_, State>) {
        let state = &mut *guard;
        if state.paused() {
            return;
        }
        if let Some(io) = state.io.as_mut() {
            // The writer task is not waiting on the stream (it does not have it), so the waker a
            // pending write leaves with the stream is no one's: the writer task registers its
            // own when it takes over.
            let mut cx = Context::from_waker(Waker::noop());
            match write_some(io, &mut cx, &state.pending, &mut state.sent) {
                Poll::Ready(Ok(())) => {
                    self.shared.written(state.pending.len());
                    state.pending.clear();
                    state.sent = 0;
                    match Pin::new(&mut **io).poll_flush(&mut cx) {
                        Poll::Ready(Ok(())) => return,
                        // The writer task flushes, and meets the error if there is one.
                        Poll::Ready(Err(_)) | Poll::Pending => state.unflushed = true,
                    }
                }
                // The writer task writes the rest, and meets the error if there is one.
                Poll::Ready(Err(_)) | Poll::Pending => {}
            }
        }
        drop(guard);
        self.shared.writer.wake();
    }

    /// Bytes queued and not yet written.
    pub fn unwritten(&self) -> usize {
        self.shared.unwritten.load(Ordering::SeqCst)
    }

    /// Waits until no more than `limit` bytes wait to be written, or the writer has stopped;
    /// true in the second case: what waits will never be written.
    pub async fn wait_below(&self, limit: usize) -> bool {
        let shared = &*self.shared;
        loop {
            let notified = shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            shared.room_wanted.store(true, Ordering::SeqCst);
            if shared.lock().stopped {
                return true;
            }
            if shared.unwritten.load(Ordering::SeqCst) <= limit {
                return false;
            }
            notified.await;
        }
    }

    pub fn downgrade(&self) -> WeakFrameSender {
        WeakFrameSender { shared: Arc::downgrade(&self.shared) }
    }
}

impl WeakFrameSender {
    pub fn upgrade(&self) -> Option<FrameSender> {
        let shared = self.shared.upgrade()?;
        let mut senders = shared.senders.load(Ordering::Acquire);
        loop {
            if senders == 0 {
                return None;
            }
            match shared.senders.compare_exchange_weak(senders, senders + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(FrameSender { shared }),
                Err(now) => senders = now,
            }
        }
    }
}

thread_local! {
    static SCRATCH: Cell<Option<FrameBuf>> = const { Cell::new(None) };
}

/// A scratch buffer grown past this by one big frame is not kept for the next.
const SCRATCH_MAX: usize = 64 * 1024;

/// Frames up to this size are copied together; bigger ones are written from their own buffers,
/// in the same vectored write, since copying them would cost more than it saves.
const COALESCE_MAX: usize = 16 * 1024;
/// The kernel takes at most 1024 slices in one write.
const SLICES_MAX: usize = 512;

fn push(pending: &mut FrameBuf, frame: Outgoing) {
    match frame {
        Outgoing::Whole(bytes) => pending.push(bytes, COALESCE_MAX),
        Outgoing::Owned(bytes) => pending.buf.extend_from_slice(&bytes),
        Outgoing::Parts(parts) => parts.into_iter().for_each(|part| pending.push(part, COALESCE_MAX)),
    }
}

/// Writes `pending` from `*sent` on until the stream stops taking it; `Ready(Ok)` once all of it
/// is written.
fn write_some(io: &mut Io, cx: &mut Context<'_>, pending: &FrameBuf, sent: &mut usize) -> Poll<std::io::Result<()>> {
    loop {
        let written = match pending.contiguous() {
            // The usual case, one buffer of small frames: no slices to build.
            Some(bytes) => {
                if *sent >= bytes.len() {
                    return Poll::Ready(Ok(()));
                }
                Pin::new(&mut **io).poll_write(cx, &bytes[*sent..])
            }
            None => {
                let mut slices = pending.slices();
                let mut rest = &mut slices[..];
                IoSlice::advance_slices(&mut rest, *sent);
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let take = rest.len().min(SLICES_MAX);
                Pin::new(&mut **io).poll_write_vectored(cx, &rest[..take])
            }
        };
        match written {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => *sent += n,
            Poll::Ready(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Marks the writer stopped however `run` ends, its future dropped included, so that senders
/// fail instead of queueing frames nobody will write.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.stopped = true;
        state.io = None;
        drop(state);
        // Nothing more will be written: whoever waits for room must not wait for it.
        self.0.room.notify_waiters();
        self.0.idle.notify_waiters();
    }
}

/// Writes queued frames until every sender is gone or `close` fires; then writes what is still
/// queued, flushes and shuts the write half so the peer sees a clean end of stream.
pub async fn run<W: AsyncWrite + Unpin + Send + 'static>(
    io: W,
    queue: FrameQueue,
    close: CancellationToken,
    more_coming: impl Fn() -> bool,
) -> std::io::Result<()> {
    let shared = &*queue.shared;
    let _stopped = Stopped(shared);
    shared.give_back(Box::new(io));
    let mut batch = FrameBuf::default();
    // Made once: a fresh `cancelled()` per batch registers and unregisters a waiter, under the
    // token's mutex, every time the queue runs dry.
    let closed = close.cancelled();
    tokio::pin!(closed);
    loop {
        let work = tokio::select! {
            biased;
            work = next_work(shared) => work,
            () = &mut closed => false,
        };
        if !work {
            break;
        }
        // A multi-thread worker runs the task it just woke next (its LIFO slot), so this writer
        // would run right after the caller that queued a frame and write that frame alone. When
        // other calls are under way, yield once so that they queue theirs for the same write.
        if more_coming() {
            tokio::task::yield_now().await;
        }
        write_pending(shared, &mut batch).await?;
    }
    while shared.lock().has_work() {
        write_pending(shared, &mut batch).await?;
    }
    let (io, detached) = {
        let mut state = shared.lock();
        (state.io.take(), state.detached)
    };
    let Some(mut io) = io.filter(|_| !detached) else { return Ok(()) };
    io.flush().await?;
    io.shutdown().await
}

/// Waits until there is something to write (true) or no sender is left (false).
async fn next_work(shared: &Shared) -> bool {
    poll_fn(|cx| {
        shared.writer.register(cx.waker());
        if shared.lock().has_work() {
            Poll::Ready(true)
        } else if shared.senders.load(Ordering::Acquire) == 0 {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Takes what is pending and the stream, writes it without holding the lock (senders keep
/// queueing meanwhile), and gives the stream back.
async fn write_pending(shared: &Shared, batch: &mut FrameBuf) -> std::io::Result<()> {
    let (mut io, mut sent) = {
        let mut state = shared.lock();
        let Some(io) = state.io.take() else {
            return Err(std::io::Error::other("the connection's stream is gone"));
        };
        std::mem::swap(&mut state.pending, batch);
        state.unflushed = false;
        (io, std::mem::take(&mut state.sent))
    };
    poll_fn(|cx| write_some(&mut io, cx, batch, &mut sent)).await?;
    io.flush().await?;
    shared.written(batch.len());
    batch.clear();
    shared.give_back(io);
    Ok(())
}

mod hold;
#[cfg(test)]
mod tests;
