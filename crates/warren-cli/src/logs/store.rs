//! Every program's log writer, as the host's [`LogSink`]: each line is recorded, then handed on
//! to the terminal output. Readers find the writers here and wait here for new records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use warren::{LineBatch, LogLine, LogSink, Stream};

use super::writer::{Flushed, Limits, Writer};

/// How often buffered records are written out, at the latest.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How many programs an instance can log, those added by reloads included: a bound on the
/// writers it keeps.
pub const MAX_PROGRAMS: usize = 1024;

/// Says something to the user (through `warren up`'s output).
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// The log files of an instance's programs.
pub struct Store {
    dir: PathBuf,
    /// Every program's name and place, the configuration's first, then those a reload added.
    programs: RwLock<(Vec<String>, HashMap<String, usize>)>,
    /// Places for [`MAX_PROGRAMS`] writers, filled in order and never emptied, so that a
    /// program's number stays valid for readers while a reload adds others.
    writers: Vec<OnceLock<Mutex<Writer>>>,
    /// Bumped whenever records reach a file: what waiting readers watch.
    changed: watch::Sender<u64>,
    echo: Arc<dyn LogSink>,
    say: Say,
    /// `up` is ending: readers stop waiting for more.
    closed: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).field("programs", &self.names()).finish_non_exhaustive()
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
        let (changed, _) = watch::channel(0);
        let writers = std::iter::repeat_with(OnceLock::new).take(MAX_PROGRAMS).collect();
        let places = RwLock::new((Vec::new(), HashMap::new()));
        let store = Store {
            dir: dir.to_path_buf(),
            programs: places,
            writers,
            changed,
            echo,
            say,
            closed: AtomicBool::new(false),
        };
        for (name, limits) in programs {
            store.add(&name, limits);
        }
        store
    }

    /// Opens the files of a program a reload added (a program it has already is left as it
    /// is). Past [`MAX_PROGRAMS`], the program's lines are shown but not recorded, and said so.
    pub fn add(&self, name: &str, limits: Limits) {
        let mut programs = self.programs.write().unwrap_or_else(PoisonError::into_inner);
        if programs.1.contains_key(name) {
            return;
        }
        let place = programs.0.len();
        let Some(slot) = self.writers.get(place) else {
            (self.say)(&format!(
                "{name}: not recorded in a log file: this instance logs at most {MAX_PROGRAMS} programs"
            ));
            return;
        };
        let _ = slot.set(Mutex::new(Writer::open(&self.dir, name, limits)));
        programs.0.push(name.to_owned());
        programs.1.insert(name.to_owned(), place);
    }

    /// The programs, in the order of the configuration, then those added by reloads.
    pub fn names(&self) -> Vec<String> {
        self.programs.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.programs.read().unwrap_or_else(PoisonError::into_inner).1.get(name).copied()
    }

    fn count(&self) -> usize {
        self.programs.read().unwrap_or_else(PoisonError::into_inner).0.len()
    }

    /// One program's writer (a number from [`find`](Self::find) or [`names`](Self::names)). A
    /// pump that panicked holding it leaves a usable writer.
    pub fn writer(&self, program: usize) -> MutexGuard<'_, Writer> {
        match self.writers.get(program).and_then(OnceLock::get) {
            Some(writer) => writer.lock().unwrap_or_else(PoisonError::into_inner),
            // Numbers come from `find` and `names`, which only give out filled places.
            None => unreachable!("no log writer number {program}"),
        }
    }

    /// Each program's current file generation, for an upgrade to carry across.
    pub fn generations(&self) -> std::collections::BTreeMap<String, u64> {
        self.names().into_iter().enumerate().map(|(i, name)| (name, self.writer(i).end().0)).collect()
    }

    /// Takes up the generations the image before an upgrade had reached.
    pub fn carry_on_from(&self, generations: &std::collections::BTreeMap<String, u64>) {
        for (name, &generation) in generations {
            if let Some(i) = self.find(name) {
                self.writer(i).carry_on_from(generation);
            }
        }
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
        for program in 0..self.count() {
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
            // Formatted straight into the buffer: a flood pays for no String per line.
            let time = humantime::format_rfc3339_micros(SystemTime::now());
            let text = match line.continues || line.unterminated {
                true => std::borrow::Cow::Owned(line.to_string()),
                false => std::borrow::Cow::Borrowed(line.text.as_str()),
            };
            let flushed = self.writer(program).push(time, line.pid, line.stream.into(), &text);
            self.settle(flushed);
        }
        self.echo.line(line);
    }

    fn lines(&self, batch: &LineBatch<'_>) {
        if let Some(program) = self.find(batch.child) {
            // One read, one time: the lines arrived together.
            let time = humantime::format_rfc3339_micros(SystemTime::now());
            let flushed = self.writer(program).push_all(time, batch.pid, batch.stream.into(), batch.lines());
            self.settle(flushed);
        }
        self.echo.lines(batch);
    }

    fn closed(&self, child: &str, stream: Stream) {
        // A program that ended has its last lines in the file at once.
        if let Some(program) = self.find(child) {
            self.flush(program);
        }
        self.echo.closed(child, stream);
    }

    fn flush(&self) {
        self.flush_all();
        self.echo.flush();
    }
}
