//! SIGINT and SIGTERM as a stream of events. Handlers are installed once and stay installed
//! (tokio cannot uninstall them), so policy — once: graceful, twice: kill, thrice: exit — is
//! ordinary code counting events, not handler juggling.

use std::fmt;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// A termination request received by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Interrupt,
    Terminate,
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Received::Interrupt => "SIGINT",
            Received::Terminate => "SIGTERM",
        })
    }
}

impl Received {
    /// The conventional exit code of a process ended by this signal (128 + its number).
    pub fn exit_code(self) -> i32 {
        match self {
            Received::Interrupt => 130,
            Received::Terminate => 143,
        }
    }
}

#[derive(Debug)]
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    pub async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.interrupt.recv() => Received::Interrupt,
            _ = self.terminate.recv() => Received::Terminate,
        }
    }
}
