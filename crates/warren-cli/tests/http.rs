//! `[http] listen`: the endpoint for a kubelet's probes and a Prometheus scrape, read over
//! loopback.

use std::collections::HashMap;

#[expect(dead_code, reason = "the fixture serves other tests too; this file uses part of it")]
mod common;
use common::{BOUND, Up};
use rustix::process::Signal;

/// A loopback port nobody listens on now (the kernel picks it; it is free until warren binds).
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local address").port()
}

fn get(port: u16, path: &str) -> (u16, String) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(BOUND)).build().into();
    let mut response = agent.get(&format!("http://127.0.0.1:{port}{path}")).call().expect("GET");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("read the body"))
}

/// Each program's value of `metric`.
fn metric(text: &str, metric: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics in the Prometheus text format");
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == metric)
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v)
                | prometheus_parse::Value::Counter(v) => v,
                other => panic!("{metric}: unexpected value {other:?}"),
            };
            (s.labels.get("program").expect("a program label").to_owned(), value)
        })
        .collect()
}

#[test]
fn healthz_readyz_metrics_and_status_over_loopback() {
    let port = free_port();
    let mut up = Up::start(&format!(
        r#"
[http]
listen = "127.0.0.1:{port}"

[programs.web]
command = "/bin/sh"
args = ["-c", "echo one; echo two; exec sleep 30"]

[programs.never]
command = "sleep"
args = ["30"]
ready = {{ exec = ["false"], interval = "100ms" }}
ready_timeout = "60s"
"#
    ));
    up.wait_event("web", "ready", BOUND);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_owned()));

    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("never: ") && !body.contains("web: "), "{body}");

    let (code, text) = get(port, "/metrics");
    assert_eq!(code, 200, "{text}");
    let up_now = metric(&text, "warren_program_up");
    assert_eq!(up_now.get("web"), Some(&1.0), "{text}");
    assert_eq!(up_now.get("never"), Some(&1.0), "{text}");
    assert_eq!(metric(&text, "warren_program_ready").get("never"), Some(&0.0), "{text}");
    assert_eq!(metric(&text, "warren_program_ready").get("web"), Some(&1.0), "{text}");
    assert_eq!(metric(&text, "warren_program_restarts").get("web"), Some(&0.0), "{text}");
    assert!(metric(&text, "warren_program_rss_bytes").get("web").is_some_and(|&rss| rss > 100_000.0), "{text}");
    assert!(metric(&text, "warren_program_cpu_seconds").contains_key("web"), "{text}");
    assert_eq!(metric(&text, "warren_program_log_lost_lines").get("web"), Some(&0.0), "{text}");
    // The two lines reach the log as the pump reads them.
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let text = get(port, "/metrics").1;
        if metric(&text, "warren_program_log_lines").get("web") == Some(&2.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "web's two lines are not counted:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let (code, json) = get(port, "/status");
    assert_eq!(code, 200, "{json}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("status JSON");
    let names: Vec<&str> = rows.iter().filter_map(|row| row["name"].as_str()).collect();
    assert_eq!(names, ["web", "never"]);
    assert_eq!(rows[0]["state"], "ready");

    up.warren(["stop", "never"]).assert().success();
    let (code, body) = get(port, "/readyz");
    assert_eq!((code, body.as_str()), (200, "ready\n"));

    up.signal(Signal::TERM);
    assert_eq!(up.wait_exit(BOUND).code(), Some(0));
    up.assert_no_leftovers(BOUND);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the endpoint is closed");
}

#[test]
fn an_http_table_with_a_bad_address_is_a_config_error() {
    let up = Up::start("[programs.x]\ncommand = \"true\"\n");
    let config = up.dir().join("bad.toml");
    std::fs::write(&config, "[http]\nlisten = \"localhost\"\n\n[programs.x]\ncommand = \"true\"\n").expect("write");
    let output = up.warren(["up", "-f"]).arg(&config).output().expect("run warren up");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("http.listen"), "{stderr}");
}

#[test]
fn metrics_count_the_calls_warren_carries_to_each_rpc_program() {
    let port = free_port();
    let mut up = Up::start(&format!(
        r#"
[http]
listen = "127.0.0.1:{port}"

[programs.api]
command = @child@
args = ["plugin"]
ready = "warren"

[programs.quiet]
command = "sleep"
args = ["30"]
"#
    ));
    up.wait_line("all programs are up", BOUND);
    let (_, before) = get(port, "/metrics");
    assert_eq!(metric(&before, "warren_program_rpc_calls_total").get("api"), Some(&0.0), "{before}");
    assert!(!metric(&before, "warren_program_rpc_calls_total").contains_key("quiet"), "no RPC, no figure:\n{before}");

    up.warren(["call", "api", "Task.Get", r#""a""#]).assert().success();
    up.warren(["call", "api", "Task.Get", r#""b""#]).assert().success();
    up.warren(["call", "api", "Task.NoSuchMethod", "null"]).assert().failure();

    let (_, text) = get(port, "/metrics");
    assert_eq!(metric(&text, "warren_program_rpc_calls_total").get("api"), Some(&3.0), "{text}");
    assert_eq!(metric(&text, "warren_program_rpc_errors_total").get("api"), Some(&1.0), "{text}");

    up.signal(Signal::TERM);
    assert_eq!(up.wait_exit(BOUND).code(), Some(0));
    up.assert_no_leftovers(BOUND);
}
