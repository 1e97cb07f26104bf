//! A warren host in a process of its own, for the lifecycle, log and footprint figures (so that
//! its CPU time and memory are the host's alone). Prints one JSON object.
//!
//! - `wb-host lifecycle CHILD SPAWNS`: SPAWNS times, one after the other: `Host::spawn` (returns
//!   once the child said READY=1 and the client is connected), a first `Task.Get`, then
//!   `Child::stop` and a check that the process is gone and its socket removed.
//! - `wb-host plain SERVER SPAWNS [ARGS...]`: the baseline: `std::process::Command` starts
//!   `SERVER [ARGS...] SOCKET`, waits for its `ready` line, connects and makes a first call (a
//!   raw frame, or `Task.Get` with `--warren` as the first ARG); stops it by closing its stdin.
//! - `wb-host many CHILD N`: N children started at once; all ready, all replied, the host's and
//!   the children's memory, then `Host::stop_all` until every process is gone and every socket
//!   removed.
//! - `wb-host plain-many CHILD N`: the baseline for `many`: N `CHILD serve --current-thread SOCKET`
//!   (the runtime the child has under a host) started with
//!   `std::process::Command` (no pre-exec hook, so `posix_spawn`), their `ready` lines read,
//!   each called once, then stopped by closing their stdin.
//! - `wb-host spawn-cost CHILD N SPAWNS`: what one spawn costs a host that already runs N
//!   warren children: SPAWNS times `CHILD log 0` (no RPC, ready once started, exits at once) —
//!   how long `Host::spawn` takes to return, and the host's CPU time and minor page faults from
//!   the spawn until the child is stopped (a `fork` shows here as copy-on-write faults).
//! - `wb-host logs CHILD LINES`: `wb-child log LINES` under the host with a counting log sink:
//!   lines per second reaching the sink, host CPU per line, lost lines.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use warren::{Host, LogLine, LogSink, Readiness, Spec};
use warren_bench::proc;
use warren_bench::raw::{self, Conn};
use warren_bench::workload::{GET_ID, Todo};

const GRACE: Duration = Duration::from_secs(5);

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn socket_of(child: &warren::Child) -> Option<PathBuf> {
    match child.endpoint() {
        Some(warren_rpc::Endpoint::Unix(path)) => Some(path.clone()),
        _ => None,
    }
}

