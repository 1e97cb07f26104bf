//! Go's net/rpc with its default codec, gob, against a warren service: the sketch's client
//! (`rpc.DialHTTP("unix", path)` + `Call("Task.Get", "new_id", &reply)`) and `rpc.Dial`, built
//! from `tests/go/gobclient` with Go's standard library only. Checked: a call, 64 calls that
//! pass only if they overlap, an error as `rpc.ServerError`, an unknown method, nested
//! structs, slices, maps, `[]byte` and a pointer round-tripping against serde types, a zero
//! value, and a last call on the same connection (Go's client drops the connection on a reply
//! it cannot read, so it proves every reply before it was one Go accepts).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{Todo, socket_dir, socket_in, within};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_rpc::{CallError, Client, Endpoint, HandlerError, Protocol, Server};

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

/// The sketch's client, unmodified, dials `rpc.sock` in its working directory, where a warren
/// service is bound.
#[tokio::test]
async fn the_sketch_client_as_written_calls_a_warren_service() {
    let client = go_program("sketchclient");
    let dir = socket_dir();
    let running = task_server(Arc::default()).bind(&Endpoint::unix(socket_in(&dir, "rpc.sock"))).await.expect("bind");
    let run = tokio::process::Command::new(&client).current_dir(dir.path()).kill_on_drop(true).output();
    let output = within("the sketch client", run).await.expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "new_id\n");
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

