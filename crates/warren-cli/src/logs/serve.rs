//! The control methods behind `warren logs`: `Control.OpenLogs` finds where to start,
//! `Control.ReadLogs` returns the page after a cursor, waiting at the end when asked to.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use warren_rpc::HandlerError;

use super::api::{Cursor, OpenRequest, Opened, Page, Position, ReadRequest, Start};
use super::reader::{self, Matcher};
use super::store::Store;
use crate::control::codes;

/// The most rows a page holds, and about the most text (each program stops past its share by
/// one line at most, 64 KiB): a page stays well inside a control message's 16 MiB, even with
/// every byte escaped in JSON.
const MAX_ROWS: usize = 10_000;
const MAX_BYTES: usize = 2 * 1024 * 1024;
/// The longest a read waits at the end; the reader asks again.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// How many pages are read from the files at once, for every connection together: each holds up
/// to a chunk of the file and a page of rows (a few MiB), and reading is quick, so more at once
/// would only cost memory and starve the runtime of CPU.
const PAGES_AT_ONCE: usize = 2;

/// Who is reading. A reader asks for its next page once it has the last, so a connection has
/// one log request in flight at a time; more are refused rather than queued. A connection
/// whose answers are not read is then held to its server's `max_unwritten` plus one page, where
/// thousands of pipelined requests would each have built a page of its own.
#[derive(Debug)]
pub struct Readers {
    connections: Mutex<HashSet<u64>>,
    pages: Semaphore,
}

impl Default for Readers {
    fn default() -> Readers {
        Readers { connections: Mutex::new(HashSet::new()), pages: Semaphore::new(PAGES_AT_ONCE) }
    }
}

/// A connection's log request in flight; the place is freed when it ends (or is cancelled).
struct Reading {
    readers: Arc<Readers>,
    connection: u64,
}

impl Readers {
    fn enter(self: &Arc<Self>, connection: u64, method: &str) -> Result<Reading, HandlerError> {
        let mut connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        if !connections.insert(connection) {
            return Err(bad_request(format!(
                "{method} refused: this connection already has a log request in flight (ask for the next page once the last has come)"
            )));
        }
        Ok(Reading { readers: Arc::clone(self), connection })
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.readers.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.connection);
    }
}

/// Runs `work` on the blocking pool once one of the [`PAGES_AT_ONCE`] places is free.
async fn reading<T: Send + 'static>(
    readers: &Readers,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HandlerError> {
    // The semaphore is never closed.
    let _permit =
        readers.pages.acquire().await.map_err(|err| bad_request(format!("reading the logs failed: {err}")))?;
    blocking(work).await
}

fn bad_request(message: String) -> HandlerError {
    HandlerError::new(codes::BAD_REQUEST, message)
}

/// The programs named (all when none is), or the error that lists the known ones.
fn programs(store: &Store, names: &[String]) -> Result<Vec<usize>, HandlerError> {
    if names.is_empty() {
        return Ok((0..store.names().len()).collect());
    }
    names
        .iter()
        .map(|name| {
            store.find(name).ok_or_else(|| {
                let known = store.names().join(", ");
                HandlerError::new(codes::UNKNOWN_PROGRAM, format!("unknown program {name:?} (known: {known})"))
            })
        })
        .collect()
}

fn matcher(request: &super::api::Filter) -> Result<Matcher, HandlerError> {
    Matcher::new(request).map_err(|err| bad_request(format!("invalid --grep pattern: {err}")))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, HandlerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| HandlerError::new(codes::BAD_REQUEST, format!("reading the logs failed: {err}")))
}

pub async fn open(
    store: Arc<Store>,
    readers: Arc<Readers>,
    connection: u64,
    request: OpenRequest,
) -> Result<Opened, HandlerError> {
    let _reading = readers.enter(connection, "Control.OpenLogs")?;
    let programs = programs(&store, &request.programs)?;
    let matcher = matcher(&request.filter)?;
    let cursor =
        reading(&readers, move || start(&store, &programs, &matcher, &request.start).map(|c| (store, c))).await?;
    let (store, cursor) = cursor?;
    Ok(Opened { programs: store.names().to_vec(), cursor })
}

