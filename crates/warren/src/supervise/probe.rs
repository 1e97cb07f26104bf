//! Readiness probes and health checks: a command that must exit 0, a connection that must
//! succeed, an HTTP GET that must answer 2xx, an RPC ping. Each says why it failed.
//!
//! A probe command runs in its own process group with the program's directory and environment
//! (only the program's `env` when it has `clear_env`). When it runs out of time — the caller's
//! timeout drops its future — the whole group is SIGKILLed, so that a `sh -c` probe leaves no
//! grandchild behind.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::http;
use super::machine::StartError;
use super::plan::{HealthCheck, Invocation, Program, ReadyCheck};
use crate::child::Child;
use crate::signal::Signal;
use crate::sys;

/// How much of a probe's last stderr line is kept for its failure reason.
const STDERR_LINE_MAX: usize = 300;

/// Waits for the program's readiness condition, bounded by its ready timeout.
pub(super) async fn wait_ready(program: &Program) -> Result<(), StartError> {
    // The reason of the last failed try, for the error when time runs out.
    let mut last = None;
    let check = async {
        match &program.readiness {
            // The host's spawn already waited for READY=1 or the line.
            ReadyCheck::None | ReadyCheck::Notify | ReadyCheck::LogLine(_) => {}
            ReadyCheck::Exec { command, interval } => {
                poll(*interval, &mut last, || run(command, program)).await;
            }
            ReadyCheck::Connect { endpoint, interval } => {
                poll(*interval, &mut last, || connect(endpoint)).await;
            }
            ReadyCheck::Http { probe, timeout, interval } => {
                poll(*interval, &mut last, || http::get(probe, *timeout)).await;
            }
        }
    };
    let result = tokio::time::timeout(program.ready_timeout, check).await;
    result.map_err(|_| match last {
        Some(reason) => StartError::NotReadyBecause(program.ready_timeout, reason),
        None => StartError::NotReady(program.ready_timeout),
    })
}

async fn poll<F, Fut>(interval: Duration, last: &mut Option<String>, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        match probe().await {
            Ok(()) => return,
            Err(reason) => *last = Some(reason),
        }
        tokio::time::sleep(interval).await;
    }
}

/// One health check, bounded by the check's timeout; why it failed, otherwise.
pub(super) async fn health(
    check: &HealthCheck,
    timeout: Duration,
    child: &Child,
    program: &Program,
) -> Result<(), String> {
    let attempt = async {
        match check {
            HealthCheck::RpcPing => match child.try_client() {
                Some(client) => {
                    client.ping(Duration::from_secs(3600)).await.map(drop).map_err(|err| format!("ping: {err}"))
                }
                None => Err("no RPC connection to ping".to_owned()),
            },
            HealthCheck::Exec(command) => run(command, program).await,
            HealthCheck::Connect(endpoint) => connect(endpoint).await,
            // Its own timeout, so that the blocking request ends with the check.
            HealthCheck::Http(probe) => http::get(probe, timeout).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer in {}", short(timeout))),
    }
}

/// A timeout as people write it in the configuration: `2s`, `1500ms`.
pub(super) fn short(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// SIGKILLs a probe's process group when dropped before the probe ended: the leader is not
/// reaped yet then, so the group id is still the probe's own.
struct GroupGuard {
    pgid: Option<u32>,
    /// Registered with the orphan reaper until the probe is reaped or given up.
    pid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = sys::kill_group(pgid, Signal::KILL);
        }
        if let Some(pid) = self.pid {
            crate::reaper::unregister(pid);
        }
    }
}

/// Runs a probe command to completion: exit code 0 passes; otherwise the exit and the last
/// line the probe wrote to stderr.
pub(super) async fn run(command: &Invocation, program: &Program) -> Result<(), String> {
    let mut cmd = match command {
        Invocation::Exec { program, args } => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            cmd
        }
        Invocation::Shell(line) => {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.args(["-c", line]);
            cmd
        }
    };
    if let Some(dir) = &program.cwd {
        cmd.current_dir(dir);
    }
    if program.clear_env {
        cmd.env_clear();
    } else {
        // warren's own NOTIFY_SOCKET (systemd's) is not for its probes: one that says READY=1
        // there would announce warren ready before its programs are.
        cmd.env_remove("NOTIFY_SOCKET");
    }
    cmd.envs(program.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.process_group(0);
    cmd.kill_on_drop(true);
    let mut child = crate::reaper::register(|| cmd.spawn(), tokio::process::Child::id)
        .map_err(|err| format!("cannot run the probe: {err}"))?;
    let mut guard = GroupGuard { pgid: child.id(), pid: child.id() };
    let stderr = child.stderr.take();
    let (status, last_line) = tokio::join!(child.wait(), last_line(stderr));
    // Reaped: the group id may belong to someone else from now on.
    guard.pgid = None;
    let status = status.map_err(|err| format!("cannot wait for the probe: {err}"))?;
    if status.success() {
        return Ok(());
    }
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => Signal::from_number(signal)
            .map_or_else(|| format!("killed by signal {signal}"), |s| format!("killed by {s}")),
        (None, None) => status.to_string(),
    };
    Err(if last_line.is_empty() { exit } else { format!("{exit}: {last_line}") })
}

