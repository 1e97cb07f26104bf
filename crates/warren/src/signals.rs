//! Received signals as a stream of events. Handlers are installed once and stay installed
//! (tokio cannot uninstall them), so what a signal means is decided by ordinary code reading
//! this stream ([`Shutdown`](crate::Shutdown), the plugin's stop), never inside a handler.

use std::task::Poll;

use tokio::signal::unix::{SignalKind, signal};

use crate::signal::Signal;

/// Handlers for a set of signals; [`next`](Self::next) yields each one received.
#[derive(Debug)]
pub(crate) struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs handlers for `which`: from now on these signals no longer have their default
    /// action but are queued here.
    pub fn install(which: &[Signal]) -> std::io::Result<Signals> {
        let streams = which
            .iter()
            .map(|&wanted| Ok((wanted, signal(SignalKind::from_raw(wanted.number()))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Signals { streams })
    }

    /// Installs a handler for one more signal.
    pub fn add(&mut self, wanted: Signal) -> std::io::Result<()> {
        if !self.streams.iter().any(|(which, _)| *which == wanted) {
            self.streams.push((wanted, signal(SignalKind::from_raw(wanted.number()))?));
        }
        Ok(())
    }

    /// The next signal received. Cancel-safe: a signal is taken only when this returns it.
    pub async fn next(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (which, stream) in &mut self.streams {
                // `None` means the runtime is shutting down: nothing more will come from it.
                if let Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return Poll::Ready(*which);
                }
            }
            Poll::Pending
        })
        .await
    }
}
