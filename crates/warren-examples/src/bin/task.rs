//! The host of the original sketch: starts `task-rpc` with piped stdio, waits until it is
//! ready (no sleep), calls `Task.Get("new_id")`, prints the reply, then stops it gracefully.

use std::process::ExitCode;
use std::time::Duration;

use tracing::{error, info};
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
