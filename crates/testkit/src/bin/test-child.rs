//! A child that misbehaves on purpose, one way per mode, for the host's real-process tests.
//!
//! ```text
//! test-child flood N          N numbered lines on stdout as fast as possible, then exit 0
//! test-child flood-long BYTES lines of BYTES bytes (and a newline) on stdout without end
//! test-child odd-output       a long line, invalid UTF-8, and a last line without newline
//! test-child echo-stdin       echo stdin lines to stdout upper-cased; exit 0 at EOF
//! test-child crash-before-ready   complain on stderr and exit 3
//! test-child crash-after MS   say READY=1, run MS milliseconds, then exit 1
//! test-child never-ready      print, then wait forever without saying READY=1
//! test-child ignore-term      say READY=1, then ignore SIGTERM (and SIGINT) forever
//! test-child plugin [--grandchild] [--ignore-shutdown]
//!                             a warren plugin serving Task.Get, Task.Connection (its
//!                             number for the caller's connection), Task.Pids and Task.Hang
//! test-child grandchild-holder    say READY=1, start a grandchild that holds the pipes and
//!                             ignores SIGTERM, exit 0 on SIGTERM leaving it behind
//! test-child escapee          say READY=1, start a grandchild in a process group of its own
//!                             (out of the host's reach) that holds the pipes
//! test-child sleeper [--ignore-term]  wait forever (a grandchild)
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use warren_rpc::Server;

