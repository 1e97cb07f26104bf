//! Moving a connection to shared memory during the hello (docs/SHM.md, PROTOCOL.md §19): when
//! both sides allow it the frames go through the rings with every semantic kept; anything
//! else (a side that does not allow it, TCP, a budget taken, a client that breaks the
//! exchange, a server that passes bad descriptors) stays on the socket or is told why.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Todo, expect_event, socket_dir, socket_in, test_server, within};
use tokio::sync::mpsc;
use warren_rpc::__wire::{frame, hello};
use warren_rpc::{Bytes, CallError, Client, Codec, Endpoint, Running, Server, Transport};

async fn serve(server: Server) -> (Running, tempfile::TempDir) {
    let dir = socket_dir();
    let running = server.bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
    (running, dir)
}

async fn connect(dir: &tempfile::TempDir, transport: Transport) -> Client {
    let connecting = Client::builder().transport(transport).connect(socket_in(dir, "t.sock"));
    within("connect", connecting).await.expect("connect")
}

async fn stop(running: Running) {
    within("shutdown", running.shutdown(Duration::from_secs(2))).await;
}

#[tokio::test]
async fn both_sides_allowing_it_move_to_shared_memory_and_every_call_works_there() {
    let (tx, mut events) = mpsc::unbounded_channel();
    // Small rings: a 1 MiB echo streams through them many times over.
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto).shm_ring(16 << 10)).await;
    let client = connect(&dir, Transport::Shm).await;
    assert_eq!(client.transport(), Transport::Shm);
    let todo: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    assert_eq!(todo.id, "x");
    let big = Bytes::from((0..1u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let back: Bytes = within("Task.Echo", client.call("Task.Echo", &big)).await.expect("Task.Echo");
    assert!(back == big, "1 MiB came back whole");
    // Many calls in flight at once, each with its own answer.
    let calls = (0..200u64).map(|n| {
        let client = client.clone();
        async move {
            let delayed = common::Delayed { value: n, delay_us: (n % 7) * 100 };
            (n, client.call::<_, u64>("Task.Delay", &delayed).await)
        }
    });
    for (n, answer) in within("200 calls", futures_util::future::join_all(calls)).await {
        assert_eq!(answer.expect("Task.Delay"), n);
    }
    // Cancellation reaches the server through the ring.
    let hanging = {
        let client = client.clone();
        tokio::spawn(async move { client.call::<_, ()>("Task.Hang", "shm").await })
    };
    expect_event(&mut events, "started:shm").await;
    hanging.abort();
    expect_event(&mut events, "cancelled:shm").await;
    // Deadlines too.
    let late = client.call_timeout::<_, ()>("Task.Hang", "late", Duration::from_millis(50)).await;
    assert!(matches!(late, Err(CallError::DeadlineExceeded { .. })), "{late:?}");
    // Server push.
    let mut subscription = client.subscribe("Events.News");
    within("subscribe", client.call::<_, ()>("Events.Subscribe", &("Events.News", 3u32))).await.expect("subscribe");
    for n in 0..3u32 {
        let note = within("notification", subscription.next()).await.expect("notification");
        assert_eq!(note.decode::<u32>().expect("decode"), n);
    }
    // The drain's GOODBYE arrives through the ring: the client learns the server is going.
    stop(running).await;
    within("closed", client.closed()).await;
    assert!(client.is_closed());
}

#[tokio::test]
async fn a_side_that_does_not_allow_it_keeps_the_socket() {
    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Socket)).await;
    let client = connect(&dir, Transport::Shm).await;
    assert_eq!(client.transport(), Transport::Socket, "a server on Transport::Socket never grants");
    let _: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    stop(running).await;

    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto)).await;
    let client = connect(&dir, Transport::Socket).await;
    assert_eq!(client.transport(), Transport::Socket, "a client on Transport::Socket never offers");
    let _: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    stop(running).await;
}

#[tokio::test]
async fn tcp_stays_on_the_socket() {
    let (tx, _events) = mpsc::unbounded_channel();
    let running =
        test_server(tx).transport(Transport::Shm).bind(&Endpoint::parse("tcp:127.0.0.1:0").expect("endpoint")).await;
    let running = running.expect("bind");
    let client = Client::builder().transport(Transport::Shm).connect(running.endpoint().clone());
    let client = within("connect", client).await.expect("connect");
    assert_eq!(client.transport(), Transport::Socket);
    let _: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    stop(running).await;
}

