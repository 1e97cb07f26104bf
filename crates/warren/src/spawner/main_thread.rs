//! The spawner's loop on the process's main thread, for programs that hand over across exec
//! (docs/UPGRADE.md). The children's parent-death signal follows the thread that started them,
//! and only the thread that execs survives an exec — as the new image's main thread. With
//! every child started on the main thread and every exec made from it, all children of every
//! image have that one parent thread, whichever image started them.

use std::sync::OnceLock;
use std::sync::mpsc;

use super::{Job, serve};

static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// The main thread's job queue, if [`run`] serves one.
pub(super) fn jobs() -> Option<mpsc::Sender<Job>> {
    JOBS.get().cloned()
}

/// Runs `body` on a thread of its own while this thread (which must be the main thread) starts
/// every host's children and makes its hand-overs' execs; returns what `body` returns.
pub(crate) fn run<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    if !crate::sys::handover::is_main_thread() {
        return Err(std::io::Error::other("warren's spawner can only take over the main thread"));
    }
    let (jobs, queue) = mpsc::channel();
    if JOBS.set(jobs.clone()).is_err() {
        return Err(std::io::Error::other("the main thread already serves warren's spawner"));
    }
    // Every thread from here on starts with the stop signals blocked; one takes them once
    // they have handlers (`handover/signal_thread.rs`).
    crate::sys::handover::block_held_signals();
    crate::handover::signal_thread::start()?;
    let body = std::thread::Builder::new().name("main-body".into()).spawn(move || {
        let result = body();
        let _ = jobs.send(Job::Quit);
        result
    })?;
    serve(&queue);
    match body.join() {
        Ok(result) => Ok(result),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
