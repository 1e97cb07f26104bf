//! Unix socket hygiene: a private socket file in a private directory, directories others could
//! write refused, the path length limit named in the error, stale files replaced but live
//! servers never robbed, foreign files never touched, the file removed on shutdown (only if it is still ours), and kernel-checked peer
//! credentials handed to handlers.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Todo, socket_dir, socket_in, test_server, within};
use tokio::sync::mpsc;
use warren_rpc::{BindError, Client, ConnectError, Endpoint, ErrorCode, MAX_UNIX_PATH, PeerPolicy, Running, Server};

fn server() -> Server {
    let (observed, _) = mpsc::unbounded_channel();
    test_server(observed)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|err| panic!("stat {}: {err}", path.display())).mode() & 0o7777
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// Connects afresh and checks `Task.Get` answers.
async fn answers(path: &Path) {
    let client = within("connect", common::connect(path)).await.unwrap_or_else(|err| panic!("connect: {err}"));
    let todo: Todo = within("Task.Get", client.call("Task.Get", "new_id")).await.expect("Task.Get");
    assert_eq!(todo.id, "new_id");
    client.close().await;
}

async fn stop(running: &Running) {
    within("shutdown", running.shutdown(Duration::from_secs(1))).await;
}

/// `dir/` followed by a name of `len - dir.len() - 1` bytes: a path of exactly `len` bytes.
fn path_of_len(dir: &Path, len: usize) -> PathBuf {
    let room = len - dir.as_os_str().len() - 1;
    let path = dir.join("s".repeat(room));
    assert_eq!(path.as_os_str().len(), len);
    path
}

#[tokio::test]
async fn the_socket_file_is_0600_by_default() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    let running = server().bind(&Endpoint::unix(&path)).await.expect("bind");
    // With the usual umask 022 a socket would be created 0755; only an explicit chmod gives 0600.
    assert_eq!(mode(&path), 0o600, "socket file mode");
    answers(&path).await;
    stop(&running).await;
}

#[tokio::test]
async fn socket_mode_sets_the_file_mode() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    let running = server().socket_mode(0o660).bind(&Endpoint::unix(&path)).await.expect("bind");
    assert_eq!(mode(&path), 0o660, "socket file mode");
    stop(&running).await;
}

#[tokio::test]
async fn missing_parent_directories_are_created_0700() {
    let dir = socket_dir();
    let outer = dir.path().join("run");
    let inner = outer.join("warren");
    let path = inner.join("t.sock");
    let running = server().bind(&Endpoint::unix(&path)).await.expect("bind in a directory that does not exist yet");
    assert_eq!(mode(&outer), 0o700, "mode of {}", outer.display());
    assert_eq!(mode(&inner), 0o700, "mode of {}", inner.display());
    assert_eq!(mode(&path), 0o600, "socket file mode");
    answers(&path).await;
    stop(&running).await;
}

#[tokio::test]
async fn a_path_over_the_limit_is_refused_naming_the_limit_and_the_path() {
    assert_eq!(MAX_UNIX_PATH, 107, "Linux sun_path is 108 bytes including the NUL");
    let dir = socket_dir();
    // The parent does not exist: a refused bind must not create it either.
    let parent = dir.path().join("never");
    let path = path_of_len(&parent, MAX_UNIX_PATH + 1);

    let err = server().bind(&Endpoint::unix(&path)).await.expect_err("a 108-byte path cannot be bound");
    let message = err.to_string();
    match err {
        BindError::PathTooLong { path: named, len, limit } => {
            assert_eq!((named.as_path(), len, limit), (path.as_path(), 108, 107));
        }
        other => panic!("expected PathTooLong, got {other:?}"),
    }
    assert!(message.contains("107"), "the message should name the limit: {message}");
    assert!(message.contains(&path.display().to_string()), "the message should name the path: {message}");
    assert!(!parent.exists(), "a refused bind created {}", parent.display());

    let err = within("connect", common::connect(&path)).await.expect_err("a 108-byte path cannot be connected to");
    let message = err.to_string();
    match err {
        ConnectError::PathTooLong { path: named, len, limit } => {
            assert_eq!((named.as_path(), len, limit), (path.as_path(), 108, 107));
        }
        other => panic!("expected PathTooLong, got {other:?}"),
    }
    assert!(message.contains("107"), "the message should name the limit: {message}");
    assert!(message.contains(&path.display().to_string()), "the message should name the path: {message}");
}