async fn lifecycle(child: &Path, spawns: usize) -> anyhow::Result<Value> {
    let host = Host::new()?;
    let (mut ready, mut replied, mut stopped, mut rss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut unclean = 0;
    for _ in 0..spawns {
        let start = Instant::now();
        let c = host.spawn(Spec::new(child).name("wb-child")).await?;
        ready.push(ns(start.elapsed()));
        let todo: Todo = c.client().call("Task.Get", GET_ID).await?;
        replied.push(ns(start.elapsed()));
        ensure!(todo.id == GET_ID, "wrong reply {todo:?}");
        rss.push(proc::rss_kib(c.pid()).unwrap_or(0));
        let (pid, socket) = (c.pid(), socket_of(&c));
        let start = Instant::now();
        let report = c.stop(GRACE).await;
        let gone = !proc::exists(pid) && socket.as_deref().is_none_or(|s| !s.exists());
        stopped.push(ns(start.elapsed()));
        if !report.outcome.is_clean() || !gone || report.removed_socket {
            unclean += 1;
        }
    }
    Ok(
        json!({ "ready_ns": ready, "first_reply_ns": replied, "stop_ns": stopped, "child_rss_kib": rss, "unclean": unclean }),
    )
}

/// The baseline: a plain spawn, a `ready` line on a pipe, a connection and one call.
fn plain(server: &Path, spawns: usize, args: &[String]) -> anyhow::Result<Value> {
    let warren = args.first().is_some_and(|a| a == "--warren");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--warren").collect();
    let dir = std::env::temp_dir().join(format!("wb-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("s.sock");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut replied, mut stopped) = (Vec::new(), Vec::new());
    let mut unclean = 0;
    for _ in 0..spawns {
        let start = Instant::now();
        let mut child = std::process::Command::new(server)
            .args(&args)
            .arg(&socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", server.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        ensure!(line.trim() == "ready", "{} said {line:?}", server.display());
        if warren {
            runtime.block_on(async {
                let client = warren_rpc::Client::connect(warren_rpc::Endpoint::unix(&socket)).await?;
                let todo: Todo = client.call("Task.Get", GET_ID).await?;
                ensure!(todo.id == GET_ID, "wrong reply");
                client.close().await;
                anyhow::Ok(())
            })?;
        } else {
            let stream = UnixStream::connect(&socket)?;
            let mut write = stream.try_clone()?;
            let mut conn = Conn::new(stream);
            raw::write_frame(&mut write, &[raw::GET], GET_ID.as_bytes())?;
            ensure!(conn.read_frame()?.is_some_and(|r| r == GET_ID.as_bytes()), "wrong reply");
        }
        replied.push(ns(start.elapsed()));
        let start = Instant::now();
        drop(child.stdin.take());
        let status = child.wait()?;
        let gone = !socket.exists();
        stopped.push(ns(start.elapsed()));
        if !status.success() || !gone {
            unclean += 1;
            let _ = std::fs::remove_file(&socket);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({ "first_reply_ns": replied, "stop_ns": stopped, "unclean": unclean }))
}

async fn many(child: &Path, n: usize) -> anyhow::Result<Value> {
    let host = Host::new()?;
    let start = Instant::now();
    let mut spawns = tokio::task::JoinSet::new();
    for i in 0..n {
        let (host, spec) = (host.clone(), Spec::new(child).name(format!("c{i}")));
        spawns.spawn(async move { host.spawn(spec).await });
    }
    let mut children = Vec::new();
    while let Some(spawned) = spawns.join_next().await {
        children.push(spawned??);
    }
    let all_ready = start.elapsed();
    let mut calls = tokio::task::JoinSet::new();
    for c in &children {
        let client = c.client().clone();
        calls.spawn(async move { client.call::<_, Todo>("Task.Get", GET_ID).await });
    }
    while let Some(reply) = calls.join_next().await {
        ensure!(reply??.id == GET_ID, "wrong reply");
    }
    let all_replied = start.elapsed();
    let me = std::process::id();
    let host_rss = proc::rss_kib(me).unwrap_or(0);
    let host_peak = proc::peak_rss_kib(me).unwrap_or(0);
    let watchdog_rss = host.watchdog_pid().and_then(proc::rss_kib).unwrap_or(0);
    let mut child_rss: Vec<u64> = children.iter().filter_map(|c| proc::rss_kib(c.pid())).collect();
    child_rss.sort_unstable();
    let (mut child_pss, mut child_private): (Vec<u64>, Vec<u64>) =
        children.iter().filter_map(|c| proc::pss_and_private_kib(c.pid())).unzip();
    child_pss.sort_unstable();
    child_private.sort_unstable();
    let (host_pss, host_private) = proc::pss_and_private_kib(me).unwrap_or_default();
    let pids: Vec<u32> = children.iter().map(warren::Child::pid).collect();
    let sockets: Vec<PathBuf> = children.iter().filter_map(socket_of).collect();
    drop(children);
    let start = Instant::now();
    let reports = host.stop_all(GRACE).await;
    let all_stopped = start.elapsed();
    let gone = pids.iter().all(|&pid| !proc::exists(pid)) && sockets.iter().all(|s| !s.exists());
    let unclean = reports.iter().filter(|r| !r.outcome.is_clean() || r.removed_socket).count();
    Ok(json!({
        "n": n,
        "all_ready_ns": ns(all_ready),
        "all_replied_ns": ns(all_replied),
        "all_stopped_ns": ns(all_stopped),
        "all_gone": gone,
        "unclean": unclean,
        "host_rss_kib": host_rss,
        "host_peak_rss_kib": host_peak,
        "watchdog_rss_kib": watchdog_rss,
        "child_rss_kib_median": child_rss.get(child_rss.len() / 2).copied().unwrap_or(0),
        "child_pss_kib_median": child_pss.get(child_pss.len() / 2).copied().unwrap_or(0),
        "child_private_kib_median": child_private.get(child_private.len() / 2).copied().unwrap_or(0),
        "host_pss_kib": host_pss,
        "host_private_kib": host_private,
    }))
}

/// The floor for `many`: plain spawns, `ready` lines on pipes, a warren client per child.
async fn plain_many(child: &Path, n: usize) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("wb-plain-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sockets: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("c{i}.sock"))).collect();
    let start = Instant::now();
    let mut procs = Vec::new();
    for socket in &sockets {
        let process = std::process::Command::new(child)
            .args(["serve", "--current-thread"])
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", child.display()))?;
        procs.push(process);
    }
    for process in &mut procs {
        let mut line = String::new();
        BufReader::new(process.stdout.take().context("stdout")?).read_line(&mut line)?;
        ensure!(line.trim() == "ready", "a child said {line:?}");
    }
    let all_ready = start.elapsed();
    let mut calls = tokio::task::JoinSet::new();
    for socket in &sockets {
        let endpoint = warren_rpc::Endpoint::unix(socket);
        calls.spawn(async move {
            let client = warren_rpc::Client::connect(endpoint).await?;
            let todo: Todo = client.call("Task.Get", GET_ID).await?;
            client.close().await;
            anyhow::Ok(todo)
        });
    }
    while let Some(reply) = calls.join_next().await {
        ensure!(reply??.id == GET_ID, "wrong reply");
    }
    let all_replied = start.elapsed();
    let start = Instant::now();
    for process in &mut procs {
        drop(process.stdin.take());
    }
    let mut unclean = 0;
    for process in &mut procs {
        if !process.wait()?.success() {
            unclean += 1;
        }
    }
    let gone = sockets.iter().all(|s| !s.exists());
    let all_stopped = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "n": n,
        "all_ready_ns": ns(all_ready),
        "all_replied_ns": ns(all_replied),
        "all_stopped_ns": ns(all_stopped),
        "all_gone": gone,
        "unclean": unclean,
    }))
}

async fn spawn_cost(child: &Path, n: usize, spawns: usize) -> anyhow::Result<Value> {
    let host = Host::new()?;
    let mut running = Vec::new();
    for i in 0..n {
        running.push(host.spawn(Spec::new(child).name(format!("c{i}"))).await?);
    }
    let me = std::process::id();
    let (mut spawn_ns, mut cpu_ns, mut faults) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..spawns {
        let spec = Spec::new(child).name(format!("s{i}")).args(["log", "0"]).rpc(false).readiness(Readiness::Started);
        let (cpu0, faults0) = (proc::self_cpu_ns(), proc::minor_faults(me).unwrap_or(0));
        let start = Instant::now();
        let c = host.spawn(spec).await?;
        spawn_ns.push(ns(start.elapsed()));
        c.wait().await;
        c.stop(GRACE).await;
        cpu_ns.push(proc::self_cpu_ns().saturating_sub(cpu0));
        faults.push(proc::minor_faults(me).unwrap_or(0).saturating_sub(faults0));
    }
    let host_rss = proc::rss_kib(me).unwrap_or(0);
    host.stop_all(GRACE).await;
    Ok(
        json!({ "n": n, "spawn_ns": spawn_ns, "host_cpu_ns": cpu_ns, "host_minor_faults": faults, "host_rss_kib": host_rss }),
    )
}

/// Counts lines, checks that each carries the next number, and notes when the first and the
/// last arrive.
struct CountingSink {
    expected: u64,
    received: AtomicU64,
    out_of_order: AtomicU64,
    first: Mutex<Option<(Instant, u64)>>,
    last: Mutex<Option<(Instant, u64)>>,
}

impl LogSink for CountingSink {
    fn line(&self, line: LogLine) {
        let n = self.received.fetch_add(1, Ordering::Relaxed);
        let number = line.text.get(..9).and_then(|digits| digits.parse::<u64>().ok());
        if number != Some(n) || line.text.len() != 99 {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
        if n == 0 {
            *self.first.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), proc::self_cpu_ns()));
        }
        if n + 1 == self.expected {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), proc::self_cpu_ns()));
        }
    }
}

