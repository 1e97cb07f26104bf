//! The `warren` command end to end: a real `warren up` supervising real, purpose-built
//! misbehaving children (`test-child`), driven by the other subcommands and by signals.
//!
//! Each test has its own temporary directory, configuration and control socket
//! (`WARREN_CONTROL`); the fixture (`common::Up`) bounds every wait and kills whatever is left
//! when a test ends, passed or failed. Tests check at the end that no process is left behind.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{BOUND, Background, Up, alive, pid_in};
use predicates::prelude::*;
use rustix::process::Signal;
use serde_json::{Value, json};

fn exit_code(up: &mut Up) -> Option<i32> {
    up.wait_exit(BOUND).code()
}

/// `warren down`, which returns once everything has stopped; then `warren up`'s exit code.
fn down(up: &mut Up) -> Option<i32> {
    up.warren(["down"]).assert().success().stdout(predicate::str::contains("stopped"));
    let code = exit_code(up);
    assert!(!up.socket().exists(), "the control socket is removed when warren up ends");
    up.assert_no_leftovers(Duration::from_secs(3));
    code
}

#[test]
fn a_crash_loop_is_restarted_with_backoff_then_failed() {
    let mut up = Up::start(
        r#"
[programs.crashy]
command = @child@
args = ["crash-after", "100"]
ready = "notify"
restart = "on-failure"
backoff = { initial = "100ms" }
crash_loop = { max_starts = 3, window = "60s" }

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#,
    );
    up.wait_event("crashy", "failed: crash loop", BOUND);
    let failed = up.event_index("crashy", "failed").expect("a failed line");
    let restarting = up.events("crashy", "exited with code 1; restarting in");
    assert_eq!(restarting.len(), 2, "two restarts before the crash loop:\n{}", up.transcript());
    assert!(restarting.iter().all(|(i, _)| *i < failed), "restarts, then the failure:\n{}", up.transcript());
    // 100 ms, then twice that, each ± 10 % jitter.
    let delays: Vec<u64> = restarting
        .iter()
        .map(|(_, line)| line.text.split("restarting in ").nth(1).and_then(|d| d.strip_suffix(" ms")?.parse().ok()))
        .map(|delay| delay.unwrap_or_else(|| panic!("a delay in ms:\n{}", up.transcript())))
        .collect();
    assert!((90..=110).contains(&delays[0]) && (180..=220).contains(&delays[1]), "backoff delays {delays:?}");
    assert_eq!(up.events("crashy", "starting").len(), 3, "max_starts = 3:\n{}", up.transcript());

    let row = up.row("crashy");
    assert_eq!(row["state"], "failed", "{row:#}");
    assert!(row["detail"].as_str().unwrap_or_default().contains("crash loop"), "{row:#}");
    assert_eq!(row["pid"], Value::Null, "{row:#}");
    assert_eq!(row["last_exit"], "exited with code 1", "{row:#}");

    assert_eq!(down(&mut up), Some(1), "a failed program makes warren up exit 1");
    // Three starts are two restarts.
    assert_eq!(row["restarts"], 2, "restarts counts restarts that happened: {row:#}");
}

