//! Round trips over a Unix socket: warren-rpc next to raw baselines measured in the same run.
//!
//! `cargo bench -p warren-rpc --bench roundtrip` (under two minutes); CI runs it once, untimed,
//! with `-- --test`. Figures and their reading are in `BENCHMARKS.md`. On a small VM, also run
//! it under `taskset -c 0`: the one-caller figures of the cross-thread setups otherwise depend on
//! whether the scheduler puts both ends on one vCPU (a few µs) or on two (tens of µs, each
//! message waking a halted vCPU), and that changes from run to run.
//!
//! Groups:
//! - `c1`: one caller, one call at a time; `raw_std` is the physical limit (blocking
//!   ping-pong of 24-byte length-prefixed frames against an echo thread), `raw_tokio` the same
//!   over tokio, `shm_tokio` the same over the shared-memory rings (issue #19, docs/SHM.md; no
//!   frame layer), and `warren/*` a tiny `Task.Get("new_id") -> Todo` call in several runtime
//!   setups (see [`Setup`]).
//! - `c64`: 64 callers; throughput as calls per second. `raw_std` is 64 client threads on 64
//!   connections to 64 echo threads; `warren/*` is 64 tasks sharing one client connection.
//! - `micro`, `codec`: the per-call CPU work without any socket.
//!
//! Sockets live in a private directory under /tmp, removed at the end.

use std::future::Future;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, SamplingMode, Throughput};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use warren_rpc::__wire::frame::{DEFAULT_MAX_FRAME, FrameReader};
use warren_rpc::__wire::message;
use warren_rpc::__wire::shm::{Bells, Layout, Role, Segment, ShmRead, ShmWrite, halves};
use warren_rpc::{Client, Codec, Endpoint, Running, Server};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Todo {
    id: String,
}

/// Concurrent callers in the `c64` group.
const CALLERS: usize = 64;
/// Calls each caller makes per measured batch; one batch is `CALLERS * PER_CALLER` calls.
const PER_CALLER: usize = 32;
const BATCH: usize = CALLERS * PER_CALLER;

/// Raw baseline frame: 4-byte big-endian length and a 20-byte payload, about the size of a
/// warren `Task.Get` request (34 bytes) and its response (20 bytes).
const RAW_PAYLOAD: &[u8; 20] = b"Task.Get new_id 0123";
const RAW_FRAME_LEN: usize = 4 + RAW_PAYLOAD.len();

fn raw_frame() -> [u8; RAW_FRAME_LEN] {
    let mut frame = [0u8; RAW_FRAME_LEN];
    frame[..4].copy_from_slice(&(RAW_PAYLOAD.len() as u32).to_be_bytes());
    frame[4..].copy_from_slice(RAW_PAYLOAD);
    frame
}

/// Length of the whole frames at the front of `buf`.
fn whole_frames(buf: &[u8]) -> usize {
    let mut end = 0;
    while buf.len() - end >= 4 {
        let len = u32::from_be_bytes([buf[end], buf[end + 1], buf[end + 2], buf[end + 3]]) as usize;
        if buf.len() - end < 4 + len {
            break;
        }
        end += 4 + len;
    }
    end
}

// ---------------------------------------------------------------------------------------------
// Raw baselines

/// Echoes whole frames back, one read and one write per burst, until end of stream.
fn std_echo(mut stream: UnixStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        match stream.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let end = whole_frames(&buf[..have]);
        if end > 0 {
            if stream.write_all(&buf[..end]).is_err() {
                return;
            }
            buf.copy_within(end..have, 0);
            have -= end;
        }
    }
}

/// `n` connected blocking client streams, each served by its own echo thread.
struct RawEcho {
    clients: Vec<UnixStream>,
    echoes: Vec<JoinHandle<()>>,
}

impl RawEcho {
    fn start(path: &Path, n: usize) -> RawEcho {
        let listener = UnixListener::bind(path).expect("bind raw socket");
        let mut clients = Vec::with_capacity(n);
        let mut echoes = Vec::with_capacity(n);
        for i in 0..n {
            // connect() completes against the backlog, so accept() right after cannot block.
            clients.push(UnixStream::connect(path).expect("connect raw socket"));
            let (server, _) = listener.accept().expect("accept raw socket");
            let thread = std::thread::Builder::new().name(format!("raw-echo-{i}"));
            echoes.push(thread.spawn(move || std_echo(server)).expect("spawn echo thread"));
        }
        drop(listener);
        std::fs::remove_file(path).expect("remove raw socket file");
        RawEcho { clients, echoes }
    }

