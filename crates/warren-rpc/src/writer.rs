//! The one task that writes a connection's frames, batching whatever is queued into as few
//! syscalls as possible.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames are queued here by callers and handlers; the writer task owns the stream.
pub type FrameSender = mpsc::UnboundedSender<Bytes>;
pub type FrameQueue = mpsc::UnboundedReceiver<Bytes>;

/// Frames up to this size are coalesced into one buffer; bigger ones are written as they are,
/// since copying them would cost more than the syscall saved.
const COALESCE_MAX: usize = 16 * 1024;
/// Upper bound of one coalesced write.
const BATCH_MAX: usize = 256 * 1024;

/// Writes queued frames until every sender is gone or `close` fires; then writes what is still
/// queued, flushes and shuts the write half so the peer sees a clean end of stream.
pub async fn run<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: FrameQueue,
    close: CancellationToken,
    more_coming: impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut batch = BytesMut::with_capacity(BATCH_MAX);
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

async fn write_batch<W: AsyncWrite + Unpin>(
    io: &mut W,
    batch: &mut BytesMut,
    first: Bytes,
    queue: &mut FrameQueue,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        if frame.len() > COALESCE_MAX {
            if !batch.is_empty() {
                io.write_all(batch).await?;
                batch.clear();
            }
            io.write_all(&frame).await?;
        } else {
            batch.extend_from_slice(&frame);
        }
        if batch.len() < BATCH_MAX {
            next = queue.try_recv().ok();
        }
    }
    if !batch.is_empty() {
        io.write_all(batch).await?;
        batch.clear();
    }
    io.flush().await
}
