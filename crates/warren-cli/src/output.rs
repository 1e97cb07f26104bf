//! What `warren up` prints: every child's lines prefixed with its name (coloured per program on
//! a terminal, plain otherwise, `NO_COLOR` respected), and one line per state change.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use anstyle::{AnsiColor, Style};
use tokio::sync::broadcast;
use warren::{LogLine, LogSink, Stream};

use crate::control::LogRow;
use crate::terminal::Terminal;

const PALETTE: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Magenta, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::Blue, AnsiColor::Red];

/// The widest names are padded to: a longer name does not push every line to the right.
pub const MAX_PADDING: usize = 16;

/// How many recent lines per program `warren logs` can show.
pub const LOG_BUFFER_LINES: usize = 2000;

/// Prints lines and keeps the recent ones of each program for `warren logs`.
pub struct Output {
    /// Never blocks: a stalled reader of `up`'s stdout must not stall the pipe pumps.
    terminal: Terminal,
    colours: HashMap<String, Style>,
    recent: Mutex<HashMap<String, VecDeque<LogRow>>>,
    follow: broadcast::Sender<LogRow>,
}

impl Output {
    pub fn new<'a>(programs: impl IntoIterator<Item = &'a str>, terminal: Terminal) -> Output {
        let names: Vec<&str> = programs.into_iter().collect();
        // Names longer than the cap are printed whole, but do not pad every other line.
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0).clamp("warren".len(), MAX_PADDING);
        let colours = names
            .iter()
            .enumerate()
            .map(|(i, name)| ((*name).to_owned(), Style::new().fg_color(Some(PALETTE[i % PALETTE.len()].into()))))
            .collect();
        let (follow, _) = broadcast::channel(4096);
        terminal.set_width(width);
        Output { terminal, colours, recent: Mutex::new(HashMap::new()), follow }
    }

    /// A line from warren itself: a state change, a summary.
    pub fn say(&self, text: &str) {
        self.terminal.say(text);
    }

    fn print(&self, who: &str, style: Style, text: &str) {
        self.terminal.line(who, style, text);
    }

    pub fn recent(&self, program: &str, lines: usize) -> Vec<LogRow> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.get(program).map_or_else(Vec::new, |rows| rows.iter().rev().take(lines).rev().cloned().collect())
    }

    pub fn follow(&self) -> broadcast::Receiver<LogRow> {
        self.follow.subscribe()
    }
}

impl LogSink for Output {
    fn line(&self, line: LogLine) {
        let style = self.colours.get(&*line.child).copied().unwrap_or_default();
        self.print(&line.child, style, &line.to_string());
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = recent.entry(line.child.to_string()).or_default();
        // One sequence per program, across both streams and across restarts (each instance's
        // own numbers start again at 1), so a follower can tell new lines from ones it has seen.
        let seq = rows.back().map_or(1, |last| last.seq + 1);
        let row = LogRow {
            program: line.child.to_string(),
            stream: line.stream.name().to_owned(),
            seq,
            text: line.to_string(),
        };
        if rows.len() == LOG_BUFFER_LINES {
            rows.pop_front();
        }
        rows.push_back(row.clone());
        // Sent under the lock so followers see lines in sequence order.
        let _ = self.follow.send(row);
    }

    fn closed(&self, _child: &str, _stream: Stream) {}
}