#[tokio::test]
async fn connections_past_the_budget_stay_on_the_socket_until_one_gives_its_share_back() {
    let (tx, _events) = mpsc::unbounded_channel();
    // One segment of two 4 KiB rings and the header page fits; a second does not.
    let server = test_server(tx).transport(Transport::Auto).shm_ring(4096).max_shm_bytes(3 * 4096);
    let (running, dir) = serve(server).await;
    let first = connect(&dir, Transport::Auto).await;
    let second = connect(&dir, Transport::Auto).await;
    assert_eq!((first.transport(), second.transport()), (Transport::Shm, Transport::Socket));
    for client in [&first, &second] {
        let _: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    }
    within("close", first.close()).await;
    // The server frees the share when it has seen the connection end.
    let third = within("a share comes back", async {
        loop {
            let client = connect(&dir, Transport::Auto).await;
            if client.transport() == Transport::Shm {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let _: Todo = within("Task.Get", third.call("Task.Get", "x")).await.expect("Task.Get");
    stop(running).await;
}

#[tokio::test]
async fn a_shared_memory_connection_is_not_held_for_carrying() {
    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto)).await;
    let client = connect(&dir, Transport::Auto).await;
    let refused = client.hold(Duration::from_secs(1)).await.map(|_| ()).expect_err("not carried");
    assert!(refused.to_string().contains("shared-memory"), "{refused}");
    let _: Todo = within("Task.Get", client.call("Task.Get", "after")).await.expect("Task.Get");
    stop(running).await;
}

/// A raw client: connects, sends a HELLO offering shared memory, reads the WELCOME with a
/// plain read (so the descriptors are dropped by the kernel) and returns the stream.
fn raw_offer(dir: &tempfile::TempDir) -> (std::os::unix::net::UnixStream, Vec<u8>) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket_in(dir, "t.sock")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let features = hello::features::ALL | hello::features::SHM;
    stream.write_all(&hello::client_hello_with(&[Codec::Json], 1 << 20, features)).expect("hello");
    let mut welcome = vec![0; 5 + 10 + 9];
    stream.read_exact(&mut welcome).expect("welcome");
    (stream, welcome)
}

fn read_to_end(stream: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    rest
}

#[tokio::test]
async fn a_client_that_does_not_answer_the_offer_with_shm_ack_is_told_and_closed() {
    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto)).await;
    let rest = tokio::task::spawn_blocking(move || {
        let (mut stream, welcome) = raw_offer(&dir);
        let features = u32::from_be_bytes(welcome[19..23].try_into().expect("4 bytes"));
        assert_ne!(features & hello::features::SHM, 0, "the server granted it");
        // A call where SHM_ACK belongs.
        stream.write_all(&frame::encode(frame::Kind::Ping, 1, b"")).expect("ping");
        (read_to_end(&mut stream), dir)
    });
    let (rest, _dir) = within("the refusal", rest).await.expect("join");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("instead of SHM_ACK"), "the GOODBYE says why: {text:?}");
    assert_eq!(rest.get(4), Some(&(frame::Kind::Goodbye as u8)), "a GOODBYE frame: {rest:02x?}");
    stop(running).await;
}

#[tokio::test]
async fn a_client_that_declines_goes_on_over_the_socket() {
    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto)).await;
    let answer = tokio::task::spawn_blocking(move || {
        let (mut stream, _welcome) = raw_offer(&dir);
        let mut decline = vec![0u8];
        decline.extend_from_slice(b"no descriptors here");
        stream.write_all(&frame::encode(frame::Kind::ShmAck, 0, &decline)).expect("ack");
        stream.write_all(&frame::encode(frame::Kind::Ping, 7, b"still here")).expect("ping");
        let mut pong = vec![0; 10 + 10];
        stream.read_exact(&mut pong).expect("pong");
        (pong, dir)
    });
    let (pong, _dir) = within("the pong", answer).await.expect("join");
    assert_eq!(pong[4], frame::Kind::Pong as u8);
    assert_eq!(&pong[10..], b"still here");
    stop(running).await;
}

/// A raw server in Python (it has `socket.send_fds`): answers one HELLO with a WELCOME that
/// grants shared memory and passes the descriptors `setup` makes, then prints the client's
/// SHM_ACK body and serves nothing more.
const RAW_SERVER: &str = r#"
import os, socket, struct, sys, fcntl
path, setup = sys.argv[1], sys.argv[2]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path); listener.listen(1)
print("ready", flush=True)
conn, _ = listener.accept()
def exactly(n):
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more: sys.exit("closed")
        data += more
    return data
exactly(5)
length = struct.unpack(">I", exactly(4))[0]
exactly(6 + length)
def memfd(size, seal):
    fd = os.memfd_create("bad", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    return fd
bells = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(4)]
if setup == "unsealed":
    fds = [memfd(4096 * 3, False)] + bells
elif setup == "no-header":
    fds = [memfd(4096 * 3, True)] + bells
elif setup == "pipe-bell":
    segment = memfd(4096 * 3, True)
    # A header that passes: native byte order (PROTOCOL.md §19).
    os.pwrite(segment, b"\xf7WSM" + struct.pack("=IIIQQQQQ", 1, 4096, 0, 3 * 4096, 4096, 4096, 8192, 4096), 0)
    fds = [segment, os.pipe()[0]] + bells[1:]
elif setup == "too-few":
    fds = [memfd(4096 * 3, True)] + bells[:2]