/// Waits for a socket file to accept connections.
async fn accepting(path: &Path) {
    within("the Go server to listen", async {
        while tokio::net::UnixStream::connect(path).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// warren's client calls the sketch's server, unmodified (`rpc.HandleHTTP` + `http.Serve`).
#[tokio::test]
async fn a_warren_client_calls_the_sketch_server_as_written() {
    let server = go_program("sketchserver");
    let dir = socket_dir();
    let path = socket_in(&dir, "rpc.sock");
    let _server =
        tokio::process::Command::new(&server).current_dir(dir.path()).kill_on_drop(true).spawn().expect("start");
    accepting(&path).await;
    let connect = Client::builder().protocol(Protocol::GoGob { http_connect: true }).connect(Endpoint::unix(&path));
    let client = within("connect", connect).await.expect("connect");
    let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id")).await.expect("Task.Get");
    assert_eq!(todo, Todo { id: "new_id".into() });
    within("ping", client.ping(Duration::from_secs(5)))
        .await
        .expect("a Go server answers a ping with an error, which proves it alive");
}

async fn warren_client_calls_go(mode: &str) {
    let server = go_program("gobserver");
    let dir = socket_dir();
    let path = socket_in(&dir, "go.sock");
    let mut process = tokio::process::Command::new(&server)
        .arg(mode)
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    accepting(&path).await;
    let protocol = Protocol::GoGob { http_connect: mode == "http" };
    let client = within("connect", Client::builder().protocol(protocol).connect(Endpoint::unix(&path))).await;
    let client = client.expect("connect");

    // The Go server answers none until 64 are in, so this passes only if the calls overlap.
    let calls = (0..64).map(|i| {
        let client = client.clone();
        async move { client.call::<_, Todo>("Task.Gather", &format!("todo-{i}")).await }
    });
    let answers = within("64 calls", futures_util::future::join_all(calls)).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.expect("Task.Gather"), Todo { id: format!("todo-{i}") });
    }

    let err = within("Task.Fail", client.call::<_, Todo>("Task.Fail", "x")).await.expect_err("fails");
    assert!(matches!(&err, CallError::Remote { message, .. } if message == "no such todo: x"), "{err:?}");

    let doc = Doc {
        name: "doc".into(),
        tags: vec!["a".into(), String::new()],
        counts: HashMap::from([("one".into(), 1), ("minus".into(), -7)]),
        blob: vec![0, 255, 7],
        inner: Inner { level: -3, ratio: 0.5, ok: true, items: vec![Item { n: 1 << 40, label: "x".into() }] },
        ptr: Some("pointed at".into()),
        empty: Vec::new(),
    };
    let back: Doc = within("Task.Echo", client.call("Task.Echo", &doc)).await.expect("Task.Echo");
    assert_eq!(back, doc);
    let todo: Todo = within("Task.Get", client.call("Task.Get", "last")).await.expect("Task.Get");
    assert_eq!(todo.id, "last");

    drop(client);
    drop(process.stdin.take());
    let status = within("the Go server to exit", process.wait()).await.expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warren_client_calls_a_go_gob_server_over_http_connect() {
    warren_client_calls_go("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warren_client_calls_a_go_gob_server_with_plain_gob() {
    warren_client_calls_go("plain").await;
}

/// warren's GoGob client against a warren server: the same wire both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warren_gob_client_calls_a_warren_service() {
    for http_connect in [false, true] {
        let dir = socket_dir();
        let path = socket_in(&dir, "task.sock");
        let echoed = Arc::new(Mutex::new(Vec::new()));
        let running = task_server(echoed).bind(&Endpoint::unix(&path)).await.expect("bind");
        let connect = Client::builder().protocol(Protocol::GoGob { http_connect }).connect(Endpoint::unix(&path));
        let client = within("connect", connect).await.expect("connect");
        let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id")).await.expect("Task.Get");
        assert_eq!(todo.id, "new_id");
        let err = within("Task.Fail", client.call::<_, Todo>("Task.Fail", "x")).await.expect_err("fails");
        assert!(matches!(&err, CallError::Application { code: 1042, .. }), "{err:?}");
        drop(client);
        within("shutdown", running.shutdown(Duration::from_secs(1))).await;
    }
}

// Rust → Go → Rust: random values of serde types, encoded by warren, decoded by Go into the
// structs of `tests/go/gobrelay`, encoded again by Go and decoded by warren, must come back
// equal. Floats are compared bit for bit (NaN payloads included), maps are `BTreeMap`s so
// equal values print alike.

/// An `f64` compared by its bits, serialized as a plain `f64`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
struct F64(f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// An `f32` compared by its bits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
struct F32(f32);

impl PartialEq for F32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Leaf {
    n: i64,
    u: u64,
    f: F64,
    s: String,
    ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Mid {
    name: String,
    leaves: Vec<Leaf>,
    by_key: BTreeMap<String, Leaf>,
    raw: Vec<u8>,
}

/// The Rust side of `tests/go/gobrelay`'s `Wide`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Wide {
    big: i64,
    small: i32,
    count: u64,
    byte: u8,
    user_id: u32,
    ratio: F64,
    single: F32,
    text: String,
    blob: Vec<u8>,
    flag: bool,
    ints: Vec<i64>,
    floats: Vec<F64>,
    weights: BTreeMap<String, F64>,
    words: Vec<String>,
    blobs: Vec<Vec<u8>>,
    scores: BTreeMap<String, i64>,
    index: BTreeMap<i64, String>,
    nested: Vec<Vec<i64>>,
    inner: Mid,
    opt: Option<Leaf>,
    maybe_n: Option<i64>,
    maybe_s: Option<String>,
}

mod random {
    use super::*;
    use rand::{Rng, rngs::StdRng};

    fn pick<T: Copy>(rng: &mut StdRng, extremes: &[T], random: T) -> T {
        if rng.random_bool(0.4) { extremes[rng.random_range(0..extremes.len())] } else { random }
    }

    pub fn i64(rng: &mut StdRng) -> i64 {
        let random = rng.random::<i64>() >> rng.random_range(0..64);
        pick(rng, &[i64::MIN, i64::MAX, i64::MIN + 1, 0, -1, 1, 63, 64, -64, -65], random)
    }

    pub fn u64(rng: &mut StdRng) -> u64 {
        let random = rng.random::<u64>() >> rng.random_range(0..64);
        pick(rng, &[u64::MAX, u64::MAX - 1, 0, 1, 0x7F, 0x80, 0xFF, 0x100, 1 << 63], random)
    }

    pub fn f64(rng: &mut StdRng) -> f64 {
        let nan = f64::from_bits(0x7FF0_0000_0000_0001 | rng.random::<u64>() >> 13);
        let random = if rng.random_bool(0.5) { f64::from_bits(rng.random()) } else { rng.random::<f64>() * 1e6 - 5e5 };
        let extremes = [
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1), // the smallest subnormal
            1e308,
            -1e-308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            nan,
            f64::NAN,
            1.5,
        ];
        pick(rng, &extremes, random)
    }

    /// Finite `f32`s: Go refuses a float32 out of range, and a NaN's payload need not survive
    /// Rust's own `f32 → f64 → f32`.
    pub fn f32(rng: &mut StdRng) -> f32 {
        let bits = f32::from_bits(rng.random());
        let random = if bits.is_finite() { bits } else { rng.random::<f32>() };
        pick(rng, &[0.0, -0.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, f32::from_bits(1), 0.1], random)
    }

    pub fn string(rng: &mut StdRng) -> String {
        const SOME: [char; 12] = ['a', 'Z', ' ', '\0', '\n', 'é', 'ß', '中', '文', '🦀', '\u{0301}', '\u{FFFF}'];
        let len = rng.random_range(0..12);
        (0..len)
            .map(|_| if rng.random_bool(0.7) { SOME[rng.random_range(0..SOME.len())] } else { rng.random::<char>() })
            .collect()
    }

    pub fn bytes(rng: &mut StdRng) -> Vec<u8> {
        let len = if rng.random_bool(0.05) { rng.random_range(0..5000) } else { rng.random_range(0..8) };
        (0..len).map(|_| rng.random()).collect()
    }

    fn list<T>(rng: &mut StdRng, max: usize, mut item: impl FnMut(&mut StdRng) -> T) -> Vec<T> {
        let len = rng.random_range(0..=max);
        (0..len).map(|_| item(rng)).collect()
    }

    fn leaf(rng: &mut StdRng) -> Leaf {
        Leaf { n: i64(rng), u: u64(rng), f: F64(f64(rng)), s: string(rng), ok: rng.random() }
    }

    pub fn wide(rng: &mut StdRng) -> Wide {
        let inner = Mid {
            name: string(rng),
            leaves: list(rng, 3, leaf),
            by_key: list(rng, 3, |rng| (string(rng), leaf(rng))).into_iter().collect(),
            raw: bytes(rng),
        };
        let (small, user_id) = (rng.random(), rng.random());
        Wide {
            big: i64(rng),
            small: pick(rng, &[i32::MIN, i32::MAX, 0, -1], small),
            count: u64(rng),
            byte: rng.random(),
            user_id: pick(rng, &[u32::MAX, 0], user_id),
            ratio: F64(f64(rng)),
            single: F32(f32(rng)),
            text: string(rng),
            blob: bytes(rng),
            flag: rng.random(),
            ints: list(rng, 5, i64),
            floats: list(rng, 5, |rng| F64(f64(rng))),
            weights: list(rng, 3, |rng| (string(rng), F64(f64(rng)))).into_iter().collect(),
            words: list(rng, 4, string),
            blobs: list(rng, 3, bytes),
            scores: list(rng, 4, |rng| (string(rng), i64(rng))).into_iter().collect(),
            index: list(rng, 3, |rng| (i64(rng), string(rng))).into_iter().collect(),
            nested: list(rng, 3, |rng| list(rng, 3, i64)),
            inner,
            opt: rng.random_bool(0.5).then(|| leaf(rng)),
            maybe_n: rng.random_bool(0.5).then(|| i64(rng)),
            maybe_s: rng.random_bool(0.5).then(|| string(rng)),
        }
    }
}

/// What a value is after a trip through Go: gob leaves out a struct field holding its type's
/// zero value (and `-0.0 == 0`), so a field's `-0.0` comes back as `0.0`, and a pointer to a
/// zero number or an empty string as nil. In slices and maps every element travels as is.
/// And warren's own limit (PROTOCOL.md §18.3): types come from values, so a slice whose
/// elements are all empty slices has no element type and goes as no slice at all.
fn through_go(mut v: Wide) -> Wide {
    fn typed<T>(list: Vec<Vec<T>>) -> Vec<Vec<T>> {
        if list.iter().all(Vec::is_empty) { Vec::new() } else { list }
    }
    v.blobs = typed(v.blobs);
    v.nested = typed(v.nested);
    fn field(f: F64) -> F64 {
        if f.0 == 0.0 { F64(0.0) } else { f }
    }
    fn leaf(l: &mut Leaf) {
        l.f = field(l.f);
    }
    v.ratio = field(v.ratio);
    if v.single.0 == 0.0 {
        v.single = F32(0.0);
    }
    v.inner.leaves.iter_mut().for_each(leaf);
    v.inner.by_key.values_mut().for_each(leaf);
    v.opt.iter_mut().for_each(leaf);
    v.maybe_n = v.maybe_n.filter(|n| *n != 0);
    v.maybe_s = v.maybe_s.filter(|s| !s.is_empty());
    v
}

/// Several hundred random values, one Go process: the seed is printed with any failure and
/// `GOB_RELAY_SEED=N` replays it.
#[tokio::test]
async fn random_values_from_rust_round_trip_through_go() {
    use rand::SeedableRng;
    const COUNT: usize = 500;
    let seed = std::env::var("GOB_RELAY_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("GOB_RELAY_SEED is a number"))
        .unwrap_or_else(rand::random);
    let replay = format!("seed {seed} (replay with GOB_RELAY_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sent: Vec<Wide> = (0..COUNT).map(|_| random::wide(&mut rng)).collect();
    let bytes = warren_rpc::__wire::gob::encode_stream(&sent).unwrap_or_else(|err| panic!("{replay}: encode: {err}"));

    let mut relay = tokio::process::Command::new(go_program("gobrelay"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start gobrelay");
    let mut stdin = relay.stdin.take().expect("stdin");
    // Written from its own task: Go answers while it reads, and both pipes are bounded.
    let writer = tokio::spawn(async move {
        stdin.write_all(&bytes).await?;
        stdin.shutdown().await
    });
    let output = within("gobrelay", relay.wait_with_output()).await.expect("gobrelay runs");
    writer.await.expect("writer").expect("write to gobrelay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{replay}: Go could not read warren's gob: {stderr}");
    assert_eq!(stderr.trim(), format!("gobrelay: {COUNT} values"), "{replay}");

    let back: Vec<Wide> = warren_rpc::__wire::gob::decode_stream(&output.stdout, 1 << 20)
        .unwrap_or_else(|err| panic!("{replay}: warren cannot read Go's gob: {err}"));
    assert_eq!(back.len(), COUNT, "{replay}");
    for (i, (sent, back)) in sent.into_iter().zip(back).enumerate() {
        assert_eq!(back, through_go(sent), "{replay}: value {i} changed on its way through Go");
    }
}
