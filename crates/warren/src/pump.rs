//! Reads a child's stdout or stderr from spawn to end-of-file, line by line, with a bound on
//! line length, and hands each line to the log sink.
//!
//! It never stops early: a reader that quits makes the child die of EPIPE on its next write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::log::{LineBatch, LogLine, LogSink, Stream};

/// The last lines of stderr, kept to explain a child that fails before it is ready.
#[derive(Debug, Default)]
pub struct Tail {
    lines: Mutex<VecDeque<String>>,
}

const TAIL_LINES: usize = 20;

impl Tail {
    fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

/// Pumps `pipe` into `sink` until end-of-file or a read error; returns the number of lines.
#[cfg(test)]
pub async fn pump<R: AsyncRead + Unpin>(
    pipe: R,
    child: Arc<str>,
    pid: u32,
    stream: Stream,
    max_line: usize,
    sink: Arc<dyn LogSink>,
    tail: Option<Arc<Tail>>,
) -> u64 {
    pump_held(pipe, PumpOf { child, pid, stream, max_line, sink, tail }, Carried::default(), None).await
}

/// Where a pump stands between two reads, for a hand-over across exec: how many lines it has
/// numbered, and the start of a line whose end it has not read yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Carried {
    pub seq: u64,
    pub rest: Vec<u8>,
}

/// What a pump reports to a hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PumpAt {
    Reading,
    /// Holding between reads, nothing half-read: this is where it stands.
    Held(Carried),
    /// The pipe reached end-of-file.
    Ended,
}

/// Lets a pump be held between reads while `held` is true, reporting where it stands on `at`.
pub(crate) struct Hold {
    pub held: tokio::sync::watch::Receiver<bool>,
    pub at: tokio::sync::watch::Sender<PumpAt>,
}

/// Whose lines a pump reads, and where they go.
pub(crate) struct PumpOf {
    pub child: Arc<str>,
    pub pid: u32,
    pub stream: Stream,
    pub max_line: usize,
    pub sink: Arc<dyn LogSink>,
    pub tail: Option<Arc<Tail>>,
}

/// [`pump`], going on from `from` (what an earlier image of the host had read), and holding
/// between reads whenever `hold` says so.
pub(crate) async fn pump_held<R: AsyncRead + Unpin>(
    mut pipe: R,
    of: PumpOf,
    from: Carried,
    mut hold: Option<Hold>,
) -> u64 {
    let PumpOf { child, pid, stream, max_line, sink, tail } = of;
    let mut lines =
        Lines { child, pid, stream, max_line: max_line.max(1), sink, tail, seq: from.seq, ends: Vec::new() };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BYTES.max(from.rest.len()));
    buf.extend_from_slice(&from.rest);
    loop {
        // What is left from the last read holds no newline, so the last newline in the buffer
        // ends the whole lines this read completed: they go on together.
        if let Some(last) = memchr::memrchr(b'\n', &buf) {
            lines.whole(&buf[..=last]);
            buf.drain(..=last);
        }
        // No newline in what is left: cut off bound-sized pieces now rather than buffer a line
        // without limit.
        let rest_len = lines.long_prefix(&buf).len();
        buf.drain(..buf.len() - rest_len);
        if buf.capacity() - buf.len() < READ_BYTES / 16 {
            buf.reserve(READ_BYTES);
        }
        let step = match hold.as_mut() {
            None => Step::Read(pipe.read_buf(&mut buf).await),
            // `read_buf` is cancel-safe: when the hold wins, nothing was read.
            Some(hold) => tokio::select! {
                biased;
                Ok(_) = hold.held.wait_for(|held| *held) => Step::Hold,
                read = pipe.read_buf(&mut buf) => Step::Read(read),
            },
        };
        match step {
            Step::Read(Ok(0) | Err(_)) => break,
            Step::Read(Ok(_)) => {}
            Step::Hold => {
                if let Some(hold) = hold.as_mut() {
                    hold.at.send_replace(PumpAt::Held(Carried { seq: lines.seq, rest: buf.clone() }));
                    let _ = hold.held.wait_for(|held| !*held).await;
                    hold.at.send_replace(PumpAt::Reading);
                }
            }
        }
    }
    if !buf.is_empty() {
        lines.emit(&buf, false, true);
    }
    lines.sink.closed(&lines.child, stream);
    if let Some(hold) = &hold {
        hold.at.send_replace(PumpAt::Ended);
    }
    lines.seq
}

