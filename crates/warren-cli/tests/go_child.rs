//! `warren up` supervises an unmodified Go net/rpc server (gob behind `rpc.HandleHTTP`:
//! `rpc = "go"`), `warren call` reaches it, `warren down` stops it cleanly. The Go program is
//! `crates/warren-rpc/tests/go/gobserver`, built with the machine's `go`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
const BOUND: Duration = Duration::from_secs(30);

/// Builds the Go server into cargo's scratch directory.
fn go_server() -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-child");
    let binary = scratch.join("gobserver");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warren-rpc/tests/go/gobserver/main.go");
    let mut go = Command::new("go");
    go.arg("build").arg("-o").arg(&binary).arg(&source);
    go.env("GOCACHE", scratch.join("cache")).env("GOTOOLCHAIN", "local");
    if std::env::var_os("HOME").is_none() {
        go.env("GOPATH", scratch.join("gopath"));
    }
    let output = go.output().expect("the Go child test needs Go on PATH (apt-get install -y golang-go)");
    assert!(output.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    binary
}

/// A running `warren up`, killed if the test fails before `down`.
struct Up {
    process: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    config: PathBuf,
    control: PathBuf,
}

impl Up {
    fn start(dir: &Path) -> Up {
        let config = dir.join("warren.toml");
        let text = format!(
            "[programs.task-go]\ncommand = {server:?}\nargs = [\"http\", \"-\"]\nready = {{ log = \"listening\" }}\nrpc = \"go\"\n",
            server = go_server().display().to_string()
        );
        std::fs::write(&config, text).expect("write the configuration");
        let control = dir.join("control.sock");
        let mut process = Command::new(WARREN)
            .args(["up", "-f"])
            .arg(&config)
            .env("WARREN_CONTROL", &control)
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start warren up");
        let stdout = process.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Up { process, lines, seen: Vec::new(), config, control }
    }

    /// Waits for a line of `up`'s output containing `needle`.
    fn wait_line(&mut self, needle: &str) {
        let deadline = Instant::now() + BOUND;
        while !self.seen.iter().any(|line| line.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    panic!("no line saying {needle:?} within {BOUND:?}; output so far:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    fn warren(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(WARREN);
        command.args(args).arg("--file").arg(&self.config).env("WARREN_CONTROL", &self.control);
        command.output().expect("run warren")
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.process.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "warren up did not exit within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.process.try_wait(), Ok(None)) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

#[test]
fn warren_up_supervises_a_go_gob_server_and_warren_call_reaches_it() {
    let dir = tempfile::Builder::new().prefix("wgo").tempdir_in("/tmp").expect("temp dir");
    let mut up = Up::start(dir.path());
    up.wait_line("all programs are up");

    let call = up.warren(&["call", "task-go", "Task.Get", "\"new_id\""]);
    let stdout = String::from_utf8_lossy(&call.stdout);
    assert!(call.status.success(), "warren call failed: {}{}", stdout, String::from_utf8_lossy(&call.stderr));
    let reply: serde_json::Value = serde_json::from_str(&stdout).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"ID": "new_id"}), "Go's field names, as Go sent them");

    // The Go method's error reaches the caller; exit code 5 = the call failed.
    let fail = up.warren(&["call", "task-go", "Task.Fail", "\"x\""]);
    assert_eq!(fail.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&fail.stderr);
    assert!(stderr.contains("no such todo: x"), "{stderr}");

    let down = up.warren(&["down"]);
    assert!(down.status.success(), "warren down failed: {}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(up.wait_exit(), Some(0), "up exits 0: every program stopped cleanly");
    assert!(!up.control.exists(), "the control socket is removed");
}