#[test]
fn a_crash_before_ready_fails_it_and_its_dependent_which_never_starts() {
    let mut up = Up::start(
        r#"
[programs.dependent]
command = @child@
args = ["ignore-term"]
ready = "notify"
depends_on = ["broken"]

[programs.broken]
command = @child@
args = ["crash-before-ready"]
ready = "notify"
restart = "never"

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#,
    );
    let broken = up.wait_event("broken", "failed", BOUND);
    assert!(broken.text.contains("exited with code 3"), "{}", up.transcript());
    let dependent = up.wait_event("dependent", "failed", BOUND);
    assert!(dependent.text.contains("dependency broken"), "{}", up.transcript());

    let row = up.row("broken");
    assert_eq!(row["state"], "failed", "{row:#}");
    let detail = row["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("exited with code 3"), "the exit status is in the detail: {row:#}");
    assert!(detail.contains("fatal: config file /nonexistent/app.toml not found"), "so is its stderr: {row:#}");
    let row = up.row("dependent");
    assert_eq!(row["state"], "failed", "{row:#}");
    assert!(row["detail"].as_str().unwrap_or_default().contains("dependency"), "{row:#}");
    assert_eq!(row["pid"], Value::Null, "{row:#}");
    assert_eq!(row["restarts"], 0, "{row:#}");
    assert!(up.event_index("dependent", "start").is_none(), "dependent never started:\n{}", up.transcript());
    assert!(up.processes("ignore-term").is_empty(), "no process was started for dependent");

    assert_eq!(down(&mut up), Some(1));
}

#[test]
fn a_program_never_ready_fails_at_its_ready_timeout_and_is_killed() {
    let started = Instant::now();
    let mut up = Up::start(
        r#"
[programs.sluggish]
command = @child@
args = ["never-ready"]
ready = "notify"
ready_timeout = "300ms"

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#,
    );
    // Find its process while it lives (300 ms), to check afterwards that it is gone.
    let pid = loop {
        if let Some(&pid) = up.processes("never-ready").first() {
            break pid;
        }
        assert!(started.elapsed() < BOUND, "sluggish never ran:\n{}", up.transcript());
        std::thread::sleep(Duration::from_millis(2));
    };
    up.learn(pid);
    let failed = up.wait_event("sluggish", "failed", BOUND);
    assert!(failed.text.contains("not ready within"), "{}", up.transcript());
    assert!(failed.at - started < Duration::from_secs(5), "failed after {:?}", failed.at - started);
    assert!(!alive(pid), "the never-ready process {pid} was killed");
    let row = up.row("sluggish");
    assert_eq!(row["state"], "failed", "{row:#}");
    assert_eq!(row["pid"], Value::Null, "{row:#}");
    assert!(row["detail"].as_str().unwrap_or_default().contains("warming up forever"), "its stderr explains: {row:#}");
    // A call to a running program that serves no RPC says what would make it serve.
    up.warren(["call", "idle", "Task.Get"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("idle does not serve RPC: give it"));

    assert_eq!(down(&mut up), Some(1));
}

#[test]
fn a_failing_health_check_restarts_the_program() {
    let mut up = Up::start(
        r#"
[programs.sickly]
command = @child@
args = ["plugin"]
ready = "warren"
restart = "on-failure"
backoff = { initial = "100ms" }
health = { exec = [@child@, "crash-before-ready"], interval = "100ms", timeout = "1s", failures = 2 }
"#,
    );
    let first = pid_in(&up.wait_event("sickly", "ready", BOUND).text).expect("pid");
    up.wait_event("sickly", "stopping", BOUND);
    // The restart says why: the check's exit code (and its last stderr line, if any).
    up.wait_event("sickly", "health check failed 2 times: exit code", BOUND);
    let second = pid_in(&up.wait_events("sickly", "ready", 2, BOUND).text).expect("pid");
    up.learn(second);
    assert_ne!(first, second, "a new process");
    assert!(!alive(first), "the unhealthy process {first} is gone");
    let row = up.row("sickly");
    assert!(row["restarts"].as_u64().is_some_and(|n| n >= 1), "{row:#}");

    // Restarted for its health, not failed: stopping it now is a clean end.
    assert_eq!(down(&mut up), Some(0));
}

#[test]
fn stop_kills_a_program_that_ignores_sigterm_after_its_grace() {
    let mut up = Up::start(
        r#"
[programs.stubborn]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "300ms"

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#,
    );
    let pid = pid_in(&up.wait_event("stubborn", "ready", BOUND).text).expect("pid");
    let asked = Instant::now();
    up.warren(["stop", "stubborn"]).assert().success().stdout(predicate::str::contains("stubborn: stopped"));
    let stopped = up.wait_event("stubborn", "stopped", BOUND);
    let took = stopped.at - asked;
    assert!(took >= Duration::from_millis(250), "it was given its grace: stopped after {took:?}");
    assert!(took < Duration::from_secs(2), "SIGKILL at the grace: stopped after {took:?}");
    assert!(!alive(pid), "process {pid} is gone");
    up.wait_line("stubborn | ignoring SIGTERM", BOUND);
    let row = up.row("stubborn");
    assert_eq!(row["state"], "stopped", "{row:#}");
    assert_eq!(row["last_exit"], "killed by SIGKILL", "{row:#}");
    assert_eq!(row["pid"], Value::Null, "{row:#}");

    assert_eq!(down(&mut up), Some(0), "a program stopped on request is no failure");
}

#[test]
fn programs_start_in_dependency_order_and_sigint_stops_them_in_reverse() {
    // Listed in the file in the wrong order on purpose.
    let mut up = Up::start(
        r#"
[programs.gamma]
command = @child@
args = ["plugin"]
ready = "warren"
depends_on = ["beta"]

[programs.beta]
command = @child@
args = ["plugin"]
ready = "warren"
depends_on = ["alpha"]

[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"
"#,
    );
    up.wait_line("all programs are up", BOUND);
    let at = |up: &Up, program: &str, what: &str| {
        up.event_index(program, what).unwrap_or_else(|| panic!("no {program}: {what}\n{}", up.transcript()))
    };
    assert!(at(&up, "alpha", "ready") < at(&up, "beta", "starting"), "{}", up.transcript());
    assert!(at(&up, "beta", "ready") < at(&up, "gamma", "starting"), "{}", up.transcript());
    for program in ["alpha", "beta", "gamma"] {
        up.wait_event(program, "ready", BOUND);
    }

    up.signal(Signal::INT);
    assert_eq!(exit_code(&mut up), Some(0), "everything stopped cleanly:\n{}", up.transcript());
    up.wait_line("SIGINT: stopping all programs", BOUND);
    let order = [
        at(&up, "gamma", "stopping"),
        at(&up, "gamma", "stopped"),
        at(&up, "beta", "stopping"),
        at(&up, "beta", "stopped"),
        at(&up, "alpha", "stopping"),
        at(&up, "alpha", "stopped"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "reverse dependency order:\n{}", up.transcript());
    assert!(!up.socket().exists(), "the control socket is removed");
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn a_second_sigint_kills_what_is_still_stopping() {
    let mut up = Up::start(
        r#"
[programs.stubborn]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "60s"
"#,
    );
    up.wait_event("stubborn", "ready", BOUND);
    up.signal(Signal::INT);
    up.wait_event("stubborn", "stopping", BOUND);
    up.wait_line("stubborn | ignoring SIGTERM", BOUND);
    let again = Instant::now();
    up.signal(Signal::INT);
    up.wait_line("SIGINT again: killing every process group now", BOUND);
    let stopped = up.wait_event("stubborn", "stopped", BOUND);
    assert!(stopped.at - again < Duration::from_secs(2), "killed at once, not after the 60 s grace");
    up.wait_exit(BOUND);
    assert!(!up.socket().exists(), "the control socket is removed");
    up.assert_no_leftovers(Duration::from_secs(3));
}

const TWO_PLUGINS: &str = r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.beta]
command = @child@
args = ["plugin"]
ready = "warren"
"#;

#[test]
fn status_call_logs_and_restart_drive_the_running_instance() {
    let mut up = Up::start(TWO_PLUGINS);
    up.wait_line("all programs are up", BOUND);
    let rows = up.status_json();

    let output = up.warren(["status"]).assert().success().get_output().stdout.clone();
    let table = String::from_utf8(output).expect("UTF-8");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(&header[..5], ["NAME", "STATE", "PID", "FOR", "RESTARTS"], "{table}");
    let table_rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(table_rows.len(), 2, "one row per program:\n{table}");
    for (cells, row) in table_rows.iter().zip(&rows) {
        assert_eq!(cells[0], row["name"], "{table}");
        assert_eq!(cells[1], "ready", "{table}");
        assert_eq!(cells[2], row["pid"].as_u64().expect("a pid").to_string(), "{table}");
    }

    let reply = up.warren(["call", "alpha", "Task.Get", r#""new_id""#]).assert().success().get_output().stdout.clone();
    let reply: Value = serde_json::from_slice(&reply).expect("call prints JSON");
    assert_eq!(reply, json!({ "id": "new_id" }));

    for args in [&["call", "nope", "Task.Get"][..], &["stop", "nope"], &["restart", "nope"]] {
        up.warren(args).assert().code(5).stderr(predicate::str::contains("\"nope\""));
    }

    up.warren(["logs", "alpha"]).assert().success().stdout(predicate::str::contains("Serving RPC server"));

    let before = up.row("alpha")["pid"].as_u64().expect("pid");
    up.warren(["restart", "alpha"]).assert().success().stdout(predicate::str::contains("alpha: ready (pid"));
    let row = up.wait_status("alpha", BOUND, |row| row["state"] == "ready" && row["pid"].as_u64() != Some(before));
    assert!(!alive(u32::try_from(before).expect("a pid")), "the old alpha is gone: {row:#}");
    assert_eq!(row["restarts"], 1, "{row:#}");
    assert_eq!(up.row("beta")["restarts"], 0, "only alpha was restarted");

    // A call to a stopped program says so, not "not running, or does not serve RPC".
    up.warren(["stop", "beta"]).assert().success();
    up.warren(["call", "beta", "Task.Get", r#""x""#])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("beta is not running (stopped)"));

    assert_eq!(down(&mut up), Some(0));
}

#[test]
fn logs_follow_shows_new_lines_also_of_a_restarted_program() {
    let mut up = Up::start(
        r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"
"#,
    );
    up.wait_event("alpha", "ready", BOUND);
    let mut follow = std::process::Command::new(common::WARREN);
    follow.args(["logs", "-f", "alpha"]).env("WARREN_CONTROL", up.socket()).env("NO_COLOR", "1");
    let mut follow = Background::spawn(follow);
    // The history comes after the subscription, so once it is shown no new line can be missed.
    follow.wait_lines("Serving RPC server", 1, BOUND);

    // A restart: the old instance says it stops, the new one that it serves.
    up.warren(["restart", "alpha"]).assert().success();
    up.wait_events("alpha", "ready", 2, BOUND);
    follow.wait_lines("stop the server", 1, BOUND);
    follow.wait_lines("Serving RPC server", 2, BOUND);

    assert_eq!(down(&mut up), Some(0));
    assert!(follow.wait_exit(BOUND).success(), "logs -f ends with the instance");
}

#[test]
fn a_second_up_for_the_same_instance_exits_3() {
    let mut up = Up::start(TWO_PLUGINS);
    up.wait_line("all programs are up", BOUND);
    up.warren([std::ffi::OsStr::new("up"), "-f".as_ref(), up.config().as_os_str()])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("already running"));
    // The first instance is untouched.
    assert!(up.status_json().iter().all(|row| row["state"] == "ready"));
    assert_eq!(down(&mut up), Some(0));
}

#[test]
fn commands_without_a_running_instance_exit_4() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket = dir.path().join("nobody.sock");
    for args in
        [&["status"][..], &["status", "--json"], &["stop", "x"], &["logs", "x"], &["call", "x", "A.B"], &["down"]]
    {
        assert_cmd::Command::new(common::WARREN)
            .args(args)
            .current_dir(dir.path())
            .env("WARREN_CONTROL", &socket)
            .timeout(BOUND)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("no warren instance is running"));
    }
}

#[test]
fn a_config_error_exits_2_naming_file_line_program_and_field() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("warren.toml");
    std::fs::write(
        &file,
        common::with_child(
            r#"[programs.api]
command = @child@
args = ["plugin"]
backoff = { inital = "1s" }

[programs.web]
command = @child@
restrat = "never"
"#,
        ),
    )
    .expect("write warren.toml");
    let socket = dir.path().join("ctl.sock");
    assert_cmd::Command::new(common::WARREN)
        .args(["up", "-f", "warren.toml"])
        .current_dir(dir.path())
        .env("WARREN_CONTROL", &socket)
        .timeout(BOUND)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            r#"warren.toml:4: program "api", field "backoff": unknown key "inital" (did you mean "initial"?)"#,
        ))
        .stderr(predicate::str::contains(
            r#"warren.toml:8: program "web": unknown key "restrat" (did you mean "restart"?)"#,
        ));
    assert!(!socket.exists(), "nothing was started");
}

#[test]
fn ready_is_reported_to_notify_socket_once_all_programs_are_up() {
    let mut socket = None;
    let mut up = Up::start_with(
        r#"
[programs.alpha]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.beta]
command = @child@
args = ["plugin"]
ready = "warren"
depends_on = ["alpha"]

[programs.gamma]
command = @child@
args = ["ignore-term"]
ready = "notify"
grace = "300ms"
depends_on = ["beta"]
"#,
        |command, dir| {
            let path = dir.join("notify.sock");
            socket = Some(UnixDatagram::bind(&path).expect("bind the notify socket"));
            command.env("NOTIFY_SOCKET", path);
        },
    );
    let socket = socket.expect("bound");
    socket.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within the bound");
    assert_eq!(&buf[..n], b"READY=1");
    // By then every program is ready.
    let rows = up.status_json();
    assert!(rows.iter().all(|row| row["state"] == "ready"), "READY=1 came early: {rows:#?}");
    up.wait_line("all programs are up", BOUND);

    up.signal(Signal::TERM);
    let n = socket.recv(&mut buf).expect("a notification when stopping");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(exit_code(&mut up), Some(0), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn probes_do_not_inherit_warrens_notify_socket() {
    let mut socket = None;
    // The readiness probe says READY=1 to any NOTIFY_SOCKET it is given, then fails: if it were
    // given warren's, systemd would hear that warren is ready while this program never is.
    let mut up = Up::start_with(
        r#"
[programs.probed]
command = @child@
args = ["never-ready"]
ready = { exec = [@child@, "crash-after", "0"], interval = "100ms" }
ready_timeout = "1s"

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#,
        |command, dir| {
            let path = dir.join("notify.sock");
            socket = Some(UnixDatagram::bind(&path).expect("bind the notify socket"));
            command.env("NOTIFY_SOCKET", path);
        },
    );
    let socket = socket.expect("bound");
    up.wait_event("probed", "failed: not ready within", BOUND);
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 256];
    let got = socket.recv(&mut buf).map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
    assert!(got.is_err(), "warren's NOTIFY_SOCKET got {got:?} though a program never became ready");
    assert_eq!(down(&mut up), Some(1));
}

/// `env(1)` by its path, so that the test does not depend on how a bare name is found without a
/// `PATH` in the program's environment.
fn env_program() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("env")).find(|env| env.is_file()).expect("env(1) on PATH")
}

/// The variables a program printed with `env(1)`, from `warren up`'s whole output.
fn printed_env(up: &mut Up, program: &str) -> std::collections::BTreeMap<String, String> {
    up.wait_for(&format!("{program}'s environment"), BOUND, |lines| {
        let vars: std::collections::BTreeMap<String, String> = lines
            .iter()
            .filter(|l| l.stream == common::Stream::Stdout)
            .filter_map(|l| l.split().filter(|(who, _)| *who == program))
            .filter_map(|(_, text)| text.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        vars.contains_key("WARREN_NAME").then_some(vars)
    })
}

#[test]
fn clear_env_gives_a_program_only_its_env_and_warrens_own_variables() {
    let env = common::toml_string(&env_program().to_string_lossy());
    let mut up = Up::start(&format!(
        r#"
[programs.cleared]
command = {env}
clear_env = true
env = {{ FOO = "bar" }}

[programs.inherited]
command = {env}
env = {{ FOO = "bar" }}

# Keeps `warren up` running once the programs under test have ended, so that their final
# state can be read (`up` ends by itself once nothing runs).
[programs.idle]
command = @child@
args = ["sleeper"]
"#
    ));
    for program in ["cleared", "inherited"] {
        up.wait_event(program, "exited with code 0", BOUND);
    }
    // Stopped and its output ended, so every line the programs printed is in.
    assert_eq!(down(&mut up), Some(0), "{}", up.transcript());

    let cleared = printed_env(&mut up, "cleared");
    let names: Vec<&str> = cleared.keys().map(String::as_str).collect();
    assert_eq!(names, ["FOO", "WARREN_HOST_PID", "WARREN_NAME", "WARREN_PROTOCOL"], "{}", up.transcript());
    assert_eq!(cleared["FOO"], "bar");
    assert_eq!(cleared["WARREN_NAME"], "cleared");
    assert_eq!(cleared["WARREN_HOST_PID"], up.pid().to_string());
    assert_eq!(cleared["WARREN_PROTOCOL"], warren_rpc::PROTOCOL_VERSION.to_string());

    let inherited = printed_env(&mut up, "inherited");
    let path = std::env::var("PATH").expect("the test has a PATH");
    assert_eq!(inherited.get("PATH"), Some(&path), "warren's environment is inherited by default");
    assert!(inherited.contains_key("WARREN_TEST_TAG"), "warren's own environment reaches the program");
    assert_eq!(inherited.get("FOO").map(String::as_str), Some("bar"));
    assert_eq!(inherited.get("WARREN_NAME").map(String::as_str), Some("inherited"));
}

#[test]
fn a_socket_file_deleted_under_a_program_is_reported_or_restarted_as_configured() {
    let mut up = Up::start_with(
        r#"
[programs.kept]
command = @child@
args = ["plugin"]
rpc = true
on_socket_lost = "report"

[programs.healed]
command = @child@
args = ["plugin"]
rpc = true
"#,
        // Where the host makes its runtime directory, so the test can find the sockets.
        |command, dir| {
            command.env("XDG_RUNTIME_DIR", dir);
        },
    );
    let kept = pid_in(&up.wait_event("kept", "ready", BOUND).text).expect("pid");
    let healed = pid_in(&up.wait_event("healed", "ready", BOUND).text).expect("pid");
    let runtime = std::fs::read_dir(up.dir())
        .expect("read the test dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("warren-")))
        .expect("the host's runtime directory");
    for name in ["kept", "healed"] {
        std::fs::remove_file(runtime.join(format!("{name}.sock"))).expect("delete the socket file");
    }
    let row = up.wait_status("kept", BOUND, |row| row["socket_lost"].is_string());
    let lost = row["socket_lost"].as_str().unwrap_or_default();
    assert!(lost.contains("kept.sock") && lost.contains("was deleted"), "{row:#}");
    assert_eq!(
        (row["state"].as_str(), row["pid"].as_u64(), row["restarts"].as_u64()),
        (Some("ready"), Some(u64::from(kept)), Some(0))
    );
    up.warren(["status"]).assert().success().stdout(predicate::str::contains("kept.sock was deleted"));
    // The default restarts it at once, and the new instance binds the socket again.
    let second = pid_in(&up.wait_events("healed", "ready", 2, BOUND).text).expect("pid");
    up.learn(second);
    assert_ne!(second, healed);
    assert!(runtime.join("healed.sock").exists(), "bound again");
    let row = up.row("healed");
    assert_eq!((row["restarts"].as_u64(), row.get("socket_lost")), (Some(1), None), "{row:#}");
    assert_eq!(down(&mut up), Some(0));
}
