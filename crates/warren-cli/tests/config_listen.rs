//! `listen` and `restart_mode` in warren.toml: parsed into the plan, or reported with the
//! file, line, program and field.

use std::path::Path;

use warren::listen::Listen;
use warren::supervise::plan::{Plan, RestartMode};
use warren_cli::config::parse;

fn ok(text: &str) -> Plan {
    parse(text, Path::new("/srv/app/warren.toml")).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

fn errors(text: &str) -> String {
    match parse(text, Path::new("w.toml")) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn listen_entries_resolve_unix_paths_against_the_programs_cwd() {
    let plan = ok(r#"
[programs.api]
command = "api"
listen = ["tcp:127.0.0.1:8080", { address = "unix:api.sock", name = "rpc", mode = 0o660 }]
restart_mode = "rolling"

[programs.web]
command = "web"
cwd = "web"
listen = ["unix:web.sock", "unix:/run/abs.sock"]
"#);
    let api = plan.program("api").expect("api");
    assert_eq!(
        api.listen,
        [
            Listen { address: "tcp:127.0.0.1:8080".into(), name: "api".into(), mode: None },
            Listen { address: "unix:/srv/app/api.sock".into(), name: "rpc".into(), mode: Some(0o660) },
        ]
    );
    assert_eq!(api.restart_mode, RestartMode::Rolling);
    let web = plan.program("web").expect("web");
    let addresses: Vec<&str> = web.listen.iter().map(|l| l.address.as_str()).collect();
    assert_eq!(addresses, ["unix:/srv/app/web/web.sock", "unix:/run/abs.sock"]);
    assert_eq!(web.restart_mode, RestartMode::Stop, "the default");
}

#[test]
fn bad_listen_entries_name_line_program_and_field() {
    let text = r#"[defaults]
restart_mode = "gradual"
listen = ["tcp:127.0.0.1:1"]

[programs.api]
command = "api"
listen = [
  "udp:127.0.0.1:53",
  "tcp:127.0.0.1:http",
  "tcp:127.0.0.1:80",
  "tcp:127.0.0.1:80",
  { address = "tcp:127.0.0.1:81", mode = 0o600 },
  { address = "unix:a.sock", name = "a:b" },
  { address = "unix:b.sock", mode = 0o1777 },
  { address = "unix:c.sock", port = 1 },
]
"#;
    assert_eq!(
        errors(text),
        r#"w.toml:2: [defaults], field "restart_mode": unknown restart mode "gradual" (expected "stop" or "rolling")
w.toml:3: [defaults], field "listen": cannot be set in [defaults] (set it on each program)
w.toml:15: program "api", field "listen": unknown key "port" (expected one of address, name, mode)"#
    );
    // Once the table is readable, each bad entry is reported on its own line.
    let text = text
        .replace(", port = 1", "")
        .replace("[defaults]\nrestart_mode = \"gradual\"\nlisten = [\"tcp:127.0.0.1:1\"]\n", "");
    assert_eq!(
        errors(&text),
        r#"w.toml:5: program "api", field "listen": "udp:127.0.0.1:53": expected `tcp:HOST:PORT` or `unix:PATH`
w.toml:6: program "api", field "listen": "tcp:127.0.0.1:http": "http" is not a port number (0 to 65535)
w.toml:8: program "api", field "listen": "tcp:127.0.0.1:80" is listed twice
w.toml:9: program "api", field "listen": "tcp:127.0.0.1:81": `mode` is for Unix sockets
w.toml:10: program "api", field "listen": name "a:b": use printable ASCII without ':' (at most 255 bytes)
w.toml:11: program "api", field "listen": mode 1777 is not a file mode (0o000 to 0o777)"#
    );
}
