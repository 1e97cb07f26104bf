//! A child in another language: `examples/python/task_child.py` (standard library only, JSON-RPC
//! lines) started by a warren host. It says READY=1, answers calls over the host's client in
//! JSON-RPC mode, and stops cleanly on the host's Shutdown notification and on SIGTERM,
//! removing its socket either way.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use testkit::within;
use warren::{Exit, Host, Outcome, Readiness, Spec, Step};
use warren_rpc::{CallError, Protocol};

#[derive(Debug, Deserialize, PartialEq)]
struct Todo {
    id: String,
}

fn python_child(name: &str) -> Spec {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/task_child.py");
    Spec::new("python3").name(name).arg(script).readiness(Readiness::Notify).protocol(Protocol::JsonRpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_child_is_started_called_and_stopped_by_the_host() {
    let host = Host::builder().watchdog(false).build().expect("host");
    let child = within("spawn", host.spawn(python_child("task-py"))).await.expect("the Python child gets ready");
    let socket = child.endpoint().and_then(|e| e.unix_path()).expect("a unix endpoint").to_owned();
    assert!(socket.exists());

    let todo: Todo = within("Task.Get", child.client().call("Task.Get", "new_id")).await.expect("Task.Get");
    assert_eq!(todo, Todo { id: "new_id".into() });
    let err = within("Task.Get(42)", child.client().call::<_, Todo>("Task.Get", &42)).await.expect_err("bad arg");
    assert!(matches!(&err, CallError::BadArgument { message, .. } if message.contains("string")), "{err:?}");
    let err = within("Task.Nope", child.client().call::<_, Todo>("Task.Nope", "x")).await.expect_err("unknown");
    assert!(matches!(err, CallError::UnknownMethod { .. }), "{err:?}");
    within("ping", child.client().ping(Duration::from_secs(5))).await.expect("any answer proves it alive");

    // The Shutdown notification makes it exit by itself, well before the stop signal's turn.
    let report = within("stop", child.stop(Duration::from_secs(10))).await;
    assert_eq!(report.outcome, Outcome::Exited { code: 0 }, "{report}");
    assert!(matches!(report.steps[..], [(_, Step::ShutdownCall)]), "{report:?}");
    assert!(!report.removed_socket, "the child removed its socket itself");
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_child_stops_cleanly_on_sigterm() {
    let host = Host::builder().watchdog(false).build().expect("host");
    let child = within("spawn", host.spawn(python_child("task-py-term"))).await.expect("ready");
    let socket = child.endpoint().and_then(|e| e.unix_path()).expect("a unix endpoint").to_owned();
    assert!(testkit::signal(child.pid(), rustix::process::Signal::TERM), "SIGTERM");
    assert_eq!(within("exit", child.wait()).await, Exit::Code(0));
    let report = within("stop", child.stop(Duration::from_secs(5))).await;
    assert!(!report.removed_socket, "the child removed its socket on SIGTERM: {report}");
    assert!(!socket.exists());
}
