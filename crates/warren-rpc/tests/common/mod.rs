//! A test service and fixtures shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use warren_rpc::{
    Bytes, Client, ClientBuilder, ConnectError, Endpoint, HandlerError, Protocol, Running, Server, ToEndpoint,
    Transport,
};

/// The transport the suites run over: `WARREN_RPC_TEST_TRANSPORT=shm` moves every binary
/// Unix-socket connection of these fixtures to shared memory (CI runs the suites both ways).
pub fn transport() -> Transport {
    match std::env::var("WARREN_RPC_TEST_TRANSPORT").as_deref() {
        Ok("shm") => Transport::Shm,
        Ok("socket") | Err(_) => Transport::Socket,
        Ok(other) => panic!("WARREN_RPC_TEST_TRANSPORT={other}: expected socket or shm"),
    }
}

/// A server of the suites' transport.
pub fn server() -> Server {
    Server::new().transport(transport())
}

/// A client builder of the suites' transport.
pub fn client() -> ClientBuilder {
    Client::builder().transport(transport())
}

/// Connects with the suites' transport, and checks that a connection that should have moved
/// to shared memory did: a silent fallback would run the suite over the socket twice.
pub async fn connect(endpoint: impl ToEndpoint) -> Result<Client, ConnectError> {
    let client = client().connect(endpoint).await?;
    assert_moved(&client);
    Ok(client)
}

/// Panics if `client` should be on shared memory and is not.
pub fn assert_moved(client: &Client) {
    let should = transport() == Transport::Shm
        && client.endpoint().starts_with("unix:")
        && client.protocol() == Protocol::Binary;
    if should {
        assert_eq!(client.transport(), Transport::Shm, "{} stayed on the socket", client.endpoint());
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Todo {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delayed {
    pub value: u64,
    pub delay_us: u64,
}

/// Events a handler reports to the test: which call saw its cancellation token fire.
pub type Observed = mpsc::UnboundedSender<String>;

/// The test service: `Task.Get`, `Task.Connection` (the server's number for the caller's
/// connection), `Task.Echo`, `Task.Delay`, `Task.Fail`, `Task.Panic`,
/// `Task.Hang` (never returns, reports its cancellation), `Events.Subscribe`, `Log.Write`.
pub fn test_server(observed: Observed) -> Server {
    let on_cancel = observed.clone();
    let logged = observed;
    server()
        .service("Task", move |s| {
            s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
                .method("Connection", |ctx, (): ()| async move { Ok(ctx.peer().connection) })
                .method("Echo", |_ctx, data: Bytes| async move { Ok(data) })
                .method("Delay", |_ctx, d: Delayed| async move {
                    tokio::time::sleep(Duration::from_micros(d.delay_us)).await;
                    Ok(d.value)
                })
                .method("Fail", |_ctx, code: u32| async move {
                    Err::<(), _>(
                        HandlerError::new(code, format!("failed with {code}")).with_data(Todo { id: "detail".into() }),
                    )
                })
                .method("Panic", |_ctx, (): ()| async move {
                    if true {
                        panic!("handler blew up");
                    }
                    Ok(())
                })
                .method("Hang", move |ctx, tag: String| {
                    let on_cancel = on_cancel.clone();
                    async move {
                        let token = ctx.cancellation();
                        let _ = on_cancel.send(format!("started:{tag}"));
                        tokio::spawn(async move {
                            token.cancelled().await;
                            let _ = on_cancel.send(format!("cancelled:{tag}"));
                        });
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                })
        })
        .service("Events", |s| {
            s.method("Subscribe", |ctx, (topic, count): (String, u32)| async move {
                let notifier = ctx.notifier();
                tokio::spawn(async move {
                    for n in 0..count {
                        if notifier.notify(&topic, &n).is_err() {
                            break;
                        }
                    }
                });
                Ok(())
            })
        })
        .service("Log", move |s| {
            s.method("Write", move |_ctx, line: String| {
                let logged = logged.clone();
                async move {
                    let _ = logged.send(format!("log:{line}"));
                    Ok(())
                }
            })
        })
}

/// A private directory with a short path for sockets; removed on drop.
pub fn socket_dir() -> tempfile::TempDir {
    testkit::socket_dir("wrpc")
}

pub fn socket_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Serves the test service on a fresh Unix socket.
pub async fn serve_unix() -> (Running, tempfile::TempDir, mpsc::UnboundedReceiver<String>) {
    let dir = socket_dir();
    let (tx, rx) = mpsc::unbounded_channel();
    let running = test_server(tx).bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
    (running, dir, rx)
}

pub use testkit::within;

/// Waits for `event`, skipping others (e.g. "started:" events of the same calls).
pub async fn expect_event(events: &mut mpsc::UnboundedReceiver<String>, event: &str) {
    within(event, async {
        loop {
            match events.recv().await {
                Some(seen) if seen == event => return,
                Some(_) => continue,
                None => panic!("event channel closed before {event}"),
            }
        }
    })
    .await
}
