//! # warren-bench
//!
//! warren measured next to a raw Unix-socket ping-pong, Go net/rpc (gob over HTTP, and the
//! jsonrpc codec), tarpc and supervisord, every implementation in its own server and client
//! processes and driven through the same workloads. `bench/run-all` builds everything with the
//! `bench-release` profile (release, fat LTO, one codegen unit) and runs [`driver`] (the `wb-run`
//! binary), which writes the results into `BENCHMARKS.md`.
//!
//! The workloads are defined once, in [`workload`]: `Task.Get("new_id") -> Todo { ID }` and
//! `Task.Echo(bytes) -> bytes` with 4 KiB and 1 MiB payloads. Every client (the Rust one for raw,
//! warren and tarpc; the Go one in `bench/go/client` for net/rpc) takes the same arguments and
//! prints the same [`closed_loop::LoopReport`] as one JSON line.
//!
//! Binaries:
//! - `wb-child`: the warren child — a warren plugin under a host, a standalone server
//!   (`wb-child serve SOCKET`, also what supervisord runs), or a log writer (`wb-child log N`).
//! - `wb-raw-server`, `wb-tarpc-server`: the peers' servers (`wb-raw-server --shm`: the
//!   shared-memory floor, [`shm_floor`]).
//! - `wb-client`: the closed-loop client for raw, the shared-memory floor, warren (on its
//!   socket or moved to shared memory) and tarpc.
//! - `wb-host`: a warren host in a process of its own, for lifecycle, log and footprint figures.
//! - `wb-run`: the driver.

pub mod closed_loop;
pub mod driver;
pub mod proc;
pub mod raw;
pub mod service;
pub mod shm_floor;
pub mod workload;

/// Calls `f` once this process's standard input reaches end-of-file: servers started by the
/// driver stop when it closes their stdin, which also happens if the driver dies.
pub fn on_stdin_eof(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            f();
        })
        .expect("spawn the stdin watcher thread");
}

/// Prints `ready` on stdout, the line the driver waits for before it connects.
pub fn say_ready() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}
