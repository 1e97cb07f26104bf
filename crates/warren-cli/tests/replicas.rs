//! `replicas = N` (issue #15, point 3) on a real `warren up`: N members `NAME.1` … `NAME.N`,
//! each with its `WARREN_REPLICA`, its own log file and socket; `warren scale` adds and removes
//! members without touching the others (pids compared); `call NAME` goes round the ready
//! members; a dependent waits for every member.

// Each test file uses only part of the fixture.
#[allow(dead_code)]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{BOUND, Up, alive};
use serde_json::Value;

/// Says its number on stdout, then runs until stopped.
const ECHOING: &str = r#"
[programs.web]
shell = "echo replica=$WARREN_REPLICA; exec sleep 60"
replicas = 3
grace = "2s"

[programs.proxy]
shell = "exec sleep 60"
depends_on = ["web"]
grace = "2s"
"#;

fn pid(up: &mut Up, name: &str) -> u32 {
    let row = up.wait_status(name, BOUND, |row| row["state"] == "ready" && row["pid"].is_u64());
    u32::try_from(row["pid"].as_u64().expect("pid")).expect("pid fits u32")
}

fn names(up: &mut Up) -> Vec<String> {
    up.status_json().iter().map(|row| row["name"].as_str().expect("name").to_owned()).collect()
}

fn down(mut up: Up) {
    up.warren(["down"]).assert().success();
    assert!(up.wait_exit(BOUND).success());
    up.assert_no_leftovers(BOUND);
}

/// Waits until `file` exists and holds `needle`.
fn wait_file(file: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{} did not come to hold {needle:?}: {text:?}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs_dir(up: &Up) -> std::path::PathBuf {
    let base = up.dir().join("state/warren");
    let instance = std::fs::read_dir(&base).expect("the state directory").next().expect("an instance").expect("entry");
    instance.path().join("logs")
}

#[test]
fn each_member_has_its_number_and_its_own_log() {
    let mut up = Up::start(ECHOING);
    up.wait_line("all programs are up", BOUND);
    assert_eq!(names(&mut up), ["web.1", "web.2", "web.3", "proxy"]);
    let groups: Vec<Value> = up.status_json().iter().map(|row| row["replica_of"].clone()).collect();
    assert_eq!(groups, [Value::from("web"), "web".into(), "web".into(), Value::Null]);
    let logs = logs_dir(&up);
    for i in 1..=3 {
        let pid = pid(&mut up, &format!("web.{i}"));
        assert!(testkit::has_env(pid, "WARREN_REPLICA", &i.to_string()), "web.{i} (pid {pid})");
        let text = wait_file(&logs.join(format!("web.{i}.log")), "replica=");
        assert!(text.contains(&format!("replica={i}")) && text.matches("replica=").count() == 1, "web.{i}: {text}");
    }
    let table = up.warren(["status"]).assert().success().get_output().stdout.clone();
    let table = String::from_utf8_lossy(&table);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("web ") && lines[1].contains("replicas: 3/3 ready"), "{table}");
    assert!(lines[2].starts_with("  web.1 ") && lines[4].starts_with("  web.3 "), "{table}");
    assert!(lines[5].starts_with("proxy "), "{table}");
    down(up);
}

#[test]
fn a_dependent_waits_for_every_member() {
    // The third member becomes ready last, and late: the dependent starts after it.
    let mut up = Up::start(
        r#"
[programs.web]
shell = "if [ $WARREN_REPLICA = 3 ]; then sleep 1; fi; echo up; exec sleep 60"
ready = { log = "up" }
replicas = 3
grace = "2s"

[programs.proxy]
shell = "exec sleep 60"
depends_on = ["web"]
grace = "2s"
"#,
    );
    up.wait_line("all programs are up", BOUND);
    let third = up.event_index("web.3", "ready").expect("web.3 ready");
    let proxy = up.event_index("proxy", "started").or_else(|| up.event_index("proxy", "ready")).expect("proxy");
    assert!(third < proxy, "proxy started before web.3 was ready:\n{}", up.transcript());
    down(up);
}

