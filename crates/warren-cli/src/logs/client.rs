//! `warren logs`: reads programs' log files page by page through the control socket and prints
//! them — one program's text as it was printed, several (or all) merged in time order and
//! prefixed like `warren up`'s output, or JSON lines.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anstyle::Style;
use warren_rpc::{CallError, CallOptions, Client};

use super::api::{Filter, Line, OpenRequest, Opened, Page, ReadRequest, Row, Start};
use super::merge::Merger;
use super::record::{self, Stream};
use crate::remote::RemoteError;

/// Rows per page.
const PAGE: usize = 5000;
/// How long one read waits at the end while following.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub programs: Vec<String>,
    pub lines: Option<usize>,
    pub follow: bool,
    pub since: Option<String>,
    pub grep: Option<String>,
    pub stream: Option<String>,
    pub timestamps: bool,
    pub json: bool,
}

fn refused(err: CallError) -> RemoteError {
    match err {
        CallError::Application { message, .. } => RemoteError::Refused(message),
        other => RemoteError::Refused(other.to_string()),
    }
}

/// `10m` (that long ago) or an RFC 3339 time (UTC when it has no offset), as a record's time.
fn since_time(text: &str, now: SystemTime) -> Result<String, RemoteError> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(record::time_text(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)));
    }
    humantime::parse_rfc3339_weak(text).map(record::time_text).map_err(|err| {
        RemoteError::Refused(format!(
            "--since {text:?}: expected a duration (10m) or a time (2026-12-02T10:00:00): {err}"
        ))
    })
}

/// How long a follower waits for an upgraded instance to answer again.
const REJOIN: Duration = Duration::from_secs(10);