welcome_body = struct.pack(">IIB", 1 << 20, 0x1f, 0x02)
welcome = b"\xf7WRP\x01" + struct.pack(">IBBI", len(welcome_body), 0x02, 0, 0) + welcome_body
socket.send_fds(conn, [welcome], fds)
header = exactly(10)
length, kind = struct.unpack(">IB", header[:5])
body = exactly(length)
print("ack kind=%d accepted=%d reason=%s" % (kind, body[0], body[1:].decode()), flush=True)
"#;

async fn declined_by_the_client(setup: &str) -> String {
    let dir = socket_dir();
    let path = socket_in(&dir, "raw.sock");
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", RAW_SERVER])
        .arg(&path)
        .arg(setup)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (the raw server)");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(server.stdout.take().expect("stdout")));
    let ready = within("the raw server", lines.next_line()).await.expect("read");
    assert_eq!(ready.as_deref(), Some("ready"));
    let client = Client::builder().transport(Transport::Shm).codecs(&[Codec::Json]).connect(&path);
    let client = within("connect", client).await.expect("the client declines and stays connected");
    assert_eq!(client.transport(), Transport::Socket, "{setup}");
    let ack = within("the raw server's report", lines.next_line()).await.expect("read").expect("a line");
    drop(client);
    within("the raw server", server.wait()).await.expect("wait");
    ack
}

#[tokio::test]
async fn a_client_declines_a_segment_or_bells_that_do_not_pass_its_checks() {
    for (setup, why) in [
        ("unsealed", "not sealed"),
        ("no-header", "magic"),
        ("pipe-bell", "not an eventfd"),
        ("too-few", "3 descriptors"),
    ] {
        let ack = declined_by_the_client(setup).await;
        assert!(ack.starts_with("ack kind=3 accepted=0 reason="), "{setup}: {ack}");
        assert!(ack.contains(why), "{setup}: the reason says {why:?}: {ack}");
    }
}

#[tokio::test]
async fn nothing_of_a_shared_memory_connection_crosses_into_a_program_started_meanwhile() {
    let (tx, _events) = mpsc::unbounded_channel();
    let (running, dir) = serve(test_server(tx).transport(Transport::Auto)).await;
    let client = connect(&dir, Transport::Shm).await;
    assert_eq!(client.transport(), Transport::Shm);
    let here = std::fs::read_to_string("/proc/self/maps").expect("maps");
    assert!(here.contains("warren-rpc-shm"), "the segment is mapped here: the check below means something");
    let child = tokio::process::Command::new("sh").args(["-c", "ls -l /proc/self/fd/; cat /proc/self/maps"]).output();
    let child = within("sh", child).await.expect("sh");
    let seen = String::from_utf8_lossy(&child.stdout);
    assert!(!seen.contains("warren-rpc-shm") && !seen.contains("eventfd"), "inherited: {seen}");
    let _: Todo = within("Task.Get", client.call("Task.Get", "x")).await.expect("Task.Get");
    stop(running).await;
}

/// A client of another user, as a Python process that drops to `nobody` before it connects:
/// prints the features of the WELCOME and how many descriptors came with it.
const OTHER_USER: &str = r#"
import os, socket, struct, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
hello = struct.pack(">IIBB", 1 << 20, 0x1F, 1, 2)
s.sendall(b"\xf7WRP\x01" + struct.pack(">IBBI", len(hello), 1, 0, 0) + hello)
data, fds = b"", []
while len(data) < 24:
    more, passed, _, _ = socket.recv_fds(s, 4096, 5)
    if not more:
        sys.exit("closed")
    data, fds = data + more, fds + passed
print("features=%#x descriptors=%d" % (struct.unpack(">I", data[19:23])[0], len(fds)), flush=True)
"#;

#[tokio::test]
async fn a_client_of_another_user_is_never_offered_shared_memory() {
    if !rustix::process::geteuid().is_root() {
        return testkit::unavailable("dropping to another user needs root");
    }
    let dir = socket_dir();
    // Reachable by others (read and search only, as the server's directory check wants).
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let (tx, _events) = mpsc::unbounded_channel();
    let server =
        test_server(tx).transport(Transport::Auto).peer_policy(warren_rpc::PeerPolicy::AnyUser).socket_mode(0o666);
    let running = server.bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
    let other = tokio::process::Command::new("python3")
        .args(["-c", OTHER_USER])
        .arg(socket_in(&dir, "t.sock"))
        .kill_on_drop(true)
        .output();
    let other = within("the other user's client", other).await.expect("python3");
    let seen = String::from_utf8_lossy(&other.stdout);
    assert_eq!(seen.trim(), "features=0xf descriptors=0", "{}", String::from_utf8_lossy(&other.stderr));
    // The same server grants it to its own user.
    let client = connect(&dir, Transport::Shm).await;
    assert_eq!(client.transport(), Transport::Shm);
    stop(running).await;
}
