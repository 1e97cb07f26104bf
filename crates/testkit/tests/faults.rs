//! Faults with real processes: a child killed in the middle of its calls, a handler that never
//! returns, stale and hijacked socket paths, and the exact arguments and environment a child
//! gets. Each test has an outer bound; the guarantees they show are listed in RELIABILITY.md.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use testkit::{BOUND, SLACK, within};
use tokio::sync::broadcast;
use warren::supervise::machine::State;
use warren::supervise::plan::{self, Backoff, Invocation, Plan, Program, Restart};
use warren::supervise::{ProgramStatus, Supervisor};
use warren::{Exit, Host, LogLine, LogSink, Outcome, Readiness, Spec, Stream};
use warren_rpc::{BindError, CallError, Client, Endpoint, LostReason, Server};

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");
const ENV_DUMP: &str = env!("CARGO_BIN_EXE_env-dump");
/// How soon every call in flight must fail once the child serving it is killed.
const PROMPT: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Todo {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Pids {
    pid: u32,
}

/// What `env-dump` was started with.
#[derive(Debug, Deserialize)]
struct Dump {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Keeps every line, so a test can read what a child printed.
#[derive(Default)]
struct Collect(Mutex<Vec<LogLine>>);

impl Collect {
    fn stdout_of(&self, child: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().filter(|l| &*l.child == child && l.stream == Stream::Stdout).map(|l| l.text.clone()).collect()
    }
}

impl LogSink for Collect {
    fn line(&self, line: LogLine) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }
}

fn host() -> (Host, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    (Host::builder().log_sink(sink.clone()).build().expect("host"), sink)
}

fn sigkill(pid: u32) {
    assert!(testkit::signal(pid, Signal::KILL), "SIGKILL {pid}");
}

type HangCall = tokio::task::JoinHandle<(Result<(), CallError>, Instant)>;

/// Starts `count` calls to `Task.Hang` (which returns only when cancelled) and returns their
/// tasks, each giving the result and when it came. A call sends its request the first time it
/// is polled; once every one has, and a later call on the same connection has been answered,
/// the server has read them all: they are in flight.
async fn hang_calls(client: &Client, count: usize) -> Vec<HangCall> {
    let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let calls: Vec<HangCall> = (0..count)
        .map(|_| {
            let client = client.clone();
            let sent_tx = sent_tx.clone();
            tokio::spawn(async move {
                let call = client.call::<_, ()>("Task.Hang", &());
                tokio::pin!(call);
                tokio::select! {
                    biased;
                    result = &mut call => return (result, Instant::now()),
                    () = std::future::ready(()) => {}
                }
                let _ = sent_tx.send(());
                (call.await, Instant::now())
            })
        })
        .collect();
    for _ in 0..count {
        within("requests sent", sent.recv()).await.expect("a call ended before it was sent");
    }
    let todo: Todo = within("marker call", client.call("Task.Get", "marker")).await.expect("marker call");
    assert_eq!(todo.id, "marker");
    calls
}

/// Waits for every call and checks that each failed with a lost connection within [`PROMPT`]
/// of `killed_at`; returns the slowest.
async fn all_lost(calls: Vec<HangCall>, killed_at: Instant) -> Duration {
    let mut slowest = Duration::ZERO;
    for (i, call) in calls.into_iter().enumerate() {
        let (result, at) = within("in-flight call", call).await.expect("call task");
        let err = result.expect_err("the child was killed: the call cannot succeed");
        assert!(
            matches!(&err, CallError::ConnectionLost { reason: LostReason::ClosedByPeer | LostReason::Io(_), .. }),
            "call {i}: expected a lost connection, got {err:?}"
        );
        slowest = slowest.max(at.saturating_duration_since(killed_at));
    }
    assert!(
        slowest < PROMPT,
        "every in-flight call failed within {PROMPT:?} of the kill; the slowest took {slowest:?}"
    );
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_child_fails_its_100_in_flight_calls_at_once_and_starts_again() {
    let (host, _sink) = host();
    let child = within("spawn", host.spawn(Spec::new(CHILD).name("victim").arg("plugin"))).await.expect("spawn");
    let socket = child.endpoint().and_then(Endpoint::unix_path).expect("unix socket").to_path_buf();
    let calls = hang_calls(child.client(), 100).await;

    let killed_at = Instant::now();
    sigkill(child.pid());
    let slowest = all_lost(calls, killed_at).await;
    eprintln!("100 in-flight calls failed within {slowest:?} of the SIGKILL");
    assert_eq!(within("exit", child.wait()).await, Exit::Signal(warren::Signal::KILL));
    let err = child.client().call::<_, Todo>("Task.Get", "after").await.expect_err("no connection any more");
    assert!(matches!(err, CallError::ConnectionLost { .. }), "a new call fails at once too: {err}");

    let report = within("stop", child.stop(Duration::from_secs(1))).await;
    assert_eq!(report.outcome, Outcome::Signalled { signal: warren::Signal::KILL }, "{report}");
    assert!(report.removed_socket && !socket.exists(), "the host removed the socket the killed child left");

    let again = within("respawn", host.spawn(Spec::new(CHILD).name("victim").arg("plugin"))).await.expect("respawn");
    let todo: Todo = within("call", again.client().call("Task.Get", "again")).await.expect("call");
    assert_eq!(todo.id, "again");
    assert!(within("stop", again.stop(Duration::from_secs(2))).await.outcome.is_clean());
}

fn plugin_program(name: &str, command: Invocation, restart: Restart) -> Program {
    let mut program = Program::new(name, command);
    program.rpc = true;
    program.readiness = plan::ReadyCheck::Notify;
    program.restart = restart;
    program.backoff =
        Backoff { initial: Duration::from_millis(50), factor: 2.0, max: Duration::from_millis(500), jitter: 0.0 };
    program.grace = Duration::from_secs(2);
    program
}

fn exec(program: &str, args: &[&str]) -> Invocation {
    Invocation::Exec { program: program.into(), args: args.iter().map(|a| (*a).to_owned()).collect() }
}

async fn until_status(
    supervisor: &Supervisor,
    name: &str,
    what: &str,
    done: impl Fn(&ProgramStatus) -> bool,
) -> ProgramStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        // The status is empty until the supervisor's task has run once.
        let status = supervisor.status().into_iter().find(|s| s.name == name);
        if let Some(status) = status.as_ref().filter(|s| done(s)) {
            return status.clone();
        }
        assert!(Instant::now() < deadline, "{name}: not {what} within {BOUND:?}; last status {status:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn shut_down(supervisor: &Supervisor) {
    supervisor.shutdown();
    let failed = within("supervisor shutdown", supervisor.finished()).await;
    assert!(!failed, "no program failed: {:?}", supervisor.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_a_sigkilled_child_and_new_calls_succeed() {
    let (host, _sink) = host();
    let program = plugin_program("victim", exec(CHILD, &["plugin"]), Restart::OnFailure);
    let supervisor =
        Supervisor::start(Plan::new(vec![program]).expect("a valid plan"), host, broadcast::channel(256).0);
    let first = until_status(&supervisor, "victim", "ready", |s| s.state == State::Ready && s.pid.is_some()).await;
    let old_pid = first.pid.expect("pid");
    let client = supervisor.client("victim").expect("known").expect("a client while ready");
    let calls = hang_calls(&client, 100).await;

    let killed_at = Instant::now();
    sigkill(old_pid);
    let slowest = all_lost(calls, killed_at).await;

    let restarted = until_status(&supervisor, "victim", "restarted and ready", |s| {
        s.state == State::Ready && s.pid.is_some_and(|pid| pid != old_pid)
    })
    .await;
    let back_after = killed_at.elapsed();
    eprintln!("in-flight calls failed within {slowest:?}; ready again {back_after:?} after the SIGKILL");
    assert_eq!(
        (restarted.restarts, restarted.last_exit),
        (1, Some(Exit::Signal(warren::Signal::KILL))),
        "{restarted:?}"
    );
    let client = supervisor.client("victim").expect("known").expect("a client for the new instance");
    for i in 0..20 {
        let id = format!("after-{i}");
        let todo: Todo = within("call to the restarted child", client.call("Task.Get", &id)).await.expect("call");
        assert_eq!(todo.id, id);
    }
    let pids: Pids = within("pids", client.call("Task.Pids", &())).await.expect("pids");
    assert_eq!(Some(pids.pid), restarted.pid, "the client reaches the new instance");
    shut_down(&supervisor).await;
    assert!(std::fs::metadata(format!("/proc/{}", pids.pid)).is_err(), "the new instance is gone after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_returns_meets_the_callers_deadline_and_other_calls_proceed() {
    let (host, _sink) = host();
    let child = within("spawn", host.spawn(Spec::new(CHILD).name("hang").arg("plugin"))).await.expect("spawn");
    let deadline = Duration::from_millis(300);
    let hung = {
        let client = child.client().clone();
        tokio::spawn(async move {
            let start = Instant::now();
            (client.call_timeout::<_, ()>("Task.Hang", &(), deadline).await, start.elapsed())
        })
    };
    for i in 0..100 {
        let id = format!("beside-{i}");
        let todo: Todo = within("call beside a hung one", child.client().call("Task.Get", &id)).await.expect("call");
        assert_eq!(todo.id, id);
    }
    let (result, took) = within("hung call", hung).await.expect("join");
    assert!(matches!(result, Err(CallError::DeadlineExceeded { .. })), "{result:?}");
    assert!(took >= deadline && took < deadline + SLACK, "the deadline fired on time: {took:?}");
    // The cancelled handler is gone: the child stops at once instead of draining it.
    let report = within("stop", child.stop(Duration::from_secs(5))).await;
    assert!(report.outcome.is_clean() && report.took < Duration::from_secs(1), "{report}");
}

/// The variables warren adds to every child, whatever its spec says.
const WARREN_OWN: [&str; 3] = ["WARREN_HOST_PID", "WARREN_NAME", "WARREN_PROTOCOL"];

fn parse_dump(lines: &[String]) -> Dump {
    let json = |rest: &str| -> Vec<String> {
        serde_json::Deserializer::from_str(rest).into_iter::<String>().map(|s| s.expect("JSON string")).collect()
    };
    let mut dump = Dump { args: Vec::new(), env: Vec::new() };
    for line in lines {
        if let Some(rest) = line.strip_prefix("arg ") {
            dump.args.extend(json(rest));
        } else if let Some(rest) = line.strip_prefix("env ") {
            let pair = json(rest);
            assert_eq!(pair.len(), 2, "{line}");
            dump.env.push((pair[0].clone(), pair[1].clone()));
        }
    }
    assert_eq!(lines.last().map(String::as_str), Some("end"), "the whole dump arrived: {lines:?}");
    dump
}

/// Runs `env-dump` under `spec` and returns what it saw: over RPC for an RPC child, from its
/// stdout otherwise.
async fn dumped(host: &Host, sink: &Collect, spec: Spec) -> Dump {
    let name = spec.get_name().to_owned();
    let child = within("spawn env-dump", host.spawn(spec)).await.expect("spawn env-dump");
    let dump = match child.try_client() {
        Some(client) => within("Env.Get", client.call("Env.Get", &())).await.expect("Env.Get"),
        None => {
            child.close_stdin().await;
            assert_eq!(within("env-dump exit", child.wait()).await, Exit::Code(0));
            within("stop", child.stop(Duration::from_secs(2))).await;
            return parse_dump(&sink.stdout_of(&name));
        }
    };
    assert!(within("stop", child.stop(Duration::from_secs(2))).await.outcome.is_clean());
    dump
}

fn names(dump: &Dump) -> Vec<&str> {
    dump.env.iter().map(|(k, _)| k.as_str()).collect()
}

fn value<'d>(dump: &'d Dump, key: &str) -> Option<&'d str> {
    dump.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_environment_is_exactly_the_specs_plus_warrens_own() {
    let (host, sink) = host();
    let base = || Spec::new(ENV_DUMP).clear_env().env("A", "1");
    let cases = [
        ("plain", base().rpc(false).readiness(Readiness::Started), vec![]),
        ("notify", base().rpc(false).readiness(Readiness::Notify), vec!["NOTIFY_SOCKET"]),
        ("rpc", base(), vec!["NOTIFY_SOCKET", "WARREN_ENDPOINT"]),
    ];
    for (name, spec, extra) in cases {
        let dump = dumped(&host, &sink, spec.name(name)).await;
        let mut expected: Vec<&str> = ["A"].into_iter().chain(WARREN_OWN).chain(extra).collect();
        expected.sort_unstable();
        assert_eq!(names(&dump), expected, "{name}: exactly these variables");
        assert_eq!(value(&dump, "A"), Some("1"));
        assert_eq!(value(&dump, "WARREN_NAME"), Some(name));
        assert_eq!(value(&dump, "WARREN_HOST_PID"), Some(std::process::id().to_string().as_str()));
        assert_eq!(value(&dump, "WARREN_PROTOCOL"), Some(warren_rpc::PROTOCOL_VERSION.to_string().as_str()));
        if let Some(notify) = value(&dump, "NOTIFY_SOCKET") {
            assert!(Path::new(notify).starts_with(host.runtime_dir()), "{name}: its own notify socket: {notify}");
        }
        if let Some(endpoint) = value(&dump, "WARREN_ENDPOINT") {
            let path = Endpoint::parse(endpoint).expect("endpoint").unix_path().expect("unix").to_path_buf();
            assert!(path.starts_with(host.runtime_dir()), "{name}: its socket is in the runtime dir: {endpoint}");
        }
    }
    assert_eq!(std::env::var_os("A"), None, "the host's own environment is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_environment_is_the_hosts_plus_the_specs_and_warrens_own_wins() {
    let (host, sink) = host();
    let spec = Spec::new(ENV_DUMP)
        .name("inherit")
        .rpc(false)
        .readiness(Readiness::Started)
        .env("A", "1")
        .env("HOME", "/nonexistent/home")
        // A spec cannot make a child talk to someone else's notify socket or lie about its name.
        .env("NOTIFY_SOCKET", "/tmp/elsewhere.notify")
        .env("WARREN_NAME", "spoofed");
    let dump = dumped(&host, &sink, spec).await;
    let mut expected: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    expected.insert("A".into(), "1".into());
    expected.insert("HOME".into(), "/nonexistent/home".into());
    expected.insert("WARREN_NAME".into(), "inherit".into());
    expected.insert("WARREN_HOST_PID".into(), std::process::id().to_string());
    expected.insert("WARREN_PROTOCOL".into(), warren_rpc::PROTOCOL_VERSION.to_string());
    // A child ready when started has no notify socket, and must not write to the host's own.
    expected.remove("NOTIFY_SOCKET");
    let got: BTreeMap<String, String> = dump.env.into_iter().collect();
    assert_eq!(got, expected);
}

/// Arguments a shell would expand, split, glob or run; `{dir}` is a fresh directory where a
/// shell would leave a file.
fn hostile_args(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("$(touch {d}/dollar)"),
        format!("`touch {d}/backtick`"),
        format!("x; touch {d}/semicolon"),
        format!("x && touch {d}/and"),
        format!("x | tee {d}/pipe"),
        format!("> {d}/redirect"),
        "*".to_owned(),
        "two words".to_owned(),
        "'single'".to_owned(),
        "\"double\"".to_owned(),
        "$HOME".to_owned(),
        String::new(),
        "new\nline".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_reach_the_child_literally_and_never_through_a_shell() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = hostile_args(dir.path());
    let (host, sink) = host();
    // Through the host, over RPC and over stdout.
    let over_rpc = dumped(&host, &sink, Spec::new(ENV_DUMP).name("args-rpc").args(&args)).await;
    assert_eq!(over_rpc.args, args);
    let spec = Spec::new(ENV_DUMP).name("args-out").args(&args).rpc(false).readiness(Readiness::Started);
    assert_eq!(dumped(&host, &sink, spec).await.args, args);

    // Through the supervisor: `command` + `args` is exec'd, only `shell` goes to sh -c.
    let literal =
        plugin_program("literal", exec(ENV_DUMP, &args.iter().map(String::as_str).collect::<Vec<_>>()), Restart::Never);
    let marker = dir.path().join("shell-ran");
    let mut shell = Program::new("shell", Invocation::Shell(format!("touch '{}'", marker.display())));
    shell.restart = Restart::Never;
    let supervisor = Supervisor::start(
        Plan::new(vec![literal, shell]).expect("a valid plan"),
        host.clone(),
        broadcast::channel(256).0,
    );
    until_status(&supervisor, "literal", "ready", |s| s.state == State::Ready).await;
    let client = supervisor.client("literal").expect("known").expect("client");
    let dump: Dump = within("Env.Get", client.call("Env.Get", &())).await.expect("Env.Get");
    assert_eq!(dump.args, args);
    until_status(&supervisor, "shell", "done", |s| matches!(s.state, State::Exited { .. })).await;
    assert!(marker.exists(), "a program that asks for a shell gets one");
    shut_down(&supervisor).await;

    let created: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).expect("read dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(created, [marker], "nothing but the shell program's marker was created");
}

fn task_server() -> Server {
    Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }))
}

#[tokio::test]
async fn bind_never_follows_a_symlink_planted_at_the_socket_path() {
    let dir = testkit::socket_dir("wf");
    let path = dir.path().join("t.sock");

    // A link to a file the attacker wants clobbered or chmodded.
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"precious data").expect("write");
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let inode = std::fs::metadata(&precious).expect("stat").ino();
    std::os::unix::fs::symlink(&precious, &path).expect("plant the symlink");
    let err = task_server().bind(&Endpoint::unix(&path)).await.expect_err("a symlink is not a socket");
    assert!(matches!(&err, BindError::NotASocket { path: named } if named == &path), "{err:?}");
    let meta = std::fs::metadata(&precious).expect("target still there");
    assert_eq!((meta.ino(), meta.mode() & 0o777), (inode, 0o644), "target replaced or chmodded");
    assert_eq!(std::fs::read(&precious).expect("read"), b"precious data");
    assert!(std::fs::symlink_metadata(&path).expect("link").file_type().is_symlink(), "the link is left alone");
    std::fs::remove_file(&path).expect("remove link");

    // A dangling link: binding through it would create the socket where the attacker points.
    let elsewhere = dir.path().join("elsewhere.sock");
    std::os::unix::fs::symlink(&elsewhere, &path).expect("plant the dangling symlink");
    let err = task_server().bind(&Endpoint::unix(&path)).await.expect_err("a dangling symlink is not a socket");
    assert!(matches!(err, BindError::NotASocket { .. }), "{err:?}");
    assert!(std::fs::symlink_metadata(&elsewhere).is_err(), "nothing was created at the link's target");
    std::fs::remove_file(&path).expect("remove link");

    // A link to another server's live socket, and to a stale one: neither is taken over or removed.
    let live_path = dir.path().join("live.sock");
    let live = task_server().bind(&Endpoint::unix(&live_path)).await.expect("bind the live server");
    std::os::unix::fs::symlink(&live_path, &path).expect("plant the symlink");
    let err = task_server().bind(&Endpoint::unix(&path)).await.expect_err("a symlink is not a socket");
    assert!(matches!(err, BindError::NotASocket { .. }), "{err:?}");
    let client = within("connect", Client::connect(&live_path)).await.expect("the live server still accepts");
    let todo: Todo = within("call", client.call("Task.Get", "live")).await.expect("call");
    assert_eq!(todo.id, "live");
    client.close().await;
    within("shutdown", live.shutdown(Duration::from_secs(1))).await;
    let stale_path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale_path).expect("stale socket"));
    std::fs::remove_file(&path).expect("remove link");
    std::os::unix::fs::symlink(&stale_path, &path).expect("plant the symlink");
    let err = task_server().bind(&Endpoint::unix(&path)).await.expect_err("a symlink is not a socket");
    assert!(matches!(err, BindError::NotASocket { .. }), "{err:?}");
    assert!(std::fs::symlink_metadata(&stale_path).is_ok(), "the stale target was not removed through the link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_socket_is_0600_in_a_private_0700_directory_of_our_own() {
    let (host, _sink) = host();
    let child = within("spawn", host.spawn(Spec::new(CHILD).name("private").arg("plugin"))).await.expect("spawn");
    let socket = child.endpoint().and_then(Endpoint::unix_path).expect("unix socket").to_path_buf();
    let dir = std::fs::symlink_metadata(host.runtime_dir()).expect("runtime dir");
    assert!(dir.is_dir() && !dir.file_type().is_symlink(), "a real directory");
    assert_eq!((dir.mode() & 0o777, dir.uid()), (0o700, rustix::process::geteuid().as_raw()));
    let file = std::fs::symlink_metadata(&socket).expect("socket");
    assert_eq!((file.mode() & 0o777, file.uid()), (0o600, rustix::process::geteuid().as_raw()));
    assert!(within("stop", child.stop(Duration::from_secs(2))).await.outcome.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_file_left_by_a_crashed_child_does_not_stop_the_next_start() {
    let (host, _sink) = host();
    // What a child killed before its host could clean up leaves: the file, nobody accepting.
    let stale = host.runtime_dir().join("phoenix.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("stale socket"));
    let child = within("spawn", host.spawn(Spec::new(CHILD).name("phoenix").arg("plugin"))).await.expect("spawn");
    assert_eq!(child.endpoint().and_then(Endpoint::unix_path), Some(stale.as_path()), "the same path");
    let todo: Todo = within("call", child.client().call("Task.Get", "reborn")).await.expect("call");
    assert_eq!(todo.id, "reborn");
    assert!(within("stop", child.stop(Duration::from_secs(2))).await.outcome.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spawns_of_one_name_at_once_never_share_a_socket() {
    let (host, _sink) = host();
    let spec = || Spec::new(CHILD).name("twin").arg("plugin").ready_timeout(Duration::from_secs(3));
    let (a, b) = within("both spawns", async { tokio::join!(host.spawn(spec()), host.spawn(spec())) }).await;
    let mut started = Vec::new();
    let mut refused = 0;
    let mut other_failures = Vec::new();
    for result in [a, b] {
        match result {
            Ok(child) => started.push(child),
            Err(warren::SpawnError::DuplicateName { .. }) => refused += 1,
            Err(other) => other_failures.push(other.to_string()),
        }
    }
    let mut crossed = Vec::new();
    for child in &started {
        match within("pids", child.client().call::<_, Pids>("Task.Pids", &())).await {
            Ok(pids) if pids.pid == child.pid() => {}
            Ok(pids) => crossed.push(format!("the client of {} reached {}", child.pid(), pids.pid)),
            Err(err) => crossed.push(format!("the client of {} failed: {err}", child.pid())),
        }
    }
    within("stop all", host.stop_all(Duration::from_secs(2))).await;
    assert!(other_failures.is_empty(), "a spawn failed for another reason than the duplicate name: {other_failures:?}");
    assert!(crossed.is_empty(), "each started child's client reaches that child: {crossed:?}");
    assert_eq!((started.len(), refused), (1, 1), "exactly one of two same-name spawns succeeds");
}

/// What a /tmp cleaner (systemd-tmpfiles, tmpreaper) does to a socket it thinks is old.
fn sweep(socket: &Path) {
    std::fs::remove_file(socket).expect("delete the socket file");
}

fn socket_of(child: &warren::Child) -> PathBuf {
    child.endpoint().and_then(Endpoint::unix_path).expect("unix socket").to_path_buf()
}

/// Connects to `socket` as any new client would, retrying until `BOUND`.
async fn reconnect(socket: &Path) -> Client {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Ok(client) = Client::connect(socket).await {
            return client;
        }
        assert!(Instant::now() < deadline, "nobody can connect to {} {BOUND:?} after it was deleted", socket.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_file_deleted_under_a_running_child_is_noticed_and_the_child_reachable_again() {
    let (host, _sink) = host();
    let program = plugin_program("swept", exec(CHILD, &["plugin"]), Restart::Never);
    let supervisor =
        Supervisor::start(Plan::new(vec![program]).expect("a valid plan"), host.clone(), broadcast::channel(256).0);
    until_status(&supervisor, "swept", "ready", |s| s.state == State::Ready).await;
    let first = host.children()[0].clone();
    let socket = socket_of(&first);
    let swept_at = Instant::now();
    sweep(&socket);
    let noticed = within("the loss noticed", first.socket_lost()).await;
    let noticed_after = swept_at.elapsed();
    assert_eq!(noticed, warren::SocketLost::Deleted(socket.clone()));
    // `on_socket_lost = restart` (the default) restarts even a `restart = never` program:
    // it did not fail, it became unreachable.
    let status = until_status(&supervisor, "swept", "restarted", |s| s.state == State::Ready && s.restarts == 1).await;
    assert!(status.last_exit.is_some_and(|exit| exit.success()), "stopped gracefully: {status:?}");
    let reconnected = reconnect(&socket).await;
    let todo: Todo = within("call", reconnected.call("Task.Get", "found")).await.expect("call");
    assert_eq!(todo.id, "found");
    eprintln!("noticed {noticed_after:?} after the delete, reachable again after {:?}", swept_at.elapsed());
    let second = host.children()[0].clone();
    assert_ne!(second.pid(), first.pid(), "a new instance serves the socket");
    reconnected.close().await;
    shut_down(&supervisor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_lost_under_report_is_reported_and_the_child_left_running() {
    let (host, _sink) = host();
    let mut program = plugin_program("reported", exec(CHILD, &["plugin"]), Restart::Always);
    program.on_socket_lost = plan::OnSocketLost::Report;
    let supervisor =
        Supervisor::start(Plan::new(vec![program]).expect("a valid plan"), host.clone(), broadcast::channel(256).0);
    until_status(&supervisor, "reported", "ready", |s| s.state == State::Ready).await;
    let child = host.children()[0].clone();
    let socket = socket_of(&child);
    // Something else takes the name: it is replaced, not just gone.
    sweep(&socket);
    std::fs::write(&socket, b"not a socket").expect("plant a file");
    let noticed = within("the loss noticed", child.socket_lost()).await;
    assert_eq!(noticed.path(), socket, "{noticed}");
    assert_eq!(child.socket_lost_now(), Some(noticed));
    // Left running: the supervisor's own connection still reaches it.
    let client = supervisor.client("reported").expect("known").expect("connected");
    let todo: Todo = within("call", client.call("Task.Get", "still")).await.expect("call");
    assert_eq!(todo.id, "still");
    // Not a synchronisation: a window in which a restart, had one been ordered, would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = supervisor.status().into_iter().find(|s| s.name == "reported").expect("status");
    assert_eq!((status.state, status.restarts, host.children()[0].pid()), (State::Ready, 0, child.pid()));
    std::fs::remove_file(&socket).expect("remove the planted file");
    shut_down(&supervisor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_removing_its_own_socket_on_the_way_out_is_not_a_loss() {
    let (host, _sink) = host();
    let plugin = || Spec::new(CHILD).arg("plugin").readiness(Readiness::Notify);
    // Stopped by the host, and shut down by a signal of its own choosing.
    let stopped = within("spawn", host.spawn(plugin().name("stopped"))).await.expect("spawn");
    let quitting = within("spawn", host.spawn(plugin().name("quitting"))).await.expect("spawn");
    let report = within("stop", stopped.stop(Duration::from_secs(2))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(testkit::signal(quitting.pid(), Signal::TERM), "SIGTERM");
    let exit = within("exit", quitting.wait()).await;
    assert!(exit.success(), "{exit}");
    assert!(!socket_of(&quitting).exists(), "the child removed its socket");
    // Longer than the watch takes to decide (0.5 s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((stopped.socket_lost_now(), quitting.socket_lost_now()), (None, None));
    within("stop all", host.stop_all(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_directory_swept_away_is_noticed_and_made_again_for_the_next_start() {
    let (host, _sink) = host();
    let plugin = |name: &str| Spec::new(CHILD).arg("plugin").readiness(Readiness::Notify).name(name);
    let child = within("spawn", host.spawn(plugin("first"))).await.expect("spawn");
    let dir = host.runtime_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).expect("sweep the runtime directory");
    let noticed = within("the loss noticed", child.socket_lost()).await;
    assert_eq!(noticed, warren::SocketLost::Deleted(socket_of(&child)));
    let next = within("spawn", host.spawn(plugin("next"))).await.expect("the next start succeeds");
    let mode = std::fs::metadata(&dir).expect("made again").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let todo: Todo = within("call", next.client().call("Task.Get", "again")).await.expect("call");
    assert_eq!(todo.id, "again");
    // The directory is watched again: the next child's loss is noticed too.
    sweep(&socket_of(&next));
    within("the second loss noticed", next.socket_lost()).await;
    within("stop all", host.stop_all(Duration::from_secs(2))).await;
}

/// A hand-built preface and HELLO (`docs/PROTOCOL.md`): version 1, a 16 MiB limit, every
/// feature, JSON only.
fn preface_and_hello() -> Vec<u8> {
    let mut body = (16u32 << 20).to_be_bytes().to_vec();
    body.extend_from_slice(&0xFu32.to_be_bytes());
    body.extend_from_slice(&[1, 2]);
    let mut out = vec![0xF7, 0x57, 0x52, 0x50, 0x01];
    out.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    out.extend_from_slice(&[0x01, 0, 0, 0, 0, 0]);
    out.extend(body);
    out
}

/// A REQUEST frame for `Task.Get("slow")`, id 1, no deadline.
fn request_frame() -> Vec<u8> {
    let method = b"Task.Get";
    let mut body = vec![u8::try_from(method.len()).expect("short")];
    body.extend_from_slice(method);
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(b"\"slow\"");
    let mut out = u32::try_from(body.len()).expect("small").to_be_bytes().to_vec();
    out.extend_from_slice(&[0x10, 0, 0, 0, 0, 1]);
    out.extend(body);
    out
}

/// The frame timeout defaults to the hello timeout: 500 ms here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_dribbles_a_frame_after_its_hello_is_dropped_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = testkit::socket_dir("wf");
    let path = dir.path().join("t.sock");
    let hello_timeout = Duration::from_millis(500);
    let running = task_server().hello_timeout(hello_timeout).bind(&Endpoint::unix(&path)).await.expect("bind");
    let good = within("connect", Client::connect(&path)).await.expect("connect");

    let mut slow = within("connect", tokio::net::UnixStream::connect(&path)).await.expect("connect");
    within("hello", slow.write_all(&preface_and_hello())).await.expect("hello");
    let mut answer = [0u8; 5 + 10 + 9];
    within("welcome", slow.read_exact(&mut answer)).await.expect("preface and WELCOME");
    assert_eq!(answer[5 + 4], 0x02, "a WELCOME: {answer:?}");
    // One byte every 250 ms (the slow-loris sends one a second; the rate does not
    // matter, only that the frame never completes in reasonable time).
    let started = Instant::now();
    let mut closed_after = None;
    let mut said = Vec::new();
    let mut said_after = None;
    for (i, byte) in request_frame().into_iter().enumerate() {
        let todo: Todo = within("good call", good.call("Task.Get", &format!("good-{i}"))).await.expect("good call");
        assert_eq!(todo.id, format!("good-{i}"));
        if slow.write_all(&[byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(250), slow.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            // A GOODBYE naming the timeout; the close follows.
            Ok(Ok(n)) => {
                said.extend_from_slice(&buf[..n]);
                said_after.get_or_insert_with(|| started.elapsed());
            }
        }
    }
    good.close().await;
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
    let closed_after = closed_after.expect("the server never dropped a peer that took 7 s to send a 30-byte frame");
    assert!(closed_after < Duration::from_secs(3), "dropped only after {closed_after:?}");
    // GOODBYE (0x40) PROTOCOL_ERROR (9), then the reason.
    assert!(said.len() > 14 && said[4] == 0x40 && said[10..14] == 9u32.to_be_bytes(), "not a GOODBYE: {said:?}");
    let reason = String::from_utf8_lossy(&said[14..]);
    assert!(reason.starts_with("frame not completed within 500ms (got "), "GOODBYE reason: {reason:?}");
    let said_after = said_after.expect("the GOODBYE came");
    println!("GOODBYE {said_after:?} after the first byte of the frame, closed after {closed_after:?}");
    assert!(said_after >= hello_timeout, "dropped after only {said_after:?}");
    assert!(said_after < hello_timeout + Duration::from_millis(1500), "GOODBYE only after {said_after:?}");
}
