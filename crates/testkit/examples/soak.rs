//! The soak and chaos run behind `scripts/soak`: warren under load while its children are
//! killed, frozen and restarted at random, then a count of everything that should not happen.
//!
//! ```text
//! soak [--duration 10m] [--children 8] [--clients 16] [--deadline-ms 500] [--chaos-ms 250]
//!      [--cycles 2000] [--rss-growth-mib 16] [--seed N] [--child PATH]
//! ```
//!
//! 1. **Cycles.** `--cycles` spawn → call → stop cycles of a plugin on a host of their own,
//!    after a warm-up of 20: the process's open descriptors and threads must come back to their
//!    baseline, no zombie may remain, and its resident memory may not grow by more than 2 MiB.
//! 2. **Chaos.** `--children` plugins (every other one with a grandchild) under a
//!    [`Supervisor`] that restarts them always, after 20 ms of backoff. `--clients` tasks call
//!    `Task.Get` on a random program through `supervisor.client(name)` with a deadline of
//!    `--deadline-ms`, and check each reply. A chaos task picks a random ready program about
//!    every `--chaos-ms` and SIGKILLs it (35 %), SIGSTOPs it for 50 ms to 1.5 s (30 %), asks
//!    the supervisor to restart it (25 %), or deletes its socket file as a `/tmp` cleaner would
//!    (10 %; the host notices and the supervisor restarts it). After `--duration` everything is
//!    shut down.
//!
//! The chaos signals a process only through a pidfd opened after checking that the pid still
//! carries the run's tag, so that it can never hit an unrelated process that reused the pid of
//! a child that just died (`pid_max` is often 32768).
//!
//! At the end it prints calls succeeded and failed by error kind, restarts, the chaos done,
//! memory, descriptors, threads, stalls, the slowest calls with the chaos around them, and any
//! process left behind (found by a tag in the children's environment). It exits 1 if
//!
//! - a call was not ended by its own deadline within a second of it (the runtime's clock), or
//!   ended more than a second past it by the wall clock while the process was running — a
//!   stall of the whole process, which a plain thread outside the runtime measures, is not
//!   counted against warren (on a loaded virtual machine those last seconds);
//! - a reply answered another call, or no call succeeded;
//! - the shutdown took over a minute, or left a program not stopped;
//! - a process of the run or a zombie was left, or the descriptors or threads ended above
//!   their start, or memory grew by more than `--rss-growth-mib` from a tenth of the run on.
//!
//! It is an example rather than a binary of the package because it signals processes with
//! rustix, a dev-dependency of `testkit`; `scripts/soak` builds it together with `test-child`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use fastrand::Rng;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use warren::supervise::Supervisor;
use warren::supervise::machine::State;
use warren::supervise::plan::{self, Backoff, CrashLoop, Invocation, Plan, Program, Restart};
use warren::{Host, LogLine, LogSink, Spec};
use warren_rpc::{CallError, LostReason};

/// A call that has not ended this long after its deadline counts as hung.
const HANG_MARGIN: Duration = Duration::from_secs(1);
/// A call that ended this long after its deadline counts as late (reported, not a failure).
const LATE_MARGIN: Duration = Duration::from_millis(100);
const WARM_UP: usize = 20;
const CYCLE_RSS_TOLERANCE_KIB: u64 = 2048;
/// Names the children's environment variable that marks the processes of this run.
const TAG_VAR: &str = "WARREN_SOAK_TAG";
/// Bound on every wait that is not the run itself.
const BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Todo {
    id: String,
}

/// The command line; see the module docs for what each phase does.
#[derive(Debug, Parser)]
#[command(name = "soak", about = "Cycles, then chaos: a host and a supervisor under load, killed children and all")]
struct Args {
    /// How long the chaos phase runs: 600, 600s, 10m, 1h or 500ms.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Supervised plugins (at least 1).
    #[arg(long, default_value_t = 8)]
    children: usize,
    /// Client tasks calling them (at least 1).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Each call's deadline in milliseconds (at least 1).
    #[arg(long, default_value_t = 500)]
    deadline_ms: u64,
    /// Mean time between two chaos actions in milliseconds (at least 2).
    #[arg(long, default_value_t = 250)]
    chaos_ms: u64,
    /// Measured spawn → call → stop cycles before the chaos.
    #[arg(long, default_value_t = 2000)]
    cycles: usize,
    /// How much the supervised tree's memory may grow during the chaos, in MiB.
    #[arg(long, default_value_t = 16)]
    rss_growth_mib: u64,
    /// The random seed, to repeat a run (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The test child (default: the `test-child` next to this program's build directory).
    #[arg(long)]
    child: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Options {
    duration: Duration,
    children: usize,
    clients: usize,
    deadline: Duration,
    chaos: Duration,
    cycles: usize,
    rss_growth_kib: u64,
    seed: u64,
    child: PathBuf,
}

/// `600`, `600s`, `10m`, `1h` or `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration (600, 600s, 10m, 1h, 500ms)"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" | "min" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (s, ms, m, h)")),
    })
}

