//! Env files, the `.env` beside the configuration, and `${...}` expansion: from files on disk to
//! the plan or the exact errors, and through the real `warren up` to a program's environment.

#[allow(dead_code)]
mod common;

use std::path::Path;

use tempfile::TempDir;
use warren::supervise::plan::{HealthCheck, Invocation, Plan, Program, ReadyCheck};
use warren_cli::config::load;

use common::{BOUND, Up, WARREN};

/// A directory with `files` (name, text) written in it; `warren.toml` is one of them.
fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn plan(dir: &TempDir) -> Plan {
    load(&dir.path().join("warren.toml")).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

/// The errors, with the directory shown as `DIR`.
fn errors(dir: &TempDir) -> String {
    match load(&dir.path().join("warren.toml")) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(errors) => errors.to_string().replace(&dir.path().display().to_string(), "DIR"),
    }
}

fn env_of<'p>(plan: &'p Plan, name: &str) -> Vec<(&'p str, &'p str)> {
    let program: &Program = plan.program(name).unwrap_or_else(|| panic!("no program {name}"));
    program.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn env_files_use_dotenv_syntax_and_sit_under_env() {
    let dir = dir_with(&[
        (
            "config/app.env",
            "# a comment\nexport QUOTED=\"two words\" # trailing comment\nSINGLE='a$b'\nMULTI=\"x\ny\"\n\
             SHARED=from-app\nESCAPED=\"a\\nb\"\n",
        ),
        ("config/local.env", "SHARED=from-local\nOWN=local\n"),
        (
            "warren.toml",
            "[programs.a]\ncommand = 'a'\nenv_file = ['config/app.env', 'config/local.env']\nenv = { OWN = 'env wins' }\n",
        ),
    ]);
    assert_eq!(
        env_of(&plan(&dir), "a"),
        [
            ("ESCAPED", "a\nb"),
            ("MULTI", "x\ny"),
            ("OWN", "env wins"),
            ("QUOTED", "two words"),
            ("SHARED", "from-local"),
            ("SINGLE", "a$b"),
        ],
        "later files win over earlier ones, env over every file"
    );
}

#[test]
fn the_dotenv_beside_the_file_is_read_unless_turned_off() {
    let toml = "[programs.a]\ncommand = 'a'\n[programs.b]\ncommand = 'b'\ndotenv = false\n\
                [programs.c]\ncommand = 'c'\nenv_file = 'more.env'\n";
    let dir = dir_with(&[(".env", "FROM_DOTENV=1\nBOTH=dotenv\n"), ("more.env", "BOTH=more\n"), ("warren.toml", toml)]);
    let plan = plan(&dir);
    assert_eq!(env_of(&plan, "a"), [("BOTH", "dotenv"), ("FROM_DOTENV", "1")]);
    assert_eq!(env_of(&plan, "b"), [], "dotenv = false");
    assert_eq!(env_of(&plan, "c"), [("BOTH", "more"), ("FROM_DOTENV", "1")], "an env_file goes over .env");

    let off = "[defaults]\ndotenv = false\n[programs.a]\ncommand = 'a'\n[programs.b]\ncommand = 'b'\ndotenv = true\n";
    let dir = dir_with(&[(".env", "X=1\n"), ("warren.toml", off)]);
    let plan = self::plan(&dir);
    assert_eq!(env_of(&plan, "a"), [], "[defaults] dotenv = false turns it off for every program");
    assert_eq!(env_of(&plan, "b"), [("X", "1")], "and a program can turn it back on");
}

#[test]
fn env_file_in_defaults_is_inherited_and_replaced_whole() {
    let toml = "[defaults]\nenv_file = 'common.env'\nenv = { D = '${COMMON}' }\n\
                [programs.a]\ncommand = 'a'\n[programs.b]\ncommand = 'b'\nenv_file = 'b.env'\n\
                [programs.c]\ncommand = 'c'\nenv_file = []\n";
    let dir = dir_with(&[("common.env", "COMMON=c\n"), ("b.env", "B=b\n"), ("warren.toml", toml)]);
    let plan = plan(&dir);
    assert_eq!(env_of(&plan, "a"), [("COMMON", "c"), ("D", "c")]);
    assert_eq!(env_of(&plan, "b"), [("B", "b"), ("D", "c")], "[defaults]' env is expanded with its own files");
    assert_eq!(env_of(&plan, "c"), [("D", "c")]);
}

#[test]
fn references_are_expanded_in_every_field_that_takes_them() {
    let path = std::env::var("PATH").expect("PATH is set");
    let toml = r#"
[programs.a]
command = "${BIN:-bin}/server"
args = ["--port", "${PORT}", "--path=${PATH}", "$$HOME is ${LITERAL:-$$}", "$PORT stays"]
env = { URL = "http://${HOST:-localhost}:${PORT}/", EMPTY = "${UNSET:-}" }
cwd = "${DATA}"
ready = { exec = ["${BIN:-bin}/check", "${PORT}"] }
health = { connect = "tcp:${HOST:-127.0.0.1}:${PORT}" }

[programs.b]
shell = "exec server --port ${PORT} $$1 $2"
ready = { log = "^ready$$" }
health = { shell = "test -n ${PORT}" }
"#;
    let dir = dir_with(&[(".env", "PORT=8080\nDATA=var/data\n"), ("warren.toml", toml)]);
    let plan = plan(&dir);
    let a = plan.program("a").expect("a");
    assert_eq!(
        a.command,
        Invocation::Exec {
            program: dir.path().join("bin/server"),
            args: vec![
                "--port".into(),
                "8080".into(),
                format!("--path={path}"),
                "$HOME is $".into(),
                "$PORT stays".into()
            ],
        }
    );
    assert_eq!(
        env_of(&plan, "a"),
        [("DATA", "var/data"), ("EMPTY", ""), ("PORT", "8080"), ("URL", "http://localhost:8080/")]
    );
    assert_eq!(a.cwd.as_deref(), Some(dir.path().join("var/data").as_path()), "expanded, then relative to the file");
    let ReadyCheck::Exec { command, .. } = &a.readiness else { panic!("{:?}", a.readiness) };
    assert_eq!(command, &Invocation::Exec { program: dir.path().join("bin/check"), args: vec!["8080".into()] });
    let health = a.health.as_ref().expect("health");
    assert_eq!(health.check, HealthCheck::Connect("tcp:127.0.0.1:8080".into()));

    let b = plan.program("b").expect("b");
    assert_eq!(b.command, Invocation::Shell("exec server --port 8080 $1 $2".into()));
    assert_eq!(b.readiness, ReadyCheck::LogLine("^ready$$".into()), "a log pattern is not expanded");
    let health = b.health.as_ref().expect("health");
    assert_eq!(health.check, HealthCheck::Exec(Invocation::Shell("test -n 8080".into())));
}

#[test]
fn the_files_win_over_warrens_environment() {
    let dir = dir_with(&[
        (".env", "PATH=/from/dotenv\n"),
        ("warren.toml", "[programs.a]\ncommand = 'a'\nargs = ['${PATH}']\n"),
    ]);
    let plan = plan(&dir);
    let Invocation::Exec { args, .. } = &plan.programs()[0].command else { panic!("exec") };
    assert_eq!(args, &["/from/dotenv"]);
}

#[test]
fn unset_variables_are_errors_at_their_line_program_and_field() {
    let toml = r#"[defaults]
cwd = "${NO_SUCH_DIR_VAR}"

[programs.api]
command = "server"
args = ["--db", "${NO_SUCH_DB_HOST}"]
env = { TOKEN = "${NO_SUCH_TOKEN:?get one from the team vault}" }
ready = { shell = "check ${NO_SUCH_PORT" }
health = { exec = ["${1}"] }
"#;
    let dir = dir_with(&[("warren.toml", toml)]);
    assert_eq!(
        errors(&dir),
        "DIR/warren.toml:2: [defaults], field \"cwd\": variable \"NO_SUCH_DIR_VAR\" is not set (set it in warren's \
         environment or an env file, or give a default: ${NO_SUCH_DIR_VAR:-value})\n\
         DIR/warren.toml:6: program \"api\", field \"args\": variable \"NO_SUCH_DB_HOST\" is not set (set it in \
         warren's environment or an env file, or give a default: ${NO_SUCH_DB_HOST:-value})\n\
         DIR/warren.toml:7: program \"api\", field \"env.TOKEN\": variable \"NO_SUCH_TOKEN\" is not set: get one from \
         the team vault\n\
         DIR/warren.toml:8: program \"api\", field \"ready.shell\": \"${\" without its \"}\" (write $$ for a literal $)\n\
         DIR/warren.toml:9: program \"api\", field \"health.exec\": unsupported \"${1}\" (expected ${NAME}, \
         ${NAME:-default} or ${NAME:?message}; write $$ for a literal $)"
    );
}

#[test]
fn env_files_that_cannot_be_read_or_parsed_are_errors_naming_them() {
    let toml = "[programs.a]\ncommand = 'a'\nenv_file = ['ok.env', 'missing.env']\n\
                [programs.b]\ncommand = 'b'\nenv_file = 'missing.env'\nargs = ['${FROM_MISSING}']\n";
    let dir = dir_with(&[(".env", "GOOD=1\n\nNOT A LINE\n"), ("ok.env", "A=1\n"), ("warren.toml", toml)]);
    let message = errors(&dir);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "DIR/.env:3: invalid line \"NOT A LINE\" in env file (at character 4)",
            "DIR/warren.toml:3: program \"a\", field \"env_file\": cannot read env file DIR/missing.env: No such file \
             or directory (os error 2)",
        ],
        "each file is reported once, and a program without its files is not checked for unset variables"
    );
}