pub async fn run(instance_dir: &std::path::Path, options: Options) -> Result<(), RemoteError> {
    let mut client = crate::remote::connect(instance_dir).await?;
    let stream = match options.stream.as_deref() {
        None => None,
        Some(word) => Some(
            Stream::parse(word)
                .ok_or_else(|| RemoteError::Refused(format!("--stream {word:?}: expected out or err")))?,
        ),
    };
    if let Some(pattern) = &options.grep {
        regex::Regex::new(pattern).map_err(|err| RemoteError::Refused(format!("--grep: {err}")))?;
    }
    let filter = Filter { stream, grep: options.grep.clone() };
    let start = match &options.since {
        Some(text) => Start::Since(since_time(text, SystemTime::now())?),
        None => Start::Tail(options.lines.unwrap_or(100)),
    };
    let request = OpenRequest { programs: options.programs.clone(), filter: filter.clone(), start };
    let mut attempts = 0;
    let opened: Opened = loop {
        match client.call("Control.OpenLogs", &request).await {
            Ok(opened) => break opened,
            // Opening changes nothing, so a connection cut by an upgrade in place is asked again
            // of the new image (a few times: each try is one more upgrade under way).
            Err(err @ CallError::ConnectionLost { .. }) if attempts < OPEN_TRIES => {
                attempts += 1;
                client = rejoin(instance_dir).await.ok_or_else(|| refused(err))?;
            }
            Err(err) => return Err(refused(err)),
        }
    };
    let mut printer = Printer::new(&opened.programs, &options);
    let mut cursor = opened.cursor;
    let mut merger = Merger::new(cursor.keys().cloned());
    // Without -f, a tail stops after its lines even while the programs go on printing.
    let mut left = match (&options.since, options.follow) {
        (None, false) => options.lines.unwrap_or(100),
        _ => usize::MAX,
    };
    loop {
        let mut rows = Vec::new();
        while left > 0
            && let Some(row) = merger.next()
        {
            left -= usize::from(matches!(row, Row::Line(_)));
            rows.push(row);
        }
        if !printer.rows(&rows)? || left == 0 {
            return Ok(());
        }
        // Read what the merge waits for; once everything is read to its end, wait for more.
        let (ask, wait) = match merger.wanted() {
            wanted if !wanted.is_empty() => (wanted, Duration::ZERO),
            _ if options.follow => (merger.programs(), FOLLOW_WAIT),
            _ => return Ok(()),
        };
        let request = ReadRequest {
            cursor: ask.iter().filter_map(|p| Some((p.clone(), *cursor.get(p)?))).collect(),
            filter: filter.clone(),
            limit: PAGE,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let timeout = Some(wait + Duration::from_secs(30));
        let page: Page =
            match client.call_with("Control.ReadLogs", &request, CallOptions { timeout }).await {
                Ok(page) => page,
                // The instance was upgraded (the new image answers on the same socket, the cursor
                // still holds), or ended: then so does following it.
                Err(
                    CallError::ConnectionLost { .. } | CallError::ShuttingDown { .. } | CallError::Cancelled { .. },
                ) if options.follow => match rejoin(instance_dir).await {
                    Some(again) => {
                        client = again;
                        continue;
                    }
                    None => return Ok(()),
                },
                Err(err) => return Err(refused(err)),
            };
        cursor.extend(page.cursor);
        merger.add(page.rows, &ask, &page.at_end);
    }
}

/// How many times opening the logs is asked again of an instance being upgraded.
const OPEN_TRIES: u32 = 5;

/// A connection to the instance again, if it answers within [`REJOIN`]: it was upgraded in
/// place. `None` once it is gone.
async fn rejoin(instance_dir: &std::path::Path) -> Option<Client> {
    let deadline = std::time::Instant::now() + REJOIN;
    while std::time::Instant::now() < deadline {
        match crate::remote::connect(instance_dir).await {
            Ok(client) => return Some(client),
            Err(RemoteError::NotRunning { .. }) => return None,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    None
}

/// How rows look on stdout.
struct Printer {
    names: Vec<String>,
    colours: Vec<Style>,
    width: usize,
    prefix: bool,
    timestamps: bool,
    json: bool,
}

impl Printer {
    fn new(programs: &[String], options: &Options) -> Printer {
        let colour = anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
        let colours =
            (0..programs.len()).map(|i| if colour { crate::output::colour(i) } else { Style::new() }).collect();
        let width = programs.iter().map(String::len).max().unwrap_or(0).max("warren".len());
        Printer {
            names: programs.to_vec(),
            colours,
            width,
            prefix: options.programs.len() != 1,
            timestamps: options.timestamps,
            json: options.json,
        }
    }

    /// Prints a page; false once stdout is closed (`warren logs | head`).
    fn rows(&mut self, rows: &[Row]) -> Result<bool, RemoteError> {
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
        for row in rows {
            let result = match row {
                Row::Line(line) if self.json => writeln!(out, "{}", json_line(line)),
                Row::Line(line) => {
                    let prefix = self.prefix(&line.program, Some(&line.time));
                    writeln!(out, "{prefix}{}", line.text)
                }
                Row::Gap { program, count, reason, .. } if self.json => {
                    let gap = serde_json::json!({ "program": program, "gap": count, "reason": reason });
                    writeln!(out, "{gap}")
                }
                Row::Gap { program, count, reason, .. } => {
                    let prefix = self.prefix(program, None);
                    writeln!(out, "{prefix}… {count} lines {}", reason.describe())
                }
            };
            if let Err(err) = result {
                return closed_or(err);
            }
        }
        match out.flush() {
            Ok(()) => Ok(true),
            Err(err) => closed_or(err),
        }
    }

    fn prefix(&self, program: &str, time: Option<&str>) -> String {
        let mut prefix = String::new();
        if self.timestamps {
            prefix.push_str(time.unwrap_or(""));
            prefix.push(' ');
        }
        if self.prefix {
            let style = self.names.iter().position(|n| n == program).map(|i| self.colours[i]).unwrap_or_default();
            prefix.push_str(&format!("{style}{program:<width$}{style:#} | ", width = self.width));
        }
        prefix
    }
}

fn closed_or(err: std::io::Error) -> Result<bool, RemoteError> {
    if err.kind() == std::io::ErrorKind::BrokenPipe { Ok(false) } else { Err(RemoteError::Other(err.into())) }
}

fn json_line(line: &Line) -> serde_json::Value {
    serde_json::json!({
        "time": line.time,
        "program": line.program,
        "pid": line.pid,
        "stream": line.stream,
        "seq": line.seq,
        "line": line.text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(since_time("10m", now).expect("a duration"), record::time_text(now - Duration::from_secs(600)));
        assert_eq!(since_time("2026-12-02T10:00:00", now).expect("a time"), "2026-12-02T10:00:00.000000Z");
        assert!(since_time("yesterday-ish", now).is_err());
    }
}
