//! The child of the original sketch: serves `Task.Get(id) -> Todo{ID}` (and `Task.Sleep(ms)`, a
//! slow method that honours its call's deadline) on the socket its host chose, says it is
//! ready, and on a stop request drains, deletes its socket file and exits 0.
//!
//! `warren::plugin::main` runs it on a current-thread runtime: a plugin this small has no use
//! for a worker thread per CPU, and starts faster and smaller without them.

use std::process::ExitCode;

use warren_examples::Todo;
use warren_rpc::Server;

fn main() -> ExitCode {
    warren_examples::init_logging();
    warren::plugin::main(|| {
        Server::new().service("Task", |s| {
            s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }).method("Sleep", warren_examples::sleep)
        })
    })
}
