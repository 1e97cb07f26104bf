//! Go's net/rpc with its default codec, gob, against a warren service: the sketch's client
//! (`rpc.DialHTTP("unix", path)` + `Call("Task.Get", "new_id", &reply)`) and `rpc.Dial`, built
//! from `tests/go/gobclient` with Go's standard library only. Checked: a call, 64 calls that
//! pass only if they overlap, an error as `rpc.ServerError`, an unknown method, nested
//! structs, slices, maps, `[]byte` and a pointer round-tripping against serde types, a zero
//! value, and a last call on the same connection (Go's client drops the connection on a reply
//! it cannot read, so it proves every reply before it was one Go accepts).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{Todo, socket_dir, socket_in, within};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_rpc::{Endpoint, HandlerError, Server};

/// Builds `tests/go/<name>/main.go` once per test run, into cargo's scratch directory.
fn go_program(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(PoisonError::into_inner);
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-gob");
    let binary = scratch.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go").join(name).join("main.go");
    let mut go = std::process::Command::new("go");
    go.arg("build").arg("-o").arg(&binary).arg(&source);
    go.env("GOCACHE", scratch.join("cache")).env("GOTOOLCHAIN", "local");
    if std::env::var_os("HOME").is_none() {
        go.env("GOPATH", scratch.join("gopath"));
    }
    let output = match go.output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            panic!("the Go interop tests need Go on PATH: install it with `apt-get install -y golang-go`")
        }
        Err(err) => panic!("cannot run `go build`: {err}"),
    };
    assert!(output.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    binary
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Item {
    n: u64,
    label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Inner {
    level: i64,
    ratio: f64,
    ok: bool,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Doc {
    name: String,
    tags: Vec<String>,
    counts: HashMap<String, i64>,
    blob: Vec<u8>,
    inner: Inner,
    ptr: Option<String>,
    empty: Vec<String>,
}

fn task_server(echoed: Arc<Mutex<Vec<Doc>>>) -> Server {
    let gathered = Arc::new(tokio::sync::Barrier::new(64));
    Server::new().service("Task", move |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Gather", move |_ctx, id: String| {
                let gathered = Arc::clone(&gathered);
                async move {
                    // Answers none until 64 are running: passes only if they run concurrently.
                    match tokio::time::timeout(Duration::from_secs(10), gathered.wait()).await {
                        Ok(_) => Ok(Todo { id }),
                        Err(_) => Err(HandlerError::new(1001, "the other calls never arrived")),
                    }
                }
            })
            .method("Fail", |_ctx, id: String| async move {
                Err::<Todo, _>(HandlerError::new(1042, format!("no such todo: {id}")))
            })
            .method("Echo", move |_ctx, doc: Doc| {
                echoed.lock().unwrap_or_else(PoisonError::into_inner).push(doc.clone());
                async move { Ok(doc) }
            })
    })
}

