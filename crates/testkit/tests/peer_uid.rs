//! The peer-credential check with a real peer of another uid: `peer-probe` runs as `nobody`
//! (65534) against a server in this process. Creating a process with another uid needs root,
//! which CI has; without it these tests fail saying so rather than skip.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use testkit::within;
use tokio::process::Command;
use warren_rpc::{Client, Endpoint, PeerPolicy, Running, Server};

const NOBODY: u32 = 65534;
/// How many times the refused probe is run.
const PROBES: usize = 16;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Todo {
    id: String,
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (CI runs it as root): it runs peer-probe as uid {NOBODY} (nobody), and only \
         root may start a process with another uid; run it as root instead of skipping it"
    );
}

/// A directory under /tmp that `nobody` can traverse (0755), holding a link to (or a copy of)
/// `peer-probe`, since the build directory may not be reachable by other users. Removed on drop.
struct Arena {
    dir: tempfile::TempDir,
    probe: PathBuf,
}

impl Arena {
    fn new() -> Arena {
        let dir = tempfile::Builder::new().prefix("wpeer").tempdir_in("/tmp").expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        let probe = dir.path().join("peer-probe");
        let built = env!("CARGO_BIN_EXE_peer-probe");
        // A hard link opens no file for writing, so a sibling test's fork cannot inherit a
        // writable fd to it and make our exec fail with ETXTBSY; copy only across devices.
        if std::fs::hard_link(built, &probe).is_err() {
            std::fs::copy(built, &probe).expect("copy peer-probe");
        }
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).expect("chmod peer-probe");
        Arena { dir, probe }
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `peer-probe <socket>` as nobody; returns its exit code and its stdout.
    async fn probe_as_nobody(&self, socket: &Path) -> (Option<i32>, String) {
        let mut command = Command::new(&self.probe);
        command
            .arg(socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = within("peer-probe as nobody", async {
            loop {
                match command.output().await {
                    // A copied probe may still be open for writing in a child another test
                    // thread forked before our copy was closed; that fd goes at its exec.
                    Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => break other,
                }
            }
        })
        .await
        .expect("run peer-probe");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stdout.lines().count(), 1, "peer-probe prints one line; stdout {stdout:?}, stderr {stderr:?}");
        (output.status.code(), stdout.trim_end().to_owned())
    }
}

fn task_server() -> Server {
    Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }))
}

async fn get(client: &Client, id: &str) {
    let todo: Todo = within("Task.Get", client.call("Task.Get", id)).await.expect("Task.Get");
    assert_eq!(todo.id, id);
}

async fn stop(running: &Running) {
    within("server shutdown", running.shutdown(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn another_uid_is_refused_by_default_and_own_uid_clients_keep_working() {
    require_root();
    let arena = Arena::new();
    let socket = arena.socket("t.sock");
    // The file system lets anyone connect; only the peer policy stands in the way.
    let running = task_server().socket_mode(0o666).bind(&Endpoint::unix(&socket)).await.expect("bind");
    let before = within("connect", Client::connect(&socket)).await.expect("own uid connects");
    get(&before, "before").await;

    // Several probes: telling a refused peer why is racy (see a_refused_peer_is_told_why_every_time
    // in warren-rpc's unix_socket tests), and one probe would pass by luck.
    for attempt in 0..PROBES {
        let (code, line) = arena.probe_as_nobody(&socket).await;
        assert!(
            line.starts_with("refused PERMISSION_DENIED: "),
            "probe {attempt}: nobody should be refused by the peer policy, got {line:?}"
        );
        assert!(
            line.contains(&NOBODY.to_string()),
            "probe {attempt}: the refusal should name the peer's uid: {line:?}"
        );
        assert_eq!(code, Some(2), "probe {attempt}: {line}");
    }

    // The refusal ended only the stranger's connection.
    get(&before, "after").await;
    let after = within("connect", Client::connect(&socket)).await.expect("own uid still connects");
    get(&after, "new connection").await;
    after.close().await;
    before.close().await;
    stop(&running).await;
}

#[tokio::test]
async fn any_user_policy_lets_another_uid_call() {
    require_root();
    let arena = Arena::new();
    let socket = arena.socket("any.sock");
    let running = task_server()
        .socket_mode(0o666)
        .peer_policy(PeerPolicy::AnyUser)
        .bind(&Endpoint::unix(&socket))
        .await
        .expect("bind");
    let (code, line) = arena.probe_as_nobody(&socket).await;
    assert_eq!((code, line.as_str()), (Some(0), "ok"), "nobody should be served under PeerPolicy::AnyUser");
    stop(&running).await;
}

#[tokio::test]
async fn the_default_socket_mode_keeps_another_uid_out_at_the_os_level() {
    require_root();
    let arena = Arena::new();
    let socket = arena.socket("private.sock");
    // AnyUser, so that only the 0600 file mode can be what keeps nobody out.
    let running = task_server().peer_policy(PeerPolicy::AnyUser).bind(&Endpoint::unix(&socket)).await.expect("bind");
    let (code, line) = arena.probe_as_nobody(&socket).await;
    assert!(
        line.starts_with("error: ") && line.contains("Permission denied"),
        "a 0600 socket should be closed to nobody by the OS, got {line:?}"
    );
    assert_eq!(code, Some(3), "{line}");
    let own = within("connect", Client::connect(&socket)).await.expect("own uid connects");
    get(&own, "owner").await;
    own.close().await;
    stop(&running).await;
}
