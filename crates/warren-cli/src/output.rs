//! What `warren up` prints: every child's lines prefixed with its name (coloured per program on
//! a terminal, plain otherwise, `NO_COLOR` respected), and one line per state change.

use std::collections::HashMap;

use anstyle::{AnsiColor, Style};
use warren::{LineBatch, LogLine, LogSink, Stream};

use crate::terminal::Terminal;

const PALETTE: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Magenta, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::Blue, AnsiColor::Red];

/// The colour of the `index`th program of the configuration (`warren logs` colours alike).
pub fn colour(index: usize) -> Style {
    Style::new().fg_color(Some(PALETTE[index % PALETTE.len()].into()))
}

/// The widest names are padded to: a longer name does not push every line to the right.
pub const MAX_PADDING: usize = 16;

/// Prints lines (their files are `logs::store`'s business).
pub struct Output {
    /// Never blocks: a stalled reader of `up`'s stdout must not stall the pipe pumps.
    terminal: Terminal,
    colours: HashMap<String, Style>,
    /// A detached instance writes only its own lines: programs' lines are in their log files.
    own_lines_only: std::sync::atomic::AtomicBool,
}

impl Output {
    pub fn new<'a>(programs: impl IntoIterator<Item = &'a str>, terminal: Terminal) -> Output {
        let names: Vec<&str> = programs.into_iter().collect();
        // Names longer than the cap are printed whole, but do not pad every other line.
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0).clamp("warren".len(), MAX_PADDING);
        let colours = names.iter().enumerate().map(|(i, name)| ((*name).to_owned(), colour(i))).collect();
        terminal.set_width(width);
        Output { terminal, colours, own_lines_only: Default::default() }
    }

    /// A line from warren itself: a state change, a summary.
    pub fn say(&self, text: &str) {
        self.terminal.say(text);
    }

    /// Waits (at most `bound`) until every line so far is on the terminal.
    pub fn drain(&self, bound: std::time::Duration) {
        self.terminal.drain(bound);
    }

    /// From now on, programs' lines are not written (a detached instance's).
    pub fn own_lines_only(&self) {
        self.own_lines_only.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn print(&self, who: &str, style: Style, text: &str) {
        if self.own_lines_only.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.terminal.line(who, style, text);
    }
}

impl LogSink for Output {
    fn line(&self, line: LogLine) {
        let style = self.colours.get(&*line.child).copied().unwrap_or_default();
        match line.continues || line.unterminated {
            true => self.print(&line.child, style, &line.to_string()),
            false => self.print(&line.child, style, &line.text),
        }
    }

    fn lines(&self, batch: &LineBatch<'_>) {
        if self.own_lines_only.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let style = self.colours.get(batch.child).copied().unwrap_or_default();
        self.terminal.lines(batch.child, style, batch.lines(), batch.len());
    }

    fn closed(&self, _child: &str, _stream: Stream) {}

    fn flush(&self) {
        // Bounded: a terminal nobody reads must not hold an upgrade; its lines are in the logs.
        self.drain(std::time::Duration::from_secs(1));
    }
}
