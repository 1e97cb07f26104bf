//! The closed loop every client runs: `callers` concurrent callers call back to back through a
//! warm-up, then through a fixed window in which each call that completes is counted and its
//! latency kept; CPU time of the client, of the server and of the whole machine is read at the
//! two edges of the window.
//!
//! The Go client (`bench/go/client`) does exactly the same and prints the same report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::proc;
use crate::workload::Workload;

/// A client's command line, the same for the Rust and the Go client:
/// `--impl NAME --socket PATH --workload W --callers C --warmup-ms MS --window-ms MS --server-pid PID`,
/// and for `wb-client warren` only, `--transport shm` (never passed to the Go client).
#[derive(Debug, Clone)]
pub struct Args {
    pub implementation: String,
    pub socket: PathBuf,
    pub workload: Workload,
    pub callers: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub server_pid: u32,
    /// `shm`: the warren client asks for shared memory and fails unless it got it.
    pub transport: Option<String>,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
        let mut args = args.into_iter();
        let (mut implementation, mut socket, mut workload, mut callers) = (None, None, None, 1);
        let (mut warmup, mut window, mut server_pid) = (Duration::from_millis(300), Duration::from_secs(1), 0);
        let mut transport = None;
        while let Some(flag) = args.next() {
            let value = args.next().with_context(|| format!("{flag} needs a value"))?;
            let ms = || value.parse::<u64>().map(Duration::from_millis).with_context(|| format!("{flag} {value}"));
            match flag.as_str() {
                "--impl" => implementation = Some(value.clone()),
                "--socket" => socket = Some(PathBuf::from(&value)),
                "--workload" => workload = Some(Workload::parse(&value).with_context(|| format!("workload {value}"))?),
                "--callers" => callers = value.parse().with_context(|| format!("--callers {value}"))?,
                "--warmup-ms" => warmup = ms()?,
                "--window-ms" => window = ms()?,
                "--server-pid" => server_pid = value.parse().with_context(|| format!("--server-pid {value}"))?,
                "--transport" => transport = Some(value.clone()),
                other => bail!("unknown flag {other}"),
            }
        }
        Ok(Args {
            implementation: implementation.context("--impl is required")?,
            socket: socket.context("--socket is required")?,
            workload: workload.context("--workload is required")?,
            callers: callers.max(1),
            warmup,
            window,
            server_pid,
            transport,
        })
    }

    pub fn to_argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "--impl".into(),
            self.implementation.clone(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--workload".into(),
            self.workload.name().into(),
            "--callers".into(),
            self.callers.to_string(),
            "--warmup-ms".into(),
            self.warmup.as_millis().to_string(),
            "--window-ms".into(),
            self.window.as_millis().to_string(),
            "--server-pid".into(),
            self.server_pid.to_string(),
        ];
        if let Some(transport) = &self.transport {
            argv.extend(["--transport".into(), transport.clone()]);
        }
        argv
    }
}

const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Which part of the run the callers are in (0 warm-up, 1 window, 2 stop); shared by all of them.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

impl Phase {
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed) == STOP
    }

    fn measuring(&self) -> bool {
        self.0.load(Ordering::Relaxed) == MEASURE
    }
}

/// One caller's count and latencies in the window.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { latencies: Vec::with_capacity(64 * 1024), errors: 0, first_error: None }
    }

    /// Records a call that started at `start` and has just completed, if the window is open.
    #[inline]
    pub fn completed(&mut self, phase: &Phase, start: Instant) {
        if phase.measuring() {
            let ns = start.elapsed().as_nanos();
            self.latencies.push(u32::try_from(ns).unwrap_or(u32::MAX));
        }
    }

    pub fn failed(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    client: u64,
    server: u64,
    machine: u64,
}

impl Snapshot {
    fn take(server_pid: u32) -> Snapshot {
        let machine = proc::machine_busy_ns();
        let client = proc::self_cpu_ns();
        let server = if server_pid == 0 { 0 } else { proc::process_cpu_ns(server_pid) };
        Snapshot { at: Instant::now(), client, server, machine }
    }
}

/// Drives the phases from the main thread: warm-up, window, stop.
#[derive(Debug)]
pub struct Timer {
    args: Args,
    start: Option<Snapshot>,
    end: Option<Snapshot>,
}

impl Timer {
    pub fn new(args: &Args) -> Timer {
        Timer { args: args.clone(), start: None, end: None }
    }

