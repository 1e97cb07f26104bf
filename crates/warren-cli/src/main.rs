//! The `warren` command.

mod config;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