#[test]
fn the_new_keys_take_their_types() {
    let dir = dir_with(&[("warren.toml", "[programs.a]\ncommand = 'a'\nenv_file = 3\n")]);
    assert_eq!(
        errors(&dir),
        "DIR/warren.toml:3: program \"a\", field \"env_file\": invalid type: integer `3`, expected a path or a list of paths"
    );
    let dir = dir_with(&[("warren.toml", "[programs.a]\ncommand = 'a'\ndotenv = 'no'\n")]);
    assert_eq!(
        errors(&dir),
        "DIR/warren.toml:3: program \"a\", field \"dotenv\": invalid type: string \"no\", expected a boolean"
    );
}

/// The real `warren up`: a program prints what it was given.
#[test]
fn a_program_gets_the_files_and_the_expanded_values() {
    let config = r#"
[programs.show]
command = "printenv"
args = ["GREETING", "FROM_FILE", "EXPANDED"]
env_file = "extra.env"
env = { EXPANDED = "${GREETING:-none}/${FROM_FILE}/$$" }
"#;
    let mut up = Up::start_with(config, |_, dir| {
        std::fs::write(dir.join(".env"), "export GREETING=\"hello world\" # not part of it\n").expect("write .env");
        std::fs::write(dir.join("extra.env"), "FROM_FILE=extra\n").expect("write extra.env");
    });
    let status = up.wait_exit(BOUND);
    assert!(status.success(), "{status}:\n{}", up.transcript());
    let printed: Vec<String> = up
        .transcript()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("show"))
        .filter_map(|rest| rest.trim_start().strip_prefix("| "))
        .map(str::to_owned)
        .collect();
    assert_eq!(printed, ["hello world", "extra", "hello world/extra/$"], "{}", up.transcript());
    up.assert_no_leftovers(BOUND);
}