async fn go_client_calls(mode: &str) {
    let client = go_program("gobclient");
    let dir = socket_dir();
    let path = socket_in(&dir, "task.sock");
    let echoed = Arc::new(Mutex::new(Vec::new()));
    let running = task_server(Arc::clone(&echoed)).bind(&Endpoint::unix(&path)).await.expect("bind");

    let run = tokio::process::Command::new(&client).arg(mode).arg(&path).kill_on_drop(true).output();
    let output = within("the Go client", run).await.expect("the Go client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "Go client failed ({:?}):\n{stdout}{stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "get: new_id");
    assert_eq!(lines[1], "concurrent: 64 ok", "{stderr}");
    assert_eq!(lines[2], "error: APPLICATION (1042): no such todo: new_id");
    assert!(lines[3].starts_with("unknown: UNKNOWN_METHOD (2): no method"), "{}", lines[3]);
    assert_eq!(lines[4..], ["echo: ok", "after: again"]);

    // What the handler saw is what Go sent, field by field.
    let echoed = echoed.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let full = &echoed[0];
    assert_eq!(full.name, "doc");
    assert_eq!(full.tags, ["a", "", "c"]);
    assert_eq!(full.counts, HashMap::from([("one".into(), 1), ("minus".into(), -7), ("zero".into(), 0)]));
    assert_eq!(full.blob, [0, 1, 2, 255]);
    assert_eq!(full.inner.items[1], Item { n: 1 << 40, label: String::new() });
    assert_eq!(full.ptr.as_deref(), Some("pointed at"));
    let zero = &echoed[1];
    assert_eq!((zero.ptr.as_ref(), zero.inner.level, zero.blob.len()), (None, 0, 0), "{zero:?}");

    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sketch_client_over_http_connect_calls_a_warren_service() {
    go_client_calls("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_go_rpc_dial_client_calls_a_warren_service() {
    go_client_calls("plain").await;
}

#[tokio::test]
async fn other_http_is_still_refused_with_400() {
    let dir = socket_dir();
    let path = socket_in(&dir, "task.sock");
    let running = task_server(Arc::default()).bind(&Endpoint::unix(&path)).await.expect("bind");
    for request in [&b"CONNECT /elsewhere HTTP/1.0\n\n"[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let mut stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        within("the answer", stream.read_to_end(&mut answer)).await.expect("read");
        assert!(answer.starts_with(b"HTTP/1.0 400 Bad Request"), "{}", String::from_utf8_lossy(&answer));
    }
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Nested {
    x: i64,
    y: String,
}

/// The Rust side of `tests/go/gobgolden`'s `V`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Golden {
    i: i64,
    u: u64,
    f: f64,
    s: String,
    b: Vec<u8>,
    ok: bool,
    l: Vec<i32>,
    m: HashMap<String, u32>,
    n: Option<Nested>,
    ns: Vec<Nested>,
    mi: HashMap<i64, Vec<String>>,
}

fn golden(mode: &str, seed: u64, count: usize, file: &Path) -> std::process::Output {
    let output = std::process::Command::new(go_program("gobgolden"))
        .arg(mode)
        .arg(seed.to_string())
        .arg(count.to_string())
        .arg(file)
        .output()
        .expect("run gobgolden");
    assert!(output.status.success(), "gobgolden {mode} {seed}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]
    /// Random values written by Go's own encoder decode into serde types, and encoded back by
    /// warren, Go's own decoder reads the same values.
    #[test]
    fn random_values_from_go_round_trip_through_serde(seed in proptest::prelude::any::<u32>()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let from_go = dir.path().join("from-go.gob");
        let from_rust = dir.path().join("from-rust.gob");
        golden("write", seed.into(), 40, &from_go);
        let bytes = std::fs::read(&from_go).expect("read");
        let values: Vec<Golden> = warren_rpc::__wire::gob::decode_stream(&bytes, 1 << 20).expect("decodes");
        proptest::prop_assert_eq!(values.len(), 40);
        let back = warren_rpc::__wire::gob::encode_stream(&values).expect("encodes");
        std::fs::write(&from_rust, back).expect("write");
        let checked = golden("check", seed.into(), 40, &from_rust);
        let said = String::from_utf8_lossy(&checked.stdout).trim().to_owned();
        proptest::prop_assert_eq!(said, "ok 40");
    }
}

/// Garbage after a gob start ends that connection only; the server keeps serving others.
#[tokio::test]
async fn bad_gob_closes_only_its_connection() {
    let dir = socket_dir();
    let path = socket_in(&dir, "task.sock");
    let running = task_server(Arc::default()).bind(&Endpoint::unix(&path)).await.expect("bind");
    // A type definition header (length, id -65) followed by nonsense, then a lie about a length.
    for garbage in [&[0x05, 0xFF, 0x81, 0x09, 0x09, 0x09][..], &[0x03, 0xFF, 0x81, 0x01, 0xF8, 0xFF, 0xFF, 0xFF]] {
        let mut stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
        stream.write_all(garbage).await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut answer = Vec::new();
        within("the server to close", stream.read_to_end(&mut answer)).await.expect("read");
        assert!(answer.is_empty(), "{answer:?}");
    }
    let client = go_program("gobclient");
    let run = tokio::process::Command::new(&client).arg("plain").arg(&path).kill_on_drop(true).output();
    let output = within("the Go client", run).await.expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}
