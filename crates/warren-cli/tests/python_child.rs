//! `warren up` supervises a child written in Python (`examples/python/task_child.py`, standard
//! library only, JSON-RPC lines: `rpc = "json"`), `warren call` reaches it, `warren down` stops
//! it cleanly. Runs with the machine's `python3`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
const BOUND: Duration = Duration::from_secs(30);

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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/task_child.py");
        let config = dir.join("warren.toml");
        let text = format!(
            "[programs.task-py]\ncommand = \"python3\"\nargs = [{script:?}]\nready = \"notify\"\nrpc = \"json\"\n",
            script = script.display().to_string()
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
fn warren_up_supervises_a_python_child_and_warren_call_reaches_it() {
    let dir = tempfile::Builder::new().prefix("wpy").tempdir_in("/tmp").expect("temp dir");
    let mut up = Up::start(dir.path());
    up.wait_line("all programs are up");
    up.wait_line("serving Task.Get on");

    let call = up.warren(&["call", "task-py", "Task.Get", "\"x\""]);
    let stdout = String::from_utf8_lossy(&call.stdout);
    assert!(call.status.success(), "warren call failed: {}{}", stdout, String::from_utf8_lossy(&call.stderr));
    let reply: serde_json::Value = serde_json::from_str(&stdout).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"id": "x"}));

    // The child's own error, with its code, reaches the caller; exit code 5 = the call failed.
    let nope = up.warren(&["call", "task-py", "Task.Nope", "\"x\""]);
    assert_eq!(nope.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&nope.stderr);
    assert!(stderr.contains("unknown method") && stderr.contains("Task.Nope"), "{stderr}");

    let down = up.warren(&["down"]);
    assert!(down.status.success(), "warren down failed: {}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(up.wait_exit(), Some(0), "up exits 0: every program stopped cleanly");
    up.wait_line("stopped; removed");
    assert!(!up.control.exists(), "the control socket is removed");
}