    fn stop(self) {
        drop(self.clients);
        for echo in self.echoes {
            echo.join().expect("echo thread");
        }
    }
}

fn raw_round_trip(stream: &mut UnixStream, frame: &[u8; RAW_FRAME_LEN], reply: &mut [u8; RAW_FRAME_LEN]) {
    stream.write_all(frame).expect("raw write");
    stream.read_exact(reply).expect("raw read");
}

/// A tokio echo server on a current-thread runtime of its own thread; stops at end of stream.
/// Echoes whole length-prefixed frames back until the stream ends: the tokio echo, over a
/// socket or over the shared-memory rings.
async fn echo_frames(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        match stream.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let end = whole_frames(&buf[..have]);
        if end > 0 {
            if stream.write_all(&buf[..end]).await.is_err() {
                return;
            }
            buf.copy_within(end..have, 0);
            have -= end;
        }
    }
}

fn tokio_echo_thread(path: &Path) -> (tokio::net::UnixStream, Runtime, JoinHandle<()>) {
    let listener = UnixListener::bind(path).expect("bind raw tokio socket");
    let thread = std::thread::Builder::new().name("tokio-echo".into());
    let echo = thread
        .spawn(move || {
            let rt = runtime(Flavor::CurrentThread);
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking listener");
                let listener = tokio::net::UnixListener::from_std(listener).expect("tokio listener");
                let (stream, _) = listener.accept().await.expect("accept");
                echo_frames(stream).await;
            });
        })
        .expect("spawn tokio echo thread");
    let rt = runtime(Flavor::CurrentThread);
    let client = rt.block_on(tokio::net::UnixStream::connect(path)).expect("connect raw tokio socket");
    std::fs::remove_file(path).expect("remove raw tokio socket file");
    (client, rt, echo)
}

/// The raw tokio echo over the shared-memory rings (issue #19) instead of a socket: the same
/// frames, the same loop, on a thread and runtime of its own. Returns the client's halves, its
/// runtime (where they are registered) and the echo thread.
fn shm_echo_thread() -> ((ShmRead, ShmWrite), Runtime, JoinHandle<()>) {
    let layout = Layout::new(64 * 1024, 64 * 1024).expect("ring sizes");
    let (segment, fd) = Segment::create(layout.segment_len()).expect("shared-memory segment");
    assert!(layout.write_header(&segment));
    let (client_bells, server_bells) = Bells::new().expect("bells");
    let (client_socket, server_socket) = UnixStream::pair().expect("socket pair");
    for socket in [&client_socket, &server_socket] {
        socket.set_nonblocking(true).expect("nonblocking");
    }
    let thread = std::thread::Builder::new().name("shm-echo".into());
    let echo = thread
        .spawn(move || {
            let rt = runtime(Flavor::CurrentThread);
            rt.block_on(async move {
                let theirs = Arc::new(Segment::map(&fd).expect("map the segment"));
                let layout = Layout::read_header(&theirs).expect("header");
                let (read, write) =
                    halves(theirs, &layout, Role::Server, server_bells, server_socket.as_fd()).expect("server halves");
                echo_frames(tokio::io::join(read, write)).await;
            });
        })
        .expect("spawn shm echo thread");
    let rt = runtime(Flavor::CurrentThread);
    let client = {
        let _in_rt = rt.enter();
        halves(Arc::new(segment), &layout, Role::Client, client_bells, client_socket.as_fd()).expect("client halves")
    };
    (client, rt, echo)
}

// ---------------------------------------------------------------------------------------------
// warren fixtures

#[derive(Debug, Clone, Copy)]
enum Flavor {
    CurrentThread,
    /// Two workers, what `#[tokio::main]` gives on this machine.
    MultiThread,
}

fn runtime(flavor: Flavor) -> Runtime {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
    };
    builder.enable_all().build().expect("tokio runtime")
}

