//! The bottom tier, in the role of runc: a short-lived process that the shim starts with piped
//! stdio for one run. `runtime <id> [args...]` prints its pid and argv and a couple of lines on
//! stdout and one on stderr, and exits with the code given as `exit=N` (default 0).
//!
//! - `cat`: echoes every line of stdin to stdout until end-of-file first.
//! - `hang`: blocks until SIGTERM (or SIGINT), then says so and exits with 143 (or 130): 128 + the
//!   signal number, as a shell reports it, so a stop that reaches it shows in its result.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let shown: Vec<&str> = std::iter::once("runtime").chain(argv.iter().skip(1).map(String::as_str)).collect();
    let id = argv.get(1).cloned().unwrap_or_else(|| "anonymous".to_owned());
    let args = argv.get(2..).unwrap_or_default();
    let mut exit_code: u8 = 0;
    for arg in args {
        if let Some(code) = arg.strip_prefix("exit=") {
            match code.parse() {
                Ok(code) => exit_code = code,
                Err(_) => {
                    eprintln!("{id}: exit code must be 0..=255, not {code:?}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let hang = args.iter().any(|a| a == "hang");
    let cat = args.iter().any(|a| a == "cat");

    let mut out = std::io::stdout().lock();
    // Each line is flushed at once: stdout is a pipe, so it would otherwise be block-buffered
    // and the host would see nothing of a run that hangs.
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    say(format!("runtime pid={} id={id} argv={shown:?}", std::process::id()));
    say(format!("{id}: creating the container"));
    say(format!("{id}: running the container process"));
    if cat {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => say(format!("{id}: stdin| {line}")),
                Err(err) => {
                    eprintln!("{id}: cannot read stdin: {err}");
                    break;
                }
            }
        }
    }
    if hang {
        // Handlers first, then the line that says so: whoever waits for that line knows a stop
        // signal from then on is handled, not fatal.
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("{id}: cannot install signal handlers: {err}");
                return ExitCode::from(2);
            }
        };
        eprintln!("{id}: hanging until SIGTERM");
        let (name, code) = tokio::select! {
            _ = term.recv() => ("SIGTERM", 143),
            _ = int.recv() => ("SIGINT", 130),
        };
        say(format!("{id}: received {name}, container stopped"));
        return ExitCode::from(code);
    }
    eprintln!("{id}: container process exited with code {exit_code}");
    ExitCode::from(exit_code)
}
