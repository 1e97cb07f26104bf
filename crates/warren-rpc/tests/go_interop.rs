//! Interop with real Go, both ways, through Go's standard library only (`tests/go/`):
//!
//! - a Go program using `jsonrpc.Dial("unix", path)` calls a warren server: a call, sixteen
//!   concurrent calls, errors, a method without a value, and a call after all that on the same
//!   connection (Go's client drops the connection on a reply it cannot read, so this last call
//!   proves every reply before it was one Go accepts);
//! - warren's client in [`Protocol::JsonRpc`] mode calls a Go `net/rpc` server that serves with
//!   `jsonrpc.ServeConn`.
//!
//! The Go programs are built with `go build` (Debian/Ubuntu: `apt-get install golang-go`;
//! `.ci/run` installs it). Without `go` these tests fail rather than skip: interop that is not
//! tested is interop that breaks.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{Todo, socket_dir, socket_in, within};
use tokio::io::{AsyncBufReadExt, BufReader};
use warren_rpc::{CallError, Client, Endpoint, HandlerError, Protocol, Server};

/// Builds `tests/go/<name>/main.go` once per test run, into cargo's scratch directory.
fn go_program(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(PoisonError::into_inner);
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-interop");
    let binary = scratch.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go").join(name).join("main.go");
    let mut go = std::process::Command::new("go");
    go.arg("build").arg("-o").arg(&binary).arg(&source);
    // Only Go's standard library is used: no module, no network, a cache kept with cargo's.
    go.env("GOCACHE", scratch.join("cache")).env("GOTOOLCHAIN", "local");
    if std::env::var_os("HOME").is_none() {
        go.env("GOPATH", scratch.join("gopath"));
    }
    let output = match go.output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "the Go interop tests need Go on PATH: install it with `apt-get install -y golang-go` \
             (.ci/run does this)"
        ),
        Err(err) => panic!("cannot run `go build`: {err}"),
    };
    assert!(
        output.status.success(),
        "go build {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// The service the Go client calls.
fn task_server() -> Server {
    let gathered = Arc::new(tokio::sync::Barrier::new(16));
    Server::new().service("Task", move |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Gather", move |_ctx, id: String| {
                let gathered = Arc::clone(&gathered);
                async move {
                    // Answers none until sixteen are running: passes only if they run concurrently.
                    match tokio::time::timeout(Duration::from_secs(10), gathered.wait()).await {
                        Ok(_) => Ok(Todo { id }),
                        Err(_) => Err(HandlerError::new(1001, "the other calls never arrived")),
                    }
                }
            })
            .method("Fail", |_ctx, id: String| async move {
                Err::<Todo, _>(HandlerError::new(1042, format!("no such todo: {id}")))
            })
            .method("Touch", |_ctx, (): ()| async move { Ok(()) })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_go_jsonrpc_client_calls_a_warren_service() {
    let client = go_program("client");
    let dir = socket_dir();
    let path = socket_in(&dir, "task.sock");
    let running = task_server().bind(&Endpoint::unix(&path)).await.expect("bind");

    let run = tokio::process::Command::new(&client).arg(&path).kill_on_drop(true).output();
    let output = within("the Go client", run).await.expect("the Go client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "Go client failed ({:?}):\n{stdout}{stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "get: new_id");
    assert_eq!(lines[1], "concurrent: 16 ok");
    assert_eq!(lines[2], "error: APPLICATION (1042): no such todo: new_id");
    assert!(lines[3].starts_with("unknown: UNKNOWN_METHOD (2): no method for \"Task.Nope\""), "{}", lines[3]);
    assert_eq!(lines[4..], ["unit: ok", "after: still here"]);

    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
    assert!(!path.exists(), "the socket file is removed");
}

/// A Go net/rpc server, stopped (and its socket removed) when dropped.
struct GoServer {
    process: tokio::process::Child,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl GoServer {
    async fn start() -> GoServer {
        let binary = go_program("server");
        let dir = socket_dir();
        let path = socket_in(&dir, "go.sock");
        let mut process = tokio::process::Command::new(&binary)
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Go server");
        let stdout = process.stdout.take().expect("stdout");
        let mut first = String::new();
        within("the Go server to listen", BufReader::new(stdout).read_line(&mut first)).await.expect("read");
        assert_eq!(first.trim(), "listening", "the Go server did not start");
        GoServer { process, path, _dir: dir }
    }

    /// Closes its stdin, which it takes as the signal to stop, and waits for it.
    async fn stop(mut self) {
        drop(self.process.stdin.take());
        let status = within("the Go server to exit", self.process.wait()).await.expect("wait");
        assert!(status.success(), "{status:?}");
        assert!(!self.path.exists(), "the Go server removed its socket");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warren_client_calls_a_go_jsonrpc_server() {
    let server = GoServer::start().await;
    let connect = Client::builder().protocol(Protocol::JsonRpc).connect(Endpoint::unix(&server.path));
    let client = within("connect", connect).await.expect("connect");
    assert_eq!(client.protocol(), Protocol::JsonRpc);

    let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id")).await.expect("Task.Get");
    assert_eq!(todo.id, "new_id");

    // Sixteen in flight at once on one connection: the Go server answers none until all arrived.
    let calls = (0..16).map(|n| {
        let client = client.clone();
        tokio::spawn(async move {
            let id = format!("concurrent-{n}");
            let todo: Todo = client.call("Task.Gather", &id).await.expect("Task.Gather");
            assert_eq!(todo.id, id);
        })
    });
    within("sixteen concurrent calls", futures_util::future::join_all(calls))
        .await
        .into_iter()
        .for_each(|joined| joined.expect("call task"));

    // Go's errors are strings without a code.
    let err = within("Task.Fail", client.call::<_, Todo>("Task.Fail", "x")).await.expect_err("fails");
    assert!(
        matches!(&err, CallError::Remote { method, message, .. } if method == "Task.Fail" && message == "no such todo: x"),
        "{err:?}"
    );
    let err = within("Task.Nope", client.call::<_, Todo>("Task.Nope", "x")).await.expect_err("fails");
    assert!(matches!(&err, CallError::Remote { message, .. } if message.contains("can't find method")), "{err:?}");

    // A ping is a call any answer satisfies; then the connection still serves.
    within("ping", client.ping(Duration::from_secs(5))).await.expect("ping");
    let todo: Todo = within("Task.Get again", client.call("Task.Get", "after")).await.expect("Task.Get");
    assert_eq!(todo.id, "after");

    client.close().await;
    server.stop().await;
}