/// The last non-empty line read from `pipe`, at most [`STDERR_LINE_MAX`] bytes of it; the rest
/// is read and dropped, so a chatty probe neither blocks nor grows this.
async fn last_line(pipe: Option<tokio::process::ChildStderr>) -> String {
    let Some(mut pipe) = pipe else { return String::new() };
    let (mut last, mut current) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        for &byte in &buf[..n] {
            if byte == b'\n' {
                if !current.iter().all(u8::is_ascii_whitespace) {
                    last = std::mem::take(&mut current);
                }
                current.clear();
            } else if current.len() < STDERR_LINE_MAX {
                current.push(byte);
            }
        }
    }
    if !current.iter().all(u8::is_ascii_whitespace) {
        last = current;
    }
    String::from_utf8_lossy(&last).trim().to_owned()
}

async fn connect(endpoint: &str) -> Result<(), String> {
    let result = match warren_rpc::Endpoint::parse(endpoint) {
        Ok(warren_rpc::Endpoint::Tcp(addr)) => tokio::net::TcpStream::connect(addr.as_str()).await.map(drop),
        Ok(warren_rpc::Endpoint::Unix(path)) => tokio::net::UnixStream::connect(path).await.map(drop),
        _ => return Err(format!("cannot connect to {endpoint}: not tcp:HOST:PORT or unix:PATH")),
    };
    result.map_err(|err| format!("connect {endpoint}: {err}"))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Gone, or a zombie waiting for whoever inherited it.
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn a_timed_out_probe_leaves_no_grandchild() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("grandchild");
        let line = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let program = Program::new("p", Invocation::Shell(String::new()));
        let command = Invocation::Shell(line);
        let probe = run(&command, &program);
        assert!(tokio::time::timeout(Duration::from_secs(1), probe).await.is_err(), "the probe timed out");
        let pid: u32 = std::fs::read_to_string(&pid_file).expect("pid written").trim().parse().expect("a pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(Instant::now() < deadline, "grandchild {pid} of a timed-out probe still runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_probe_with_clear_env_sees_only_the_programs_env() {
        let mut program = Program::new("p", Invocation::Shell(String::new()));
        program.env = vec![("ONLY".into(), "1".into())];
        // HOME, set for any login, must not reach a clear_env probe.
        let check = Invocation::Shell("test -z \"$HOME\" && test \"$ONLY\" = 1".into());
        assert!(
            run(&check, &program).await.is_ok() == std::env::var_os("HOME").is_none(),
            "HOME passes without clear_env"
        );
        program.clear_env = true;
        assert_eq!(run(&check, &program).await, Ok(()), "a clear_env probe sees only env");
    }

    #[tokio::test]
    async fn a_failed_probe_says_its_exit_code_and_last_stderr_line() {
        let program = Program::new("p", Invocation::Shell(String::new()));
        let check = Invocation::Shell("echo first >&2; echo 'database is down' >&2; echo >&2; exit 3".into());
        assert_eq!(run(&check, &program).await, Err("exit code 3: database is down".into()));
        let quiet = Invocation::Shell("exit 1".into());
        assert_eq!(run(&quiet, &program).await, Err("exit code 1".into()));
    }

    #[tokio::test]
    async fn a_probe_that_never_passes_says_why_its_last_try_failed() {
        let mut program = Program::new("p", Invocation::Shell(String::new()));
        let check = Invocation::Shell("echo 'not listening yet' >&2; exit 7".into());
        program.readiness = ReadyCheck::Exec { command: check, interval: Duration::from_millis(20) };
        program.ready_timeout = Duration::from_millis(300);
        let error = wait_ready(&program).await.expect_err("never ready");
        assert!(error.to_string().ends_with("last check: exit code 7: not listening yet"), "{error}");
    }
}
