//! HTTP probes and what `status` shows, with the real `warren`: a Python standard-library web
//! server made ready through `http`, restarted when its health URL fails with the reason in
//! `up`'s output and in `status`; health, CPU %, RSS and endpoint columns; `status NAME`.

#[allow(dead_code)]
mod common;

use common::{BOUND, Up};
use serde_json::Value;

/// A web server that answers /healthz with 200, 503 while a file `sick` exists in its
/// directory, and not at all while a file `hang` exists.
const SERVER: &str = r#"
import http.server, os, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while os.path.exists("hang"):
            time.sleep(0.05)
        self.send_response(503 if os.path.exists("sick") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

fn web(port: u16, failures: u32, timeout: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/healthz");
    format!(
        r#"
[programs.web]
command = "python3"
args = ["-c", '''{SERVER}''', "{port}"]
ready = {{ http = "{url}", interval = "50ms" }}
restart = "always"
backoff = {{ initial = "100ms" }}
health = {{ http = "{url}", status = 200, interval = "200ms", timeout = "{timeout}", failures = {failures} }}
"#
    )
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn python_available() -> bool {
    std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn down(up: &mut Up) {
    up.warren(["down"]).assert().success();
    assert!(up.wait_exit(BOUND).success(), "warren up exits 0:\n{}", up.transcript());
    up.assert_no_leftovers(BOUND);
}

#[test]
fn an_http_server_is_ready_through_http_and_a_failing_health_url_restarts_it_with_the_reason() {
    if !python_available() {
        testkit::skip::unavailable("python3 is not installed");
        return;
    }
    let mut up = Up::start(&web(free_port(), 2, "1s"));
    up.wait_event("web", "ready", BOUND);
    let row = up.wait_status("web", BOUND, |row| row["health"] == "healthy");
    assert_eq!(row["health_failures"], 0, "{row:#}");

    std::fs::write(up.dir().join("sick"), "").expect("make the server sick");
    // Each failed check is logged with its reason and count, then the stop says why.
    up.wait_line("web: health check failed (1 of 2): HTTP 503 (expected 200)", BOUND);
    let stop = up.wait_event("web", "stopping: health check failed 2 times: HTTP 503 (expected 200)", BOUND);
    let failed = up.wait_event("web", "health check failed 2 times: HTTP 503 (expected 200); restarting in", BOUND);
    assert!(failed.at >= stop.at);
    let row = up.row("web");
    assert_eq!(row["health"], "unhealthy", "{row:#}");
    assert_eq!(row["health_failures"], 2, "{row:#}");
    assert_eq!(row["health_reason"], "HTTP 503 (expected 200)", "{row:#}");
    std::fs::remove_file(up.dir().join("sick")).expect("heal the server");

    up.wait_events("web", "ready", 2, BOUND);
    let row = up.wait_status("web", BOUND, |row| row["health"] == "healthy");
    assert_eq!(row["restarts"], 1, "{row:#}");
    let why = row["last_restart"].as_str().expect("a restart reason");
    assert_eq!(why, "health check failed 2 times: HTTP 503 (expected 200)");

    let output = up.warren(["status"]).output().expect("warren status");
    let table = stdout(&output);
    let line = table.lines().find(|l| l.starts_with("web ")).unwrap_or_else(|| panic!("no web line:\n{table}"));
    assert!(line.contains("healthy") && line.contains("restarted: health check failed 2 times"), "{table}");

    let output = up.warren(["status", "web"]).output().expect("warren status web");
    let detail = stdout(&output);
    assert!(output.status.success(), "{detail}");
    for needle in ["command:", "python3 -c", "GET http://127.0.0.1:", "answers 200", "recent changes:"] {
        assert!(detail.contains(needle), "no {needle:?} in:\n{detail}");
    }
    let changes: Vec<&str> = detail.lines().skip_while(|l| *l != "recent changes:").skip(1).collect();
    assert_eq!(changes.len(), 5, "the last five changes:\n{detail}");
    let restart = changes.iter().find(|l| l.contains("restarting in")).expect("the restart is among them");
    assert!(restart.contains(": health check failed 2 times: HTTP 503"), "the change says why:\n{detail}");
    down(&mut up);
}

#[test]
fn a_health_url_that_does_not_answer_fails_with_no_answer_in_its_timeout() {
    if !python_available() {
        testkit::skip::unavailable("python3 is not installed");
        return;
    }
    let mut up = Up::start(&web(free_port(), 1, "300ms"));
    up.wait_event("web", "ready", BOUND);
    std::fs::write(up.dir().join("hang"), "").expect("make the server hang");
    up.wait_event("web", "stopping: health check failed: no answer in 300ms", BOUND);
    std::fs::remove_file(up.dir().join("hang")).expect("let it answer");
    up.wait_events("web", "ready", 2, BOUND);
    let row = up.row("web");
    assert!(row["last_restart"].as_str().is_some_and(|why| why.contains("no answer in 300ms")), "{row:#}");
    down(&mut up);
}

fn number(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number: {row:#}"))
}

#[test]
fn status_shows_health_cpu_rss_and_endpoint_of_each_program() {
    let mut up = Up::start(
        r#"
[programs.busy]
command = "sh"
# The loop runs in a child of the shell: the figures are of the whole tree.
args = ["-c", "(while :; do :; done) & wait"]

[programs.rpc]
command = @child@
args = ["plugin"]
ready = "warren"
health = { rpc_ping = true, interval = "100ms" }

[programs.idle]
command = @child@
args = ["sleeper"]

[programs.slow]
command = @child@
args = ["sleeper"]
ready = { exec = ["false"], interval = "100ms" }
ready_timeout = "60s"
health = { exec = ["true"], interval = "100ms" }
"#,
    );
    up.wait_event("busy", "started", BOUND);
    // A check that has not answered yet is not "no check".
    let slow = up.wait_status("slow", BOUND, |row| row["state"] == "running");
    assert_eq!(slow["health"], "pending", "{slow:#}");
    up.wait_event("rpc", "ready", BOUND);
    up.wait_event("idle", "started", BOUND);
    // A busy loop uses CPU in any window of a few tenths of a second, shared CPUs or not; the
    // shell that waits for it uses none.
    let busy = up.wait_status("busy", BOUND, |row| row["cpu_percent"].as_f64().is_some_and(|cpu| cpu > 1.0));
    assert!(number(&busy, "rss_bytes") > 0.0, "{busy:#}");
    assert_eq!(busy["health"], Value::Null, "no check, no verdict: {busy:#}");
    assert_eq!(busy["endpoint"], Value::Null, "{busy:#}");
    let rpc = up.wait_status("rpc", BOUND, |row| row["health"] == "healthy");
    assert!(rpc["endpoint"].as_str().is_some_and(|e| e.starts_with("unix:") && e.ends_with(".sock")), "{rpc:#}");
    assert!(number(&rpc, "rss_bytes") > 0.0, "{rpc:#}");
    for key in ["health_failures", "checks_failed", "last_restart", "health_reason", "cpu_percent"] {
        assert!(rpc.get(key).is_some(), "--json has {key}: {rpc:#}");
    }

    let output = up.warren(["status"]).output().expect("warren status");
    let table = stdout(&output);
    let header = table.lines().next().expect("a header");
    for column in ["HEALTH", "CPU", "RSS", "ENDPOINT"] {
        assert!(header.contains(column), "no {column} column:\n{table}");
    }
    let line = |name: &str| table.lines().find(|l| l.starts_with(&format!("{name} "))).expect("a line").to_owned();
    assert!(line("rpc").contains("healthy") && line("rpc").contains("unix:"), "{table}");
    assert!(line("busy").contains('%') && line("busy").contains(" - "), "{table}");
    assert!(line("idle").contains('M') || line("idle").contains('K'), "an RSS figure:\n{table}");

    let output = up.warren(["status", "nosuch"]).output().expect("warren status nosuch");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no program named \"nosuch\""), "{output:?}");
    let output = up.warren(["status", "rpc", "--json"]).output().expect("warren status rpc --json");
    let detail: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(detail["status"]["name"], "rpc");
    assert!(detail["changes"].as_array().is_some_and(|c| !c.is_empty()), "{detail:#}");
    assert!(detail["health_check"].as_str().is_some_and(|c| c.contains("RPC ping")), "{detail:#}");
    down(&mut up);
}

#[test]
fn http_probe_keys_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (probe, message) in [
        (r#"ready = { http = "https://127.0.0.1/" }"#, "invalid URL"),
        (r#"ready = { connect = "tcp:127.0.0.1:1", status = 200 }"#, "status applies only to http"),
        (r#"ready = { exec = ["true"], timeout = "1s" }"#, "timeout applies only to http"),
        (r#"health = { http = "http://127.0.0.1:1/", status = 99 }"#, "not an HTTP status"),
    ] {
        let file = dir.path().join("warren.toml");
        std::fs::write(&file, format!("[programs.web]\ncommand = \"true\"\n{probe}\n")).expect("write");
        let output = assert_cmd::Command::new(common::WARREN)
            .args(["up", "-f"])
            .arg(&file)
            .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
            .timeout(BOUND)
            .output()
            .expect("warren up");
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && text.contains(message), "{probe}: {text}");
    }
}

#[test]
fn a_program_that_stops_its_watchdog_keepalives_is_restarted_and_its_status_text_shows() {
    // 6 keep-alives 50 ms apart keep it alive past its 200 ms period; then it hangs.
    let mut up = Up::start(
        r#"
[programs.worker]
command = @child@
args = ["watchdog", "6"]
ready = "notify"
watchdog = "200ms"
backoff = { initial = "100ms" }
"#,
    );
    up.wait_event("worker", "ready", BOUND);
    let row = up.row("worker");
    assert_eq!(row["notify_status"], "serving", "STATUS= reaches status: {row:#}");
    let table = stdout(&up.warren(["status"]).output().expect("run warren status"));
    assert!(table.contains(r#""serving""#), "{table}");

    up.wait_event("worker", "stopping: watchdog: no WATCHDOG=1 within 200 ms", BOUND);
    // Kept alive by its pings: stopped only after it said it sent its last (300 ms after ready).
    let (said, stopping) = up.wait_for("its last keep-alive and its stop", BOUND, |lines| {
        let said = lines.iter().position(|l| l.text.contains("no more keep-alives"))?;
        Some((said, lines.iter().position(|l| l.is_event("worker", "stopping"))?))
    });
    assert!(said < stopping, "stopped while it still sent keep-alives:\n{}", up.transcript());
    up.wait_events("worker", "ready", 2, BOUND);
    let row = up.wait_status("worker", BOUND, |row| row["restarts"] == 1);
    assert!(row["last_restart"].as_str().is_some_and(|why| why.starts_with("watchdog: ")), "{row:#}");
    let detail = stdout(&up.warren(["status", "worker"]).output().expect("run warren status worker"));
    assert!(detail.contains("says:"), "{detail}");
    down(&mut up);
}

#[test]
fn a_watchdog_needs_a_notify_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    std::fs::write(&file, "[programs.a]\ncommand = \"sleep\"\nargs = [\"1\"]\nwatchdog = \"1s\"\n").expect("write");
    let output =
        std::process::Command::new(common::WARREN).arg("up").arg("-f").arg(&file).output().expect("run warren up");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warren.toml:4: program \"a\", field \"watchdog\": watchdog needs ready = \"notify\" or \"warren\""
        ),
        "{stderr}"
    );
}

#[test]
fn a_connect_check_on_a_socket_warren_holds_is_refused() {
    // warren's copy accepts before the program runs: such a check would pass at once.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    let cases = [
        ("[\"tcp:127.0.0.1:8080\"]", "127.0.0.1:8080", "tcp:127.0.0.1:8080"),
        ("[\"unix:api.sock\"]", "unix:api.sock", "unix:"),
    ];
    for (listen, connect, said) in cases {
        let toml =
            format!("[programs.a]\ncommand = \"sleep\"\nlisten = {listen}\nready = {{ connect = \"{connect}\" }}\n");
        std::fs::write(&file, toml).expect("write");
        let output = std::process::Command::new(common::WARREN).args(["check", "-f"]).arg(&file).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("warren.toml:4: program \"a\", field \"ready\": ready = { connect = \"")
                && stderr.contains(said)
                && stderr.contains("is one of its own `listen` sockets"),
            "{stderr}"
        );
    }
    // Another address is fine.
    std::fs::write(&file, "[programs.a]\ncommand = \"sleep\"\nlisten = [\"tcp:127.0.0.1:8080\"]\nready = { connect = \"127.0.0.1:8081\" }\n")
        .expect("write");
    let output = std::process::Command::new(common::WARREN).args(["check", "-f"]).arg(&file).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