fn start(store: &Store, programs: &[usize], matcher: &Matcher, start: &Start) -> Result<Cursor, HandlerError> {
    let name = |p: usize| store.names()[p].clone();
    match start {
        Start::Since(time) => {
            if time.len() != super::record::TIME_LEN {
                return Err(bad_request(format!(
                    "--since: expected a time such as 2026-12-02T10:00:00.000000Z, got {time:?}"
                )));
            }
            Ok(programs.iter().map(|&p| (name(p), reader::since(store, p, time))).collect())
        }
        Start::Tail(n) => {
            // Each program's last n, then the last n of them all: each program starts at its
            // earliest record among those.
            let mut all: Vec<(String, usize, Position)> = Vec::new();
            for &p in programs {
                store.flush(p);
                all.extend(reader::last(store, p, matcher, *n).into_iter().map(|(time, at)| (time, p, at)));
            }
            all.sort_by(|a, b| b.0.cmp(&a.0));
            all.truncate(*n);
            let mut cursor: Cursor = programs.iter().map(|&p| (name(p), reader::end(store, p))).collect();
            for (_, p, at) in all.into_iter().rev() {
                let entry = cursor.entry(name(p)).or_default();
                if (at.generation, at.offset) < (entry.generation, entry.offset) {
                    *entry = at;
                }
            }
            Ok(cursor)
        }
    }
}

pub async fn read(
    store: Arc<Store>,
    readers: Arc<Readers>,
    connection: u64,
    request: ReadRequest,
) -> Result<Page, HandlerError> {
    let _reading = readers.enter(connection, "Control.ReadLogs")?;
    let names: Vec<String> = request.cursor.keys().cloned().collect();
    let programs = programs(&store, &names)?;
    if programs.is_empty() {
        return Err(bad_request("no program to read".to_owned()));
    }
    let matcher = Arc::new(matcher(&request.filter)?);
    let limit = request.limit.clamp(1, MAX_ROWS);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.wait_ms).min(MAX_WAIT);
    let mut changed = store.subscribe();
    let mut cursor = request.cursor;
    let mut flushed = false;
    loop {
        // Marked seen before reading: a change after the read wakes the wait below.
        changed.borrow_and_update();
        let (store2, matcher2, programs2) = (Arc::clone(&store), Arc::clone(&matcher), programs.clone());
        let page = reading(&readers, move || page(&store2, &programs2, &matcher2, cursor, limit)).await?;
        let (page, at_end) = page;
        if !page.rows.is_empty() || !at_end {
            return Ok(page);
        }
        cursor = page.cursor;
        if !flushed {
            // At the end: what is still buffered is worth writing out now rather than in 100 ms.
            flushed = true;
            let (store2, programs2) = (Arc::clone(&store), programs.clone());
            blocking(move || programs2.iter().for_each(|&p| store2.flush(p))).await?;
            continue;
        }
        if store.is_closed() || tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
            let at_end = names.clone();
            return Ok(Page { rows: Vec::new(), cursor, at_end });
        }
    }
}

/// One page, and whether every program is at its end.
fn page(store: &Store, programs: &[usize], matcher: &Matcher, mut cursor: Cursor, limit: usize) -> (Page, bool) {
    let budget = (MAX_BYTES / programs.len().max(1)).max(8 * 1024);
    let share = (limit / programs.len().max(1)).max(limit.min(500));
    let mut rows = Vec::new();
    let mut at_end = Vec::new();
    for &p in programs {
        let name = &store.names()[p];
        let at = cursor.get(name).copied().unwrap_or_default();
        let batch = reader::rows(store, p, at, matcher, share, budget);
        cursor.insert(name.clone(), batch.end);
        if batch.at_end {
            at_end.push(name.clone());
        }
        rows.extend(batch.rows);
    }
    let all = at_end.len() == programs.len();
    (Page { rows, cursor, at_end }, all)
}