#[tokio::test]
async fn a_path_of_exactly_the_limit_works() {
    let dir = socket_dir();
    let path = path_of_len(dir.path(), MAX_UNIX_PATH);
    let running = server().bind(&Endpoint::unix(&path)).await.expect("a 107-byte path fits in sun_path");
    answers(&path).await;
    stop(&running).await;
    assert!(!path.exists(), "socket file left behind");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    // What a crashed server leaves: the file, and nobody accepting on it.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind the stale listener"));
    assert!(is_socket(&path), "precondition: the stale socket file exists");
    let refused = std::os::unix::net::UnixStream::connect(&path).expect_err("precondition: nobody accepts");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "precondition: {refused}");

    let running = server().bind(&Endpoint::unix(&path)).await.expect("a stale socket file is replaced");
    // Connecting through the path reaches the new server only if the stale file was replaced
    // (comparing inodes would not tell: the freed inode number is often reused at once).
    answers(&path).await;
    assert_eq!(mode(&path), 0o600, "socket file mode");
    stop(&running).await;
}

#[tokio::test]
async fn a_live_socket_is_never_stolen() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    let first = server().bind(&Endpoint::unix(&path)).await.expect("bind the first server");
    let client = within("connect", common::connect(&path)).await.expect("connect to the first server");
    let inode = std::fs::metadata(&path).expect("stat").ino();

    let err = server().bind(&Endpoint::unix(&path)).await.expect_err("the path belongs to a live server");
    let message = err.to_string();
    assert!(matches!(&err, BindError::InUse { path: named } if named == &path), "expected InUse, got {err:?}");
    assert!(message.contains(&path.display().to_string()), "the message should name the path: {message}");

    assert_eq!(std::fs::metadata(&path).expect("the socket file is still there").ino(), inode, "file replaced");
    let todo: Todo = within("Task.Get", client.call("Task.Get", "old")).await.expect("existing connection");
    assert_eq!(todo.id, "old");
    answers(&path).await;
    client.close().await;
    stop(&first).await;
}

#[tokio::test]
async fn a_regular_file_at_the_path_is_left_untouched() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    std::fs::write(&path, b"precious data").expect("write the file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let inode = std::fs::metadata(&path).expect("stat").ino();

    let err = server().bind(&Endpoint::unix(&path)).await.expect_err("a regular file is not a socket");
    let message = err.to_string();
    assert!(
        matches!(&err, BindError::NotASocket { path: named } if named == &path),
        "expected NotASocket, got {err:?}"
    );
    assert!(message.contains(&path.display().to_string()), "the message should name the path: {message}");

    let meta = std::fs::symlink_metadata(&path).expect("the file is still there");
    assert!(meta.is_file(), "the file was replaced");
    assert_eq!((meta.ino(), mode(&path)), (inode, 0o640), "the file was replaced or chmodded");
    assert_eq!(std::fs::read(&path).expect("read"), b"precious data");
}

