//! Procfiles: `warren import` prints a warren.toml that loads as the same plan `warren up -f
//! Procfile` runs, and the real `warren up` runs a Procfile as foreman does (`sh -c`, `.env`,
//! `PORT`), found by `-f FILE`, `-f DIR` or in the current directory.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Output;

use tempfile::TempDir;
use warren::supervise::plan::{Invocation, Plan};
use warren_cli::config::load;

use common::{BOUND, WARREN};

const PROCFILE: &str = "# the app\n\
web: echo \"web PORT=$PORT GREETING=$GREETING\"\n\
\n\
worker:   echo \"worker PORT=$PORT ${GREETING} $$\" | tr -d '0-9'\n";

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

/// `warren ARGS` in `dir`, with its own control socket, bounded in time.
fn warren(dir: &Path, args: &[&str], configure: impl FnOnce(&mut assert_cmd::Command)) -> Output {
    let mut command = assert_cmd::Command::new(WARREN);
    command
        .args(args)
        .current_dir(dir)
        .env("WARREN_CONTROL", dir.join("ctl.sock"))
        .env("NO_COLOR", "1")
        .env_remove("PORT")
        .env_remove("RUST_LOG")
        .timeout(BOUND);
    configure(&mut command);
    command.output().expect("run warren")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn loaded(path: &Path) -> Plan {
    load(path).unwrap_or_else(|errors| panic!("{errors}"))
}

/// A program's name, command and environment.
type Summary<'p> = (&'p str, &'p Invocation, Vec<(&'p str, &'p str)>);

#[test]
fn import_prints_a_warren_toml_that_loads_as_the_same_plan() {
    let dir = dir_with(&[("Procfile", PROCFILE), (".env", "GREETING=hi\n")]);
    let toml = stdout(&warren(dir.path(), &["import", "Procfile"], |_| {}));
    std::fs::write(dir.path().join("warren.toml"), &toml).expect("write warren.toml");
    let from_toml = loaded(&dir.path().join("warren.toml"));
    let from_procfile = loaded(&dir.path().join("Procfile"));
    assert_eq!(from_toml.programs(), from_procfile.programs());

    let summary: Vec<Summary<'_>> = from_procfile
        .programs()
        .iter()
        .map(|p| (p.name.as_str(), &p.command, p.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "web",
                &Invocation::Shell("echo \"web PORT=$PORT GREETING=$GREETING\"".into()),
                vec![("GREETING", "hi"), ("PORT", "5000")]
            ),
            (
                "worker",
                &Invocation::Shell("echo \"worker PORT=$PORT ${GREETING} $$\" | tr -d '0-9'".into()),
                vec![("GREETING", "hi"), ("PORT", "5100")]
            ),
        ],
        "lines reach sh as written; PORT is 5000 + 100 per line; .env reaches every program\n{toml}"
    );
    assert!(from_procfile.programs().iter().all(|p| p.cwd.as_deref() == Some(dir.path())));
}

#[test]
fn the_base_port_comes_from_dotenv_then_from_the_environment() {
    let ports = |plan: &Plan| -> Vec<String> {
        plan.programs().iter().flat_map(|p| p.env.iter().filter(|(k, _)| k == "PORT").map(|(_, v)| v.clone())).collect()
    };
    let dir = dir_with(&[("Procfile", PROCFILE), (".env", "PORT=6000\n")]);
    let toml = stdout(&warren(dir.path(), &["import", "Procfile"], |c| {
        c.env("PORT", "7000");
    }));
    std::fs::write(dir.path().join("warren.toml"), &toml).expect("write");
    assert_eq!(ports(&loaded(&dir.path().join("warren.toml"))), ["6000", "6100"]);

    let dir = dir_with(&[("Procfile", PROCFILE)]);
    let toml = stdout(&warren(dir.path(), &["import", "Procfile"], |c| {
        c.env("PORT", "7000");
    }));
    std::fs::write(dir.path().join("warren.toml"), &toml).expect("write");
    assert_eq!(ports(&loaded(&dir.path().join("warren.toml"))), ["7000", "7100"]);

    let output = warren(dir.path(), &["import", "Procfile"], |c| {
        c.env("PORT", "http");
    });
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "warren: Procfile: PORT=\"http\" from the environment is not a port number (it is the base of the programs' \
         ports)\n"
    );
}

#[test]
fn bad_lines_are_refused_at_their_line_by_import_and_up() {
    let dir = dir_with(&[("Procfile", "web: run\nweb run\nweb: again\n")]);
    let expected = "warren: Procfile:2: expected NAME: COMMAND (a name of letters, digits, '_' and '-'), a blank line \
                    or a # comment\nProcfile:3: program \"web\": two programs are named \"web\"\n";
    for args in [&["import", "Procfile"][..], &["up", "-f", "Procfile"]] {
        let output = warren(dir.path(), args, |_| {});
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), expected, "{args:?}");
    }
    let empty = dir_with(&[("Procfile", "# nothing yet\n")]);
    let output = warren(empty.path(), &["import", "Procfile"], |_| {});
    assert_eq!(String::from_utf8_lossy(&output.stderr), "warren: Procfile: no NAME: COMMAND lines\n");
}

/// What each program printed, by program, from `warren up`'s output.
fn program_lines(output: &str) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = output
        .lines()
        .filter_map(|line| line.split_once(" | "))
        .map(|(who, text)| (who.trim().to_owned(), text.to_owned()))
        .filter(|(who, _)| who != "warren")
        .collect();
    // The programs run side by side: only each one's own order is given.
    lines.sort();
    lines
}

#[test]
fn up_runs_a_procfile_as_foreman_does_however_it_is_named() {
    let dir = dir_with(&[("Procfile", PROCFILE), (".env", "GREETING=hi\n")]);
    let expected = [
        ("web".to_owned(), "web PORT=5000 GREETING=hi".to_owned()),
        ("worker".to_owned(), "worker PORT= hi ".to_owned()),
    ];
    let by_file = stdout(&warren(dir.path(), &["up", "-f", "Procfile"], |_| {}));
    assert_eq!(program_lines(&by_file), expected, "{by_file}");
    assert!(by_file.contains("warren | web: started"), "{by_file}");

    let by_dir = stdout(&warren(dir.path(), &["up", "-f"], |c| {
        c.arg(dir.path());
    }));
    assert_eq!(program_lines(&by_dir), expected, "-f DIR without a warren.toml:\n{by_dir}");
    let found = stdout(&warren(dir.path(), &["up"], |_| {}));
    assert_eq!(program_lines(&found), expected, "./Procfile without ./warren.toml:\n{found}");

    let toml = stdout(&warren(dir.path(), &["import", "Procfile"], |_| {}));
    std::fs::write(dir.path().join("warren.toml"), toml).expect("write warren.toml");
    let imported = stdout(&warren(dir.path(), &["up"], |_| {}));
    assert_eq!(program_lines(&imported), expected, "the imported warren.toml, found first:\n{imported}");
}
