//! Reliability round 2 (#14 points 5–7): the watchdog's own name, both killed at once,
//! escapees without cgroups, and the smaller attacks — each reproduced against a real
//! `warren up` (the fixture bounds every wait and kills what is left).

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BOUND, Up, WARREN, alive, cmdline};
use rustix::process::Signal;

/// The uid and gid of `nobody`, to run as an unprivileged user; None if not root or no such user.
fn nobody() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "nobody"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// `up` started as `user` (its directory handed over to it), or as ourselves.
fn start_as(config: &str, user: Option<(u32, u32)>) -> Up {
    Up::start_with(config, |command, dir| {
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown the instance directory");
            command.uid(uid).gid(gid);
        }
    })
}

/// A `warren` command against `up`, as `user`.
fn warren_as(up: &Up, user: Option<(u32, u32)>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(WARREN);
    command.args(args).current_dir(up.dir()).env("WARREN_CONTROL", up.socket()).env("NO_COLOR", "1");
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run warren");
    let deadline = Instant::now() + BOUND;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// A program with a grandchild in its group (`sleep 3031`) and one that escaped it with
/// `setsid` (`sleep 3032`), itself `sleep 3033`.
const FAMILY: &str = r#"
[programs.family]
shell = "sleep 3031 & setsid -f sleep 3032; exec sleep 3033"
"#;

#[test]
fn the_watchdog_has_a_name_of_its_own_so_killall_warren_leaves_it_to_clean_up() {
    killall_warren(None);
}

/// Without cgroups the watchdog finds the escaped grandchild by the host's tag in its
/// environment.
#[test]
fn without_cgroups_killall_warren_leaves_nothing_either() {
    let Some(user) = nobody() else {
        return testkit::skip::unavailable("needs root to run warren up as nobody (no cgroups)");
    };
    killall_warren(Some(user));
}

fn killall_warren(user: Option<(u32, u32)>) {
    let mut up = start_as(FAMILY, user);
    up.wait_event("family", "started", BOUND);
    let tree = up.wait_processes("sleep 303", 3);
    let watchdog = up.wait_processes("", 1).into_iter().find(|&pid| comm(pid) == "warren-watchdog");
    let watchdog = watchdog.unwrap_or_else(|| panic!("no process named warren-watchdog in the tree"));
    // What `killall -9 warren` (and `pgrep -x warren`) match: the kernel's name, exactly.
    assert_eq!(comm(up.pid()), "warren");
    let named_warren: Vec<u32> = up.processes("").into_iter().filter(|&pid| comm(pid) == "warren").collect();
    assert_eq!(named_warren, [up.pid()], "only up is named warren; the watchdog is {watchdog}");
    up.signal(Signal::KILL);
    let started = Instant::now();
    let gone = testkit::wait_until(Duration::from_secs(2), || tree.iter().all(|&pid| !alive(pid)));
    let left: Vec<String> = tree.iter().filter(|&&pid| alive(pid)).map(|&pid| cmdline(pid)).collect();
    assert!(gone, "left {:?} after up was killed: {left:?}", started.elapsed());
    eprintln!("killall -9 warren: the whole tree gone {:?} after", started.elapsed());
    // The watchdog also removes the dead host's runtime directory, which its children emptied.
    let removed = testkit::wait_until(Duration::from_secs(2), || runtime_dirs(up.pid()).is_empty());
    assert!(removed, "the dead host's runtime directory is left: {:?}", runtime_dirs(up.pid()));
    // And its control socket, which `up` could not remove.
    let removed = testkit::wait_until(Duration::from_secs(2), || !up.socket().exists());
    assert!(removed, "the dead up's control socket {} is left", up.socket().display());
}

/// The runtime directories (`warren-<pid>-<random>`) of the host `pid`.
fn runtime_dirs(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("warren-{pid}-");
    let bases = std::env::var_os("XDG_RUNTIME_DIR").into_iter().map(std::path::PathBuf::from).chain(["/tmp".into()]);
    bases
        .filter_map(|base| std::fs::read_dir(base).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

#[test]
fn a_watchdog_killed_alone_is_replaced_so_the_host_dying_last_still_takes_the_tree() {
    let mut up = Up::start(FAMILY);
    up.wait_event("family", "started", BOUND);
    let tree = up.wait_processes("sleep 303", 3);
    let watchdog = || up.processes("").into_iter().find(|&pid| comm(pid) == "warren-watchdog");
    let first = watchdog().expect("a watchdog");
    assert!(testkit::signal(first, Signal::KILL));
    let replaced = Instant::now();
    let mut second = None;
    assert!(
        testkit::wait_until(Duration::from_secs(1), || {
            second = watchdog().filter(|&pid| pid != first);
            second.is_some()
        }),
        "no new watchdog within 1 s:\n{}",
        up.transcript()
    );
    let took = replaced.elapsed();
    // Registered before the first one died: the new one must know the program's group.
    up.signal(Signal::KILL);
    let killed = Instant::now();
    let gone = testkit::wait_until(Duration::from_secs(2), || tree.iter().all(|&pid| !alive(pid)));
    let left: Vec<String> = tree.iter().filter(|&&pid| alive(pid)).map(|&pid| cmdline(pid)).collect();
    assert!(gone, "left after the host died last: {left:?}");
    eprintln!("watchdog {first} replaced by {second:?} in {took:?}; tree gone {:?} after up", killed.elapsed());
}

/// `pkill -9 warren` (or `kill -9` of both): the direct child dies by its parent-death signal
/// at once. What is left needs one of the two alive: with cgroups the next host's start sweeps
/// the dead host's cgroups; without, the grandchildren stay (RELIABILITY.md, Open).
fn both_killed_at_once(user: Option<(u32, u32)>) -> (Vec<u32>, Duration) {
    let mut up = start_as(FAMILY, user);
    up.wait_event("family", "started", BOUND);
    let direct = up.wait_processes("sleep 3033", 1);
    up.wait_processes("sleep 303", 3);
    let watchdog = up.processes("").into_iter().find(|&pid| comm(pid) == "warren-watchdog").expect("watchdog");
    let killed = Instant::now();
    assert!(testkit::signal(up.pid(), Signal::KILL) && testkit::signal(watchdog, Signal::KILL));
    assert!(
        testkit::wait_until(Duration::from_secs(1), || direct.iter().all(|&pid| !alive(pid))),
        "the direct child outlived both by 1 s"
    );
    let took = killed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let left = up.processes("sleep 303");
    // Nobody was left to remove the host's runtime directory; the next host of the same user
    // would sweep it, but the test's user may never start another.
    for dir in runtime_dirs(up.pid()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    (left, took)
    // Dropping `up` kills what is left.
}

#[test]
fn both_killed_at_once_with_cgroups_the_next_start_sweeps_what_is_left() {
    let (left, took) = both_killed_at_once(None);
    eprintln!("direct child gone {took:?} after; left until the next start: {left:?}");
    let cgroup = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if left.is_empty() || !cgroup(left[0]).contains("/warren-") {
        return testkit::skip::unavailable("no writable cgroup2 hierarchy here: nothing for the next start to sweep");
    }
    let mut next = Up::start("[programs.x]\ncommand = \"sleep\"\nargs = [\"30\"]\n");
    next.wait_event("x", "started", BOUND);
    let gone = testkit::wait_until(Duration::from_secs(1), || left.iter().all(|&pid| !alive(pid)));
    let still: Vec<String> = left.iter().filter(|&&pid| alive(pid)).map(|&pid| cmdline(pid)).collect();
    for &pid in &left {
        testkit::signal(pid, Signal::KILL);
    }
    assert!(gone, "the next up did not sweep the dead host's cgroups: {still:?}");
}

#[test]
fn both_killed_at_once_without_cgroups_the_direct_child_still_dies() {
    let Some(user) = nobody() else {
        return testkit::skip::unavailable("needs root to run warren up as nobody (no cgroups)");
    };
    let (left, took) = both_killed_at_once(Some(user));
    for &pid in &left {
        testkit::signal(pid, Signal::KILL);
    }
    eprintln!("direct child gone {took:?} after; left (killed by the test): {}", left.len());
}

#[test]
fn without_cgroups_setsid_escapes_are_killed_at_down_and_reported() {
    let Some(user) = nobody() else {
        return testkit::skip::unavailable("needs root to run warren up as nobody (no cgroups)");
    };
    // Two escapes: a setsid double fork through a shell, and `setsid -f`.
    let config = r#"
[programs.daemon]
shell = "setsid sh -c 'sleep 3041 & exit 0' & setsid -f sleep 3042; exec sleep 3043"
"#;
    let mut up = start_as(config, Some(user));
    up.wait_event("daemon", "started", BOUND);
    // The three sleeps themselves: until the shells have exec'd, their command lines name
    // the sleeps too.
    let deadline = Instant::now() + BOUND;
    let tree = loop {
        let tree = up.wait_processes("sleep 304", 3);
        if tree.len() == 3 && tree.iter().all(|&pid| cmdline(pid).starts_with("sleep 304")) {
            break tree;
        }
        assert!(Instant::now() < deadline, "not just the three sleeps: {tree:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let escaped = tree.iter().filter(|&&pid| !cmdline(pid).contains("3043")).count();
    assert_eq!(escaped, 2, "{tree:?}");
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", tree[0])).unwrap_or_default();
    assert!(!cgroup.contains("/warren-"), "nobody has no cgroups of warren's: {cgroup}");
    let started = Instant::now();
    let out = warren_as(&up, Some(user), &["down"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "down says the stop was not clean: {stdout}");
    assert!(stdout.contains("stopped; 2 process(es) had left their program's process group"), "{stdout}");
    up.wait_exit(BOUND);
    up.assert_no_leftovers(Duration::from_millis(500));
    eprintln!("down took {:?}: {stdout}", started.elapsed());
    assert!(up.transcript().contains("2 process(es) that had left"), "{}", up.transcript());
}

#[test]
fn a_missing_working_directory_is_reported_as_such() {
    let mut up = Up::start("[programs.a]\ncommand = \"sleep\"\nargs = [\"30\"]\ncwd = \"/nonexistent/warren-cwd\"\n");
    let line = up.wait_line("working directory", BOUND);
    assert!(line.text.contains("/nonexistent/warren-cwd"), "{}", line.text);
    assert!(!up.transcript().contains("not found"), "{}", up.transcript());
}

#[test]
fn a_crash_loop_with_a_zero_backoff_does_not_spin() {
    let config = "[programs.crashy]\nshell = \"exit 1\"\nrestart = \"on-failure\"\nbackoff = { initial = \"0s\", jitter = 0.0 }\n\
                  crash_loop = { max_starts = 1000, window = \"60s\" }\n";
    let mut up = Up::start(config);
    up.wait_event("crashy", "starting", BOUND);
    let started = Instant::now();
    let first = up.row("crashy")["restarts"].as_u64().expect("restarts");
    std::thread::sleep(Duration::from_secs(2));
    let restarts = up.row("crashy")["restarts"].as_u64().expect("restarts") - first;
    // At least 100 ms between starts: at most one restart per 100 ms of the time between the two
    // reads (the `status` calls take their own time), +1 for the edges.
    let most = u64::try_from(started.elapsed().as_millis() / 100).unwrap_or(u64::MAX) + 1;
    assert!((5..=most).contains(&restarts), "{restarts} restarts in {:?}:\n{}", started.elapsed(), up.transcript());
    eprintln!("{restarts} restarts in 2 s with backoff.initial = 0s");
}

#[test]
fn long_program_names_do_not_pad_every_line() {
    let long = "a_program_with_a_name_of_forty_chars_xyz";
    let config =
        format!("[programs.{long}]\nshell = \"echo long; sleep 30\"\n[programs.b]\nshell = \"echo short; sleep 30\"\n");
    let mut up = Up::start(&config);
    let short = up.wait_line("| short", BOUND);
    assert_eq!(short.text, format!("{:<16} | short", "b"), "padded to 16, not to {}", long.len());
    let whole = up.wait_line("| long", BOUND);
    assert_eq!(whole.text, format!("{long} | long"), "a longer name is printed whole");
}

#[test]
fn call_gives_up_on_a_silent_instance_within_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("ctl.sock");
    // Accepts and never answers the hello (a stopped or wedged instance).
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        while finished.recv_timeout(Duration::from_millis(10)) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
        }
        held.len()
    });
    let started = Instant::now();
    let out = assert_cmd::Command::new(WARREN)
        .args(["call", "x", "Task.Get", "--timeout", "1s"])
        .env("WARREN_CONTROL", &socket)
        .timeout(BOUND)
        .output()
        .expect("run warren call");
    let took = started.elapsed();
    drop(done);
    assert_eq!(holder.join().expect("holder"), 1, "warren call connected");
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(4), "took {took:?}: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("gave up after {took:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
}

#[test]
fn control_characters_from_programs_are_escaped_on_a_terminal() {
    if !Path::new("/usr/bin/script").exists() {
        return testkit::skip::unavailable("script(1), for a pseudo-terminal, is missing");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("warren.toml");
    std::fs::write(&file, "[programs.evil]\nshell = \"printf 'a\\\\033]0;owned\\\\007b\\\\033[2Jc\\\\n'; sleep 30\"\n")
        .expect("config");
    let tag = testkit::unique_tag();
    let line = format!("{WARREN} up -f {}", file.display());
    let mut script = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .env("WARREN_TEST_TAG", &tag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut out = script.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = tx.send(seen.clone());
        }
    });
    let deadline = Instant::now() + BOUND;
    let mut seen = Vec::new();
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains("\\x1b[2Jc") {
        if let Ok(more) = rx.recv_timeout(Duration::from_millis(100)) {
            seen = more;
        }
    }
    let _ = script.kill();
    let _ = script.wait();
    for pid in testkit::tagged("WARREN_TEST_TAG", &tag) {
        testkit::signal(pid, Signal::KILL);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("a\\x1b]0;owned\\x07b\\x1b[2Jc"), "escaped on the terminal: {text:?}");
    assert!(!text.contains("\x1b]0;owned"), "no raw OSC reached the terminal: {text:?}");
}
