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

/// Where children's lines and lifecycle events go. Called from the pump tasks, one call per
/// line, so implementations must be quick and must not block.
pub trait LogSink: Send + Sync + 'static {
    /// One line of a child's output.
    fn line(&self, line: LogLine);

    /// A pipe reached end-of-file.
    fn closed(&self, child: &str, stream: Stream) {
        let _ = (child, stream);
    }
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
