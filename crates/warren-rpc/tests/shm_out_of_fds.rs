//! Out of descriptors while setting up shared memory (docs/SHM.md §2.5): the server that cannot
//! make its segment and bells does not grant, the client that cannot take the five descriptors
//! declines; either way the connection works on its socket. Alone in its test binary, since it
//! lowers the whole process's descriptor limit.

mod common;

use std::time::Duration;

use common::{Todo, socket_dir, socket_in, test_server};
use rustix::process::{Resource, Rlimit};
use tokio::sync::mpsc;
use warren_rpc::{Client, Endpoint, Transport};

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64
}

#[test]
fn short_of_descriptors_a_connection_stays_on_its_socket_and_works() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (tx, _events) = mpsc::unbounded_channel();
        let dir = socket_dir();
        let server = test_server(tx).transport(Transport::Auto);
        let running = server.bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
        let connect = || {
            Client::builder()
                .transport(Transport::Shm)
                .connect_timeout(Duration::from_secs(2))
                .connect(socket_in(&dir, "t.sock"))
        };
        // Everything the runtime opens once is open before the limits are counted from.
        let warm = connect().await.expect("connect");
        assert_eq!(warm.transport(), Transport::Shm);
        warm.close().await;
        drop(warm);
        let saved = rustix::process::getrlimit(Resource::Nofile);
        let mut seen = Vec::new();
        // From too few descriptors for a socket at all, to enough for everything.
        for spare in 0..24 {
            let base = open_fds();
            let limit = Rlimit { current: Some(base + spare), maximum: saved.maximum };
            rustix::process::setrlimit(Resource::Nofile, limit).expect("lower the limit");
            let client = connect().await;
            rustix::process::setrlimit(Resource::Nofile, saved).expect("restore the limit");
            let Ok(client) = client else { continue };
            let id = format!("spare-{spare}");
            let todo: Todo = client.call("Task.Get", &id).await.expect("a call on whatever transport it got");
            assert_eq!(todo.id, id);
            seen.push((spare, client.transport()));
            client.close().await;
        }
        eprintln!("spare descriptors → transport: {seen:?}");
        let on_socket = seen.iter().filter(|(_, transport)| *transport == Transport::Socket).count();
        assert!(on_socket > 0, "some connection short of descriptors fell back to its socket: {seen:?}");
        assert_eq!(seen.last().map(|(_, transport)| *transport), Some(Transport::Shm), "{seen:?}");
        running.shutdown(Duration::from_secs(2)).await;
    });
}
