//! The `warren` command as a library: `up` supervises a file of programs; the other
//! subcommands drive a running `up` through its control socket. The binary (`main.rs`) only
//! calls [`main`]; [`config`] is public so that its tests can live in `tests/`.

#![warn(missing_docs)]

mod builtin;
mod cli;
pub mod config;
mod control;
mod control_socket;
mod diagnostics;
mod exit;
mod harness;
mod instance;
mod lifecycle;
mod manual;
mod output;
mod private_dir;
mod remote;
mod service;
mod terminal;
mod up;

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
    let terminal = match &cli.command {
        Subcommand::Up { run, .. } => match Terminal::start(run.timestamps) {
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
        Subcommand::Status { json, instance } => {
            remote::status(&remote::connect(&instance.dir()).await?, json).await?;
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
        Subcommand::Restart { programs, wait, instance } => {
            let request = lifecycle_request(programs, !wait.no_wait, false, wait.timeout);
            Ok(remote::programs(&remote::connect(&instance.dir()).await?, "Control.RestartPrograms", &request).await?)
        }
        Subcommand::Logs { program, follow, lines, instance } => {
            remote::logs(&remote::connect(&instance.dir()).await?, &program, lines, follow).await?;
            Ok(exit::OK)
        }
        Subcommand::Call { program, method, arg, timeout, instance } => {
            let client = remote::connect(&instance.dir()).await?;
            remote::call(&client, &program, &method, arg.as_deref(), timeout.into()).await?;
            Ok(exit::OK)
        }
        Subcommand::Down { instance } => {
            remote::down(&remote::connect(&instance.dir()).await?).await?;
            Ok(exit::OK)
        }
        Subcommand::Completions { shell } => Ok(manual::completions(shell)?),
        Subcommand::Man { subcommand } => manual::man(subcommand.as_deref()),
    }
}

fn lifecycle_request(
    programs: cli::Programs,
    wait: bool,
    only: bool,
    timeout: Option<humantime::Duration>,
) -> control::ProgramsRequest {
    let timeout_ms = timeout.map(|t| u64::try_from(std::time::Duration::from(t).as_millis()).unwrap_or(u64::MAX));
    control::ProgramsRequest { names: programs.names, all: programs.all, wait, only, timeout_ms }
}

async fn up(file: Option<PathBuf>, example: bool, run: cli::UpOptions, terminal: Terminal) -> Result<u8, Failure> {
    let default = PathBuf::from("warren.toml");
    // `-f DIR` means DIR/warren.toml.
    let file = file.map(|f| if f.is_dir() { f.join("warren.toml") } else { f });
    let file = match file {
        Some(file) => Some(file),
        None if !example && default.exists() => Some(default),
        None => None,
    };
    let plan = match &file {
        Some(file) => match config::load(file) {
            Ok(plan) => plan,
            Err(errors) => return Err(Failure { message: errors.to_string(), code: exit::CONFIG }),
        },
        None => builtin::plan(),
    };
    let dir = cli::config_dir(file.as_deref());
    Ok(up::run(plan, &dir, run, terminal).await?)
}