#[tokio::test]
async fn the_socket_file_is_removed_on_shutdown() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    let running = server().bind(&Endpoint::unix(&path)).await.expect("bind");
    assert!(is_socket(&path), "precondition: the socket file exists while serving");
    answers(&path).await;
    stop(&running).await;
    assert!(!path.exists(), "socket file left behind after shutdown");
    let err = within("connect", common::connect(&path)).await.expect_err("nobody listens any more");
    assert!(matches!(err, ConnectError::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn shutdown_leaves_a_socket_file_that_another_server_put_there() {
    let dir = socket_dir();
    let path = socket_in(&dir, "t.sock");
    let first = server().bind(&Endpoint::unix(&path)).await.expect("bind the first server");
    // Someone removed the first server's file and a second server bound the path.
    std::fs::remove_file(&path).expect("remove the first server's file");
    let second = server().bind(&Endpoint::unix(&path)).await.expect("bind the second server");
    let inode = std::fs::metadata(&path).expect("stat").ino();

    stop(&first).await;
    assert_eq!(
        std::fs::metadata(&path).map(|meta| meta.ino()).ok(),
        Some(inode),
        "the first server's shutdown removed the second server's socket file"
    );
    answers(&path).await;
    stop(&second).await;
    assert!(!path.exists(), "the second server's shutdown left its socket file");
}

#[tokio::test]
async fn handlers_see_the_peers_kernel_credentials() {
    let dir = socket_dir();
    let path = socket_in(&dir, "who.sock");
    let running = common::server()
        .service("Peer", |s| {
            s.method("Who", |ctx, (): ()| async move {
                let peer = ctx.peer();
                Ok((peer.uid, peer.gid, peer.pid, peer.address.clone()))
            })
        })
        .bind(&Endpoint::unix(&path))
        .await
        .expect("bind");
    let client = within("connect", common::connect(&path)).await.expect("connect");
    let (uid, gid, pid, address): (Option<u32>, Option<u32>, Option<i32>, String) =
        within("Peer.Who", client.call("Peer.Who", &())).await.expect("Peer.Who");
    let me = (
        Some(rustix::process::geteuid().as_raw()),
        Some(rustix::process::getegid().as_raw()),
        Some(i32::try_from(std::process::id()).expect("pid fits in i32")),
    );
    assert_eq!((uid, gid, pid), me, "peer (uid, gid, pid) should be this test process's");
    assert_eq!(address, format!("unix:{}", path.display()));
    client.close().await;
    stop(&running).await;
}

/// A refused peer must learn why: PREFACE + GOODBYE PERMISSION_DENIED naming its uid, every
/// time, not an I/O error because the server closed before the client's hello was written.
/// Repeated because the failure is a race (see the report): one attempt would pass by luck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_peer_is_told_why_every_time() {
    let dir = socket_dir();
    let path = socket_in(&dir, "closed.sock");
    // Nobody is allowed, not even this process's uid.
    let running = server().peer_policy(PeerPolicy::Users(vec![])).bind(&Endpoint::unix(&path)).await.expect("bind");
    let uid = rustix::process::geteuid().as_raw().to_string();
    for attempt in 0..200 {
        match within("connect", common::connect(&path)).await {
            Err(ConnectError::Refused { code: ErrorCode::PermissionDenied, reason, .. }) => {
                assert!(reason.contains(&uid), "attempt {attempt}: the refusal should name uid {uid}: {reason}");
            }
            Err(other) => panic!("attempt {attempt}: expected a PERMISSION_DENIED refusal, got: {other}"),
            Ok(_) => panic!("attempt {attempt}: a peer outside the policy was let in"),
        }
    }
    stop(&running).await;
}

/// A directory whose mode is `mode`, inside a private temporary one.
fn dir_with_mode(dir: &tempfile::TempDir, name: &str, mode: u32) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Expects a refusal naming `dir` and saying why, with nothing created inside.
async fn refused_in(dir: &Path, socket: &Path, words: &[&str]) {
    let err = server().bind(&Endpoint::unix(socket)).await.expect_err("an unsafe directory must be refused");
    let message = err.to_string();
    match &err {
        BindError::UnsafeDirectory { dir: named, .. } => assert_eq!(named, dir, "{message}"),
        other => panic!("expected UnsafeDirectory for {}, got {other:?}", dir.display()),
    }
    assert!(message.contains(&dir.display().to_string()), "the message should name the directory: {message}");
    for word in words {
        assert!(message.contains(word), "the message should say {word:?}: {message}");
    }
    assert_eq!(std::fs::read_dir(dir).expect("read dir").count(), 0, "something was created in {}", dir.display());
}

/// Anyone who can write the directory could swap the socket for a symlink between the bind and
/// the chmod: group- or world-writable directories without the sticky bit are refused, also
/// when reached through a symlink. (Tests run as root, which owns every directory made here, so
/// it is the mode that is refused.)
#[tokio::test]
async fn a_parent_directory_others_can_write_is_refused_naming_it() {
    let dir = socket_dir();
    for (name, mode, words) in [
        ("world", 0o777, &["0777", "its group and others", "not sticky"][..]),
        ("group", 0o770, &["0770", "its group", "not sticky"]),
        ("others", 0o703, &["0703", "others", "not sticky"]),
    ] {
        let shared = dir_with_mode(&dir, name, mode);
        refused_in(&shared, &shared.join("t.sock"), words).await;
    }
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("world"), &link).expect("symlink");
    refused_in(&link, &link.join("t.sock"), &["0777"]).await;
}

