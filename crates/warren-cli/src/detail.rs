//! `warren status NAME`: one program in detail — what it runs, its checks, its last state
//! changes with their reasons, its last exit. Built on `up`'s side, printed on the client's.

use std::fmt::Write as _;
use std::time::Duration;

use warren::supervise::plan::{HealthCheck, Invocation, Program, ReadyCheck};
use warren::supervise::{ProgramStatus, Supervisor};

use crate::control::{ChangeRow, ProgramDetail, StatusRow};
use crate::usage;

/// The detail of `status`'s program, whose row is `row`.
pub fn build(supervisor: &Supervisor, status: &ProgramStatus, row: StatusRow) -> ProgramDetail {
    let plan = supervisor.plan();
    let program = plan.program(&status.name);
    let now = tokio::time::Instant::now();
    let changes = status
        .history
        .iter()
        .map(|change| ChangeRow {
            state: change.state.name().to_owned(),
            detail: change.state.as_change(change.reason.is_some()),
            reason: change.reason.clone(),
            ago_ms: u64::try_from(now.duration_since(change.at).as_millis()).unwrap_or(u64::MAX),
        })
        .collect();
    ProgramDetail {
        status: row,
        command: program.map(|p| command_line(&p.command)).unwrap_or_default(),
        cwd: program.and_then(|p| p.cwd.as_ref()).map(|dir| dir.display().to_string()),
        env: program.map(|p| p.env.iter().map(|(key, _)| key.clone()).collect()).unwrap_or_default(),
        env_files: program.map(|p| p.env_files.iter().map(|f| f.display().to_string()).collect()).unwrap_or_default(),
        user: program.and_then(|p| p.identity.as_ref()).map(crate::limits::user),
        limits: program.and_then(|p| crate::limits::describe(supervisor, &p.limits)),
        ready: program.map(ready).unwrap_or_default(),
        health_check: program.and_then(|p| p.health.as_ref()).map(|h| {
            let every = humantime::format_duration(h.interval);
            let timeout = humantime::format_duration(h.timeout);
            format!("{} every {every}, timeout {timeout}, restart after {} failures", check(&h.check), h.failures)
        }),
        last_end: status.last_end.clone(),
        changes,
    }
}

fn command_line(command: &Invocation) -> String {
    match command {
        Invocation::Exec { program, args } => {
            let mut line = program.display().to_string();
            for arg in args {
                let plain =
                    !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
                line.push(' ');
                line.push_str(&if plain { arg.clone() } else { format!("'{}'", arg.replace('\'', r"'\''")) });
            }
            line
        }
        Invocation::Shell(text) => format!("sh -c '{}'", text.replace('\'', r"'\''")),
    }
}

fn ready(program: &Program) -> String {
    let within = humantime::format_duration(program.ready_timeout);
    let how = match &program.readiness {
        ReadyCheck::None => return "when started".to_owned(),
        ReadyCheck::Notify => "READY=1 on its notify socket".to_owned(),
        ReadyCheck::LogLine(pattern) => format!("a line matching {pattern:?}"),
        ReadyCheck::Exec { command, .. } => format!("exec {}", command_line(command)),
        ReadyCheck::Connect { endpoint, .. } => format!("connect {endpoint}"),
        ReadyCheck::Http { probe, .. } => http(&probe.url, probe.status),
    };
    format!("{how}, within {within}")
}

fn check(check: &HealthCheck) -> String {
    match check {
        HealthCheck::RpcPing => "RPC ping".to_owned(),
        HealthCheck::Exec(command) => format!("exec {}", command_line(command)),
        HealthCheck::Connect(endpoint) => format!("connect {endpoint}"),
        HealthCheck::Http(probe) => http(&probe.url, probe.status),
    }
}

fn http(url: &str, status: Option<u16>) -> String {
    match status {
        Some(status) => format!("GET {url} answers {status}"),
        None => format!("GET {url} answers 2xx"),
    }
}

/// The health column: `healthy`, `unhealthy (n)`, `pending`, or `-` without a check.
pub fn health(row: &StatusRow) -> String {
    match row.health.as_deref() {
        Some("unhealthy") => format!("unhealthy ({})", row.health_failures),
        Some(word) => word.to_owned(),
        None => "-".to_owned(),
    }
}

/// `status NAME` as text.
pub fn render(detail: &ProgramDetail) -> String {
    let row = &detail.status;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{:<13} {value}", format!("{key}:"));
    };
    line("name", &row.name);
    let pid = row.pid.map(|pid| format!(", pid {pid}")).unwrap_or_default();
    let since = humantime::format_duration(Duration::from_secs(row.for_ms / 1000));
    line("state", &format!("{}{pid}, for {since}; restarts: {}", row.detail, row.restarts));
    if let Some(said) = &row.notify_status {
        line("says", &format!("{said:?}"));
    }
    line("command", &detail.command);
    if let Some(cwd) = &detail.cwd {
        line("cwd", cwd);
    }
    if !detail.env.is_empty() {
        line("env", &detail.env.join(", "));
    }
    if !detail.env_files.is_empty() {
        line("env file", &detail.env_files.join(", "));
    }
    if let Some(user) = &detail.user {
        line("user", user);
    }
    if let Some(limits) = &detail.limits {
        line("limits", limits);
    }
    line("ready", &detail.ready);
    let mut health = health(row);
    if let Some(check) = &detail.health_check {
        health = format!("{health}; {check}");
    }
    if let Some(reason) = &row.health_reason {
        health = format!("{health}; last failure: {reason}");
    }
    line("health", &health);
    if let (Some(cpu), Some(rss)) = (row.cpu_percent, row.rss_bytes) {
        line("cpu / rss", &format!("{cpu:.1}% / {}", usage::bytes(rss)));
    }
    if let Some(endpoint) = &row.endpoint {
        line("endpoint", endpoint);
    }
    if let Some(transport) = &row.transport {
        line("transport", if transport == "shm" { "shm (shared memory)" } else { transport });
    }
    if let Some(end) = &detail.last_end {
        line("last exit", end);
    }
    if let Some(why) = &row.last_restart {
        line("last restart", why);
    }
    if let Some(lost) = &row.socket_lost {
        line("socket", lost);
    }
    let _ = writeln!(out, "recent changes:");
    for change in &detail.changes {
        let ago = humantime::format_duration(Duration::from_secs(change.ago_ms / 1000));
        let reason = change.reason.as_ref().map(|why| format!(": {why}")).unwrap_or_default();
        let _ = writeln!(out, "  {:>10} ago  {}{reason}", ago.to_string(), change.detail);
    }
    out.trim_end().to_owned()
}
