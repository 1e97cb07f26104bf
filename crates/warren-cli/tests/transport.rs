//! `transport = "shm"` (docs/CONFIG.md, "Shared memory"; docs/PROTOCOL.md §19): warren's
//! connection to an RPC program moves to shared memory, calls are answered over it, `status`
//! says so, and after `warren upgrade` the program runs on and its connection, made anew by the
//! new image, is on shared memory again. And `transport` on a program that does not speak
//! warren's binary protocol is a configuration error.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use common::{BOUND, Up};
use rustix::process::Signal;

/// What the memfd of a shared-memory connection is called in `/proc/PID/maps`.
const SEGMENT: &str = "memfd:warren-rpc-shm";

/// One plugin asking for shared memory, one left at the default.
const CONFIG: &str = r#"
[programs.fast]
command = @child@
args = ["plugin"]
ready = "warren"
transport = "shm"

[programs.plain]
command = @child@
args = ["plugin"]
ready = "warren"
"#;

/// The shared-memory segments `pid` maps (by inode: one segment may span several lines).
fn segments(pid: u64) -> BTreeSet<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter(|line| line.contains(SEGMENT))
        .filter_map(|line| line.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

/// Waits (at most [`BOUND`]) until `pid` maps exactly `n` segments; returns them.
fn wait_segments(pid: u64, n: usize, whose: &str) -> BTreeSet<String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let found = segments(pid);
        if found.len() == n {
            return found;
        }
        assert!(Instant::now() < deadline, "{whose} (pid {pid}) maps {} {SEGMENT} segments, not {n}", found.len());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn stdout_of(output: &std::process::Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// warren's connection number as the plugin counts its connections.
fn connection(up: &Up, program: &str) -> u64 {
    let output = up.warren(["call", program, "Task.Connection"]).output().expect("warren call");
    stdout_of(&output, "Task.Connection").trim().parse().expect("a connection number")
}

/// Calls answer, `status --json` says "shm" (and "socket" for the other), and both warren and
/// the program map one segment: the same one.
fn assert_on_shared_memory(up: &mut Up, when: &str) -> u64 {
    let output = up.warren(["call", "fast", "Task.Get", r#""x""#]).output().expect("warren call");
    assert!(stdout_of(&output, "Task.Get").contains("\"x\""), "{when}: the call's answer");
    up.warren(["call", "plain", "Task.Get", r#""y""#]).assert().success();
    let fast = up.row("fast");
    assert_eq!(fast["transport"], "shm", "{when}: {fast:#}");
    assert_eq!(up.row("plain")["transport"], "socket", "{when}");
    let pid = fast["pid"].as_u64().expect("fast's pid");
    let child = wait_segments(pid, 1, "the program");
    let host = wait_segments(u64::from(up.pid()), 1, "warren up");
    assert_eq!(child, host, "{when}: warren and the program map the same segment");
    pid
}

#[test]
fn an_shm_program_is_called_over_shared_memory_before_and_after_an_upgrade() {
    let mut up = Up::start(CONFIG);
    up.wait_line("all programs are up", BOUND);
    let ready = up.wait_line("fast: ready (pid ", BOUND).text;
    assert!(ready.ends_with("), RPC over shared memory"), "{ready}");
    let ready = up.wait_line("plain: ready (pid ", BOUND).text;
    assert!(!ready.contains("shared memory"), "{ready}");
    let pid = assert_on_shared_memory(&mut up, "after the start");
    // Told through its environment; the other is not.
    assert!(testkit::has_env(u32::try_from(pid).expect("pid"), "WARREN_RPC_TRANSPORT", "shm"));
    let plain = up.row("plain")["pid"].as_u64().expect("plain's pid");
    let plain_env = std::fs::read(format!("/proc/{plain}/environ")).expect("plain's environment");
    assert!(!String::from_utf8_lossy(&plain_env).contains("WARREN_RPC_TRANSPORT"), "plain was told a transport");
    // Visible in the table and in the detail.
    let table = stdout_of(&up.warren(["status"]).output().expect("warren status"), "warren status");
    let line = table.lines().find(|l| l.starts_with("fast ")).expect("fast's line");
    assert!(line.contains(".sock (shm)"), "{table}");
    assert!(!table.lines().find(|l| l.starts_with("plain ")).expect("plain's line").contains("(shm)"), "{table}");
    let detail = stdout_of(&up.warren(["status", "fast"]).output().expect("warren status fast"), "status fast");
    assert!(detail.lines().any(|l| l.starts_with("transport:") && l.contains("shm")), "{detail}");
    let before = connection(&up, "fast");
    let plain_before = connection(&up, "plain");

    let output = up.warren(["upgrade"]).output().expect("run warren upgrade");
    assert!(stdout_of(&output, "warren upgrade").contains("upgraded"), "{}", up.transcript());
    up.wait_line(&format!("(upgrade 1, pid {}", up.pid()), BOUND);
    // The same process, not restarted, connected anew (a shared-memory connection is not
    // carried across the exec) and on shared memory again; the old segment is gone from both.
    assert_eq!(assert_on_shared_memory(&mut up, "after the upgrade"), pid, "fast was restarted");
    assert_eq!(up.row("fast")["restarts"], 0);
    assert_eq!(connection(&up, "fast"), before + 1, "warren's connection to fast was made anew");
    assert_eq!(connection(&up, "plain"), plain_before, "the socket connection to plain was carried");

    up.signal(Signal::TERM);
    assert!(up.wait_exit(BOUND).success(), "{}", up.transcript());
    up.assert_no_leftovers(BOUND);
}

#[test]
fn transport_needs_warrens_binary_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    let cases = [
        (
            "rpc = \"json\"\ntransport = \"shm\"\n",
            "transport = \"shm\" needs warren's binary protocol (rpc = true or ready = \"warren\"); rpc = \"json\" never moves to shared memory",
        ),
        (
            "rpc = \"go\"\ntransport = \"auto\"\n",
            "transport = \"auto\" needs warren's binary protocol (rpc = true or ready = \"warren\"); rpc = \"go\" never moves to shared memory",
        ),
        (
            "transport = \"shm\"\n",
            "transport = \"shm\" needs warren's binary protocol (rpc = true or ready = \"warren\"); the program serves no RPC",
        ),
        ("rpc = true\ntransport = \"mmap\"\n", "unknown transport \"mmap\" (expected \"socket\", \"auto\" or \"shm\")"),
    ];
    for (keys, message) in cases {
        std::fs::write(&file, format!("[programs.a]\ncommand = \"sleep\"\nargs = [\"1\"]\n{keys}")).expect("write");
        let line = 3 + keys.lines().count();
        let output = Command::new(common::WARREN).arg("up").arg("-f").arg(&file).output().expect("run warren up");
        assert_eq!(output.status.code(), Some(2), "{keys}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!("warren.toml:{line}: program \"a\", field \"transport\": {message}");
        assert!(stderr.contains(&expected), "{keys}:\n{stderr}\nexpected: {expected}");
    }
    // "socket" is fine anywhere, and so is a binary-protocol program's "shm".
    for keys in ["rpc = \"json\"\ntransport = \"socket\"\n", "rpc = true\ntransport = \"shm\"\n"] {
        std::fs::write(&file, format!("[programs.a]\ncommand = \"sleep\"\n{keys}")).expect("write");
        let output = Command::new(common::WARREN).args(["check", "-f"]).arg(&file).output().expect("run warren check");
        assert!(output.status.success(), "{keys}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
