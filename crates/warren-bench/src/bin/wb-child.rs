//! The warren child of the benchmarks, serving `Task.Get` and `Task.Echo`.
//!
//! - `wb-child` (under a warren host, `WARREN_ENDPOINT` set): `warren::plugin::main`, as
//!   `task-rpc` does: a current-thread runtime.
//! - `wb-child serve [--signals-only] [--current-thread] [--transport shm] SOCKET`: a standalone server on
//!   `SOCKET`; prints `ready` once bound; stops on SIGTERM or SIGINT and, unless
//!   `--signals-only` (what supervisord runs), when its stdin closes; removes the socket on the
//!   way out. A multi-thread runtime (`#[tokio::main]`'s, the closed-loop server), or with
//!   `--current-thread` the runtime the child has under a host (the lifecycle baselines and
//!   supervisord run it so, to start the same child). `--transport shm` lets its clients move
//!   to shared memory (`Server::transport`, issue #19; the `warren-shm` cells).
//! - `wb-child log N`: writes N lines of 100 bytes (a 9-digit line number, a space, filler and
//!   the newline) to stdout as fast as it can, then exits.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};
use warren_rpc::{Endpoint, Transport};

fn log_lines(n: u64) -> std::io::Result<()> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout);
    let filler = [b'x'; 89];
    let mut line = [0u8; 100];
    line[9] = b' ';
    line[10..99].copy_from_slice(&filler);
    line[99] = b'\n';
    for i in 0..n {
        let mut v = i;
        for digit in line[..9].iter_mut().rev() {
            *digit = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.write_all(&line)?;
    }
    out.flush()
}

async fn standalone(path: &str, stdin_eof: bool, transport: Transport) -> anyhow::Result<()> {
    let server = warren_bench::service::warren_server().transport(transport);
    let running = server.bind(&Endpoint::unix(path)).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    if stdin_eof {
        warren_bench::on_stdin_eof(move || {
            let _ = closed_tx.send(());
        });
    } else {
        std::mem::forget(closed_tx);
    }
    warren_bench::say_ready();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = closed => {}
    }
    running.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

/// `serve`'s arguments: the socket, and flags before or after it.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let (mut path, mut transport) = (None, Transport::Socket);
    let (mut current_thread, mut signals_only) = (false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--current-thread" => current_thread = true,
            "--signals-only" => signals_only = true,
            "--transport" => {
                transport = match args.next().map(String::as_str) {
                    Some("socket") => Transport::Socket,
                    Some("auto") => Transport::Auto,
                    Some("shm") => Transport::Shm,
                    other => bail!("serve: --transport socket|auto|shm, not {other:?}"),
                }
            }
            flag if flag.starts_with("--") => bail!("serve: unknown flag {flag}"),
            socket => path = Some(socket),
        }
    }
    let path = path.context("serve: no SOCKET given")?;
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(standalone(path, !signals_only, transport))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => return warren::plugin::main(warren_bench::service::warren_server),
        Some("serve") if args.len() >= 2 => serve(&args[1..]),
        Some("log") if args.len() == 2 => match args[1].parse::<u64>() {
            Ok(n) => log_lines(n).map_err(anyhow::Error::from),
            Err(err) => Err(anyhow::anyhow!("log {}: {err}", args[1])),
        },
        _ => {
            eprintln!(
                "usage: wb-child | wb-child serve [--signals-only] [--current-thread] [--transport socket|auto|shm] \
                 SOCKET | wb-child log N"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wb-child: {err:#}");
            ExitCode::FAILURE
        }
    }
}
