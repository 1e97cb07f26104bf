//! Connects to the Unix socket given as the only argument and calls `Task.Get "x"`, for the
//! peer-credential tests, which run it as another user. Prints exactly one line on stdout:
//!
//! - `ok` (exit 0) when the call succeeded;
//! - `refused <CODE NAME>: <reason>` (exit 2) when the server turned the connection away;
//! - `error: <message>` (exit 3) for anything else, e.g. the OS denying access to the socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use warren_rpc::{Client, ConnectError};

const OK: u8 = 0;
const USAGE: u8 = 1;
const REFUSED: u8 = 2;
const ERROR: u8 = 3;

#[derive(Debug, Deserialize)]
struct Todo {
    id: String,
}

/// How the probe went; turned into a line and an exit code in one place, `main`.
enum Outcome {
    Ok,
    Refused { code: &'static str, reason: String },
    Error(String),
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(socket), None) = (args.next(), args.next()) else {
        eprintln!("usage: peer-probe <unix socket path>");
        return ExitCode::from(USAGE);
    };
    let (line, code) = match run(PathBuf::from(socket)) {
        Outcome::Ok => ("ok".to_owned(), OK),
        Outcome::Refused { code, reason } => (format!("refused {code}: {reason}"), REFUSED),
        Outcome::Error(message) => (format!("error: {message}"), ERROR),
    };
    println!("{line}");
    ExitCode::from(code)
}

fn run(socket: PathBuf) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return Outcome::Error(format!("cannot start the runtime: {err}")),
    };
    runtime.block_on(async {
        let client = match Client::builder().connect_timeout(Duration::from_secs(10)).connect(socket).await {
            Ok(client) => client,
            Err(ConnectError::Refused { code, reason, .. }) => return Outcome::Refused { code: code.name(), reason },
            Err(err) => return Outcome::Error(warren_rpc::ErrorChain(&err).to_string()),
        };
        let outcome = match client.call_timeout::<_, Todo>("Task.Get", "x", Duration::from_secs(10)).await {
            Ok(todo) if todo.id == "x" => Outcome::Ok,
            Ok(todo) => Outcome::Error(format!("Task.Get \"x\" answered with id {:?}", todo.id)),
            Err(err) => Outcome::Error(warren_rpc::ErrorChain(&err).to_string()),
        };
        client.close().await;
        outcome
    })
}
