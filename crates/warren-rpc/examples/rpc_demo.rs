//! The RPC half of the original sketch in one process: serve `Task.Get` on a Unix socket, call
//! it, shut the server down and show that the socket file is gone.
//!
//! ```text
//! cargo run -p warren-rpc --example rpc_demo
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use warren_rpc::{Client, Endpoint, Server};

#[derive(Debug, Serialize, Deserialize)]
struct Todo {
    id: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("warren-demo-{}", std::process::id()));
    let endpoint = Endpoint::unix(dir.join("rpc.sock"));

    let server = Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }));
    let running = server.bind(&endpoint).await?;
    println!("Serving RPC server on {endpoint}");

    let client = Client::connect(&endpoint).await?;
    let todo: Todo = client.call("Task.Get", "new_id").await?;
    println!("Task.Get(\"new_id\") = {todo:?}");

    println!("stop the server");
    let report = running.shutdown(Duration::from_secs(5)).await;
    let path = endpoint.unix_path().map(|p| p.to_path_buf()).unwrap_or_default();
    println!(
        "deleted socket file: {} (exists now: {}), drained in {:?}",
        path.display(),
        path.exists(),
        report.elapsed
    );
    std::fs::remove_dir(&dir)?;
    Ok(())
}
