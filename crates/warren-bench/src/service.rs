//! The service of the workloads, as each Rust implementation serves it.

use warren_rpc::Server;

use crate::workload::Todo;

/// warren's `Task` service: `Task.Get` and `Task.Echo`.
pub fn warren_server() -> Server {
    Server::new().service("Task", |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Echo", |_ctx, data: warren_rpc::Bytes| async move { Ok(data) })
    })
}

/// The same service for tarpc (bincode over a length-delimited Unix socket, its fastest
/// transport). `bytes::Bytes` travels as one bincode byte string, and the client clones it
/// without copying, as warren's client does with `warren_rpc::Bytes`.
#[allow(missing_debug_implementations)]
pub mod tarpc_task {
    use super::Todo;
    use bytes::Bytes;

    #[tarpc::service]
    pub trait Task {
        async fn get(id: String) -> Todo;
        async fn echo(data: Bytes) -> Bytes;
    }

    #[derive(Debug, Clone, Copy)]
    pub struct TaskServer;

    impl Task for TaskServer {
        async fn get(self, _: tarpc::context::Context, id: String) -> Todo {
            Todo { id }
        }

        async fn echo(self, _: tarpc::context::Context, data: Bytes) -> Bytes {
            data
        }
    }
}
