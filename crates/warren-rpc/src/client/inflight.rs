//! Calls waiting for their answer, by id, and the connection state that decides whether new
//! ones may start. Both live under one lock so that a call can never register after the
//! connection was declared lost (it would wait forever).

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

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
    /// The connection is held for a hand-over: a call waits ([`InFlight::unheld`]) and then
    /// goes on, here if the hand-over is undone, or never if the process is replaced.
    Held,
}

/// Where a call's answer is left for it: in the table itself rather than in a channel of its
/// own, which would cost an allocation and its own synchronisation per call, on top of this lock.
enum Slot {
    Waiting(Option<Waker>),
    Answered(Answer),
}

#[derive(Default)]
struct State {
    waiting: CallIdMap<Slot>,
    next_id: u32,
    closed: Option<Closed>,
    /// Why the writer task stopped, if it failed: the reason a call that can no longer be sent
    /// is given, since the reader may not have seen the end of the connection yet.
    write_failed: Option<LostReason>,
    subscribers: HashMap<String, Vec<mpsc::Sender<super::Notification>>>,
    held: bool,
}

/// Shared by the client handles and the reader task.
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    /// Woken when a hold ends.
    released: Notify,
}

/// What a held connection's calls are, for the image that carries it on.
#[derive(Debug, Clone)]
pub(crate) struct HeldCalls {
    /// The last id given: the next image goes on after it, so that no late answer to a call
    /// of this one is taken for an answer to a new call.
    pub last_id: u32,
    /// Calls whose answer has not come: their callers will be gone.
    pub waiting: Vec<u32>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves an id and a slot for its answer, unless the connection is closed; also says how
    /// many calls are waiting, this one included. The caller then waits with [`wait`], or
    /// gives up with [`forget`].
    ///
    /// [`wait`]: Self::wait
    /// [`forget`]: Self::forget
    pub fn register(&self) -> Result<(u32, usize), Closed> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Err(closed.clone());
        }
        if let Some(reason) = &state.write_failed {
            return Err(Closed::Lost(reason.clone()));
        }
        if state.held {
            return Err(Closed::Held);
        }
        // Ids wrap after 4 billion calls; skip 0 (reserved) and any id still waiting.
        let id = loop {
            state.next_id = state.next_id.wrapping_add(1);
            if state.next_id != 0 && !state.waiting.contains_key(&state.next_id) {
                break state.next_id;
            }
        };
        state.waiting.insert(id, Slot::Waiting(None));
        Ok((id, state.waiting.len()))
    }

    /// The answer to call `id`, once it comes.
    pub async fn wait(&self, id: u32) -> Answer {
        poll_fn(|cx| {
            let mut state = self.lock();
            match state.waiting.get_mut(&id) {
                Some(Slot::Waiting(waker)) => {
                    if !waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                Some(Slot::Answered(_)) => match state.waiting.remove(&id) {
                    Some(Slot::Answered(answer)) => Poll::Ready(answer),
                    _ => Poll::Ready(Answer::Lost(LostReason::ClosedLocally)),
                },
                // Only the caller removes its own slot, once it has its answer or gives up.
                None => Poll::Ready(Answer::Lost(LostReason::ClosedLocally)),
            }
        })
        .await
    }

    /// Forgets a call whose caller stopped waiting; true if no answer had come for it yet.
    pub fn forget(&self, id: u32) -> bool {
        matches!(self.lock().waiting.remove(&id), Some(Slot::Waiting(_)))
    }

    pub fn answer(&self, id: u32, answer: Answer) {
        let waker = {
            let mut state = self.lock();
            match state.waiting.get_mut(&id) {
                Some(slot @ Slot::Waiting(_)) => match std::mem::replace(slot, Slot::Answered(answer)) {
                    Slot::Waiting(waker) => waker,
                    Slot::Answered(_) => None,
                },
                // No slot: the caller gave up (deadline, cancel) and this is the late answer.
                // Answered already: a second answer to one id is ignored.
                _ => None,
            }
        };
        if let Some(waker) = waker {
            waker.wake();
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
        let (wakers, subscribers) = {
            let mut state = self.lock();
            if matches!(state.closed, Some(Closed::Lost(_))) {
                return;
            }
            state.closed = Some(Closed::Lost(reason.clone()));
            let mut wakers = Vec::new();
            for (id, slot) in &mut state.waiting {
                if let Slot::Waiting(waker) = slot {
                    wakers.extend(waker.take());
                    // Ids increase and wrap: "after" is a positive distance in wrapping arithmetic.
                    let never_read = last_read.is_some_and(|last| (id.wrapping_sub(last) as i32) > 0);
                    *slot = Slot::Answered(if never_read { Answer::NotRun } else { Answer::Lost(reason.clone()) });
                }
            }
            (wakers, std::mem::take(&mut state.subscribers))
        };
        drop(subscribers);
        wakers.into_iter().for_each(Waker::wake);
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

    /// Stops new calls from starting (they wait in [`unheld`](Self::unheld)), unless the
    /// connection is closed; says what the calls are.
    pub fn hold(&self) -> Result<HeldCalls, Closed> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Err(closed.clone());
        }
        if state.held {
            return Err(Closed::Held);
        }
        state.held = true;
        Ok(state.calls())
    }

    /// The calls of a held connection, as they are now.
    pub fn held_calls(&self) -> HeldCalls {
        self.lock().calls()
    }

    /// Lets new calls start again.
    pub fn release(&self) {
        self.lock().held = false;
        self.released.notify_waiters();
    }

    /// Waits until the connection is not held.
    pub async fn unheld(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.lock().held {
                return;
            }
            released.await;
        }
    }

    /// Goes on from the calls of a connection carried over from another process.
    pub fn carried_on(calls: &HeldCalls) -> InFlight {
        let in_flight = InFlight::default();
        in_flight.lock().next_id = calls.last_id;
        in_flight
    }

    /// Calls waiting for their answer.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.values().filter(|slot| matches!(slot, Slot::Waiting(_))).count()
    }
}