async fn logs(child: &Path, lines: u64) -> anyhow::Result<Value> {
    let sink = Arc::new(CountingSink {
        expected: lines,
        received: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        first: Mutex::new(None),
        last: Mutex::new(None),
    });
    let host = Host::builder().log_sink(Arc::clone(&sink) as Arc<dyn LogSink>).build()?;
    let (start, cpu0) = (Instant::now(), proc::self_cpu_ns());
    let c = host
        .spawn(
            Spec::new(child).name("logger").arg("log").arg(lines.to_string()).rpc(false).readiness(Readiness::Started),
        )
        .await?;
    let exit = c.wait().await;
    // The stop returns once the pipes are drained to end-of-file: every line is in.
    let report = c.stop(GRACE).await;
    let received = sink.received.load(Ordering::Relaxed);
    let first = *sink.first.lock().unwrap_or_else(PoisonError::into_inner);
    let last = *sink.last.lock().unwrap_or_else(PoisonError::into_inner);
    let (Some((t_first, _)), Some((t_last, cpu_last))) = (first, last) else {
        bail!("only {received} of {lines} lines arrived ({exit}, {report})");
    };
    Ok(json!({
        "lines": lines,
        "received": received,
        "lost": lines.saturating_sub(received),
        "out_of_order": sink.out_of_order.load(Ordering::Relaxed),
        "first_to_last_ns": ns(t_last - t_first),
        "spawn_to_last_ns": ns(t_last - start),
        "host_cpu_ns": cpu_last.saturating_sub(cpu0),
        "exit_clean": exit.success(),
    }))
}

async fn run(args: &[String]) -> anyhow::Result<Value> {
    let number = |i: usize| -> anyhow::Result<u64> {
        let text = args.get(i).context("missing a number")?;
        text.parse().with_context(|| format!("not a number: {text}"))
    };
    let path = |i: usize| -> anyhow::Result<PathBuf> { Ok(PathBuf::from(args.get(i).context("missing a path")?)) };
    match args.first().map(String::as_str) {
        Some("lifecycle") => lifecycle(&path(1)?, number(2)? as usize).await,
        Some("plain") => {
            let (server, spawns, rest) = (path(1)?, number(2)? as usize, args.get(3..).unwrap_or_default().to_vec());
            tokio::task::spawn_blocking(move || plain(&server, spawns, &rest)).await?
        }
        Some("many") => many(&path(1)?, number(2)? as usize).await,
        Some("plain-many") => plain_many(&path(1)?, number(2)? as usize).await,
        Some("logs") => logs(&path(1)?, number(2)?).await,
        Some("spawn-cost") => spawn_cost(&path(1)?, number(2)? as usize, number(3)? as usize).await,
        _ => bail!(
            "usage: wb-host lifecycle CHILD SPAWNS | plain SERVER SPAWNS [ARGS..] | many CHILD N | plain-many CHILD N | spawn-cost CHILD N SPAWNS | logs CHILD LINES"
        ),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("wb-host: {err:#}");
            ExitCode::FAILURE
        }
    }
}
