//! Reading one program's files from a position: forwards across rotations (a page, a follow),
//! backwards in chunks (where the last N records start), and to a time (`--since`).
//!
//! Reads go through open file descriptors taken under the writer's lock, so a rotation that
//! renames or deletes a file while it is read changes nothing for the reader; the current
//! file is read only up to what the writer has committed, so a reader never sees half a record.

use std::fs::File;
use std::os::unix::fs::FileExt;

use regex::Regex;

use super::api::{Filter, GapReason, Line, Position, Row};
use super::record::{self, Record, Stream};
use super::store::Store;

/// How much of a file is read at once, at most; a forward read starts with [`FIRST_CHUNK`] and
/// doubles while it goes on, so a page of a few rows does not read a megabyte.
const CHUNK: usize = 1 << 20;
const FIRST_CHUNK: usize = 64 * 1024;
/// How much of the files one page reads at most, per program.
const READ_BUDGET: usize = 8 << 20;

/// Why a forward read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At the end of what has been written.
    End,
    /// The visitor declined a record; the position is at its start.
    Declined,
    /// The byte budget of the call is spent.
    Budget,
}

/// What a record looks like to a visitor: the record, the position before it, and
/// whether the reader lost its place (files rotated away) just before it.
pub struct Visit<'r, 'a> {
    pub record: &'r Record<'a>,
    pub before: Position,
    pub jumped: bool,
}

/// Visits the records after `pos` in order, reading about `budget` bytes at most; moves `pos`
/// past every record the visitor accepts.
pub fn forward(
    store: &Store,
    program: usize,
    pos: &mut Position,
    budget: usize,
    mut visit: impl FnMut(Visit<'_, '_>) -> bool,
) -> Stop {
    let mut read = 0;
    let mut jumped = false;
    let mut chunk = FIRST_CHUNK;
    let mut buf = Vec::new();
    loop {
        let (opened, (current, _), oldest) = {
            let writer = store.writer(program);
            (writer.open_generation(pos.generation), writer.end(), writer.oldest())
        };
        let Some((file, len)) = opened else {
            if pos.generation < oldest {
                *pos = Position { generation: oldest, offset: 0, seq: pos.seq };
                jumped = true;
                continue;
            }
            if pos.generation > current {
                // A position from some other run of `up`: start over at the oldest record.
                *pos = Position { generation: oldest, offset: 0, seq: None };
                continue;
            }
            return Stop::End;
        };
        if pos.offset >= len {
            if pos.generation < current {
                *pos = Position { generation: pos.generation + 1, offset: 0, seq: pos.seq };
                continue;
            }
            return Stop::End;
        }
        if read >= budget {
            return Stop::Budget;
        }
        let want = usize::try_from(len - pos.offset).unwrap_or(usize::MAX).min(chunk);
        buf.resize(want, 0);
        if file.read_exact_at(&mut buf, pos.offset).is_err() {
            return Stop::End;
        }
        let Some(last) = buf.iter().rposition(|&b| b == b'\n') else {
            if (want as u64) < len - pos.offset {
                chunk *= 2;
            } else {
                // Not a whole record at the end of an older file: nothing to read there.
                pos.offset = len;
            }
            continue;
        };
        read += last + 1;
        chunk = (chunk * 2).min(CHUNK).max(chunk);
        let text = String::from_utf8_lossy(&buf[..last]);
        for line in text.split('\n') {
            let offset = pos.offset + line.len() as u64 + 1;
            let Some(record) = record::parse(line) else {
                pos.offset = offset;
                continue;
            };
            let after = Position { generation: pos.generation, offset, seq: Some(record.seq) };
            if !visit(Visit { record: &record, before: *pos, jumped }) {
                return Stop::Declined;
            }
            jumped = false;
            *pos = after;
        }
    }
}

/// A [`Filter`] ready to use.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    stream: Option<Stream>,
    grep: Option<Regex>,
}

impl Matcher {
    pub fn new(filter: &Filter) -> Result<Matcher, regex::Error> {
        Ok(Matcher { stream: filter.stream, grep: filter.grep.as_deref().map(Regex::new).transpose()? })
    }

    pub fn matches(&self, record: &Record<'_>) -> bool {
        self.stream.is_none_or(|s| s == record.stream) && self.grep.as_ref().is_none_or(|re| re.is_match(record.text))
    }
}

/// What one program gave for a page.
#[derive(Debug)]
pub struct Batch {
    pub rows: Vec<Row>,
    /// Where reading stopped: after the last row, and past records the filter left out.
    pub end: Position,
    pub at_end: bool,
}

