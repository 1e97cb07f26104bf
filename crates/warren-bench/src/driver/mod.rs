//! The driver behind `bench/run-all` (`wb-run`): runs every implementation through every
//! workload, several rounds, implementations interleaved within a round (their order rotating
//! from round to round), and writes the figures — medians over the rounds with their spread,
//! ratios taken per round — into `BENCHMARKS.md`.

pub mod report;
pub mod supervisor;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::closed_loop::{Args, LoopReport};
use crate::proc;
use crate::workload::{GET_ID, Todo, Workload};
use supervisor::{Program, Supervisord};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    pub rounds: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub callers: Vec<usize>,
    pub spawns: usize,
    pub many: Vec<usize>,
    pub log_lines: u64,
    /// Where the Rust binaries are (`target/bench-release`).
    pub bin: PathBuf,
    /// Where the Go binaries are (`target/bench-go`); Go peers are skipped if absent.
    pub go: PathBuf,
    /// supervisord from the venv; its comparisons are skipped if absent.
    pub supervisord: Option<PathBuf>,
    /// The Markdown file whose generated section is (re)written.
    pub out: PathBuf,
    /// Every sample, as JSON.
    pub json: Option<PathBuf>,
    /// Which parts to run: m1 (with m2), m3, m4, m5, m6.
    pub only: Vec<String>,
    pub command_line: String,
}

impl Config {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Config> {
        let args: Vec<String> = args.into_iter().collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut config = Config {
            quick,
            rounds: if quick { 1 } else { 3 },
            warmup: Duration::from_millis(if quick { 50 } else { 300 }),
            window: Duration::from_millis(if quick { 100 } else { 1000 }),
            callers: vec![1, 16, 64],
            spawns: if quick { 5 } else { 50 },
            many: if quick { vec![10] } else { vec![10, 100] },
            log_lines: if quick { 20_000 } else { 1_000_000 },
            bin: PathBuf::from("target/bench-release"),
            go: PathBuf::from("target/bench-go"),
            supervisord: None,
            out: PathBuf::from("BENCHMARKS.md"),
            json: None,
            only: vec!["m1".into(), "m3".into(), "m4".into(), "m5".into(), "m6".into()],
            // bench/run-all says how it was invoked; its own flags (paths) are not news.
            command_line: std::env::var("WB_COMMAND")
                .unwrap_or_else(|_| format!("wb-run {}", args.join(" ")))
                .trim()
                .to_owned(),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "--quick" {
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let number = || value.parse::<u64>().with_context(|| format!("{flag} {value}"));
            match flag.as_str() {
                "--rounds" => config.rounds = number()? as usize,
                "--warmup-ms" => config.warmup = Duration::from_millis(number()?),
                "--window-ms" => config.window = Duration::from_millis(number()?),
                "--spawns" => config.spawns = number()? as usize,
                "--log-lines" => config.log_lines = number()?,
                "--bin" => config.bin = value.into(),
                "--go" => config.go = value.into(),
                "--supervisord" => config.supervisord = Some(value.into()).filter(|p: &PathBuf| p.exists()),
                "--out" => config.out = value.into(),
                "--json" => config.json = Some(value.into()),
                "--only" => config.only = value.split(',').map(str::to_owned).collect(),
                other => bail!("unknown flag {other}"),
            }
        }
        // Absolute, since some programs run with another working directory.
        for dir in [&mut config.bin, &mut config.go] {
            if let Ok(absolute) = std::fs::canonicalize(&*dir) {
                *dir = absolute;
            }
        }
        Ok(config)
    }

    fn runs(&self, part: &str) -> bool {
        self.only.iter().any(|p| p == part)
    }
}

/// The implementations of the RPC workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Imp {
    Raw,
    Warren,
    Tarpc,
    GoGob,
    GoJson,
}

impl Imp {
    pub const ALL: [Imp; 5] = [Imp::Raw, Imp::Warren, Imp::Tarpc, Imp::GoGob, Imp::GoJson];

