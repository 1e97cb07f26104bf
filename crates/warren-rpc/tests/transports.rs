//! The same service answers the same calls over every transport (Unix socket, TCP, in-memory
//! duplex) with both payload codecs, and 1 MiB byte payloads arrive intact.

mod common;

use std::time::Duration;

use common::{Todo, socket_dir, socket_in, test_server, within};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use warren_rpc::{Bytes, Client, Codec, ConnectError, Endpoint, ErrorCode, Running, Server};

const CODECS: [Codec; 2] = [Codec::MessagePack, Codec::Json];
const MIB: usize = 1 << 20;

fn server() -> Server {
    let (observed, _) = mpsc::unbounded_channel();
    test_server(observed)
}

/// 1 MiB where byte `i` is `i mod 251`: a period prime to every power of two, so a dropped,
/// duplicated or reordered chunk of any aligned size shows.
fn pattern() -> Vec<u8> {
    (0..MIB).map(|i| (i % 251) as u8).collect()
}

/// What every transport must do: answer `Task.Get`, and echo 1 MiB of bytes intact.
async fn exercise(client: &Client, transport: &str) {
    let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id"))
        .await
        .unwrap_or_else(|err| panic!("{transport}: Task.Get: {err}"));
    assert_eq!(todo, Todo { id: "new_id".into() }, "{transport}");

    let sent = pattern();
    let echoed: Bytes = within("Task.Echo of 1 MiB", client.call("Task.Echo", &Bytes::from(sent.clone())))
        .await
        .unwrap_or_else(|err| panic!("{transport}: Task.Echo: {err}"));
    assert_eq!(echoed.len(), sent.len(), "{transport}: echoed length");
    // Not assert_eq!: a failure would print two megabytes of numbers.
    if let Some(at) = echoed.iter().zip(&sent).position(|(got, want)| got != want) {
        panic!("{transport}: echoed byte {at} is {} instead of {}", echoed[at], sent[at]);
    }
}

fn client_for(codec: Codec) -> warren_rpc::ClientBuilder {
    common::client().codecs(&[codec])
}

async fn stop(running: &Running) {
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn unix_socket_with_both_codecs() {
    let dir = socket_dir();
    let running = server().bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
    for codec in CODECS {
        let client = within("connect", client_for(codec).connect(running.endpoint())).await.expect("connect");
        assert_eq!(client.codec(), codec);
        exercise(&client, &format!("unix/{codec:?}")).await;
        client.close().await;
    }
    stop(&running).await;
}

#[tokio::test]
async fn tcp_on_an_ephemeral_port_with_both_codecs() {
    let running = server().bind(&Endpoint::parse("tcp:127.0.0.1:0").expect("endpoint")).await.expect("bind");
    let Endpoint::Tcp(addr) = running.endpoint() else {
        panic!("a TCP server reports a TCP endpoint, got {}", running.endpoint());
    };
    let bound: std::net::SocketAddr = addr.parse().expect("the endpoint is ip:port");
    assert!(bound.ip().is_loopback() && bound.port() != 0, "endpoint() should give the bound port, got {addr}");
    for codec in CODECS {
        let client = within("connect", client_for(codec).connect(running.endpoint())).await.expect("connect");
        assert_eq!(client.codec(), codec);
        exercise(&client, &format!("tcp/{codec:?}")).await;
        client.close().await;
    }
    stop(&running).await;
}

/// Serves the test service over one end of an in-memory duplex; the task ends when the
/// connection does.
fn serve_in_memory(server: Server) -> (tokio::io::DuplexStream, JoinHandle<()>) {
    // Smaller than one payload, so large frames must stream through the pipe.
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_end);
    (client_end, tokio::spawn(server.serve_io(read, write)))
}

#[tokio::test]
async fn in_memory_duplex_with_both_codecs() {
    for codec in CODECS {
        let (client_end, serving) = serve_in_memory(server());
        let (read, write) = tokio::io::split(client_end);
        let client = within("handshake", client_for(codec).over(read, write, "mem")).await.expect("handshake");
        assert_eq!(client.codec(), codec);
        assert_eq!(client.endpoint(), "mem");
        exercise(&client, &format!("mem/{codec:?}")).await;
        client.close().await;
        within("serve_io to return once the client closed", serving).await.expect("serve_io task");
    }
}

#[tokio::test]
async fn each_codec_works_alone_end_to_end() {
    // A server that speaks only one codec proves that codec carries the calls by itself.
    for codec in CODECS {
        let (client_end, serving) = serve_in_memory(server().codecs(&[codec]));
        let (read, write) = tokio::io::split(client_end);
        let client = within("handshake", client_for(codec).over(read, write, "mem")).await.expect("handshake");
        assert_eq!(client.codec(), codec);
        exercise(&client, &format!("{codec:?}-only server")).await;
        client.close().await;
        within("serve_io to return once the client closed", serving).await.expect("serve_io task");
    }
}

#[tokio::test]
async fn a_client_and_server_without_a_common_codec_are_told_so() {
    let (client_end, serving) = serve_in_memory(server().codecs(&[Codec::Json]));
    let (read, write) = tokio::io::split(client_end);
    let err = within("handshake", client_for(Codec::MessagePack).over(read, write, "mem"))
        .await
        .expect_err("no common codec");
    assert!(
        matches!(&err, ConnectError::Refused { code: ErrorCode::UnsupportedCodec, .. }),
        "expected an UNSUPPORTED_CODEC refusal, got {err:?}"
    );
    within("serve_io to return after the refusal", serving).await.expect("serve_io task");
}

#[tokio::test]
async fn the_client_prefers_its_first_codec() {
    let (client_end, serving) = serve_in_memory(server());
    let (read, write) = tokio::io::split(client_end);
    let client =
        within("handshake", Client::builder().codecs(&[Codec::Json, Codec::MessagePack]).over(read, write, "mem"))
            .await
            .expect("handshake");
    assert_eq!(client.codec(), Codec::Json, "the server should pick the client's first supported codec");
    exercise(&client, "mem/Json-preferred").await;
    client.close().await;
    within("serve_io to return once the client closed", serving).await.expect("serve_io task");
}