/// What a pump does next: go on with what a read returned, or hold.
enum Step {
    Read(std::io::Result<usize>),
    Hold,
}

/// How much one read asks for: a pipe's default capacity, so that a child printing as fast as it
/// can is emptied in one read.
const READ_BYTES: usize = 64 * 1024;

/// One pipe's lines on their way to the sink, numbered.
struct Lines {
    child: Arc<str>,
    pid: u32,
    stream: Stream,
    max_line: usize,
    sink: Arc<dyn LogSink>,
    tail: Option<Arc<Tail>>,
    seq: u64,
    /// Where the lines of the current read end (kept: no allocation per read).
    ends: Vec<usize>,
}

impl Lines {
    /// Hands on `text`, whole lines each ending in a newline: as one batch when it is valid
    /// UTF-8 with no line over the bound (a flood's every read), else line by line.
    fn whole(&mut self, text: &[u8]) {
        self.ends.clear();
        self.ends.extend(memchr::memchr_iter(b'\n', text));
        let mut start = 0;
        let within = self.ends.iter().all(|&end| {
            let line = end - start;
            start = end + 1;
            line <= self.max_line
        });
        if within && let Ok(text) = std::str::from_utf8(text) {
            let count = self.ends.len();
            let batch = LineBatch::new(&self.child, self.pid, self.stream, self.seq + 1, text, &self.ends);
            self.seq += count as u64;
            if let Some(tail) = &self.tail {
                // Only the last lines can stay in the tail.
                let skip = count.saturating_sub(TAIL_LINES);
                batch.lines().skip(skip).for_each(|line| tail.push(line));
            }
            self.sink.lines(&batch);
            return;
        }
        for line in text.split_inclusive(|&b| b == b'\n') {
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let rest = self.long_prefix(line);
            self.emit(rest, false, false);
        }
    }

    fn emit(&mut self, bytes: &[u8], continues: bool, unterminated: bool) {
        self.seq += 1;
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Some(tail) = &self.tail {
            tail.push(&text);
        }
        let child = Arc::clone(&self.child);
        self.sink.line(LogLine {
            child,
            pid: self.pid,
            stream: self.stream,
            seq: self.seq,
            text,
            continues,
            unterminated,
        });
    }