    /// Call when the warm-up has passed: opens the window.
    pub fn open(&mut self, phase: &Phase) {
        let snapshot = Snapshot::take(self.args.server_pid);
        phase.0.store(MEASURE, Ordering::SeqCst);
        self.start = Some(snapshot);
    }

    /// Call when the window has passed: closes it and tells the callers to stop. The CPU times
    /// are read first, while every thread that worked in the window still exists (a caller
    /// thread, or a server thread whose connection closes, takes its CPU time with it).
    pub fn close(&mut self, phase: &Phase) {
        self.end = Some(Snapshot::take(self.args.server_pid));
        phase.0.store(STOP, Ordering::SeqCst);
    }

    /// The blocking form of the whole sequence, for clients whose callers are threads.
    pub fn run_blocking(&mut self, phase: &Phase) {
        std::thread::sleep(self.args.warmup);
        self.open(phase);
        std::thread::sleep(self.args.window);
        self.close(phase);
    }

    pub fn report(&self, recorders: Vec<Recorder>) -> LoopReport {
        let (start, end) = match (self.start, self.end) {
            (Some(start), Some(end)) => (start, end),
            _ => panic!("report before the window closed"),
        };
        let errors = recorders.iter().map(|r| r.errors).sum();
        let first_error = recorders.iter().find_map(|r| r.first_error.clone());
        let mut latencies: Vec<u32> = recorders.into_iter().flat_map(|r| r.latencies).collect();
        latencies.sort_unstable();
        let calls = latencies.len() as u64;
        LoopReport {
            implementation: self.args.implementation.clone(),
            workload: self.args.workload.name().to_owned(),
            callers: self.args.callers as u64,
            calls,
            errors,
            first_error,
            window_ns: end.at.duration_since(start.at).as_nanos() as u64,
            p50_ns: percentile(&latencies, 0.50),
            p99_ns: percentile(&latencies, 0.99),
            client_cpu_ns: end.client.saturating_sub(start.client),
            server_cpu_ns: end.server.saturating_sub(start.server),
            machine_busy_ns: end.machine.saturating_sub(start.machine),
            bytes_per_call: self.args.workload.size() as u64,
            client_spins: 0,
            client_spin_hits: 0,
        }
    }
}

/// Nearest-rank percentile of sorted nanoseconds.
pub fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    u64::from(sorted[rank - 1])
}

/// What a client prints as one JSON line when it is done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopReport {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub workload: String,
    pub callers: u64,
    /// Calls completed inside the window.
    pub calls: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub window_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub client_cpu_ns: u64,
    pub server_cpu_ns: u64,
    /// Busy time of the whole machine (all CPUs) over the window, from `/proc/stat`.
    pub machine_busy_ns: u64,
    pub bytes_per_call: u64,
    /// Shared memory: spins the client's connection began, and those that found what they
    /// waited for (warm-up included), docs/SHM.md §5.
    #[serde(default)]
    pub client_spins: u64,
    #[serde(default)]
    pub client_spin_hits: u64,
}

impl LoopReport {
    pub fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / (self.window_ns as f64 / 1e9)
    }

    /// Client + server CPU time per call, in ns.
    pub fn cpu_per_call_ns(&self) -> f64 {
        (self.client_cpu_ns + self.server_cpu_ns) as f64 / self.calls.max(1) as f64
    }

    /// Payload MiB/s one way.
    pub fn mib_per_sec(&self) -> f64 {
        self.calls_per_sec() * self.bytes_per_call as f64 / (1024.0 * 1024.0)
    }

    /// CPU used by everything else on the machine during the window, in CPUs.
    pub fn others_cpus(&self) -> f64 {
        let ours = self.client_cpu_ns + self.server_cpu_ns;
        self.machine_busy_ns.saturating_sub(ours) as f64 / self.window_ns.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 50);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn arguments_round_trip() {
        let args = Args {
            implementation: "warren".into(),
            socket: "/tmp/x.sock".into(),
            workload: Workload::Echo4k,
            callers: 64,
            warmup: Duration::from_millis(20),
            window: Duration::from_millis(300),
            server_pid: 42,
            transport: Some("shm".into()),
        };
        let parsed = Args::parse(args.to_argv()).expect("parses");
        assert_eq!(parsed.to_argv(), args.to_argv());
    }
}
