//! Under [`handover_main`](crate::handover_main) the stop signals are blocked in every thread
//! but one, this one, so that a hand-over can block them here too just before its exec. A
//! signal sent from then on is taken by no thread: it stays pending in the kernel, survives
//! the exec (pending signals and the mask do), and reaches the new image once its handlers are
//! installed — instead of being taken by a handler of the image that is going away and lost
//! with it. Without `handover_main` there is no such thread, and each call here acts on the
//! calling thread alone.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::sys::handover as sys;

enum Command {
    /// Handlers for these are installed (or their default action is wanted): let them in.
    Release(Vec<i32>),
    /// A hand-over's exec comes: block everything held.
    HoldAll,
    /// The exec failed: back to what was released.
    Restore,
}

type Ask = mpsc::Sender<(Command, mpsc::Sender<()>)>;

static THREAD: OnceLock<Mutex<Ask>> = OnceLock::new();

/// How long an answer from the thread may take (it does nothing but change its mask).
const ANSWER: Duration = Duration::from_secs(1);

/// Starts the thread; the caller (the main thread) has blocked the held signals, and the
/// thread starts with them blocked too, until they are released.
pub(crate) fn start() -> std::io::Result<()> {
    let (ask, asked) = mpsc::channel::<(Command, mpsc::Sender<()>)>();
    std::thread::Builder::new().name("warren-signals".into()).spawn(move || {
        let mut released: Vec<i32> = Vec::new();
        for (command, done) in asked {
            match command {
                Command::Release(signals) => {
                    sys::release_held_signals(signals.iter().copied());
                    released.extend(signals);
                }
                Command::HoldAll => sys::block_held_signals(),
                Command::Restore => sys::release_held_signals(released.iter().copied()),
            }
            let _ = done.send(());
        }
    })?;
    let _ = THREAD.set(Mutex::new(ask));
    Ok(())
}

/// Whether the thread carried `command` out; false without the thread.
fn ask(command: Command) -> bool {
    let Some(thread) = THREAD.get() else { return false };
    let (done, answered) = mpsc::channel();
    let sent = thread.lock().unwrap_or_else(PoisonError::into_inner).send((command, done)).is_ok();
    sent && answered.recv_timeout(ANSWER).is_ok()
}

/// `signals` have handlers now (or should have their default action): let them in.
pub(crate) fn release(signals: &[i32]) {
    if !ask(Command::Release(signals.to_vec())) {
        sys::release_held_signals(signals.iter().copied());
    }
}

/// Just before a hand-over's exec: no thread takes a stop signal from now on.
pub(crate) fn hold_all() {
    ask(Command::HoldAll);
}

/// The exec failed: signals are taken again as before.
pub(crate) fn restore() {
    ask(Command::Restore);
}
