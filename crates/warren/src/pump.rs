//! Reads a child's stdout or stderr from spawn to end-of-file, line by line, with a bound on
//! line length, and hands each line to the log sink.
//!
//! It never stops early: a reader that quits makes the child die of EPIPE on its next write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::log::{LogLine, LogSink, Stream};

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
pub async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    child: Arc<str>,
    pid: u32,
    stream: Stream,
    max_line: usize,
    sink: Arc<dyn LogSink>,
    tail: Option<Arc<Tail>>,
) -> u64 {
    let max_line = max_line.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut seq = 0u64;
    let mut emit = |bytes: &[u8], continues: bool, unterminated: bool| {
        seq += 1;
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Some(tail) = &tail {
            tail.push(&text);
        }
        sink.line(LogLine { child: Arc::clone(&child), pid, stream, seq, text, continues, unterminated });
    };
    // Where scanning for a newline resumes: bytes before it are known to hold none.
    let mut scanned = 0;
    loop {
        let mut start = 0;
        while let Some(offset) = memchr(b'\n', &buf[scanned..]) {
            let end = scanned + offset;
            let line = &buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let rest = emit_long_prefix(line, max_line, &mut emit);
            emit(rest, false, false);
            start = end + 1;
            scanned = start;
        }
        // No newline in what is left: cut off bound-sized pieces now rather than buffer a line
        // without limit.
        let rest_len = emit_long_prefix(&buf[start..], max_line, &mut emit).len();
        start = buf.len() - rest_len;
        buf.drain(..start);
        scanned = buf.len();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if !buf.is_empty() {
        emit(&buf, false, true);
    }
    sink.closed(&child, stream);
    seq
}

/// Emits bound-sized pieces of `text` marked as continuing, as long as more than `max_line`
/// bytes remain; returns the remainder (at most `max_line` bytes). Never cuts a UTF-8 sequence.
fn emit_long_prefix<'a>(mut text: &'a [u8], max_line: usize, emit: &mut impl FnMut(&[u8], bool, bool)) -> &'a [u8] {
    while text.len() > max_line {
        let mut cut = max_line;
        while cut > 1 && (text[cut] & 0b1100_0000) == 0b1000_0000 {
            cut -= 1;
        }
        emit(&text[..cut], true, false);
        text = &text[cut..];
    }
    text
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
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

    #[tokio::test]
    async fn splits_on_newlines_and_keeps_the_last_unterminated_line() {
        let lines = lines_of(b"one\r\ntwo\n\nlast", 100).await;
        let texts: Vec<(&str, u64, bool)> = lines.iter().map(|l| (l.text.as_str(), l.seq, l.unterminated)).collect();
        assert_eq!(texts, [("one", 1, false), ("two", 2, false), ("", 3, false), ("last", 4, true)]);
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
