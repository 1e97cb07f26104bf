//! The child of the original sketch: serves `Task.Get(id) -> Todo{ID}` on the socket its host
//! chose, says it is ready, and on a stop request drains, deletes its socket file and exits 0.

use std::process::ExitCode;

use warren_examples::Todo;
use warren_rpc::Server;

#[tokio::main]
async fn main() -> ExitCode {
    warren_examples::init_logging();
    let server = Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }));
    match warren::plugin::serve(server).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("task-rpc: {err}");
            ExitCode::from(2)
        }
    }
}