impl State {
    fn calls(&self) -> HeldCalls {
        let waiting = self.waiting.iter().filter(|(_, slot)| matches!(slot, Slot::Waiting(_))).map(|(id, _)| *id);
        HeldCalls { last_id: self.next_id, waiting: waiting.collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn answered(in_flight: &InFlight, id: u32) -> Option<Answer> {
        in_flight.wait(id).now_or_never()
    }

    #[test]
    fn calls_after_the_servers_last_read_id_fail_as_not_run() {
        let in_flight = InFlight::default();
        let ids: Vec<u32> = (0..3).map(|_| in_flight.register().expect("open").0).collect();
        in_flight.lose(LostReason::PeerShutDown, Some(ids[1]));
        let answers: Vec<bool> =
            ids.iter().map(|id| matches!(answered(&in_flight, *id), Some(Answer::NotRun))).collect();
        assert_eq!(answers, [false, false, true], "only the call after the last read one never ran");
    }

    #[test]
    fn the_comparison_survives_id_wrap_around() {
        let in_flight = InFlight::default();
        in_flight.lock().next_id = u32::MAX - 1;
        let (before, _) = in_flight.register().expect("open");
        let (after, _) = in_flight.register().expect("open");
        assert_eq!((before, after), (u32::MAX, 1), "0 is skipped");
        in_flight.lose(LostReason::PeerShutDown, Some(before));
        assert!(matches!(answered(&in_flight, before), Some(Answer::Lost(_))));
        assert!(matches!(answered(&in_flight, after), Some(Answer::NotRun)));
    }

    #[test]
    fn an_answer_waits_in_its_slot_and_a_late_one_is_dropped() {
        let in_flight = InFlight::default();
        let (id, waiting) = in_flight.register().expect("open");
        assert_eq!(waiting, 1);
        assert!(answered(&in_flight, id).is_none(), "nothing yet");
        in_flight.answer(id, Answer::Untyped("first".into()));
        in_flight.answer(id, Answer::Untyped("second".into()));
        assert!(matches!(answered(&in_flight, id), Some(Answer::Untyped(text)) if text == "first"));
        assert_eq!(in_flight.waiting(), 0, "the slot is gone with its answer");
        let (gave_up, _) = in_flight.register().expect("open");
        assert!(in_flight.forget(gave_up), "was still waiting");
        in_flight.answer(gave_up, Answer::Untyped("late".into()));
        assert_eq!(in_flight.waiting(), 0);
    }
}
