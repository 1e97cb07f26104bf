//! The one task that writes a connection's frames, batching whatever is queued into as few
//! syscalls as possible.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame ready to be written.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Whole(Bytes),
    /// Written back to back. A large payload is one of the parts, as the caller's own buffer:
    /// copying a megabyte into the frame buffer would cost more than the rest of the call.
    Parts(Box<[Bytes]>),
}

impl Outgoing {
    /// The frame in one buffer, copied together if it is in parts.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Outgoing::Whole(bytes) => bytes,
            Outgoing::Parts(parts) => {
                let mut whole = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for part in parts {
                    whole.extend_from_slice(&part);
                }
                whole.freeze()
            }
        }
    }
}

impl From<Bytes> for Outgoing {
    fn from(bytes: Bytes) -> Self {
        Outgoing::Whole(bytes)
    }
}

/// Frames are queued here by callers and handlers; the writer task owns the stream.
#[derive(Debug, Clone)]
pub struct FrameSender(mpsc::UnboundedSender<Outgoing>);

/// A [`FrameSender`] that does not keep the writer alive.
#[derive(Debug, Clone)]
pub struct WeakFrameSender(mpsc::WeakUnboundedSender<Outgoing>);

pub type FrameQueue = mpsc::UnboundedReceiver<Outgoing>;

/// The writer has stopped; the frame was not queued.
#[derive(Debug)]
pub struct WriterGone;

pub fn channel() -> (FrameSender, FrameQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (FrameSender(tx), rx)
}

impl FrameSender {
    pub fn send(&self, frame: impl Into<Outgoing>) -> Result<(), WriterGone> {
        self.0.send(frame.into()).map_err(|_| WriterGone)
    }

    pub fn downgrade(&self) -> WeakFrameSender {
        WeakFrameSender(self.0.downgrade())
    }
}

impl WeakFrameSender {
    pub fn upgrade(&self) -> Option<FrameSender> {
        self.0.upgrade().map(FrameSender)
    }
}

/// Frames up to this size are coalesced into one buffer; bigger ones are written from their own
/// buffers, in the same vectored write, since copying them would cost more than it saves.
const COALESCE_MAX: usize = 16 * 1024;
/// Upper bound of one coalesced write.
const BATCH_MAX: usize = 256 * 1024;
/// Upper bound of the large parts in one write; the kernel takes at most 1024 slices.
const PARTS_MAX: usize = 64;

/// Writes queued frames until every sender is gone or `close` fires; then writes what is still
/// queued, flushes and shuts the write half so the peer sees a clean end of stream.
pub async fn run<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: FrameQueue,
    close: CancellationToken,
    more_coming: impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut batch = Batch { small: BytesMut::with_capacity(BATCH_MAX), large: Vec::new() };
    // Made once: a fresh `cancelled()` per batch registers and unregisters a waiter, under the
    // token's mutex, every time the queue runs dry.
    let closed = close.cancelled();
    tokio::pin!(closed);
    loop {
        let first = tokio::select! {
            biased;
            frame = queue.recv() => frame,
            () = &mut closed => None,
        };
        let Some(first) = first else { break };
        // A multi-thread worker runs the task it just woke next (its LIFO slot), so this writer
        // would run right after the caller that queued `first` and write that frame alone. When
        // other calls are under way, yield once so that they queue theirs for the same write.
        if queue.is_empty() && more_coming() {
            tokio::task::yield_now().await;
        }
        write_batch(&mut io, &mut batch, first, &mut queue).await?;
    }
    while let Ok(frame) = queue.try_recv() {
        write_batch(&mut io, &mut batch, frame, &mut queue).await?;
    }
    io.flush().await?;
    io.shutdown().await
}

/// What one write sends: small frames copied together, and large parts that go between them,
/// each at the offset of `small` where it belongs.
struct Batch {
    small: BytesMut,
    large: Vec<(usize, Bytes)>,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        if bytes.len() > COALESCE_MAX {
            self.large.push((self.small.len(), bytes));
        } else {
            self.small.extend_from_slice(&bytes);
        }
    }

    fn full(&self) -> bool {
        self.small.len() >= BATCH_MAX || self.large.len() >= PARTS_MAX
    }

    async fn write<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        if self.large.is_empty() {
            io.write_all(&self.small).await?;
        } else {
            let mut slices = Vec::with_capacity(2 * self.large.len() + 1);
            let mut done = 0;
            for (at, part) in &self.large {
                if *at > done {
                    slices.push(IoSlice::new(&self.small[done..*at]));
                    done = *at;
                }
                slices.push(IoSlice::new(part));
            }
            if done < self.small.len() {
                slices.push(IoSlice::new(&self.small[done..]));
            }
            write_all_vectored(io, &mut slices).await?;
            self.large.clear();
        }
        self.small.clear();
        Ok(())
    }
}

async fn write_batch<W: AsyncWrite + Unpin>(
    io: &mut W,
    batch: &mut Batch,
    first: Outgoing,
    queue: &mut FrameQueue,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        match frame {
            Outgoing::Whole(bytes) => batch.push(bytes),
            Outgoing::Parts(parts) => parts.into_iter().for_each(|part| batch.push(part)),
        }
        if !batch.full() {
            next = queue.try_recv().ok();
        }
    }
    batch.write(io).await?;
    io.flush().await
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(io: &mut W, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        let written = io.write_vectored(slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_parts_go_out_in_order_between_small_frames() {
        let (tx, queue) = channel();
        let big = Bytes::from(vec![7u8; COALESCE_MAX + 1]);
        tx.send(Bytes::from_static(b"a")).expect("queued");
        tx.send(Outgoing::Parts(vec![Bytes::from_static(b"b"), big.clone(), Bytes::from_static(b"c")].into()))
            .expect("queued");
        tx.send(Bytes::from_static(b"d")).expect("queued");
        drop(tx);
        let mut out = Vec::new();
        run(&mut out, queue, CancellationToken::new(), || false).await.expect("written");
        let mut expected = b"ab".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"cd");
        assert_eq!(out, expected);
    }
}