fn task_server() -> Server {
    Server::new().service("Task", |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Echo", |_ctx, data: warren_rpc::Bytes| async move { Ok(data) })
    })
}

/// A warren server on a runtime of its own thread, like a child process would run it.
struct ServerThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl ServerThread {
    fn start(flavor: Flavor, endpoint: Endpoint) -> ServerThread {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("warren-server".into())
            .spawn(move || {
                runtime(flavor).block_on(async move {
                    let running = task_server().bind(&endpoint).await.expect("bind warren server");
                    ready_tx.send(()).expect("report ready");
                    let _ = stopped.await;
                    running.shutdown(Duration::from_secs(1)).await;
                });
            })
            .expect("spawn server thread");
        ready_rx.recv().expect("server thread ready");
        ServerThread { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("server thread");
    }
}

/// Where the client and the server run.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// One current-thread runtime for both: no cross-thread wake-up at all; the CPU cost of a
    /// call (client + server + two syscalls each way) and nothing else.
    SingleThread,
    /// One two-worker multi-thread runtime for both, callers spawned on it: a typical test or
    /// in-process setup.
    SharedMt,
    /// Client on a current-thread runtime on the bench thread, server on a current-thread
    /// runtime of its own thread: the same thread topology as the raw baselines.
    CtClientCtServer,
    /// Client on a current-thread runtime, server on a two-worker runtime of its own.
    CtClientMtServer,
    /// Both on two-worker runtimes of their own: two `#[tokio::main]` processes, in one.
    MtClientMtServer,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::SingleThread => "single_thread",
            Setup::SharedMt => "shared_mt",
            Setup::CtClientCtServer => "ct_client+ct_server",
            Setup::CtClientMtServer => "ct_client+mt_server",
            Setup::MtClientMtServer => "mt_client+mt_server",
        }
    }
}

/// A connected client, the runtime that drives it, and wherever its server runs.
struct Fixture {
    rt: Runtime,
    client: Client,
    /// The server when it shares the client's runtime.
    local: Option<Running>,
    thread: Option<ServerThread>,
    /// Run the measured loop as a task (multi-thread client runtime) rather than in `block_on`.
    spawn: bool,
}

impl Fixture {
    fn new(setup: Setup, path: PathBuf) -> Fixture {
        let endpoint = Endpoint::unix(path);
        let (client_flavor, server_flavor, shared) = match setup {
            Setup::SingleThread => (Flavor::CurrentThread, Flavor::CurrentThread, true),
            Setup::SharedMt => (Flavor::MultiThread, Flavor::MultiThread, true),
            Setup::CtClientCtServer => (Flavor::CurrentThread, Flavor::CurrentThread, false),
            Setup::CtClientMtServer => (Flavor::CurrentThread, Flavor::MultiThread, false),
            Setup::MtClientMtServer => (Flavor::MultiThread, Flavor::MultiThread, false),
        };
        let rt = runtime(client_flavor);
        let (local, thread) = if shared {
            (Some(rt.block_on(task_server().bind(&endpoint)).expect("bind warren server")), None)
        } else {
            (None, Some(ServerThread::start(server_flavor, endpoint.clone())))
        };
        let client = rt.block_on(Client::connect(&endpoint)).expect("connect");
        let todo: Todo = rt.block_on(client.call("Task.Get", "new_id")).expect("first call");
        assert_eq!(todo.id, "new_id");
        Fixture { rt, client, local, thread, spawn: matches!(client_flavor, Flavor::MultiThread) }
    }

    fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.spawn { self.rt.block_on(self.rt.spawn(fut)).expect("bench task") } else { self.rt.block_on(fut) }
    }

    fn stop(self) {
        self.rt.block_on(self.client.close());
        if let Some(running) = &self.local {
            self.rt.block_on(running.shutdown(Duration::from_secs(1)));
        }
        if let Some(thread) = self.thread {
            thread.stop();
        }
    }
}

