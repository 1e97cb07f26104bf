//! Bad input never takes a server down.
//!
//! Each test runs one server on its own Unix socket (one test uses TCP) and one well-behaved
//! [`Client`] that calls `Task.Get` in a loop for the whole test and must never see a failure.
//! Raw sockets then send the server what a broken or hostile peer might: oversized, truncated,
//! unknown or misplaced frames, garbage, a wrong magic or version, HTTP, malformed JSON, or a
//! hello that never completes. Each must get a clear answer (the server's preface and a GOODBYE
//! with the right code and a reason naming the problem, `HTTP/1.0 400` for an HTTP client, or a
//! JSON-RPC error line for a bad JSON line), a WARN line in the server's log saying the same,
//! and a clean close (read returns 0) of that connection only.
//!
//! Answers are parsed by hand from `docs/PROTOCOL.md` rather than with the crate's decoder, so
//! a mistake shared by the crate's encoder and decoder cannot hide here.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use common::{Todo, socket_dir, socket_in, test_server, within};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing_subscriber::filter::LevelFilter;
use warren_rpc::{Client, ConnectError, Endpoint, ErrorCode, Running, Server};

const MAGIC: [u8; 4] = [0xF7, 0x57, 0x52, 0x50];
const PREFACE: [u8; 5] = [0xF7, 0x57, 0x52, 0x50, 0x01];
const HEADER_LEN: usize = 10;

const KIND_HELLO: u8 = 0x01;
const KIND_WELCOME: u8 = 0x02;
const KIND_REQUEST: u8 = 0x10;
const KIND_RESPONSE: u8 = 0x11;
const KIND_ERROR: u8 = 0x12;
const KIND_NOTIFY: u8 = 0x20;
const KIND_GOODBYE: u8 = 0x40;

const CODEC_MSGPACK: u8 = 1;
const CODEC_JSON: u8 = 2;

const FRAME_TOO_LARGE: u32 = 8;
const PROTOCOL_ERROR: u32 = 9;
const UNSUPPORTED_VERSION: u32 = 10;
const OVERLOADED: u32 = 13;

/// The limit most tests configure, small enough to test frames at and over it cheaply.
const SMALL_MAX: u32 = 64 * 1024;
/// Short enough for the slow-loris cases to finish quickly, long enough for a real handshake.
const HELLO_TIMEOUT: Duration = Duration::from_millis(500);
/// The frame timeout of the tests about it: a frame (or JSON line) started must be complete
/// this soon after its first byte.
const FRAME_TIMEOUT: Duration = Duration::from_millis(400);
/// How much later than the frame timeout a drop may come on a busy 2-vCPU machine.
const LATE: Duration = Duration::from_millis(1500);
/// Bound on every single read or write of a raw peer. Well below the default 10 s hello timeout,
/// so a server that waits for input it does not need is caught rather than rescued by a timer.
const ANSWER_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Bytes built by hand from the spec.

fn frame(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(u32::try_from(body.len()).expect("test bodies are small"), kind, id).to_vec();
    out.extend_from_slice(body);
    out
}

fn header(body_len: u32, kind: u8, id: u32) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out[..4].copy_from_slice(&body_len.to_be_bytes());
    out[4] = kind;
    out[6..].copy_from_slice(&id.to_be_bytes());
    out
}

/// A preface announcing `version`, then a HELLO: 16 MiB limit, all features, JSON then
/// MessagePack (JSON so that payloads in these tests are readable text).
fn preface_and_hello(version: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(16u32 << 20).to_be_bytes());
    body.extend_from_slice(&0xFu32.to_be_bytes());
    body.extend_from_slice(&[2, CODEC_JSON, CODEC_MSGPACK]);
    let mut out = MAGIC.to_vec();
    out.push(version);
    out.extend(frame(KIND_HELLO, 0, &body));
    out
}

fn request_body(method: &[u8], timeout_us: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::try_from(method.len()).expect("method names are short")];
    body.extend_from_slice(method);
    body.extend_from_slice(&timeout_us.to_be_bytes());
    body.extend_from_slice(payload);
    body
}

/// Seeded random bytes that cannot be mistaken for the binary protocol or for HTTP/JSON.
fn garbage(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len = rng.random_range(5..2048);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    // Bytes 0x80..=0xF6 start no ASCII text and are not the magic's 0xF7.
    bytes[0] = rng.random_range(0x80..=0xF6);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 64 { format!(" … ({} bytes)", bytes.len()) } else { String::new() };
    format!("[{}]{more}", shown.join(" "))
}

// ---------------------------------------------------------------------------------------------
// Parsing what the server sent, by hand.

#[derive(Debug)]
struct RawFrame {
    kind: u8,
    flags: u8,
    id: u32,
    body: Vec<u8>,
}

fn parse_header(header: &[u8]) -> (usize, u8, u8, u32) {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let id = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    (len as usize, header[4], header[5], id)
}

/// Splits `bytes` into whole frames; anything left over is a server bug.
fn split_frames(all: &[u8]) -> Vec<RawFrame> {
    let mut rest = all;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= HEADER_LEN, "server sent a partial frame header: {}", hex(all));
        let (len, kind, flags, id) = parse_header(rest);
        assert!(rest.len() >= HEADER_LEN + len, "server sent a partial frame body: {}", hex(all));
        frames.push(RawFrame { kind, flags, id, body: rest[HEADER_LEN..HEADER_LEN + len].to_vec() });
        rest = &rest[HEADER_LEN + len..];
    }
    frames
}

#[derive(Debug)]
struct Goodbye {
    code: u32,
    reason: String,
}

impl Goodbye {
    fn of(frame: &RawFrame) -> Goodbye {
        assert_eq!((frame.kind, frame.flags, frame.id), (KIND_GOODBYE, 0, 0), "expected a GOODBYE, got {frame:?}");
        assert!(frame.body.len() >= 4, "GOODBYE body too short for its code: {frame:?}");
        let code = u32::from_be_bytes([frame.body[0], frame.body[1], frame.body[2], frame.body[3]]);
        let reason = String::from_utf8(frame.body[4..].to_vec()).expect("GOODBYE reason is UTF-8");
        Goodbye { code, reason }
    }

