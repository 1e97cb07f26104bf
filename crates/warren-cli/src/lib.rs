//! The `warren` command as a library: `up` supervises a file of programs; the other
//! subcommands drive a running `up` through its control socket. The binary (`main.rs`) only
//! calls [`main`]; [`config`] is public so that its tests can live in `tests/`.

#![warn(missing_docs)]

mod builtin;
mod cli;
pub mod config;
mod control;
mod exit;
mod instance;
mod logs;
mod output;
mod remote;
mod service;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Subcommand};

/// Runs the command line: parses the arguments, runs the subcommand, and turns its outcome
/// into an exit code (printing the error, if any, once).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warren: cannot start: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // The one place where an error becomes a message and an exit code.
    match runtime.block_on(run(cli)) {
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

/// warren's own diagnostics go to stderr, filtered by RUST_LOG (warnings by default); what
/// `up` reports for the user goes to stdout through `output`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Subcommand::Up { file, example } => up(file, example).await,
        Subcommand::Status { json, instance } => {
            remote::status(&remote::connect(&instance.dir()).await?, json).await?;
            Ok(exit::OK)
        }
        Subcommand::Start { program, instance } => {
            remote_simple(&instance.dir(), "Control.Start", &program, "starting").await
        }
        Subcommand::Stop { program, instance } => {
            remote_simple(&instance.dir(), "Control.Stop", &program, "stopping").await
        }
        Subcommand::Restart { program, instance } => {
            remote_simple(&instance.dir(), "Control.Restart", &program, "restarting").await
        }
        Subcommand::Logs { programs, follow, lines, since, grep, stream, timestamps, json, instance } => {
            let options = logs::client::Options { programs, lines, follow, since, grep, stream, timestamps, json };
            logs::client::run(&remote::connect(&instance.dir()).await?, options).await?;
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
    }
}

async fn remote_simple(dir: &Path, method: &str, program: &str, done: &str) -> Result<u8, Failure> {
    remote::simple(&remote::connect(dir).await?, method, program, done).await?;
    Ok(exit::OK)
}

async fn up(file: Option<PathBuf>, example: bool) -> Result<u8, Failure> {
    let default = PathBuf::from("warren.toml");
    let file = match file {
        Some(file) => Some(file),
        None if !example && default.exists() => Some(default),
        None => None,
    };
    let (plan, logs) = match &file {
        Some(file) => match config::load_with_logs(file) {
            Ok(loaded) => loaded,
            Err(errors) => return Err(Failure { message: errors.to_string(), code: exit::CONFIG }),
        },
        None => (builtin::plan(), config::LogSettings::default()),
    };
    let dir = cli::config_dir(file.as_deref());
    Ok(up::run(plan, logs, &dir).await?)
}