fn options(args: Args) -> Result<Options, String> {
    let child = match args.child {
        Some(child) => child,
        None => {
            let exe = std::env::current_exe().map_err(|err| format!("cannot find my own path: {err}"))?;
            // target/<profile>/examples/soak → target/<profile>/test-child
            exe.parent()
                .and_then(|dir| dir.parent())
                .map_or_else(|| PathBuf::from("test-child"), |dir| dir.join("test-child"))
        }
    };
    if !child.is_file() {
        return Err(format!("no test-child at {} (build it: cargo build -p testkit --bins)", child.display()));
    }
    Ok(Options {
        duration: args.duration,
        children: args.children.max(1),
        clients: args.clients.max(1),
        deadline: Duration::from_millis(args.deadline_ms.max(1)),
        chaos: Duration::from_millis(args.chaos_ms.max(2)),
        cycles: args.cycles,
        rss_growth_kib: args.rss_growth_mib * 1024,
        seed: args.seed.unwrap_or_else(|| fastrand::u64(..)),
        child,
    })
}

/// A task's own random sequence, reproducible from the printed seed: `stream` tells the tasks
/// apart.
fn rng(seed: u64, stream: u64) -> Rng {
    Rng::with_seed(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

// ---- /proc ----

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Figures {
    fds: usize,
    threads: u64,
    rss_kib: u64,
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| line.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
}

fn figures() -> Figures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Figures {
        fds: std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count),
        threads: status_field(&status, "Threads:").unwrap_or(0),
        rss_kib: status_field(&status, "VmRSS:").unwrap_or(0),
    }
}

/// Waits until the descriptor and thread counts stop moving (idle blocking threads expire,
/// connections finish closing), at most 5 s, and returns them.
async fn steady() -> Figures {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = figures();
    let mut same_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = figures();
        if (now.fds, now.threads) != (last.fds, last.threads) {
            same_since = Instant::now();
        } else if same_since.elapsed() >= Duration::from_millis(1000) {
            return now;
        }
        last = now;
    }
    last
}

/// Whether `pid`'s environment carries the run's tag.
fn tagged_process(pid: u32, tag: &str) -> bool {
    testkit::has_env(pid, TAG_VAR, tag)
}

/// Live processes whose environment carries the run's tag: this run's children and grandchildren.
fn tagged(tag: &str) -> Vec<u32> {
    testkit::tagged(TAG_VAR, tag)
}

/// The machine's steal time so far (CPU time the hypervisor gave to others), summed over CPUs.
fn steal() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .and_then(|line| line.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| status_field(&s, "VmRSS:")).unwrap_or(0)
}

/// A process of this run, pinned by a pidfd: signals sent through it can never reach another
/// process that has since been given the same pid.
#[derive(Debug)]
struct Target(std::os::fd::OwnedFd);

impl Target {
    /// Pins `pid` if it is still one of this run's processes. A pid read from the supervisor's
    /// status may belong to a child that has just died and been reaped, and on a busy machine
    /// (`pid_max` is often 32768) to any process by now; the tag in its environment tells.
    fn open(pid: u32, tag: &str) -> Option<Target> {
        let fd = rustix::process::pidfd_open(Pid::from_raw(pid as i32)?, rustix::process::PidfdFlags::empty()).ok()?;
        tagged_process(pid, tag).then_some(Target(fd))
    }

    fn signal(&self, signal: Signal) {
        let _ = rustix::process::pidfd_send_signal(&self.0, signal);
    }
}

/// Counts the children's lines instead of printing them.
#[derive(Debug, Default)]
struct CountLines(AtomicU64);

