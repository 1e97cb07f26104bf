//! The closed-loop client for raw, warren and tarpc (`warren_bench::closed_loop`); prints one
//! JSON `LoopReport` line. Go's client is `bench/go/client`, with the same flags and report.
//!
//! - `raw`: each caller is a thread with a connection of its own (a blocking ping-pong cannot
//!   share one).
//! - `raw-shm`: the shared-memory floor (`warren_bench::shm_floor`): as `raw`, a thread and a
//!   connection per caller, each connection with a segment of its own that the server passed,
//!   driven by a current-thread tokio runtime per thread.
//! - `warren`, `tarpc`: callers are tasks sharing one connection, on a multi-thread tokio
//!   runtime with the default number of workers, as `#[tokio::main]` gives a host. `warren
//!   --transport shm` asks for shared memory and fails unless the connection moved to it: a
//!   connection that stayed on the socket must not pass for a shared-memory measurement.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use tarpc::tokio_serde::formats::Bincode;
use warren_bench::closed_loop::{Args, LoopReport, Phase, Recorder, Timer};
use warren_bench::raw::{self, Conn};
use warren_bench::service::tarpc_task::TaskClient;
use warren_bench::shm_floor;
use warren_bench::workload::{GET_ID, Todo, Workload};
use warren_rpc::__wire::shm::Role;
use warren_rpc::Transport;

fn raw_call(conn: &mut Conn, write: &mut UnixStream, method: u8, arg: &[u8]) -> anyhow::Result<()> {
    raw::write_frame(write, &[method], arg)?;
    let reply = conn.read_frame()?.context("the server closed the connection")?;
    ensure!(reply.len() == arg.len(), "reply of {} bytes to {} sent", reply.len(), arg.len());
    Ok(())
}

/// The raw frames' method and argument for a workload.
fn raw_request(workload: Workload) -> (u8, Arc<Vec<u8>>) {
    match workload {
        Workload::Tiny => (raw::GET, Arc::new(GET_ID.as_bytes().to_vec())),
        _ => (raw::ECHO, Arc::new(workload.payload())),
    }
}

fn run_raw(args: &Args) -> anyhow::Result<LoopReport> {
    let phase = Arc::new(Phase::default());
    let (method, arg) = raw_request(args.workload);
    let mut callers = Vec::new();
    for _ in 0..args.callers {
        let stream = UnixStream::connect(&args.socket).with_context(|| format!("connect {}", args.socket.display()))?;
        let mut write = stream.try_clone()?;
        let mut conn = Conn::new(stream);
        // One checked call before the clock starts: the reply is the argument, byte for byte.
        raw::write_frame(&mut write, &[method], &arg)?;
        ensure!(conn.read_frame()?.is_some_and(|reply| reply == &arg[..]), "raw: wrong first reply");
        let (phase, arg) = (Arc::clone(&phase), Arc::clone(&arg));
        callers.push(std::thread::spawn(move || {
            let mut rec = Recorder::new();
            while !phase.stopped() {
                let start = Instant::now();
                match raw_call(&mut conn, &mut write, method, &arg) {
                    Ok(()) => rec.completed(&phase, start),
                    Err(err) => {
                        rec.failed(err);
                        break;
                    }
                }
            }
            rec
        }));
    }
    let mut timer = Timer::new(args);
    timer.run_blocking(&phase);
    let recorders = callers.into_iter().map(|c| c.join().unwrap_or_default()).collect();
    Ok(timer.report(recorders))
}

fn run_raw_shm(args: &Args) -> anyhow::Result<LoopReport> {
    let phase = Arc::new(Phase::default());
    let (method, arg) = raw_request(args.workload);
    // Every connection is set up before any caller starts: a segment's setup (its memfd, its
    // bells, two runtimes) queues behind the callers already calling on a 2-CPU machine, and 64
    // of them could take many seconds.
    let mut connected = Vec::new();
    for _ in 0..args.callers {
        let stream = UnixStream::connect(&args.socket).with_context(|| format!("connect {}", args.socket.display()))?;
        let side = shm_floor::take(&stream).context("the segment and bells the server passed")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // The halves are registered with this caller's runtime, which goes to its thread.
        let caller = runtime.block_on(async {
            let (read, write) = side.halves(Role::Client, &stream)?;
            let mut caller = shm_floor::Caller::new(read, write);
            // One checked call before the clock starts: the reply is the argument, byte for byte.
            ensure!(caller.call(method, &arg).await? == &arg[..], "raw-shm: wrong first reply");
            anyhow::Ok(caller)
        })?;
        connected.push((runtime, caller, stream));
    }
    let mut callers = Vec::new();
    for (runtime, mut caller, stream) in connected {
        let (phase, arg) = (Arc::clone(&phase), Arc::clone(&arg));
        callers.push(std::thread::spawn(move || {
            runtime.block_on(async move {
                let mut rec = Recorder::new();
                while !phase.stopped() {
                    let start = Instant::now();
                    match caller.call(method, &arg).await {
                        Ok(reply) if reply.len() == arg.len() => rec.completed(&phase, start),
                        Ok(reply) => {
                            rec.failed(format!("reply of {} bytes to {} sent", reply.len(), arg.len()));
                            break;
                        }
                        Err(err) => {
                            rec.failed(err);
                            break;
                        }
                    }
                }
                // Its end (the socket's) tells the server this connection is over.
                drop((caller, stream));
                rec
            })
        }));
    }
    let mut timer = Timer::new(args);
    timer.run_blocking(&phase);
    let recorders = callers.into_iter().map(|c| c.join().unwrap_or_default()).collect();
    Ok(timer.report(recorders))
}

