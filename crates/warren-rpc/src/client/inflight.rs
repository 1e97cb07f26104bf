//! Calls waiting for their answer, by id, and the connection state that decides whether new
//! ones may start. Both live under one lock so that a call can never register after the
//! connection was declared lost (it would wait forever).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ErrorCode, LostReason};
use crate::frame::CallIdMap;

/// What arrives for a call.
#[derive(Debug)]
pub(crate) enum Answer {
    Reply(Bytes),
    Error {
        code: ErrorCode,
        message: String,
        data: Option<Bytes>,
    },
    /// An error without a code (a JSON-RPC 1.0 server's string).
    Untyped(String),
    Lost(LostReason),
    /// The server shut down without ever reading this call.
    NotRun,
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
    waiting: CallIdMap<oneshot::Sender<Answer>>,
    next_id: u32,
    closed: Option<Closed>,
    /// Why the writer task stopped, if it failed: the reason a call that can no longer be sent
    /// is given, since the reader may not have seen the end of the connection yet.
    write_failed: Option<LostReason>,
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

    /// Reserves an id and a slot for its answer, unless the connection is closed; also says how
    /// many calls are waiting, this one included.
    pub fn register(&self) -> Result<(u32, oneshot::Receiver<Answer>, usize), Closed> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Err(closed.clone());
        }
        if let Some(reason) = &state.write_failed {
            return Err(Closed::Lost(reason.clone()));
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
        Ok((id, rx, state.waiting.len()))
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

    /// Records why the writer stopped. Calls in flight are left to the reader, which fails them
    /// when it sees the end, with the peer's own reason (its GOODBYE) when there is one.
    pub fn writer_failed(&self, reason: LostReason) {
        let mut state = self.lock();
        if state.write_failed.is_none() {
            state.write_failed = Some(reason);
        }
    }

    /// Why a frame could not be queued: the writer is gone, because the connection was lost,
    /// because writing failed, or else because this side closed it.
    pub fn unsendable(&self) -> LostReason {
        let state = self.lock();
        match (&state.closed, &state.write_failed) {
            (Some(Closed::Lost(reason)), _) | (_, Some(reason)) => reason.clone(),
            _ => LostReason::ClosedLocally,
        }
    }

    pub fn peer_shutting_down(&self, reason: String) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(Closed::ShuttingDown(reason));
        }
    }

    /// Fails every waiting call at once and ends every subscription. Calls numbered after
    /// `last_read` (the server's final word) were never read by the server: they fail as
    /// "shutting down" — never run, safe to retry — rather than as lost.
    pub fn lose(&self, reason: LostReason, last_read: Option<u32>) {
        let (waiting, subscribers) = {
            let mut state = self.lock();
            if matches!(state.closed, Some(Closed::Lost(_))) {
                return;
            }
            state.closed = Some(Closed::Lost(reason.clone()));
            (std::mem::take(&mut state.waiting), std::mem::take(&mut state.subscribers))
        };
        drop(subscribers);
        for (id, waiter) in waiting {
            // Ids increase and wrap: "after" is a positive distance in wrapping arithmetic.
            let never_read = last_read.is_some_and(|last| (id.wrapping_sub(last) as i32) > 0);
            let answer = if never_read { Answer::NotRun } else { Answer::Lost(reason.clone()) };
            let _ = waiter.send(answer);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_after_the_servers_last_read_id_fail_as_not_run() {
        let in_flight = InFlight::default();
        let mut receivers: Vec<_> =
            (0..3).map(|_| in_flight.register().map(|(id, rx, _)| (id, rx)).expect("open")).collect();
        let (last_read, _) = receivers[1];
        in_flight.lose(LostReason::PeerShutDown, Some(last_read));
        let answers: Vec<bool> =
            receivers.iter_mut().map(|(_, rx)| matches!(rx.try_recv(), Ok(Answer::NotRun))).collect();
        assert_eq!(answers, [false, false, true], "only the call after the last read one never ran");
    }

    #[test]
    fn the_comparison_survives_id_wrap_around() {
        let in_flight = InFlight::default();
        in_flight.lock().next_id = u32::MAX - 1;
        let (before, mut rx_before, _) = in_flight.register().expect("open");
        let (after, mut rx_after, _) = in_flight.register().expect("open");
        assert_eq!((before, after), (u32::MAX, 1), "0 is skipped");
        in_flight.lose(LostReason::PeerShutDown, Some(before));
        assert!(matches!(rx_before.try_recv(), Ok(Answer::Lost(_))));
        assert!(matches!(rx_after.try_recv(), Ok(Answer::NotRun)));
    }
}
