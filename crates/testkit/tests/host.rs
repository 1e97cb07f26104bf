//! The host with real child processes: pipes, readiness, stop and escalation.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use testkit::{SLACK, within};
use warren::{Exit, Host, Leak, LogLine, LogSink, Outcome, Readiness, SpawnError, Spec, Stream};

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

#[derive(Default)]
struct Collect {
    lines: Mutex<Vec<LogLine>>,
    closed: Mutex<Vec<(String, Stream)>>,
}

impl Collect {
    fn lines(&self, stream: Stream) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| l.stream == stream)
            .cloned()
            .collect()
    }
}

impl LogSink for Collect {
    fn line(&self, line: LogLine) {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }
    fn closed(&self, child: &str, stream: Stream) {
        self.closed.lock().unwrap_or_else(PoisonError::into_inner).push((child.to_owned(), stream));
    }
}

fn host_with_sink() -> (Host, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let host = Host::builder().log_sink(sink.clone()).build().expect("host");
    (host, sink)
}

fn plain(mode: &str) -> Spec {
    Spec::new(CHILD).name(mode).arg(mode).rpc(false).readiness(Readiness::Started)
}

/// Whether `pid` is gone within `bound`. A zombie still has a /proc entry: it counts as present,
/// since nobody reaped it.
async fn until_gone(pid: u32, bound: Duration) -> bool {
    let gone = testkit::poll_until(bound, || !testkit::running(pid)).await;
    if !gone {
        eprintln!("still there: {}", std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default());
    }
    gone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_lines_arrive_in_order_none_lost_or_merged() {
    let (host, sink) = host_with_sink();
    let child = host.spawn(plain("flood").arg("1000000")).await.expect("spawn");
    assert_eq!(within("flood", child.wait()).await, Exit::Code(0));
    let report = within("stop", child.stop(Duration::from_secs(5))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 });
    let lines = sink.lines(Stream::Stdout);
    assert_eq!(lines.len(), 1_000_000, "every line arrived");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.seq, i as u64 + 1, "sequence numbers have no gap");
        assert!(line.text.starts_with(&format!("line {i:08} ")), "line {i} is {:?}", line.text);
        assert!(!line.continues && !line.unterminated);
    }
    assert!(sink.closed.lock().unwrap_or_else(PoisonError::into_inner).len() == 2, "both pipes reached EOF");
}

#[tokio::test]
async fn long_lines_are_split_invalid_utf8_shown_and_the_last_line_kept() {
    let (host, sink) = host_with_sink();
    let child = host.spawn(plain("odd-output").max_line(4096)).await.expect("spawn");
    within("odd-output", child.wait()).await;
    within("stop", child.stop(Duration::from_secs(5))).await;
    let lines = sink.lines(Stream::Stdout);
    let long: Vec<&LogLine> = lines.iter().take_while(|l| l.text.starts_with('x')).collect();
    assert_eq!(long.iter().map(|l| l.text.len()).sum::<usize>(), 100_000, "nothing of the long line dropped");
    assert!(long.iter().all(|l| l.text.len() <= 4096), "bounded pieces");
    assert!(long[..long.len() - 1].iter().all(|l| l.continues) && !long[long.len() - 1].continues, "marked");
    let rest: Vec<&str> = lines[long.len()..].iter().map(|l| l.text.as_str()).collect();
    assert_eq!(rest, ["bad \u{fffd}\u{fffd} utf8", "last line without newline"]);
    assert!(lines.last().is_some_and(|l| l.unterminated));
}

#[tokio::test]
async fn the_host_writes_to_stdin_and_closes_it() {
    let (host, sink) = host_with_sink();
    let child = host.spawn(plain("echo-stdin")).await.expect("spawn");
    child.write_stdin(b"hello\nwarren\n").await.expect("write");
    child.close_stdin().await;
    assert_eq!(within("exit at EOF", child.wait()).await, Exit::Code(0));
    within("stop", child.stop(Duration::from_secs(5))).await;
    let texts: Vec<String> = sink.lines(Stream::Stdout).into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["HELLO", "WARREN"]);
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Todo {
    id: String,
}

