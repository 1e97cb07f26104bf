//! warren's own diagnostics (`tracing`) while `warren up` runs: written as `warren | …` lines
//! through the same [`Terminal`] as everything else, so that they neither interleave in another
//! format nor block on a stalled stderr. A level word leads every line but INFO's; no time (that
//! is `--timestamps`' job, for every line alike).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::terminal::Terminal;

/// The layer that writes events to `terminal`.
pub struct ToTerminal(pub Terminal);

impl<S: Subscriber> Layer<S> for ToTerminal {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = String::new();
        if level != Level::INFO {
            let colour = match level {
                Level::ERROR => AnsiColor::Red,
                Level::WARN => AnsiColor::Yellow,
                _ => AnsiColor::BrightBlack,
            };
            let style = self.0.styled(Style::new().bold().fg_color(Some(colour.into())));
            let _ = write!(text, "{style}{level}{style:#} ");
        }
        text.push_str(&fields.message);
        text.push_str(&fields.rest);
        self.0.say(&text);
    }
}

/// An event's message, then its other fields as ` name=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}
