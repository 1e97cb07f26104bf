//! The Markdown report, and where it goes in `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::{Config, Imp, Pin, Store, m1_key, m3_key};
use crate::workload::Workload;

pub const BEGIN: &str = "<!-- bench/run-all: generated from here to the end marker; rerun it rather than edit -->";
pub const END: &str = "<!-- bench/run-all: end of generated text -->";
pub const HEADING: &str = "## Cross-implementation benchmarks (bench/run-all)";
const CRITERION_HEADING: &str = "## In-process criterion benchmarks (cargo bench)";

/// The machine and the versions of everything measured.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub date: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub go: String,
    pub supervisord: String,
    pub python: String,
    pub crates: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|out| {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text).lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn lock_version(lock: &str, name: &str) -> String {
    let marker = format!("name = \"{name}\"\nversion = \"");
    lock.find(&marker)
        .and_then(|at| lock[at + marker.len()..].split('"').next())
        .map_or_else(|| "?".to_owned(), str::to_owned)
}

impl Environment {
    pub fn collect(config: &Config) -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("?", |(_, v)| v.trim())
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or_else(|| "?".to_owned(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
        let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
        let crates = ["tokio", "tarpc", "tokio-serde", "rmp-serde", "serde_json"]
            .iter()
            .map(|name| format!("{name} {}", lock_version(&lock, name)))
            .collect::<Vec<_>>()
            .join(", ");
        let supervisord = config.supervisord.as_deref().map_or_else(
            || "supervisord not run".to_owned(),
            |p| format!("supervisor {}", super::supervisor::version(p)),
        );
        let python = config
            .supervisord
            .as_deref()
            .and_then(|p| p.parent())
            .map(|bin| first_line(&bin.join("python").display().to_string(), &["--version"]))
            .unwrap_or_default();
        Environment {
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            rustc: first_line("rustc", &["--version"]),
            go: first_line("go", &["version"]),
            supervisord,
            python,
            crates,
        }
    }
}

/// Median, min and max.
fn stats(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let mut xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    Some((median, xs[0], xs[n - 1]))
}

fn num(x: f64, decimals: usize) -> String {
    if x.abs() >= 10_000.0 {
        // Thousands separators for large counts.
        let s = format!("{:.0}", x.round());
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// `median [min–max]`, or `—` with no sample.
fn cell(xs: &[f64], decimals: usize) -> String {
    match stats(xs) {
        None => "—".to_owned(),
        Some((m, lo, hi)) if xs.len() == 1 || (lo - hi).abs() < f64::EPSILON => num(m, decimals),
        Some((m, lo, hi)) => format!("{} [{}–{}]", num(m, decimals), num(lo, decimals), num(hi, decimals)),
    }
}

fn ratio_cell(xs: &[f64]) -> String {
    match stats(xs) {
        None => "—".to_owned(),
        Some((m, _, _)) if xs.len() == 1 => format!("{m:.2}×"),
        Some((m, lo, hi)) => format!("{m:.2}× [{lo:.2}–{hi:.2}]"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    AtMost,
    AtLeast,
    Below,
}

struct Target {
    what: String,
    values: Vec<f64>,
    want: Want,
    limit: f64,
    ratio: bool,
    unit: &'static str,
    decimals: usize,
}

impl Target {
    fn verdict(&self) -> &'static str {
        match stats(&self.values) {
            None => "not measured",
            Some((m, lo, hi)) => {
                let ok = |x: f64| match self.want {
                    Want::AtMost => x <= self.limit,
                    Want::AtLeast => x >= self.limit,
                    Want::Below => x < self.limit,
                };
                match (ok(m), ok(lo) && ok(hi)) {
                    (true, true) => "**met**",
                    (true, false) => "met (median; not every round)",
                    (false, _) if ok(lo) || ok(hi) => "**missed** (median; met in some round)",
                    (false, _) => "**missed**",
                }
            }
        }
    }

    fn goal(&self) -> String {
        let op = match self.want {
            Want::AtMost => "≤",
            Want::AtLeast => "≥",
            Want::Below => "<",
        };
        if self.ratio { format!("{op} {}×", self.limit) } else { format!("{op} {} {}", num(self.limit, 0), self.unit) }
    }

    fn measured(&self) -> String {
        if self.ratio {
            ratio_cell(&self.values)
        } else {
            format!("{} {}", cell(&self.values, self.decimals), self.unit)
        }
    }
}

fn targets(s: &Store) -> Vec<Target> {
    let mut t = Vec::new();
    let ratio = |what: String, values: Vec<f64>, want: Want, limit: f64| Target {
        what,
        values,
        want,
        limit,
        ratio: true,
        unit: "",
        decimals: 2,
    };
    let same_p50 = m3_key(Pin::Same, "p50_us");
    t.push(ratio(
        "tiny call p50, pinned to one CPU: warren ÷ raw".into(),
        s.ratio(&same_p50, "warren", "raw"),
        Want::AtMost,
        1.5,
    ));
    for peer in [Imp::Tarpc, Imp::GoGob, Imp::GoJson] {
        t.push(ratio(
            format!("tiny call p50, pinned to one CPU: warren ÷ {}", peer.name()),
            s.ratio(&same_p50, "warren", peer.name()),
            Want::Below,
            1.0,
        ));
    }
    t.push(ratio(
        "tiny call p50, unpinned (M1 c=1): warren ÷ raw".into(),
        s.ratio(&m1_key(Workload::Tiny, 1, "p50_us"), "warren", "raw"),
        Want::AtMost,
        1.2,
    ));
    let c64 = m1_key(Workload::Tiny, 64, "calls_s");
    for (peer, limit) in [(Imp::GoGob, 3.0), (Imp::Tarpc, 1.3), (Imp::Raw, 1.5)] {
        let extra = if peer == Imp::Raw { " (64 threads, 64 connections)" } else { "" };
        t.push(ratio(
            format!("tiny calls/s at c=64: warren ÷ {}{extra}", peer.name()),
            s.ratio(&c64, "warren", peer.name()),
            Want::AtLeast,
            limit,
        ));
    }
    let cpu64 = m1_key(Workload::Tiny, 64, "cpu_us");
    for peer in [Imp::Raw, Imp::Tarpc, Imp::GoGob, Imp::GoJson] {
        t.push(ratio(
            format!("CPU per tiny call at c=64: warren ÷ {}", peer.name()),
            s.ratio(&cpu64, "warren", peer.name()),
            Want::Below,
            1.0,
        ));
    }
    t.push(ratio(
        "4 KiB echo calls/s at c=64: warren ÷ raw (64 connections)".into(),
        s.ratio(&m1_key(Workload::Echo4k, 64, "calls_s"), "warren", "raw"),
        Want::AtLeast,
        1.0,
    ));
    t.push(ratio(
        "1 MiB echo MiB/s at c=1: warren ÷ raw".into(),
        s.ratio(&m1_key(Workload::Echo1m, 1, "mib_s"), "warren", "raw"),
        Want::AtLeast,
        0.6,
    ));
    t.push(ratio(
        "spawn → ready → first reply p50: warren ÷ raw spawn-and-connect".into(),
        s.ratio("m4/first_reply_p50_ms", "warren", "raw"),
        Want::AtMost,
        1.2,
    ));
    let abs = |what: &str, values: Vec<f64>, want: Want, limit: f64, unit: &'static str| Target {
        what: what.to_owned(),
        values,
        want,
        limit,
        ratio: false,
        unit,
        decimals: if unit == "lines" { 0 } else { 2 },
    };
    t.push(abs(
        "graceful stop of one child p50 (child gone, socket removed)",
        s.get("m4/stop_p50_ms", "warren"),
        Want::AtMost,
        1.0,
        "ms",
    ));
    t.push(abs(
        "100 children all ready (READY=1, connected)",
        s.get("m4x100/all_ready_ms", "warren"),
        Want::AtMost,
        300.0,
        "ms",
    ));
    t.push(abs(
        "100 children all stopped (gone, sockets removed)",
        s.get("m4x100/all_stopped_ms", "warren"),
        Want::AtMost,
        100.0,
        "ms",
    ));
    t.push(ratio(
        "100 children all answering: supervisord ÷ warren".into(),
        s.ratio("m4x100/all_replied_ms", "supervisord", "warren"),
        Want::AtLeast,
        5.0,
    ));
    t.push(ratio(
        "100 children all stopped: supervisord ÷ warren".into(),
        s.ratio("m4x100/all_stopped_ms", "supervisord", "warren"),
        Want::AtLeast,
        5.0,
    ));
    t.push(abs("log lines through the host", s.get("m5/lines_s", "warren"), Want::AtLeast, 1_000_000.0, "lines/s"));
    t.push(abs("log lines lost or out of order", s.get("m5/lost", "warren"), Want::AtMost, 0.0, "lines"));
    t.push(abs(
        "warren child RSS (wb-child under a host)",
        s.get("m6/child_rss_mb", "warren"),
        Want::AtMost,
        3.0,
        "MB",
    ));
    t.push(abs(
        "host RSS with 100 children (wb-host)",
        s.get("m6/host_rss_100_mb", "warren"),
        Want::AtMost,
        20.0,
        "MB",
    ));
    t.push(abs(
        "`warren up` RSS with 100 programs",
        s.get("m6/host_rss_100_mb", "warren-up"),
        Want::AtMost,
        20.0,
        "MB",
    ));
    t
}

/// The generated part of the section (between the markers).
pub fn render(config: &Config, env: &Environment, s: &Store) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "Run of {} with `{}`{}.",
        env.date,
        config.command_line,
        if config.quick { " (quick: a smoke run, not figures)" } else { "" }
    );
    let _ = writeln!(
        w,
        "{} round(s); within a round every implementation runs each cell in turn, their order rotating from \
         round to round. Each figure is the **median over the rounds** with the spread `[min–max]`; ratios \
         are taken **within each round** and then summarised the same way. Closed-loop cells: {} ms warm-up, \
         {} ms window.\n",
        config.rounds,
        config.warmup.as_millis(),
        config.window.as_millis()
    );
    let _ = writeln!(w, "### Machine and load\n");
    let _ = writeln!(w, "- CPU: `{}`, {} vCPUs, {} of memory; kernel `{}`.", env.cpu, env.cpus, env.memory, env.kernel);
    let python = if env.python.is_empty() { String::new() } else { format!(" ({})", env.python) };
    let _ = writeln!(w, "- `{}`; `{}`; {}{python}.", env.rustc, env.go, env.supervisord);
    let _ = writeln!(
        w,
        "- Crates: {}. Rust binaries built with the `bench-release` profile (release, fat LTO, one codegen unit).",
        env.crates
    );
    let _ = writeln!(
        w,
        "- **The machine is shared** (other engineers' tests and a soak run on it). The load average at the \
         start and end of each round, and the CPU that other processes used during the closed-loop windows \
         (machine busy time minus the client's and the server's, in CPUs; median and max over the cells):\n"
    );
    let _ =
        writeln!(w, "| round | load avg at start | at end | others' CPU during windows, median (max) | round took |");
    let _ = writeln!(w, "| --- | --- | --- | --- | ---: |");
    for (i, r) in s.rounds.iter().enumerate() {
        let others = stats(&r.others_cpus).map_or_else(|| "—".to_owned(), |(m, _, hi)| format!("{m:.2} ({hi:.2})"));
        let _ = writeln!(
            w,
            "| {} | {:.2} {:.2} {:.2} | {:.2} {:.2} {:.2} | {others} | {:.0} s |",
            i + 1,
            r.load_start[0],
            r.load_start[1],
            r.load_start[2],
            r.load_end[0],
            r.load_end[1],
            r.load_end[2],
            r.seconds
        );
    }
    for note in &s.notes {
        let _ = writeln!(w, "\nNote: {note}.");
    }
    if !s.failures.is_empty() {
        let _ = writeln!(w, "\n**Failed measurements** (left out of the figures):\n");
        for f in &s.failures {
            let _ = writeln!(w, "- {}", f.replace('\n', " "));
        }
    }

    let _ = writeln!(w, "\n### Targets\n");
    let _ = writeln!(w, "| target | measured | goal | verdict |");
    let _ = writeln!(w, "| --- | --- | --- | --- |");
    for t in targets(s) {
        let _ = writeln!(w, "| {} | {} | {} | {} |", t.what, t.measured(), t.goal(), t.verdict());
    }

    let context = [
        (
            "100 children all answering: supervisord ÷ plain spawns",
            s.ratio("m4x100/all_replied_ms", "supervisord", "plain"),
        ),
        (
            "100 children all stopped: supervisord ÷ plain spawns",
            s.ratio("m4x100/all_stopped_ms", "supervisord", "plain"),
        ),
        (
            "spawn → first reply p50: plain spawn of wb-child ÷ raw",
            s.ratio("m4/first_reply_p50_ms", "plain-wb-child", "raw"),
        ),
    ];
    if context.iter().any(|(_, v)| !v.is_empty()) {
        let _ = writeln!(
            w,
            "\nContext for the lifecycle targets — what no host could beat with this child on this machine:\n"
        );
        for (what, values) in context {
            let _ = writeln!(w, "- {what}: {}", ratio_cell(&values));
        }
    }

    let imps: Vec<Imp> = Imp::ALL.into_iter().filter(|i| s.values.values().any(|m| m.contains_key(i.name()))).collect();
    let _ = writeln!(
        w,
        "\n### M1 + M2: closed loop, unpinned\n\nOne server process, one client process, `c` callers. warren, \
         tarpc and Go share **one connection** among the callers (tasks or goroutines); raw uses `c` threads \
         on `c` connections. CPU per call = (client + server CPU time) ÷ calls completed in the window. \
         \"warren ×\" is warren's calls/s divided by that implementation's, per round."
    );
    for workload in Workload::ALL {
        let echo = workload != Workload::Tiny;
        let _ = writeln!(w, "\n**{}**\n", workload.label());
        let _ = writeln!(
            w,
            "| implementation | c | calls/s | p50 µs | p99 µs | CPU µs/call |{} warren × (calls/s) |",
            if echo { " MiB/s |" } else { "" }
        );
        let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |{} ---: |", if echo { " ---: |" } else { "" });
        for &callers in &config.callers {
            for imp in &imps {
                let key = |m: &str| m1_key(workload, callers, m);
                let calls = s.get(&key("calls_s"), imp.name());
                if calls.is_empty() {
                    continue;
                }
                let mib =
                    if echo { format!(" {} |", cell(&s.get(&key("mib_s"), imp.name()), 1)) } else { String::new() };
                let versus = if *imp == Imp::Warren {
                    "—".to_owned()
                } else {
                    ratio_cell(&s.ratio(&key("calls_s"), "warren", imp.name()))
                };
                let _ = writeln!(
                    w,
                    "| {} | {callers} | {} | {} | {} | {} |{mib} {versus} |",
                    imp.label(),
                    cell(&calls, 0),
                    cell(&s.get(&key("p50_us"), imp.name()), 1),
                    cell(&s.get(&key("p99_us"), imp.name()), 1),
                    cell(&s.get(&key("cpu_us"), imp.name()), 2),
                );
            }
        }
    }

    let _ = writeln!(
        w,
        "\n### M3: pinned latency, tiny call, c=1\n\nServer and client started under `taskset`: both on CPU 0, \
         or the server on CPU 0 and the client on CPU 1 (every message then wakes the other vCPU, which on \
         this VM goes through the hypervisor). Prefer these figures to the unpinned c=1 ones.\n"
    );
    let _ = writeln!(
        w,
        "| implementation | one CPU: p50 µs | p99 µs | p50 × raw | two CPUs: p50 µs | p99 µs | p50 × raw |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for imp in &imps {
        let row: Vec<String> = [Pin::Same, Pin::Split]
            .iter()
            .flat_map(|&pin| {
                [
                    cell(&s.get(&m3_key(pin, "p50_us"), imp.name()), 1),
                    cell(&s.get(&m3_key(pin, "p99_us"), imp.name()), 1),
                    ratio_cell(&s.ratio(&m3_key(pin, "p50_us"), imp.name(), "raw")),
                ]
            })
            .collect();
        if row.iter().all(|c| c == "—") {
            continue;
        }
        let _ = writeln!(w, "| {} | {} |", imp.label(), row.join(" | "));
    }

    let _ = writeln!(
        w,
        "\n### M4: process lifecycle\n\nOne child at a time, {} spawns per round, each figure the per-round p50 or \
         p90 (then median over rounds). **warren**: `Host::spawn` of `wb-child` (returns once the child said \
         READY=1 and the client is connected), then a first `Task.Get`; stop = `Child::stop` until the process \
         is reaped and its socket removed. **raw**: `std::process::Command` starts `wb-raw-server`, reads its \
         `ready` line from a pipe, connects and does one raw round trip; stop = close its stdin, wait, check the \
         socket is gone. **plain wb-child**: the same plain spawn of the warren child in standalone mode (on the \
         current-thread runtime it has under a host) with a \
         warren client — what the child itself costs, without the host.\n",
        config.spawns
    );
    let _ = writeln!(w, "| | ready p50 ms | first reply p50 ms | p90 ms | × raw (p50) | stop p50 ms | p90 ms |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (kind, label) in
        [("warren", "**warren** host"), ("raw", "raw spawn-and-connect"), ("plain-wb-child", "plain spawn of wb-child")]
    {
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            cell(&s.get("m4/ready_p50_ms", kind), 2),
            cell(&s.get("m4/first_reply_p50_ms", kind), 2),
            cell(&s.get("m4/first_reply_p90_ms", kind), 2),
            ratio_cell(&s.ratio("m4/first_reply_p50_ms", kind, "raw")),
            cell(&s.get("m4/stop_p50_ms", kind), 2),
            cell(&s.get("m4/stop_p90_ms", kind), 2),
        );
    }
    let _ = writeln!(
        w,
        "\nMany children at once: warren starts them with concurrent `Host::spawn`s and stops them with \
         `Host::stop_all`; supervisord (`startsecs=0`, the same `wb-child` in standalone mode on the current-thread \
         runtime it has under a host, logs captured) is \
         driven over its XML-RPC socket: `startAllProcesses`, then each socket polled until it answers \
         `Task.Get` (supervisord has no readiness protocol), and `stopAllProcesses` until every process is \
         reaped and every socket removed. **plain spawns** is the floor: the same children started by a \
         loop of `std::process::Command` (no pre-exec hook, so `posix_spawn`), their `ready` lines read from \
         pipes, each called once, then stopped by closing their stdin. **`warren up`**: the command with a \
         generated `warren.toml` of as many `wb-child` programs (`ready = \"warren\"`), from its start until it \
         prints `all programs are up`, and from SIGINT until it has exited (every child's pid checked gone).\n"
    );
    let _ = writeln!(
        w,
        "| children | | all ready ms | all answering ms | ÷ warren (answering) | all stopped ms | ÷ warren (stopped) |"
    );
    let _ = writeln!(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for &n in &config.many {
        let k = |m: &str| format!("m4x{n}/{m}");
        for (kind, label) in [
            ("warren", "**warren** host"),
            ("warren-up", "`warren up` (the command)"),
            ("supervisord", "supervisord"),
            ("plain", "plain spawns (floor)"),
        ] {
            let versus =
                |m: &str| if kind == "warren" { "—".to_owned() } else { ratio_cell(&s.ratio(&k(m), kind, "warren")) };
            let _ = writeln!(
                w,
                "| {n} | {label} | {} | {} | {} | {} | {} |",
                cell(&s.get(&k("all_ready_ms"), kind), 1),
                cell(&s.get(&k("all_replied_ms"), kind), 1),
                versus("all_replied_ms"),
                cell(&s.get(&k("all_stopped_ms"), kind), 1),
                versus("all_stopped_ms"),
            );
        }
    }

    let _ = writeln!(
        w,
        "\n### M5: logs\n\n`wb-child log {}` writes that many 100-byte lines to stdout as fast as it can. \
         warren: a `wb-host` whose log sink counts the lines and checks that each carries the next number; \
         lines/s from the first line to the last reaching the sink; host CPU = the host process's CPU from \
         spawn to the last line. supervisord: its stdout log file (no rotation) polled until it holds every \
         line; CPU = supervisord's.\n",
        config.log_lines
    );
    let _ = writeln!(w, "| | lines/s | host CPU ns/line | lost or out of order |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
    for (kind, label) in [("warren", "**warren** host"), ("supervisord", "supervisord")] {
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {} |",
            cell(&s.get("m5/lines_s", kind), 0),
            cell(&s.get("m5/cpu_ns_line", kind), 0),
            cell(&s.get("m5/lost", kind), 0)
        );
    }

    let _ = writeln!(
        w,
        "\n### M6: footprint (MB = 10⁶ bytes)\n\nRSS counts every resident page the process maps, shared ones \
         included: most of a small Rust process's RSS is file-backed and shared — libc (about 1.4 MB), and the \
         binary's text, which the 100 instances of one child share. PSS divides shared pages among the \
         processes that map them; private = pages no other process maps. Children's figures are the median \
         child.\n"
    );
    let _ = writeln!(w, "| process | RSS MB | PSS MB | private MB |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
    let m = |key: &str, kind: &str| cell(&s.get(key, kind), 2);
    let _ = writeln!(
        w,
        "| warren child (`wb-child` under a host, alone, after one call) | {} | | |",
        m("m6/child_rss_mb", "warren")
    );
    for &n in &config.many {
        let k = |what: &str| format!("m6/{what}_{n}_mb");
        let _ = writeln!(
            w,
            "| warren child, one of {n} | {} | {} | {} |",
            m(&k("child_rss"), "warren"),
            m(&k("child_pss"), "warren"),
            m(&k("child_private"), "warren")
        );
        let _ = writeln!(
            w,
            "| warren host (`wb-host`) with {n} children | {} | {} | {} |",
            m(&k("host_rss"), "warren"),
            m(&k("host_pss"), "warren"),
            m(&k("host_private"), "warren")
        );
        let _ = writeln!(w, "| its watchdog process, {n} children | {} | | |", m(&k("watchdog_rss"), "warren"));
        let _ = writeln!(
            w,
            "| `warren up` with {n} programs | {} | {} | {} |",
            m(&k("host_rss"), "warren-up"),
            m(&k("host_pss"), "warren-up"),
            m(&k("host_private"), "warren-up")
        );
        let _ = writeln!(
            w,
            "| supervisord with {n} children | {} | {} | |",
            m(&k("host_rss"), "supervisord"),
            m(&k("host_pss"), "supervisord")
        );
        let _ = writeln!(
            w,
            "| child under supervisord (same binary), one of {n} | {} | | |",
            m(&k("child_rss"), "supervisord")
        );
    }
    for imp in &imps {
        let _ = writeln!(w, "| M1 server, {} (tiny, c=1) | {} | | |", imp.label(), m("m6/server_rss_mb", imp.name()));
    }
    o
}

/// Puts `generated` between the markers in `path`, adding the section (after the title) the
/// first time; a file that does not exist yet gets a title of its own.
pub fn splice_into(path: &Path, generated: &str) -> std::io::Result<()> {
    let block = format!("{BEGIN}\n\n{}\n{END}", generated.trim_end());
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => format!("{}{block}{}", &text[..begin], &text[end + END.len()..]),
        _ if text.is_empty() => format!("# Benchmarks\n\n{HEADING}\n\n{block}\n"),
        _ => {
            let (title, rest) = text.split_once('\n').unwrap_or((&text, ""));
            format!("{title}\n\n{HEADING}\n\n{block}\n\n{CRITERION_HEADING}\n{rest}")
        }
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_added_once_then_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("wb-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\nOld intro.\n\n## Old section\n").expect("write");
        splice_into(&path, "first").expect("splice");
        splice_into(&path, "second").expect("splice");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(text.starts_with("# Benchmarks\n\n## Cross-implementation"), "{text}");
        assert!(text.contains("second") && !text.contains("first"), "{text}");
        assert_eq!(text.matches(BEGIN).count(), 1);
        assert!(text.contains("Old intro.") && text.contains("## Old section"));
        assert!(text.find(END) < text.find("Old intro."));
    }

    #[test]
    fn medians_spreads_and_numbers() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[1.0, 2.0]), Some((1.5, 1.0, 2.0)));
        assert_eq!(stats(&[f64::NAN]), None);
        assert_eq!(num(1_234_567.4, 0), "1,234,567");
        assert_eq!(cell(&[1.0, 2.0, 3.0], 1), "2.0 [1.0–3.0]");
        assert_eq!(ratio_cell(&[0.5]), "0.50×");
    }
}