#[test]
fn scaling_keeps_the_other_members_running() {
    let mut up = Up::start(ECHOING);
    up.wait_line("all programs are up", BOUND);
    let before: Vec<u32> = (1..=3).map(|i| pid(&mut up, &format!("web.{i}"))).collect();
    let proxy = pid(&mut up, "proxy");

    up.warren(["scale", "web", "5"]).assert().success();
    assert_eq!(names(&mut up), ["web.1", "web.2", "web.3", "web.4", "web.5", "proxy"]);
    let five: Vec<u32> = (1..=5).map(|i| pid(&mut up, &format!("web.{i}"))).collect();
    assert_eq!(five[..3], before[..], "the first three were touched");
    assert!(testkit::has_env(five[4], "WARREN_REPLICA", "5"));
    assert_eq!(pid(&mut up, "proxy"), proxy, "the dependent was restarted");
    wait_file(&logs_dir(&up).join("web.5.log"), "replica=5");

    up.warren(["scale", "web", "2"]).assert().success();
    assert_eq!(names(&mut up), ["web.1", "web.2", "proxy"]);
    assert_eq!((1..=2).map(|i| pid(&mut up, &format!("web.{i}"))).collect::<Vec<_>>(), before[..2]);
    for gone in &five[2..] {
        assert!(!alive(*gone), "pid {gone} of a removed member still runs");
    }
    assert_eq!(pid(&mut up, "proxy"), proxy, "the dependent was restarted");

    let refused = up.warren(["scale", "proxy", "2"]).assert().failure().get_output().stderr.clone();
    assert!(String::from_utf8_lossy(&refused).contains("not a replicated program"), "{refused:?}");
    up.warren(["scale", "web", "0"]).assert().failure();

    // The group's name stands for its members in start, stop and restart.
    up.warren(["stop", "--only", "web"]).assert().success();
    for name in ["web.1", "web.2"] {
        up.wait_status(name, BOUND, |row| row["state"] == "stopped");
    }
    up.warren(["start", "web"]).assert().success();
    assert_ne!(pid(&mut up, "web.1"), before[0]);
    down(up);
}

#[test]
fn call_goes_round_the_ready_members() {
    let mut up = Up::start(
        r#"
[programs.api]
command = @child@
args = ["plugin"]
ready = "warren"
replicas = 3
"#,
    );
    up.wait_line("all programs are up", BOUND);
    let rows = up.status_json();
    let endpoints: HashSet<&str> = rows.iter().filter_map(|r| r["endpoint"].as_str()).collect();
    assert_eq!(endpoints.len(), 3, "each member has its own socket: {rows:?}");
    let members: Vec<u32> = (1..=3).map(|i| pid(&mut up, &format!("api.{i}"))).collect();
    let call = |target: &str| -> u32 {
        let out = up.warren(["call", target, "Task.Pids"]).assert().success().get_output().stdout.clone();
        let reply: Value = serde_json::from_slice(&out).expect("a JSON reply");
        u32::try_from(reply["pid"].as_u64().expect("pid")).expect("pid fits u32")
    };
    let answered: Vec<u32> = (0..6).map(|_| call("api")).collect();
    let first = members.iter().position(|&p| p == answered[0]).expect("a member answered");
    let expected: Vec<u32> = (0..6).map(|k| members[(first + k) % 3]).collect();
    assert_eq!(answered, expected, "members {members:?}");
    assert_eq!(call("api.2"), members[1]);
    assert_eq!(call("api.2"), members[1]);
    // A member that is not ready is passed over.
    up.warren(["stop", "api.2"]).assert().success();
    let answered: HashSet<u32> = (0..4).map(|_| call("api")).collect();
    assert_eq!(answered, HashSet::from([members[0], members[2]]));
    down(up);
}

#[test]
fn bad_counts_and_taken_names_are_config_errors() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (text, message) in [
        (
            "[programs.web]\nshell = 'true'\nreplicas = 0\n",
            "w.toml:3: program \"web\", field \"replicas\": replicas must be 1 to 1000, not 0",
        ),
        (
            "[defaults]\nreplicas = 2\n[programs.web]\nshell = 'true'\n",
            "w.toml:2: [defaults], field \"replicas\": cannot be set in [defaults]",
        ),
        (
            "[programs.web]\nshell = 'true'\nreplicas = 2\n[programs.\"web.7\"]\nshell = 'true'\n",
            "program \"web.7\": the name \"web.7\" is taken by a replica of \"web\"",
        ),
    ] {
        let err = warren_cli::config::parse(text, &dir.path().join("w.toml")).expect_err(text).to_string();
        assert!(err.contains(message), "{text}: {err}");
    }
}
