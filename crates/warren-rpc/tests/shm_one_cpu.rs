//! On one CPU a spin only delays the peer it waits for (docs/SHM.md §5): pinned to one CPU, a
//! shared-memory connection never spins. Alone in its test binary, since it pins the whole
//! process as `taskset -c 0` would.

mod common;

use std::time::Duration;

use common::{Todo, socket_dir, socket_in, test_server, within};
use rustix::thread::CpuSet;
use tokio::sync::mpsc;
use warren_rpc::__wire::shm::spin_counts;
use warren_rpc::{Client, Endpoint, Transport};

#[test]
fn pinned_to_one_cpu_a_shared_memory_connection_parks_and_never_spins() {
    let mut one = CpuSet::new();
    one.set(0);
    // This thread (the runtime's threads inherit it) and the main thread, whose mask is the
    // one the peer's pid shows.
    rustix::thread::sched_setaffinity(None, &one).expect("pin this thread");
    rustix::thread::sched_setaffinity(Some(rustix::process::getpid()), &one).expect("pin the main thread");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (tx, _events) = mpsc::unbounded_channel();
        let dir = socket_dir();
        let server = test_server(tx).transport(Transport::Auto);
        let running = server.bind(&Endpoint::unix(socket_in(&dir, "t.sock"))).await.expect("bind");
        let client = Client::builder().transport(Transport::Shm).connect(socket_in(&dir, "t.sock"));
        let client = within("connect", client).await.expect("connect");
        assert_eq!(client.transport(), Transport::Shm);
        let before = spin_counts();
        within("1000 calls", async {
            for n in 0..1000 {
                let id = format!("{n}");
                let todo: Todo = client.call("Task.Get", &id).await.expect("Task.Get");
                assert_eq!(todo.id, id);
            }
        })
        .await;
        assert_eq!(spin_counts(), before, "spins (begun, found) on one CPU");
        within("shutdown", running.shutdown(Duration::from_secs(2))).await;
    });
}
