//! How a server connection opens: its first bytes pick the [`Wire`](super::wire::Wire) (the
//! binary protocol after a HELLO/WELCOME exchange, or JSON-RPC lines when the first byte is `{`
//! or `[`), which is then served by the call core, [`dispatch`].

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use super::Core;
use super::binary::Binary;
use super::context::PeerInfo;
use super::dispatch::{self, LINGER};
use super::gob::Gob;
use super::jsonline::JsonLines;
use super::stall::StallGuard;
use crate::error::{ErrorChain, FrameError};
use crate::frame::FrameReader;
use crate::hello::{self, Opening, features};
use crate::jsonrpc::LineReader;
use crate::shm::negotiate;
use crate::unix_io::SocketRef;

/// Serves one connection until the peer leaves, it misbehaves, or the server has drained.
///
/// `socket` is the connection's Unix socket, which shared memory needs (docs/SHM.md); other
/// connections have none.
pub(crate) async fn serve<R, W>(core: Arc<Core>, read: R, mut write: W, peer: PeerInfo, socket: Option<SocketRef>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let options = &core.options;
    let mut reader = FrameReader::new(StallGuard::new(read, options.frame_timeout()), options.max_frame);
    let opening = async {
        let opening: Opening =
            hello::open(&mut reader, &mut write, &options.codecs, options.max_frame, options.hello_timeout).await?;
        let Opening::Binary(mut negotiated) = opening else { return Ok((opening, None)) };
        let shm = negotiate::welcome(
            &mut reader,
            &mut write,
            socket.as_ref(),
            &mut negotiated,
            &options.shm,
            options.max_frame,
            options.hello_timeout,
        )
        .await?;
        Ok::<_, FrameError>((Opening::Binary(negotiated), shm))
    };
    // A server that starts shutting down does not wait for connections still saying hello.
    let handshake = async {
        tokio::select! {
            outcome = opening => Some(outcome),
            () = core.control.shutting_down.cancelled() => None,
        }
    };
    let Some(handshake) = handshake.await else { return };
    let peer = Arc::new(peer);
    let max_frame = options.max_frame;
    match handshake {
        Ok((Opening::Binary(negotiated), _shm_budget_share)) => {
            let shm = negotiated.features & features::SHM != 0;
            debug!(peer = %peer.address, connection = peer.connection, codec = ?negotiated.codec, shm, "client connected");
            // Frames are bounded from here on; the hello had its own timeout.
            let (mut read, buffered) = reader.into_parts();
            read.watch_frames(&buffered);
            let reader = FrameReader::with_buffered(read, max_frame, buffered);
            let wire = Binary::new(reader, negotiated, Arc::clone(&peer));
            dispatch::serve(core, wire, write, peer).await;
        }
        Ok((Opening::JsonRpc, _)) => {
            let (mut read, buffered) = reader.into_parts();
            read.watch_lines(&buffered);
            let lines = LineReader::new(read, buffered, max_frame as usize);
            let wire = JsonLines::new(lines, max_frame, Arc::clone(&peer));
            dispatch::serve(core, wire, write, peer).await;
        }
        Ok((Opening::Gob, _)) => {
            let (read, buffered) = reader.into_parts();
            let wire = Gob::new(read, buffered, max_frame, options.frame_timeout(), Arc::clone(&peer));
            dispatch::serve(core, wire, write, peer).await;
        }
        Err(err) => {
            warn!(peer = %peer.address, connection = peer.connection, "refused connection: {}", ErrorChain(&err));
            let _ = write.shutdown().await;
            reader.discard_until_eof(LINGER).await;
        }
    }
}