async fn get(client: &Client) -> Todo {
    client.call("Task.Get", "new_id").await.expect("Task.Get")
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

/// One caller, one call at a time.
fn c1(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("c1");
    group.throughput(Throughput::Elements(1));

    let mut raw = RawEcho::start(&dir.join("raw.sock"), 1);
    let (frame, mut reply) = (raw_frame(), [0u8; RAW_FRAME_LEN]);
    group.bench_function("raw_std", |b| b.iter(|| raw_round_trip(&mut raw.clients[0], &frame, &mut reply)));
    raw.stop();

    let (mut stream, rt, echo) = tokio_echo_thread(&dir.join("raw-tokio.sock"));
    group.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    stream.write_all(&frame).await.expect("raw tokio write");
                    stream.read_exact(&mut reply).await.expect("raw tokio read");
                }
                start.elapsed()
            })
        });
    });
    drop(stream);
    echo.join().expect("tokio echo thread");
    drop(rt);

    // The transport alone, as `raw_tokio` is: no frame layer, no calls (issue #19's floor
    // under tokio; the rings park on eventfds, no spin yet).
    let ((mut shm_read, mut shm_write), rt, echo) = shm_echo_thread();
    group.bench_function("shm_tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    shm_write.write_all(&frame).await.expect("shm write");
                    shm_read.read_exact(&mut reply).await.expect("shm read");
                }
                start.elapsed()
            })
        });
    });
    rt.block_on(async { drop((shm_read, shm_write)) });
    echo.join().expect("shm echo thread");
    drop(rt);

    for setup in [
        Setup::SingleThread,
        Setup::SharedMt,
        Setup::CtClientCtServer,
        Setup::CtClientMtServer,
        Setup::MtClientMtServer,
    ] {
        let fixture = Fixture::new(setup, dir.join("warren.sock"));
        group.bench_function(format!("warren/{}", setup.name()), |b| {
            b.iter_custom(|iters| {
                let client = fixture.client.clone();
                fixture.run(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(get(&client).await);
                    }
                    start.elapsed()
                })
            });
        });
        fixture.stop();
    }
    group.finish();
}

/// 64 callers; one iteration is a batch of `BATCH` calls.
fn c64(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("c64");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sampling_mode(SamplingMode::Flat).sample_size(20);

    // 64 client threads on 64 connections, started and stopped together by a barrier so that
    // thread creation stays out of the measurement.
    let raw = RawEcho::start(&dir.join("raw64.sock"), CALLERS);
    let start = Arc::new(Barrier::new(CALLERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<JoinHandle<()>> = raw
        .clients
        .iter()
        .map(|stream| {
            let mut stream = stream.try_clone().expect("clone raw stream");
            let (start, stop) = (Arc::clone(&start), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (frame, mut reply) = (raw_frame(), [0u8; RAW_FRAME_LEN]);
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    for _ in 0..PER_CALLER {
                        raw_round_trip(&mut stream, &frame, &mut reply);
                    }
                    start.wait();
                }
            })
        })
        .collect();
    group.bench_function("raw_std", |b| {
        b.iter_custom(|iters| {
            let begin = Instant::now();
            for _ in 0..iters {
                start.wait(); // go
                start.wait(); // all done
            }
            begin.elapsed()
        });
    });
    stop.store(true, Ordering::Release);
    start.wait();
    for caller in callers {
        caller.join().expect("raw caller thread");
    }
    raw.stop();

    for setup in [Setup::SharedMt, Setup::CtClientCtServer, Setup::MtClientMtServer] {
        let fixture = Fixture::new(setup, dir.join("warren64.sock"));
        group.bench_function(format!("warren/{}", setup.name()), |b| {
            b.iter_custom(|iters| {
                let client = fixture.client.clone();
                fixture.run(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut callers = JoinSet::new();
                        for _ in 0..CALLERS {
                            let client = client.clone();
                            callers.spawn(async move {
                                for _ in 0..PER_CALLER {
                                    black_box(get(&client).await);
                                }
                            });
                        }
                        while let Some(done) = callers.join_next().await {
                            done.expect("caller task");
                        }
                    }
                    start.elapsed()
                })
            });
        });
        fixture.stop();
    }
    group.finish();
}

