//! One line of a log file: how a record is written and read back.
//!
//! ```text
//! 2026-12-02T10:00:00.123456Z web[4242] out 42 | the text
//! ```
//!
//! Time (RFC 3339, UTC, microseconds), the program and the pid of the instance that printed it,
//! the stream (`out`/`err`), the program's sequence number, then ` | ` and the text as printed.
//! Text rather than JSON lines: the file reads in `less` and greps like the program's own output,
//! and the text needs no escaping (a line never holds a newline; the host splits on them). The
//! fixed-width UTC time also sorts as text, so merging and `--since` compare strings.

use std::time::SystemTime;

/// Which pipe a record came from, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn word(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }

    pub fn parse(word: &str) -> Option<Stream> {
        match word {
            "out" | "stdout" => Some(Stream::Out),
            "err" | "stderr" => Some(Stream::Err),
            _ => None,
        }
    }
}

impl From<warren::Stream> for Stream {
    fn from(stream: warren::Stream) -> Stream {
        match stream {
            warren::Stream::Stdout => Stream::Out,
            warren::Stream::Stderr => Stream::Err,
        }
    }
}

/// The length of the time field: `2026-12-02T10:00:00.123456Z`.
pub const TIME_LEN: usize = 27;

/// A record read back from a file; borrows the line it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub program: &'a str,
    pub pid: u32,
    pub stream: Stream,
    pub seq: u64,
    pub text: &'a str,
}

/// The time field of a record at `at`.
pub fn time_text(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

/// Appends one record (with its newline) to `out`: [`head`] and [`body`] in one, which is how
/// the writer makes a batch's records.
#[cfg(test)]
pub fn write(
    out: &mut Vec<u8>,
    time: impl std::fmt::Display,
    program: &str,
    pid: u32,
    stream: Stream,
    seq: u64,
    text: &str,
) {
    head(out, time, program, pid, stream);
    body(out, seq, text);
}

/// Appends what the records of one read share: `time program[pid] stream `.
pub fn head(out: &mut Vec<u8>, time: impl std::fmt::Display, program: &str, pid: u32, stream: Stream) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{time} {program}[{pid}] {} ", stream.word());
}

/// Appends the rest of a record after its [`head`]: `seq | text` and the newline. By hand
/// rather than `write!`: it runs once per line of a flood.
pub fn body(out: &mut Vec<u8>, seq: u64, text: &str) {
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.extend_from_slice(b" | ");
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
}

/// Parses one line (without its newline); `None` for a line that is not a record.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let (head, text) = line.split_once(" | ")?;
    let mut fields = head.split(' ');
    let time = fields.next().filter(|t| t.len() == TIME_LEN && t.ends_with('Z'))?;
    let (program, pid) = fields.next()?.strip_suffix(']')?.rsplit_once('[')?;
    let stream = Stream::parse(fields.next()?)?;
    let seq = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    Some(Record { time, program, pid: pid.parse().ok()?, stream, seq, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let mut out = Vec::new();
        let time = time_text(SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_780_000_000_123_456));
        write(&mut out, &time, "web", 4242, Stream::Err, 42, "a | b with | bars");
        let line = std::str::from_utf8(&out).expect("UTF-8");
        assert_eq!(line, format!("{time} web[4242] err 42 | a | b with | bars\n"));
        assert_eq!(time.len(), TIME_LEN);
        let record = parse(line.trim_end_matches('\n')).expect("a record");
        assert_eq!(
            record,
            Record { time: &time, program: "web", pid: 4242, stream: Stream::Err, seq: 42, text: "a | b with | bars" }
        );
    }

    #[test]
    fn lines_that_are_not_records_are_refused() {
        for line in ["", "garbage", "2026-12-02T10:00:00.123456Z web[1] out x | t", "2026 web[1] out 1 | t"] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }
}
