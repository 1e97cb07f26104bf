//! A client written in Python from `docs/PROTOCOL.md` alone (examples/python/warren_client.py,
//! standard library only) talks to the Rust server: the document is complete enough to
//! implement the protocol in another language.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warren_rpc::{Endpoint, HandlerError, Server};

#[derive(Serialize, Deserialize)]
struct Todo {
    id: String,
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/warren_client.py")
}

async fn run_python(args: &[&str]) -> Output {
    let run = tokio::process::Command::new("python3").arg(client_script()).args(args).kill_on_drop(true).output();
    testkit::within("the python client", run).await.expect("python3 runs")
}

#[tokio::test]
async fn the_python_client_calls_a_rust_server() {
    let dir = tempfile::Builder::new().prefix("wpy").tempdir_in("/tmp").expect("temp dir");
    let path = dir.path().join("py.sock");
    let server = Server::new().service("Task", |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Fail", |_ctx, (): ()| async move { Err::<(), _>(HandlerError::new(1042, "no such todo")) })
    });
    let running = server.bind(&Endpoint::unix(&path)).await.expect("bind");
    let socket = path.to_str().expect("utf-8 path");

    let ok = run_python(&[socket, "Task.Get", "\"new_id\"", "2.0"]).await;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "exit {:?}, stderr: {}", ok.status, String::from_utf8_lossy(&ok.stderr));
    let reply: serde_json::Value = serde_json::from_str(stdout.trim()).expect("prints JSON");
    assert_eq!(reply, serde_json::json!({"id": "new_id"}));

    let failed = run_python(&[socket, "Task.Fail", "null"]).await;
    assert_eq!(failed.status.code(), Some(3), "an ERROR frame exits 3");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("1042") && stderr.contains("no such todo"), "{stderr}");

    let unknown = run_python(&[socket, "Nope.Get", "1"]).await;
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("UNKNOWN_SERVICE"), "{stderr}");

    running.shutdown(Duration::from_secs(1)).await;
}
