//! Every program's log writer, as the host's [`LogSink`]: each line is recorded, then handed on
//! to the terminal output. Readers find the writers here and wait here for new records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use warren::{LogLine, LogSink, Stream};

use super::record;
use super::writer::{Flushed, Limits, Writer};

/// How often buffered records are written out, at the latest.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Says something to the user (through `warren up`'s output).
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// The log files of an instance's programs.
pub struct Store {
    dir: PathBuf,
    names: Vec<String>,
    index: HashMap<String, usize>,
    writers: Vec<Mutex<Writer>>,
    /// Bumped whenever records reach a file: what waiting readers watch.
    changed: watch::Sender<u64>,
    echo: Arc<dyn LogSink>,
    say: Say,
    /// `up` is ending: readers stop waiting for more.
    closed: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).field("programs", &self.names).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating as needed) the files of `programs` in `dir`; every line goes on to `echo`.
    pub fn open(
        dir: &Path,
        programs: impl IntoIterator<Item = (String, Limits)>,
        echo: Arc<dyn LogSink>,
        say: Say,
    ) -> Store {
        let (names, writers): (Vec<String>, Vec<Mutex<Writer>>) = programs
            .into_iter()
            .map(|(name, limits)| (name.clone(), Mutex::new(Writer::open(dir, &name, limits))))
            .unzip();
        let index = names.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect();
        let (changed, _) = watch::channel(0);
        Store { dir: dir.to_path_buf(), names, index, writers, changed, echo, say, closed: AtomicBool::new(false) }
    }

    /// The programs, in the order of the configuration.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// One program's writer. A pump that panicked holding it leaves a usable writer.
    pub fn writer(&self, program: usize) -> MutexGuard<'_, Writer> {
        self.writers[program].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lines of `name` that could not be written.
    pub fn lost(&self, name: &str) -> u64 {
        self.find(name).map_or(0, |i| self.writer(i).lost())
    }

    /// Writes everything out and wakes every waiting reader for good: nothing more will come.
    pub fn close(&self) {
        self.flush_all();
        self.closed.store(true, Ordering::SeqCst);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn settle(&self, flushed: Flushed) {
        if let Some(report) = flushed.report {
            (self.say)(&report);
        }
        if flushed.wrote {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Writes out what `program` has buffered.
    pub fn flush(&self, program: usize) {
        let flushed = self.writer(program).flush();
        self.settle(flushed);
    }

    pub fn flush_all(&self) {
        for program in 0..self.writers.len() {
            self.flush(program);
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until the store is dropped elsewhere.
    pub fn spawn_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                // Disk writes are blocking calls: off the runtime's workers.
                let _ = tokio::task::spawn_blocking(move || store.flush_all()).await;
            }
        })
    }
}

impl LogSink for Store {
    fn line(&self, line: LogLine) {
        if let Some(program) = self.find(&line.child) {
            let time = record::time_text(SystemTime::now());
            let text = line.to_string();
            let flushed = self.writer(program).push(&time, line.pid, line.stream.into(), &text);
            self.settle(flushed);
        }
        self.echo.line(line);
    }

    fn closed(&self, child: &str, stream: Stream) {
        // A program that ended has its last lines in the file at once.
        if let Some(program) = self.find(child) {
            self.flush(program);
        }
        self.echo.closed(child, stream);
    }
}
