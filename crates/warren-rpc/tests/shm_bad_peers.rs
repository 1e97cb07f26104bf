//! Shared memory against a bad peer (docs/SHM.md §4, §6): a client that scribbles over its
//! segment, or dies halfway through a frame, ends its own connection and nothing else; the
//! server never panics, and gives back the segment's mapping and descriptors.
//!
//! The bad peers are Python processes (it maps a memfd and receives descriptors with
//! `socket.recv_fds`), so they write the memory from outside this process as a real child would.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Todo, socket_dir, socket_in, test_server, within};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use warren_rpc::{Client, Endpoint, Running, Server, Transport};

/// A client in Python that opens a shared-memory connection by hand (PROTOCOL.md §19), then:
/// `scribble SECONDS SEED` writes random bytes at random places of its segment, sets its ring
/// index to random values, writes well-formed PINGs now and then, rings random bells, and
/// opens a new connection each time the server ends one; `half-frame` publishes half of a
/// frame and waits to be killed.
const BAD_PEER: &str = r#"
import mmap, os, random, socket, struct, sys, time
path, mode = sys.argv[1], sys.argv[2]

def frame(kind, ident, body):
    return struct.pack(">IBBI", len(body), kind, 0, ident) + body

def open_shm():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    hello = struct.pack(">IIBB", 1 << 20, 0x1F, 1, 2)
    s.sendall(b"\xf7WRP\x01" + frame(0x01, 0, hello))
    data, fds = b"", []
    while len(data) < 24:
        more, passed, _, _ = socket.recv_fds(s, 4096, 5, socket.MSG_CMSG_CLOEXEC)
        if not more:
            sys.exit("closed during the hello")
        data += more
        fds += passed
    assert len(fds) == 5 and struct.unpack(">I", data[19:23])[0] & 0x10, "granted"
    size = os.fstat(fds[0]).st_size
    segment = mmap.mmap(fds[0], size)
    s.sendall(frame(0x03, 0, b"\x01"))
    return s, segment, size, fds[1:]

def ended(s):
    s.setblocking(False)
    try:
        return s.recv(4096, socket.MSG_PEEK) is not None
    except BlockingIOError:
        return False
    finally:
        s.setblocking(True)

if mode == "half-frame":
    s, segment, size, bells = open_shm()
    body = b"x" * 100
    whole = frame(0x30, 1, body)
    segment[4096:4096 + 60] = whole[:60]
    segment[128:136] = struct.pack("=Q", 60)
    os.write(bells[2], struct.pack("=Q", 1))
    print("half", flush=True)
    if len(sys.argv) > 3 and sys.argv[3] == "wait-for-the-end":
        # Alive, but never finishing the frame: the server's frame timeout ends the connection.
        s.settimeout(10)
        print("ended" if s.recv(1) == b"" else "wrote on the socket", flush=True)
    else:
        time.sleep(60)
    sys.exit(0)

seconds, seed = float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
deadline = time.monotonic() + seconds
connections, ends = 0, 0
s, segment, size, bells = open_shm()
connections += 1
tail = 0
while time.monotonic() < deadline:
    choice = rng.random()
    if choice < 0.4:
        at = rng.randrange(size)
        n = min(rng.randrange(1, 64), size - at)
        segment[at:at + n] = bytes(rng.getrandbits(8) for _ in range(n))
    elif choice < 0.6:
        # The client's own index: small steps the server may take, or wild ones it must refuse.
        tail = tail + rng.randrange(0, 64) if rng.random() < 0.8 else rng.getrandbits(64)
        segment[128:136] = struct.pack("=Q", tail & 0xFFFFFFFFFFFFFFFF)
    elif choice < 0.8:
        ping = frame(0x30, rng.randrange(1, 1000), b"p")
        at = 4096 + (tail % 4096)
        if at + len(ping) <= 8192:
            segment[at:at + len(ping)] = ping
            tail += len(ping)
            segment[128:136] = struct.pack("=Q", tail & 0xFFFFFFFFFFFFFFFF)
    else:
        os.write(rng.choice(bells), struct.pack("=Q", 1))
    if rng.random() < 0.05 and ended(s):
        ends += 1
        s.close(); segment.close()
        for bell in bells:
            os.close(bell)
        s, segment, size, bells = open_shm()
        connections += 1
        tail = 0
print("connections %d ended %d" % (connections, ends), flush=True)
"#;

/// The lines of `/proc/self/maps` that are shared-memory segments, and this process's open
/// descriptors: what a connection's end must give back.
fn held_here() -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let segments = maps.lines().filter(|line| line.contains("warren-rpc-shm")).count();
    let fds = std::fs::read_dir("/proc/self/fd").expect("fds").count();
    (segments, fds)
}

async fn serve() -> (Running, tempfile::TempDir) {
    serve_with(|server| server).await
}

