//! Waiting with a bound: every wait in a test ends, and a failed one names what it waited for.

use std::time::{Duration, Instant};

/// The outer bound of a wait that normally takes well under a second: only a broken program
/// reaches it, so it is far from the expected time.
pub const BOUND: Duration = Duration::from_secs(30);

/// What a loaded two-CPU machine may add to a timer, a wake-up or a process's exit. An
/// assertion that something happened "at" a time allows this much after it.
pub const SLACK: Duration = Duration::from_secs(1);

/// Awaits `fut` for at most [`BOUND`]; past it, panics naming `what`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(BOUND, what, fut).await
}

/// Awaits `fut` for at most `bound`; past it, panics naming `what`.
pub async fn within_for<T>(bound: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, fut).await.unwrap_or_else(|_| panic!("{what} did not finish within {bound:?}"))
}

/// Polls `done` every 10 ms until it holds or `bound` passes; returns whether it held (checked
/// once more at the end, so a condition that became true just then counts).
pub async fn poll_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// The blocking form of [`poll_until`], for tests without a runtime.
pub fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}
