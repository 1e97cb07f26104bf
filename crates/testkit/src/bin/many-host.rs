//! A host program for the signal and no-orphan tests: starts N children of one kind, prints
//! their pids (and their grandchildren's), then stops them on SIGINT/SIGTERM — a second signal
//! kills every group, a third exits at once.
//!
//! ```text
//! many-host <children> <mode> <grace-ms>
//! mode: plugin | plugin-grandchild | ignore-term | escapee | cgroup-escapee
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use warren::{Host, Readiness, Spec};

#[derive(Deserialize)]
struct Pids {
    grandchild: Option<u32>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(1);
    let mode = args.get(1).cloned().unwrap_or_else(|| "plugin".to_owned());
    let grace = Duration::from_millis(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5000));
    let child_exe = std::env::current_exe().expect("own path").with_file_name("test-child");

    let host = Host::builder().catch_signals().build().expect("host");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "host {} watchdog {}", std::process::id(), host.watchdog_pid().unwrap_or(0));
    let _ = writeln!(out, "runtime {}", host.runtime_dir().display());
    let _ = writeln!(out, "cgroups {}", host.uses_cgroups());
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..count {
        let spec = match mode.as_str() {
            "plugin" => Spec::new(&child_exe).arg("plugin"),
            "plugin-grandchild" => Spec::new(&child_exe).args(["plugin", "--grandchild"]),
            "ignore-term" => Spec::new(&child_exe).arg("ignore-term").rpc(false),
            "escapee" => Spec::new(&child_exe).arg("escapee").rpc(false),
            "cgroup-escapee" => Spec::new(&child_exe).arg("cgroup-escapee").rpc(false),
            other => {
                eprintln!("many-host: unknown mode {other}");
                return ExitCode::from(64);
            }
        };
        let host = host.clone();
        starts.spawn(async move { host.spawn(spec.name(format!("child-{i}")).readiness(Readiness::Notify)).await });
    }
    while let Some(started) = starts.join_next().await {
        match started {
            Ok(Ok(child)) => {
                let grandchild = match child.try_client() {
                    Some(client) => client.call::<_, Pids>("Task.Pids", &()).await.ok().and_then(|p| p.grandchild),
                    None => None,
                };
                let _ = writeln!(out, "child {} {} grandchild {}", child.name(), child.pid(), grandchild.unwrap_or(0));
            }
            Ok(Err(err)) => {
                eprintln!("many-host: {err}");
                return ExitCode::FAILURE;
            }
            Err(err) => {
                eprintln!("many-host: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();
    let reports = match host.stop_on_signal(grace).await {
        Ok(reports) => reports,
        Err(err) => {
            eprintln!("many-host: {err}");
            return ExitCode::FAILURE;
        }
    };
    for report in &reports {
        let _ = writeln!(out, "stopped {report}");
    }
    let _ = writeln!(out, "DONE");
    if reports.iter().all(|r| r.outcome.is_clean()) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
