//! A child that serves a `Task` service over its own stdin and stdout, for the stdio transport
//! tests: `Task.Get(id) -> {id}` and `Task.Pid() -> its pid`. Stdout carries only protocol
//! frames, so logs go to stderr. Exits 0 once stdin closes (the host closed its client).

use std::process::ExitCode;

use serde::Serialize;
use warren_rpc::Server;

#[derive(Debug, Serialize)]
struct Todo {
    id: String,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rpc-stdio-child: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::new().service("Task", |s| {
            s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
                .method("Pid", |_ctx, (): ()| async move { Ok(std::process::id()) })
        });
        // Returns when the host closes our stdin (end of stream) or the connection fails.
        server.serve_io(tokio::io::stdin(), tokio::io::stdout()).await;
    });
    Ok(())
}
