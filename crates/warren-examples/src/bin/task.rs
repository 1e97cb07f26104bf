//! The host of the original sketch: starts `task-rpc` with piped stdio, waits until it is
//! ready (no sleep), calls `Task.Get("new_id")`, prints the reply, then stops it gracefully.
//!
//! Under `warren up` (the built-in example), `task` depends on a supervised `task-rpc` and is
//! given its endpoint in `WARREN_ENDPOINT_TASK_RPC`: then it calls that one instead of starting
//! a private copy — the supervisor keeps the server, restarts it if it crashes, and shows its
//! output next to everyone else's.

use std::process::ExitCode;
use std::time::Duration;

use tracing::{error, info};
use warren::supervise::endpoint_variable;
use warren::{Host, Spec};
use warren_examples::{Todo, sibling};

#[tokio::main]
async fn main() -> ExitCode {
    warren_examples::init_logging();
    match run().await {
        Ok(code) => code,
        Err(err) => {
            error!("{}", warren_rpc::ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Ok(endpoint) = std::env::var(endpoint_variable("task-rpc")) {
        return call_supervised(&endpoint).await;
    }
    let host = Host::new()?;
    let program = sibling("task-rpc");
    let child = host.spawn(Spec::new(&program).name("task-rpc")).await?;
    info!("task-rpc is ready (pid {}), serving on {}", child.pid(), child.client().endpoint());
    let todo: Todo = child.client().call_timeout("Task.Get", "new_id", Duration::from_secs(5)).await?;
    info!("Finish App: {todo:?}");
    let report = child.stop(Duration::from_secs(5)).await;
    if report.outcome.is_clean() {
        info!("stop subproc {} success", program.display());
        Ok(ExitCode::SUCCESS)
    } else {
        error!("stop subproc {} failed: {report}", program.display());
        Ok(ExitCode::FAILURE)
    }
}

/// Calls the `task-rpc` that the supervisor runs, on the endpoint it passed.
async fn call_supervised(endpoint: &str) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = warren_rpc::Client::connect(endpoint).await?;
    info!("calling the supervised task-rpc on {endpoint}");
    let todo: Todo = client.call_timeout("Task.Get", "new_id", Duration::from_secs(5)).await?;
    info!("Finish App: {todo:?}");
    Ok(ExitCode::SUCCESS)
}