    /// Asserts the code, and that the reason names the problem (every word, ignoring case).
    fn expect(&self, code: u32, words: &[&str]) {
        assert_eq!(self.code, code, "wrong GOODBYE code; reason {:?}", self.reason);
        let reason = self.reason.to_lowercase();
        for word in words {
            assert!(reason.contains(&word.to_lowercase()), "GOODBYE reason {:?} does not say {word:?}", self.reason);
        }
    }
}

/// Everything a peer refused during the handshake receives: preface, GOODBYE, nothing more.
fn parse_refusal(bytes: &[u8]) -> Goodbye {
    assert!(bytes.starts_with(&PREFACE), "expected the server's version-1 preface first, got {}", hex(bytes));
    parse_single_goodbye(&bytes[PREFACE.len()..])
}

fn parse_single_goodbye(bytes: &[u8]) -> Goodbye {
    let frames = split_frames(bytes);
    assert_eq!(frames.len(), 1, "expected exactly one GOODBYE before the close, got {frames:?}");
    Goodbye::of(&frames[0])
}

// ---------------------------------------------------------------------------------------------
// A raw peer: every wait bounded.

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    testkit::within_for(ANSWER_BOUND, what, fut).await
}

/// Reads until the server closes the connection (read returns 0) and returns what it sent.
async fn read_until_closed(read: &mut (impl AsyncRead + Unpin), mut got: Vec<u8>) -> Vec<u8> {
    match bounded("waiting for the server to close", read.read_to_end(&mut got)).await {
        Ok(_) => got,
        Err(err) => panic!("expected a clean close (read returning 0), got `{err}` after {}", hex(&got)),
    }
}

struct Raw {
    stream: UnixStream,
}

impl Raw {
    async fn connect(path: &Path) -> Raw {
        Raw { stream: bounded("connect", UnixStream::connect(path)).await.expect("connect to the server") }
    }

    /// Connects and completes a valid handshake; returns the `max_frame` the server announced.
    async fn open(path: &Path) -> (Raw, u32) {
        let mut raw = Raw::connect(path).await;
        raw.send(&preface_and_hello(1)).await;
        assert_eq!(raw.read_exact(PREFACE.len()).await, PREFACE, "server preface");
        let welcome = raw.read_frame().await;
        assert_eq!((welcome.kind, welcome.id, welcome.body.len()), (KIND_WELCOME, 0, 9), "{welcome:?}");
        assert_eq!(welcome.body[8], CODEC_JSON, "the server picks the client's first codec");
        let max_frame = u32::from_be_bytes([welcome.body[0], welcome.body[1], welcome.body[2], welcome.body[3]]);
        (raw, max_frame)
    }

    async fn send(&mut self, bytes: &[u8]) {
        bounded("write", self.stream.write_all(bytes)).await.expect("write to the server");
    }

    async fn shutdown_write(&mut self) {
        bounded("shutdown", self.stream.shutdown()).await.expect("shut down the write half");
    }

    async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        bounded("read", self.stream.read_exact(&mut buf)).await.expect("read from the server");
        buf
    }

    async fn read_frame(&mut self) -> RawFrame {
        let (len, kind, flags, id) = parse_header(&self.read_exact(HEADER_LEN).await);
        RawFrame { kind, flags, id, body: self.read_exact(len).await }
    }

    async fn read_until_closed(&mut self) -> Vec<u8> {
        read_until_closed(&mut self.stream, Vec::new()).await
    }
}

/// Sends `bytes` instead of a handshake and returns the refusal (the connection is then closed).
async fn refused(path: &Path, bytes: &[u8], then_eof: bool) -> Goodbye {
    let mut raw = Raw::connect(path).await;
    raw.send(bytes).await;
    if then_eof {
        raw.shutdown_write().await;
    }
    parse_refusal(&raw.read_until_closed().await)
}

/// Completes a handshake, sends `bytes`, and returns the GOODBYE (the connection is then closed).
async fn dropped_after_hello(path: &Path, bytes: &[u8], then_eof: bool) -> Goodbye {
    let (mut raw, _) = Raw::open(path).await;
    raw.send(bytes).await;
    if then_eof {
        raw.shutdown_write().await;
    }
    parse_single_goodbye(&raw.read_until_closed().await)
}

/// Sends an HTTP request and returns the body of the server's `HTTP/1.0 400` answer.
async fn http_refused(path: &Path, request: &[u8]) -> String {
    let mut raw = Raw::connect(path).await;
    raw.send(request).await;
    let answer = raw.read_until_closed().await;
    assert!(answer.starts_with(b"HTTP/1.0 400 Bad Request\r\n"), "not an HTTP 400: {}", hex(&answer));
    let answer = String::from_utf8(answer).expect("the HTTP answer is text");
    let (_, body) = answer.split_once("\r\n\r\n").expect("HTTP headers end with an empty line");
    assert!(body.contains("warren RPC socket (binary protocol)"), "the body does not explain: {body:?}");
    body.to_owned()
}

