//! `warren up`'s own stdout, written by a thread of its own so that a reader that stops reading
//! (`warren up | less` left unscrolled, Ctrl-S, a slow `ssh`) never blocks the runtime: the
//! pipe pumps, the control socket and the signal handling go on while the write waits.
//!
//! Lines wait in a queue bounded in bytes. When it is full, new lines for the terminal are
//! skipped and counted, and once the reader takes lines again a notice of how many were skipped
//! is printed where they would have been. Nothing is lost for good: the log files keep every
//! line (`warren logs`).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, SystemTime};

use anstyle::Style;

/// How many bytes of programs' lines may wait for a slow reader: enough for a burst of a few
/// thousand lines, small enough to stay out of the way of `up`'s memory bound.
pub const QUEUE_BYTES: usize = 1 << 20;

/// Room past [`QUEUE_BYTES`] for warren's own lines ("stopping", "stopped"), which are few and
/// are what a user scrolling back after a stall looks for; bounded all the same, against a
/// flood of diagnostics.
pub const OWN_RESERVE_BYTES: usize = 256 << 10;

/// What waits for the writer thread.
enum Entry {
    /// One line or several, with what they cost (see [`cost`]).
    Lines(String, usize),
    /// Lines skipped at this place in the output.
    Skipped(u64),
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// What the queued lines cost (see [`cost`]), up to [`QUEUE_BYTES`] (+ the reserve).
    bytes: usize,
    /// Lines skipped since the last entry queued (or the last notice).
    skipped: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    timestamps: bool,
    /// The width names are padded to, for warren's own lines written from outside [`Output`].
    ///
    /// [`Output`]: crate::output::Output
    width: AtomicUsize,
    /// Whether programs' control characters are shown escaped: on a terminal, an ESC sequence
    /// printed by a program could retitle the window, move the cursor over warren's own lines
    /// or worse.
    escape: bool,
    colour: bool,
    /// Whatever is written is thrown away (stdout is `/dev/null`): programs' lines are not
    /// made at all. In a flood into log files, making them cost a fifth of `up`'s CPU.
    discards: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Terminal {
    shared: Arc<Shared>,
    done: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Terminal {
    /// Starts the writer thread on stdout; with `timestamps`, every line starts with the time it
    /// was produced (RFC 3339, UTC, milliseconds).
    pub fn start(timestamps: bool) -> std::io::Result<Terminal> {
        // anstream strips the colour when stdout is not a terminal or NO_COLOR is set; the
        // buffer turns a batch of lines into one write.
        let choice = anstream::AutoStream::choice(&std::io::stdout());
        let raw: Box<dyn Write + Send> = Box::new(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()));
        let escape = std::io::IsTerminal::is_terminal(&std::io::stdout());
        // Without colour, lines are made without styles rather than made and then stripped:
        // stripping every line cost a tenth of `up`'s CPU in a flood.
        // `up > /dev/null` (a service manager's unit, a benchmark) shows nobody programs' lines.
        let discards = is_dev_null(&std::io::stdout());
        match choice {
            anstream::ColorChoice::Never => Terminal::start_with(raw, timestamps, escape, false, discards),
            _ => {
                let out = Box::new(anstream::AutoStream::new(raw, choice));
                Terminal::start_with(out, timestamps, escape, true, discards)
            }
        }
    }

    /// Starts the writer thread on `out`; `colour`: whether names are styled.
    pub fn start_on(
        out: Box<dyn Write + Send>,
        timestamps: bool,
        escape: bool,
        colour: bool,
    ) -> std::io::Result<Terminal> {
        Terminal::start_with(out, timestamps, escape, colour, false)
    }

    fn start_with(
        out: Box<dyn Write + Send>,
        timestamps: bool,
        escape: bool,
        colour: bool,
        discards: bool,
    ) -> std::io::Result<Terminal> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            timestamps,
            width: AtomicUsize::new("warren".len()),
            escape,
            colour,
            discards,
        });
        let (done_tx, done) = mpsc::channel();
        let writer = Arc::clone(&shared);
        std::thread::Builder::new().name("warren-terminal".into()).spawn(move || {
            write_loop(&writer, out);
            let _ = done_tx.send(());
        })?;
        Ok(Terminal { shared, done: Arc::new(Mutex::new(Some(done))) })
    }

    /// `style` where lines are coloured, no style where they are not: for text that carries its
    /// own styling (the level words of diagnostics), which is written as it is.
    pub fn styled(&self, style: Style) -> Style {
        if self.shared.colour { style } else { Style::new() }
    }

    /// Pads names to `width` (the longest program name) in warren's own lines.
    pub fn set_width(&self, width: usize) {
        self.shared.width.store(width, Ordering::Relaxed);
    }

    /// A program's line: `who | text`, `who` styled and padded; queued, or skipped if the
    /// reader is behind.
    pub fn line(&self, who: &str, style: Style, text: &str) {
        self.lines(who, style, std::iter::once(text), 1);
    }

    /// `count` lines of one program read at once, queued as one entry: one allocation, one
    /// lock and at most one wake-up for them all. Those that do not fit are skipped and counted.
    pub fn lines<'a>(&self, who: &str, style: Style, lines: impl Iterator<Item = &'a str>, count: usize) {
        if self.shared.discards {
            return;
        }
        // A flood into a full queue is counted without the cost of formatting each line.
        let room = QUEUE_BYTES.saturating_sub(self.shared.lock().bytes);
        let mut block = String::new();
        let (mut spent, mut shown) = (0, 0);
        if room > 0 {
            let head = line_head(&self.shared, who, style);
            for text in lines {
                let text = if self.shared.escape { escape_controls(text) } else { std::borrow::Cow::Borrowed(text) };
                let line_cost = cost(head.len() + text.len() + 1);
                if spent + line_cost > room {
                    break;
                }
                block.push_str(&head);
                block.push_str(&text);
                block.push('\n');
                spent += line_cost;
                shown += 1;
            }
        }
        self.push(block, spent, shown, count.saturating_sub(shown), QUEUE_BYTES);
    }

    /// A line of warren's own, with its reserve past the programs' bound.
    pub fn say(&self, text: &str) {
        let line = format_line(&self.shared, "warren", Style::new().bold(), text);
        let spent = cost(line.len());
        self.push(line, spent, 1, 0, QUEUE_BYTES + OWN_RESERVE_BYTES);
    }

    /// Queues `lines` lines (`text`, costing `spent`) unless that passes `limit`, then counts
    /// `skipped` more after them.
    fn push(&self, text: String, spent: usize, lines: usize, skipped: usize, limit: usize) {
        let mut queue = self.shared.lock();
        if queue.closed {
            return;
        }
        let mut skipped = skipped as u64;
        let mut was_empty = false;
        if lines > 0 && queue.bytes + spent > limit {
            skipped += lines as u64;
        } else if lines > 0 {
            // The writer waits only on an empty queue: a wake-up per line cost more than the line.
            was_empty = queue.entries.is_empty();
            let before = std::mem::take(&mut queue.skipped);
            if before > 0 {
                queue.entries.push_back(Entry::Skipped(before));
            }
            queue.bytes += spent;
            queue.entries.push_back(Entry::Lines(text, spent));
        }
        queue.skipped += skipped;
        drop(queue);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// Waits at most `bound` until everything queued so far is written, and goes on taking
    /// lines (before `up` hands over to a new image, which writes to the same terminal).
    pub fn drain(&self, bound: Duration) {
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            let queue = self.shared.lock();
            if queue.entries.is_empty() && queue.bytes == 0 {
                return;
            }
            drop(queue);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Writes what is queued and ends the thread, waiting at most `bound` for a reader that
    /// does not read; lines sent after this are dropped.
    pub fn finish(&self, bound: Duration) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(done) = done {
            let _ = done.recv_timeout(bound);
        }
    }
}

fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    // Taken in batches so that the lock is never held across a write.
    let mut batch = Vec::new();
    loop {
        {
            let mut queue = shared.lock();
            while queue.entries.is_empty() && queue.skipped == 0 && !queue.closed {
                queue = shared.wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
            if queue.entries.is_empty() && queue.skipped > 0 {
                // Caught up after a skip with nothing new queued: say so now, not at the next line.
                let skipped = std::mem::take(&mut queue.skipped);
                queue.entries.push_back(Entry::Skipped(skipped));
            }
            if queue.entries.is_empty() && queue.closed {
                let _ = out.flush();
                return;
            }
            batch.extend(queue.entries.drain(..));
        }
        for entry in batch.drain(..) {
            // A closed stdout (`warren up | head`) must not take the supervisor down: lines are
            // still taken off the queue, and go nowhere.
            let _ = match entry {
                Entry::Lines(lines, spent) => {
                    let written = out.write_all(lines.as_bytes());
                    shared.lock().bytes -= spent;
                    written
                }
                Entry::Skipped(n) => {
                    let text = format!("… {} lines not shown; `warren logs` has them", thousands(n));
                    out.write_all(format_line(shared, "warren", Style::new().bold(), &text).as_bytes())
                }
            };
        }
        let _ = out.flush();
    }
}

/// Whether `out` is `/dev/null` (the same character device), where writing is only a cost.
fn is_dev_null(out: &impl std::os::fd::AsFd) -> bool {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    // A duplicate of the descriptor, for its metadata: std has no fstat on a borrowed one.
    let Ok(fd) = out.as_fd().try_clone_to_owned() else { return false };
    let (Ok(out), Ok(null)) = (std::fs::File::from(fd).metadata(), std::fs::metadata("/dev/null")) else {
        return false;
    };
    out.file_type().is_char_device() && null.file_type().is_char_device() && out.rdev() == null.rdev()
}