    pub fn name(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::Warren => "warren",
            Imp::Tarpc => "tarpc",
            Imp::GoGob => "go-gob",
            Imp::GoJson => "go-json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Imp::Raw => "raw (std, blocking)",
            Imp::Warren => "**warren**",
            Imp::Tarpc => "tarpc (bincode)",
            Imp::GoGob => "Go net/rpc (gob, HTTP)",
            Imp::GoJson => "Go net/rpc/jsonrpc",
        }
    }

    fn server(self, config: &Config, socket: &Path) -> Vec<String> {
        let s = socket.display().to_string();
        let bin = |name: &str| config.bin.join(name).display().to_string();
        let go = config.go.join("netrpc-server").display().to_string();
        match self {
            Imp::Raw => vec![bin("wb-raw-server"), s],
            Imp::Warren => vec![bin("wb-child"), "serve".into(), s],
            Imp::Tarpc => vec![bin("wb-tarpc-server"), s],
            Imp::GoGob => vec![go, "-codec".into(), "gob".into(), s],
            Imp::GoJson => vec![go, "-codec".into(), "json".into(), s],
        }
    }

    fn client(self, config: &Config) -> (PathBuf, &'static str) {
        match self {
            Imp::Raw | Imp::Warren | Imp::Tarpc => (config.bin.join("wb-client"), self.name()),
            Imp::GoGob => (config.go.join("netrpc-client"), "gob"),
            Imp::GoJson => (config.go.join("netrpc-client"), "json"),
        }
    }
}

/// Where the two processes of a cell run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pin {
    /// Wherever the scheduler puts them.
    None,
    /// Server and client both on CPU 0 (`taskset -c 0`).
    Same,
    /// Server on CPU 0, client on CPU 1.
    Split,
}

impl Pin {
    fn cpus(self) -> (Option<u32>, Option<u32>) {
        match self {
            Pin::None => (None, None),
            Pin::Same => (Some(0), Some(0)),
            Pin::Split => (Some(0), Some(1)),
        }
    }
}

fn command(argv: &[String], cpu: Option<u32>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    }
}

/// A server process that stops when its stdin closes; killed on drop if it has not.
#[derive(Debug)]
struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    socket: PathBuf,
}

