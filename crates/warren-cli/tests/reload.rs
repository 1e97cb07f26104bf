//! `warren reload` (issue #13, point 3) on a real `warren up`: the file is re-read and applied
//! as a difference — pids compared: an unchanged program keeps its process, a changed one gets
//! a new one, a removed one is gone, an added one starts after what it depends on; an invalid
//! file changes nothing and exits 2 with the configuration error; `--dry-run` changes nothing.

// Each test file uses only part of the fixture.
#[allow(dead_code)]
mod common;

use std::time::Duration;

use common::{BOUND, Up, alive};

/// Ready at once, runs until stopped; `ENV` tells one setting apart from another.
fn program(name: &str, env: &str, depends: &str) -> String {
    format!("[programs.{name}]\nshell = \"exec sleep 60\"\nenv = {{ MARK = \"{env}\" }}\ngrace = \"2s\"\n{depends}\n")
}

const DEPENDS_ON_KEEP: &str = "depends_on = [\"keep\"]";

fn base() -> String {
    [
        program("keep", "1", ""),
        program("change", "1", ""),
        program("gone", "1", ""),
        program("gone-dep", "1", "depends_on = [\"gone\"]"),
    ]
    .concat()
}

fn pid(up: &mut Up, name: &str) -> u32 {
    let row = up.wait_status(name, BOUND, |row| row["state"] == "ready" && row["pid"].is_u64());
    u32::try_from(row["pid"].as_u64().expect("pid")).expect("pid fits u32")
}

fn names(up: &mut Up) -> Vec<String> {
    up.status_json().iter().map(|row| row["name"].as_str().expect("name").to_owned()).collect()
}

fn output(up: &Up, args: &[&str]) -> (Option<i32>, String, String) {
    let out = up.warren(args).output().expect("run warren");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `warren down`; `up` exits with `code` and leaves nothing behind.
fn down_with(up: &mut Up, code: i32) {
    up.warren(["down"]).assert().success();
    assert_eq!(up.wait_exit(BOUND).code(), Some(code), "{}", up.transcript());
    up.assert_no_leftovers(Duration::from_secs(3));
}

#[test]
fn a_reload_applies_the_difference_and_keeps_what_did_not_change() {
    let mut up = Up::start(&base());
    up.wait_line("all programs are up", BOUND);
    let before: Vec<u32> = ["keep", "change", "gone", "gone-dep"].iter().map(|n| pid(&mut up, n)).collect();
    let new = [program("keep", "1", ""), program("change", "2", ""), program("added", "1", DEPENDS_ON_KEEP)].concat();
    std::fs::write(up.config(), new).expect("rewrite warren.toml");

    // A dry run says what would happen and does nothing.
    let (code, stdout, stderr) = output(&up, &["reload", "--dry-run"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for expected in ["added: would start", "change: would restart", "gone: would stop", "gone-dep: would stop"] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    let after_dry: Vec<u32> = ["keep", "change", "gone", "gone-dep"].iter().map(|n| pid(&mut up, n)).collect();
    assert_eq!(before, after_dry, "a dry run restarted something");
    assert_eq!(names(&mut up), ["keep", "change", "gone", "gone-dep"]);

    let (code, stdout, stderr) = output(&up, &["reload"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}\n{}", up.transcript());
    assert!(stdout.contains("added: started (new)") && stdout.contains("change: restarted"), "{stdout}");
    // `reload` returns once the added and changed programs are up.
    assert_eq!(pid(&mut up, "keep"), before[0], "the unchanged program was restarted");
    let changed = pid(&mut up, "change");
    assert_ne!(changed, before[1], "the changed program kept its process");
    assert!(!alive(before[1]), "the changed program's old process is still there");
    assert_eq!(up.row("change")["last_restart"], "its settings changed", "the restart says why");
    let (_, detail, _) = output(&up, &["status", "change"]);
    assert!(detail.contains("restarting: its settings changed"), "its recent changes say it restarted:\n{detail}");
    assert!(!detail.contains("waiting: its settings changed"), "not 'waiting':\n{detail}");
    let added = pid(&mut up, "added");
    assert!(alive(added));
    // The added program has a log file of its own, as those `up` started with do.
    let state = up.dir().join("state/warren");
    let instance = std::fs::read_dir(&state).expect("state directory").next().expect("one").expect("entry").path();
    assert!(instance.join("logs/added.log").exists(), "no log file for the added program");
    up.warren(["logs", "added"]).assert().success();
    for (old, name) in [(before[2], "gone"), (before[3], "gone-dep")] {
        let deadline = std::time::Instant::now() + BOUND;
        while alive(old) {
            assert!(std::time::Instant::now() < deadline, "{name} (pid {old}) still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let deadline = std::time::Instant::now() + BOUND;
    while names(&mut up) != ["keep", "change", "added"] {
        assert!(std::time::Instant::now() < deadline, "status still lists {:?}", names(&mut up));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Dependents first: gone-dep stopped before gone did.
    up.wait_event("gone-dep", "stopped", BOUND);
    up.wait_event("gone", "stopped", BOUND);
    assert!(up.event_index("gone-dep", "stopped") < up.event_index("gone", "stopping"), "{}", up.transcript());
    assert!(up.events("keep", "stopping").is_empty(), "keep was stopped:\n{}", up.transcript());
    down_with(&mut up, 0);
}

#[test]
fn an_invalid_file_is_refused_and_nothing_changes() {
    let mut up = Up::start(&base());
    up.wait_line("all programs are up", BOUND);
    let before: Vec<u32> = ["keep", "change", "gone", "gone-dep"].iter().map(|n| pid(&mut up, n)).collect();
    std::fs::write(up.config(), format!("{}\n[programs.broken]\nshell = 3\n", program("keep", "2", "")))
        .expect("rewrite");
    let (code, stdout, stderr) = output(&up, &["reload"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("warren.toml") && stderr.contains("broken"), "the error names file and program:\n{stderr}");
    assert!(stderr.contains("runs as before"), "{stderr}");
    let (code, _, stderr) = output(&up, &["reload", "--dry-run"]);
    assert_eq!(code, Some(2), "{stderr}");
    let after: Vec<u32> = ["keep", "change", "gone", "gone-dep"].iter().map(|n| pid(&mut up, n)).collect();
    assert_eq!(before, after);
    assert_eq!(names(&mut up), ["keep", "change", "gone", "gone-dep"]);
    // The same file, reloaded unchanged, changes nothing either.
    std::fs::write(up.config(), common::with_child(&base())).expect("rewrite");
    let (code, stdout, _) = output(&up, &["reload"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("nothing to change (4 unchanged)"), "{stdout}");
    let again: Vec<u32> = ["keep", "change", "gone", "gone-dep"].iter().map(|n| pid(&mut up, n)).collect();
    assert_eq!(before, again);
    down_with(&mut up, 0);
}

#[test]
fn a_reload_whose_new_program_cannot_start_exits_1_and_says_why() {
    let mut up = Up::start(&program("keep", "1", ""));
    up.wait_line("all programs are up", BOUND);
    let keep = pid(&mut up, "keep");
    let broken = "[programs.broken]\ncommand = \"/nonexistent/warren-test-program\"\n";
    std::fs::write(up.config(), format!("{}{broken}", program("keep", "1", ""))).expect("rewrite");
    let (code, stdout, stderr) = output(&up, &["reload"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("broken") && stderr.contains("not found"), "{stderr}");
    assert_eq!(pid(&mut up, "keep"), keep);
    // A program failed: `up` exits 1.
    down_with(&mut up, 1);
}