/// What a queued line of `len` bytes costs in memory: its text, and a queue entry's and an
/// allocation's overhead, so that a flood of empty lines is bounded as well as one of long ones
/// (counted per line even where lines share an entry).
fn cost(len: usize) -> usize {
    len + 64
}

/// What starts a line as printed: `[time ]who | `.
fn line_head(shared: &Shared, who: &str, style: Style) -> String {
    let width = shared.width.load(Ordering::Relaxed);
    let time = match shared.timestamps {
        true => format!("{} ", humantime::format_rfc3339_millis(SystemTime::now())),
        false => String::new(),
    };
    let style = if shared.colour { style } else { Style::new() };
    format!("{time}{style}{who:<width$}{style:#} | ")
}

/// One line as printed: `[time ]who | text\n`.
fn format_line(shared: &Shared, who: &str, style: Style, text: &str) -> String {
    let mut line = line_head(shared, who, style);
    line.push_str(text);
    line.push('\n');
    line
}

/// `text` with every control character but tab shown as `\xNN` (C1 controls as `\u{NN}`), so
/// that what a program prints cannot drive the terminal. Borrowed when there is none.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\t';
    if !text.contains(is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !is_control(c) => out.push(c),
            c if c.is_ascii() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_tabs_and_text_kept() {
        assert_eq!(escape_controls("plain\ttext é"), "plain\ttext é");
        assert_eq!(escape_controls("\x1b]0;owned\x07\x1b[2J\r\u{9b}x"), "\\x1b]0;owned\\x07\\x1b[2J\\x0d\\u{9b}x");
    }

    #[test]
    fn only_dev_null_is_taken_for_dev_null() {
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("/dev/null");
        assert!(is_dev_null(&null));
        let file = tempfile::tempfile().expect("a temporary file");
        assert!(!is_dev_null(&file));
        let zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
        assert!(!is_dev_null(&zero), "another character device");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12345), "12,345");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    /// A writer that blocks until told to go on, like a pipe nobody reads.
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = cv.wait(open).unwrap_or_else(PoisonError::into_inner);
            }
            self.written.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_skips_lines_without_blocking_and_says_how_many_in_place() {
        stalled_writer(|terminal, text, total| {
            for _ in 0..total {
                terminal.line("p", Style::new(), text);
            }
        });
    }

    #[test]
    fn a_stalled_writer_skips_batches_in_part_and_counts_every_line() {
        stalled_writer(|terminal, text, total| {
            // Batches of 7 do not divide the queue's room: one is cut short where it fills.
            for start in (0..total).step_by(7) {
                let n = 7.min(total - start);
                terminal.lines("p", Style::new(), std::iter::repeat_n(text, n), n);
            }
        });
    }

    fn stalled_writer(push: impl Fn(&Terminal, &str, usize)) {
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate { open: Arc::clone(&open), written: Arc::clone(&written) };
        let terminal = Terminal::start_on(Box::new(gate), false, false, true).expect("writer thread");
        let text = "x".repeat(100);
        let started = std::time::Instant::now();
        let total = 3 * QUEUE_BYTES / 100;
        push(&terminal, &text, total);
        terminal.say("while full");
        assert!(started.elapsed() < Duration::from_secs(5), "pushing never waits for the writer");
        {
            let (lock, cv) = &*open;
            *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
            cv.notify_all();
        }
        let drained = std::time::Instant::now() + Duration::from_secs(10);
        while terminal.shared.lock().bytes > 0 && std::time::Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(5));
        }
        terminal.say("after");
        terminal.finish(Duration::from_secs(10));
        let written = String::from_utf8(written.lock().unwrap_or_else(PoisonError::into_inner).clone()).expect("utf8");
        // The gate is no terminal adapter: warren's bold name is still in escapes here.
        let written = anstream::adapter::strip_str(&written).to_string();
        let lines: Vec<&str> = written.lines().collect();
        let shown = lines.iter().filter(|l| l.ends_with(&text)).count();
        let notice = lines.iter().position(|l| l.contains("lines not shown")).expect("a notice");
        let skipped: u64 = lines[notice]
            .split("… ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .map(|n| n.replace(',', "").parse().expect("a count"))
            .expect("a count");
        assert!(shown < total, "some lines were skipped");
        assert_eq!(shown as u64 + skipped, total as u64, "every line is shown or counted");
        assert_eq!(lines.last().copied(), Some("warren | after"), "the notice comes before later lines");
        assert!(lines[..notice].iter().all(|l| l.ends_with(&text)), "the notice is where the skip was");
        assert_eq!(lines[notice + 1], "warren | while full", "warren's own line had room");
    }
}
