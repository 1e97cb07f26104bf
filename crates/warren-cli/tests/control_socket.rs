//! The control socket cannot be impersonated, heals when deleted, and a second `up` finds a
//! running instance by its lock even when the socket file is gone.

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BOUND, Up};
use rustix::process::Signal;

const SLEEPER: &str = "[programs.idle]\ncommand = @child@\nargs = [\"sleeper\"]\n";

#[test]
fn a_deleted_control_socket_is_bound_again() {
    let mut up = Up::start(SLEEPER);
    up.wait_event("idle", "started", BOUND);
    std::fs::remove_file(up.socket()).expect("delete the control socket");
    let healed = testkit::wait_until(BOUND, || up.warren(["status"]).output().is_ok_and(|out| out.status.success()));
    assert!(healed, "status works again after the socket was deleted:\n{}", up.transcript());
    up.wait_line("bound again", BOUND);
    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(0), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn a_second_up_is_refused_by_the_lock_even_without_the_socket() {
    let mut up = Up::start(SLEEPER);
    up.wait_event("idle", "started", BOUND);
    std::fs::remove_file(up.socket()).expect("delete the control socket");
    let second = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["up", "-f"])
        .arg(up.config())
        .env("WARREN_CONTROL", up.socket())
        .env("NO_COLOR", "1")
        .output()
        .expect("run a second warren up");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("already running") && stderr.contains(".lock"), "{stderr}");
    let lock = up.socket().with_extension("lock");
    assert!(lock.exists(), "the lock file is there while up runs");
    up.warren(["down"]).assert().success();
    up.wait_exit(BOUND);
    assert!(!lock.exists(), "up removes its lock file when it ends");
    up.assert_no_leftovers(Duration::from_secs(3));
}

/// A user made for the test (and removed after it), as the attacker.
struct OtherUser {
    name: String,
    uid: u32,
}

impl OtherUser {
    fn create() -> Option<OtherUser> {
        if !rustix::process::geteuid().is_root() {
            testkit::skip::unavailable("impersonation tests need root, to create a second user");
            return None;
        }
        // One per test: tests of one binary run at once in one process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("wrn{}x{n}", std::process::id());
        let mut useradd = Command::new("useradd");
        useradd.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", &name]);
        if !run(&mut useradd) {
            testkit::skip::unavailable("useradd failed");
            return None;
        }
        let id = Command::new("id").args(["-u", &name]).output().expect("id -u");
        let uid = String::from_utf8_lossy(&id.stdout).trim().parse().expect("a uid");
        Some(OtherUser { name, uid })
    }

    /// `program args…` run as this user.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", &self.name, "--", program]);
        command
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).status();
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn run(command: &mut Command) -> bool {
    command.status().is_ok_and(|status| status.success())
}

/// A Python listener run by `user` at `socket` that appends whatever it receives to `log`.
fn plant(user: &OtherUser, socket: &Path, log: &Path) -> std::process::Child {
    let script = "import os,socket,sys\n\
                  s=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\nos.chmod(sys.argv[1],0o777)\ns.listen(8)\n\
                  while True:\n c,_=s.accept()\n c.settimeout(5)\n\
                  \x20try:\n  data=c.recv(65536)\n except Exception:\n  data=b''\n\
                  \x20open(sys.argv[2],'ab').write(data)\n c.close()\n";
    let child = user.command("python3").args(["-c", script]).arg(socket).arg(log).spawn().expect("start the listener");
    assert!(testkit::wait_until(BOUND, || socket.exists()), "the planted socket appears");
    child
}

/// Another user takes the victim's control directory first (`prepare` gets the attacker, the
/// shared temporary directory and the directory's path) and plants a socket where the
/// victim's instance would listen: the victim's commands must refuse to use it, say why and
/// whose it is, and send it nothing; `up` must refuse too rather than say "already running".
fn attack(prepare: impl FnOnce(&OtherUser, &Path, &Path), expected: &str) {
    let Some(attacker) = OtherUser::create() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    let shared = tmp.path().to_owned();
    let mut up = Up::start_with(SLEEPER, move |command, _| {
        command.env_remove("WARREN_CONTROL").env_remove("XDG_RUNTIME_DIR").env("TMPDIR", &shared);
    });
    // Where the victim's instance listens (its name is a hash of the configuration's directory).
    let line = up.wait_line("control socket ", BOUND);
    let rest = line.text.split("control socket ").nth(1).expect("a path");
    let socket = PathBuf::from(rest.split(';').next().unwrap_or(rest).trim());
    up.signal(Signal::TERM);
    up.wait_exit(BOUND);
    let dir = socket.parent().expect("its directory").to_owned();
    std::fs::remove_dir_all(&dir).expect("clean the victim's directory");

    prepare(&attacker, tmp.path(), &dir);
    let log = tmp.path().join("received");
    let mut listener = plant(&attacker, &socket, &log);
    let victim = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(args)
            .current_dir(up.dir())
            .env_remove("WARREN_CONTROL")
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", tmp.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run warren");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    for args in [&["status"][..], &["call", "idle", "Secret.Use", "\"hunter2\""], &["up"]] {
        let (code, stderr) = victim(args);
        assert_eq!(code, Some(70), "warren {args:?} refuses: {stderr}");
        assert!(stderr.contains(&dir.display().to_string()) && stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.contains(&attacker.uid.to_string()), "names the owner: {stderr}");
    }
    let _ = listener.kill();
    let _ = listener.wait();
    let received = std::fs::read(&log).unwrap_or_default();
    assert!(received.is_empty(), "the planted socket received {:?}", String::from_utf8_lossy(&received));
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn a_control_directory_made_first_by_another_user_is_refused() {
    attack(
        |attacker, _, dir| {
            let mut mkdir = attacker.command("mkdir");
            mkdir.args(["-m", "0777"]).arg(dir);
            assert!(run(&mut mkdir), "the attacker makes the directory");
        },
        "owned by uid",
    );
}

#[test]
fn a_control_directory_that_is_a_symlink_to_a_shared_directory_is_refused() {
    attack(
        |attacker, shared, dir| {
            let mut link = attacker.command("ln");
            link.args(["-s"]).arg(shared).arg(dir);
            assert!(run(&mut link), "the attacker makes the symlink");
        },
        "symbolic link",
    );
}