#[test]
fn up_refuses_an_unset_variable_with_exit_code_2() {
    let dir = dir_with(&[("warren.toml", "[programs.a]\ncommand = 'true'\nargs = ['${WARREN_TEST_SURELY_UNSET}']\n")]);
    let output = assert_cmd::Command::new(WARREN)
        .args(["up", "-f"])
        .arg(dir.path().join("warren.toml"))
        .env("WARREN_CONTROL", dir.path().join("ctl.sock"))
        .env_remove("WARREN_TEST_SURELY_UNSET")
        .timeout(BOUND)
        .output()
        .expect("run warren up");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "warren: {}:3: program \"a\", field \"args\": variable \"WARREN_TEST_SURELY_UNSET\" is not set",
        dir.path().join("warren.toml").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(!Path::new(&dir.path().join("ctl.sock")).exists(), "nothing was started");
}

#[test]
fn the_example_config_shows_the_new_keys_at_work() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../warren.toml");
    let plan = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let expected = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "info".into());
    for program in plan.programs() {
        let rust_log = program.env.iter().find(|(k, _)| k == "RUST_LOG").map(|(_, v)| v.as_str());
        assert_eq!(rust_log, Some(expected.as_str()), "{}", program.name);
    }
}

#[test]
fn an_env_table_of_its_own_is_reported_at_its_header() {
    let toml = "[programs.a]\ncommand = 'a'\n\n[programs.a.env]\nOK = 'x'\nX = \"${NO_SUCH_X}\"\n";
    let dir = dir_with(&[("warren.toml", toml)]);
    assert_eq!(
        errors(&dir),
        "DIR/warren.toml:4: program \"a\", field \"env.X\": variable \"NO_SUCH_X\" is not set (set it in warren's \
         environment or an env file, or give a default: ${NO_SUCH_X:-value})"
    );
}
