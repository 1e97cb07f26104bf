//! Lines a child prints, as the host sees them, and where they go.

use std::fmt;
use std::sync::Arc;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of a child's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The child's name as given in its spec.
    pub child: Arc<str>,
    /// The process id of the child that printed it: which instance of a restarted program.
    pub pid: u32,
    /// The pipe it came from.
    pub stream: Stream,
    /// Counts lines per child and stream from 1, so gaps and reordering are visible.
    pub seq: u64,
    /// The text, decoded lossily: invalid UTF-8 shows as U+FFFD rather than stopping the pump.
    pub text: String,
    /// The line was longer than the bound and continues in the next `LogLine`.
    pub continues: bool,
    /// The stream ended without a final newline after this text.
    pub unterminated: bool,
}

/// Shown after the text of a line that was split because it exceeded the length bound.
pub const SPLIT_MARKER: &str = " [line continues]";

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.continues {
            f.write_str(SPLIT_MARKER)?;
        }
        if self.unterminated {
            f.write_str(" [no newline at end]")?;
        }
        Ok(())
    }
}

/// Whole lines from one read of a pipe, all of one child and stream, valid UTF-8 and within the
/// length bound: what does not differ from line to line (the child, the time it was read, the
/// lock on a file) is paid for once per read rather than once per line.
#[derive(Debug, Clone, Copy)]
pub struct LineBatch<'a> {
    /// The child's name as given in its spec.
    pub child: &'a str,
    /// The process id of the child that printed them.
    pub pid: u32,
    /// The pipe they came from.
    pub stream: Stream,
    /// The sequence number of the first line; the others follow on, one each.
    pub first_seq: u64,
    /// The lines, each ended by `\n` (a `\r` before it is not part of the line).
    text: &'a str,
    /// Where each line's `\n` is in `text`: found once, by the pump, for every reader.
    ends: &'a [usize],
}

impl<'a> LineBatch<'a> {
    /// A batch of the lines of `text` that end at `ends`, the places of its every `\n` in order.
    pub(crate) fn new(
        child: &'a str,
        pid: u32,
        stream: Stream,
        first_seq: u64,
        text: &'a str,
        ends: &'a [usize],
    ) -> Self {
        LineBatch { child, pid, stream, first_seq, text, ends }
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Never true: a batch holds at least one line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The lines' texts, in order, without their line endings.
    pub fn lines(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let text = self.text;
        let starts = std::iter::once(0).chain(self.ends.iter().map(|end| end + 1));
        self.ends.iter().zip(starts).map(move |(&end, start)| {
            // `\n` is ASCII: every end and start is a character boundary.
            let line = text.get(start..end).unwrap_or_default();
            line.strip_suffix('\r').unwrap_or(line)
        })
    }

    /// The lines one by one, as [`LogSink::line`] takes them.
    pub fn to_log_lines(&self) -> impl Iterator<Item = LogLine> + use<'a> {
        let (child, pid, stream, first) = (Arc::<str>::from(self.child), self.pid, self.stream, self.first_seq);
        self.lines().zip(first..).map(move |(text, seq)| LogLine {
            child: Arc::clone(&child),
            pid,
            stream,
            seq,
            text: text.to_owned(),
            continues: false,
            unterminated: false,
        })
    }
}

/// Where children's lines and lifecycle events go. Called from the pump tasks, so
/// implementations must be quick and must not block.
pub trait LogSink: Send + Sync + 'static {
    /// One line of a child's output: a line cut at the length bound, the last one without a
    /// newline, or one that was not valid UTF-8.
    fn line(&self, line: LogLine);

    /// The whole lines of one read of a pipe, in order. By default, [`line`](Self::line) for
    /// each; a sink that can take them at once saves the cost of a `LogLine` per line.
    fn lines(&self, batch: &LineBatch<'_>) {
        for line in batch.to_log_lines() {
            self.line(line);
        }
    }

    /// A pipe reached end-of-file.
    fn closed(&self, child: &str, stream: Stream) {
        let _ = (child, stream);
    }

    /// Everything taken so far must reach its destination now: the host is about to be
    /// replaced by a hand-over (its pumps are held, nothing more comes until the next image).
    fn flush(&self) {}
}

/// Sends every line to `tracing` at INFO under target `warren::child`, with the child's name,
/// the stream and the sequence number as fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl LogSink for TracingSink {
    fn line(&self, line: LogLine) {
        tracing::info!(target: "warren::child", stream = line.stream.name(), seq = line.seq, "{}| {line}", line.child);
    }

    fn closed(&self, child: &str, stream: Stream) {
        tracing::info!(target: "warren::child", "pipe {child} {stream} has closed");
    }
}
