//! Holding a connection's writer for a hand-over (`Client::hold`): it stops between two
//! writes, what is queued meanwhile is kept for whoever takes the stream over (or written once
//! the hold ends), and a stream given away is neither written nor shut down here again.

use super::FrameSender;

impl FrameSender {
    /// Stops writing, once the write under way (if any) is through: false if the writer has
    /// stopped (nothing more will be written anyway).
    pub async fn hold(&self) -> bool {
        let shared = &*self.shared;
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let mut state = shared.lock();
                state.held = true;
                if state.at_rest() {
                    return !state.stopped;
                }
            }
            idle.await;
        }
    }

    /// What a held connection has queued and not written, whole frames after a part of one
    /// that a write cut short: the bytes the stream still owes the peer.
    pub fn unwritten_bytes(&self) -> Vec<u8> {
        let state = self.shared.lock();
        let mut bytes = Vec::with_capacity(state.pending.len().saturating_sub(state.sent));
        let mut skip = state.sent;
        for part in state.pending.slices() {
            let part: &[u8] = &part;
            let from = skip.min(part.len());
            skip -= from;
            bytes.extend_from_slice(&part[from..]);
        }
        bytes
    }

    /// Ends a hold: what was queued meanwhile is written.
    pub fn release(&self) {
        self.shared.lock().held = false;
        self.shared.writer.wake();
    }

    /// Gives the stream up to another process: nothing more is written or shut down here.
    pub fn detach(&self) {
        self.shared.lock().detached = true;
    }
}
