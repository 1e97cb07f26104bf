//! `Task.Sleep`, task-rpc's slow method: a deadline shorter than the sleep ends the call with
//! DEADLINE_EXCEEDED from the server, soon after the deadline and long before the sleep would
//! have ended; a long enough deadline lets it finish. The first test speaks the binary protocol
//! byte by byte, as docs/PROTOCOL.md §14.4 shows it (run with `--nocapture` to see the bytes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_rpc::{CallError, Client, Endpoint};

const BOUND: Duration = Duration::from_secs(20);

/// task-rpc serving on a socket in a private directory; stopped (SIGTERM) and checked on drop.
struct TaskRpc {
    child: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TaskRpc {
    async fn start() -> TaskRpc {
        let dir = testkit::socket_dir("sleep");
        let socket = dir.path().join("t.sock");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_task-rpc"))
            .env("WARREN_ENDPOINT", format!("unix:{}", socket.display()))
            .env("RUST_LOG", "error")
            .spawn()
            .expect("start task-rpc");
        let rpc = TaskRpc { child, socket, _dir: dir };
        testkit::within("task-rpc to listen", async {
            while tokio::net::UnixStream::connect(&rpc.socket).await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        rpc
    }
}

impl Drop for TaskRpc {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < BOUND {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if !std::thread::panicking() {
                panic!("task-rpc did not stop on SIGTERM");
            }
        }
        if !std::thread::panicking() {
            assert!(!self.socket.exists(), "task-rpc left its socket behind");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads one frame: its 10-byte header and its body.
async fn frame(stream: &mut tokio::net::UnixStream) -> Vec<u8> {
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).await.expect("a frame header");
    let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    assert!(len < 4096, "a frame of {len} bytes");
    let mut whole = header.to_vec();
    whole.resize(10 + len, 0);
    stream.read_exact(&mut whole[10..]).await.expect("a frame body");
    whole
}

#[tokio::test]
async fn a_deadline_shorter_than_the_sleep_ends_the_call_on_the_server() {
    let rpc = TaskRpc::start().await;
    let mut stream = tokio::net::UnixStream::connect(&rpc.socket).await.expect("connect");
    // PREFACE, then HELLO offering JSON only (as in PROTOCOL.md §14.1).
    let hello =
        [&[0xf7, 0x57, 0x52, 0x50, 0x01][..], &[0, 0, 0, 10, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x0f, 1, 2]];
    // REQUEST id=1: Task.Sleep(5000), timeout_us = 100000 (100 ms).
    let mut request = vec![0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 10];
    request.extend_from_slice(b"Task.Sleep");
    request.extend_from_slice(&100_000u64.to_be_bytes());
    request.extend_from_slice(b"5000");
    let body_len = u32::try_from(request.len() - 10).expect("small");
    request[..4].copy_from_slice(&body_len.to_be_bytes());

    testkit::within("the exchange", async {
        for part in hello {
            stream.write_all(part).await.expect("write");
            eprintln!("C→S {}", hex(part));
        }
        let mut preface = [0u8; 5];
        stream.read_exact(&mut preface).await.expect("the server's preface");
        eprintln!("S→C {}", hex(&preface));
        let welcome = frame(&mut stream).await;
        eprintln!("S→C {}", hex(&welcome));
        assert_eq!(welcome[4], 0x02, "WELCOME");
        assert_eq!(welcome.last(), Some(&2), "JSON chosen");

        let sent = Instant::now();
        stream.write_all(&request).await.expect("write");
        eprintln!("C→S {}", hex(&request));
        let answer = frame(&mut stream).await;
        let took = sent.elapsed();
        eprintln!("S→C {}   ({} ms after the request)", hex(&answer), took.as_millis());
        assert_eq!((answer[4], &answer[6..10]), (0x12, &[0, 0, 0, 1][..]), "ERROR for call 1: {}", hex(&answer));
        assert_eq!(&answer[10..14], [0, 0, 0, 4], "code 4 DEADLINE_EXCEEDED: {}", hex(&answer));
        assert!(took >= Duration::from_millis(100), "answered before its deadline: {took:?}");
        assert!(took < Duration::from_millis(2500), "the sleep was not cut short: {took:?}");
    })
    .await;
}

async fn client(socket: &Path) -> Client {
    testkit::within("connect", Client::connect(Endpoint::unix(socket))).await.expect("connect")
}

#[tokio::test]
async fn a_client_deadline_shorter_than_the_sleep_fails_fast_and_a_long_one_succeeds() {
    let rpc = TaskRpc::start().await;
    let client = client(&rpc.socket).await;

    let started = Instant::now();
    let short = client.call_timeout::<_, i64>("Task.Sleep", &5000, Duration::from_millis(100));
    let err = testkit::within("the short call", short).await.expect_err("the deadline is shorter than the sleep");
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());

    let started = Instant::now();
    let long = client.call_timeout::<_, i64>("Task.Sleep", &150, Duration::from_secs(10));
    let slept = testkit::within("the long call", long).await.expect("a deadline longer than the sleep");
    assert_eq!(slept, 150);
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());

    // The connection is still good after the abandoned call, and the bound holds.
    let err = testkit::within("too long", client.call::<_, i64>("Task.Sleep", &60_001)).await.expect_err("refused");
    assert!(err.to_string().contains("0 to 60000 ms"), "{err}");
}
