//! `warren export systemd`: the units pass `systemd-analyze verify`, say what warren would do,
//! and note what systemd cannot.

use std::process::Command;

#[expect(dead_code, reason = "the fixture serves cli.rs too; this file uses part of it")]
mod common;

const CONFIG: &str = r#"
[programs.db]
command = @child@
args = ["notify-ready", "100"]
ready = "notify"
grace = "3s"
stop_signal = "INT"

[programs.api]
command = @child@
args = ["sleeper", "with space", "100% $HOME \"quoted\""]
env = { GREETING = "hello world", PCT = "50%" }
depends_on = ["db"]
restart = "on-failure"
backoff = { initial = "250ms" }
ready = { connect = "127.0.0.1:9" }
health = { connect = "127.0.0.1:9" }
user = "@me@"
memory_max = "64M"
cpu_max = "50%"
pids_max = 100

[programs.job]
shell = "echo $HOME && exit 0"
restart = "never"
depends_on = [{ name = "api", condition = "healthy" }]

[programs.tool]
command = @child@
args = ["sleeper"]
autostart = false

[programs.web]
command = @child@
args = ["sleeper"]
listen = ["tcp:127.0.0.1:8080", { address = "unix:admin.sock", name = "admin", mode = 0o660 }]
restart_mode = "rolling"
"#;

#[test]
fn exported_units_verify_and_say_what_systemd_cannot_do() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        testkit::skip::unavailable("systemd-analyze is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("shop");
    std::fs::create_dir(&project).expect("mkdir");
    // Running as oneself needs no privilege, so the test runs as any user.
    let me = Command::new("id").arg("-un").output().expect("id -un");
    let me = String::from_utf8_lossy(&me.stdout).trim().to_owned();
    std::fs::write(project.join("warren.toml"), common::with_child(CONFIG).replace("@me@", &me)).expect("config");
    let units = dir.path().join("units");
    let output = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["export", "systemd", "--user", "-f"])
        .arg(&project)
        .arg(&units)
        .output()
        .expect("run warren export");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let read = |name: &str| std::fs::read_to_string(units.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    let (db, api, job, target) =
        (read("shop-db.service"), read("shop-api.service"), read("shop-job.service"), read("shop.target"));

    assert!(
        db.contains("Type=notify") && db.contains("TimeoutStopSec=3000ms") && db.contains("KillSignal=SIGINT"),
        "{db}"
    );
    assert!(api.contains("Requires=shop-db.service\nAfter=shop-db.service"), "{api}");
    assert!(api.contains(r#""with space" "100%% $$HOME \"quoted\"""#), "arguments arrive as written: {api}");
    assert!(
        api.contains(r#"Environment="GREETING=hello world""#) && api.contains(r#"Environment="PCT=50%%""#),
        "{api}"
    );
    assert!(api.contains(&format!("User={me}\n")), "{api}");
    assert!(
        api.contains("MemoryMax=67108864\n") && api.contains("CPUQuota=50%\n") && api.contains("TasksMax=100\n"),
        "{api}"
    );
    assert!(api.contains("Restart=on-failure") && api.contains("RestartSec=250ms"), "{api}");
    assert!(api.contains("# warren: ready when tcp:127.0.0.1:9 accepts a connection"), "{api}");
    assert!(api.contains("# warren: has a health check"), "{api}");
    assert!(job.contains(r#"ExecStart=/bin/sh -c "echo $$HOME && exit 0""#), "{job}");
    assert!(job.contains("# warren: waits until api is healthy"), "{job}");
    assert!(
        target.contains("Wants=shop-db.service shop-api.service shop-job.service shop-web.service\n"),
        "not tool: {target}"
    );
    let tool = read("shop-tool.service");
    assert!(!tool.contains("[Install]"), "autostart = false: started by hand, never enabled: {tool}");
    assert!(target.contains("WantedBy=default.target"), "--user: {target}");
    assert!(stdout.contains("note: has a health check") && stdout.contains("enable --now shop.target"), "{stdout}");

    // `listen`: a socket unit per entry, which systemd holds and passes as warren does.
    let (web, http, admin) = (read("shop-web.service"), read("shop-web-web.socket"), read("shop-web-admin.socket"));
    assert!(web.contains("Requires=shop-web-web.socket\nAfter=shop-web-web.socket"), "{web}");
    assert!(web.contains("Sockets=shop-web-web.socket shop-web-admin.socket\n"), "{web}");
    assert!(web.contains("# warren: restarts rolling"), "{web}");
    assert!(http.contains("ListenStream=127.0.0.1:8080\nFileDescriptorName=web\nService=shop-web.service"), "{http}");
    let admin_path = project.join("admin.sock");
    assert!(admin.contains(&format!("ListenStream={}\nSocketMode=0660\n", admin_path.display())), "{admin}");
    assert!(admin.contains("FileDescriptorName=admin") && admin.contains("WantedBy=shop.target"), "{admin}");

    let names = ["shop-db.service", "shop-api.service", "shop-job.service", "shop-tool.service", "shop-web.service"];
    let sockets = ["shop-web-web.socket", "shop-web-admin.socket", "shop.target"];
    let files: Vec<_> = names.iter().chain(&sockets).map(|name| units.join(name)).collect();
    let verify = Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&files).output().expect("verify");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");
}
