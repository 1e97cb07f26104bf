//! The `warren` binary: everything is in the library, so that tests can reach it.

fn main() -> std::process::ExitCode {
    // The main thread starts every program and makes every upgrade's exec: a program's
    // parent-death signal follows the thread that started it, and only the thread that execs
    // survives an exec (docs/UPGRADE.md).
    match warren::handover_main(warren_cli::main) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("warren: cannot start: {err}");
            std::process::ExitCode::from(70)
        }
    }
}
