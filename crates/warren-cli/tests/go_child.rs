//! `warren up` supervises unmodified Go net/rpc servers (gob behind `rpc.HandleHTTP`:
//! `rpc = "go"`), `warren call` reaches them, `warren down` stops them cleanly: one that listens
//! on `WARREN_ENDPOINT`, and the original sketch's server, which binds `rpc.sock` itself
//! (`socket = "rpc.sock"`) and restarts cleanly. The Go programs are in
//! `crates/warren-rpc/tests/go/`, built with the machine's `go`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
const BOUND: Duration = Duration::from_secs(30);

/// Builds a Go program of `crates/warren-rpc/tests/go/` into cargo's scratch directory.
fn go_program(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-child");
    let binary = scratch.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../warren-rpc/tests/go").join(name).join("main.go");
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
    fn start(dir: &Path, text: &str) -> Up {
        let config = dir.join("warren.toml");
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
    let text = format!(
        "[programs.task-go]\ncommand = {server:?}\nargs = [\"http\", \"-\"]\nready = {{ log = \"listening\" }}\nrpc = \"go\"\n",
        server = go_program("gobserver").display().to_string()
    );
    let mut up = Up::start(dir.path(), &text);
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

fn call_get(up: &Up, id: &str) {
    let call = up.warren(&["call", "task-rpc", "Task.Get", &format!("{id:?}")]);
    let stdout = String::from_utf8_lossy(&call.stdout);
    assert!(call.status.success(), "warren call failed: {}{}", stdout, String::from_utf8_lossy(&call.stderr));
    let reply: serde_json::Value = serde_json::from_str(&stdout).expect("the reply is JSON");
    assert_eq!(reply, serde_json::json!({"ID": id}));
}

/// The sketch's server, as written, binds `rpc.sock` in its working directory and never removes
/// it: warren removes the stale file before each start and after the stop, so it restarts
/// cleanly, and calls it there.
#[test]
fn the_sketch_server_binds_its_own_socket_and_restarts_cleanly() {
    let dir = tempfile::Builder::new().prefix("wgs").tempdir_in("/tmp").expect("temp dir");
    let socket = dir.path().join("rpc.sock");
    // A stale socket file, as a killed earlier run leaves it: bound, then nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind a stale socket"));
    assert!(socket.exists());
    let text = format!(
        "[programs.task-rpc]\ncommand = {server:?}\ncwd = {cwd:?}\nrpc = \"go\"\nsocket = \"rpc.sock\"\n",
        server = go_program("sketchserver").display().to_string(),
        cwd = dir.path().display().to_string(),
    );
    let mut up = Up::start(dir.path(), &text);
    up.wait_line("all programs are up");
    call_get(&up, "new_id");

    // Where to find it, without reading logs: `warren endpoint` alone, and in `status --json`.
    let endpoint = up.warren(&["endpoint", "task-rpc"]);
    assert!(endpoint.status.success(), "{}", String::from_utf8_lossy(&endpoint.stderr));
    assert_eq!(String::from_utf8_lossy(&endpoint.stdout), format!("unix:{}\n", socket.display()));
    let status = up.warren(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert_eq!(rows[0]["endpoint"], serde_json::json!(format!("unix:{}", socket.display())));
    let unknown = up.warren(&["endpoint", "nope"]);
    assert_eq!(unknown.status.code(), Some(5), "an unknown program is a failed request");
    for round in 0..3 {
        let restart = up.warren(&["restart", "task-rpc"]);
        assert!(restart.status.success(), "restart {round}: {}", String::from_utf8_lossy(&restart.stderr));
        call_get(&up, &format!("after-restart-{round}"));
    }
    let down = up.warren(&["down"]);
    assert!(down.status.success(), "warren down failed: {}", String::from_utf8_lossy(&down.stderr));
    up.wait_exit();
    assert!(!socket.exists(), "the program's own socket is removed after it stops");
}
