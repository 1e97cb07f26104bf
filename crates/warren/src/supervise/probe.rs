//! Readiness probes and health checks: a command that must exit 0, a connection that must
//! succeed, an RPC ping.
//!
//! A probe command runs in its own process group with the program's directory and environment
//! (only the program's `env` when it has `clear_env`). When it runs out of time — the caller's
//! timeout drops its future — the whole group is SIGKILLed, so that a `sh -c` probe leaves no
//! grandchild behind.

use std::process::Stdio;
use std::time::Duration;

use super::machine::StartError;
use super::plan::{HealthCheck, Invocation, Program, ReadyCheck};
use crate::child::Child;
use crate::signal::Signal;
use crate::sys;

/// Waits for the program's readiness condition, bounded by its ready timeout.
pub(super) async fn wait_ready(program: &Program) -> Result<(), StartError> {
    let check = async {
        match &program.readiness {
            // The host's spawn already waited for READY=1 or the line.
            ReadyCheck::None | ReadyCheck::Notify | ReadyCheck::LogLine(_) => {}
            ReadyCheck::Exec { command, interval } => {
                poll(*interval, || run(command, program)).await;
            }
            ReadyCheck::Connect { endpoint, interval } => {
                poll(*interval, || connect(endpoint)).await;
            }
        }
    };
    tokio::time::timeout(program.ready_timeout, check).await.map_err(|_| StartError::NotReady(program.ready_timeout))
}

async fn poll<F, Fut>(interval: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if probe().await {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

/// One health check; the caller bounds it with the check's timeout.
pub(super) async fn health(check: &HealthCheck, child: &Child, program: &Program) -> bool {
    match check {
        HealthCheck::RpcPing => match child.try_client() {
            Some(client) => client.ping(Duration::from_secs(3600)).await.is_ok(),
            None => false,
        },
        HealthCheck::Exec(command) => run(command, program).await,
        HealthCheck::Connect(endpoint) => connect(endpoint).await,
    }
}

/// SIGKILLs a probe's process group when dropped before the probe ended: the leader is not
/// reaped yet then, so the group id is still the probe's own.
struct GroupGuard {
    pgid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = sys::kill_group(pgid, Signal::KILL);
        }
    }
}

/// Runs a probe command to completion: exit code 0 passes.
pub(super) async fn run(command: &Invocation, program: &Program) -> bool {
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
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.process_group(0);
    cmd.kill_on_drop(true);
    let Ok(mut child) = cmd.spawn() else { return false };
    let mut guard = GroupGuard { pgid: child.id() };
    let status = child.wait().await;
    // Reaped: the group id may belong to someone else from now on.
    guard.pgid = None;
    matches!(status, Ok(status) if status.success())
}

async fn connect(endpoint: &str) -> bool {
    match warren_rpc::Endpoint::parse(endpoint) {
        Ok(warren_rpc::Endpoint::Tcp(addr)) => tokio::net::TcpStream::connect(addr.as_str()).await.is_ok(),
        Ok(warren_rpc::Endpoint::Unix(path)) => tokio::net::UnixStream::connect(path).await.is_ok(),
        _ => false,
    }
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
        assert!(run(&check, &program).await == std::env::var_os("HOME").is_none(), "HOME passes without clear_env");
        program.clear_env = true;
        assert!(run(&check, &program).await, "a clear_env probe sees only env");
    }
}
