//! Exit codes of the `warren` command, in one place (documented in the README).

/// Everything ran and stopped cleanly, or the command did what was asked.
pub const OK: u8 = 0;
/// At least one program failed: a crash loop, a failed start, a non-zero exit it was left in
/// (`up`); a program did not come back up or did not stop in time (`start`, `restart`, `stop`);
/// processes that had left their program's process group had to be found and killed (`down`).
pub const PROGRAM_FAILED: u8 = 1;
/// The configuration is invalid (the message names file, line, program and field).
pub const CONFIG: u8 = 2;
/// Another `warren up` already runs for this directory.
pub const ALREADY_RUNNING: u8 = 3;
/// No running instance to talk to (status, stop, logs, call, down).
pub const NOT_RUNNING: u8 = 4;
/// The instance refused the request: unknown program, program not running, a failed call.
pub const REQUEST_FAILED: u8 = 5;
/// The command line is wrong: an unknown subcommand or option, a missing argument
/// (`EX_USAGE` of sysexits.h; clap's own 2 would read as an invalid configuration).
pub const USAGE: u8 = 64;
/// Anything else: I/O errors (`EX_SOFTWARE` of sysexits.h).
pub const ERROR: u8 = 70;
/// A third Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT): exit immediately. Not used here: `warren up`
/// exits with [`warren::Shutdown::EXIT_CODE`], which this must equal (checked below).
pub const INTERRUPTED: u8 = 130;

const _: () = assert!(INTERRUPTED as i32 == warren::Shutdown::EXIT_CODE);