async fn serve_with(options: impl FnOnce(Server) -> Server) -> (Running, tempfile::TempDir) {
    // The runtime's first child process opens descriptors of its own for good (the SIGCHLD
    // pipe, its registration): before any baseline is taken.
    let warm_up = tokio::process::Command::new("true").status();
    within("true", warm_up).await.expect("true");
    let (tx, _events) = mpsc::unbounded_channel();
    let dir = socket_dir();
    // Small rings: the scribbler's index steps reach their bounds.
    let server = options(test_server(tx).transport(Transport::Auto).shm_ring(4096));
    let running = server.bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
    (running, dir)
}

fn bad_peer(path: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("python3")
        .args(["-c", BAD_PEER])
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (the bad peer)")
}

async fn first_line(child: &mut tokio::process::Child) -> String {
    lines(child, 1).await.remove(0)
}

async fn lines(child: &mut tokio::process::Child, count: usize) -> Vec<String> {
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut lines = Vec::new();
    for _ in 0..count {
        let line = within("the bad peer's report", stdout.next_line()).await;
        lines.push(line.expect("read").expect("a line from the bad peer"));
    }
    lines
}

/// Waits until this process holds what it held at `baseline` again.
async fn given_back(baseline: (usize, usize)) {
    let back = testkit::poll_until(Duration::from_secs(5), || held_here() == baseline).await;
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    assert!(back, "segments and descriptors: {:?} now, {baseline:?} before; open: {open:?}", held_here());
}

/// Runs `test` alone: each test counts this process's mappings and descriptors, which another
/// test's runtime, sockets and children would change. The runtime is made once the lock is held.
fn alone(test: impl std::future::Future<Output = ()>) {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _alone = ALONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    runtime.expect("runtime").block_on(test);
}

#[test]
fn a_scribbling_client_hurts_only_its_own_connection() {
    alone(a_scribbling_client());
}

#[test]
fn a_client_killed_halfway_through_a_frame_ends_its_connection_and_its_segment() {
    alone(a_client_killed_halfway());
}

#[test]
fn a_client_that_stops_halfway_through_a_frame_is_timed_out_and_its_segment_given_back() {
    alone(a_client_stopped_halfway());
}

async fn a_scribbling_client() {
    let (running, dir) = serve().await;
    let path = socket_in(&dir, "t.sock");
    let good = Client::builder().transport(Transport::Shm).connect(&path);
    let good = within("connect", good).await.expect("connect");
    assert_eq!(good.transport(), Transport::Shm);
    let _: Todo = within("Task.Get", good.call("Task.Get", "warm")).await.expect("Task.Get");
    let baseline = held_here();

    let mut scribbler = bad_peer(&path, &["scribble", "3", "19"]);
    let calls = async {
        let mut answered = 0u32;
        while answered < 20_000 {
            let id = format!("call-{answered}");
            let todo: Todo = good.call("Task.Get", &id).await.expect("the good client's call");
            assert_eq!(todo.id, id);
            answered += 1;
        }
        answered
    };
    let answered = within("20,000 calls beside the scribbler", calls).await;
    let report = first_line(&mut scribbler).await;
    within("the scribbler", scribbler.wait()).await.expect("wait");
    eprintln!("scribbler: {report}");
    let ended: Vec<u32> = report.split(' ').filter_map(|word| word.parse().ok()).collect();
    assert!(matches!(ended[..], [opened, ended] if opened >= 2 && ended >= 1), "{report}");
    assert_eq!(answered, 20_000);
    given_back(baseline).await;
    let _: Todo = within("Task.Get", good.call("Task.Get", "after")).await.expect("Task.Get");
    within("shutdown", running.shutdown(Duration::from_secs(2))).await;
}

async fn a_client_killed_halfway() {
    let (running, dir) = serve().await;
    let path = socket_in(&dir, "t.sock");
    let baseline = held_here();
    let mut peer = bad_peer(&path, &["half-frame"]);
    assert_eq!(first_line(&mut peer).await, "half");
    assert_eq!(held_here().0, baseline.0 + 1, "the server maps the half-written segment");
    peer.start_kill().expect("kill");
    within("the killed peer", peer.wait()).await.expect("wait");
    given_back(baseline).await;
    let good = Client::builder().transport(Transport::Shm).connect(&path);
    let good = within("connect", good).await.expect("connect");
    let _: Todo = within("Task.Get", good.call("Task.Get", "after")).await.expect("Task.Get");
    within("shutdown", running.shutdown(Duration::from_secs(2))).await;
}

async fn a_client_stopped_halfway() {
    let (running, dir) = serve_with(|server| server.frame_timeout(Duration::from_millis(300))).await;
    let baseline = held_here();
    let mut peer = bad_peer(&socket_in(&dir, "t.sock"), &["half-frame", "wait-for-the-end"]);
    let report = lines(&mut peer, 2).await;
    assert_eq!(report, ["half", "ended"], "the server ended the stalled connection");
    within("the stalled peer", peer.wait()).await.expect("wait");
    given_back(baseline).await;
    within("shutdown", running.shutdown(Duration::from_secs(2))).await;
}