impl LogSink for CountLines {
    fn line(&self, _line: LogLine) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

// ---- phase 1: cycles ----

async fn cycles(options: &Options, failures: &mut Vec<String>) {
    let host = match Host::builder().log_sink(Arc::new(CountLines::default())).build() {
        Ok(host) => host,
        Err(err) => return failures.push(format!("cycles: cannot build a host: {err}")),
    };
    let mut errors = Vec::new();
    let mut cycle = async |i: usize| {
        let spawned = host.spawn(Spec::new(&options.child).name("cycler").arg("plugin")).await;
        let child = match spawned {
            Ok(child) => child,
            Err(err) => return errors.push(format!("cycle {i}: spawn: {err}")),
        };
        let id = format!("cycle-{i}");
        match child.client().call_timeout::<_, Todo>("Task.Get", &id, Duration::from_secs(5)).await {
            Ok(todo) if todo.id == id => {}
            Ok(todo) => errors.push(format!("cycle {i}: asked for {id}, got {}", todo.id)),
            Err(err) => errors.push(format!("cycle {i}: call: {err}")),
        }
        let report = child.stop(Duration::from_secs(5)).await;
        if !report.outcome.is_clean() || !report.leaks.is_empty() {
            errors.push(format!("cycle {i}: {report}"));
        }
    };
    for i in 0..WARM_UP {
        cycle(i).await;
    }
    let base = steady().await;
    let started = Instant::now();
    for i in WARM_UP..WARM_UP + options.cycles {
        cycle(i).await;
    }
    let took = started.elapsed();
    let end = steady().await;
    let zombies = testkit::zombies();
    println!(
        "cycles: {} spawn→call→stop in {:.1} s ({:.2} ms each); fds {} → {}, threads {} → {}, rss {} → {} KiB \
         ({:+} KiB); zombies {}; errors {}",
        options.cycles,
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / options.cycles.max(1) as f64,
        base.fds,
        end.fds,
        base.threads,
        end.threads,
        base.rss_kib,
        end.rss_kib,
        end.rss_kib as i64 - base.rss_kib as i64,
        zombies.len(),
        errors.len(),
    );
    for error in errors.iter().take(10) {
        println!("  {error}");
    }
    if !errors.is_empty() {
        failures.push(format!("cycles: {} cycles failed", errors.len()));
    }
    if end.fds > base.fds {
        failures.push(format!("cycles: open descriptors grew from {} to {}", base.fds, end.fds));
    }
    if end.threads > base.threads {
        failures.push(format!("cycles: threads grew from {} to {}", base.threads, end.threads));
    }
    if !zombies.is_empty() {
        failures.push(format!("cycles: zombies {zombies:?}"));
    }
    if end.rss_kib > base.rss_kib + CYCLE_RSS_TOLERANCE_KIB {
        failures.push(format!("cycles: resident memory grew from {} to {} KiB", base.rss_kib, end.rss_kib));
    }
}

// ---- phase 2: chaos ----

/// What the calls of one client task (or of all of them) came to.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: BTreeMap<String, u64>,
    wrong_reply: u64,
    hung: u64,
    late: u64,
    /// Attempts skipped because the program had no live connection (being restarted).
    unavailable: u64,
    max_ok: Duration,
    max_any: Duration,
    /// Calls that ended more than `LATE_MARGIN` past their deadline: (start since the run
    /// began, program, how long it took, how it ended). At most `SLOW_KEPT` per task.
    slow: Vec<(Duration, String, Duration, String)>,
    /// Calls that ended, by the wall clock, more than `HANG_MARGIN` after their deadline
    /// without being hung by the runtime's clock: when they started and how long they took.
    /// Whether a stall of the whole process explains them is decided at the end.
    overdue: Vec<(Instant, Duration)>,
}

/// Slow calls kept per client task for the report.
const SLOW_KEPT: usize = 20;

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (kind, count) in other.failed {
            *self.failed.entry(kind).or_default() += count;
        }
        self.wrong_reply += other.wrong_reply;
        self.hung += other.hung;
        self.late += other.late;
        self.unavailable += other.unavailable;
        self.max_ok = self.max_ok.max(other.max_ok);
        self.max_any = self.max_any.max(other.max_any);
        self.slow.extend(other.slow);
        self.overdue.extend(other.overdue);
    }

    fn failed_total(&self) -> u64 {
        self.failed.values().sum::<u64>() + self.wrong_reply + self.hung
    }
}