/// The per-call CPU work of framing, without sockets.
fn micro(c: &mut Criterion) {
    let mut group = c.benchmark_group("micro");
    group.bench_function("request_encode", |b| {
        b.iter(|| {
            message::request(black_box(1), "Task.Get", None, Codec::MessagePack, black_box("new_id"), DEFAULT_MAX_FRAME)
                .expect("encode")
        });
    });

    const FRAMES: usize = 1024;
    let mut wire = Vec::new();
    for id in 1..=FRAMES as u32 {
        let frame =
            message::request(id, "Task.Get", None, Codec::MessagePack, "new_id", DEFAULT_MAX_FRAME).expect("encode");
        wire.extend_from_slice(&frame);
    }
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("frame_decode+parse_request/1024", |b| {
        b.iter(|| {
            let mut reader = FrameReader::new(black_box(&wire[..]), DEFAULT_MAX_FRAME);
            let mut n = 0;
            // An in-memory reader is always ready: no runtime needed.
            while let Some(frame) = reader.read_frame().now_or_never().expect("ready").expect("valid frame") {
                black_box(message::parse_request(frame.body).expect("valid request"));
                n += 1;
            }
            assert_eq!(n, FRAMES);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("codec");
    let todo = Todo { id: "new_id".into() };
    for codec in [Codec::MessagePack, Codec::Json] {
        let name = if codec == Codec::MessagePack { "msgpack" } else { "json" };
        let mut buf = BytesMut::with_capacity(64);
        group.bench_function(format!("{name}/encode_todo"), |b| {
            b.iter(|| {
                buf.clear();
                codec.encode_into(&mut buf, black_box(&todo)).expect("encode");
            });
        });
        let bytes = codec.encode(&todo).expect("encode");
        group.bench_function(format!("{name}/decode_todo"), |b| {
            b.iter(|| codec.decode::<Todo>(black_box(&bytes)).expect("decode"));
        });
    }
    group.finish();
}

/// `WARREN_RPC_PROBE=<setup>:<calls>[:<bytes>]` makes the binary run that many calls and exit,
/// without criterion: a fixed amount of work for `valgrind --tool=callgrind` or `perf`, whose
/// count minus that of a run with 0 calls, divided by the calls, is the cost of one call. This
/// machine has no hardware counters, so instruction counts come from callgrind. `<bytes>` > 0
/// makes each call a `Task.Echo` of that many bytes instead of `Task.Get`.
fn probe(spec: &str) {
    let mut parts = spec.split(':');
    let setup = match parts.next() {
        Some("single_thread") => Setup::SingleThread,
        Some("shared_mt") => Setup::SharedMt,
        Some("ct_client+ct_server") => Setup::CtClientCtServer,
        Some("ct_client+mt_server") => Setup::CtClientMtServer,
        Some("mt_client+mt_server") => Setup::MtClientMtServer,
        other => panic!("unknown setup {other:?}"),
    };
    let calls: usize = parts.next().and_then(|n| n.parse().ok()).expect("<setup>:<calls>");
    let size: usize = parts.next().map_or(0, |n| n.parse().expect("<bytes>"));
    let dir = tempfile::Builder::new().prefix("wrpc-probe").tempdir_in("/tmp").expect("socket dir");
    let fixture = Fixture::new(setup, dir.path().join("probe.sock"));
    let client = fixture.client.clone();
    let elapsed = fixture.run(async move {
        let payload = warren_rpc::Bytes::from(vec![7u8; size]);
        let start = Instant::now();
        for _ in 0..calls {
            if size == 0 {
                black_box(get(&client).await);
            } else {
                let reply: warren_rpc::Bytes = client.call("Task.Echo", &payload).await.expect("Task.Echo");
                assert_eq!(reply.len(), size);
            }
        }
        start.elapsed()
    });
    fixture.stop();
    if calls > 0 {
        eprintln!("{} calls in {elapsed:?}: {:?} per call", calls, elapsed / calls as u32);
    }
}

fn main() {
    if let Ok(spec) = std::env::var("WARREN_RPC_PROBE") {
        probe(&spec);
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let dir = tempfile::Builder::new().prefix("wrpc-bench").tempdir_in("/tmp").expect("socket dir");
    c1(&mut criterion, dir.path());
    c64(&mut criterion, dir.path());
    micro(&mut criterion);
    drop(dir);
    criterion.final_summary();
}