/// Runs `callers` copies of `call` as tasks through the warm-up and the window.
async fn run_tasks<F, Fut>(args: &Args, call: F) -> anyhow::Result<LoopReport>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let phase = Arc::new(Phase::default());
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.callers {
        let (phase, call) = (Arc::clone(&phase), call.clone());
        callers.spawn(async move {
            let mut rec = Recorder::new();
            while !phase.stopped() {
                let start = Instant::now();
                match call().await {
                    Ok(()) => rec.completed(&phase, start),
                    Err(err) => {
                        rec.failed(format!("{err:#}"));
                        break;
                    }
                }
            }
            rec
        });
    }
    let mut timer = Timer::new(args);
    tokio::time::sleep(args.warmup).await;
    timer.open(&phase);
    tokio::time::sleep(args.window).await;
    timer.close(&phase);
    let mut recorders = Vec::new();
    while let Some(rec) = callers.join_next().await {
        recorders.push(rec?);
    }
    Ok(timer.report(recorders))
}

async fn run_warren(args: &Args) -> anyhow::Result<LoopReport> {
    let transport = match args.transport.as_deref() {
        None | Some("socket") => Transport::Socket,
        Some("shm") => Transport::Shm,
        Some(other) => bail!("--transport socket|shm, not {other}"),
    };
    let endpoint = warren_rpc::Endpoint::unix(&args.socket);
    let client = warren_rpc::Client::builder().transport(transport).connect(endpoint).await?;
    ensure!(
        client.transport() == transport,
        "asked for {transport:?}, the connection is on {:?}: a connection that stayed on the socket is not a \
         shared-memory measurement",
        client.transport()
    );
    match args.workload {
        Workload::Tiny => {
            let todo: Todo = client.call("Task.Get", GET_ID).await?;
            ensure!(todo.id == GET_ID, "warren: wrong first reply {todo:?}");
            run_tasks(args, move || {
                let client = client.clone();
                async move {
                    let todo: Todo = client.call("Task.Get", GET_ID).await?;
                    ensure!(todo.id.len() == GET_ID.len(), "wrong reply");
                    Ok(())
                }
            })
            .await
        }
        workload => {
            let payload = warren_rpc::Bytes::from(workload.payload());
            let reply: warren_rpc::Bytes = client.call("Task.Echo", &payload).await?;
            ensure!(reply == payload, "warren: wrong first echo");
            run_tasks(args, move || {
                let (client, payload) = (client.clone(), payload.clone());
                async move {
                    let reply: warren_rpc::Bytes = client.call("Task.Echo", &payload).await?;
                    ensure!(reply.len() == payload.len(), "wrong reply length");
                    Ok(())
                }
            })
            .await
        }
    }
}

async fn run_tarpc(args: &Args) -> anyhow::Result<LoopReport> {
    let mut connect = tarpc::serde_transport::unix::connect(&args.socket, Bincode::default);
    connect.config_mut().max_frame_length(16 * 1024 * 1024);
    let client = TaskClient::new(tarpc::client::Config::default(), connect.await?).spawn();
    let ctx = tarpc::context::current;
    match args.workload {
        Workload::Tiny => {
            let todo = client.get(ctx(), GET_ID.to_owned()).await?;
            ensure!(todo.id == GET_ID, "tarpc: wrong first reply {todo:?}");
            run_tasks(args, move || {
                let client = client.clone();
                async move {
                    let todo = client.get(ctx(), GET_ID.to_owned()).await?;
                    ensure!(todo.id.len() == GET_ID.len(), "wrong reply");
                    Ok(())
                }
            })
            .await
        }
        workload => {
            let payload = bytes::Bytes::from(workload.payload());
            let reply = client.echo(ctx(), payload.clone()).await?;
            ensure!(reply == payload, "tarpc: wrong first echo");
            run_tasks(args, move || {
                let (client, payload) = (client.clone(), payload.clone());
                async move {
                    let len = payload.len();
                    let reply = client.echo(ctx(), payload).await?;
                    ensure!(reply.len() == len, "wrong reply length");
                    Ok(())
                }
            })
            .await
        }
    }
}

fn run(args: &Args) -> anyhow::Result<LoopReport> {
    match args.implementation.as_str() {
        "raw" => run_raw(args),
        "raw-shm" => run_raw_shm(args),
        "warren" | "tarpc" => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                if args.implementation == "warren" { run_warren(args).await } else { run_tarpc(args).await }
            })
        }
        other => bail!("wb-client serves raw, raw-shm, warren and tarpc, not {other}"),
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("wb-client: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(mut report) => {
            (report.client_spins, report.client_spin_hits) = warren_rpc::__wire::shm::spin_counts();
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("wb-client ({}): {err:#}", args.implementation);
            ExitCode::FAILURE
        }
    }
}
