use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn output(spawner: &Spawner, command: &Command) -> (String, ExitStatus) {
    let mut process = spawner.spawn(command).await.expect("spawn");
    let mut out = String::new();
    process.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("read");
    (out, process.wait().await.expect("wait"))
}

#[test]
fn a_child_starts_in_its_own_group_with_a_clean_signal_state_in_its_directory() {
    runtime().block_on(async {
        let spawner = Spawner::start(false).expect("spawner");
        // grep reads its own status: the spawned process itself, not a shell's child.
        let mut command = Command::new("grep");
        command.args(["-E", "^(Pid|NSpgid|SigBlk|SigIgn):", "/proc/self/status"]);
        let (out, status) = output(&spawner, &command).await;
        assert!(status.success(), "{out}");
        let field = |name: &str| {
            out.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{name} in {out}"))
        };
        assert_eq!(field("NSpgid:"), field("Pid:"), "its own process group: {out}");
        assert_eq!(field("SigBlk:"), "0000000000000000", "{out}");
        let ignored = u64::from_str_radix(field("SigIgn:"), 16).expect("mask");
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE at its default: {out}");
        let (out, _) = output(&spawner, Command::new("pwd").current_dir("/")).await;
        assert_eq!(out, "/\n");
    });
}

#[test]
fn a_child_starts_in_its_cgroup() {
    let Ok(cgroups) = crate::cgroup::HostCgroup::create() else {
        eprintln!("skipped: no writable cgroup2 hierarchy here");
        return;
    };
    runtime().block_on(async {
        let spawner = Spawner::start(false).expect("spawner");
        let cgroup = cgroups.child("spawner-test").expect("child cgroup");
        let mut command = Command::new("cat");
        command.args(["/proc/self/cgroup"]).cgroup(cgroup.dir_fd(), cgroup.procs_fd());
        let (out, status) = output(&spawner, &command).await;
        assert!(status.success(), "{out}");
        let unified = out.lines().find_map(|line| line.strip_prefix("0::")).unwrap_or_default();
        assert!(unified.contains("/spawner-test-"), "{out}");
        // A directory the kernel will not create a child in: it joins through cgroup.procs.
        let root = std::fs::File::open("/").expect("open /");
        let other = cgroups.child("spawner-join").expect("child cgroup");
        command.cgroup(std::os::fd::AsRawFd::as_raw_fd(&root), other.procs_fd());
        let (out, status) = output(&spawner, &command).await;
        assert!(status.success(), "{out}");
        let unified = out.lines().find_map(|line| line.strip_prefix("0::")).unwrap_or_default();
        assert!(unified.contains("/spawner-join-"), "{out}");
    });
}

#[test]
fn a_child_dies_with_the_thread_that_started_it() {
    runtime().block_on(async {
        let spawner = Spawner::start(false).expect("spawner");
        let process = spawner.spawn(Command::new("sleep").args(["30"])).await.expect("spawn");
        // The spawner thread ends once its queue is dropped; the death signal follows it.
        drop(spawner);
        let status =
            tokio::time::timeout(Duration::from_secs(5), process.wait()).await.expect("it died").expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn a_missing_program_is_not_found() {
    runtime().block_on(async {
        let spawner = Spawner::start(false).expect("spawner");
        let err = spawner.spawn(&Command::new("/nonexistent/program")).await.expect_err("no such program");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = spawner.spawn(&Command::new("no-such-program-in-path")).await.expect_err("no such program");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn a_name_is_searched_in_path_and_a_path_is_taken_as_it_is() {
    let path = Some(OsStr::new("/usr/local/bin::/bin"));
    assert_eq!(search_path(Path::new("true"), path), ["/usr/local/bin/true", "true", "/bin/true"]);
    assert_eq!(search_path(Path::new("./true"), path), ["./true"]);
    assert_eq!(search_path(Path::new("true"), None), ["/bin/true", "/usr/bin/true"]);
    assert!(search_path(Path::new(""), path).is_empty());
}

#[test]
fn the_environment_is_the_hosts_with_the_changes_in_order() {
    let mut command = Command::new("env");
    command.env("WARREN_A", "1").env_clear().env("WARREN_B", "2").env("WARREN_C", "3").env_remove("WARREN_C");
    let (exec, _ends) = command.prepare(1).expect("prepare");
    assert_eq!(exec.envp, [CString::new("WARREN_B=2").expect("no NUL")]);
    assert_eq!(exec.argv, [CString::new("env").expect("no NUL")]);
    assert_eq!(
        exec.candidates,
        [CString::new("/bin/env").expect("no NUL"), CString::new("/usr/bin/env").expect("no NUL")]
    );
}

#[test]
fn an_inherited_variable_is_replaced_or_removed_once_and_path_is_the_childs() {
    let host: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let Some((key, _)) = host.iter().find(|(key, _)| key != "PATH") else { return };
    let mut command = Command::new("true");
    command.env(key, "replaced").env("PATH", "/opt/warren-test").env("WARREN_GONE", "1").env_remove("WARREN_GONE");
    let (exec, _ends) = command.prepare(1).expect("prepare");
    let count = |name: &OsStr| {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(b'=');
        exec.envp.iter().filter(|pair| pair.as_bytes().starts_with(&prefix)).count()
    };
    let mut replaced = key.clone();
    replaced.push("=replaced");
    assert!(exec.envp.iter().any(|pair| pair.as_bytes() == replaced.as_bytes()));
    assert_eq!(count(key), 1);
    assert_eq!(count(OsStr::new("PATH")), 1);
    assert_eq!(count(OsStr::new("WARREN_GONE")), 0);
    let had_path = host.iter().any(|(key, _)| key == "PATH");
    assert_eq!(exec.envp.len(), host.len() + usize::from(!had_path));
    assert_eq!(exec.candidates, [CString::new("/opt/warren-test/true").expect("no NUL")]);
}

#[test]
fn passed_sockets_are_fds_from_3_with_the_childs_own_pid() {
    runtime().block_on(async {
        let spawner = Spawner::start(false).expect("spawner");
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        // Descriptors 3 and 4 of this process are taken (by whatever the harness and the runtime
        // opened first): placing the passed ones there in the child must not lose either.
        let fds = [a, b].map(|l| std::sync::Arc::new(OwnedFd::from(l)));
        let mut command = Command::new("/bin/sh");
        // $$ is the shell's pid: the process that was spawned (sh execs nothing before this).
        command.args(["-c", "echo \"$LISTEN_PID $$\"; readlink /proc/$$/fd/3 /proc/$$/fd/4; test ! -e /proc/$$/fd/5"]);
        command.env_remove("LISTEN_PID").listen(fds.iter().cloned());
        let (out, status) = output(&spawner, &command).await;
        assert!(status.success(), "only 3 and 4 are passed: {out}");
        let mut lines = out.lines();
        let pids: Vec<&str> = lines.next().expect("the pid line").split(' ').collect();
        assert_eq!(pids[0], pids[1], "LISTEN_PID is the child's own pid: {out}");
        assert!(lines.all(|l| l.starts_with("socket:")), "fds 3 and 4 are the sockets: {out}");
        drop(command);
        assert_eq!(std::sync::Arc::strong_count(&fds[0]), 1, "the caller's copy is the only one left");
    });
}