/// Root may own the directory, the process's uid may; nobody else.
#[tokio::test]
async fn a_parent_directory_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        return testkit::unavailable("only root can make a directory owned by another user (CI runs as root)");
    }
    let dir = socket_dir();
    let theirs = dir_with_mode(&dir, "theirs", 0o700);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown to nobody");
    refused_in(&theirs, &theirs.join("t.sock"), &["owned by uid 65534"]).await;
}

/// A sticky world-writable directory, like /tmp, is accepted: nobody else can rename or remove
/// our socket there. The socket is 0600 as everywhere.
#[tokio::test]
async fn a_sticky_world_writable_parent_like_tmp_is_accepted() {
    let dir = socket_dir();
    let sticky = dir_with_mode(&dir, "sticky", 0o1777);
    let path = sticky.join("t.sock");
    let running = server().bind(&Endpoint::unix(&path)).await.expect("a sticky directory is fine");
    assert_eq!(mode(&path), 0o600, "socket file mode");
    answers(&path).await;
    stop(&running).await;

    // /tmp itself (root's, 1777). The file is removed by the shutdown, or by the guard if the
    // test fails first.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let in_tmp = PathBuf::from(format!("/tmp/wrpc-{}-{:016x}.sock", std::process::id(), rand::random::<u64>()));
    let _guard = Remove(in_tmp.clone());
    let tmp = std::fs::metadata("/tmp").expect("stat /tmp");
    assert_eq!((tmp.mode() & 0o7777, tmp.uid()), (0o1777, 0), "precondition: /tmp is root's and 1777");
    let running = server().bind(&Endpoint::unix(&in_tmp)).await.expect("/tmp is fine");
    assert_eq!(mode(&in_tmp), 0o600, "socket file mode");
    answers(&in_tmp).await;
    stop(&running).await;
    assert!(!in_tmp.exists(), "socket file left in /tmp");
}

/// A client that names the users its server may run as checks the listening end's kernel
/// credentials before it sends anything: a server of another user never sees the hello.
#[tokio::test]
async fn a_client_sends_nothing_to_a_server_of_a_user_it_does_not_allow() {
    let dir = socket_dir();
    let path = socket_in(&dir, "planted.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let received = std::thread::spawn(move || {
        use std::io::Read;
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(testkit::BOUND)).expect("timeout");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    });
    let me = rustix::process::geteuid().as_raw();
    let someone_else = me.wrapping_add(1);
    let err = within(
        "connect",
        Client::builder().server_users(PeerPolicy::Users(vec![someone_else])).connect(Endpoint::unix(&path)),
    )
    .await
    .expect_err("another user's server is refused");
    assert!(
        matches!(&err, ConnectError::ServerNotAllowed { uid: Some(uid), .. } if *uid == me),
        "{}",
        warren_rpc::ErrorChain(&err)
    );
    assert!(err.to_string().contains(&format!("uid {me}")), "names the server's uid: {err}");
    let bytes = tokio::task::spawn_blocking(move || received.join().expect("reader")).await.expect("join");
    assert!(bytes.is_empty(), "nothing was sent to the planted socket: {bytes:?}");

    // The same check passes a server of an allowed user.
    let running = server().bind(&Endpoint::unix(socket_in(&dir, "mine.sock"))).await.expect("bind");
    let client = within(
        "connect",
        Client::builder()
            .server_users(PeerPolicy::Users(vec![me]))
            .connect(Endpoint::unix(socket_in(&dir, "mine.sock"))),
    )
    .await
    .expect("an allowed server");
    let todo: Todo = client.call("Task.Get", "x").await.expect("call");
    assert_eq!(todo.id, "x");
    client.close().await;
    running.shutdown(Duration::from_secs(1)).await;
}