impl ServerProc {
    fn start(argv: &[String], cpu: Option<u32>, socket: &Path) -> anyhow::Result<ServerProc> {
        let mut child = command(argv, cpu)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", argv[0]))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("server stdout")?;
        let mut server = ServerProc { child, stdin, socket: socket.to_owned() };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.trim() == "ready" => Ok(server),
            Ok(line) => {
                server.kill();
                bail!("{} said {line:?} instead of ready", argv[0])
            }
            Err(_) => {
                server.kill();
                bail!("{} was not ready within 15 s", argv[0])
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Closes its stdin and waits for it; true if it exited cleanly and removed its socket.
    fn stop(mut self) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let clean = status.success() && !self.socket.exists();
                    let _ = std::fs::remove_file(&self.socket);
                    return clean;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    self.kill();
                    return false;
                }
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs a command to completion (bounded), returning its stdout's last line.
fn run_to_end(mut cmd: Command, bound: Duration) -> anyhow::Result<String> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
        text
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not finish within {bound:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let text = reader.join().unwrap_or_default();
    ensure!(status.success(), "exited with {status}");
    text.lines().last().map(str::to_owned).context("printed nothing")
}

/// Samples: figure → implementation → (round, value).
#[derive(Debug, Default, serde::Serialize)]
pub struct Store {
    pub values: BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>>,
    pub failures: Vec<String>,
    /// Per round: load average at start and end, and the median CPU that other processes used
    /// during the RPC windows of that round.
    pub rounds: Vec<RoundInfo>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RoundInfo {
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub others_cpus: Vec<f64>,
    pub seconds: f64,
}

impl Store {
    pub fn put(&mut self, figure: &str, imp: &str, round: usize, value: f64) {
        self.values.entry(figure.to_owned()).or_default().entry(imp.to_owned()).or_default().push((round, value));
    }

    pub fn get(&self, figure: &str, imp: &str) -> Vec<f64> {
        self.values
            .get(figure)
            .and_then(|m| m.get(imp))
            .map(|v| v.iter().map(|(_, x)| *x).collect())
            .unwrap_or_default()
    }

    /// `a / b` for each round in which both were measured.
    pub fn ratio(&self, figure: &str, a: &str, b: &str) -> Vec<f64> {
        self.ratio_of(figure, a, figure, b)
    }

    pub fn ratio_of(&self, fa: &str, a: &str, fb: &str, b: &str) -> Vec<f64> {
        let (Some(xs), Some(ys)) =
            (self.values.get(fa).and_then(|m| m.get(a)), self.values.get(fb).and_then(|m| m.get(b)))
        else {
            return Vec::new();
        };
        xs.iter()
            .filter_map(|(round, x)| ys.iter().find(|(r, _)| r == round).map(|(_, y)| x / y))
            .filter(|r| r.is_finite())
            .collect()
    }
}

pub fn m1_key(workload: Workload, callers: usize, metric: &str) -> String {
    format!("m1/{}/c{callers}/{metric}", workload.name())
}

pub fn m3_key(pin: Pin, metric: &str) -> String {
    format!("m3/{}/{metric}", if pin == Pin::Same { "same" } else { "split" })
}

struct Runner<'a> {
    config: &'a Config,
    dir: PathBuf,
    imps: Vec<Imp>,
    store: Store,
}

impl Runner<'_> {
    fn socket(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn fail(&mut self, what: String, err: &anyhow::Error) {
        let message = format!("{what}: {err:#}");
        eprintln!("wb-run: FAILED {message}");
        self.store.failures.push(message);
    }

    /// One closed-loop cell: a server process, a client process, the server stopped.
    fn cell(&mut self, imp: Imp, workload: Workload, callers: usize, pin: Pin) -> anyhow::Result<(LoopReport, u64)> {
        let socket = self.socket(&format!("{}.sock", imp.name()));
        let (server_cpu, client_cpu) = pin.cpus();
        let server = ServerProc::start(&imp.server(self.config, &socket), server_cpu, &socket)?;
        let args = Args {
            implementation: imp.client(self.config).1.to_owned(),
            socket: socket.clone(),
            workload,
            callers,
            warmup: self.config.warmup,
            window: self.config.window,
            server_pid: server.pid(),
        };
        let (program, _) = imp.client(self.config);
        let mut argv = vec![program.display().to_string()];
        argv.extend(args.to_argv());
        let bound = self.config.warmup + self.config.window + Duration::from_secs(60);
        let line = run_to_end(command(&argv, client_cpu), bound).with_context(|| format!("{} client", imp.name()));
        let rss = proc::rss_kib(server.pid()).unwrap_or(0);
        let clean = server.stop();
        let report: LoopReport = serde_json::from_str(&line?).context("the client's report")?;
        ensure!(
            report.errors == 0,
            "{} calls failed, first: {}",
            report.errors,
            report.first_error.unwrap_or_default()
        );
        // A quick (smoke) run's window may be too short for the slowest peers' 1 MiB calls.
        ensure!(report.calls > 0 || self.config.quick, "no call completed in the window");
        ensure!(clean, "the server did not stop cleanly (exit code, or socket left)");
        Ok((report, rss))
    }

    fn m1(&mut self, round: usize, others: &mut Vec<f64>) {
        for workload in Workload::ALL {
            for &callers in &self.config.callers.clone() {
                for imp in rotated(&self.imps, round) {
                    let what = format!("M1 {} c={callers} {}", workload.name(), imp.name());
                    match self.cell(imp, workload, callers, Pin::None) {
                        Ok((r, rss)) => {
                            let key = |m: &str| m1_key(workload, callers, m);
                            let s = &mut self.store;
                            s.put(&key("calls_s"), imp.name(), round, r.calls_per_sec());
                            s.put(&key("p50_us"), imp.name(), round, r.p50_ns as f64 / 1e3);
                            s.put(&key("p99_us"), imp.name(), round, r.p99_ns as f64 / 1e3);
                            s.put(&key("cpu_us"), imp.name(), round, r.cpu_per_call_ns() / 1e3);
                            s.put(&key("calls"), imp.name(), round, r.calls as f64);
                            if workload != Workload::Tiny {
                                s.put(&key("mib_s"), imp.name(), round, r.mib_per_sec());
                            }
                            if workload == Workload::Tiny && callers == 1 {
                                s.put("m6/server_rss_mb", imp.name(), round, rss as f64 * 1.024 / 1000.0);
                            }
                            others.push(r.others_cpus());
                            eprintln!(
                                "wb-run: r{round} {what}: {:.0} calls/s p50 {:.1} µs cpu {:.2} µs/call (others {:.2} CPU)",
                                r.calls_per_sec(),
                                r.p50_ns as f64 / 1e3,
                                r.cpu_per_call_ns() / 1e3,
                                r.others_cpus()
                            );
                        }
                        Err(err) => self.fail(format!("round {round} {what}"), &err),
                    }
                }
            }
        }
    }

    fn m3(&mut self, round: usize, others: &mut Vec<f64>) {
        for pin in [Pin::Same, Pin::Split] {
            for imp in rotated(&self.imps, round) {
                let what = format!("M3 {pin:?} {}", imp.name());
                match self.cell(imp, Workload::Tiny, 1, pin) {
                    Ok((r, _)) => {
                        let s = &mut self.store;
                        s.put(&m3_key(pin, "p50_us"), imp.name(), round, r.p50_ns as f64 / 1e3);
                        s.put(&m3_key(pin, "p99_us"), imp.name(), round, r.p99_ns as f64 / 1e3);
                        s.put(&m3_key(pin, "calls_s"), imp.name(), round, r.calls_per_sec());
                        s.put(&m3_key(pin, "cpu_us"), imp.name(), round, r.cpu_per_call_ns() / 1e3);
                        others.push(r.others_cpus());
                        eprintln!("wb-run: r{round} {what}: p50 {:.1} µs", r.p50_ns as f64 / 1e3);
                    }
                    Err(err) => self.fail(format!("round {round} {what}"), &err),
                }
            }
        }
    }

    fn host(&self, args: &[String]) -> anyhow::Result<Value> {
        let mut cmd = Command::new(self.config.bin.join("wb-host"));
        cmd.args(args);
        let line = run_to_end(cmd, Duration::from_secs(180))?;
        Ok(serde_json::from_str(&line)?)
    }

    fn child(&self) -> String {
        self.config.bin.join("wb-child").display().to_string()
    }

    fn m4(&mut self, round: usize) {
        let spawns = self.config.spawns.to_string();
        let kinds = ["warren", "raw", "plain-wb-child"];
        for k in 0..kinds.len() {
            let kind = kinds[(k + round) % kinds.len()];
            let args: Vec<String> = match kind {
                "warren" => vec!["lifecycle".into(), self.child(), spawns.clone()],
                "raw" => {
                    vec!["plain".into(), self.config.bin.join("wb-raw-server").display().to_string(), spawns.clone()]
                }
                _ => vec![
                    "plain".into(),
                    self.child(),
                    spawns.clone(),
                    "--warren".into(),
                    "serve".into(),
                    "--current-thread".into(),
                ],
            };
            match self.host(&args) {
                Ok(v) => {
                    let ms = |name: &str, p: f64| quantile_ms(&v[name], p);
                    let s = &mut self.store;
                    for (name, key) in
                        [("first_reply_ns", "m4/first_reply"), ("stop_ns", "m4/stop"), ("ready_ns", "m4/ready")]
                    {
                        if let (Some(p50), Some(p90)) = (ms(name, 0.5), ms(name, 0.9)) {
                            s.put(&format!("{key}_p50_ms"), kind, round, p50);
                            s.put(&format!("{key}_p90_ms"), kind, round, p90);
                        }
                    }
                    let unclean = v["unclean"].as_f64().unwrap_or(f64::NAN);
                    s.put("m4/unclean", kind, round, unclean);
                    if unclean != 0.0 {
                        s.failures.push(format!(
                            "round {round} M4 {kind}: {unclean} stops not clean (exit code, process or socket left)"
                        ));
                    }
                    if let Some(rss) = v["child_rss_kib"].as_array().and_then(|a| a.first()).and_then(Value::as_f64) {
                        s.put("m6/child_rss_mb", "warren", round, rss * 1.024 / 1000.0);
                    }
                    eprintln!(
                        "wb-run: r{round} M4 {kind}: first reply p50 {:.2} ms",
                        ms("first_reply_ns", 0.5).unwrap_or(0.0)
                    );
                }
                Err(err) => self.fail(format!("round {round} M4 {kind}"), &err),
            }
        }
    }

    fn many_plain(&mut self, round: usize, n: usize) {
        match self.host(&["plain-many".into(), self.child(), n.to_string()]) {
            Ok(v) => {
                let s = &mut self.store;
                let ms = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) / 1e6;
                s.put(&format!("m4x{n}/all_ready_ms"), "plain", round, ms("all_ready_ns"));
                s.put(&format!("m4x{n}/all_replied_ms"), "plain", round, ms("all_replied_ns"));
                s.put(&format!("m4x{n}/all_stopped_ms"), "plain", round, ms("all_stopped_ns"));
                eprintln!(
                    "wb-run: r{round} M4x{n} plain: replied {:.1} ms, stopped {:.1} ms",
                    ms("all_replied_ns"),
                    ms("all_stopped_ns")
                );
            }
            Err(err) => self.fail(format!("round {round} M4x{n} plain"), &err),
        }
    }

    fn many_warren(&mut self, round: usize, n: usize) {
        match self.host(&["many".into(), self.child(), n.to_string()]) {
            Ok(v) => {
                let s = &mut self.store;
                let ms = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) / 1e6;
                s.put(&format!("m4x{n}/all_ready_ms"), "warren", round, ms("all_ready_ns"));
                s.put(&format!("m4x{n}/all_replied_ms"), "warren", round, ms("all_replied_ns"));
                s.put(&format!("m4x{n}/all_stopped_ms"), "warren", round, ms("all_stopped_ns"));
                let clean = v["all_gone"].as_bool() == Some(true) && v["unclean"].as_u64() == Some(0);
                s.put(&format!("m4x{n}/clean"), "warren", round, f64::from(u8::from(clean)));
                if !clean {
                    s.failures
                        .push(format!("round {round} M4x{n} warren: a child did not stop cleanly or left a socket"));
                }
                let mb = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) * 1.024 / 1000.0;
                s.put(&format!("m6/host_rss_{n}_mb"), "warren", round, mb("host_rss_kib"));
                s.put(&format!("m6/watchdog_rss_{n}_mb"), "warren", round, mb("watchdog_rss_kib"));
                s.put(&format!("m6/child_rss_{n}_mb"), "warren", round, mb("child_rss_kib_median"));
                s.put(&format!("m6/child_pss_{n}_mb"), "warren", round, mb("child_pss_kib_median"));
                s.put(&format!("m6/child_private_{n}_mb"), "warren", round, mb("child_private_kib_median"));
                s.put(&format!("m6/host_pss_{n}_mb"), "warren", round, mb("host_pss_kib"));
                s.put(&format!("m6/host_private_{n}_mb"), "warren", round, mb("host_private_kib"));
                eprintln!(
                    "wb-run: r{round} M4x{n} warren: ready {:.1} ms, stopped {:.1} ms",
                    ms("all_ready_ns"),
                    ms("all_stopped_ns")
                );
            }
            Err(err) => self.fail(format!("round {round} M4x{n} warren"), &err),
        }
    }

    /// `warren up` (the command) with `n` copies of the child: until it prints "all programs are
    /// up", its memory, then SIGINT (Ctrl-C) until it has stopped them all and exited.
    fn many_warren_up(&mut self, round: usize, n: usize) {
        let result = (|| -> anyhow::Result<()> {
            let warren = self.config.bin.join("warren");
            ensure!(warren.exists(), "{} is not built", warren.display());
            let dir = self.dir.join(format!("up{n}"));
            std::fs::create_dir_all(&dir)?;
            let mut toml = String::new();
            for i in 0..n {
                let _ = writeln!(toml, "[programs.c{i}]\ncommand = {:?}\nready = \"warren\"\n", self.child());
            }
            let file = dir.join("warren.toml");
            std::fs::write(&file, toml)?;
            let start = Instant::now();
            let mut up = Command::new(&warren)
                .arg("up")
                .arg("-f")
                .arg(&file)
                .current_dir(&dir)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let guard = KillOnDrop(up.id());
            let stdout = up.stdout.take().context("stdout")?;
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("all programs are up") {
                        let _ = tx.send(());
                    }
                }
            });
            rx.recv_timeout(Duration::from_secs(60)).context("`warren up` never said all programs are up")?;
            let all_ready = start.elapsed();
            let rss = proc::rss_kib(up.id()).unwrap_or(0);
            let (pss, private) = proc::pss_and_private_kib(up.id()).unwrap_or_default();
            let status = Command::new(&warren).args(["status", "--json"]).current_dir(&dir).output()?;
            let rows: Vec<Value> = serde_json::from_slice(&status.stdout).context("`warren status --json`")?;
            let pids: Vec<u32> = rows.iter().filter_map(|r| r["pid"].as_u64()).map(|p| p as u32).collect();
            ensure!(pids.len() == n, "`warren status` lists {} running programs of {n}", pids.len());
            let start = Instant::now();
            let pid = rustix::process::Pid::from_raw(up.id() as i32).context("pid")?;
            rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let exit = loop {
                if let Some(exit) = up.try_wait()? {
                    break exit;
                }
                ensure!(Instant::now() < deadline, "`warren up` still running 60 s after SIGINT");
                std::thread::sleep(Duration::from_micros(200));
            };
            let all_stopped = start.elapsed();
            std::mem::forget(guard);
            ensure!(exit.success(), "`warren up` exited with {exit}");
            ensure!(pids.iter().all(|&p| !proc::exists(p)), "children outlived `warren up`");
            let s = &mut self.store;
            s.put(&format!("m4x{n}/all_ready_ms"), "warren-up", round, all_ready.as_secs_f64() * 1e3);
            s.put(&format!("m4x{n}/all_stopped_ms"), "warren-up", round, all_stopped.as_secs_f64() * 1e3);
            let mb = |kib: u64| kib as f64 * 1.024 / 1000.0;
            s.put(&format!("m6/host_rss_{n}_mb"), "warren-up", round, mb(rss));
            s.put(&format!("m6/host_pss_{n}_mb"), "warren-up", round, mb(pss));
            s.put(&format!("m6/host_private_{n}_mb"), "warren-up", round, mb(private));
            eprintln!(
                "wb-run: r{round} M4x{n} warren up: ready {:.1} ms, stopped {:.1} ms, RSS {:.1} MB",
                all_ready.as_secs_f64() * 1e3,
                all_stopped.as_secs_f64() * 1e3,
                mb(rss)
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M4x{n} warren up"), &err);
        }
    }

    fn many_supervisord(&mut self, round: usize, n: usize, binary: &Path) {
        let result = (|| -> anyhow::Result<()> {
            let dir = self.dir.join(format!("sv{n}"));
            let sockets: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("c{i}.sock"))).collect();
            let programs: Vec<Program> = sockets
                .iter()
                .enumerate()
                .map(|(i, sock)| Program {
                    name: format!("c{i}"),
                    command: format!("{} serve --signals-only --current-thread {}", self.child(), sock.display()),
                    stdout_logfile: None,
                })
                .collect();
            let sv = Supervisord::start(binary, &dir, &programs)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let start = Instant::now();
            sv.start_all()?;
            // No readiness protocol: ready is when the socket answers Task.Get.
            runtime.block_on(async {
                let mut pending: Vec<&PathBuf> = sockets.iter().collect();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !pending.is_empty() {
                    let mut still = Vec::new();
                    for sock in pending {
                        let answered = match warren_rpc::Client::connect(warren_rpc::Endpoint::unix(sock)).await {
                            Ok(client) => {
                                let ok = client.call::<_, Todo>("Task.Get", GET_ID).await.is_ok_and(|t| t.id == GET_ID);
                                client.close().await;
                                ok
                            }
                            Err(_) => false,
                        };
                        if !answered {
                            still.push(sock);
                        }
                    }
                    pending = still;
                    ensure!(Instant::now() < deadline, "{} children never answered", pending.len());
                    if !pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                anyhow::Ok(())
            })?;
            let all_replied = start.elapsed();
            let supervisord_rss = proc::rss_kib(sv.pid()).unwrap_or(0);
            let (supervisord_pss, _) = proc::pss_and_private_kib(sv.pid()).unwrap_or_default();
            let pids = sv.pids()?;
            let mut child_rss: Vec<u64> = pids.iter().filter_map(|&p| proc::rss_kib(p)).collect();
            child_rss.sort_unstable();
            let start = Instant::now();
            sv.stop_all()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while pids.iter().any(|&p| proc::exists(p)) || sockets.iter().any(|s| s.exists()) {
                ensure!(Instant::now() < deadline, "children still there 60 s after stopAllProcesses");
                std::thread::sleep(Duration::from_micros(200));
            }
            let all_stopped = start.elapsed();
            sv.shutdown()?;
            let s = &mut self.store;
            s.put(&format!("m4x{n}/all_replied_ms"), "supervisord", round, all_replied.as_secs_f64() * 1e3);
            s.put(&format!("m4x{n}/all_stopped_ms"), "supervisord", round, all_stopped.as_secs_f64() * 1e3);
            s.put(&format!("m6/host_rss_{n}_mb"), "supervisord", round, supervisord_rss as f64 * 1.024 / 1000.0);
            s.put(&format!("m6/host_pss_{n}_mb"), "supervisord", round, supervisord_pss as f64 * 1.024 / 1000.0);
            if let Some(rss) = child_rss.get(child_rss.len() / 2) {
                s.put(&format!("m6/child_rss_{n}_mb"), "supervisord", round, *rss as f64 * 1.024 / 1000.0);
            }
            eprintln!(
                "wb-run: r{round} M4x{n} supervisord: replied {:.1} ms, stopped {:.1} ms",
                all_replied.as_secs_f64() * 1e3,
                all_stopped.as_secs_f64() * 1e3
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M4x{n} supervisord"), &err);
        }
    }

    fn logs_warren(&mut self, round: usize) {
        match self.host(&["logs".into(), self.child(), self.config.log_lines.to_string()]) {
            Ok(v) => {
                let lines = v["lines"].as_f64().unwrap_or(f64::NAN);
                let secs = v["first_to_last_ns"].as_f64().unwrap_or(f64::NAN) / 1e9;
                let s = &mut self.store;
                s.put("m5/lines_s", "warren", round, (lines - 1.0) / secs);
                s.put("m5/cpu_ns_line", "warren", round, v["host_cpu_ns"].as_f64().unwrap_or(f64::NAN) / lines);
                let lost = v["lost"].as_f64().unwrap_or(f64::NAN) + v["out_of_order"].as_f64().unwrap_or(f64::NAN);
                s.put("m5/lost", "warren", round, lost);
                eprintln!("wb-run: r{round} M5 warren: {:.0} lines/s, lost {lost}", (lines - 1.0) / secs);
            }
            Err(err) => self.fail(format!("round {round} M5 warren"), &err),
        }
    }

    fn logs_supervisord(&mut self, round: usize, binary: &Path) {
        let lines = self.config.log_lines;
        let result = (|| -> anyhow::Result<()> {
            let dir = self.dir.join("svlog");
            let log = dir.join("logger.out");
            let programs = [Program {
                name: "logger".into(),
                command: format!("{} log {lines}", self.child()),
                stdout_logfile: Some(log.clone()),
            }];
            let sv = Supervisord::start(binary, &dir, &programs)?;
            let expected = lines * 100;
            let cpu0 = proc::process_cpu_ns(sv.pid());
            sv.start_process("logger")?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut first = None;
            let mut last_size = 0;
            let mut last_change = Instant::now();
            let (t_last, cpu_last) = loop {
                let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
                let now = Instant::now();
                if size > 0 && first.is_none() {
                    first = Some(now);
                }
                if size != last_size {
                    (last_size, last_change) = (size, now);
                }
                if size >= expected || now > deadline || (size > 0 && now - last_change > Duration::from_secs(5)) {
                    break (last_change, proc::process_cpu_ns(sv.pid()));
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            sv.shutdown()?;
            let text = std::fs::read(&log).unwrap_or_default();
            let received = text.split(|&b| b == b'\n').filter(|l| l.len() == 99).count() as u64;
            let secs = (t_last - first.unwrap_or(t_last)).as_secs_f64();
            let s = &mut self.store;
            s.put("m5/lines_s", "supervisord", round, (received.max(1) - 1) as f64 / secs);
            s.put(
                "m5/cpu_ns_line",
                "supervisord",
                round,
                cpu_last.saturating_sub(cpu0) as f64 / received.max(1) as f64,
            );
            s.put("m5/lost", "supervisord", round, lines.saturating_sub(received) as f64);
            eprintln!(
                "wb-run: r{round} M5 supervisord: {:.0} lines/s, received {received}",
                (received.max(1) - 1) as f64 / secs
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M5 supervisord"), &err);
        }
    }
}

/// SIGKILLs a process if dropped before being forgotten (a failed measurement must not leave
/// a `warren up` running).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// `items` rotated left by `round`: every implementation goes first in some round.
fn rotated<T: Copy>(items: &[T], round: usize) -> Vec<T> {
    let n = items.len().max(1);
    (0..items.len()).map(|i| items[(i + round) % n]).collect()
}

/// The `p` quantile of an array of nanoseconds, in ms.
fn quantile_ms(values: &Value, p: f64) -> Option<f64> {
    let mut xs: Vec<f64> = values.as_array()?.iter().filter_map(Value::as_f64).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some(xs[rank - 1] / 1e6)
}

/// Runs everything `config` asks for and writes the report. Returns the number of failures.
pub fn run(config: &Config) -> anyhow::Result<usize> {
    let dir = std::env::temp_dir().join(format!("wb-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut imps = vec![Imp::Raw, Imp::Warren, Imp::Tarpc];
    let mut notes = Vec::new();
    if config.go.join("netrpc-server").exists() && config.go.join("netrpc-client").exists() {
        imps.extend([Imp::GoGob, Imp::GoJson]);
    } else {
        notes.push(format!("Go peers skipped: no binaries in {}", config.go.display()));
    }
    if config.supervisord.is_none() {
        notes.push("supervisord comparisons skipped: no supervisord given".to_owned());
    }
    let mut runner = Runner { config, dir: dir.clone(), imps, store: Store::default() };
    runner.store.notes = notes;
    let env = report::Environment::collect(config);
    for round in 0..config.rounds {
        let started = Instant::now();
        let mut info = RoundInfo { load_start: proc::loadavg(), ..RoundInfo::default() };
        eprintln!("wb-run: round {} of {} (load {:?})", round + 1, config.rounds, info.load_start);
        let mut others = Vec::new();
        if config.runs("m1") {
            runner.m1(round, &mut others);
        }
        if config.runs("m3") {
            runner.m3(round, &mut others);
        }
        if config.runs("m4") {
            runner.m4(round);
        }
        if config.runs("m4") || config.runs("m6") {
            for &n in &config.many {
                // Interleaved, the order rotating from round to round.
                for k in 0..4 {
                    match (k + round) % 4 {
                        0 => runner.many_warren(round, n),
                        1 => runner.many_plain(round, n),
                        2 => runner.many_warren_up(round, n),
                        _ => {
                            if let Some(sv) = &config.supervisord {
                                runner.many_supervisord(round, n, sv);
                            }
                        }
                    }
                }
            }
        }
        if config.runs("m5") {
            if round % 2 == 1
                && let Some(sv) = &config.supervisord
            {
                runner.logs_supervisord(round, sv);
            }
            runner.logs_warren(round);
            if round % 2 == 0
                && let Some(sv) = &config.supervisord
            {
                runner.logs_supervisord(round, sv);
            }
        }
        info.load_end = proc::loadavg();
        info.others_cpus = others;
        info.seconds = started.elapsed().as_secs_f64();
        runner.store.rounds.push(info);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = runner.store;
    if let Some(json) = &config.json {
        std::fs::write(json, serde_json::to_string_pretty(&store)?)?;
    }
    let markdown = report::render(config, &env, &store);
    report::splice_into(&config.out, &markdown)?;
    eprintln!("wb-run: wrote {}", config.out.display());
    Ok(store.failures.len())
}
