//! `warren check`: read a configuration as `warren up` would and say what it would run, without
//! running anything — for an editor, a pre-commit hook or CI.

use std::fmt::Write as _;
use std::path::Path;

use warren::supervise::plan::{Invocation, Plan};

use crate::config;

/// The summary of a valid file, or its errors (each with its file, line, program and field);
/// and warnings about what is valid but will not work here.
pub fn check(file: &Path) -> Result<(String, Vec<String>), config::ConfigErrors> {
    let (plan, _) = config::load_with_settings(file)?;
    Ok((summary(file, &plan), missing_commands(&plan)))
}

/// Commands that this machine does not have: not errors, since the file may be meant for
/// another, but what `up` would fail on here.
fn missing_commands(plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    for program in plan.programs() {
        let Invocation::Exec { program: command, .. } = &program.command else { continue };
        let cwd = program.cwd.clone().unwrap_or_default();
        let path = program
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or_else(|| std::env::var_os("PATH").unwrap_or_default(), |(_, v)| std::ffi::OsString::from(v));
        if which::which_in(command, Some(path), &cwd).is_err() {
            warnings.push(format!("{}: command {} is not found here", program.name, command.display()));
        }
    }
    warnings
}

/// `warren.toml: 3 programs, started in this order:` and a line per wave of programs that
/// start together, then those left for `warren start`.
fn summary(file: &Path, plan: &Plan) -> String {
    let programs = plan.programs();
    let plural = if programs.len() == 1 { "" } else { "s" };
    let mut out = format!("{}: {} program{plural}, started in this order:\n", file.display(), programs.len());
    let left = plan.manual();
    let waves = plan.start_order();
    let waves =
        waves.iter().map(|wave| wave.iter().map(String::as_str).filter(|n| !left.contains(n)).collect::<Vec<_>>());
    for (step, names) in waves.filter(|names| !names.is_empty()).enumerate() {
        let _ = writeln!(out, "  {}. {}", step + 1, names.join(", "));
    }
    if !left.is_empty() {
        let _ = writeln!(out, "  not started (autostart = false): {}", left.join(", "));
    }
    out
}