/// Sends a JSON line cut short, then a good one, then closes its side. JSON-RPC is served on
/// the same socket (`docs/PROTOCOL.md` §17): the bad line gets a JSON-RPC parse error with a null
/// id, the connection goes on and answers the good line, and then closes cleanly.
async fn malformed_json_answered(path: &Path) {
    let mut raw = Raw::connect(path).await;
    raw.send(b"{\"method\":\"Task.Get\",\"params\":[\"x\"],\"id\":0\n").await;
    raw.send(b"{\"method\":\"Task.Get\",\"params\":[\"x\"],\"id\":1}\n").await;
    raw.shutdown_write().await;
    let answer = String::from_utf8(raw.read_until_closed().await).expect("JSON-RPC answers are text");
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 2, "{answer}");
    assert!(lines[0].starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"#), "{}", lines[0]);
    assert_eq!(lines[1], r#"{"id":1,"result":{"id":"x"},"error":null}"#);
}

/// Sends a valid preface and HELLO one byte per 200 ms, so the hello never completes in time.
/// Returns the refusal and how long after connecting it came.
async fn slow_loris(path: &Path) -> (Goodbye, Duration) {
    let stream = bounded("connect", UnixStream::connect(path)).await.expect("connect");
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let (answered, mut stop) = oneshot::channel::<()>();
    let dribble = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        for byte in preface_and_hello(1) {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Dropping the write half would look like an EOF, a different case: hold it open.
        let _ = stop.await;
    });
    let mut first = [0u8; 1];
    let n = bounded("slow-loris answer", read.read(&mut first)).await.expect("read the answer");
    let elapsed = started.elapsed();
    let _ = answered.send(());
    let mut bytes = first[..n].to_vec();
    match bounded("waiting for the server to close", read.read_to_end(&mut bytes)).await {
        Ok(_) => {}
        // A byte of ours can cross the server's close, and a server that closes without
        // draining its input turns that into a reset. That is what the `still_sending` tests
        // are about (and assert deterministically); this one is about the hello deadline, so it
        // accepts a reset, but only once the whole refusal has arrived.
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset && is_whole_refusal(&bytes) => {}
        Err(err) => panic!("expected a clean close (read returning 0), got `{err}` after {}", hex(&bytes)),
    }
    bounded("slow-loris writer", dribble).await.expect("writer task");
    (parse_refusal(&bytes), elapsed)
}

fn is_whole_refusal(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(&PREFACE[..]) else { return false };
    rest.len() >= HEADER_LEN && rest.len() == HEADER_LEN + parse_header(rest).0
}

/// Completes a handshake over `stream`, then announces a huge REQUEST and keeps sending its
/// "body" (4 MiB, then EOF) until the server stops taking it. Only then reads the answer: the
/// GOODBYE must be there whole, followed by a clean end of stream.
///
/// Waiting for the sender to stop makes the outcome deterministic: a server that closes while
/// input is still unread makes this a reset every time; one that drains its input first (and
/// closes once the peer's EOF arrives or its drain deadline passes) makes it a clean close.
async fn still_sending_when_refused<S>(stream: S) -> Goodbye
where
    S: AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(stream);
    bounded("write hello", write.write_all(&preface_and_hello(1))).await.expect("write hello");
    let mut welcome = vec![0; PREFACE.len() + HEADER_LEN + 9];
    bounded("read welcome", read.read_exact(&mut welcome)).await.expect("read welcome");
    assert!(welcome.starts_with(&PREFACE) && welcome[PREFACE.len() + 4] == KIND_WELCOME, "{}", hex(&welcome));
    let flood = async move {
        // The header and the start of the body in one write, so the body is already queued
        // behind the header when the server reads it.
        let mut first = header(0xFFFF_FFF0, KIND_REQUEST, 1).to_vec();
        first.resize(HEADER_LEN + 1024 * 1024, 0);
        write.write_all(&first).await?;
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..48 {
            write.write_all(&chunk).await?;
        }
        write.shutdown().await
    };
    // Fails (broken pipe, reset) once the server has closed; succeeds if it drained everything.
    let _ = bounded("sending the oversized body", flood).await;
    let bytes = read_until_closed(&mut read, Vec::new()).await;
    let bye = parse_single_goodbye(&bytes);
    bye.expect(FRAME_TOO_LARGE, &["too large"]);
    bye
}

// ---------------------------------------------------------------------------------------------
// The catalogue of bad peers.

/// One kind of bad peer. `check` plays it against a server, asserts the answer and returns what
/// the server's log must say about it.
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// Seeded random bytes where the preface should be.
    Garbage(u64),
    /// A magic that is one byte off, then a valid HELLO.
    WrongMagic,
    /// The right magic with version 2, then a valid HELLO.
    WrongVersion,
    HttpGet,
    /// A JSON-RPC request line cut short, then a good one.
    MalformedJson,
    /// After a good handshake, only the header of a REQUEST announcing this many body bytes.
    OversizedHeader(u32),
    /// After a good handshake, a header announcing 100 body bytes, this many of them, then EOF.
    TruncatedFrame(usize),
    /// After a good handshake, a frame of kind 0x77.
    UnknownKind,
    /// After a good handshake, a well-formed REQUEST with the reserved call id 0.
    CallIdZero,
    /// After a good handshake, a REQUEST whose method name says 20 bytes and has 5.
    TruncatedMethod,
    /// Connects and never sends a byte.
    Silent,
    /// Sends a valid hello one byte per 200 ms.
    SlowLoris,
}

impl Bad {
    async fn check(self, path: &Path) -> String {
        let bye = match self {
            Bad::Garbage(seed) => {
                let bye = refused(path, &garbage(seed), false).await;
                bye.expect(PROTOCOL_ERROR, &["bad magic"]);
                bye
            }
            Bad::WrongMagic => {
                let mut bytes = preface_and_hello(1);
                bytes[3] = b'Q';
                let bye = refused(path, &bytes, false).await;
                bye.expect(PROTOCOL_ERROR, &["bad magic"]);
                bye
            }
            Bad::WrongVersion => {
                let bye = refused(path, &preface_and_hello(2), false).await;
                bye.expect(UNSUPPORTED_VERSION, &["version 2"]);
                bye
            }
            Bad::HttpGet => {
                http_refused(path, b"GET /tasks HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n").await;
                return "HTTP".to_owned();
            }
            Bad::MalformedJson => {
                malformed_json_answered(path).await;
                return "bad JSON-RPC line".to_owned();
            }
            Bad::OversizedHeader(body_len) => {
                // No body follows and the write half stays open: the answer can only come from
                // the header, before the server waits for (or reserves room for) the body.
                let bye = dropped_after_hello(path, &header(body_len, KIND_REQUEST, 1), false).await;
                bye.expect(FRAME_TOO_LARGE, &["too large", &body_len.to_string()]);
                bye
            }
            Bad::TruncatedFrame(sent) => {
                let mut bytes = header(100, KIND_REQUEST, 1).to_vec();
                bytes.extend(std::iter::repeat_n(b'x', sent));
                let bye = dropped_after_hello(path, &bytes, true).await;
                bye.expect(PROTOCOL_ERROR, &["truncated"]);
                bye
            }
            Bad::UnknownKind => {
                let bye = dropped_after_hello(path, &frame(0x77, 0, b"??"), false).await;
                bye.expect(PROTOCOL_ERROR, &["kind", "0x77"]);
                bye
            }
            Bad::CallIdZero => {
                let body = request_body(b"Task.Get", 0, b"\"x\"");
                let bye = dropped_after_hello(path, &frame(KIND_REQUEST, 0, &body), false).await;
                bye.expect(PROTOCOL_ERROR, &["id 0"]);
                bye
            }
            Bad::TruncatedMethod => {
                let body = [&[20u8][..], b"Task."].concat();
                let bye = dropped_after_hello(path, &frame(KIND_REQUEST, 1, &body), false).await;
                bye.expect(PROTOCOL_ERROR, &["truncated", "method"]);
                bye
            }
            Bad::Silent => {
                let mut raw = Raw::connect(path).await;
                let started = Instant::now();
                let bye = parse_refusal(&raw.read_until_closed().await);
                assert_hello_timeout(&bye, started.elapsed());
                bye
            }
            Bad::SlowLoris => {
                let (bye, elapsed) = slow_loris(path).await;
                assert_hello_timeout(&bye, elapsed);
                bye
            }
        };
        bye.reason
    }
}