fn kind(err: &CallError) -> String {
    match err {
        CallError::ConnectionLost { reason, .. } => {
            let reason = match reason {
                LostReason::ClosedByPeer => "closed by peer",
                LostReason::PeerShutDown => "peer shut down",
                LostReason::Goodbye { .. } => "goodbye",
                LostReason::Protocol(_) => "protocol",
                LostReason::Io(_) => "i/o",
                LostReason::ClosedLocally => "closed locally",
                LostReason::HandedOver => "handed over",
                _ => "other",
            };
            format!("connection lost ({reason})")
        }
        CallError::DeadlineExceeded { .. } => "deadline exceeded".to_owned(),
        CallError::ShuttingDown { .. } => "shutting down".to_owned(),
        CallError::Cancelled { .. } => "cancelled".to_owned(),
        other => format!("other: {}", other.code().name()),
    }
}

/// What the client and chaos tasks share.
#[derive(Debug, Clone)]
struct Run {
    supervisor: Supervisor,
    names: Arc<Vec<String>>,
    stop: watch::Receiver<bool>,
    /// When the chaos phase began: the times in the report count from here.
    began: Instant,
    tag: Arc<str>,
    /// Where the programs' sockets are: the host's runtime directory.
    sockets: Arc<std::path::Path>,
}

impl Run {
    fn pick(&self, rng: &mut Rng) -> &String {
        &self.names[rng.u64(..self.names.len() as u64) as usize]
    }
}