#[derive(Deserialize)]
struct Pids {
    pid: u32,
    grandchild: Option<u32>,
}

#[tokio::test]
async fn spawn_returns_when_ready_and_a_cooperative_child_stops_cleanly() {
    let (host, sink) = host_with_sink();
    let child = host.spawn(Spec::new(CHILD).name("plugin").arg("plugin")).await.expect("spawn");
    // Ready means connected: the first call needs no retry.
    let todo: Todo = child.client().call("Task.Get", "new_id").await.expect("call");
    assert_eq!(todo, Todo { id: "new_id".into() });
    let socket = child.endpoint().and_then(|e| e.unix_path()).expect("unix endpoint").to_path_buf();
    assert!(socket.exists());
    let dir_mode = std::fs::metadata(socket.parent().expect("dir")).expect("dir").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&dir_mode) & 0o777, 0o700, "private runtime dir");
    let report = within("stop", child.stop(Duration::from_secs(5))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(report.took < Duration::from_secs(1), "returned as soon as the child was gone: {report}");
    assert!(!report.removed_socket && !socket.exists(), "the child removed its own socket");
    assert!(report.leaks.is_empty(), "{report}");
    let stderr: Vec<String> = sink.lines(Stream::Stderr).into_iter().map(|l| l.text).collect();
    assert!(stderr.iter().any(|l| l.contains("Serving RPC server on unix")), "{stderr:?}");
    assert!(host.children().is_empty());
}

#[tokio::test]
async fn a_child_that_exits_before_ready_reports_its_status_and_stderr() {
    let host = Host::builder().log_sink(Arc::new(Collect::default())).build().expect("host");
    let err = host.spawn(Spec::new(CHILD).name("crasher").arg("crash-before-ready")).await.expect_err("not ready");
    let SpawnError::ExitedBeforeReady { name, exit, stderr_tail } = &err else { panic!("{err}") };
    assert_eq!((name.as_str(), *exit), ("crasher", Exit::Code(3)));
    assert!(stderr_tail.iter().any(|l| l.contains("fatal: config file")), "{stderr_tail:?}");
    assert!(err.to_string().contains("exited with code 3") && err.to_string().contains("fatal: config file"), "{err}");
}

#[tokio::test]
async fn a_child_never_ready_times_out_and_is_gone() {
    let (host, _sink) = host_with_sink();
    let start = Instant::now();
    let spec = Spec::new(CHILD).name("slowpoke").arg("never-ready").ready_timeout(Duration::from_millis(300));
    let err = within("spawn", host.spawn(spec)).await.expect_err("times out");
    assert!(start.elapsed() >= Duration::from_millis(300) && start.elapsed() < Duration::from_secs(5));
    let SpawnError::ReadyTimeout { stderr_tail, .. } = &err else { panic!("{err}") };
    assert!(stderr_tail.iter().any(|l| l.contains("warming up forever")), "{err}");
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let (host, _sink) = host_with_sink();
    let err = host.spawn(Spec::new("/nonexistent/warren-child")).await.expect_err("missing");
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err}");
    assert!(err.to_string().ends_with("program not found: warren-child; looked in /nonexistent"), "{err}");
}

#[tokio::test]
async fn a_child_that_ignores_sigterm_is_killed_at_the_grace_period_not_later() {
    let (host, _sink) = host_with_sink();
    let child = host.spawn(Spec::new(CHILD).name("stubborn").arg("ignore-term").rpc(false)).await.expect("spawn");
    let grace = Duration::from_millis(500);
    let report = within("stop", child.stop(grace)).await;
    assert!(matches!(report.outcome, Outcome::Killed { .. }), "{report}");
    assert!(report.took >= grace && report.took < grace + SLACK, "{report}");
    assert!(until_gone(child.pid(), Duration::from_secs(1)).await);
}