/// Up to `limit` rows (and about `budget` bytes of text) of `program` after `start`, and word
/// of the gaps among them.
pub fn rows(store: &Store, program: usize, start: Position, matcher: &Matcher, limit: usize, budget: usize) -> Batch {
    let name = &store.names()[program];
    let mut rows = Vec::new();
    let mut end = start;
    let mut text_bytes = 0;
    // Bytes read, not only shown, bound a call: a filter that matches nothing still answers.
    let stop = forward(store, program, &mut end, READ_BUDGET, |v| {
        if rows.len() >= limit || text_bytes >= budget {
            return false;
        }
        text_bytes += v.record.text.len();
        let time = v.record.time;
        if let Some(prev) = v.before.seq
            && v.record.seq > prev + 1
        {
            let reason = if v.jumped { GapReason::RotatedAway } else { GapReason::NotWritten };
            rows.push(Row::Gap {
                time: time.to_owned(),
                program: name.clone(),
                count: v.record.seq - prev - 1,
                reason,
            });
        }
        if matcher.matches(v.record) {
            let r = v.record;
            let line = Line {
                time: time.to_owned(),
                program: name.clone(),
                pid: r.pid,
                stream: r.stream,
                seq: r.seq,
                text: r.text.to_owned(),
            };
            rows.push(Row::Line(line));
        }
        true
    });
    Batch { rows, end, at_end: stop == Stop::End }
}

/// The end of what `program` has written, flushing its buffer first.
pub fn end(store: &Store, program: usize) -> Position {
    store.flush(program);
    let writer = store.writer(program);
    let (generation, offset) = writer.end();
    Position { generation, offset, seq: Some(writer.seq()) }
}

/// The start positions of `program`'s last `n` matching records, newest first, with their times.
pub fn last(store: &Store, program: usize, matcher: &Matcher, n: usize) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    let (current, oldest) = {
        let writer = store.writer(program);
        (writer.end().0, writer.oldest())
    };
    for generation in (oldest..=current).rev() {
        let Some((file, len)) = store.writer(program).open_generation(generation) else { continue };
        backwards(&file, len, |offset, record| {
            if matcher.matches(record) {
                let at = Position { generation, offset, seq: record.seq.checked_sub(1) };
                found.push((record.time.to_owned(), at));
            }
            found.len() < n
        });
        if found.len() >= n {
            break;
        }
    }
    found
}

/// Visits the records of `file` (its first `len` bytes) from the last to the first, with their
/// offsets, while `visit` says to go on.
fn backwards(file: &File, len: u64, mut visit: impl FnMut(u64, &Record<'_>) -> bool) {
    let mut end = len;
    let mut chunk = CHUNK as u64;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(chunk);
        buf.resize(usize::try_from(end - start).unwrap_or(0), 0);
        if file.read_exact_at(&mut buf, start).is_err() {
            return;
        }
        // The chunk may begin inside a record: it starts after the first newline.
        let first = match buf.iter().position(|&b| b == b'\n') {
            _ if start == 0 => 0,
            Some(at) => at + 1,
            None => {
                chunk *= 2;
                continue;
            }
        };
        let body = &buf[first..];
        let mut stop = body.len();
        while stop > 0 {
            let line_end = if body[stop - 1] == b'\n' { stop - 1 } else { stop };
            let line_start = body[..line_end].iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
            let text = String::from_utf8_lossy(&body[line_start..line_end]);
            if let Some(record) = record::parse(&text)
                && !visit(start + (first + line_start) as u64, &record)
            {
                return;
            }
            stop = line_start;
        }
        end = start + first as u64;
    }
}

/// The position of `program`'s first record at or after `time` (same format as records').
pub fn since(store: &Store, program: usize, time: &str) -> Position {
    let (current, oldest) = {
        let writer = store.writer(program);
        (writer.end().0, writer.oldest())
    };
    // The newest file that begins before `time` holds the start (or else the oldest file does).
    let begins_before = |generation| {
        let Some((file, len)) = store.writer(program).open_generation(generation) else { return false };
        let mut first = None;
        let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX).min(128 * 1024)];
        if file.read_exact_at(&mut buf, 0).is_ok() {
            let text = String::from_utf8_lossy(&buf);
            first = text.lines().next().and_then(record::parse).map(|r| r.time < time);
        }
        first.unwrap_or(false)
    };
    let generation = (oldest..=current).rev().find(|&g| begins_before(g)).unwrap_or(oldest);
    let mut pos = Position { generation, offset: 0, seq: None };
    while forward(store, program, &mut pos, CHUNK, |v| v.record.time < time) == Stop::Budget {}
    pos
}