fn assert_hello_timeout(bye: &Goodbye, elapsed: Duration) {
    bye.expect(PROTOCOL_ERROR, &["hello"]);
    // The timer starts at accept, which is after our connect began: the answer cannot come
    // sooner (minus scheduling noise), and must not wait for the 10 s default either.
    assert!(elapsed >= HELLO_TIMEOUT - Duration::from_millis(50), "refused after only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "refused only after {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// The server's log, captured for every test in this binary; each test picks the lines that
// name its own socket.

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One formatted event; the fmt layer makes one writer per event.
struct LogEvent(Vec<u8>);

impl Write for LogEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogEvent {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let line = String::from_utf8_lossy(&self.0).into_owned();
            LOG.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogEvent(Vec::new()))
            .with_ansi(false)
            .with_max_level(LevelFilter::WARN)
            .try_init();
    });
}

// ---------------------------------------------------------------------------------------------
// The fixture: a server, and a good client that calls throughout.

/// A good client calling `Task.Get` in a loop; records every failure.
struct Traffic {
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Traffic {
    fn start(client: Client) -> Traffic {
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(call_until_stopped(client, Arc::clone(&ok), Arc::clone(&failures), Arc::clone(&stop)));
        Traffic { ok, failures, stop, task }
    }

    /// Waits until the good client has completed more calls than it had so far.
    async fn progressed(&self) {
        let from = self.ok.load(Ordering::Relaxed);
        within("the good client's calls to progress", async {
            while self.ok.load(Ordering::Relaxed) < from + 20 {
                assert!(!self.task.is_finished(), "the good client stopped: {:?}", self.failures());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the loop and asserts that not one call failed.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        within("the good client's loop to stop", self.task).await.expect("good client task");
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert!(failures.is_empty(), "the good client saw failures: {failures:#?}");
        self.ok.load(Ordering::Relaxed)
    }
}

async fn call_until_stopped(
    client: Client,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("good-{n}");
        let failure = match bounded("a good call", client.call::<_, Todo>("Task.Get", &id)).await {
            Ok(todo) if todo.id == id => {
                ok.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(todo) => format!("call {n}: got the reply of another call: {todo:?}"),
            Err(err) => format!("call {n}: {err}"),
        };
        let mut failures = failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.push(failure);
        // A lost connection fails every later call at once; ten say enough.
        if failures.len() >= 10 {
            break;
        }
    }
}

struct Fixture {
    running: Running,
    path: PathBuf,
    traffic: Traffic,
    _events: mpsc::UnboundedReceiver<String>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The server most tests use: 64 KiB frames, a 500 ms hello timeout.
    async fn start() -> Fixture {
        Fixture::with(|server| server.max_frame(SMALL_MAX).hello_timeout(HELLO_TIMEOUT)).await
    }

    async fn with(configure: impl FnOnce(Server) -> Server) -> Fixture {
        capture_logs();
        let dir = socket_dir();
        let path = socket_in(&dir, "t.sock");
        let (tx, events) = mpsc::unbounded_channel();
        let running = configure(test_server(tx)).bind(&Endpoint::unix(&path)).await.expect("bind");
        let client = bounded("good client connect", common::connect(running.endpoint())).await.expect("connect");
        let traffic = Traffic::start(client);
        traffic.progressed().await;
        Fixture { running, path, traffic, _events: events, _dir: dir }
    }

    /// The server still serves: the long-lived good client keeps getting answers, and a new
    /// client can connect and call.
    async fn still_serving(&self) {
        self.traffic.progressed().await;
        let client = bounded("fresh client connect", common::connect(self.running.endpoint())).await.expect("connect");
        let todo: Todo = bounded("fresh client call", client.call("Task.Get", "fresh")).await.expect("fresh call");
        assert_eq!(todo.id, "fresh");
        client.close().await;
    }

    fn log_lines(&self) -> Vec<String> {
        let socket = self.path.display().to_string();
        let log = LOG.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter().filter(|line| line.contains("WARN") && line.contains(&socket)).cloned().collect()
    }

    /// Waits for a WARN line about this server's socket that contains `needle`.
    async fn logged(&self, needle: &str) {
        let deadline = Instant::now() + ANSWER_BOUND;
        while !self.log_lines().iter().any(|line| line.contains(needle)) {
            assert!(Instant::now() < deadline, "no WARN line saying {needle:?}; log: {:#?}", self.log_lines());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Plays `bad`, checks the answer and the log, and that the server still serves.
    async fn survives(&self, bad: Bad) {
        let said = bad.check(&self.path).await;
        self.logged(&said).await;
        self.still_serving().await;
    }

    /// Stops the good client (asserting it never failed) and shuts the server down.
    async fn finish(self) {
        self.still_serving().await;
        let calls = self.traffic.finish().await;
        assert!(calls > 0);
        within("server shutdown", self.running.shutdown(Duration::from_secs(1))).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_frame_header_is_refused_before_its_body_is_sent() {
    // The default 16 MiB limit; the header announces almost 4 GiB and no byte of body follows.
    let fixture = Fixture::with(|server| server).await;
    let said = Bad::OversizedHeader(0xFFFF_FFF0).check(&fixture.path).await;
    assert!(said.contains("16777216"), "the reason names the limit: {said:?}");
    fixture.logged(&said).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frame_over_a_configured_64k_limit_is_refused_and_one_at_it_is_served() {
    let fixture = Fixture::start().await;

    // Exactly at the limit: served, the connection stays open.
    let (mut raw, max_frame) = Raw::open(&fixture.path).await;
    assert_eq!(max_frame, SMALL_MAX, "WELCOME announces the configured limit");
    let name_len = usize::try_from(SMALL_MAX).expect("fits") - (1 + 8 + 8) - 2;
    let name = "x".repeat(name_len);
    let body = request_body(b"Task.Get", 0, format!("\"{name}\"").as_bytes());
    assert_eq!(body.len(), usize::try_from(SMALL_MAX).expect("fits"));
    raw.send(&frame(KIND_REQUEST, 1, &body)).await;
    let reply = raw.read_frame().await;
    assert_eq!((reply.kind, reply.id), (KIND_RESPONSE, 1), "{}", hex(&reply.body));
    let todo: Todo = serde_json::from_slice(&reply.body).expect("a JSON Todo");
    assert_eq!(todo.id, name);

    // One KiB and a byte over, on the same connection: refused from the header alone.
    raw.send(&header(65 * 1024 + 1, KIND_REQUEST, 2)).await;
    let bye = parse_single_goodbye(&raw.read_until_closed().await);
    bye.expect(FRAME_TOO_LARGE, &["too large", "66561", "65536"]);
    fixture.logged(&bye.reason).await;

    fixture.survives(Bad::OversizedHeader(SMALL_MAX + 1)).await;
    fixture.survives(Bad::OversizedHeader(0xFFFF_FFF0)).await;
    fixture.finish().await;
}

/// `docs/PROTOCOL.md` §13: after a GOODBYE that ends the connection, the sender closes, and
/// first shuts down its write side and briefly drains input "so a reset does not destroy the
/// GOODBYE". A peer that is still sending when it is refused must read the GOODBYE and then a
/// clean end of stream, not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_still_sending_when_refused_sees_the_goodbye_then_a_clean_close_unix() {
    let fixture = Fixture::start().await;
    let stream = bounded("connect", UnixStream::connect(&fixture.path)).await.expect("connect");
    let bye = still_sending_when_refused(stream).await;
    fixture.logged(&bye.reason).await;
    fixture.finish().await;
}

/// The same over TCP, where the spec's SHOULD is about: a reset may destroy the GOODBYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_still_sending_when_refused_sees_the_goodbye_then_a_clean_close_tcp() {
    let (tx, _events) = mpsc::unbounded_channel();
    let tcp = Endpoint::parse("tcp:127.0.0.1:0").expect("endpoint");
    let running = test_server(tx).max_frame(SMALL_MAX).bind(&tcp).await.expect("bind");
    let Endpoint::Tcp(addr) = running.endpoint().clone() else { panic!("bound {}", running.endpoint()) };
    let client = bounded("good client connect", common::connect(running.endpoint())).await.expect("connect");
    let traffic = Traffic::start(client);
    traffic.progressed().await;
    let stream = bounded("connect", tokio::net::TcpStream::connect(addr.as_str())).await.expect("connect");
    still_sending_when_refused(stream).await;
    traffic.progressed().await;
    traffic.finish().await;
    within("server shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_frame_then_eof_closes_cleanly() {
    let fixture = Fixture::start().await;
    for sent in [0, 10, 99] {
        fixture.survives(Bad::TruncatedFrame(sent)).await;
    }
    // Truncated during the handshake: a preface and half a HELLO, then EOF.
    let hello = preface_and_hello(1);
    let bye = refused(&fixture.path, &hello[..hello.len() - 2], true).await;
    bye.expect(PROTOCOL_ERROR, &["truncated"]);
    fixture.logged(&bye.reason).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_garbage_instead_of_a_preface_is_refused() {
    let fixture = Fixture::start().await;
    for seed in 0..16 {
        fixture.survives(Bad::Garbage(seed)).await;
    }
    // The right preface followed by garbage: whatever the garbage says, a GOODBYE and a close.
    for seed in 100..116 {
        let mut bytes = PREFACE.to_vec();
        let mut tail = garbage(seed);
        tail[4] = 0x77; // never a HELLO, so the outcome cannot be a welcome
        if seed % 2 == 0 {
            // A body length under the limit, so the kind is looked at too.
            tail[..2].fill(0);
        }
        bytes.extend(tail);
        let bye = refused(&fixture.path, &bytes, true).await;
        assert!([PROTOCOL_ERROR, FRAME_TOO_LARGE].contains(&bye.code), "seed {seed}: {bye:?}");
        fixture.logged(&bye.reason).await;
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_magic_is_refused_with_bad_magic() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::WrongMagic).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_version_is_refused_with_unsupported_version() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::WrongVersion).await;
    for version in [0, 0xFF] {
        let bye = refused(&fixture.path, &preface_and_hello(version), false).await;
        bye.expect(UNSUPPORTED_VERSION, &[&format!("version {version}")]);
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_misplaced_frame_kinds_are_protocol_errors() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::UnknownKind).await;
    // Kinds a server must never receive once the connection is open.
    let hello_again = preface_and_hello(1)[PREFACE.len()..].to_vec();
    for bytes in [
        hello_again,
        frame(KIND_WELCOME, 0, &[0, 1, 0, 0, 0, 0, 0, 15, 2]),
        frame(KIND_RESPONSE, 1, b"\"x\""),
        frame(KIND_ERROR, 1, &[0, 0, 0, 7, 0, 0, 0, 0]),
        frame(0x00, 0, b""),
        frame(0xFF, 9, b"whatever"),
    ] {
        let bye = dropped_after_hello(&fixture.path, &bytes, false).await;
        bye.expect(PROTOCOL_ERROR, &[]);
        fixture.logged(&bye.reason).await;
    }
    // An unknown kind where the HELLO should be.
    let bytes = [&PREFACE[..], &frame(0x77, 0, b"")].concat();
    let bye = refused(&fixture.path, &bytes, false).await;
    bye.expect(PROTOCOL_ERROR, &["0x77"]);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_request_gets_an_http_400() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::HttpGet).await;
    for request in [
        &b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"[..],
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        http_refused(&fixture.path, request).await;
    }
    fixture.finish().await;
}

/// `docs/PROTOCOL.md` §13 lists `TRAC` among the HTTP methods that get the HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_trace_request_gets_an_http_400() {
    let fixture = Fixture::start().await;
    http_refused(&fixture.path, b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_json_line_gets_a_json_error_and_the_connection_goes_on() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::MalformedJson).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_completes_its_hello_is_dropped_at_the_hello_timeout() {
    let fixture = Fixture::start().await;
    // Side by side, so the test takes one timeout, not two.
    let (silent, loris) = tokio::join!(Bad::Silent.check(&fixture.path), Bad::SlowLoris.check(&fixture.path));
    fixture.logged(&silent).await;
    fixture.logged(&loris).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_with_call_id_zero_is_a_protocol_error() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::CallIdZero).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_request_notify_and_goodbye_bodies_are_protocol_errors() {
    let fixture = Fixture::start().await;
    fixture.survives(Bad::TruncatedMethod).await;
    let cases: [(&str, Vec<u8>, &[&str]); 6] = [
        ("empty REQUEST body", frame(KIND_REQUEST, 1, b""), &["truncated"]),
        ("REQUEST without its timeout", frame(KIND_REQUEST, 1, b"\x08Task.Get\x00\x00\x00"), &["truncated"]),
        ("REQUEST method not UTF-8", frame(KIND_REQUEST, 1, &request_body(b"Task.\xFF\xFE", 0, b"1")), &["UTF-8"]),
        ("NOTIFY method truncated", frame(KIND_NOTIFY, 0, b"\x09Log.Wr"), &["truncated"]),
        ("empty NOTIFY body", frame(KIND_NOTIFY, 0, b""), &["truncated"]),
        ("GOODBYE without its code", frame(KIND_GOODBYE, 0, &[0, 0]), &["truncated"]),
    ];
    for (what, bytes, words) in cases {
        let bye = dropped_after_hello(&fixture.path, &bytes, false).await;
        assert_eq!(bye.code, PROTOCOL_ERROR, "{what}: {bye:?}");
        bye.expect(PROTOCOL_ERROR, words);
        fixture.logged(&bye.reason).await;
    }
    fixture.finish().await;
}

/// `docs/PROTOCOL.md` §9.1 and §13: a REQUEST with the id of a call still in flight is a
/// protocol error that closes the connection. Answering it with an ERROR for that id instead
/// would complete the *first* call with the second one's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_reusing_an_in_flight_call_id_is_a_protocol_error() {
    let fixture = Fixture::start().await;
    let (mut raw, _) = Raw::open(&fixture.path).await;
    let hang = frame(KIND_REQUEST, 7, &request_body(b"Task.Hang", 0, b"\"first\""));
    raw.send(&hang).await;
    raw.send(&frame(KIND_REQUEST, 7, &request_body(b"Task.Get", 0, b"\"second\""))).await;
    let answer = raw.read_frame().await;
    assert_eq!(
        answer.kind,
        KIND_GOODBYE,
        "expected GOODBYE PROTOCOL_ERROR, got {answer:?} ({})",
        String::from_utf8_lossy(&answer.body)
    );
    let bye = Goodbye::of(&answer);
    bye.expect(PROTOCOL_ERROR, &["in flight"]);
    assert_eq!(raw.read_until_closed().await, b"", "nothing after the GOODBYE");
    fixture.logged(&bye.reason).await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extreme_but_valid_request_fields_are_served() {
    let fixture = Fixture::start().await;
    let (mut raw, _) = Raw::open(&fixture.path).await;
    // The largest call id and a deadline ~585 000 years away.
    raw.send(&frame(KIND_REQUEST, u32::MAX, &request_body(b"Task.Get", u64::MAX, b"\"far\""))).await;
    let reply = raw.read_frame().await;
    assert_eq!((reply.kind, reply.id, &reply.body[..]), (KIND_RESPONSE, u32::MAX, &br#"{"id":"far"}"#[..]));
    // A 255-byte method name nobody serves: an ERROR for that call, the connection stays.
    let long = [b'A'; 255];
    raw.send(&frame(KIND_REQUEST, 2, &request_body(&long, 0, b"null"))).await;
    let reply = raw.read_frame().await;
    assert_eq!((reply.kind, reply.id), (KIND_ERROR, 2), "{reply:?}");
    raw.send(&frame(KIND_REQUEST, 3, &request_body(b"Task.Get", 1, b"\"tiny deadline\""))).await;
    let reply = raw.read_frame().await;
    assert!([KIND_RESPONSE, KIND_ERROR].contains(&reply.kind) && reply.id == 3, "{reply:?}");
    // A clean goodbye from our side ends the connection without complaint.
    raw.send(&frame(KIND_GOODBYE, 0, &0u32.to_be_bytes())).await;
    raw.shutdown_write().await;
    assert_eq!(raw.read_until_closed().await, b"", "nothing more after a clean goodbye");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bad_connections_interleaved_with_good_calls() {
    let fixture = Fixture::start().await;
    let catalogue = [
        Bad::WrongMagic,
        Bad::WrongVersion,
        Bad::HttpGet,
        Bad::MalformedJson,
        Bad::OversizedHeader(SMALL_MAX + 1),
        Bad::OversizedHeader(0xFFFF_FFF0),
        Bad::TruncatedFrame(10),
        Bad::UnknownKind,
        Bad::CallIdZero,
        Bad::TruncatedMethod,
        Bad::Silent,
        Bad::SlowLoris,
    ];
    let second = bounded("second client connect", common::connect(fixture.running.endpoint())).await.expect("connect");
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for n in 0..50u64 {
        let case = if n % 13 == 12 { Bad::Garbage(n) } else { catalogue[(n % 13) as usize] };
        let path = fixture.path.clone();
        bad.push(tokio::spawn(async move { (case, case.check(&path).await) }));
        let client = second.clone();
        good.push(tokio::spawn(async move {
            let id = format!("interleaved-{n}");
            let todo: Todo = bounded("interleaved call", client.call("Task.Get", &id)).await.expect("good call");
            assert_eq!(todo.id, id);
        }));
    }
    let said = within("fifty bad connections", async {
        let mut said = Vec::new();
        for task in bad {
            said.push(task.await.expect("bad peer task"));
        }
        said
    })
    .await;
    within("fifty good calls", async {
        for task in good {
            task.await.expect("good call task");
        }
    })
    .await;
    for (case, needle) in &said {
        assert!(fixture.log_lines().iter().any(|line| line.contains(needle.as_str())), "{case:?}: no log {needle:?}");
    }
    assert!(fixture.log_lines().len() >= 50, "one WARN line per bad peer: {:#?}", fixture.log_lines());
    fixture.finish().await;
}

// ---------------------------------------------------------------------------------------------
// A frame or line started and not finished; idle connections; the cap on connections.

/// Sends `first` at once and then the rest of `bytes` one byte per `every` (none if `every` is
/// None), until the server answers. Returns everything the server sent until it closed, and how
/// long after `first` went out the answer began.
async fn stall(raw: Raw, bytes: &[u8], first: usize, every: Option<Duration>) -> (Vec<u8>, Duration) {
    let (mut read, mut write) = raw.stream.into_split();
    let rest = bytes[first..].to_vec();
    let started = Instant::now();
    bounded("write the first bytes", write.write_all(&bytes[..first])).await.expect("write");
    let (answered, mut stop) = oneshot::channel::<()>();
    let dribble = tokio::spawn(async move {
        if let Some(every) = every {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            for byte in rest {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tick.tick() => {}
                }
                if write.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
        }
        // Dropping the write half would be an EOF, a different case: hold it open.
        let _ = stop.await;
    });
    let mut first_byte = [0u8; 1];
    let n = bounded("the answer to a stalled unit", read.read(&mut first_byte)).await.expect("read the answer");
    let elapsed = started.elapsed();
    let _ = answered.send(());
    let all = read_until_closed(&mut read, first_byte[..n].to_vec()).await;
    bounded("the dribbling writer", dribble).await.expect("writer task");
    (all, elapsed)
}

fn assert_dropped_at_the_frame_timeout(what: &str, elapsed: Duration) {
    println!("{what}: dropped {elapsed:?} after its first byte (frame timeout {FRAME_TIMEOUT:?})");
    // The server's timer starts when it reads the first byte, after we sent it.
    assert!(elapsed >= FRAME_TIMEOUT - Duration::from_millis(20), "{what}: dropped after only {elapsed:?}");
    assert!(elapsed < FRAME_TIMEOUT + LATE, "{what}: dropped only after {elapsed:?}");
}

/// `Task.Get(id)` as a REQUEST: 33 bytes in all for a 4-letter id.
fn get_request(id: u32, arg: &str) -> Vec<u8> {
    frame(KIND_REQUEST, id, &request_body(b"Task.Get", 0, format!("\"{arg}\"").as_bytes()))
}

/// Reads one `\n`-terminated line (without it).
async fn read_line(raw: &mut Raw) -> String {
    let mut line = Vec::new();
    loop {
        let byte = raw.read_exact(1).await[0];
        if byte == b'\n' {
            return String::from_utf8(line).expect("JSON-RPC lines are text");
        }
        line.push(byte);
    }
}

/// Connects and completes a handshake, or returns the refusal.
async fn try_open(path: &Path) -> Result<Raw, Goodbye> {
    let mut raw = Raw::connect(path).await;
    raw.send(&preface_and_hello(1)).await;
    assert_eq!(raw.read_exact(PREFACE.len()).await, PREFACE, "server preface");
    let answer = raw.read_frame().await;
    match answer.kind {
        KIND_WELCOME => Ok(raw),
        _ => Err(Goodbye::of(&answer)),
    }
}

fn frame_timeout_server(server: Server) -> Server {
    server.max_frame(SMALL_MAX).hello_timeout(HELLO_TIMEOUT).frame_timeout(FRAME_TIMEOUT)
}

/// A frame's length arrives, then a byte every 100 ms: each byte comes well within the frame
/// timeout of the one before, but the frame as a whole does not, so the peer is dropped at the
/// timeout (a timer restarted by every byte would never fire). And a frame that stops halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frame_dribbled_after_the_hello_is_dropped_at_the_frame_timeout() {
    let fixture = Fixture::with(frame_timeout_server).await;
    let request = get_request(1, "slow");
    assert_eq!(request.len(), 33);
    let (dribbler, _) = Raw::open(&fixture.path).await;
    let (halfway, _) = Raw::open(&fixture.path).await;
    let ((dribbled, dribbled_after), (stopped, stopped_after)) = tokio::join!(
        stall(dribbler, &request, 4, Some(Duration::from_millis(100))),
        stall(halfway, &request, 15, None),
    );
    let bye = parse_single_goodbye(&dribbled);
    bye.expect(PROTOCOL_ERROR, &["frame not completed within 400ms (got ", " of 33 bytes)"]);
    assert_dropped_at_the_frame_timeout("dribbled", dribbled_after);
    fixture.logged(&bye.reason).await;
    let bye = parse_single_goodbye(&stopped);
    bye.expect(PROTOCOL_ERROR, &["frame not completed within 400ms (got 15 of 33 bytes)"]);
    assert_dropped_at_the_frame_timeout("stopped halfway", stopped_after);
    fixture.logged(&bye.reason).await;
    fixture.finish().await;
}

/// The bound is on a frame once started, not on the connection: idle for three timeouts between
/// frames, and frames split in two with a pause inside each, for longer than the timeout in all,
/// are served; so is a JSON-RPC connection idle between lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_outlives_the_frame_timeout_and_still_works() {
    let fixture = Fixture::with(frame_timeout_server).await;
    let binary = async {
        let (mut raw, _) = Raw::open(&fixture.path).await;
        raw.send(&get_request(1, "before")).await;
        let reply = raw.read_frame().await;
        assert_eq!((reply.kind, reply.id, &reply.body[..]), (KIND_RESPONSE, 1, &br#"{"id":"before"}"#[..]));
        tokio::time::sleep(FRAME_TIMEOUT * 3).await;
        let started = Instant::now();
        for id in 2..10 {
            let request = get_request(id, "half");
            raw.send(&request[..12]).await;
            tokio::time::sleep(FRAME_TIMEOUT / 5).await;
            raw.send(&request[12..]).await;
            let reply = raw.read_frame().await;
            assert_eq!((reply.kind, reply.id), (KIND_RESPONSE, id), "{}", String::from_utf8_lossy(&reply.body));
        }
        assert!(started.elapsed() > FRAME_TIMEOUT, "the split frames took less than one timeout in all");
    };
    let json = async {
        let mut raw = Raw::connect(&fixture.path).await;
        raw.send(b"{\"method\":\"Task.Get\",\"params\":[\"a\"],\"id\":1}\n").await;
        assert_eq!(read_line(&mut raw).await, r#"{"id":1,"result":{"id":"a"},"error":null}"#);
        tokio::time::sleep(FRAME_TIMEOUT * 3).await;
        raw.send(b"{\"method\":\"Task.Get\",\"params\":[\"b\"],\"id\":2}\n").await;
        assert_eq!(read_line(&mut raw).await, r#"{"id":2,"result":{"id":"b"},"error":null}"#);
    };
    tokio::join!(binary, json);
    fixture.finish().await;
}

/// A JSON-RPC line begun and then dribbled is dropped at the frame timeout like a frame, with a
/// last error line saying why (JSON-RPC has no goodbye).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_json_line_dribbled_is_dropped_at_the_frame_timeout() {
    let fixture = Fixture::with(frame_timeout_server).await;
    let mut raw = Raw::connect(&fixture.path).await;
    raw.send(b"{\"method\":\"Task.Get\",\"params\":[\"a\"],\"id\":1}\n").await;
    assert_eq!(read_line(&mut raw).await, r#"{"id":1,"result":{"id":"a"},"error":null}"#);
    let line = b"{\"method\":\"Task.Get\",\"params\":[\"slow\"],\"id\":2}\n";
    let (answer, elapsed) = stall(raw, line, 3, Some(Duration::from_millis(100))).await;
    assert_dropped_at_the_frame_timeout("dribbled line", elapsed);
    let answer = String::from_utf8(answer).expect("JSON-RPC answers are text");
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, then the close: {answer:?}");
    let error: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(
        (&error["jsonrpc"], &error["id"], &error["error"]["code"]),
        (&"2.0".into(), &serde_json::Value::Null, &9.into())
    );
    let message = error["error"]["message"].as_str().expect("a message");
    assert!(message.starts_with("line not completed within 400ms (got "), "{message}");
    fixture.logged(message).await;
    fixture.finish().await;
}

/// Over `max_connections`, a connection gets `GOODBYE OVERLOADED` naming the limit and is
/// closed, while those already open (and the good client) go on; when some close, new ones get
/// in, up to the limit again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_max_connections_a_connection_is_refused_overloaded_and_room_frees_up_when_some_close() {
    const MAX: usize = 4;
    let fixture =
        Fixture::with(|server| server.max_frame(SMALL_MAX).hello_timeout(HELLO_TIMEOUT).max_connections(MAX)).await;
    // The good client holds one place.
    let mut held = Vec::new();
    for _ in 1..MAX {
        held.push(Raw::open(&fixture.path).await.0);
    }
    let bye = refused(&fixture.path, &preface_and_hello(1), false).await;
    bye.expect(OVERLOADED, &["4 connections", "max_connections"]);
    fixture.logged(&bye.reason).await;
    match bounded("connect over the limit", common::connect(fixture.running.endpoint())).await {
        Err(ConnectError::Refused { code: ErrorCode::Overloaded, reason, .. }) => {
            assert!(reason.contains("max_connections"), "{reason}");
        }
        Err(other) => panic!("expected an OVERLOADED refusal, got: {other}"),
        Ok(_) => panic!("a connection over max_connections was let in"),
    }
    fixture.traffic.progressed().await;
    for (n, raw) in held.iter_mut().enumerate() {
        let id = u32::try_from(n + 1).expect("small");
        raw.send(&get_request(id, "held")).await;
        let reply = raw.read_frame().await;
        assert_eq!((reply.kind, reply.id), (KIND_RESPONSE, id), "a connection under the limit stopped working");
    }

    // Two leave; two newcomers get in once the server has seen them go, and a third does not.
    held.truncate(1);
    let mut newcomers = Vec::new();
    within("two newcomers to get in", async {
        while newcomers.len() < 2 {
            match try_open(&fixture.path).await {
                Ok(raw) => newcomers.push(raw),
                Err(bye) => {
                    bye.expect(OVERLOADED, &[]);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .await;
    let third = try_open(&fixture.path).await.err().expect("a fifth connection was let in");
    third.expect(OVERLOADED, &["max_connections"]);

    // Everyone but the good client leaves: a fresh client gets in (once the server has seen them
    // go) and calls, and the good client never failed.
    drop(held);
    drop(newcomers);
    let fresh = within("a fresh client to get in", async {
        loop {
            match common::connect(fixture.running.endpoint()).await {
                Ok(client) => break client,
                Err(ConnectError::Refused { code: ErrorCode::Overloaded, .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(other) => panic!("fresh client: {other}"),
            }
        }
    })
    .await;
    let todo: Todo = bounded("fresh client call", fresh.call("Task.Get", "fresh")).await.expect("fresh call");
    assert_eq!(todo.id, "fresh");
    fresh.close().await;
    let Fixture { running, traffic, .. } = fixture;
    traffic.progressed().await;
    assert!(traffic.finish().await > 0);
    within("server shutdown", running.shutdown(Duration::from_secs(1))).await;
}
