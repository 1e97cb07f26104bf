//! Users and resource limits with the real `warren`: `user = "nobody"` runs the program as
//! nobody; `memory_max` OOM-kills a program that allocates past it, reported as such and
//! restarted; `pids_max` stops a fork bomb; `cpu_max` holds a busy loop — through cgroup2 or,
//! on a hybrid layout, the cgroup v1 hierarchies; where the limits cannot be applied (neither)
//! `up` and `status NAME` say so.

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
    let left = cgroups_of(up.pid());
    assert!(left.is_empty(), "cgroups left behind by warren up: {left:?}");
}

/// The cgroups `warren up` of `pid` made (`warren-PID-*`, in every hierarchy), looked for a
/// few levels deep (warren's own cgroup is where they go).
fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, prefix: &str, depth: usize, found: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(entry.path());
            } else if depth > 0 {
                walk(&entry.path(), prefix, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(std::path::Path::new("/sys/fs/cgroup"), &format!("warren-{pid}-"), 5, &mut found);
    found
}

/// The path of `file` in the cgroup of `controller` that process `pid` is in: its v1
/// hierarchy's where one holds the controller, else cgroup2's.
fn cgroup_file(pid: u32, controller: &str, file: &str) -> std::path::PathBuf {
    let has = |list: &str| list.split(',').any(|c| c == controller);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup");
    let v1 = cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, list, path) = (fields.next()?, fields.next()?, fields.next()?);
        has(list).then(|| path.to_owned())
    });
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let after: Vec<&str> = after.split_whitespace().collect();
        let wanted = match &v1 {
            Some(_) => after.first() == Some(&"cgroup") && after.get(2).is_some_and(|options| has(options)),
            None => after.first() == Some(&"cgroup2"),
        };
        wanted.then(|| before.split_whitespace().nth(4).map(str::to_owned))?
    });
    let path = v1.or_else(|| cgroups.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned));
    let (mount, path) = (mount.expect("the hierarchy's mount"), path.expect("the process's cgroup"));
    std::path::Path::new(&mount).join(path.trim_start_matches('/')).join(file)
}

/// CPU time (user and system) process `pid` has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let fields: Vec<u64> =
        stat.rsplit_once(')').expect("stat").1.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // utime and stime, fields 14 and 15 of proc(5), counted here from the state (field 3), in
    // clock ticks (USER_HZ: 100 on Linux).
    Duration::from_millis((fields[11] + fields[12]) * 1000 / 100)
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
        testkit::skip::unavailable_known("cgroup-memory", &format!("memory_max is not applied here: {why}"));
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
    // Python, not a shell: dash exits at the first fork refused, which would end the bomb
    // before anything could be counted. This one reports the refusal and keeps what it has.
    let mut up = Up::start(
        r#"
[programs.bomb]
command = "python3"
args = ["-c", """
import os, time
made = 0
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(100)
            os._exit(0)
        made += 1
    except OSError as err:
        print('fork refused:', err, flush=True)
        break
print('bomb forked', made, flush=True)
time.sleep(100)
"""]
pids_max = 20
"#,
    );
    up.wait_event("bomb", "started", BOUND);
    if let Err(why) = limits_line(&up, "bomb") {
        testkit::skip::unavailable_known("cgroup-pids", &format!("pids_max is not applied here: {why}"));
        down(&mut up);
        return;
    }
    up.wait_line("fork refused: [Errno 11]", BOUND);
    let line = up.wait_line("bomb forked", BOUND);
    let made: usize = line.text.rsplit(' ').next().and_then(|n| n.trim().parse().ok()).expect("a count");
    assert_eq!(made, 19, "pids_max 20 is the bomb and 19 children: {}", line.text);
    let bombs = up.processes("import os, time").len();
    assert_eq!(bombs, 20, "at most pids_max processes in the cgroup, the bomb included");
    down(&mut up);
}

#[test]
fn cpu_max_holds_a_busy_loop_to_its_quota() {
    let mut up = Up::start("[programs.spin]\nshell = \"while :; do :; done\"\ncpu_max = \"10%\"\n");
    up.wait_event("spin", "started", BOUND);
    if let Err(why) = limits_line(&up, "spin") {
        testkit::skip::unavailable_known("cgroup-cpu", &format!("cpu_max is not applied here: {why}"));
        down(&mut up);
        return;
    }
    let row = up.wait_status("spin", BOUND, |row| row["pid"].is_u64());
    let pid = u32::try_from(row["pid"].as_u64().expect("pid")).expect("pid");
    let read = |file: &str| std::fs::read_to_string(cgroup_file(pid, "cpu", file)).expect("cpu file").trim().to_owned();
    match std::fs::exists(cgroup_file(pid, "cpu", "cpu.cfs_quota_us")) {
        Ok(true) => {
            assert_eq!((read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")), ("10000".into(), "100000".into()))
        }
        _ => assert_eq!(read("cpu.max"), "10000 100000"),
    }
    // 10% of 2 s is 0.2 s; the loop alone would take what it gets of a CPU.
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - before;
    assert!(used <= Duration::from_millis(450), "a busy loop under cpu_max 10% used {used:?} of CPU in 2 s");
    down(&mut up);
}
