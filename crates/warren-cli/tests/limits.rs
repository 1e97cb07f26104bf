//! Users and resource limits with the real `warren`: `user = "nobody"` runs the program as
//! nobody; `memory_max` OOM-kills a program that allocates past it, reported as such and
//! restarted; `pids_max` stops a fork bomb; where the limits cannot be applied (no cgroups, a
//! controller missing) `up` and `status NAME` say so.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use common::{BOUND, Up};

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn detail(up: &Up, name: &str) -> String {
    let output = up.warren(["status", name]).output().expect("warren status NAME");
    assert!(output.status.success(), "status {name}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn down(up: &mut Up) {
    up.warren(["down"]).assert().success();
    assert!(up.wait_exit(BOUND).success(), "warren up exits 0:\n{}", up.transcript());
    up.assert_no_leftovers(BOUND);
}

/// The `limits:` line of `status NAME`, or why the test cannot run (the limits are not applied).
fn limits_line(up: &Up, name: &str) -> Result<String, String> {
    let text = detail(up, name);
    let line = text.lines().find(|l| l.starts_with("limits:")).unwrap_or_else(|| panic!("no limits line:\n{text}"));
    match line.split_once("NOT APPLIED: ") {
        Some((_, why)) => Err(why.to_owned()),
        None => Ok(line.to_owned()),
    }
}

#[test]
fn a_program_runs_as_its_user_with_that_users_groups() {
    if !is_root() {
        testkit::skip::unavailable("running a program as another user needs warren to run as root");
        return;
    }
    // cwd "/": nobody cannot enter the fixture's private directory (the chdir runs as nobody).
    let mut up =
        Up::start("[programs.sleepy]\ncommand = \"sleep\"\nargs = [\"100\"]\nuser = \"nobody\"\ncwd = \"/\"\n");
    up.wait_event("sleepy", "ready", BOUND);
    let row = up.wait_status("sleepy", BOUND, |row| row["pid"].is_u64());
    let pid = row["pid"].as_u64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {name} line:\n{status}"))
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "real, effective, saved and fs uid are nobody's:\n{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Groups:"), ["65534"], "root's groups are dropped:\n{status}");
    let text = detail(&up, "sleepy");
    assert!(text.contains("user:         nobody (uid 65534)"), "{text}");
    down(&mut up);
}

/// `warren up` on `config`, as `as_nobody` says; its exit code and stderr. It stops at the
/// config, so it starts nothing.
fn up_on(config: &str, as_nobody: bool) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    std::fs::write(&file, config).expect("config");
    let mut command = if as_nobody {
        // nobody must be able to read the file.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let mut command = std::process::Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", common::WARREN]);
        command
    } else {
        std::process::Command::new(common::WARREN)
    };
    command.args(["up", "-f"]).arg(&file).env("WARREN_CONTROL", dir.path().join("ctl.sock"));
    let output = command.output().expect("run warren up");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn an_unknown_user_is_a_config_error_naming_it() {
    let (code, stderr) = up_on("[programs.a]\ncommand = \"true\"\nuser = \"no-such-user-here\"\n", false);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("field \"user\": there is no user \"no-such-user-here\""), "{stderr}");
}

#[test]
fn another_user_without_root_is_a_config_error_that_says_why() {
    if !is_root() || std::process::Command::new("setpriv").arg("--version").output().is_err() {
        testkit::skip::unavailable("running warren as nobody needs root and setpriv");
        return;
    }
    let (code, stderr) = up_on("[programs.a]\ncommand = \"true\"\nuser = \"root\"\n", true);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("field \"user\": user = \"root\" needs warren to run as root, and it runs as nobody"),
        "{stderr}"
    );
}

#[test]
fn limits_that_cannot_be_applied_are_said_so_at_start_and_in_status() {
    let mut up =
        Up::start("[programs.capped]\ncommand = \"sleep\"\nargs = [\"100\"]\nmemory_max = \"64M\"\npids_max = 20\n");
    up.wait_event("capped", "started", BOUND);
    match limits_line(&up, "capped") {
        Ok(line) => {
            assert_eq!(line, "limits:       memory_max 64M, pids_max 20");
            assert_eq!(up.row("capped")["limits_not_applied"], serde_json::Value::Null);
        }
        Err(why) => {
            let warning = up.wait_line("warning: capped runs WITHOUT its limits (memory_max 64M, pids_max 20)", BOUND);
            assert!(warning.text.contains(&why), "the same reason at start and in status: {why}\n{}", warning.text);
            let row = up.row("capped");
            assert_eq!(row["limits_not_applied"], why.as_str(), "{row:#}");
            let table = up.warren(["status"]).output().expect("warren status");
            let table = String::from_utf8_lossy(&table.stdout);
            assert!(table.contains("limits NOT applied (see status NAME)"), "{table}");
        }
    }
    down(&mut up);
}

#[test]
fn a_program_past_its_memory_max_is_oom_killed_said_so_and_restarted() {
    // Python writes every byte of the string, so the pages are really charged to the cgroup.
    let mut up = Up::start(
        r#"
[programs.hog]
command = "python3"
args = ["-c", "import time; time.sleep(0.3); b = b'x' * (256 << 20); time.sleep(100)"]
memory_max = "64M"
restart = "on-failure"
backoff = { initial = "100ms" }
"#,
    );
    up.wait_event("hog", "started", BOUND);
    if let Err(why) = limits_line(&up, "hog") {
        testkit::skip::unavailable_known("cgroup2-memory", &format!("memory_max is not applied here: {why}"));
        down(&mut up);
        return;
    }
    up.wait_line("killed: out of memory (memory_max 64M)", BOUND);
    let row = up.wait_status("hog", BOUND, |row| row["restarts"].as_u64() >= Some(1));
    assert_eq!(row["last_exit"], "killed: out of memory (memory_max 64M)", "{row:#}");
    down(&mut up);
}

#[test]
fn pids_max_stops_a_fork_bomb() {
    let mut up = Up::start(
        r#"
[programs.bomb]
shell = "for i in $(seq 200); do sleep 100 & done; wait"
pids_max = 20
"#,
    );
    up.wait_event("bomb", "started", BOUND);
    if let Err(why) = limits_line(&up, "bomb") {
        testkit::skip::unavailable_known("cgroup2-pids", &format!("pids_max is not applied here: {why}"));
        down(&mut up);
        return;
    }
    // The shell reports each fork the kernel refused.
    up.wait_line("fork", BOUND);
    std::thread::sleep(Duration::from_millis(300));
    let sleepers = up.processes("sleep 100").len();
    assert!(sleepers < 20, "at most pids_max processes in the cgroup, the shell included: {sleepers}");
    down(&mut up);
}
