//! A Procfile — `name: command` lines, as foreman and honcho read them — as a warren.toml:
//! each line a program whose command line `sh -c` runs, with `PORT` set as foreman sets it
//! (the base, plus 100 for each line before it; the base is `PORT` from the `.env` beside the
//! Procfile, else from warren's environment, else 5000). The `.env` itself reaches every
//! program as it does for any configuration.
//!
//! `warren up -f Procfile` runs the TOML that `warren import Procfile` prints, through the same
//! [`super::parse`], so the two cannot drift apart.

use std::path::{Path, PathBuf};

use warren::supervise::plan::Plan;

use super::error::{Collector, ConfigError, ConfigErrors, ErrorKind, Section};
use super::{env, interpolate};

/// foreman's base port, when neither the `.env` nor the environment sets `PORT`.
const BASE_PORT: u16 = 5000;
/// How far apart the ports of two lines are.
const PORT_STEP: u16 = 100;

/// Whether `path` names a Procfile rather than a warren.toml: `Procfile`, `Procfile.dev`, ...
pub(crate) fn is_procfile(path: &Path) -> bool {
    path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("Procfile"))
}

/// The configuration `warren up` runs in `dir` when none is named: its `warren.toml`, else its
/// `Procfile`.
pub fn find(dir: &Path) -> Option<PathBuf> {
    ["warren.toml", "Procfile"].into_iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

/// Reads a Procfile and gives the equivalent warren.toml, to be placed beside it (its `.env`
/// and relative paths are read from there).
pub fn import(path: &Path) -> Result<String, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| file_error(path, ErrorKind::Read(err)))?;
    let mut errors = Collector::new(path, &text);
    let lines = lines(&text, &mut errors);
    if let Some(errors) = errors.finish() {
        return Err(errors);
    }
    if lines.is_empty() {
        return Err(file_error(path, ErrorKind::EmptyProcfile));
    }
    let base = base_port(path)?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut toml = format!(
        "# From {name} (`warren import {name}`): each line is a program that `sh -c` runs, with PORT set as\n\
         # foreman sets it. The .env beside this file reaches every program, as it did with the Procfile.\n"
    );
    for (index, (name, command)) in lines.iter().enumerate() {
        let port = u16::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(PORT_STEP))
            .and_then(|offset| base.checked_add(offset))
            .ok_or_else(|| file_error(path, ErrorKind::Schema(format!("too many lines for base port {base}"))))?;
        // Escaped: foreman hands the line to sh as it is, `${X}` included.
        let shell = quote(&interpolate::escape(command));
        toml.push_str(&format!("\n[programs.{name}]\nshell = {shell}\nenv = {{ PORT = \"{port}\" }}\n"));
    }
    Ok(toml)
}

/// Runs a Procfile: the plan of what [`import`] makes of it.
pub(crate) fn load(path: &Path) -> Result<(Plan, super::FileSettings), ConfigErrors> {
    super::parse_with_settings(&import(path)?, path)
}

/// The `(name, command)` of each line, reporting the lines that are neither that, blank nor
/// comments, and names used twice.
fn lines<'t>(text: &'t str, errors: &mut Collector<'_>) -> Vec<(&'t str, &'t str)> {
    let mut found: Vec<(&str, &str)> = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let at = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, command)| {
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
            (valid && !command.trim().is_empty()).then_some((name, command.trim()))
        });
        let span = Some(at..at + line.len());
        match parsed {
            None => errors.push(span, &Section::File, None, ErrorKind::ProcfileLine),
            Some((name, _)) if found.iter().any(|(seen, _)| *seen == name) => errors.push(
                span,
                &Section::Program(name.to_owned()),
                None,
                ErrorKind::DuplicateProgram(name.to_owned()),
            ),
            Some(entry) => found.push(entry),
        }
    }
    found
}

/// `PORT` from the `.env` beside the Procfile, else from warren's environment, else 5000.
fn base_port(path: &Path) -> Result<u16, ConfigErrors> {
    let dotenv = path.parent().unwrap_or(Path::new(".")).join(env::DOTENV);
    // A broken .env is reported when the configuration is read; here only its PORT matters.
    let from_file = std::fs::read_to_string(&dotenv).ok().and_then(|text| {
        let mut ignored = Collector::new(&dotenv, &text);
        let vars = env::parse(&dotenv, &text, &mut ignored)?;
        vars.into_iter().rev().find(|(name, _)| name == "PORT").map(|(_, value)| (value, env::DOTENV))
    });
    let Some((text, source)) = from_file.or_else(|| std::env::var("PORT").ok().map(|v| (v, "the environment"))) else {
        return Ok(BASE_PORT);
    };
    text.trim().parse::<u16>().map_err(|_| {
        let message =
            format!("PORT={text:?} from {source} is not a port number (it is the base of the programs' ports)");
        file_error(path, ErrorKind::Schema(message))
    })
}

/// `text` as a TOML string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn file_error(path: &Path, kind: ErrorKind) -> ConfigErrors {
    ConfigError { file: path.to_path_buf(), line: None, section: Section::File, field: None, kind }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<(&str, &str)>, String> {
        let mut errors = Collector::new(Path::new("Procfile"), text);
        let found = lines(text, &mut errors);
        errors.finish().map_or(Ok(found), |e| Err(e.to_string()))
    }

    #[test]
    fn lines_are_name_colon_command() {
        assert_eq!(
            parsed("# comment\n\nweb: bundle exec rails s -p $PORT\r\nworker:python w.py --x=a:b\n"),
            Ok(vec![("web", "bundle exec rails s -p $PORT"), ("worker", "python w.py --x=a:b")])
        );
    }

    #[test]
    fn bad_and_duplicate_lines_are_reported_at_their_line() {
        assert_eq!(
            parsed("web: a\nnot a line\nweb: b\nx y: z\nempty:   \n"),
            Err("Procfile:2: expected NAME: COMMAND (a name of letters, digits, '_' and '-'), a blank line or a # comment\n\
                 Procfile:3: program \"web\": two programs are named \"web\"\n\
                 Procfile:4: expected NAME: COMMAND (a name of letters, digits, '_' and '-'), a blank line or a # comment\n\
                 Procfile:5: expected NAME: COMMAND (a name of letters, digits, '_' and '-'), a blank line or a # comment"
                .to_owned())
        );
    }

    #[test]
    fn procfiles_are_told_by_name() {
        assert!(is_procfile(Path::new("/app/Procfile")));
        assert!(is_procfile(Path::new("Procfile.dev")));
        assert!(!is_procfile(Path::new("/app/warren.toml")));
        assert!(!is_procfile(Path::new("/Procfile/warren.toml")));
    }
}
