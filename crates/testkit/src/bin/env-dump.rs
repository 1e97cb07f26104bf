//! Shows exactly what it was started with — its arguments and its environment — for the tests
//! that check that a host passes arguments literally and computes the environment it was asked
//! to.
//!
//! It prints one line per argument, `arg <JSON string>`, one per variable in sorted order,
//! `env <JSON name> <JSON value>`, and then `end`. Then:
//!
//! - with `WARREN_ENDPOINT` (an RPC child) it serves `Env.Get`, which returns the same
//!   [`Dump`], as a warren plugin until it is stopped;
//! - otherwise, with `NOTIFY_SOCKET`, it says `READY=1` and exits when its stdin closes (so that
//!   it cannot exit before the host has seen it ready);
//! - otherwise it exits 0.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde::Serialize;
use warren_rpc::Server;

/// What the program was started with; not-UTF-8 bytes are shown as U+FFFD.
#[derive(Debug, Clone, Serialize)]
struct Dump {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn dump() -> Dump {
    let args = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    env.sort();
    Dump { args, env }
}

fn print(dump: &Dump) -> std::io::Result<()> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| String::from("\"?\""));
    let mut out = std::io::stdout().lock();
    for arg in &dump.args {
        writeln!(out, "arg {}", quote(arg))?;
    }
    for (key, value) in &dump.env {
        writeln!(out, "env {} {}", quote(key), quote(value))?;
    }
    writeln!(out, "end")?;
    out.flush()
}

fn main() -> ExitCode {
    let dump = dump();
    if let Err(err) = print(&dump) {
        eprintln!("env-dump: cannot write to stdout: {err}");
        return ExitCode::FAILURE;
    }
    if std::env::var_os("WARREN_ENDPOINT").is_some() {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("env-dump: cannot start a runtime: {err}");
                return ExitCode::FAILURE;
            }
        };
        let server = Server::new().service("Env", move |s| {
            s.method("Get", move |_ctx, (): ()| {
                let dump = dump.clone();
                async move { Ok(dump) }
            })
        });
        return match runtime.block_on(warren::plugin::serve(server)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("env-dump: {err}");
                ExitCode::from(2)
            }
        };
    }
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err((path, err)) = warren::sd_notify("READY=1") {
            eprintln!("env-dump: cannot notify {path}: {err}");
            return ExitCode::FAILURE;
        }
        let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    }
    ExitCode::SUCCESS
}
