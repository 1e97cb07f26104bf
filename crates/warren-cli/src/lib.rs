//! The `warren` command as a library: `up` supervises a file of programs; the other
//! subcommands drive a running `up` through its control socket. The binary (`main.rs`) only
//! calls [`main`]; [`config`] is public so that its tests can live in `tests/`.

#![warn(missing_docs)]

mod builtin;
mod call_counts;
mod check;
mod cli;
pub mod config;
mod control;
mod control_socket;
mod detach;
mod detail;
mod diagnostics;
mod exit;
mod export;
mod fd_limit;
mod grouping;
mod harness;
mod http;
mod instance;
mod lifecycle;
mod limits;
mod logs;
mod manual;
mod output;
mod private_dir;
mod reload;
mod remote;
mod round_robin;
mod scale;
mod service;
mod terminal;
mod up;
mod upgrade;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Subcommand};
use terminal::Terminal;

/// How long `up`'s last lines may wait for a reader that does not read before warren exits.
const TERMINAL_FLUSH: Duration = Duration::from_secs(5);

/// Runs the command line: parses the arguments, runs the subcommand, and turns its outcome
/// into an exit code (printing the error, if any, once).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors: printed to stdout, exit 0.
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    // `up -d` only starts the detached instance and waits for its word: Ctrl-C ends the wait.
    let supervises = matches!(&cli.command, Subcommand::Up { run, .. } if !run.detach || run.detached_child);
    if !supervises {
        return run_cli(cli);
    }
    // `up` starts every program, and makes every upgrade's exec, from the main thread: a
    // program's parent-death signal follows the thread that started it, and only the thread
    // that execs survives an exec (docs/UPGRADE.md). Only `up`: under `handover_main` the stop
    // signals wait for handlers, which the other commands leave to their default action.
    match warren::handover_main(move || run_cli(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("warren: cannot start: {err}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run_cli(cli: Cli) -> ExitCode {
    let terminal = match &cli.command {
        Subcommand::Up { run, file, .. } => match up_terminal(run, file.as_deref()) {
            Ok(terminal) => Some(terminal),
            Err(err) => {
                eprintln!("warren: cannot start the terminal writer thread: {err}");
                return ExitCode::from(exit::ERROR);
            }
        },
        _ => None,
    };
    init_logging(terminal.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warren: cannot start: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // The one place where an error becomes a message and an exit code.
    let outcome = runtime.block_on(run(cli, terminal.clone()));
    if let Some(terminal) = terminal {
        terminal.finish(TERMINAL_FLUSH);
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("warren: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Where `up`'s own lines go: stdout, or the log of a detached instance, which first leaves
/// the terminal's session.
fn up_terminal(run: &cli::UpOptions, file: Option<&std::path::Path>) -> std::io::Result<Terminal> {
    if !run.detached_child {
        return Terminal::start(run.timestamps);
    }
    // An upgraded image is in the session its first image made.
    if !warren::handover_pending() {
        detach::enter_session()?;
    }
    detach::terminal(&cli::config_dir(file))
}

struct Failure {
    message: String,
    code: u8,
}

impl From<remote::RemoteError> for Failure {
    fn from(err: remote::RemoteError) -> Self {
        Failure { code: err.exit_code(), message: format!("{err:#}") }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure { code: exit::ERROR, message: format!("{err:#}") }
    }
}

/// warren's own diagnostics, filtered by RUST_LOG (warnings by default): while `up` runs, as
/// `warren | …` lines on its terminal (see `diagnostics`); otherwise on stderr.
fn init_logging(terminal: Option<Terminal>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    match terminal {
        Some(terminal) => {
            tracing_subscriber::registry().with(filter).with(diagnostics::ToTerminal(terminal)).init();
        }
        None => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
        }
    }
}

async fn run(cli: Cli, terminal: Option<Terminal>) -> Result<u8, Failure> {
    match cli.command {
        Subcommand::Up { file, example, run } => match terminal {
            Some(terminal) => up(file, example, run, terminal).await,
            None => Err(anyhow::anyhow!("warren up started without its terminal writer").into()),
        },
        Subcommand::Status { name, json, instance } => {
            remote::status(&remote::connect(&instance.dir()).await?, name.as_deref(), json).await?;
            Ok(exit::OK)
        }
        Subcommand::Endpoint { program, instance } => {
            remote::endpoint(&remote::connect(&instance.dir()).await?, &program).await?;
            Ok(exit::OK)
        }
        Subcommand::Start { programs, wait, instance } => {
            let request = lifecycle_request(programs, !wait.no_wait, false, wait.timeout);
            Ok(remote::programs(&remote::connect(&instance.dir()).await?, "Control.StartPrograms", &request).await?)
        }
        Subcommand::Stop { programs, only, timeout, instance } => {
            let request = lifecycle_request(programs, true, only, timeout);
            Ok(remote::programs(&remote::connect(&instance.dir()).await?, "Control.StopPrograms", &request).await?)
        }
        Subcommand::Restart { programs, wait, rolling, instance } => {
            let request =
                control::ProgramsRequest { rolling, ..lifecycle_request(programs, !wait.no_wait, false, wait.timeout) };
            Ok(remote::programs(&remote::connect(&instance.dir()).await?, "Control.RestartPrograms", &request).await?)
        }
        Subcommand::Logs { programs, follow, lines, since, grep, stream, timestamps, json, instance } => {
            let options = logs::client::Options { programs, lines, follow, since, grep, stream, timestamps, json };
            logs::client::run(&instance.dir(), options).await?;
            Ok(exit::OK)
        }
        Subcommand::Call { program, method, arg, timeout, instance } => {
            let client = remote::connect_within(&instance.dir(), Some(timeout.into())).await?;
            remote::call(&client, &program, &method, arg.as_deref(), timeout.into()).await?;
            Ok(exit::OK)
        }
        Subcommand::Reload { dry_run, instance } => {
            Ok(reload::remote(&remote::connect(&instance.dir()).await?, dry_run).await?)
        }
        Subcommand::Scale { program, count, instance } => {
            Ok(scale::remote(&remote::connect(&instance.dir()).await?, &program, count).await?)
        }
        Subcommand::Upgrade { formats: true, .. } => {
            println!("{}", upgrade::formats());
            Ok(exit::OK)
        }
        Subcommand::Upgrade { instance, to, .. } => Ok(upgrade::remote(&instance.dir(), to).await?),
        Subcommand::Down { instance } => {
            let escaped = remote::down(&remote::connect(&instance.dir()).await?).await?;
            Ok(if escaped > 0 { exit::PROGRAM_FAILED } else { exit::OK })
        }
        Subcommand::Completions { shell } => Ok(manual::completions(shell)?),
        Subcommand::Man { subcommand } => manual::man(subcommand.as_deref()),
        Subcommand::Export(cli::Export::Systemd { dir, user, file }) => {
            let file = file.unwrap_or_else(|| PathBuf::from("warren.toml"));
            let file = if file.is_dir() { file.join("warren.toml") } else { file };
            let scope = if user { export::systemd::Scope::User } else { export::systemd::Scope::System };
            export::systemd(&file, &dir, scope)
        }
        Subcommand::Check { file } => {
            let Some(file) = config_file(file) else {
                let message = "no warren.toml or Procfile here: name one with -f".to_owned();
                return Err(Failure { message, code: exit::CONFIG });
            };
            match check::check(&file) {
                Ok((summary, warnings)) => {
                    print!("{summary}");
                    for warning in warnings {
                        eprintln!("warren: warning: {warning}");
                    }
                    Ok(exit::OK)
                }
                Err(errors) => Err(Failure { message: errors.to_string(), code: exit::CONFIG }),
            }
        }
        Subcommand::Import { file } => match config::import(&file) {
            Ok(toml) => {
                print!("{toml}");
                Ok(exit::OK)
            }
            Err(errors) => Err(Failure { message: errors.to_string(), code: exit::CONFIG }),
        },
    }
}

fn lifecycle_request(
    programs: cli::Programs,
    wait: bool,
    only: bool,
    timeout: Option<humantime::Duration>,
) -> control::ProgramsRequest {
    let timeout_ms = timeout.map(|t| u64::try_from(std::time::Duration::from(t).as_millis()).unwrap_or(u64::MAX));
    control::ProgramsRequest { names: programs.names, all: programs.all, wait, only, timeout_ms, rolling: false }
}

/// The file `-f` names: `-f DIR` means DIR/warren.toml, or DIR/Procfile without one; no `-f`,
/// the same in the current directory (`None` if it has neither).
fn config_file(file: Option<PathBuf>) -> Option<PathBuf> {
    match file {
        Some(dir) if dir.is_dir() => Some(config::find(&dir).unwrap_or_else(|| dir.join("warren.toml"))),
        Some(file) => Some(file),
        None => config::find(std::path::Path::new("")),
    }
}

async fn up(file: Option<PathBuf>, example: bool, run: cli::UpOptions, terminal: Terminal) -> Result<u8, Failure> {
    if warren::handover_pending() {
        // Started by an upgrade: the image before says what runs, whatever the file says now.
        let carried =
            upgrade::Carried::peek().map_err(|why| anyhow::anyhow!("cannot take over from the image before: {why}"))?;
        let dir = cli::config_dir(carried.file.as_deref());
        let file = carried.file.clone();
        return Ok(up::run(up::Origin::HandedOver(carried), file, &dir, run, terminal).await?);
    }
    let file = if example { None } else { config_file(file) };
    let dir = cli::config_dir(file.as_deref());
    if run.detach && !run.detached_child {
        return Ok(detach::start(file.as_deref(), &run, &dir)?);
    }
    let (plan, logs) = match &file {
        Some(file) => match config::load_with_settings(file) {
            Ok(loaded) => loaded,
            Err(errors) => return Err(Failure { message: errors.to_string(), code: exit::CONFIG }),
        },
        None => (builtin::plan(), config::FileSettings::default()),
    };
    // The path as given when `up` started, for `warren reload` to re-read.
    let file = file.map(|f| std::path::absolute(&f).unwrap_or(f));
    Ok(up::run(up::Origin::Fresh(plan, logs), file, &dir, run, terminal).await?)
}
