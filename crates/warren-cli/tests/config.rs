//! The whole path from text to plan or errors, with the exact messages users see.

use std::path::{Path, PathBuf};
use std::time::Duration;

use warren::Signal;
use warren::supervise::plan::{
    Backoff, Condition, CrashLoop, Dependency, Health, HealthCheck, Invocation, OnSocketLost, Plan, Program, Protocol,
    ReadyCheck, Restart,
};

use warren_cli::config::{ConfigError, ConfigErrors, load, parse};

const FILE: &str = "/srv/app/warren.toml";

fn ok(text: &str) -> Plan {
    match parse(text, Path::new(FILE)) {
        Ok(plan) => plan,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// The messages, one per line, with the file name shortened to `w.toml` for readability.
fn errors(text: &str) -> String {
    match parse(text, Path::new("w.toml")) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(errors) => errors.to_string(),
    }
}

fn only(plan: &Plan) -> &Program {
    assert_eq!(plan.programs().len(), 1);
    &plan.programs()[0]
}

#[test]
fn a_minimal_program_gets_every_default() {
    let plan = ok("[programs.api]\ncommand = 'bin/api'\n");
    let mut expected = Program::new("api", Invocation::Exec { program: "/srv/app/bin/api".into(), args: vec![] });
    expected.cwd = Some("/srv/app".into());
    assert_eq!(only(&plan), &expected, "programs run in the configuration's directory by default");
}

#[test]
fn every_key_is_parsed() {
    let plan = ok(r#"
[programs.db]
command = "postgres"
health = { exec = ["pg_isready", "-q"], interval = "2s", timeout = "500ms", failures = 2 }

[programs.api]
command = "./target/debug/api"
args = ["--port", "7000"]
env = { RUST_LOG = "info", EMPTY = "" }
clear_env = true
cwd = "run"
ready = { connect = "tcp:127.0.0.1:7000", interval = "100ms" }
ready_timeout = "1m 30s"
restart = "always"
backoff = { initial = "1s", factor = 1.5, max = "1m", jitter = 0 }
crash_loop = { max_starts = 3, window = "2m" }
stop_signal = "int"
grace = "0s"
depends_on = ["db", { name = "db2", condition = "healthy" }]
health = { connect = "unix:run/api.sock" }
reset_after = "5m"

[programs.db2]
shell = "exec postgres -p 5433"
rpc = true
health = { rpc_ping = true }
"#);
    let api = &plan.programs()[1];
    assert_eq!(api.name, "api");
    assert_eq!(
        api.command,
        Invocation::Exec { program: "/srv/app/target/debug/api".into(), args: vec!["--port".into(), "7000".into()] }
    );
    assert_eq!(api.env, [("EMPTY".into(), String::new()), ("RUST_LOG".into(), "info".into())]);
    assert!(api.clear_env);
    assert_eq!(api.cwd, Some(PathBuf::from("/srv/app/run")));
    assert!(!api.rpc);
    assert_eq!(
        api.readiness,
        ReadyCheck::Connect { endpoint: "tcp:127.0.0.1:7000".into(), interval: Duration::from_millis(100) }
    );
    assert_eq!(api.ready_timeout, Duration::from_secs(90));
    assert_eq!(api.restart, Restart::Always);
    assert_eq!(
        api.backoff,
        Backoff { initial: Duration::from_secs(1), factor: 1.5, max: Duration::from_secs(60), jitter: 0.0 }
    );
    assert_eq!(api.crash_loop, CrashLoop { max_starts: 3, window: Duration::from_secs(120) });
    assert_eq!(api.stop_signal, Signal::INT);
    assert_eq!(api.grace, Duration::ZERO);
    assert_eq!(
        api.depends_on,
        [
            Dependency { name: "db".into(), condition: Condition::Ready },
            Dependency { name: "db2".into(), condition: Condition::Healthy },
        ]
    );
    assert_eq!(
        api.health,
        Some(Health {
            check: HealthCheck::Connect("unix:/srv/app/run/api.sock".into()),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failures: 3,
        })
    );
    assert_eq!(api.reset_after, Duration::from_secs(300));

    let db = &plan.programs()[0];
    assert_eq!(db.command, Invocation::Exec { program: "postgres".into(), args: vec![] });
    assert_eq!(
        db.health,
        Some(Health {
            check: HealthCheck::Exec(Invocation::Exec { program: "pg_isready".into(), args: vec!["-q".into()] }),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            failures: 2,
        })
    );
    let db2 = &plan.programs()[2];
    assert_eq!(db2.command, Invocation::Shell("exec postgres -p 5433".into()));
    assert!(db2.rpc);
    assert_eq!(db2.health.as_ref().map(|h| &h.check), Some(&HealthCheck::RpcPing));
}

#[test]
fn readiness_forms() {
    let plan = ok(r#"
[programs.a]
command = "a"
ready = "warren"
[programs.b]
command = "b"
ready = "notify"
[programs.c]
command = "c"
ready = { log = "listening on \\d+" }
[programs.d]
command = "d"
ready = { exec = ["./check", "--quiet"] }
[programs.e]
command = "e"
ready = { shell = "test -e ready" , interval = "1s" }
[programs.f]
command = "f"
ready = "none"
"#);
    let r: Vec<_> = plan.programs().iter().map(|p| (p.readiness.clone(), p.rpc)).collect();
    assert_eq!(r[0], (ReadyCheck::Notify, true));
    assert_eq!(r[1], (ReadyCheck::Notify, false));
    assert_eq!(r[2], (ReadyCheck::LogLine(r"listening on \d+".into()), false));
    assert_eq!(
        r[3].0,
        ReadyCheck::Exec {
            command: Invocation::Exec { program: "/srv/app/check".into(), args: vec!["--quiet".into()] },
            interval: Duration::from_millis(200),
        }
    );
    assert_eq!(
        r[4].0,
        ReadyCheck::Exec { command: Invocation::Shell("test -e ready".into()), interval: Duration::from_secs(1) }
    );
    assert_eq!(r[5].0, ReadyCheck::None);
}

#[test]
fn defaults_apply_under_each_programs_own_keys() {
    let plan = ok(r#"
[defaults]
grace = "5s"
restart = "on-failure"
env = { RUST_LOG = "info", COLOR = "no" }
backoff = { max = "10s", jitter = 0.5 }
crash_loop = { window = "5m" }
health = { shell = "true" }

[programs.a]
command = "a"

[programs.b]
command = "b"
grace = "1s"
env = { RUST_LOG = "debug" }
backoff = { initial = "2s" }
crash_loop = { max_starts = 9 }
health = "none"
"#);
    let (a, b) = (&plan.programs()[0], &plan.programs()[1]);
    assert_eq!(a.grace, Duration::from_secs(5));
    assert_eq!(a.restart, Restart::OnFailure);
    assert_eq!(a.env, [("COLOR".into(), "no".into()), ("RUST_LOG".into(), "info".into())]);
    assert_eq!(
        a.backoff,
        Backoff { initial: Duration::from_millis(500), factor: 2.0, max: Duration::from_secs(10), jitter: 0.5 }
    );
    assert_eq!(a.crash_loop, CrashLoop { max_starts: 5, window: Duration::from_secs(300) });
    assert!(a.health.is_some());

    assert_eq!(b.grace, Duration::from_secs(1));
    assert_eq!(b.restart, Restart::OnFailure);
    assert_eq!(b.env, [("COLOR".into(), "no".into()), ("RUST_LOG".into(), "debug".into())]);
    assert_eq!(
        b.backoff,
        Backoff { initial: Duration::from_secs(2), factor: 2.0, max: Duration::from_secs(10), jitter: 0.5 }
    );
    assert_eq!(b.crash_loop, CrashLoop { max_starts: 9, window: Duration::from_secs(300) });
    assert_eq!(b.health, None);
}

#[test]
fn clear_env_is_off_unless_set_and_inherited_from_defaults() {
    assert!(!only(&ok("[programs.a]\ncommand = 'a'\n")).clear_env, "the environment is inherited by default");
    let plan = ok(r#"
[defaults]
clear_env = true
env = { PATH = "/usr/bin" }

[programs.a]
command = "a"
env = { FOO = "bar" }

[programs.b]
command = "b"
clear_env = false
"#);
    let (a, b) = (&plan.programs()[0], &plan.programs()[1]);
    assert!(a.clear_env);
    assert_eq!(a.env, [("FOO".into(), "bar".into()), ("PATH".into(), "/usr/bin".into())]);
    assert!(!b.clear_env, "a program's own value wins");
    assert_eq!(
        errors("[programs.a]\ncommand = 'a'\nclear_env = 'yes'\n[defaults]\nclear_env = 1\n"),
        "w.toml:3: program \"a\", field \"clear_env\": invalid type: string \"yes\", expected a boolean\n\
         w.toml:5: [defaults], field \"clear_env\": invalid type: integer `1`, expected a boolean"
    );
}

#[test]
fn durations_use_humantime() {
    for (text, expected) in [
        ("500ms", Duration::from_millis(500)),
        ("1s 500ms", Duration::from_millis(1500)),
        ("1.5s", Duration::from_millis(1500)),
        ("2min", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
    ] {
        let plan = ok(&format!("[programs.a]\ncommand = 'a'\ngrace = '{text}'\n"));
        assert_eq!(only(&plan).grace, expected, "{text}");
    }
    assert_eq!(
        errors("[programs.a]\ncommand = 'a'\ngrace = '5x'\nready_timeout = '0s'\nreset_after = '10'\n"),
        "w.toml:3: program \"a\", field \"grace\": invalid duration \"5x\": unknown time unit \"x\", supported \
         units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)\n\
         w.toml:4: program \"a\", field \"ready_timeout\": must be greater than zero\n\
         w.toml:5: program \"a\", field \"reset_after\": invalid duration \"10\": time unit needed, for example \
         10sec or 10ms"
    );
}

#[test]
fn bad_values_name_line_program_and_field() {
    let text = r#"[programs.api]
command = "api"
restart = "sometimes"
stop_signal = "SIGFOO"
ready = "maybe"
backoff = { factor = 0.5, jitter = 1.5 }
crash_loop = { max_starts = 0, window = "0s" }
health = { exec = [], failures = 0, interval = "0ms" }
env = { "A=B" = "x" }
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:3: program "api", field "restart": unknown policy "sometimes" (expected never, on-failure, always)
w.toml:4: program "api", field "stop_signal": unknown signal "SIGFOO" (expected SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGKILL, SIGUSR1 or SIGUSR2)
w.toml:5: program "api", field "ready": unknown readiness "maybe" (expected "none", "notify", "warren" or a table with log, exec, shell, connect or http)
w.toml:6: program "api", field "backoff.factor": must be at least 1 (got 0.5)
w.toml:6: program "api", field "backoff.jitter": must be between 0 and 1 (got 1.5)
w.toml:7: program "api", field "crash_loop.max_starts": must be at least 1
w.toml:7: program "api", field "crash_loop.window": must be greater than zero
w.toml:8: program "api", field "health.interval": must be greater than zero
w.toml:8: program "api", field "health.failures": must be at least 1
w.toml:8: program "api", field "health.exec": empty command
w.toml:9: program "api", field "env": invalid environment variable name "A=B""#
    );
}

#[test]
fn probes_are_checked() {
    let text = r#"[programs.a]
command = "a"
ready = { log = "(unclosed" }
[programs.b]
command = "b"
ready = { log = "x", exec = ["y"] }
[programs.c]
command = "c"
ready = { log = "x", interval = "1s" }
[programs.d]
command = "d"
ready = { connect = "127.0.0.1:80" }
health = { rpc_ping = false }
[programs.f]
command = "f"
ready = { connect = "localhost:0" }
[programs.e]
command = "e"
ready = { connect = "tcp:host:0" }
health = "sometimes"
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:3: program "a", field "ready.log": invalid regular expression "(unclosed": unclosed group
w.toml:6: program "b", field "ready": set exactly one of log, exec, shell, connect, http
w.toml:9: program "c", field "ready.interval": interval applies only to exec, shell, connect and http
w.toml:13: program "d", field "health": set exactly one of rpc_ping = true, exec, shell, connect, http
w.toml:16: program "f", field "ready.connect": invalid endpoint "localhost:0" (expected tcp:HOST:PORT, HOST:PORT or unix:PATH)
w.toml:19: program "e", field "ready.connect": invalid endpoint "tcp:host:0" (expected tcp:HOST:PORT, HOST:PORT or unix:PATH)
w.toml:20: program "e", field "health": unknown health check "sometimes" (expected "none" or a table with rpc_ping, exec, shell, connect or http)"#
    );
}

#[test]
fn commands_are_checked() {
    let text = r#"[programs.none]
cwd = "."
[programs.both]
command = "a"
shell = "b"
[programs.args]
shell = "b"
args = ["x"]
[programs.empty]
command = ""
["programs"."bad name"]
command = "a"
[defaults]
command = "x"
depends_on = ["a"]
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:1: program "none": missing command (set command, or shell for a shell command line)
w.toml:5: program "both", field "shell": command and shell cannot both be set
w.toml:8: program "args", field "args": args cannot be used with shell (write them in the command line)
w.toml:10: program "empty", field "command": empty command
w.toml:11: program "bad name": invalid program name "bad name": use only letters, digits, '_', '.' and '-'
w.toml:14: [defaults], field "command": cannot be set in [defaults] (set it on each program)
w.toml:15: [defaults], field "depends_on": cannot be set in [defaults] (set it on each program)"#
    );
}

#[test]
fn rpc_contradictions() {
    let text = r#"[programs.a]
command = "a"
ready = "warren"
rpc = false
[programs.b]
command = "b"
health = { rpc_ping = true }
[programs.c]
command = "c"
ready = "warren"
health = { rpc_ping = true }
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:4: program "a", field "rpc": rpc = false contradicts ready = "warren" (which means notify + rpc)
w.toml:7: program "b", field "health": rpc_ping needs a program that serves RPC (rpc = true or ready = "warren")"#
    );
}

#[test]
fn rpc_names_the_protocol_a_program_serves() {
    let plan = ok(r#"
[defaults]
rpc = "json"
[programs.py]
command = "python3"
ready = "notify"
[programs.rs]
command = "rs"
rpc = true
[programs.go]
command = "go-server"
ready = "warren"
[programs.plain]
command = "plain"
rpc = false
"#);
    let r: Vec<_> = plan.programs().iter().map(|p| (p.name.as_str(), p.rpc, p.protocol)).collect();
    assert_eq!(
        r,
        [
            ("py", true, Protocol::JsonRpc),
            ("rs", true, Protocol::Binary),
            ("go", true, Protocol::JsonRpc),
            ("plain", false, Protocol::Binary),
        ]
    );
    assert_eq!(
        errors("[programs.a]\ncommand = 'a'\nrpc = 'grpc'\n"),
        r#"w.toml:3: program "a", field "rpc": unknown rpc protocol "grpc" (expected true, false, "warren", "json", "go" or "go-plain")"#
    );
}

#[test]
fn transport_is_per_program_and_only_for_warrens_protocol() {
    use warren_rpc::Transport;
    let plan = ok(r#"
[defaults]
transport = "auto"
[programs.rs]
command = "rs"
rpc = true
[programs.fast]
command = "fast"
ready = "warren"
transport = "shm"
[programs.py]
command = "python3"
rpc = "json"
[programs.idle]
command = "sleep"
[programs.slow]
command = "slow"
rpc = "warren"
transport = "socket"
"#);
    // Inherited, it applies to the programs that speak warren's protocol and to no other.
    let t: Vec<_> = plan.programs().iter().map(|p| (p.name.as_str(), p.transport)).collect();
    assert_eq!(
        t,
        [
            ("rs", Transport::Auto),
            ("fast", Transport::Shm),
            ("py", Transport::Socket),
            ("idle", Transport::Socket),
            ("slow", Transport::Socket),
        ]
    );
    assert_eq!(only(&ok("[programs.a]\ncommand = 'a'\nrpc = true\n")).transport, Transport::Socket, "the default");
    assert_eq!(
        errors(
            "[programs.a]\ncommand = 'a'\nrpc = 'json'\ntransport = 'shm'\n[programs.b]\ncommand = 'b'\ntransport = 'auto'\n[programs.c]\ncommand = 'c'\nrpc = 'go-plain'\ntransport = 'socket'\n[programs.d]\ncommand = 'd'\nrpc = true\ntransport = 'tcp'\n"
        ),
        r#"w.toml:4: program "a", field "transport": transport = "shm" needs warren's binary protocol (rpc = true or ready = "warren"); rpc = "json" never moves to shared memory
w.toml:7: program "b", field "transport": transport = "auto" needs warren's binary protocol (rpc = true or ready = "warren"); the program serves no RPC
w.toml:15: program "d", field "transport": unknown transport "tcp" (expected "socket", "auto" or "shm")"#
    );
}

#[test]
fn backoff_max_below_initial_is_reported_where_it_was_written() {
    // Only in [defaults]: reported once, there.
    let text = "[defaults]\nbackoff = { initial = '1m' }\n[programs.a]\ncommand = 'a'\n[programs.b]\ncommand = 'b'\n";
    assert_eq!(errors(text), "w.toml:2: [defaults], field \"backoff.initial\": max (30s) is less than initial (1m)");
    // A program's own max against the inherited initial: reported on the program.
    let text = "[defaults]\nbackoff = { initial = '2s' }\n[programs.a]\ncommand = 'a'\nbackoff = { max = '1s' }\n";
    assert_eq!(errors(text), "w.toml:5: program \"a\", field \"backoff.max\": max (1s) is less than initial (2s)");
}

#[test]
fn dependency_errors() {
    let text = r#"[programs.api]
command = "api"
depends_on = ["cahce", "api", "cache", "cache", { name = "cache", condition = "later" }]
[programs.cache]
command = "cache"
restart = "always"
[programs.web]
command = "web"
depends_on = [{ name = "cache", condition = "healthy" }]
[programs.late]
command = "late"
depends_on = [{ name = "cache", condition = "exited_ok" }]
[programs.tool]
command = "tool"
autostart = false
[programs.uses_tool]
command = "uses-tool"
depends_on = ["tool"]
[programs.also_manual]
command = "also-manual"
autostart = false
depends_on = ["tool"]
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:3: program "api", field "depends_on": unknown condition "later" (expected started, ready, healthy, exited_ok)
w.toml:3: program "api", field "depends_on": unknown program "cahce" (did you mean "cache"?)
w.toml:3: program "api", field "depends_on": a program cannot depend on itself
w.toml:3: program "api", field "depends_on": "cache" is listed twice
w.toml:9: program "web", field "depends_on": condition "healthy" on "cache", which has no health check
w.toml:12: program "late", field "depends_on": condition "exited_ok" on "cache", which has restart = "always" and so never finishes
w.toml:18: program "uses_tool", field "depends_on": "tool" has autostart = false, so this program would wait for it forever (give this one autostart = false too)"#
    );
}

#[test]
fn cycles_are_named_from_their_first_program() {
    let text = r#"[programs.web]
command = "web"
depends_on = ["api"]

[programs.api]
command = "api"
depends_on = ["cache", "db"]

[programs.db]
command = "db"
depends_on = [
  "api",
]

[programs.cache]
command = "cache"
depends_on = ["cache2"]

[programs.cache2]
command = "cache2"
depends_on = [{ name = "cache", condition = "started" }]
"#;
    assert_eq!(
        errors(text),
        "w.toml:7: program \"api\", field \"depends_on\": dependency cycle: api -> db -> api\n\
         w.toml:17: program \"cache\", field \"depends_on\": dependency cycle: cache -> cache2 -> cache"
    );
}

#[test]
fn what_the_last_line_leaves_open_is_reported_on_it() {
    // Found by `props`: the parser points at the very end, which was counted as one line more
    // than the file has.
    assert_eq!(
        errors("[programs.a]\ncommand = \"\"\"abc\n"),
        "w.toml:2: invalid TOML: invalid multi-line basic string, expected `\"`"
    );
    assert_eq!(
        errors("[programs.a]\ncommand = 'a'\n[programs.b\n"),
        "w.toml:3: invalid TOML: unclosed table, expected `]`"
    );
}

#[test]
fn a_cycle_through_invalid_names_is_reported_on_one_line() {
    // Found by `props`: the names went into the message as they were, a newline and all.
    let text = "[programs.\"a\\nb\"]\ncommand = 'a'\ndepends_on = ['']\n[programs.'']\ncommand = 'a'\ndepends_on = [\"a\\nb\"]\n";
    assert_eq!(
        errors(text),
        r#"w.toml:1: program "a\nb": invalid program name "a\nb": use only letters, digits, '_', '.' and '-'
w.toml:3: program "a\nb", field "depends_on": dependency cycle: "a\nb" -> "" -> "a\nb"
w.toml:4: program "": invalid program name "": use only letters, digits, '_', '.' and '-'"#
    );
}

#[test]
fn a_broken_program_does_not_make_its_dependents_fail() {
    // "db" has an unknown key: its dependents must not get "unknown program" errors too.
    let text =
        "[programs.db]\ncommand = 'db'\nrestat = 'always'\n[programs.api]\ncommand = 'api'\ndepends_on = ['db']\n";
    assert_eq!(errors(text), "w.toml:3: program \"db\": unknown key \"restat\" (did you mean \"restart\"?)");
}

#[test]
fn file_level_errors() {
    assert_eq!(errors(""), "w.toml: no programs (add a [programs.NAME] table)");
    assert_eq!(errors("[defaults]\ngrace = '1s'\n"), "w.toml: no programs (add a [programs.NAME] table)");
    assert_eq!(errors("[programs.a]\ncommand = 'a'\n[programs.a]\n"), "w.toml:3: invalid TOML: duplicate key");
    assert_eq!(errors("[programs]\na = 1\n"), "w.toml:2: program \"a\": expected a table");
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let text = "[programs.a]\ncommand = '../bin/a'\ncwd = 'data/./a'\n[programs.b]\nshell = './b'\n";
    let plan = match parse(text, Path::new("conf/w.toml")) {
        Ok(plan) => plan,
        Err(errors) => panic!("{errors}"),
    };
    let base = std::env::current_dir().expect("cwd").join("conf");
    let a = &plan.programs()[0];
    assert_eq!(a.command, Invocation::Exec { program: base.join("../bin/a"), args: vec![] });
    assert_eq!(a.cwd, Some(base.join("data/a")));
    // A shell command line is the shell's business.
    assert_eq!(plan.programs()[1].command, Invocation::Shell("./b".into()));
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("warren.toml");
    std::fs::write(&path, "[programs.a]\ncommand = './a'\nrestart = 'often'\n").expect("write");
    let errors: ConfigErrors = load(&path).expect_err("bad restart");
    assert_eq!(errors.errors().len(), 1);
    let error: &ConfigError = &errors.errors()[0];
    assert_eq!((error.file.as_path(), error.line, error.field.as_deref()), (path.as_path(), Some(3), Some("restart")));

    std::fs::write(&path, "[programs.a]\ncommand = './a'\n").expect("write");
    let plan = load(&path).expect("valid");
    assert_eq!(only(&plan).command, Invocation::Exec { program: dir.path().join("a"), args: vec![] });

    let missing = dir.path().join("missing.toml");
    let message = load(&missing).expect_err("no file").to_string();
    assert!(message.starts_with(&format!("{}: cannot read the file: ", missing.display())), "{message}");
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../warren.toml");
    let plan = match load(&path) {
        Ok(plan) => plan,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(plan.start_order(), [["setup"], ["task-rpc"], ["worker"], ["ticker"]]);
    let root = std::path::absolute(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).expect("absolute");
    let task_rpc = &plan.programs()[1];
    assert_eq!(task_rpc.command, Invocation::Exec { program: root.join("target/debug/task-rpc"), args: vec![] });
    assert!(task_rpc.rpc);
    assert_eq!(task_rpc.grace, Duration::from_secs(5));
}

#[test]
fn errors_inside_arrays_and_nested_tables_name_their_field() {
    let text = r#"[programs.a]
command = "a"
env = { A = 1 }
[programs.b]
command = "b"
depends_on = [{ condition = "ready" }]
[programs.c]
command = "c"
[[programs.c.depends_on]]
name = "a"
conditon = "started"
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:3: program "a", field "env.A": invalid type: integer `1`, expected a string
w.toml:6: program "b", field "depends_on": missing field `name`
w.toml:11: program "c", field "depends_on": unknown key "conditon" (did you mean "condition"?)"#
    );
}

#[test]
fn on_socket_lost_is_restart_by_default_and_report_when_asked() {
    let plan = ok(r#"
[defaults]
on_socket_lost = "report"

[programs.a]
command = "/bin/a"
rpc = true

[programs.b]
command = "/bin/b"
rpc = true
on_socket_lost = "restart"
"#);
    assert_eq!(plan.programs()[0].on_socket_lost, OnSocketLost::Report, "inherited from [defaults]");
    assert_eq!(plan.programs()[1].on_socket_lost, OnSocketLost::Restart);
    let plan = ok("[programs.c]\ncommand = \"/bin/c\"\n");
    assert_eq!(plan.programs()[0].on_socket_lost, OnSocketLost::Restart);
    assert_eq!(
        errors("[programs.d]\ncommand = \"/bin/d\"\non_socket_lost = \"ignore\"\n"),
        "w.toml:3: program \"d\", field \"on_socket_lost\": unknown action \"ignore\" (expected restart or report)"
    );
}
