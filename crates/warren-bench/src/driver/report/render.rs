//! The generated part of the section, between the markers.

use std::fmt::Write as _;

use super::environment::Environment;
use super::format::{cell, ratio_cell, stats};
use super::targets::targets;
use crate::driver::{Config, Imp, Pin, Store, m1_key, m3_key};
use crate::workload::Workload;

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

    w.push_str(&super::shm::section(s));

    let imps: Vec<Imp> = Imp::ALL.into_iter().filter(|i| s.values.values().any(|m| m.contains_key(i.name()))).collect();
    let _ = writeln!(
        w,
        "\n### M1 + M2: closed loop, unpinned\n\nOne server process, one client process, `c` callers. warren, \
         tarpc and Go share **one connection** among the callers (tasks or goroutines); raw uses `c` threads \
         on `c` connections, and so does the shm floor (each with a segment of its own). **warren**, shared \
         memory: the same warren client and server, the connection moved to shared memory in the hello \
         (`Transport::Shm`; the cell fails if it did not move); it and the shm floor run the cells of \
         docs/SHM.md §7 only (tiny at every c, 4 KiB at c=64, 1 MiB at c=1). CPU per call = (client + server CPU time) ÷ calls completed in the window. \
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

    w.push_str(&super::gob::section(s));

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

    super::logs_files::render(config, s, w);

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