#[derive(Serialize, Deserialize)]
struct Todo {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct Pids {
    pid: u32,
    grandchild: Option<u32>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let flag = |name: &str| args.iter().any(|a| a == name);
    match mode {
        "flood" => flood(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000)),
        "flood-long" => flood_long(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1 << 20)),
        "odd-output" => odd_output(),
        "echo-stdin" => echo_stdin(),
        "crash-before-ready" => {
            eprintln!("starting up");
            eprintln!("fatal: config file /nonexistent/app.toml not found");
            ExitCode::from(3)
        }
        _ => {
            let millis = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100);
            let flags = Flags {
                grandchild: flag("--grandchild"),
                ignore_shutdown: flag("--ignore-shutdown"),
                ignore_term: flag("--ignore-term"),
                leave_cgroup: flag("--leave-cgroup"),
                millis,
            };
            runtime().block_on(async_main(mode, flags))
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

struct Flags {
    grandchild: bool,
    ignore_shutdown: bool,
    ignore_term: bool,
    leave_cgroup: bool,
    millis: u64,
}

async fn async_main(mode: &str, flags: Flags) -> ExitCode {
    let Flags { grandchild, ignore_shutdown, ignore_term, leave_cgroup: leave, millis } = flags;
    match mode {
        "never-ready" => {
            eprintln!("warming up forever");
            std::future::pending::<()>().await;
            ExitCode::SUCCESS
        }
        "ignore-term" => {
            let mut term = signal(SignalKind::terminate()).expect("handler");
            let mut int = signal(SignalKind::interrupt()).expect("handler");
            ready();
            loop {
                tokio::select! {
                    _ = term.recv() => eprintln!("ignoring SIGTERM"),
                    _ = int.recv() => eprintln!("ignoring SIGINT"),
                }
            }
        }
        "grandchild-holder" => {
            let mut term = signal(SignalKind::terminate()).expect("handler");
            let grandchild = spawn_sleeper(true);
            println!("grandchild {grandchild}");
            ready();
            term.recv().await;
            eprintln!("exiting, leaving grandchild {grandchild} behind");
            ExitCode::SUCCESS
        }
        "escapee" | "cgroup-escapee" => {
            let mut term = signal(SignalKind::terminate()).expect("handler");
            let grandchild = spawn_detached_sleeper(mode == "cgroup-escapee");
            println!("grandchild {grandchild}");
            ready();
            term.recv().await;
            ExitCode::SUCCESS
        }
        "watchdog" => {
            // Ready with a status, then `millis` keep-alives 50 ms apart, then hung (but still
            // answering SIGTERM, so a stop is quick): what a deadlocked worker looks like.
            let mut term = signal(SignalKind::terminate()).expect("handler");
            notify("READY=1\nSTATUS=serving");
            for _ in 0..millis {
                tokio::time::sleep(Duration::from_millis(50)).await;
                notify("WATCHDOG=1");
            }
            notify("STATUS=stuck");
            eprintln!("no more keep-alives");
            term.recv().await;
            ExitCode::SUCCESS
        }
        "crash-after" => {
            ready();
            tokio::time::sleep(Duration::from_millis(millis)).await;
            eprintln!("crashing after {millis} ms");
            ExitCode::from(1)
        }
        "sleeper" => {
            if leave {
                leave_cgroup();
            }
            let mut term = signal(SignalKind::terminate()).expect("handler");
            loop {
                term.recv().await;
                if !ignore_term {
                    return ExitCode::SUCCESS;
                }
            }
        }
        "plugin" => plugin(grandchild, ignore_shutdown).await,
        "flood-then-wait" => {
            // Numbered lines as fast as the pipe takes them, then serve nothing until SIGTERM:
            // a child that is still there however fast the flood went.
            let mut term = signal(SignalKind::terminate()).expect("handler");
            let lines = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
            let flooded = tokio::task::spawn_blocking(move || flood(lines));
            let _ = flooded.await;
            term.recv().await;
            ExitCode::SUCCESS
        }
        "trickle-then-wait" => {
            // The flood's numbered lines, 20 every millisecond (a flood that lasts seconds, to
            // span what a test does meanwhile), then nothing until SIGTERM.
            let mut term = signal(SignalKind::terminate()).expect("handler");
            let lines: u64 = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
            let mut out = std::io::stdout();
            for i in 0..lines {
                let line = format!(
                    "line {i:08} of the flood, padded to be about a hundred bytes long ..........................\n"
                );
                if out.write_all(line.as_bytes()).is_err() {
                    return ExitCode::FAILURE;
                }
                if i % 20 == 19 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            term.recv().await;
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("test-child: unknown mode {other:?}");
            ExitCode::from(64)
        }
    }
}

fn ready() {
    notify("READY=1");
}

fn notify(message: &str) {
    if let Err((path, err)) = warren::sd_notify(message) {
        eprintln!("cannot notify {path}: {err}");
    }
}

/// Starts a grandchild and deliberately never waits for it: leaving it behind is the point.
fn spawn_sleeper(ignore_term: bool) -> u32 {
    let exe = std::env::current_exe().expect("own path");
    let mut command = std::process::Command::new(exe);
    command.arg("sleeper");
    if ignore_term {
        command.arg("--ignore-term");
    }
    // stdout and stderr are inherited: the grandchild holds the host's pipes open.
    #[expect(clippy::zombie_processes, reason = "the grandchild is meant to outlive this process")]
    let child = command.spawn().expect("spawn grandchild");
    catches_term(child.id());
    child.id()
}

/// Waits (at most 5 s) until `pid` has its SIGTERM handler: until then a stop signal would end
/// it as if it did not ignore it, and a test of a grandchild that outlives its parent would see
/// none.
fn catches_term(pid: u32) {
    const SIGTERM_BIT: u64 = 1 << (15 - 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & SIGTERM_BIT != 0);
        if caught {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A grandchild in its own process group: signals to the child's group do not reach it. With
/// `leave_cgroup` it also moves itself to the root of the cgroup2 hierarchy (as root can), out
/// of the child's cgroup: then nothing warren does reaches it.
fn spawn_detached_sleeper(leave_cgroup: bool) -> u32 {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("own path");
    let mut command = std::process::Command::new(exe);
    command.arg("sleeper").process_group(0);
    if leave_cgroup {
        command.arg("--leave-cgroup");
    }
    #[expect(clippy::zombie_processes, reason = "the grandchild is meant to escape")]
    let child = command.spawn().expect("spawn grandchild");
    child.id()
}

/// Moves this process to the root cgroup of the cgroup2 hierarchy, if there is one.
fn leave_cgroup() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2").then(|| before.split_whitespace().nth(4))?
    });
    if let Some(root) = root {
        let _ = std::fs::write(std::path::Path::new(root).join("cgroup.procs"), "0");
    }
}

async fn plugin(grandchild: bool, ignore_shutdown: bool) -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).without_time().init();
    let grandchild_pid = grandchild.then(|| spawn_sleeper(false));
    let server = Server::new().service("Task", move |s| {
        s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) })
            .method("Connection", |ctx, (): ()| async move { Ok(ctx.peer().connection) })
            .method("Pids", move |_ctx, (): ()| async move {
                Ok(Pids { pid: std::process::id(), grandchild: grandchild_pid })
            })
            .method("Hang", |ctx, (): ()| async move {
                ctx.cancelled().await;
                Ok(())
            })
    });
    if ignore_shutdown {
        // Serve, say ready, and then ignore every polite request.
        let endpoint = std::env::var("WARREN_ENDPOINT").expect("WARREN_ENDPOINT");
        let endpoint = warren_rpc::Endpoint::parse(&endpoint).expect("endpoint");
        let mut term = signal(SignalKind::terminate()).expect("handler");
        let server = server.service("warren", |s| s.method("Shutdown", |_ctx, (): ()| async move { Ok(()) }));
        let _running = server.bind(&endpoint).await.expect("bind");
        ready();
        loop {
            term.recv().await;
            eprintln!("ignoring SIGTERM");
        }
    }
    match warren::plugin::serve_with_drain(server, Duration::from_secs(1)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("test-child: {err}");
            ExitCode::from(2)
        }
    }
}

fn flood(lines: u64) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    for i in 0..lines {
        if writeln!(out, "line {i:08} of the flood, padded to be about a hundred bytes long ..........................")
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn flood_long(bytes: usize) -> ExitCode {
    let mut line = vec![b'x'; bytes];
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    loop {
        if out.write_all(&line).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

fn odd_output() -> ExitCode {
    let mut out = std::io::stdout().lock();
    let long = "x".repeat(100_000);
    let _ = writeln!(out, "{long}");
    let _ = out.write_all(b"bad \xff\xfe utf8\n");
    let _ = out.write_all(b"last line without newline");
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn echo_stdin() -> ExitCode {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return ExitCode::FAILURE };
        if writeln!(out, "{}", line.to_uppercase()).and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
