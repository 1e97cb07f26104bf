//! Calls waiting for their answer, by id, and the connection state that decides whether new
//! ones may start. Both live under one lock so that a call can never register after the
//! connection was declared lost (it would wait forever).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ErrorCode, LostReason};

/// What arrives for a call.
#[derive(Debug)]
pub(crate) enum Answer {
    Reply(Bytes),
    Error { code: ErrorCode, message: String, data: Option<Bytes> },
    Lost(LostReason),
}

/// Why a new call may not start.
#[derive(Debug, Clone)]
pub(crate) enum Closed {
    Lost(LostReason),
    /// The server said it is shutting down; calls already in flight still complete.
    ShuttingDown(String),
}

#[derive(Default)]
struct State {
    waiting: HashMap<u32, oneshot::Sender<Answer>>,
    next_id: u32,
    closed: Option<Closed>,
    subscribers: HashMap<String, Vec<mpsc::Sender<super::Notification>>>,
}

/// Shared by the client handles and the reader task.
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves an id and a slot for its answer, unless the connection is closed.
    pub fn register(&self) -> Result<(u32, oneshot::Receiver<Answer>), Closed> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Err(closed.clone());
        }
        // Ids wrap after 4 billion calls; skip 0 (reserved) and any id still waiting.
        let id = loop {
            state.next_id = state.next_id.wrapping_add(1);
            if state.next_id != 0 && !state.waiting.contains_key(&state.next_id) {
                break state.next_id;
            }
        };
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Ok((id, rx))
    }

    /// Forgets a call whose caller stopped waiting; true if it was still waiting.
    pub fn forget(&self, id: u32) -> bool {
        self.lock().waiting.remove(&id).is_some()
    }

    pub fn answer(&self, id: u32, answer: Answer) {
        let waiter = self.lock().waiting.remove(&id);
        // No waiter: the caller gave up (deadline, cancel) and this is the late answer.
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }

    pub fn closed(&self) -> Option<Closed> {
        self.lock().closed.clone()
    }

    pub fn peer_shutting_down(&self, reason: String) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(Closed::ShuttingDown(reason));
        }
    }

    /// Fails every waiting call at once and ends every subscription.
    pub fn lose(&self, reason: LostReason) {
        let (waiting, subscribers) = {
            let mut state = self.lock();
            if matches!(state.closed, Some(Closed::Lost(_))) {
                return;
            }
            state.closed = Some(Closed::Lost(reason.clone()));
            (std::mem::take(&mut state.waiting), std::mem::take(&mut state.subscribers))
        };
        drop(subscribers);
        for (_, waiter) in waiting {
            let _ = waiter.send(Answer::Lost(reason.clone()));
        }
    }

    pub fn subscribe(&self, method: &str, tx: mpsc::Sender<super::Notification>) -> bool {
        let mut state = self.lock();
        if matches!(state.closed, Some(Closed::Lost(_))) {
            return false;
        }
        state.subscribers.entry(method.to_owned()).or_default().push(tx);
        true
    }

    /// Senders for a pushed notification; closed subscriptions are pruned on the way.
    pub fn subscribers(&self, method: &str) -> Vec<mpsc::Sender<super::Notification>> {
        let mut state = self.lock();
        let Some(list) = state.subscribers.get_mut(method) else { return Vec::new() };
        list.retain(|tx| !tx.is_closed());
        list.clone()
    }

    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}