    /// Emits bound-sized pieces of `text` marked as continuing, as long as more than the bound
    /// remains; returns the remainder (at most the bound). Never cuts a UTF-8 sequence.
    fn long_prefix<'a>(&mut self, mut text: &'a [u8]) -> &'a [u8] {
        while text.len() > self.max_line {
            let mut cut = self.max_line;
            while cut > 1 && (text[cut] & 0b1100_0000) == 0b1000_0000 {
                cut -= 1;
            }
            self.emit(&text[..cut], true, false);
            text = &text[cut..];
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<LogLine>>);

    impl LogSink for Collect {
        fn line(&self, line: LogLine) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    }

    async fn lines_of(input: &[u8], max_line: usize) -> Vec<LogLine> {
        let sink = Arc::new(Collect::default());
        pump(input, Arc::from("c"), 1, Stream::Stdout, max_line, sink.clone(), None).await;
        sink.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records what arrives how: `(first seq, lines)` for a batch, `(seq, 0)` for a single line.
    #[derive(Default)]
    struct Shapes(Mutex<Vec<(u64, usize, String)>>);

    impl LogSink for Shapes {
        fn line(&self, line: LogLine) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((line.seq, 0, line.text));
        }

        fn lines(&self, batch: &LineBatch<'_>) {
            let text = batch.lines().collect::<Vec<_>>().join(",");
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((batch.first_seq, batch.len(), text));
        }
    }

    #[tokio::test]
    async fn whole_lines_of_a_read_go_on_as_one_batch_and_odd_ones_alone_numbered_on() {
        let sink = Arc::new(Shapes::default());
        let input: &[u8] = b"a\r\nb\nc\n";
        pump(input, Arc::from("c"), 1, Stream::Stdout, 100, sink.clone(), None).await;
        let bad: &[u8] = b"ok\n\xff\nlast";
        pump(bad, Arc::from("c"), 1, Stream::Stdout, 100, sink.clone(), None).await;
        let shapes = sink.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let expected = [
            (1, 3, "a,b,c"),
            // Invalid UTF-8 in a read: its lines one by one, decoded lossily.
            (1, 0, "ok"),
            (2, 0, "\u{fffd}"),
            (3, 0, "last"),
        ];
        let shapes: Vec<(u64, usize, &str)> = shapes.iter().map(|(s, n, t)| (*s, *n, t.as_str())).collect();
        assert_eq!(shapes, expected);
    }

    #[tokio::test]
    async fn splits_on_newlines_and_keeps_the_last_unterminated_line() {
        let lines = lines_of(b"one\r\ntwo\n\nlast", 100).await;
        let texts: Vec<(&str, u64, bool)> = lines.iter().map(|l| (l.text.as_str(), l.seq, l.unterminated)).collect();
        assert_eq!(texts, [("one", 1, false), ("two", 2, false), ("", 3, false), ("last", 4, true)]);
    }

    /// A pump held mid-line reports the partial line; a new pump on the same pipe going on
    /// from it (as a new image does after exec) numbers on with nothing lost or doubled.
    #[tokio::test]
    async fn a_held_pump_hands_its_partial_line_to_the_next() {
        use tokio::io::AsyncWriteExt;
        let sink = Arc::new(Collect::default());
        let (mut writer, reader) = tokio::io::duplex(1024);
        let (held_tx, held) = tokio::sync::watch::channel(false);
        let (at, mut seen) = tokio::sync::watch::channel(PumpAt::Reading);
        let of = |sink: &Arc<Collect>| PumpOf {
            child: Arc::from("c"),
            pid: 1,
            stream: Stream::Stdout,
            max_line: 100,
            sink: sink.clone(),
            tail: None,
        };
        let first = tokio::spawn(pump_held(reader, of(&sink), Carried::default(), Some(Hold { held, at })));
        writer.write_all(b"one\ntwo\npart").await.expect("write");
        while sink.0.lock().unwrap_or_else(PoisonError::into_inner).len() < 2 {
            tokio::task::yield_now().await;
        }
        held_tx.send_replace(true);
        let carried = match &*seen.wait_for(|at| matches!(at, PumpAt::Held(_))).await.expect("held") {
            PumpAt::Held(carried) => carried.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(carried, Carried { seq: 2, rest: b"part".to_vec() });
        first.abort();
        let (mut writer, reader) = tokio::io::duplex(1024);
        let second = tokio::spawn(pump_held(reader, of(&sink), carried, None));
        writer.write_all(b"ial\nthree\n").await.expect("write");
        drop(writer);
        assert_eq!(second.await.expect("pump"), 4);
        let lines = sink.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let texts: Vec<(&str, u64)> = lines.iter().map(|line| (line.text.as_str(), line.seq)).collect();
        assert_eq!(texts, [("one", 1), ("two", 2), ("partial", 3), ("three", 4)]);
    }

    #[tokio::test]
    async fn long_lines_are_split_with_a_marker_not_dropped() {
        let mut input = vec![b'x'; 25];
        input.push(b'\n');
        let lines = lines_of(&input, 10).await;
        let parts: Vec<(usize, bool)> = lines.iter().map(|l| (l.text.len(), l.continues)).collect();
        assert_eq!(parts, [(10, true), (10, true), (5, false)]);
        assert!(lines[0].to_string().ends_with(crate::log::SPLIT_MARKER));
    }

    #[tokio::test]
    async fn invalid_utf8_is_shown_not_fatal() {
        let lines = lines_of(b"ok\n\xff\xfe bad\nafter\n", 100).await;
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["ok", "\u{fffd}\u{fffd} bad", "after"]);
    }

    #[tokio::test]
    async fn a_split_never_cuts_a_character_in_half() {
        let lines = lines_of("ééééé\n".as_bytes(), 3).await;
        assert!(lines.iter().all(|l| !l.text.contains('\u{fffd}')), "{lines:?}");
        assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<String>(), "ééééé");
    }
}
