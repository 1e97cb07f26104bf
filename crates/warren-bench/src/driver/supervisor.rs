//! supervisord, from PyPI in a throwaway venv, running the same child binary: started with a
//! generated configuration, driven over its XML-RPC Unix socket (no `supervisorctl`, whose
//! Python start-up would be counted against it).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// A program in the generated configuration.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub command: String,
    /// `stdout_logfile` (default: supervisord's AUTO log in the run's directory).
    pub stdout_logfile: Option<PathBuf>,
}

/// A running supervisord (in the foreground, `-n`), stopped and reaped on drop.
#[derive(Debug)]
pub struct Supervisord {
    process: Child,
    socket: PathBuf,
}

impl Supervisord {
    pub fn start(binary: &Path, dir: &Path, programs: &[Program]) -> anyhow::Result<Supervisord> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("supervisor.sock");
        let mut conf = format!(
            "[unix_http_server]\nfile={sock}\n\n[supervisord]\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\n\
             childlogdir={dir}\nnodaemon=true\nloglevel=warn\n\n[rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            sock = socket.display(),
            dir = dir.display()
        );
        for p in programs {
            let _ = write!(
                conf,
                "\n[program:{}]\ncommand={}\nautostart=false\nautorestart=false\nstartsecs=0\nstopsignal=TERM\nstopwaitsecs=5\n",
                p.name, p.command
            );
            if let Some(log) = &p.stdout_logfile {
                let _ = write!(
                    conf,
                    "stdout_logfile={}\nstdout_logfile_maxbytes=0\nstdout_logfile_backups=0\n",
                    log.display()
                );
            }
        }
        let conf_path = dir.join("supervisord.conf");
        std::fs::write(&conf_path, conf)?;
        let process = Command::new(binary)
            .arg("-n")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let supervisord = Supervisord { process, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(state) = supervisord.call("supervisor.getState", "")
                && state.contains("RUNNING")
            {
                return Ok(supervisord);
            }
            ensure!(Instant::now() < deadline, "supervisord did not come up within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// One XML-RPC call; `params` is the inside of `<params>`. Returns the response body.
    pub fn call(&self, method: &str, params: &str) -> anyhow::Result<String> {
        let body = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
        );
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.lines().next().unwrap_or_default();
        ensure!(status.contains(" 200 "), "supervisord answered {method} with {status:?}");
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        ensure!(!body.contains("<fault>"), "supervisord: {method} failed: {body}");
        Ok(body)
    }

    pub fn start_all(&self) -> anyhow::Result<()> {
        self.call("supervisor.startAllProcesses", &boolean(false)).map(drop)
    }

    pub fn stop_all(&self) -> anyhow::Result<()> {
        self.call("supervisor.stopAllProcesses", &boolean(false)).map(drop)
    }

    pub fn start_process(&self, name: &str) -> anyhow::Result<()> {
        self.call(
            "supervisor.startProcess",
            &format!("<param><value><string>{name}</string></value></param>{}", boolean(false)),
        )
        .map(drop)
    }

    /// The pids of the programs that run.
    pub fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let body = self.call("supervisor.getAllProcessInfo", "")?;
        let mut pids = Vec::new();
        let mut rest = body.as_str();
        while let Some(at) = rest.find("<name>pid</name>") {
            rest = &rest[at + 16..];
            let start = rest.find("<int>").context("pid without a value")? + 5;
            let end = rest[start..].find("</int>").context("pid without an end")? + start;
            let pid: u32 = rest[start..end].trim().parse()?;
            if pid != 0 {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Shuts supervisord down and reaps it.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.call("supervisor.shutdown", "");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.process.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.process.kill();
                let _ = self.process.wait();
                bail!("supervisord did not shut down within 15 s; killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.call("supervisor.stopAllProcesses", &boolean(true));
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn boolean(value: bool) -> String {
    format!("<param><value><boolean>{}</boolean></value></param>", u8::from(value))
}

/// `supervisord --version`.
pub fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| BufReader::new(&out.stdout[..]).lines().next().and_then(Result::ok))
        .unwrap_or_else(|| "?".into())
}