/// Shared counters for the progress line printed every minute.
#[derive(Debug, Default)]
struct Progress {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn client_task(run: Run, deadline: Duration, mut rng: Rng, progress: Arc<Progress>, task: usize) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0u64;
    while !*run.stop.borrow() {
        let name = run.pick(&mut rng);
        let client = run.supervisor.client(name).ok().flatten().filter(|c| !c.is_closed());
        let Some(client) = client else {
            tally.unavailable += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        n += 1;
        let id = format!("{task}-{n}");
        let start = Instant::now();
        let call = client.call_timeout::<_, Todo>("Task.Get", &id, deadline);
        let outcome = tokio::time::timeout(deadline + HANG_MARGIN, call).await;
        let took = start.elapsed();
        tally.max_any = tally.max_any.max(took);
        let how = match outcome {
            Err(_) => {
                tally.hung += 1;
                eprintln!("soak: a call to {name} ({id}) was still running {HANG_MARGIN:?} after its deadline");
                "hung".to_owned()
            }
            Ok(Ok(todo)) if todo.id == id => {
                tally.ok += 1;
                tally.max_ok = tally.max_ok.max(took);
                progress.ok.fetch_add(1, Ordering::Relaxed);
                "ok".to_owned()
            }
            Ok(Ok(todo)) => {
                tally.wrong_reply += 1;
                eprintln!("soak: asked {name} for {id}, got {}", todo.id);
                "wrong reply".to_owned()
            }
            Ok(Err(err)) => {
                let kind = kind(&err);
                *tally.failed.entry(kind.clone()).or_default() += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                kind
            }
        };
        if took > deadline + LATE_MARGIN {
            if took < deadline + HANG_MARGIN {
                tally.late += 1;
            } else if how != "hung" && tally.overdue.len() < 100_000 {
                tally.overdue.push((start, took));
            }
            if tally.slow.len() < SLOW_KEPT {
                tally.slow.push((start.duration_since(run.began), name.clone(), took, how));
            }
        }
    }
    tally
}

#[derive(Debug, Default)]
struct Chaos {
    kills: u64,
    freezes: u64,
    restarts: u64,
    sweeps: u64,
    /// Turns that found the chosen program not ready (starting, in backoff) and did nothing.
    idle: u64,
    /// What was done to whom and when (since the run began).
    log: Vec<(Duration, String, &'static str)>,
}

async fn chaos_task(mut run: Run, mean: Duration, mut rng: Rng) -> Chaos {
    let mut chaos = Chaos::default();
    let mut thaws = tokio::task::JoinSet::new();
    let mean_ms = mean.as_millis() as u64;
    loop {
        let pause = Duration::from_millis(mean_ms / 2 + rng.u64(..mean_ms));
        tokio::select! {
            _ = run.stop.changed() => break,
            () = tokio::time::sleep(pause) => {}
        }
        let name = run.pick(&mut rng).clone();
        let status = run.supervisor.status().into_iter().find(|s| s.name == name);
        let pid = status.filter(|s| s.state == State::Ready).and_then(|s| s.pid);
        let Some(target) = pid.and_then(|pid| Target::open(pid, &run.tag)) else {
            chaos.idle += 1;
            continue;
        };
        let what = match rng.u64(..100) {
            0..35 => {
                target.signal(Signal::KILL);
                chaos.kills += 1;
                "SIGKILL"
            }
            35..65 => {
                target.signal(Signal::STOP);
                chaos.freezes += 1;
                let hold = Duration::from_millis(50 + rng.u64(..1450));
                thaws.spawn(async move {
                    tokio::time::sleep(hold).await;
                    target.signal(Signal::CONT);
                });
                "SIGSTOP"
            }
            65..90 => {
                let _ = run.supervisor.restart_program(&name);
                chaos.restarts += 1;
                "restart"
            }
            _ => {
                if std::fs::remove_file(run.sockets.join(format!("{name}.sock"))).is_err() {
                    chaos.idle += 1;
                    continue;
                }
                chaos.sweeps += 1;
                "socket deleted"
            }
        };
        chaos.log.push((run.began.elapsed(), name, what));
    }
    // Every frozen process is thawed before the shutdown begins.
    while thaws.join_next().await.is_some() {}
    chaos
}

/// The highest figures seen while the run went on.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    host: Figures,
    children_rss_kib: u64,
    processes: usize,
    /// The host's resident memory once warm (after a tenth of the run) and at the end.
    warm_rss_kib: u64,
    last_rss_kib: u64,
    /// The longest a `/proc` scan took (it runs on the blocking pool, off the workers).
    slowest_scan: Duration,
}

async fn sample(tag: String, warm_after: Duration, mut stop: watch::Receiver<bool>) -> Peaks {
    let started = Instant::now();
    let mut peaks = Peaks::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return peaks,
            _ = tick.tick() => {}
        }
        n += 1;
        let whole = n.is_multiple_of(4);
        let tag = tag.clone();
        // Reading another process's /proc files can wait on its locks: never on a worker.
        let scan = tokio::task::spawn_blocking(move || {
            let scan_started = Instant::now();
            let now = figures();
            let tree = if whole { Some(tagged(&tag)) } else { None };
            let children_rss: u64 = tree.iter().flatten().map(|&pid| rss_of(pid)).sum();
            (now, tree.map(|t| t.len()), children_rss, scan_started.elapsed())
        });
        let Ok((now, processes, children_rss, took)) = scan.await else { continue };
        peaks.slowest_scan = peaks.slowest_scan.max(took);
        peaks.host.fds = peaks.host.fds.max(now.fds);
        peaks.host.threads = peaks.host.threads.max(now.threads);
        peaks.host.rss_kib = peaks.host.rss_kib.max(now.rss_kib);
        peaks.last_rss_kib = now.rss_kib;
        if peaks.warm_rss_kib == 0 && started.elapsed() >= warm_after {
            peaks.warm_rss_kib = now.rss_kib;
        }
        if let Some(processes) = processes {
            peaks.processes = peaks.processes.max(processes);
            peaks.children_rss_kib = peaks.children_rss_kib.max(children_rss);
        }
    }
}