#[tokio::test]
async fn an_rpc_child_that_ignores_shutdown_and_sigterm_is_killed_at_grace() {
    let (host, _sink) = host_with_sink();
    let spec = Spec::new(CHILD).name("deaf").args(["plugin", "--ignore-shutdown"]);
    let child = host.spawn(spec).await.expect("spawn");
    let grace = Duration::from_millis(600);
    let report = within("stop", child.stop(grace)).await;
    assert!(matches!(report.outcome, Outcome::Killed { .. }), "{report}");
    assert!(report.took >= grace && report.took < grace + SLACK, "{report}");
    assert!(report.removed_socket, "the host removed the socket the killed child left");
}

/// The pid a child prints as `grandchild N` on its stdout.
async fn grandchild_pid(sink: &Collect) -> u32 {
    within("grandchild pid", async {
        loop {
            if let Some(pid) =
                sink.lines(Stream::Stdout).iter().find_map(|l| l.text.strip_prefix("grandchild ")?.parse::<u32>().ok())
            {
                return pid;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_is_killed_and_reported_and_nothing_hangs() {
    let (host, sink) = host_with_sink();
    let child = host.spawn(Spec::new(CHILD).name("holder").arg("grandchild-holder").rpc(false)).await.expect("spawn");
    let grandchild = grandchild_pid(&sink).await;
    let report = within("stop", child.stop(Duration::from_secs(2))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(report.leaks.contains(&Leak::GroupMembers), "{report}");
    assert!(until_gone(child.pid(), Duration::from_secs(1)).await, "child gone");
    assert!(until_gone(grandchild, Duration::from_secs(1)).await, "grandchild gone");
}

#[tokio::test]
async fn a_grandchild_that_left_the_group_is_killed_with_the_child_through_its_cgroup() {
    let (host, sink) = host_with_sink();
    if !host.uses_cgroups() {
        return testkit::unavailable(
            "no writable cgroup2 hierarchy here, so nothing can reach a process that left its group",
        );
    }
    let child = host.spawn(Spec::new(CHILD).name("runaway").arg("escapee").rpc(false)).await.expect("spawn");
    let grandchild = grandchild_pid(&sink).await;
    let report = within("stop", child.stop(Duration::from_secs(2))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(report.leaks.contains(&Leak::Escaped { count: 1 }), "{report}");
    assert!(!report.leaks.contains(&Leak::PipesHeldOpen), "killed, so it held no pipe for long: {report}");
    assert!(until_gone(grandchild, Duration::from_secs(1)).await, "the escaped grandchild {grandchild} is gone");
    assert!(report.took < Duration::from_secs(1), "{report}");
}

#[tokio::test]
async fn a_plugin_with_a_grandchild_takes_it_down_with_it() {
    let (host, _sink) = host_with_sink();
    let child = host.spawn(Spec::new(CHILD).name("parent").args(["plugin", "--grandchild"])).await.expect("spawn");
    let pids: Pids = child.client().call("Task.Pids", &()).await.expect("pids");
    assert_eq!(pids.pid, child.pid());
    let grandchild = pids.grandchild.expect("grandchild");
    let report = within("stop", child.stop(Duration::from_secs(2))).await;
    assert!(until_gone(child.pid(), Duration::from_secs(1)).await);
    assert!(until_gone(grandchild, Duration::from_secs(1)).await, "{report}");
}

#[tokio::test]
async fn stop_all_stops_children_in_parallel() {
    let (host, _sink) = host_with_sink();
    for i in 0..5 {
        host.spawn(Spec::new(CHILD).name(format!("stubborn-{i}")).arg("ignore-term").rpc(false)).await.expect("spawn");
    }
    let start = Instant::now();
    let reports = within("stop all", host.stop_all(Duration::from_millis(400))).await;
    assert_eq!(reports.len(), 5);
    assert!(start.elapsed() < Duration::from_millis(1500), "in parallel, not 5 × grace: {:?}", start.elapsed());
    assert!(reports.iter().all(|r| matches!(r.outcome, Outcome::Killed { .. })));
}

#[tokio::test]
async fn a_plugin_finishes_in_flight_calls_when_asked_to_stop() {
    let (host, _sink) = host_with_sink();
    let child = host.spawn(Spec::new(CHILD).name("busy").arg("plugin")).await.expect("spawn");
    let client = child.client().clone();
    // Task.Hang returns only when cancelled; a drain of 1 s (the plugin's) must cancel it, not
    // the host's SIGKILL at 5 s.
    let hung = tokio::spawn(async move { client.call::<_, ()>("Task.Hang", &()).await });
    let todo: Todo = child.client().call("Task.Get", "sync").await.expect("call");
    assert_eq!(todo.id, "sync");
    let report = within("stop", child.stop(Duration::from_secs(5))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(report.took >= Duration::from_secs(1) && report.took < Duration::from_secs(3), "{report}");
    let err = within("hung call", hung).await.expect("join").expect_err("cancelled at the drain deadline");
    assert!(err.to_string().contains("drain deadline") || err.to_string().contains("shut"), "{err}");
}

#[tokio::test]
async fn a_plugin_exits_0_and_removes_its_socket_on_sigterm_and_on_sigint() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let (host, _sink) = host_with_sink();
        let child = host.spawn(Spec::new(CHILD).name("signalled").arg("plugin")).await.expect("spawn");
        let socket = child.endpoint().and_then(|e| e.unix_path()).expect("socket").to_path_buf();
        assert!(testkit::signal(child.pid(), signal), "{signal:?}");
        assert_eq!(within("exit", child.wait()).await, Exit::Code(0), "{signal:?}");
        assert!(!socket.exists(), "the plugin removed its socket on {signal:?}");
        let report = within("stop", child.stop(Duration::from_secs(1))).await;
        assert!(!report.removed_socket);
    }
}

#[test]
fn a_plugin_started_by_hand_refuses_with_a_clear_message() {
    let output = std::process::Command::new(CHILD)
        .arg("plugin")
        .env_remove("WARREN_ENDPOINT")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must be started by a warren host") && stderr.contains("WARREN_ENDPOINT"), "{stderr}");
}

#[tokio::test]
async fn a_log_line_can_be_the_readiness_signal() {
    let (host, _sink) = host_with_sink();
    let spec = Spec::new(CHILD)
        .name("chatty")
        .arg("never-ready")
        .rpc(false)
        .readiness(Readiness::LogLine("warming up".into()));
    let child = within("ready on its line", host.spawn(spec)).await.expect("ready when the line appeared");
    assert!(child.exit().is_none());
    within("stop", child.stop(Duration::from_secs(1))).await;
    let bad = Spec::new(CHILD).name("bad").arg("never-ready").readiness(Readiness::LogLine("(".into()));
    let err = host.spawn(bad).await.expect_err("invalid pattern");
    assert!(matches!(err, SpawnError::BadPattern { .. }), "{err}");
}

/// A shell loop's `sleep` gets the stop signal with the shell and may end a moment after it:
/// that is not a process outliving the child. Several rounds, since it is a race.
#[tokio::test]
async fn members_ending_with_their_leader_are_not_reported_as_outliving_it() {
    let (host, _sink) = host_with_sink();
    for round in 0..8 {
        let spec = Spec::new("/bin/sh")
            .name("loop")
            .args(["-c", "while sleep 2; do :; done"])
            .rpc(false)
            .readiness(Readiness::Started);
        let child = host.spawn(spec).await.expect("spawn");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let report = within("stop", child.stop(Duration::from_secs(2))).await;
        assert!(report.leaks.is_empty(), "round {round}: {report}");
    }
}
