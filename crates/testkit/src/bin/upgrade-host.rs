//! A host that hands its children over to a new image of itself across `exec`, again and
//! again, while one of them floods numbered lines (docs/UPGRADE.md; tests/upgrade_host.rs).
//!
//! `upgrade-host TEST_CHILD ROUNDS LINES (stop|wait) [ROUND]`: starts a plugin, a flood of
//! LINES numbered lines and a sleeper; prints `round R pids A B C watchdog W`; hands over to
//! `/proc/self/exe` with ROUND+1 until ROUNDS, checking after each that the plugin answers and
//! that every flood line so far arrived once, in order (`lines R N bad B`). First, a hand-over
//! to a missing binary must fail and leave everything working. At the end, `stop` stops every
//! child (`exit NAME EXIT`), `wait` prints `READY` and waits to be killed.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use warren::{Host, LineBatch, LogLine, LogSink, Readiness, Spec, Stream};

/// Checks that the flood's line `i` always comes with sequence number `i + 1`: a line lost or
/// doubled across a hand-over shifts every number after it.
struct Check {
    /// How many lines the flood prints: its last one, wherever it arrives, is announced.
    total: u64,
    last: AtomicU64,
    bad: AtomicU64,
    /// When the last flood line arrived here.
    quiet_since: std::sync::Mutex<std::time::Instant>,
}

impl Check {
    fn see(&self, child: &str, stream: Stream, seq: u64, text: &str) {
        if child != "flood" || stream != Stream::Stdout {
            return;
        }
        let number = text.strip_prefix("line ").and_then(|rest| rest.get(..8)).and_then(|n| n.parse::<u64>().ok());
        if number.map(|n| n + 1) != Some(seq) {
            self.bad.fetch_add(1, Ordering::Relaxed);
        }
        if seq == self.total {
            println!("flood-complete {seq}");
        }
        self.last.store(seq, Ordering::Relaxed);
        *self.quiet_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }
}

impl LogSink for Check {
    fn line(&self, line: LogLine) {
        self.see(&line.child, line.stream, line.seq, &line.text);
    }

    fn lines(&self, batch: &LineBatch<'_>) {
        for (text, seq) in batch.lines().zip(batch.first_seq..) {
            self.see(batch.child, batch.stream, seq, text);
        }
    }
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [child_bin, rounds, lines, end, rest @ ..] = args.as_slice() else {
        eprintln!("usage: upgrade-host TEST_CHILD ROUNDS LINES (stop|wait) [ROUND]");
        return ExitCode::from(2);
    };
    let rounds: u32 = rounds.parse().unwrap_or(5);
    let round: u32 = rest.first().and_then(|r| r.parse().ok()).unwrap_or(0);
    let (child_bin, lines, end) = (child_bin.clone(), lines.clone(), end.clone());
    let body = move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(&child_bin, rounds, &lines, &end, round))
    };
    if std::env::var_os("UPGRADE_HOST_MAIN").is_some() {
        // The main thread starts every child and makes every exec: children started before and
        // after a hand-over cross the next one together.
        warren::handover_main(body).expect("the main thread")
    } else {
        // The runtime on the main thread: after the first hand-over it is the taken-over
        // children's parent, and the next hand-overs exec from it.
        body()
    }
}

async fn run(child_bin: &str, rounds: u32, lines: &str, end: &str, round: u32) -> ExitCode {
    let check = Arc::new(Check {
        total: lines.parse().unwrap_or(0),
        last: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        quiet_since: std::sync::Mutex::new(std::time::Instant::now()),
    });
    let builder = Host::builder().log_sink(check.clone());
    let host = if warren::handover_pending() {
        builder.resume().await.expect("resume the host")
    } else {
        let host = builder.build().expect("host");
        let plugin = Spec::new(child_bin).name("plugin").args(["plugin"]);
        let flood = Spec::new(child_bin)
            .name("flood")
            .args(["flood-then-wait", lines])
            .rpc(false)
            .readiness(Readiness::Started);
        let sleeper = Spec::new(child_bin).name("sleeper").args(["sleeper"]).rpc(false).readiness(Readiness::Started);
        for spec in [plugin, flood, sleeper] {
            host.spawn(spec).await.expect("spawn");
        }
        host
    };
    println!("host-up {round} {}", unix_micros());
    let mut children = host.children();
    children.sort_by(|a, b| a.name().cmp(b.name()));
    let pids: Vec<String> = children.iter().map(|child| format!("{}={}", child.name(), child.pid())).collect();
    println!("round {round} pids {} watchdog {}", pids.join(" "), host.watchdog_pid().unwrap_or(0));
    println!("runtime {round} {}", host.runtime_dir().display());
    let plugin = children.iter().find(|child| child.name() == "plugin").expect("the plugin");
    let answer: serde_json::Value =
        plugin.client().call("Task.Get", &format!("r{round}")).await.expect("call the plugin");
    println!("rpc {round} {}", answer["id"]);
    // Let the flood run a little in this image.
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("lines {round} {} bad {}", check.last.load(Ordering::Relaxed), check.bad.load(Ordering::Relaxed));
    if round == 0 {
        let err = host.hand_over("/nonexistent/upgrade-host".as_ref(), &[]).await;
        println!("missing-binary {err}");
        let answer: serde_json::Value = plugin.client().call("Task.Get", "after").await.expect("call after");
        println!("rpc-after-failure {}", answer["id"]);
    }
    if round == 1 {
        // A child of this image beside the taken-over ones.
        let late = Spec::new(child_bin).name("late").args(["sleeper"]).rpc(false).readiness(Readiness::Started);
        let late = host.spawn(late).await.expect("spawn late");
        println!("late {}", late.pid());
        if std::env::var_os("UPGRADE_HOST_MAIN").is_none() {
            let err = host.hand_over("/proc/self/exe".as_ref(), &[]).await;
            println!("mixed-refused {err}");
            println!("late-stopped {:?}", late.stop(Duration::from_secs(5)).await.outcome);
        }
    }
    if round < rounds {
        let next: Vec<OsString> =
            std::env::args_os().skip(1).take(4).chain([OsString::from((round + 1).to_string())]).collect();
        println!("handing-over {round} {}", unix_micros());
        let err = host.hand_over("/proc/self/exe".as_ref(), &next).await;
        println!("hand-over failed: {err}");
        return ExitCode::FAILURE;
    }
    if end == "wait" {
        println!("READY");
        std::future::pending::<()>().await;
    }
    // Until the flood has ended: its last line seen here, or, if this image has seen none of it,
    // 2 s without one (its last came in an earlier image). Bounded: a flood that never ends
    // shows as a missing `flood-complete` in the test.
    let quiet = || check.quiet_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = check.last.load(Ordering::Relaxed);
        let ended = last == check.total || (last == 0 && quiet() >= Duration::from_secs(2));
        if ended || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for report in host.stop_all(Duration::from_secs(5)).await {
        println!("exit {} {:?}", report.name, report.outcome);
    }
    println!("lines final {} bad {}", check.last.load(Ordering::Relaxed), check.bad.load(Ordering::Relaxed));
    ExitCode::SUCCESS
}