/// How late a plain thread's 10 ms sleep ends, at worst, and when (since `began`). Outside the
/// runtime: if it stalls at the same moment as the runtime's timer, the whole process (or the
/// machine) stood still, not tokio's workers.
/// Also returns every stall over 20 ms: when it began and how long it lasted.
fn canary(began: Instant, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<Stalls> {
    std::thread::spawn(move || {
        let mut stalls = Stalls::default();
        while !stop.load(Ordering::Relaxed) {
            let due = Instant::now() + Duration::from_millis(10);
            std::thread::sleep(Duration::from_millis(10));
            let late = due.elapsed();
            if late > stalls.worst.0 {
                stalls.worst = (late, began.elapsed());
            }
            if late > Duration::from_millis(20) {
                stalls.windows.push((due, late));
            }
        }
        stalls
    })
}

/// What the canary thread saw.
#[derive(Debug, Default)]
struct Stalls {
    /// The longest, and when (since the run began).
    worst: (Duration, Duration),
    windows: Vec<(Instant, Duration)>,
}

impl Stalls {
    /// How much of `[start, start + took]` the process spent stalled.
    fn during(&self, start: Instant, took: Duration) -> Duration {
        let end = start + took;
        self.windows.iter().map(|&(from, late)| (from + late).min(end).saturating_duration_since(from.max(start))).sum()
    }
}

/// How late a 10 ms timer fires on the runtime, at worst, and when: a stalled worker or a
/// starved process shows here, apart from anything warren does.
async fn responsiveness(began: Instant, mut stop: watch::Receiver<bool>) -> (Duration, Duration) {
    let mut worst = (Duration::ZERO, Duration::ZERO);
    loop {
        let due = Instant::now() + Duration::from_millis(10);
        tokio::select! {
            _ = stop.changed() => return worst,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let late = due.elapsed();
        if late > worst.0 {
            worst = (late, began.elapsed());
        }
    }
}

fn program(options: &Options, i: usize, tag: &str) -> Program {
    let args = if i.is_multiple_of(2) {
        vec!["plugin".to_owned()]
    } else {
        vec!["plugin".to_owned(), "--grandchild".to_owned()]
    };
    let mut program = Program::new(format!("soak-{i}"), Invocation::Exec { program: options.child.clone(), args });
    program.env = vec![(TAG_VAR.to_owned(), tag.to_owned())];
    program.rpc = true;
    program.readiness = plan::ReadyCheck::Notify;
    program.ready_timeout = Duration::from_secs(10);
    program.restart = Restart::Always;
    program.backoff =
        Backoff { initial: Duration::from_millis(20), factor: 2.0, max: Duration::from_millis(500), jitter: 0.2 };
    // Chaos restarts far more often than any crash-loop limit allows; never give up.
    program.crash_loop = CrashLoop { max_starts: u32::MAX, window: Duration::from_secs(1) };
    program.reset_after = Duration::from_secs(1);
    program.grace = Duration::from_secs(2);
    program
}

async fn chaos(options: &Options, failures: &mut Vec<String>) {
    let start = steady().await;
    let tag = testkit::unique_tag();
    let lines = Arc::new(CountLines::default());
    let host = match Host::builder().log_sink(lines.clone()).build() {
        Ok(host) => host,
        Err(err) => return failures.push(format!("chaos: cannot build a host: {err}")),
    };
    let plan = match Plan::new((0..options.children).map(|i| program(options, i, &tag)).collect()) {
        Ok(plan) => plan,
        Err(err) => return failures.push(format!("chaos: {err}")),
    };
    let names: Arc<Vec<String>> = Arc::new(plan.programs().iter().map(|p| p.name.clone()).collect());
    let supervisor = Supervisor::start(plan, host.clone(), broadcast::channel(1024).0);
    let all_ready = async {
        while !supervisor.status().iter().all(|s| s.state == State::Ready) || supervisor.status().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(BOUND, all_ready).await.is_err() {
        failures.push(format!("chaos: not every program was ready within {BOUND:?}: {:?}", supervisor.status()));
    }
    println!("chaos: {} programs ready; running for {:?}", options.children, options.duration);

    let (stop_tx, stop) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let warm_after = (options.duration / 10).max(Duration::from_secs(10)).min(options.duration);
    let began = Instant::now();
    let sampler = tokio::spawn(sample(tag.clone(), warm_after, stop.clone()));
    let probe = tokio::spawn(responsiveness(began, stop.clone()));
    let canary_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canary = canary(began, Arc::clone(&canary_stop));
    let steal_before = steal();
    let run = Run {
        supervisor: supervisor.clone(),
        names: Arc::clone(&names),
        stop,
        began,
        tag: Arc::from(tag.as_str()),
        sockets: Arc::from(host.runtime_dir()),
    };
    let clients: Vec<_> = (0..options.clients)
        .map(|i| {
            let rng = rng(options.seed, i as u64 + 1);
            tokio::spawn(client_task(run.clone(), options.deadline, rng, progress.clone(), i))
        })
        .collect();
    let chaos_task = tokio::spawn(chaos_task(run, options.chaos, rng(options.seed, 0)));

    while began.elapsed() < options.duration {
        let left = options.duration - began.elapsed();
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        println!(
            "  {:>5.0} s: {} calls ok, {} failed, {} restarts so far",
            began.elapsed().as_secs_f64(),
            progress.ok.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            supervisor.status().iter().map(|s| u64::from(s.restarts)).sum::<u64>(),
        );
    }
    let _ = stop_tx.send(true);

    let mut tally = Tally::default();
    for client in clients {
        match tokio::time::timeout(BOUND, client).await {
            Ok(Ok(one)) => tally.merge(one),
            _ => failures.push("chaos: a client task did not end".to_owned()),
        }
    }
    let chaos = match tokio::time::timeout(BOUND, chaos_task).await {
        Ok(Ok(chaos)) => chaos,
        _ => {
            failures.push("chaos: the chaos task did not end".to_owned());
            Chaos::default()
        }
    };
    let peaks = tokio::time::timeout(BOUND, sampler).await.ok().and_then(Result::ok).unwrap_or_default();
    let (worst_lateness, worst_at) =
        tokio::time::timeout(BOUND, probe).await.ok().and_then(Result::ok).unwrap_or_default();
    canary_stop.store(true, Ordering::Relaxed);
    let stalls = canary.join().unwrap_or_default();
    let (canary_lateness, canary_at) = stalls.worst;
    // A call overdue by the wall clock only because the whole process stood still (the canary
    // thread, outside the runtime, stood still as long) is no failure of warren's.
    let unexplained: Vec<(Duration, Duration)> = tally
        .overdue
        .iter()
        .filter(|&&(start, took)| took.saturating_sub(stalls.during(start, took)) > options.deadline + HANG_MARGIN)
        .map(|&(start, took)| (start.duration_since(began), took))
        .collect();
    let stolen = steal().saturating_sub(steal_before);
    let restarts: u64 = supervisor.status().iter().map(|s| u64::from(s.restarts)).sum();

    let stopping = Instant::now();
    supervisor.shutdown();
    match tokio::time::timeout(BOUND, supervisor.finished()).await {
        Ok(false) => {}
        Ok(true) => failures.push(format!("chaos: the supervisor reports a failed program: {:?}", supervisor.status())),
        Err(_) => failures.push(format!("chaos: the shutdown did not finish within {BOUND:?}")),
    }
    let shutdown_took = stopping.elapsed();
    let not_stopped: Vec<String> = supervisor
        .status()
        .into_iter()
        .filter(|s| s.state != State::Stopped)
        .map(|s| format!("{} {}", s.name, s.state))
        .collect();
    drop(supervisor);
    drop(host);

    // Whatever is left a moment after the shutdown returned is a leak.
    let deadline = Instant::now() + Duration::from_secs(2);
    let (mut left, mut zombies) = (tagged(&tag), testkit::zombies());
    while (!left.is_empty() || !zombies.is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (left, zombies) = (tagged(&tag), testkit::zombies());
    }
    let end = steady().await;
    let calls = tally.ok + tally.failed_total();
    let seconds = options.duration.as_secs_f64().max(0.001);

    println!(
        "chaos: {:.0} s, {} programs, {} clients, deadline {:?}",
        seconds, options.children, options.clients, options.deadline
    );
    println!(
        "  calls: {calls} ({:.0}/s); ok {} ({:.3} %), slowest ok {:?}; slowest of all {:?}",
        calls as f64 / seconds,
        tally.ok,
        100.0 * tally.ok as f64 / calls.max(1) as f64,
        tally.max_ok,
        tally.max_any
    );
    for (kind, count) in &tally.failed {
        println!("  failed: {kind}: {count}");
    }
    println!(
        "  wrong replies: {}; hung (not ended {HANG_MARGIN:?} past the deadline by the runtime's clock): {}; \
         overdue by the wall clock: {} ({} not explained by a stall of the whole process); late (> {LATE_MARGIN:?} \
         past): {}; skipped while a program had no connection: {}",
        tally.wrong_reply,
        tally.hung,
        tally.overdue.len(),
        unexplained.len(),
        tally.late,
        tally.unavailable
    );
    println!(
        "  chaos: {} SIGKILL, {} SIGSTOP/SIGCONT, {} restart requests, {} socket files deleted, {} turns idle; \
         restarts counted by the supervisor: {restarts}",
        chaos.kills, chaos.freezes, chaos.restarts, chaos.sweeps, chaos.idle
    );
    println!(
        "  host: rss max {} KiB (warm {} KiB, end of load {} KiB), fds {} → {} (max {}), threads {} → {} (max {})",
        peaks.host.rss_kib,
        peaks.warm_rss_kib,
        peaks.last_rss_kib,
        start.fds,
        end.fds,
        peaks.host.fds,
        start.threads,
        end.threads,
        peaks.host.threads
    );
    println!(
        "  stalls: a 10 ms runtime timer fired at worst {worst_lateness:?} late ({:.1} s into the run), a plain \
         thread's 10 ms sleep {canary_lateness:?} late ({:.1} s); the plain thread stalled > 20 ms {} times, {:?} in \
         all; CPU steal {stolen:?}; slowest /proc scan {:?}",
        worst_at.as_secs_f64(),
        canary_at.as_secs_f64(),
        stalls.windows.len(),
        stalls.windows.iter().map(|w| w.1).sum::<Duration>(),
        peaks.slowest_scan
    );
    report_slow_calls(&mut tally.slow, &chaos.log);
    println!(
        "  children: up to {} processes, {} KiB resident in all; {} log lines",
        peaks.processes,
        peaks.children_rss_kib,
        lines.0.load(Ordering::Relaxed)
    );
    println!(
        "  shutdown: {:.2} s; left behind: {} processes {left:?}, {} zombies {zombies:?}; not stopped: {not_stopped:?}",
        shutdown_took.as_secs_f64(),
        left.len(),
        zombies.len()
    );

    if tally.hung > 0 {
        failures.push(format!("chaos: {} calls outlived their deadline by more than {HANG_MARGIN:?}", tally.hung));
    }
    if !unexplained.is_empty() {
        failures.push(format!(
            "chaos: {} calls ended more than {HANG_MARGIN:?} past their deadline while the process was running \
             (start, took): {:?}",
            unexplained.len(),
            &unexplained[..unexplained.len().min(10)]
        ));
    }
    if tally.wrong_reply > 0 {
        failures.push(format!("chaos: {} calls got another call's reply", tally.wrong_reply));
    }
    if tally.ok == 0 {
        failures.push("chaos: no call succeeded".to_owned());
    }
    if !left.is_empty() {
        failures.push(format!("chaos: processes left behind: {left:?}"));
    }
    if !zombies.is_empty() {
        failures.push(format!("chaos: zombies left behind: {zombies:?}"));
    }
    if !not_stopped.is_empty() {
        failures.push(format!("chaos: programs not stopped: {not_stopped:?}"));
    }
    if end.fds > start.fds {
        failures.push(format!("chaos: open descriptors grew from {} to {}", start.fds, end.fds));
    }
    if end.threads > start.threads {
        failures.push(format!("chaos: threads grew from {} to {}", start.threads, end.threads));
    }
    if peaks.warm_rss_kib > 0 && peaks.last_rss_kib > peaks.warm_rss_kib + options.rss_growth_kib {
        failures.push(format!(
            "chaos: resident memory grew from {} KiB (warm) to {} KiB under load",
            peaks.warm_rss_kib, peaks.last_rss_kib
        ));
    }
}

/// The slowest calls, each with what the chaos did to its program in the 3 s before it began.
fn report_slow_calls(slow: &mut [(Duration, String, Duration, String)], log: &[(Duration, String, &'static str)]) {
    slow.sort_by_key(|call| std::cmp::Reverse(call.2));
    for (at, name, took, how) in slow.iter().take(10) {
        let recent: Vec<String> = log
            .iter()
            .filter(|(when, who, _)| who == name && *when <= *at + *took && *when + Duration::from_secs(3) >= *at)
            .map(|(when, _, what)| format!("{what} at {:.3} s", when.as_secs_f64()))
            .collect();
        println!(
            "  slow call: {name} at {:.3} s took {took:?} ({how}); chaos on {name} around then: {recent:?}",
            at.as_secs_f64()
        );
    }
}

fn main() -> ExitCode {
    let options = match options(Args::parse()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "soak: seed {} (--seed to repeat), child {}, {} cycles, then {:?} of chaos",
        options.seed,
        options.child.display(),
        options.cycles,
        options.duration
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Idle blocking threads go quickly, so that the thread count can settle between phases.
        .thread_keep_alive(Duration::from_millis(200))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("soak: cannot start a runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let failures = runtime.block_on(async {
        let mut failures = Vec::new();
        cycles(&options, &mut failures).await;
        chaos(&options, &mut failures).await;
        failures
    });
    drop(runtime);
    if failures.is_empty() {
        println!("soak: PASS");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            println!("soak: FAIL: {failure}");
        }
        ExitCode::FAILURE
    }
}
