//! What `warren logs` and `warren up` say to each other over the control socket.
//!
//! Reading is pulled, page by page, with a cursor: the reader asks for the rows after its
//! position and gets them with the position after them. Nothing is pushed, so a slow reader
//! slows only itself and never loses a line; `-f` is the same call, asked to wait at the end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::Stream;

/// Where a reader is in one program's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Which file: counts rotations, so a renamed file is still found.
    pub generation: u64,
    /// Bytes into that file, at the start of a record.
    pub offset: u64,
    /// The sequence number of the last record passed, to see gaps; `None` at a fresh start.
    pub seq: Option<u64>,
}

/// A reader's position in every program it reads.
pub type Cursor = BTreeMap<String, Position>;

/// Which records a reader wants.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filter {
    pub stream: Option<Stream>,
    /// A regular expression the text must match.
    pub grep: Option<String>,
}

/// Where a reader starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Start {
    /// Before the last N matching records (of all programs read, together).
    Tail(usize),
    /// At the first record at or after this time (RFC 3339, UTC, microseconds).
    Since(String),
}

/// `Control.OpenLogs`: find where to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenRequest {
    /// Programs to read; empty for all.
    pub programs: Vec<String>,
    pub filter: Filter,
    pub start: Start,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opened {
    /// Every program of the instance, in the order of the configuration (for colours).
    pub programs: Vec<String>,
    pub cursor: Cursor,
}

/// `Control.ReadLogs`: the rows after `cursor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    pub cursor: Cursor,
    pub filter: Filter,
    /// At most this many rows.
    pub limit: usize,
    /// When there is nothing new, wait this long for something.
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    /// Each program's rows in order, one program after the other: the reader merges them.
    pub rows: Vec<Row>,
    pub cursor: Cursor,
    /// The programs read to their end.
    pub at_end: Vec<String>,
}

/// One record as a reader gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub time: String,
    pub program: String,
    pub pid: u32,
    pub stream: Stream,
    pub seq: u64,
    pub text: String,
}

/// What a reader gets: a record, or word of records it will not get, where they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Row {
    Line(Line),
    /// `time` is that of the record after the gap.
    Gap {
        time: String,
        program: String,
        count: u64,
        reason: GapReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// Never written: the disk was full, or writing failed.
    NotWritten,
    /// Rotated away (deleted) before this reader got to them.
    RotatedAway,
}

impl GapReason {
    pub fn describe(self) -> &'static str {
        match self {
            GapReason::NotWritten => "lost (could not be written to the log file)",
            GapReason::RotatedAway => "skipped (rotated away before they were read)",
        }
    }
}

impl Row {
    pub fn time(&self) -> &str {
        match self {
            Row::Line(line) => &line.time,
            Row::Gap { time, .. } => time,
        }
    }

    pub fn program(&self) -> &str {
        match self {
            Row::Line(line) => &line.program,
            Row::Gap { program, .. } => program,
        }
    }
}
