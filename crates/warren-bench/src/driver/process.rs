//! The processes a measurement starts: a server that stops when its stdin closes, a command run
//! to its end with a bound, and a guard that kills a process a failed measurement left.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

pub(super) fn command(argv: &[String], cpu: Option<u32>) -> Command {
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
pub(super) struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    socket: PathBuf,
}

impl ServerProc {
    pub(super) fn start(argv: &[String], cpu: Option<u32>, socket: &Path) -> anyhow::Result<ServerProc> {
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

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Closes its stdin and waits for it; true if it exited cleanly and removed its socket.
    pub(super) fn stop(mut self) -> bool {
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
pub(super) fn run_to_end(mut cmd: Command, bound: Duration) -> anyhow::Result<String> {
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

/// SIGKILLs a process if dropped before being forgotten (a failed measurement must not leave
/// a `warren up` running).
pub(super) struct KillOnDrop(pub(super) u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
