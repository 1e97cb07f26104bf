//! A child's process group, as far as warren may still signal it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tracing::debug;

use crate::report::Leak;
use crate::signal::Signal;
use crate::sys;

/// The process group a child leads (its id is the child's pid).
#[derive(Debug)]
pub(crate) struct Group {
    pgid: u32,
    /// Set once the leader is reaped and the group emptied: from then on its id may be reused
    /// by an unrelated group, so warren never signals it again.
    released: AtomicBool,
    /// What the group left behind when its leader exited.
    leaks: Mutex<Vec<Leak>>,
}

impl Group {
    pub fn new(pgid: u32) -> Group {
        Group { pgid, released: AtomicBool::new(false), leaks: Mutex::new(Vec::new()) }
    }

    /// Signals the group unless it has been released.
    pub fn signal(&self, signal: Signal) {
        if !self.released.load(Ordering::SeqCst)
            && let Err(err) = sys::kill_group(self.pgid, signal)
        {
            debug!(pgid = self.pgid, "cannot send {signal}: {err}");
        }
    }

    /// Marks the group as gone: no signal reaches its id from now on.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    pub fn leaked(&self, leak: Leak) {
        self.leaks.lock().unwrap_or_else(PoisonError::into_inner).push(leak);
    }

    pub fn leaks(&self) -> Vec<Leak> {
        self.leaks.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
